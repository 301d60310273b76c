"""The FCS Gibbs loop of one chain.

The chain's :class:`ChainState` (current completed values and each sampler's
warm-start state) is the one mutable object of the package. Everything else
is read from the :class:`~.problem.Problem`: for each target its method and
predictor codes, from which the design is rebuilt at each visit from the
current values (cluster means recomputed, as mice does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..data.grouping import cluster_means
from ..errors import SamplerError
from .passive import compute
from .problem import Problem
from .samplers.logit_2l import draw_2l_bin
from .samplers.normal_2l import draw_2l
from .samplers.single import draw_logreg, draw_norm, draw_pmm, draw_polyreg


@dataclass
class ChainState:
    """Current completed values of every plan variable and the samplers' states."""

    values: dict[str, np.ndarray]
    samplers: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class ChainResult:
    """What one chain returns.

    Attributes
    ----------
    imputed : dict of str -> ndarray
        Final values of each target at its missing rows (row order).
    mean, var : ndarray, shape (maxit, n_targets)
        Mean and variance of the imputed cells of each target after each iteration.
    """

    imputed: dict[str, np.ndarray]
    mean: np.ndarray
    var: np.ndarray


def run_chain(problem: Problem, maxit: int, seed: np.random.SeedSequence,
              donors: int = 5, on_iteration: Callable[[], None] | None = None) -> ChainResult:
    """Run one chain: initial fill, then ``maxit`` sweeps through the visit sequence.

    Parameters
    ----------
    problem : Problem
    maxit : int
        Number of iterations (0: the initial fill only, as mice).
    seed : numpy.random.SeedSequence
        The chain's own seed; all randomness of the chain comes from it.
    donors : int
        Donors of predictive mean matching.
    on_iteration : callable, optional
        Called after each iteration (progress reporting).
    """
    rng = np.random.default_rng(seed)
    plan = problem.plan
    state = ChainState(values=initial_values(problem, rng))
    targets = plan.targets
    mean = np.empty((maxit, len(targets)))
    var = np.empty((maxit, len(targets)))
    for it in range(maxit):
        sweep(problem, state, rng, donors)
        for j, t in enumerate(targets):
            cells = state.values[t][~problem.observed[t]]
            if cells.size:
                mean[it, j], var[it, j] = cells.mean(), cells.var()
            else:  # a plan's target that is complete in these data
                mean[it, j] = var[it, j] = np.nan
        if on_iteration is not None:
            on_iteration()
    imputed = {t: state.values[t][~problem.observed[t]].copy() for t in targets}
    return ChainResult(imputed=imputed, mean=mean, var=var)


def sweep(problem: Problem, state: ChainState, rng: np.random.Generator, donors: int) -> None:
    """One iteration: each target of the visit sequence is updated in turn.

    After each update, every derived variable computed from the target (directly
    or not) is recomputed, parents first, so that no later update sees a stale
    one; the plan's own placement of derived variables in the visit sequence
    (each target followed by its descendants, for a compiled plan) is thereby
    honoured, and a hand-edited sequence that omits or misplaces them is repaired.
    """
    derived = problem.plan.derived
    for name in problem.plan.visit:
        if name in derived:
            continue  # recomputed right after each update of an ancestor
        update(problem, state, name, rng, donors)
        for d in problem.descendants.get(name, ()):
            state.values[d] = compute(derived[d], state.values, problem.groups,
                                      problem.n_groups, problem.categories)


