"""SMC chains: initial fill, then sweeps of parameter updates and missing-value draws.

A sweep draws every model's parameters given the completed data (plan order;
a model whose dependent is in no other model from the rows where it is
observed, see :attr:`~.problem.SmcProblem.fit_rows`), then every incomplete
variable's missing cells from their full conditionals (the plan's draw order).
Metropolis-Hastings proposal sds are tuned during the first half of the chain
(burn-in) towards an acceptance rate of 0.45, then frozen; the acceptance rate
reported is that of the second half.

The chains of a batch run in lockstep (:func:`run_smc_batch`): every array
has a leading chain axis, the parameters and the missing values are drawn for
all chains at once; each chain draws from its own generator only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..gibbs import LOCKSTEP_CELLS, ChainResult, cluster_means, fill_level1, fill_level2
from .conditionals import Current, draw_target, proposal_scale
from .models import update_params
from .problem import SmcProblem

__all__ = ["TARGET_ACCEPTANCE", "SmcChainResult", "draw_all", "run_smc_batch", "run_smc_chain",
           "update_all"]

#: Acceptance rate the proposal sds are tuned towards during burn-in.
TARGET_ACCEPTANCE = 0.45


@dataclass(frozen=True)
class SmcChainResult(ChainResult):
    """What one SMC chain returns: :class:`~..gibbs.ChainResult` plus diagnostics.

    Attributes
    ----------
    acceptance : dict of str -> float
        Per Metropolis-Hastings variable, its acceptance rate after burn-in
        (NaN if the chain had no iteration after burn-in).
    proposed : dict of str -> int
        Per Metropolis-Hastings variable, the moves proposed after burn-in.
    scale : dict of str -> float
        The frozen proposal sd of each Metropolis-Hastings variable (first set
        from the curvature of its log conditional, then tuned during burn-in).
    beta : dict of str -> ndarray, shape (maxit, p)
        Per model (by dependent variable), the fixed effects drawn at each iteration
        (of a multinomial model, each non-reference category's ``p`` side by side).
    """

    acceptance: dict[str, float] = field(default_factory=dict)
    proposed: dict[str, int] = field(default_factory=dict)
    scale: dict[str, float] = field(default_factory=dict)
    beta: dict[str, np.ndarray] = field(default_factory=dict)


def run_smc_chain(problem: SmcProblem, maxit: int, seed: np.random.SeedSequence,
                  donors: int = 5, on_iteration: Callable[[], None] | None = None
                  ) -> SmcChainResult:
    """Run one chain: initial fill, then ``maxit`` sweeps (a batch of one of
    :func:`run_smc_batch`)."""
    result = run_smc_batch(problem, maxit, [seed], donors, on_iteration)[0]
    assert isinstance(result, SmcChainResult)
    return result


def run_smc_batch(problem: SmcProblem, maxit: int, seeds: list[np.random.SeedSequence],
                  donors: int = 5, on_iteration: Callable[[], None] | None = None
                  ) -> list[ChainResult]:
    """Run a batch of chains in lockstep: initial fill, then ``maxit`` sweeps.

    Parameters and missing values are drawn for all chains at once; at
    most :data:`~recipe_compiler.runtime.gibbs.LOCKSTEP_CELLS` ``// n`` chains
    run in lockstep, larger batches in such groups one after the other.
    Chain ``c`` draws only from its own generator, in the same order whatever
    the batch, so its result does not depend on the other chains.

    Parameters
    ----------
    problem : SmcProblem
    maxit : int
        Number of sweeps (0: the initial fill only).
    seeds : list of numpy.random.SeedSequence
        One per chain; all randomness of chain ``c`` comes from ``seeds[c]``.
    donors : int
        Unused (the batch signature of :func:`recipe_compiler.runtime.chains.run_chains`).
    on_iteration : callable, optional
        Called once per chain after each sweep (progress reporting).
    """
    size = max(LOCKSTEP_CELLS // max(problem.grouping.n_rows, 1), 1)
    if len(seeds) > size:  # bounds the memory of the stacked designs; changes no result
        return [r for k in range(0, len(seeds), size)
                for r in run_smc_batch(problem, maxit, seeds[k:k + size], donors, on_iteration)]
    rngs = [np.random.default_rng(s) for s in seeds]
    chains = len(rngs)
    current = initial_state(problem, rngs)
    targets = [t.name for t in problem.targets]
    mh = [t.name for t in problem.targets if t.how == "metropolis"]
    scales: dict[str, np.ndarray] = {}  # set at the first sweep
    burn = maxit // 2
    accepted = {name: np.zeros(chains, dtype=int) for name in mh}
    proposed = dict.fromkeys(mh, 0)
    mean = np.empty((chains, maxit, len(targets)))
    var = np.empty((chains, maxit, len(targets)))
    beta = {d.dependent: np.empty((chains, maxit, len(d.x_names) * max(d.n_categories - 1, 1)))
            for d in problem.designs}
    missing = [np.flatnonzero(~problem.observed[t]) for t in targets]
    for it in range(maxit):
        update_all(problem, current, rngs)
        rates = draw_all(problem, current, scales, rngs)
        for name, (acc, prop) in rates.items():
            if it < burn:  # Robbins-Monro step on the log proposal sd
                scales[name] = scales[name] * np.exp((acc / max(prop, 1) - TARGET_ACCEPTANCE)
                                                     / np.sqrt(it + 1))
            else:
                accepted[name] += acc
                proposed[name] += prop
        for d, p in zip(problem.designs, current.params, strict=True):
            beta[d.dependent][:, it] = p.beta
        for j, (t, cells) in enumerate(zip(targets, missing, strict=True)):
            values = current.values[t].take(cells, axis=1)
            mean[:, it, j], var[:, it, j] = values.mean(axis=1), values.var(axis=1)
        if on_iteration is not None:
            for _ in range(chains):
                on_iteration()
    out: list[ChainResult] = []
    for c in range(chains):
        imputed = {t: current.values[t][c, cells]
                   for t, cells in zip(targets, missing, strict=True)}
        out.append(SmcChainResult(
            imputed=imputed, mean=mean[c], var=var[c],
            acceptance={name: accepted[name][c] / proposed[name] if proposed[name]
                        else float("nan") for name in mh},
            proposed=dict(proposed), scale={name: float(s[c]) for name, s in scales.items()},
            beta={name: b[c] for name, b in beta.items()}))
    return out


def update_all(problem: SmcProblem, current: Current, rngs: list[np.random.Generator]) -> None:
    """Draw every model's parameters in every chain (plan order), in place."""
    for k, d in enumerate(problem.designs):
        new = update_params(d, current.frame, current.cluster_frame,
                            problem.binary.get(d.dependent), problem.grouping,
                            current.params[k] if len(current.params) > k else None, rngs,
                            problem.fit_rows[k], problem.splits[k], problem.outer,
                            current.top_frame if d.level == 3 else None)
        if len(current.params) > k:
            current.params[k] = new
        else:
            current.params.append(new)


def draw_all(problem: SmcProblem, current: Current, scale: dict[str, np.ndarray],
             rngs: list[np.random.Generator]) -> dict[str, tuple[np.ndarray, int]]:
    """Every variable's missing cells in every chain (the plan's draw order), in place.

    ``scale`` holds the proposal sds (per chain) of each Metropolis-Hastings
    variable; one missing is set from the curvature of its log conditional
    (:func:`~.conditionals.proposal_scale`).

    Returns
    -------
    dict of str -> (ndarray, int)
        Per Metropolis-Hastings variable, the accepted moves per chain and the
        moves proposed in each chain.
    """
    out = {}
    zero = np.zeros(current.chains)
    for t in problem.targets:
        if t.how == "metropolis" and t.name not in scale:
            scale[t.name] = proposal_scale(problem, current, t)
        counts = draw_target(problem, current, t, scale.get(t.name, zero), rngs)
        if t.how == "metropolis":
            out[t.name] = counts
    return out


def initial_state(problem: SmcProblem, rngs: list[np.random.Generator]) -> Current:
    """Initial fill of every chain by random draws from the observed values, and the
    cluster means.

    Level-1 variables draw from the observed values of the same cluster where it
    has any (else from all observed values); level-2 variables take an observed
    cluster's value, as the FCS chains start.
    """
    grouping = problem.grouping
    values = {name: np.repeat(col[None], len(rngs), axis=0)
              for name, col in problem.columns.items()}
    level2, level3 = problem.level2, problem.level3
    for t in problem.targets:
        fill = fill_level2 if t.name in level2 | level3 else fill_level1
        by = problem.outer.rows if t.name in level3 and problem.outer is not None else grouping
        values[t.name] = fill(problem.columns[t.name], problem.observed[t.name], by, rngs)
    means = {name: cluster_means(grouping, col) for name, col in values.items()}
    return Current(values=values, means=means, grouping=grouping, outer=problem.outer)
