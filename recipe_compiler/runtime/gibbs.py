"""The FCS Gibbs loop, run for a batch of chains in lockstep.

The chains of a batch share every step: each update sees the target's designs
with a leading chain axis, and a batched sampler draws for all chains with
batched numpy operations. Each chain keeps its own random generator (from its
own ``SeedSequence``) and no chain's arithmetic depends on another's, so a chain
gives the same imputations in a batch of ten, alone, or in another process.

The :class:`ChainState` (current completed values, each target's designs and
each sampler's warm-start state) is the one mutable object of the package.
Everything else is read from the :class:`~.problem.Problem`. The designs are
built once and kept: after each update only the columns that hold the updated
target or a derived variable computed from it are refreshed, in place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ..compiler.methods import method
from ..data.grouping import Grouping
from ..plan import Derived
from .passive import compute, mean_grouping
from .problem import Layout, Problem
from .samplers import get_sampler
from .samplers.registry import TargetBatch, is_batched

#: Chains run in lockstep while chains x rows is at most this (above it the per-call
#: overhead that batching saves is negligible, and the designs' memory is not).
LOCKSTEP_CELLS = 1_000_000
#: Design columns of fewer cells (chains x rows) are gathered in one call.
GATHER_IN_ONE = 200_000


@dataclass
class Design:
    """One target's designs in a batch of chains (see :class:`~.samplers.TargetBatch`).

    Attributes
    ----------
    x_obs, x_mis : ndarray, shape (C, p, n_obs) and (C, p, n_mis)
        Fixed design of the observed and missing rows, column 0 the intercept;
        column ``j`` holds its variable minus ``x_offset[:, j]``.
    x_offset : ndarray, shape (C, p)
        Each column's mean at the start of the chain (0 for the intercept).
    z_obs, z_mis : ndarray or None
        The random slopes' columns, shape (C, q - 1, n_obs) and (C, q - 1, n_mis).
    """

    x_obs: np.ndarray
    x_mis: np.ndarray
    x_offset: np.ndarray
    z_obs: np.ndarray | None = None
    z_mis: np.ndarray | None = None


@dataclass
class ChainState:
    """The current state of a batch of ``C`` chains.

    Attributes
    ----------
    values : dict of str -> ndarray, shape (C, n)
        Current completed values of every plan variable.
    designs : dict of str -> Design
        Each target's designs, kept in step with ``values``.
    means : dict of (str, str) -> ndarray, shape (C, n_clusters)
        Means of the variables some design holds as means, keyed by the variable
        and the grouping factor they average over (``""``: the plan's cluster).
    samplers : dict of str -> object
        Each target's sampler state (a list with one state per chain for an
        unbatched sampler).
    """

    values: dict[str, np.ndarray]
    designs: dict[str, Design] = field(default_factory=dict)
    means: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
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


def run_batch(problem: Problem, maxit: int, seeds: list[np.random.SeedSequence],
              donors: int = 5, on_iteration: Callable[[], None] | None = None
              ) -> list[ChainResult]:
    """Run a batch of chains in lockstep: initial fill, then ``maxit`` sweeps.

    Parameters
    ----------
    problem : Problem
    maxit : int
        Number of iterations (0: the initial fill only, as mice).
    seeds : list of numpy.random.SeedSequence
        One per chain; all randomness of chain ``c`` comes from ``seeds[c]``.
    donors : int
        Donors of predictive mean matching.
    on_iteration : callable, optional
        Called after each iteration of the batch (progress reporting).

    Returns
    -------
    list of ChainResult
        In the order of ``seeds``.

    Notes
    -----
    At most :data:`LOCKSTEP_CELLS` ``// n`` chains (at least one) run in lockstep;
    larger batches run in such groups one after the other, which bounds the
    memory of the designs and changes no result. ``on_iteration`` is called
    once per chain and iteration.
    """
    size = max(LOCKSTEP_CELLS // max(problem.n, 1), 1)
    if len(seeds) > size:
        return [r for k in range(0, len(seeds), size)
                for r in run_batch(problem, maxit, seeds[k:k + size], donors, on_iteration)]
    rngs = [np.random.default_rng(s) for s in seeds]
    state = start(problem, rngs)
    targets = problem.plan.targets
    mean = np.empty((len(rngs), maxit, len(targets)))
    var = np.empty((len(rngs), maxit, len(targets)))
    for it in range(maxit):
        sweep(problem, state, rngs, donors)
        for j, t in enumerate(targets):
            cells = np.take(state.values[t], problem.layouts[t].result_rows, axis=1)
            if cells.shape[1]:
                mean[:, it, j], var[:, it, j] = cells.mean(axis=1), cells.var(axis=1)
            else:  # a plan's target that is complete in these data
                mean[:, it, j] = var[:, it, j] = np.nan
        if on_iteration is not None:
            for _ in rngs:
                on_iteration()
    return [ChainResult(imputed={t: state.values[t][c, problem.layouts[t].result_rows]
                                 for t in targets}, mean=mean[c], var=var[c])
            for c in range(len(rngs))]


def run_chain(problem: Problem, maxit: int, seed: np.random.SeedSequence,
              donors: int = 5, on_iteration: Callable[[], None] | None = None) -> ChainResult:
    """Run one chain (a batch of one; see :func:`run_batch`)."""
    return run_batch(problem, maxit, [seed], donors, on_iteration)[0]


def start(problem: Problem, rngs: list[np.random.Generator]) -> ChainState:
    """The state after the initial fill of each chain (:func:`initial_fill`), designs built."""
    state = ChainState(values=initial_fill(problem, rngs))
    for t, lay in problem.layouts.items():
        state.designs[t] = _empty_design(lay, len(rngs))
    for name in problem.readers:
        refresh(problem, state, name)  # computes the means it needs too
    for t, lay in problem.layouts.items():  # shift each column by its starting mean
        d = state.designs[t]
        rows = len(lay.rows_obs) + len(lay.rows_mis)
        d.x_offset[:] = (d.x_obs.sum(axis=2) + d.x_mis.sum(axis=2)) / max(rows, 1)
        d.x_offset[:, 0] = 0.0
        d.x_obs -= d.x_offset[:, :, None]
        d.x_mis -= d.x_offset[:, :, None]
    return state


def _empty_design(lay: Layout, chains: int) -> Design:
    p, n1, n0 = len(lay.fixed) + 1, len(lay.rows_obs), len(lay.rows_mis)
    d = Design(x_obs=np.empty((chains, p, n1)), x_mis=np.empty((chains, p, n0)),
               x_offset=np.zeros((chains, p)))
    d.x_obs[:, 0] = 1.0
    d.x_mis[:, 0] = 1.0
    if lay.scope in ("level1", "multilevel"):
        q = len(lay.random)
        d.z_obs, d.z_mis = np.empty((chains, q, n1)), np.empty((chains, q, n0))
    return d


def cluster_means(grouping: Grouping, values: np.ndarray) -> np.ndarray:
    """Per-chain cluster means, ``(C, n) -> (C, n_clusters)``; zero for empty clusters."""
    sizes = grouping.sizes.astype(float)
    inverse = np.divide(1.0, sizes, out=np.zeros_like(sizes), where=sizes > 0)
    return grouping.segment_sums(values) * inverse


def refresh(problem: Problem, state: ChainState, name: str, drawn: bool = False) -> None:
    """Copy the current values of ``name`` into every design column that holds it.

    With ``drawn`` (right after an update of target ``name``) a fixed-design
    column of its values is rewritten only at the rows the update drew
    (:attr:`~.problem.Problem.drawn`). Columns of means (over the layout's
    ``over`` grouping; every column of an aggregated layout) take the means,
    recomputed once per grouping.
    """
    values = state.values[name]
    for over in problem.averaged.get(name, ()):
        state.means[name, over] = cluster_means(problem.grouping_over(over), values)
    for t, kind, j in problem.readers.get(name, ()):
        lay, d = problem.layouts[t], state.designs[t]
        mean = kind == "mean" or lay.aggregated
        source = state.means[name, lay.over] if mean else values
        obs, mis = lay.source_rows(mean)
        if drawn and not mean and (name, t) in problem.drawn:
            pos_obs, rows_obs, pos_mis, rows_mis = problem.drawn[name, t]
            for c in range(len(values)):
                if kind == "z":
                    assert d.z_obs is not None and d.z_mis is not None
                    d.z_obs[c, j, pos_obs] = values[c, rows_obs]
                    d.z_mis[c, j, pos_mis] = values[c, rows_mis]
                else:
                    d.x_obs[c, j, pos_obs] = values[c, rows_obs] - d.x_offset[c, j]
                    d.x_mis[c, j, pos_mis] = values[c, rows_mis] - d.x_offset[c, j]
            continue
        if kind == "z":
            assert d.z_obs is not None and d.z_mis is not None
            _gather(source, obs, d.z_obs[:, j])
            _gather(source, mis, d.z_mis[:, j])
        else:
            _gather(source, obs, d.x_obs[:, j], d.x_offset[:, j])
            _gather(source, mis, d.x_mis[:, j], d.x_offset[:, j])


def _gather(source: np.ndarray, rows: np.ndarray, out: np.ndarray,
            offset: np.ndarray | None = None) -> None:
    """``out[c] = source[c, rows] - offset[c]``: in one step for small data, else chain by
    chain into contiguous rows of ``out`` (no temporary; ``numpy.take`` into a strided
    ``out`` is an order of magnitude slower)."""
    if out.size < GATHER_IN_ONE:
        if offset is None:
            out[...] = np.take(source, rows, axis=1)
        else:
            np.subtract(np.take(source, rows, axis=1), offset[:, None], out=out)
        return
    for c in range(len(source)):
        np.take(source[c], rows, out=out[c], mode="clip")
        if offset is not None and offset[c]:
            out[c] -= offset[c]


def sweep(problem: Problem, state: ChainState, rngs: list[np.random.Generator],
          donors: int) -> None:
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
        update(problem, state, name, rngs, donors)
        refresh(problem, state, name, drawn=True)
        for d in problem.descendants.get(name, ()):
            state.values[d] = derive(derived[d], state.values, problem.grouping,
                                     problem.categories, problem.groupings)
            refresh(problem, state, d)


def derive(d: Derived, values: Mapping[str, np.ndarray], grouping: Grouping,
           categories: Mapping[str, tuple[str, ...]],
           groupings: Mapping[str, Grouping] | None = None) -> np.ndarray:
    """A derived variable in every chain, ``(C, n)``.

    Cluster means (over ``grouping``, or over the grouping factor that
    ``d.detail`` names among ``groupings``), centring and products are computed
    for all chains at once, exactly as :func:`~.passive.compute` does for one
    chain; other operations go through :func:`~.passive.compute` chain by chain.
    """
    if d.op == "cm":
        over = mean_grouping(d, grouping, groupings)
        return np.take(cluster_means(over, values[d.parents[0]]), over.codes, axis=1)
    if d.op == "cwc":
        return values[d.parents[0]] - values[d.parents[1]]
    if d.op == "product":
        out = values[d.parents[0]].copy()
        for p in d.parents[1:]:
            out *= values[p]
        return out
    chains = len(next(iter(values.values())))
    return np.stack([compute(d, {k: v[c] for k, v in values.items()}, grouping, categories,
                             groupings) for c in range(chains)])


def initial_values(problem: Problem, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One chain's initial fill (:func:`initial_fill` for a batch of one)."""
    return {name: values[0] for name, values in initial_fill(problem, [rng]).items()}


