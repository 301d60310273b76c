"""The runtime's view of a plan and its data: arrays, masks and cluster codes.

A :class:`Problem` is built once per :func:`recipe_compiler.impute` call and
shared (read-only) by every chain; it is picklable, so chains can run in other
processes. Its rows are sorted by the (innermost) cluster (stably;
:attr:`Problem.order` maps them back), so that per-cluster sums run over
contiguous segments, and each target's :class:`Layout` says once which columns
its designs hold and which rows are observed.

The sampler's rows of a target are its *units*: the data rows (a level-1
target), or the clusters of one grouping factor (a level-2 target: one row per
cluster, its observed value; a level-3 target of a nested plan: one row per
outermost cluster), whose predictors are then aggregated to their means over
the unit. With several grouping factors a ``multilevel`` target gets a random
intercept for each grouping factor of code -2 above its units: the first of
them (in ``Plan.groupings`` order) is the sampler's grouping, with the random
slopes, the others are the extra blocks of
:attr:`~.samplers.registry.TargetBatch.blocks`.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..compiler.codes import Code
from ..compiler.graph import initial_order, visit_sequence
from ..compiler.methods import method, names
from ..data.codec import encode
from ..data.grouping import Grouping, distinct_per_cluster
from ..data.levels import nested_in
from ..data.schema import describe_clusters, require_columns
from ..errors import DataError, PlanError
from ..plan import Plan


@dataclass(frozen=True)
class Column:
    """One column of a target's fixed design: a variable's values, or its means over the
    layout's ``over`` grouping."""

    source: str
    mean: bool = False


