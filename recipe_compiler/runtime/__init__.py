"""Runtime of the imputation model: the Gibbs loop (:mod:`.gibbs`), chain scheduling
(:mod:`.chains`), passive updates (:mod:`.passive`) and the samplers (:mod:`.samplers`).
"""