def initial_fill(problem: Problem, rngs: list[np.random.Generator]) -> dict[str, np.ndarray]:
    """Each chain's initial fill by random draws from the observed values, then the
    derived variables; arrays ``(C, n)``.

    Targets updated on the data rows draw from the observed values of the same
    (innermost) cluster where it has any (else from all observed values);
    targets updated on clusters (level 2, level 3) take their cluster's observed
    value where a cluster has one, else an observed cluster's value.
    """
    plan, grouping = problem.plan, problem.grouping
    values = {name: np.repeat(col[None], len(rngs), axis=0)
              for name, col in problem.columns.items()}
    for t in plan.targets:
        obs, lay = problem.observed[t], problem.layouts[t]
        if lay.aggregated:
            values[t] = fill_level2(problem.columns[t], obs, problem.grouping_over(lay.over),
                                    rngs)
        else:
            values[t] = fill_level1(problem.columns[t], obs, grouping, rngs)
    derived = plan.derived
    for name in problem.derived_order:
        values[name] = derive(derived[name], values, grouping, problem.categories,
                              problem.groupings)
    return values


def fill_level1(y: np.ndarray, obs: np.ndarray, grouping: Grouping,
                 rngs: np.random.Generator | list[np.random.Generator]) -> np.ndarray:
    """``y`` with its missing entries drawn from the observed ones of their cluster (or of
    all clusters); ``(C, n)`` for a list of generators, else ``(n,)``."""
    g = grouping.codes
    order = np.flatnonzero(obs)[np.argsort(g[obs], kind="stable")]
    counts = grouping.count(obs)
    starts = np.cumsum(counts) - counts
    miss = np.flatnonzero(~obs)
    c = counts[g[miss]]
    out = np.repeat(y[None], 1 if isinstance(rngs, np.random.Generator) else len(rngs), axis=0)
    for k, rng in enumerate([rngs] if isinstance(rngs, np.random.Generator) else rngs):
        pick = starts[g[miss]] + np.floor(rng.random(len(miss)) * c).astype(np.intp)
        anywhere = rng.integers(0, len(order), len(miss))
        out[k, miss] = y[order[np.where(c > 0, np.minimum(pick, len(order) - 1), anywhere)]]
    return out[0] if isinstance(rngs, np.random.Generator) else out


