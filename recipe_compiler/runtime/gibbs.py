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

from ..compiler.codes import Code
from ..compiler.methods import method
from ..data.grouping import Grouping
from .passive import compute
from .problem import Problem
from .samplers import Target, get_sampler


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
            state.values[d] = compute(derived[d], state.values, problem.grouping,
                                      problem.categories)


def initial_values(problem: Problem, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Initial fill by random draws from the observed values, then the derived variables.

    Level-1 targets draw from the observed values of the same cluster where it
    has any (else from all observed values); level-2 targets take their cluster's
    observed value where a cluster has one, else an observed cluster's value.
    """
    plan, grouping = problem.plan, problem.grouping
    values = {name: col.copy() for name, col in problem.columns.items()}
    for t in plan.targets:
        obs = problem.observed[t]
        if method(problem.methods[t]).scope == "level2":
            values[t] = _fill_level2(values[t], obs, grouping, rng)
        else:
            values[t] = _fill_level1(values[t], obs, grouping, rng)
    derived = plan.derived
    for name in problem.derived_order:
        values[name] = compute(derived[name], values, grouping, problem.categories)
    return values


def _fill_level1(y: np.ndarray, obs: np.ndarray, grouping: Grouping,
                 rng: np.random.Generator) -> np.ndarray:
    g = grouping.codes
    order = np.flatnonzero(obs)[np.argsort(g[obs], kind="stable")]
    counts = grouping.count(obs)
    starts = np.cumsum(counts) - counts
    miss = np.flatnonzero(~obs)
    c = counts[g[miss]]
    pick = starts[g[miss]] + np.floor(rng.random(len(miss)) * c).astype(np.intp)
    anywhere = rng.integers(0, len(order), len(miss))
    out = y.copy()
    out[miss] = y[order[np.where(c > 0, np.minimum(pick, len(order) - 1), anywhere)]]
    return out


def _fill_level2(y: np.ndarray, obs: np.ndarray, grouping: Grouping,
                 rng: np.random.Generator) -> np.ndarray:
    g = grouping.codes
    seen = grouping.count(obs) > 0
    value = np.full(grouping.n, np.nan)
    value[g[obs]] = y[obs]
    donors = np.flatnonzero(seen)
    missing = np.flatnonzero(~seen)
    value[missing] = value[donors[rng.integers(0, len(donors), len(missing))]]
    out = y.copy()
    out[~obs] = value[g[~obs]]
    return out


def update(problem: Problem, state: ChainState, name: str, rng: np.random.Generator,
           donors: int) -> None:
    """One visit of target ``name``: its method's sampler draws its missing rows.

    The method's scope decides what the sampler sees: for ``level2`` one row
    per cluster (the cluster's own observed value, predictors aggregated to
    cluster means), for ``level1`` the rows with the predictors' cluster means
    (codes 3, 4) and a random design (codes 2, 4), for ``single`` the rows.
    """
    row = method(problem.methods[name], f"methods[{name!r}]")
    sampler = get_sampler(row.sampler, row.name)
    values, obs, grouping = state.values, problem.observed[name], problem.grouping
    preds = problem.predictors[name]
    n_categories = len(problem.categories.get(name, ()))
    if row.scope == "level2":
        # The cluster's own (observed, constant) value, exactly: a mean of equal floats need
        # not equal them bitwise, and pmm must donate observed values (polyreg: codes).
        G = grouping.n
        rows = np.flatnonzero(obs)
        yc = np.zeros(G)
        yc[grouping.codes[rows]] = values[name][rows]
        obs_c = grouping.count(obs) > 0
        Xc = np.column_stack([np.ones(G)] + [grouping.means(values[p]) for p, _ in preds])
        clusters = Grouping(codes=np.arange(G), n=G)
        target = Target(name, yc, obs_c, Xc, None, clusters, n_categories, donors)
        new, state.samplers[name] = sampler(target, rng, state.samplers.get(name))
        full = yc.copy()
        full[~obs_c] = new
        values[name] = np.where(obs, values[name], grouping.expand(full))
        return
    ones = np.ones(problem.n)
    if row.scope == "level1":
        X = np.column_stack([ones] + [col for p, c in preds
                                      for col in _fixed(values[p], Code(c), grouping)])
        Z: np.ndarray | None = np.column_stack(
            [ones] + [values[p] for p, c in preds if Code(c).random])
    else:
        X = np.column_stack([ones] + [values[p] for p, _ in preds])
        Z = None
    target = Target(name, values[name], obs, X, Z, grouping, n_categories, donors)
    new, state.samplers[name] = sampler(target, rng, state.samplers.get(name))
    out = values[name].copy()
    out[~obs] = new
    values[name] = out


def _fixed(x: np.ndarray, code: Code, grouping: Grouping) -> list[np.ndarray]:
    """Fixed-effect columns of a predictor: itself, plus its cluster mean for codes 3 and 4."""
    if code.with_mean:
        return [x, grouping.expand(grouping.means(x))]
    return [x]