def initial_values(problem: Problem, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Initial fill by random draws from the observed values, then the derived variables.

    Level-1 targets draw from the observed values of the same cluster where it
    has any (else from all observed values); level-2 targets take their cluster's
    observed value where a cluster has one, else an observed cluster's value.
    """
    plan, g, n_groups = problem.plan, problem.groups, problem.n_groups
    values = {name: col.copy() for name, col in problem.columns.items()}
    for t in plan.targets:
        obs = problem.observed[t]
        if plan.cluster is not None and plan.variable(t).level == 2:
            values[t] = _fill_level2(values[t], obs, g, n_groups, rng)
        else:
            values[t] = _fill_level1(values[t], obs, g, n_groups, rng)
    derived = plan.derived
    for name in problem.derived_order:
        values[name] = compute(derived[name], values, g, n_groups, problem.categories)
    return values


def _fill_level1(y: np.ndarray, obs: np.ndarray, g: np.ndarray, n_groups: int,
                 rng: np.random.Generator) -> np.ndarray:
    order = np.flatnonzero(obs)[np.argsort(g[obs], kind="stable")]
    counts = np.bincount(g[obs], minlength=n_groups)
    starts = np.cumsum(counts) - counts
    miss = np.flatnonzero(~obs)
    c = counts[g[miss]]
    pick = starts[g[miss]] + np.floor(rng.random(len(miss)) * c).astype(np.intp)
    anywhere = rng.integers(0, len(order), len(miss))
    out = y.copy()
    out[miss] = y[order[np.where(c > 0, np.minimum(pick, len(order) - 1), anywhere)]]
    return out


def _fill_level2(y: np.ndarray, obs: np.ndarray, g: np.ndarray, n_groups: int,
                 rng: np.random.Generator) -> np.ndarray:
    seen = np.bincount(g[obs], minlength=n_groups) > 0
    value = np.full(n_groups, np.nan)
    value[g[obs]] = y[obs]
    donors = np.flatnonzero(seen)
    missing = np.flatnonzero(~seen)
    value[missing] = value[donors[rng.integers(0, len(donors), len(missing))]]
    out = y.copy()
    out[~obs] = value[g[~obs]]
    return out


def update(problem: Problem, state: ChainState, name: str, rng: np.random.Generator,
           donors: int) -> None:
    """One visit of target ``name``: draw new values for its missing rows."""
    method = problem.methods[name]
    values, obs, g, G = state.values, problem.observed[name], problem.groups, problem.n_groups
    preds = problem.predictors[name]
    if method.startswith("2lonly."):
        # The cluster's own (observed, constant) value, exactly: a mean of equal floats need
        # not equal them bitwise, and pmm must donate observed values (polyreg: codes).
        rows = np.flatnonzero(obs)
        yc = np.zeros(G)
        yc[g[rows]] = values[name][rows]
        obs_c = np.bincount(g[obs], minlength=G) > 0
        Xc = np.column_stack([np.ones(G)] + [cluster_means(values[p], g, G) for p, _ in preds])
        new = _single(method.removeprefix("2lonly."), yc, obs_c, Xc, rng, donors, name,
                      len(problem.categories.get(name, ())))
        full = yc.copy()
        full[~obs_c] = new
        values[name] = np.where(obs, values[name], full[g])
        return
    if method.startswith("2l."):
        X = np.column_stack([np.ones(problem.n)] + [col for p, c in preds
                                                     for col in _fixed(values[p], c, g, G)])
        Z = np.column_stack([np.ones(problem.n)] + [values[p] for p, c in preds if c in (2, 4)])
        if method == "2l.bin":
            new, state.samplers[name] = draw_2l_bin(values[name], obs, X, Z, g, G, rng,
                                                    state.samplers.get(name),  # type: ignore[arg-type]
                                                    name=name)
        else:
            new, state.samplers[name] = draw_2l(values[name], obs, X, Z, g, G, rng,
                                                state.samplers.get(name),  # type: ignore[arg-type]
                                                pmm=method == "2l.pmm", donors=donors, name=name)
    else:
        X = np.column_stack([np.ones(problem.n)] + [values[p] for p, _ in preds])
        new = _single(method, values[name], obs, X, rng, donors, name,
                      len(problem.categories.get(name, ())))
    out = values[name].copy()
    out[~obs] = new
    values[name] = out


def _fixed(x: np.ndarray, code: int, g: np.ndarray, G: int) -> list[np.ndarray]:
    """Fixed-effect columns of a predictor: itself, plus its cluster mean for codes 3 and 4."""
    if code in (3, 4):
        return [x, cluster_means(x, g, G)[g]]
    return [x]


def _single(method: str, y: np.ndarray, obs: np.ndarray, X: np.ndarray,
            rng: np.random.Generator, donors: int, name: str, n_categories: int) -> np.ndarray:
    if method == "pmm":
        return draw_pmm(y, obs, X, rng, donors=donors, name=name)
    if method == "norm":
        return draw_norm(y, obs, X, rng, name=name)
    if method == "logreg":
        return draw_logreg(y, obs, X, rng, name=name)
    if method == "polyreg":
        return draw_polyreg(y, obs, X, rng, n_categories=n_categories, name=name)
    raise SamplerError(f"method '{method}' of '{name}' has no sampler")