@dataclass(frozen=True, eq=False)
class Layout:
    """How the Gibbs loop lays out one target's update.

    For a target whose units are clusters (``aggregated``: a level-2 or level-3
    target) the sampler's rows are the clusters of the ``over`` grouping (the
    cluster's own observed value, predictors as their means over the cluster);
    otherwise the data rows.

    Attributes
    ----------
    scope : {"level1", "level2", "single", "multilevel", "level3"}
    fixed : tuple of Column
        The fixed design's columns after the intercept.
    random : tuple of str
        The random slopes' variables (the random intercept is implicit).
    grouping : Grouping
        The cluster of each of the sampler's rows (for a level-2 or level-3 target
        without a random part: each row its own cluster).
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
    over : str
        The grouping factor whose means the ``mean`` columns hold and, when
        ``aggregated``, whose clusters are the sampler's rows (``""``: the plan's
        cluster, the innermost grouping).
    aggregated : bool
        The sampler's rows are the clusters of ``over``; every column holds means.
    mean_obs, mean_mis : ndarray of int or None
        For data-row layouts, the cluster of ``over`` of each observed and missing
        row (where a ``mean`` column takes its values); ``None`` when aggregated.
    blocks : tuple of (Grouping, Grouping)
        Extra random-intercept blocks (``multilevel`` scope): per further grouping
        factor of code -2, the clusters of the observed and of the missing rows.
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
    over: str = ""
    aggregated: bool = False
    mean_obs: np.ndarray | None = None
    mean_mis: np.ndarray | None = None
    blocks: tuple[tuple[Grouping, Grouping], ...] = ()

    def source_rows(self, mean: bool) -> tuple[np.ndarray, np.ndarray]:
        """Positions to take from a variable's values (``mean=False``, one per data row)
        or its means over ``over`` (``mean=True``) for the observed and the missing rows."""
        if mean and self.mean_obs is not None and self.mean_mis is not None:
            return self.mean_obs, self.mean_mis
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
        The (innermost) cluster of every row (one cluster for single-level data).
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
        means over the target's ``Layout.over`` grouping there, ``(target, "z", k)``
        for random slope ``k`` (which holds means too when the layout is aggregated).
    order : ndarray of int or None
        Data row of each of the problem's rows (which are sorted by cluster);
        ``None`` when the data rows were sorted already.
    drawn : dict of (str, str) -> tuple of four int arrays
        For a target ``v`` and a level-1 or single-level target ``t`` whose
        design holds ``v``'s values: the positions among ``t``'s observed rows
        where ``v`` is drawn, their data rows, and the same for ``t``'s missing
        rows (what changes in ``t``'s design when ``v`` is updated).
    groupings : dict of str -> Grouping
        Every grouping factor of the plan by name (``Plan.groupings``), over the
        problem's rows; empty for single-level data.
    averaged : dict of str -> tuple of str
        Per plan variable, the grouping factors over which some design holds its
        means (``""``: the plan's cluster), each once, in the order of its readers:
        the means the Gibbs loop recomputes after each change of the variable.
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
    groupings: dict[str, Grouping] = field(default_factory=dict)
    averaged: dict[str, tuple[str, ...]] = field(default_factory=dict)
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def n(self) -> int:
        """Number of rows."""
        return self.grouping.n_rows

    def grouping_over(self, name: str) -> Grouping:
        """The grouping factor called ``name`` (``""``: the plan's cluster)."""
        return self.grouping if name in ("", self.grouping.name) else self.groupings[name]

    def __dask_tokenize__(self) -> tuple[str, str]:
        """Dask's name for this problem: its ``token``, so that submitting a task does not
        serialise the whole problem once more to hash it."""
        return ("recipe_compiler.Problem", self.token)


def make_problem(plan: Plan, data: pd.DataFrame) -> Problem:
    """Check ``data`` against ``plan`` and convert the plan's columns to arrays.

    Raises
    ------
    DataError
        A plan column missing from the data, a target with fewer than two
        observed values (clusters, for a level-2 or level-3 target), or a
        level-2 or level-3 target that varies within its clusters.
    PlanError
        A ``multilevel`` or ``level3`` target of a plan without the grouping
        factors it needs.
    """
    measured = [v for v in plan.variables if v.role in ("target", "covariate")]
    require_columns(data, [v.name for v in measured], "column '{}' of the plan")
    for v in measured:
        if v.role == "covariate" and data[v.name].isna().any():
            raise DataError(f"the plan uses '{v.name}' as a complete covariate, but it has "
                            f"{int(data[v.name].isna().sum())} missing values in these data; "
                            "compile the plan again on these data so that it is imputed")
    grouping = (Grouping.from_column(data, plan.cluster) if plan.cluster is not None
                else Grouping.single(len(data)))
    order = None if grouping.segments is not None else np.argsort(grouping.codes, kind="stable")
    groupings = {name: Grouping.from_column(data, name) for name in plan.groupings[1:]}
    if order is not None:
        grouping = dataclasses.replace(grouping, codes=grouping.codes[order])
        groupings = {name: dataclasses.replace(g, codes=g.codes[order])
                     for name, g in groupings.items()}
    if plan.cluster is not None:
        groupings = {plan.cluster: grouping, **groupings}
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
    predictors = {t: tuple((p, c) for p, c in plan.predictors(t) if c != -2)
                  for t in plan.targets}
    observed = {}
    layouts = {}
    for t in plan.targets:
        obs = ~np.isnan(columns[t])
        if obs.sum() < 2:
            raise DataError(f"target '{t}' has {int(obs.sum())} observed value(s); at least 2 "
                            "are needed to impute it (drop it or supply more data)")
        scope = method(methods[t]).scope
        over = units_of(plan, t, scope)
        if over is not None:
            units = groupings[over] if over else grouping
            level = 3 if scope == "level3" else 2
            seen = units.count(obs) > 0
            if seen.sum() < 2:
                raise DataError(f"level-{level} target '{t}' is observed in {int(seen.sum())} "
                                "cluster(s); at least 2 are needed to impute it")
            if not units.constant_within(columns[t], obs):
                distinct = distinct_per_cluster(pd.Series(columns[t]), obs, units)
                where = describe_clusters(np.flatnonzero(distinct > 1), distinct, obs, units)
                raise DataError(f"the plan imputes '{t}' as a level-{level} variable "
                                f"({methods[t]}), but it varies within {where} in these "
                                "data; correct those values, or compile the plan again on "
                                "these data")
        observed[t] = obs
        if scope in ("multilevel", "level3"):
            clusters = {p for p, c in plan.predictors(t) if c == -2}
            randoms = tuple(g for g in plan.groupings if g in clusters)
            layouts[t] = multilevel_layout(t, scope, over, predictors[t], randoms, columns[t],
                                           obs, groupings, order)
        else:
            layouts[t] = layout(scope, predictors[t], columns[t], obs, grouping, order)
    parents = {d.name: d.parents for d in plan.derived_defs}
    readers = design_readers(layouts)
    return Problem(plan=plan, columns=columns, observed=observed, grouping=grouping,
                   categories=categories, methods=methods, predictors=predictors,
                   derived_order=initial_order(parents, list(parents)),
                   descendants=derived_descendants(plan), layouts=layouts,
                   readers=readers, averaged=averaged_over(layouts, readers), order=order,
                   drawn=drawn_rows(layouts), groupings=groupings)


def units_of(plan: Plan, target: str, scope: str) -> str | None:
    """The grouping factor whose clusters are the sampler's rows of ``target`` (``""``:
    the plan's cluster), or ``None`` for the data rows.

    ``level2`` targets and ``multilevel`` targets above level 1: the plan's
    cluster; ``level3`` targets: the outermost grouping factor.

    Raises
    ------
    PlanError
        A ``multilevel`` or ``level3`` target in a plan without clusters.
    """
    if scope in ("multilevel", "level3") and not plan.groupings:
        raise PlanError(f"the plan imputes '{target}' with {dict(plan.method_table)[target]}, "
                        "which needs grouping factors, but the plan has none; use a "
                        f"method without a random part ({', '.join(names('single'))})")
    if scope == "level3" and plan.groupings[-1] != plan.cluster:
        return plan.groupings[-1]
    if scope in ("level2", "level3") or (scope == "multilevel"
                                          and plan.variable(target).level > 1):
        return ""
    return None


def _result_rows(observed: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    """The missing data rows, in the original row order."""
    if order is None:
        return np.flatnonzero(~observed)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return inverse[np.flatnonzero(~observed[inverse])]


def _row_units(y: np.ndarray, observed: np.ndarray, units: Grouping | None
               ) -> tuple[np.ndarray, ...]:
    """The sampler's rows: ``(observed, y_obs, rows_obs, rows_mis, fill_rows, fill_pos)``.

    ``units=None``: the data rows. Else the clusters of ``units``: whether each
    is observed, their own observed values, the observed and missing clusters,
    and the data rows a draw sets (those of the missing clusters) with the
    position of their cluster's draw.
    """
    if units is None:
        rows_obs, rows_mis = np.flatnonzero(observed), np.flatnonzero(~observed)
        return (observed, y[rows_obs], rows_obs, rows_mis, rows_mis,
                np.arange(len(rows_mis)))
    seen = units.count(observed) > 0
    rows = np.flatnonzero(observed)
    value = np.zeros(units.n)
    value[units.codes[rows]] = y[rows]  # the cluster's own observed value, exactly
    rows_obs, rows_mis = np.flatnonzero(seen), np.flatnonzero(~seen)
    position = np.zeros(units.n, dtype=np.intp)
    position[rows_mis] = np.arange(len(rows_mis))
    fill_rows = np.flatnonzero(~seen[units.codes])
    return seen, value[rows_obs], rows_obs, rows_mis, fill_rows, position[units.codes[fill_rows]]


def _fixed_level1(predictors: tuple[tuple[str, int], ...]) -> tuple[Column, ...]:
    """Each predictor and, for codes 3 and 4, its cluster mean."""
    return tuple(c for p, code in predictors
                 for c in ((Column(p), Column(p, True)) if Code(code).with_mean else (Column(p),)))


def _layout(scope: str, fixed: tuple[Column, ...], random: tuple[str, ...], main: Grouping,
            units: Grouping | None, over: str, inner: Grouping, y: np.ndarray,
            observed: np.ndarray, order: np.ndarray | None,
            blocks: tuple[Grouping, ...] = ()) -> Layout:
    """A :class:`Layout` on the rows of ``units`` (named ``over``; ``None``: the data rows)
    with the sampler's grouping ``main`` and extra blocks ``blocks`` over the same rows;
    ``mean`` columns of data-row layouts average over ``inner``."""
    seen, y_obs, rows_obs, rows_mis, fill_rows, fill_pos = _row_units(y, observed, units)
    aggregated = units is not None
    return Layout(scope=scope, fixed=fixed, random=random, grouping=main, observed=seen,
                  y_obs=y_obs, rows_obs=rows_obs, rows_mis=rows_mis,
                  g_obs=main.subset(rows_obs), g_mis=main.subset(rows_mis),
                  fill_rows=fill_rows, fill_pos=fill_pos,
                  result_rows=_result_rows(observed, order), over=over, aggregated=aggregated,
                  mean_obs=None if aggregated else inner.codes[rows_obs],
                  mean_mis=None if aggregated else inner.codes[rows_mis],
                  blocks=tuple((g.subset(rows_obs), g.subset(rows_mis)) for g in blocks))


def layout(scope: str, predictors: tuple[tuple[str, int], ...], y: np.ndarray,
           observed: np.ndarray, grouping: Grouping, order: np.ndarray | None) -> Layout:
    """The :class:`Layout` of a target with method scope ``scope`` (one grouping factor).

    Level-1 targets get each predictor and, for codes 3 and 4, its cluster mean,
    plus random slopes for codes 2 and 4; level-2 targets the cluster means of
    their predictors on one row per cluster; single-level targets the predictors.
    """
    if scope == "level2":
        clusters = Grouping(codes=np.arange(grouping.n), n=grouping.n)
        return _layout(scope, tuple(Column(p, True) for p, _ in predictors), (), clusters,
                       grouping, "", grouping, y, observed, order)
    if scope == "level1":
        return _layout(scope, _fixed_level1(predictors),
                       tuple(p for p, code in predictors if Code(code).random), grouping,
                       None, "", grouping, y, observed, order)
    return _layout(scope, tuple(Column(p) for p, _ in predictors), (), grouping, None, "",
                   grouping, y, observed, order)


def multilevel_layout(target: str, scope: str, over: str | None,
                      predictors: tuple[tuple[str, int], ...], randoms: tuple[str, ...],
                      y: np.ndarray, observed: np.ndarray, groupings: dict[str, Grouping],
                      order: np.ndarray | None) -> Layout:
    """The :class:`Layout` of a ``multilevel`` or ``level3`` target (several grouping factors).

    Parameters
    ----------
    target, scope : str
    over : str or None
        The grouping whose clusters are the units (:func:`units_of`); ``None``: the rows.
    predictors : tuple of (str, int)
        The predictors other than the grouping factors, with their codes.
    randoms : tuple of str
        The grouping factors of code -2, in ``Plan.groupings`` order: random
        intercepts over the units (the units' own grouping factor is skipped),
        the first with the random slopes (codes 2, 4), the others as ``blocks``;
        a ``level3`` target has no random part.
    y, observed : ndarray
    groupings : dict of str -> Grouping
        Every grouping factor over the problem's rows, the plan's cluster first.
    order : ndarray or None

    Raises
    ------
    PlanError
        A ``multilevel`` target without a grouping factor of code -2 above its units.
    DataError
        Such a grouping factor that is not constant within the units (not nested).
    """
    inner = next(iter(groupings.values()))
    units = None if over is None else groupings[over] if over else inner
    if scope == "level3":
        assert units is not None
        clusters = Grouping(codes=np.arange(units.n), n=units.n)
        return _layout(scope, tuple(Column(p, True) for p, _ in predictors), (), clusters,
                       units, over or "", inner, y, observed, order)
    if units is None:
        fixed = _fixed_level1(predictors)
        main_blocks = [groupings[name] for name in randoms]
    else:
        fixed = tuple(Column(p, True) for p, _ in predictors)
        main_blocks = [_on_units(target, groupings[name], units) for name in randoms
                       if name != units.name]
    if not main_blocks:
        raise PlanError(f"the plan imputes '{target}' with a multilevel method but gives it no "
                        "grouping factor (code -2) above its units; give it one in the "
                        "predictor matrix")
    random = tuple(p for p, code in predictors if Code(code).random)
    return _layout(scope, fixed, random, main_blocks[0], units, over or "", inner, y,
                   observed, order, tuple(main_blocks[1:]))


def _on_units(target: str, g: Grouping, units: Grouping) -> Grouping:
    """The clusters of ``g`` of each cluster of ``units`` (``g`` constant within them)."""
    if not nested_in(units, g):
        raise DataError(f"the plan gives '{target}' a random intercept over '{g.name}', but "
                        f"the clusters of '{units.name}' are not nested in those of "
                        f"'{g.name}' in these data; compile the plan again on these data")
    codes = np.zeros(units.n, dtype=np.intp)
    codes[units.codes] = g.codes
    return Grouping(codes=codes, n=g.n, name=g.name, labels=g.labels)


def averaged_over(layouts: dict[str, Layout], readers: dict[str, tuple[tuple[str, str, int], ...]]
                  ) -> dict[str, tuple[str, ...]]:
    """Per variable, the grouping factors its means are taken over (:attr:`Problem.averaged`)."""
    out = {}
    for name, reads in readers.items():
        overs = [layouts[t].over for t, kind, _ in reads if kind == "mean" or layouts[t].aggregated]
        if overs:
            out[name] = tuple(dict.fromkeys(overs))
    return out


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
        readers = [t for t, lay in layouts.items() if not lay.aggregated
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
