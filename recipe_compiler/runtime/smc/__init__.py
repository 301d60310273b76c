"""The model-based (SMC) sampler: a Gibbs sampler over a product of regression models.

:mod:`.terms` evaluates the models' designs from the current values,
:mod:`.problem` turns a :class:`~recipe_compiler.plan.ModelPlan` and its data
into arrays and draw batches, :mod:`.models` draws each model's parameters
(level-1 normal models by :mod:`.normal`, logit ones by :mod:`.logit`,
multinomial logit ones category by category by :mod:`.multinomial`) and gives
its log density, :mod:`.conditionals` draws the missing values from their full
conditionals (with two nested grouping factors, :mod:`.outer` adds the random
intercepts over the outer one, and level-3 values are drawn once per outer
cluster), :mod:`.sweep` runs a batch of chains in lockstep (every array with
a leading chain axis). :func:`run_smc`
runs the m chains through :func:`recipe_compiler.runtime.chains.run_chains`.
"""

from __future__ import annotations

import warnings
from concurrent.futures import Executor

import numpy as np
import pandas as pd

from ...errors import SamplerWarning
from ...plan.smc import ModelPlan
from ..chains import run_chains
from .problem import SmcProblem, make_smc_problem
from .sweep import SmcChainResult, run_smc_batch

__all__ = ["ACCEPTANCE_RANGE", "MIN_PROPOSALS", "SmcChainResult", "SmcProblem",
           "make_smc_problem", "run_smc"]

#: Acceptance rates outside this range get a :class:`SamplerWarning`.
ACCEPTANCE_RANGE = (0.15, 0.8)
#: Fewest proposals after burn-in (over the chains) for that warning: below, the rate
#: is too noisy to judge (its standard error is at most 0.5 / sqrt(n), 0.07 at 50).
MIN_PROPOSALS = 50


def run_smc(plan: ModelPlan, data: pd.DataFrame, *, m: int, maxit: int,
            seed: int | np.random.SeedSequence | None, n_jobs: int = 1,
            executor: Executor | None = None, progress: bool = False
            ) -> tuple[list[SmcChainResult], frozenset[str]]:
    """Run the m chains of a model-based plan.

    Returns
    -------
    chains : list of SmcChainResult
        In chain order; chain k is seeded by the k-th child of ``seed``.
    coded : frozenset of str
        Incomplete variables imputed as category codes.

    Warns
    -----
    SamplerWarning
        A Metropolis-Hastings variable whose acceptance rate after burn-in
        (over the chains, from at least :data:`MIN_PROPOSALS` proposals) is
        outside :data:`ACCEPTANCE_RANGE`.
    """
    problem = make_smc_problem(plan, data)
    chains = run_chains(problem, m=m, maxit=maxit, seed=seed, n_jobs=n_jobs,
                        executor=executor, progress=progress, batch=run_smc_batch)
    results = [c for c in chains if isinstance(c, SmcChainResult)]
    lo, hi = ACCEPTANCE_RANGE
    for name in dict.fromkeys(k for c in results for k in c.acceptance):
        proposed = sum(c.proposed[name] for c in results)
        accepted = sum(c.acceptance[name] * c.proposed[name] for c in results if c.proposed[name])
        if proposed >= MIN_PROPOSALS and not lo <= (rate := accepted / proposed) <= hi:
            warnings.warn(f"imputing '{name}': the Metropolis-Hastings acceptance rate is "
                          f"{rate:.2f}, outside {lo}-{hi}; run more iterations (maxit) so that "
                          "the proposal scale is tuned during burn-in", SamplerWarning,
                          stacklevel=3)
    return results, frozenset(t for t in plan.targets if t in problem.categories)
