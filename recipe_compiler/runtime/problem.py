"""The runtime's view of a plan and its data: arrays, masks and cluster codes.

A :class:`Problem` is built once per :func:`recipe_compiler.impute` call and
shared (read-only) by every chain; it is picklable, so chains can run in other
processes. Its rows are sorted by cluster (stably; :attr:`Problem.order` maps
them back), so that per-cluster sums run over contiguous segments, and each
target's :class:`Layout` says once which columns its designs hold and which
rows are observed.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..compiler.codes import Code
from ..compiler.graph import initial_order, visit_sequence
from ..compiler.methods import method
from ..data.codec import encode
from ..data.grouping import Grouping
from ..errors import DataError, suggest
from ..plan import Plan


@dataclass(frozen=True)
class Column:
    """One column of a target's fixed design: a variable's values, or its cluster means."""

    source: str
    mean: bool = False


@dataclass(frozen=True, eq=False)
class Layout:
    """How the Gibbs loop lays out one target's update.

    For a level-2 target the sampler's rows are the clusters (the cluster's own
    observed value, predictors as cluster means); otherwise the data rows.

    Attributes
    ----------
    scope : {"level1", "level2", "single"}
    fixed : tuple of Column
        The fixed design's columns after the intercept.
    random : tuple of str
        The random slopes' variables (level-1 scope; the random intercept is implicit).
    grouping : Grouping
        The cluster of each of the sampler's rows.
    observed : ndarray of bool
        Which of the sampler's rows are observed.
    y_obs : ndarray
        The observed values, in row order.
    rows_obs, rows_mis : ndarray of int
        The observed and the missing rows (clusters for a level-2 target).
    g_obs, g_mis : Grouping
        Their clusters.
    fill_rows, fill_pos : ndarray of int
        The data rows a draw sets and the position of their draw in ``rows_mis``
        (the missing rows; for a level-2 target, the rows of clusters without
        an observed value).
    result_rows : ndarray of int
        Every missing data row of the target, in the original row order (what a
        chain returns).
    """

    scope: str
    fixed: tuple[Column, ...]
    random: tuple[str, ...]
    grouping: Grouping
    observed: np.ndarray
    y_obs: np.ndarray
    rows_obs: np.ndarray
    rows_mis: np.ndarray
    g_obs: Grouping
    g_mis: Grouping
    fill_rows: np.ndarray
    fill_pos: np.ndarray
    result_rows: np.ndarray

    def source_rows(self, mean: bool) -> tuple[np.ndarray, np.ndarray]:
        """Positions to take from a variable's values (``mean=False``, one per data row)
        or cluster means (``mean=True``) for the observed and the missing rows."""
        if mean and self.scope != "level2":
            return self.g_obs.codes, self.g_mis.codes
        return self.rows_obs, self.rows_mis


@dataclass(frozen=True, eq=False)
class Problem:
    """Arrays of the measured plan variables, ready for the Gibbs loop.

    Attributes
    ----------
    plan : Plan
    columns : dict of str -> ndarray
        Measured plan variables as float arrays (categorical ones as codes
        0..K-1); NaN where missing.
    observed : dict of str -> ndarray of bool
        Per target, where it is observed.
    grouping : Grouping
        The cluster of every row (one cluster for single-level data).
    categories : dict of str -> tuple of str
        Labels of the categorical columns, in code order.
    methods : dict of str -> str
        Method of each target.
    predictors : dict of str -> tuple of (str, int)
        Per target, its predictors other than the cluster, with their codes.
    derived_order : tuple of str
        Every derived variable, parents first (for the initial fill).
    descendants : dict of str -> tuple of str
        Per plan variable, the derived variables computed from it, parents first:
        what is recomputed after each update of it.
    layouts : dict of str -> Layout
        Per target, its designs' columns and its observed and missing rows.
    readers : dict of str -> tuple of (str, str, int)
        Per plan variable, the design columns that hold it: ``(target, "x", j)``
        for column ``j`` of the fixed design, ``(target, "mean", j)`` for its
        cluster means there, ``(target, "z", k)`` for random slope ``k``.
    order : ndarray of int or None
        Data row of each of the problem's rows (which are sorted by cluster);
        ``None`` when the data rows were sorted already.
    drawn : dict of (str, str) -> tuple of four int arrays
        For a target ``v`` and a level-1 or single-level target ``t`` whose
        design holds ``v``'s values: the positions among ``t``'s observed rows
        where ``v`` is drawn, their data rows, and the same for ``t``'s missing
        rows (what changes in ``t``'s design when ``v`` is updated).
    token : str
        A random name of this problem (what Dask hashes instead of its arrays).
    """

    plan: Plan
    columns: dict[str, np.ndarray]
    observed: dict[str, np.ndarray]
    grouping: Grouping
    categories: dict[str, tuple[str, ...]]
    methods: dict[str, str]
    predictors: dict[str, tuple[tuple[str, int], ...]]
    derived_order: tuple[str, ...] = ()
    descendants: dict[str, tuple[str, ...]] = field(default_factory=dict)
    layouts: dict[str, Layout] = field(default_factory=dict)
    readers: dict[str, tuple[tuple[str, str, int], ...]] = field(default_factory=dict)
    order: np.ndarray | None = None
    drawn: dict[tuple[str, str], tuple[np.ndarray, ...]] = field(default_factory=dict)

    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def n(self) -> int:
        """Number of rows."""
        return self.grouping.n_rows

    def __dask_tokenize__(self) -> tuple[str, str]:
        """Dask's name for this problem: its ``token``, so that submitting a task does not
        serialise the whole problem once more to hash it."""
        return ("recipe_compiler.Problem", self.token)


def make_problem(plan: Plan, data: pd.DataFrame) -> Problem:
    """Check ``data`` against ``plan`` and convert the plan's columns to arrays.

    Raises
    ------
    DataError
        A plan column missing from the data, or a target with fewer than two
        observed values.
    """
    measured = [v for v in plan.variables if v.role in ("target", "covariate")]
    for v in measured:
        if v.name not in data.columns:
            raise DataError(f"the plan uses column '{v.name}', which is not in the data; "
                            f"{suggest(v.name, map(str, data.columns))}")
        if v.role == "covariate" and data[v.name].isna().any():
            raise DataError(f"the plan uses '{v.name}' as a complete covariate, but it has "
                            f"{int(data[v.name].isna().sum())} missing values in these data; "
                            "compile the plan again on these data so that it is imputed")
    grouping = (Grouping.from_column(data, plan.cluster) if plan.cluster is not None
                else Grouping.single(len(data)))
    order = None if grouping.segments is not None else np.argsort(grouping.codes, kind="stable")
    if order is not None:
        grouping = dataclasses.replace(grouping, codes=grouping.codes[order])
    columns: dict[str, np.ndarray] = {}
    categories: dict[str, tuple[str, ...]] = {}
    coded = categorical_columns(plan) | {t for t, m in plan.method_table if method(m).codes}
    for v in measured:
        x = data[v.name]
        if v.name in coded or not pd.api.types.is_numeric_dtype(x):
            columns[v.name], categories[v.name] = encode(x)
        else:
            columns[v.name] = x.to_numpy(dtype=float, na_value=np.nan)
        if order is not None:
            columns[v.name] = columns[v.name][order]
    for d in plan.derived_defs:
        if d.op == "dummy" and d.detail not in categories.get(d.parents[0], ())[1:]:
            levels = ", ".join(repr(c) for c in categories.get(d.parents[0], ()))
            raise DataError(f"the plan's dummy column '{d.name}' needs the level {d.detail!r} of "
                            f"'{d.parents[0]}' (not as its first level), but the data have "
                            f"the levels {levels}; compile the plan again on these data")
    methods = dict(plan.method_table)
    observed = {}
    for t in plan.targets:
        obs = ~np.isnan(columns[t])
        if obs.sum() < 2:
            raise DataError(f"target '{t}' has {int(obs.sum())} observed value(s); at least 2 "
                            "are needed to impute it (drop it or supply more data)")
        if method(methods[t]).scope == "level2":
            seen = grouping.count(obs) > 0
            if seen.sum() < 2:
                raise DataError(f"level-2 target '{t}' is observed in {int(seen.sum())} "
                                "cluster(s); at least 2 are needed to impute it")
            if not grouping.constant_within(columns[t], obs):
                raise DataError(f"the plan imputes '{t}' as a level-2 variable ({methods[t]}), "
                                f"but it varies within a cluster of '{plan.cluster}' in these "
                                "data; compile the plan again on these data")
        observed[t] = obs
    predictors = {t: tuple((p, c) for p, c in plan.predictors(t) if c != -2)
                  for t in plan.targets}
    parents = {d.name: d.parents for d in plan.derived_defs}
    layouts = {t: layout(method(methods[t]).scope, predictors[t], columns[t], observed[t],
                         grouping, order) for t in plan.targets}
    return Problem(plan=plan, columns=columns, observed=observed, grouping=grouping,
                   categories=categories, methods=methods,
                   predictors=predictors, derived_order=initial_order(parents, list(parents)),
                   descendants=derived_descendants(plan), layouts=layouts,
                   readers=design_readers(layouts), order=order,
                   drawn=drawn_rows(layouts))


def layout(scope: str, predictors: tuple[tuple[str, int], ...], y: np.ndarray,
           observed: np.ndarray, grouping: Grouping, order: np.ndarray | None) -> Layout:
    """The :class:`Layout` of a target with method scope ``scope``.

    Level-1 targets get each predictor and, for codes 3 and 4, its cluster mean,
    plus random slopes for codes 2 and 4; level-2 targets the cluster means of
    their predictors on one row per cluster; single-level targets the predictors.
    """
    if order is None:
        result_rows = np.flatnonzero(~observed)
    else:
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        result_rows = inverse[np.flatnonzero(~observed[inverse])]
    if scope == "level2":
        seen = grouping.count(observed) > 0
        rows = np.flatnonzero(observed)
        value = np.zeros(grouping.n)
        value[grouping.codes[rows]] = y[rows]  # the cluster's own observed value, exactly
        clusters = Grouping(codes=np.arange(grouping.n), n=grouping.n)
        rows_obs, rows_mis = np.flatnonzero(seen), np.flatnonzero(~seen)
        position = np.zeros(grouping.n, dtype=np.intp)
        position[rows_mis] = np.arange(len(rows_mis))
        fill_rows = np.flatnonzero(~seen[grouping.codes])
        return Layout(scope=scope, fixed=tuple(Column(p, True) for p, _ in predictors),
                      random=(), grouping=clusters, observed=seen, y_obs=value[rows_obs],
                      rows_obs=rows_obs, rows_mis=rows_mis, g_obs=clusters.subset(rows_obs),
                      g_mis=clusters.subset(rows_mis), fill_rows=fill_rows,
                      fill_pos=position[grouping.codes[fill_rows]], result_rows=result_rows)
    fixed = [Column(p) for p, _ in predictors]
    random: tuple[str, ...] = ()
    if scope == "level1":
        fixed = [c for p, code in predictors
                 for c in ((Column(p), Column(p, True)) if Code(code).with_mean else (Column(p),))]
        random = tuple(p for p, code in predictors if Code(code).random)
    rows_obs, rows_mis = np.flatnonzero(observed), np.flatnonzero(~observed)
    return Layout(scope=scope, fixed=tuple(fixed), random=random, grouping=grouping,
                  observed=observed, y_obs=y[rows_obs], rows_obs=rows_obs, rows_mis=rows_mis,
                  g_obs=grouping.subset(rows_obs), g_mis=grouping.subset(rows_mis),
                  fill_rows=rows_mis, fill_pos=np.arange(len(rows_mis)),
                  result_rows=result_rows)


def design_readers(layouts: dict[str, Layout]) -> dict[str, tuple[tuple[str, str, int], ...]]:
    """Per variable, the design columns that hold it (see :attr:`Problem.readers`)."""
    readers: dict[str, list[tuple[str, str, int]]] = {}
    for t, lay in layouts.items():
        for j, col in enumerate(lay.fixed, start=1):
            readers.setdefault(col.source, []).append((t, "mean" if col.mean else "x", j))
        for k, name in enumerate(lay.random):
            readers.setdefault(name, []).append((t, "z", k))
    return {v: tuple(r) for v, r in readers.items()}


def categorical_columns(plan: Plan) -> frozenset[str]:
    """The measured columns the plan treats as categorical (the schema's decision).

    Those with dummy columns, those with three or more categories, and those
    declared with the ``categorical`` option: the runtime holds them as codes,
    and :meth:`~recipe_compiler.imputations.Imputations.fit` dummy-codes them.
    """
    dummy_parents = {d.parents[0] for d in plan.derived_defs if d.op == "dummy"}
    typed = {v.name for v in plan.variables if v.role in ("target", "covariate")
             and v.kind == "categorical"}
    return frozenset(dummy_parents | typed | set(plan.options.categorical))


def derived_descendants(plan: Plan) -> dict[str, tuple[str, ...]]:
    """Per plan variable, the derived variables computed from it, in a parents-first order."""
    parents = {d.name: d.parents for d in plan.derived_defs}
    sources = {p for ps in parents.values() for p in ps}
    return {name: visit_sequence([name], parents, list(parents))[1:] for name in sources}


def drawn_rows(layouts: dict[str, Layout]) -> dict[tuple[str, str], tuple[np.ndarray, ...]]:
    """Where each target's draws land in the other targets' designs (:attr:`Problem.drawn`)."""
    out: dict[tuple[str, str], tuple[np.ndarray, ...]] = {}
    for v, source in layouts.items():
        readers = [t for t, lay in layouts.items() if lay.scope != "level2"
                   and any(c.source == v and not c.mean for c in lay.fixed)]
        if not readers:
            continue
        drawn = np.zeros(len(layouts[readers[0]].observed), dtype=bool)  # over the data rows
        drawn[source.fill_rows] = True
        for t in readers:
            lay = layouts[t]
            pos_obs = np.flatnonzero(drawn[lay.rows_obs])
            pos_mis = np.flatnonzero(drawn[lay.rows_mis])
            out[v, t] = (pos_obs, lay.rows_obs[pos_obs], pos_mis, lay.rows_mis[pos_mis])
    return out
