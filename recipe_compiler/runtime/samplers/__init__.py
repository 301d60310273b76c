"""The samplers: one protocol (:mod:`.registry`), one module per model.

:mod:`.single` (norm, pmm, logreg, polyreg on the rows, or on one row per
cluster for level-2 targets), :mod:`.normal_2l` (two-level normal model, draws
or predictive mean matching), :mod:`.normal_ml` (the same with several grouping
factors), :mod:`.logit_2l` (two-level logistic model by
Polya-Gamma Gibbs), :mod:`.logit_ml` (the same with several grouping factors),
:mod:`.multinomial_2l` (two-level multinomial logit by Polya-Gamma Gibbs),
:mod:`.ordinal` (cumulative probit, two-level or not), with
:mod:`.matching` (pmm donors). Importing this package registers every sampler.

How to add a sampler: write ``draw_x(target, rng, state) -> (draws, state)``
in a module here, decorate it with ``@register("x")``, import the module below,
and add the method's row (with ``sampler="x"``) to
:mod:`recipe_compiler.compiler.methods`. The Gibbs loop runs the chains of a
process in lockstep and calls such a sampler once per chain; a sampler that can
update all chains at once registers with ``@register("x", batched=True)`` and
takes a :class:`~.registry.TargetBatch` (arrays with a leading chain axis) and
one generator per chain, each chain drawing only from its own.
"""

from . import logit_2l, logit_ml, multinomial_2l, normal_2l, normal_ml, ordinal, single
from .registry import Sampler, Target, get_sampler, register, registered

__all__ = ["Sampler", "Target", "get_sampler", "logit_2l", "logit_ml", "multinomial_2l",
           "normal_2l", "normal_ml", "ordinal", "register", "registered", "single"]
