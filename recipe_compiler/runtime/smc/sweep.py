"""SMC chains: initial fill, then sweeps of parameter updates and missing-value draws.

A sweep draws every model's parameters given the completed data (plan order;
a model whose dependent is in no other model from the rows where it is
observed, see :attr:`~.problem.SmcProblem.fit_rows`), then every incomplete
variable's missing cells from their full conditionals (the plan's draw order).
Metropolis-Hastings proposal sds are tuned during the first half of the chain
(burn-in) towards an acceptance rate of 0.45, then frozen; the acceptance rate
reported is that of the second half.

The chains of a batch run in lockstep (:func:`run_smc_batch`): the level-1
normal models' parameters are drawn for all chains in one call, the missing
values chain by chain; each chain draws from its own generator only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ...data.grouping import Grouping
from ..gibbs import LOCKSTEP_CELLS, ChainResult, fill_level1, fill_level2
from ..samplers.normal_2l import TwoLevelBatchState, TwoLevelState
from .conditionals import Current, draw_target, proposal_scale
from .models import Params, update_normal_batch, update_params
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
        Per model (by dependent variable), the fixed effects drawn at each iteration.
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

    The level-1 normal models' parameters are drawn for all chains in one
    call (:func:`~.models.update_normal_batch`), the rest chain by chain; at
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
    currents = [initial_state(problem, rng) for rng in rngs]
    targets = [t.name for t in problem.targets]
    mh = [t.name for t in problem.targets if t.how == "metropolis"]
    scales: list[dict[str, float]] = [{} for _ in rngs]  # set at the first sweep
    burn = maxit // 2
    counts = [{name: [0, 0] for name in mh} for _ in rngs]
    mean = np.empty((len(rngs), maxit, len(targets)))
    var = np.empty((len(rngs), maxit, len(targets)))
    beta = [{d.dependent: np.empty((maxit, len(d.x_names))) for d in problem.designs}
            for _ in rngs]
    states: list[TwoLevelBatchState | None] = [None] * len(problem.designs)
    fits = [np.ones(problem.grouping.n_rows, dtype=bool) if rows is None else rows
            for rows in problem.fit_rows]
    g_fits = [problem.grouping.subset(rows) for rows in fits]
    missing = [np.flatnonzero(~problem.observed[t]) for t in targets]
    for it in range(maxit):
        update_all(problem, currents, states, fits, g_fits, rngs)
        for c, (current, rng) in enumerate(zip(currents, rngs, strict=True)):
            rates = draw_all(problem, current, scales[c], rng)
            for name, (acc, prop) in rates.items():
                if it < burn:  # Robbins-Monro step on the log proposal sd
                    scales[c][name] *= float(np.exp((acc / max(prop, 1) - TARGET_ACCEPTANCE)
                                                    / np.sqrt(it + 1)))
                else:
                    counts[c][name][0] += acc
                    counts[c][name][1] += prop
            for d, p in zip(problem.designs, current.params, strict=True):
                beta[c][d.dependent][it] = p.beta
            if on_iteration is not None:
                on_iteration()
        for j, (t, cells) in enumerate(zip(targets, missing, strict=True)):
            values = np.stack([current.values[t][cells] for current in currents])
            mean[:, it, j], var[:, it, j] = values.mean(axis=1), values.var(axis=1)
    out: list[ChainResult] = []
    for c, current in enumerate(currents):
        imputed = {t: current.values[t][cells] for t, cells in zip(targets, missing, strict=True)}
        acceptance = {name: a / p if p else float("nan") for name, (a, p) in counts[c].items()}
        out.append(SmcChainResult(imputed=imputed, mean=mean[c], var=var[c],
                                  acceptance=acceptance,
                                  proposed={name: p for name, (_, p) in counts[c].items()},
                                  scale=scales[c], beta=beta[c]))
    return out


def update_all(problem: SmcProblem, currents: list[Current],
               states: list[TwoLevelBatchState | None], fits: list[np.ndarray],
               g_fits: list[Grouping], rngs: list[np.random.Generator]) -> None:
    """Draw every model's parameters in every chain (plan order), in place.

    A level-1 normal model is updated chain by chain at the first sweep (its
    start values), then for all chains at once from ``states`` (updated in place).
    """
    for k, d in enumerate(problem.designs):
        state = states[k]
        if state is not None:
            state = states[k] = update_normal_batch(d, [c.frame for c in currents], fits[k],
                                                    g_fits[k], state, rngs)
            new = [Params(state.beta[c], state.u[c], float(state.sigma2[c]))
                   for c in range(len(currents))]
        else:
            binary = problem.binary.get(d.dependent)
            new = [update_params(d, c.frame, c.cluster_frame, binary, problem.grouping,
                                 c.params[k] if len(c.params) > k else None, rng,
                                 problem.fit_rows[k])
                   for c, rng in zip(currents, rngs, strict=True)]
            warm = [p.warm for p in new]
            if d.level == 1 and binary is None and all(isinstance(w, TwoLevelState)
                                                       for w in warm):
                stacked = [w for w in warm if isinstance(w, TwoLevelState)]
                states[k] = TwoLevelBatchState(
                    beta=np.stack([w.beta for w in stacked]), u=np.stack([w.u for w in stacked]),
                    omega=np.stack([w.omega for w in stacked]),
                    sigma2=np.array([w.sigma2 for w in stacked]))
        for c, p in zip(currents, new, strict=True):
            if len(c.params) > k:
                c.params[k] = p
            else:
                c.params.append(p)


def draw_all(problem: SmcProblem, current: Current, scale: dict[str, float],
             rng: np.random.Generator) -> dict[str, tuple[int, int]]:
    """Every variable's missing cells of one chain (the plan's draw order), in place.

    ``scale`` holds the proposal sd of each Metropolis-Hastings variable; one
    missing is set from the curvature of its log conditional
    (:func:`~.conditionals.proposal_scale`).

    Returns
    -------
    dict of str -> (int, int)
        Per Metropolis-Hastings variable, accepted and proposed moves.
    """
    out = {}
    for t in problem.targets:
        if t.how == "metropolis" and t.name not in scale:
            scale[t.name] = proposal_scale(problem, current, t)
        counts = draw_target(problem, current, t, scale.get(t.name, 0.0), rng)
        if t.how == "metropolis":
            out[t.name] = counts
    return out


def initial_state(problem: SmcProblem, rng: np.random.Generator) -> Current:
    """Initial fill by random draws from the observed values, and the cluster means.

    Level-1 variables draw from the observed values of the same cluster where it
    has any (else from all observed values); level-2 variables take an observed
    cluster's value, as the FCS chains start.
    """
    grouping = problem.grouping
    values = {name: col.copy() for name, col in problem.columns.items()}
    level2 = problem.level2
    for t in problem.targets:
        fill = fill_level2 if t.name in level2 else fill_level1
        values[t.name] = fill(values[t.name], problem.observed[t.name], grouping, rng)
    means = {name: grouping.means(col) for name, col in values.items()}
    return Current(values=values, means=means, grouping=grouping)
