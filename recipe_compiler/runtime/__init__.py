"""Runtime of the imputation model: the Gibbs loop and its univariate samplers.

The samplers are pure functions of arrays and a :class:`numpy.random.Generator`:
:mod:`.single` (norm, pmm, logreg, polyreg; also the 2lonly methods on
cluster-level arrays), :mod:`.twolevel` (2l.norm, 2l.pmm), :mod:`.binary`
(2l.bin), with helpers in :mod:`.clusters` and :mod:`.matching`.
"""