def fill_level2(y: np.ndarray, obs: np.ndarray, grouping: Grouping,
                 rngs: np.random.Generator | list[np.random.Generator]) -> np.ndarray:
    """``y`` with each cluster's missing entries set to its observed value, or to that of
    a random observed cluster; ``(C, n)`` for a list of generators, else ``(n,)``."""
    g = grouping.codes
    seen = grouping.count(obs) > 0
    value = np.full(grouping.n, np.nan)
    value[g[obs]] = y[obs]
    donors = np.flatnonzero(seen)
    missing = np.flatnonzero(~seen)
    out = np.repeat(y[None], 1 if isinstance(rngs, np.random.Generator) else len(rngs), axis=0)
    for k, rng in enumerate([rngs] if isinstance(rngs, np.random.Generator) else rngs):
        filled = value.copy()
        filled[missing] = value[donors[rng.integers(0, len(donors), len(missing))]]
        out[k, ~obs] = filled[g[~obs]]
    return out[0] if isinstance(rngs, np.random.Generator) else out


def update(problem: Problem, state: ChainState, name: str, rngs: list[np.random.Generator],
           donors: int) -> None:
    """One visit of target ``name`` in every chain: its method's sampler draws its missing rows.

    The method's scope decides what the sampler sees (the target's
    :class:`~.problem.Layout`): for ``level2`` one row per cluster (the cluster's
    own observed value, predictors aggregated to cluster means), for ``level1``
    the rows with the predictors' cluster means (codes 3, 4) and random slopes
    (codes 2, 4), for ``single`` the rows, for ``multilevel`` the target's units
    with one random-intercept block per further grouping factor, for ``level3``
    one row per outermost cluster. A batched sampler draws for all chains at
    once; an unbatched one is called chain by chain with that chain's generator.
    """
    row = method(problem.methods[name], f"methods[{name!r}]")
    sampler = get_sampler(row.sampler, row.name)
    lay, d = problem.layouts[name], state.designs[name]
    batch = TargetBatch(name, lay.y_obs, lay.observed, d.x_obs, d.x_mis, d.x_offset, d.z_obs,
                        d.z_mis, lay.grouping, lay.g_obs, lay.g_mis,
                        len(problem.categories.get(name, ())), donors, lay.blocks)
    previous = state.samplers.get(name)
    if is_batched(row.sampler):
        new, state.samplers[name] = sampler(batch, rngs, previous)  # type: ignore[arg-type]
    else:
        states = previous if isinstance(previous, list) else [None] * len(rngs)
        drawn = [sampler(batch.chain(c), rngs[c], states[c])  # type: ignore[arg-type]
                 for c in range(len(rngs))]
        new = np.stack([draw for draw, _ in drawn]).reshape(len(rngs), -1)
        state.samplers[name] = [s for _, s in drawn]
    state.values[name][:, lay.fill_rows] = new[:, lay.fill_pos]
