"""One SMC chain: initial fill, then sweeps of parameter updates and missing-value draws.

A sweep draws every model's parameters given the completed data (plan order;
a model whose dependent is in no other model from the rows where it is
observed, see :attr:`~.problem.SmcProblem.fit_rows`), then every incomplete
variable's missing cells from their full conditionals (the plan's draw order).
Metropolis-Hastings proposal sds are tuned during the first half of the chain
(burn-in) towards an acceptance rate of 0.45, then frozen; the acceptance rate
reported is that of the second half.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..gibbs import ChainResult, _fill_level1, _fill_level2
from .conditionals import Current, draw_target, proposal_scale
from .models import Params, update_params
from .problem import SmcProblem

__all__ = ["TARGET_ACCEPTANCE", "SmcChainResult", "run_smc_chain", "sweep"]

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
    """Run one chain: initial fill, then ``maxit`` sweeps.

    Parameters
    ----------
    problem : SmcProblem
    maxit : int
        Number of sweeps (0: the initial fill only).
    seed : numpy.random.SeedSequence
        The chain's own seed; all randomness of the chain comes from it.
    donors : int
        Unused (the chain signature of :func:`recipe_compiler.runtime.chains.run_chains`).
    on_iteration : callable, optional
        Called after each sweep (progress reporting).
    """
    rng = np.random.default_rng(seed)
    current = initial_state(problem, rng)
    targets = [t.name for t in problem.targets]
    mh = [t.name for t in problem.targets if t.how == "metropolis"]
    scale: dict[str, float] = {}  # set at the first sweep by proposal_scale
    burn = maxit // 2
    counts = {name: [0, 0] for name in mh}
    mean = np.empty((maxit, len(targets)))
    var = np.empty((maxit, len(targets)))
    beta = {d.dependent: np.empty((maxit, len(d.x_names))) for d in problem.designs}
    for it in range(maxit):
        rates = sweep(problem, current, scale, rng)
        for name, (acc, prop) in rates.items():
            if it < burn:  # Robbins-Monro step on the log proposal sd
                scale[name] *= float(np.exp((acc / max(prop, 1) - TARGET_ACCEPTANCE)
                                            / np.sqrt(it + 1)))
            else:
                counts[name][0] += acc
                counts[name][1] += prop
        for j, t in enumerate(targets):
            cells = current.values[t][~problem.observed[t]]
            mean[it, j], var[it, j] = cells.mean(), cells.var()
        for d, p in zip(problem.designs, current.params, strict=True):
            beta[d.dependent][it] = p.beta
        if on_iteration is not None:
            on_iteration()
    imputed = {t: current.values[t][~problem.observed[t]].copy() for t in targets}
    acceptance = {name: a / p if p else float("nan") for name, (a, p) in counts.items()}
    return SmcChainResult(imputed=imputed, mean=mean, var=var, acceptance=acceptance,
                          proposed={name: p for name, (_, p) in counts.items()}, scale=scale,
                          beta=beta)


def sweep(problem: SmcProblem, current: Current, scale: dict[str, float],
          rng: np.random.Generator) -> dict[str, tuple[int, int]]:
    """One sweep: every model's parameters, then every variable's missing cells.

    ``scale`` holds the proposal sd of each Metropolis-Hastings variable; one
    missing is set from the curvature of its log conditional
    (:func:`~.conditionals.proposal_scale`).

    Returns
    -------
    dict of str -> (int, int)
        Per Metropolis-Hastings variable, accepted and proposed moves.
    """
    frame, cluster_frame = current.frame, current.cluster_frame
    previous: list[Params | None] = [*current.params] or [None] * len(problem.designs)
    current.params = [update_params(d, frame, cluster_frame, problem.binary.get(d.dependent),
                                    problem.grouping, p, rng, rows)
                      for d, p, rows in zip(problem.designs, previous, problem.fit_rows,
                                            strict=True)]
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
        fill = _fill_level2 if t.name in level2 else _fill_level1
        values[t.name] = fill(values[t.name], problem.observed[t.name], grouping, rng)
    means = {name: grouping.means(col) for name, col in values.items()}
    return Current(values=values, means=means, grouping=grouping)
