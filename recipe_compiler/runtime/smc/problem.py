"""The SMC runtime's view of a :class:`~recipe_compiler.plan.ModelPlan` and its data.

An :class:`SmcProblem` is built once per :func:`recipe_compiler.impute` call and
shared read-only by every chain (it is picklable): the plan's columns as float
arrays (category codes for categorical columns), the models' resolved designs,
and for every incomplete variable the :class:`Batch` es of cells its sampler
updates together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...data.grouping import Grouping
from ...data.schema import categorical, require_columns
from ...errors import DataError, PlanError
from ...plan.smc import DrawKind, ModelPlan
from ..gibbs import cluster_means
from .normal import Split, make_split
from .outer import Outer, make_outer
from .terms import Frame, ModelDesign, model_design

__all__ = ["Batch", "SmcProblem", "TargetInfo", "make_smc_problem"]


@dataclass(frozen=True, eq=False)
class Batch:
    """Missing cells of one variable that are drawn together, independently of each other.

    Attributes
    ----------
    cells : ndarray of int
        Level 1: the rows of the cells; level 2: the clusters.
    clusters : ndarray of int
        The cluster of each cell (at most one cell per cluster when ``summed``).
    rows : ndarray of int
        The rows whose level-1 log densities change with the cells.
    summed : bool
        Whether a cell's log density is the sum over its cluster's rows (a
        level-2 variable, or a level-1 one whose cluster mean is used): else
        ``rows`` are the cells themselves.
    slot : ndarray of int
        For each of ``rows``, the position in ``cells`` of its cell (the cell of
        its cluster when ``summed``).
    cluster_slot : ndarray of int or None
        Level-3 variables (cells are outer clusters): for each of ``clusters``
        (then every inner cluster within the cells), the position of its cell.
    """

    cells: np.ndarray
    clusters: np.ndarray
    rows: np.ndarray
    summed: bool
    slot: np.ndarray
    cluster_slot: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class TargetInfo:
    """How one incomplete variable is drawn.

    Attributes
    ----------
    name : str
    how : DrawKind
    level : int
    row_models, cluster_models, top_models : tuple of int
        Positions in :attr:`SmcProblem.designs` of the level-1, level-2 and
        level-3 models that contain the variable.
    batches : tuple of Batch
    step : float
        Scale of the variable (sd of its observed values): the spacing of the
        three points of the exact normal draw, the first Metropolis proposal sd.
    """

    name: str
    how: DrawKind
    level: int
    row_models: tuple[int, ...]
    cluster_models: tuple[int, ...]
    batches: tuple[Batch, ...]
    step: float
    top_models: tuple[int, ...] = ()


@dataclass(frozen=True, eq=False)
class SmcProblem:
    """Arrays of the plan's columns, designs and draw batches.

    Attributes
    ----------
    plan : ModelPlan
    columns : dict of str -> ndarray
        Measured columns as floats (categorical ones as codes 0..K-1); NaN where missing.
    observed : dict of str -> ndarray of bool
        Per incomplete variable, where it is observed.
    grouping : Grouping
    categories : dict of str -> tuple of str
        Labels of the coded columns, in code order.
    designs : tuple of ModelDesign
        One per model of the plan, in plan order.
    targets : tuple of TargetInfo
        In sweep order: the plan's, with the variables that are in no model but
        their own first (a no-op for compiled plans).
    binary : dict of str -> (float, float)
        The two values of each logit-family variable (codes 0, 1 or its numbers).
    fit_rows : tuple of (ndarray of bool or None)
        Per model, the rows (clusters, for a level-2 model) its parameters are
        drawn from: where its dependent is observed, if the dependent is in no
        other model (then its missing values are integrated out of the update
        and drawn right after it, a blocked Gibbs step that mixes much faster
        than conditioning on them, e.g. in clusters whose outcome is all
        missing); else ``None``, all rows.
    splits : tuple of (Split or None)
        Per level-1 normal model, its fit rows split into fixed and moving ones
        (:mod:`.normal`); ``None`` for the other models.
    outer : Outer or None
        Three-level plans: the outer grouping factor.
    """

    plan: ModelPlan
    columns: dict[str, np.ndarray]
    observed: dict[str, np.ndarray]
    grouping: Grouping
    categories: dict[str, tuple[str, ...]]
    designs: tuple[ModelDesign, ...]
    targets: tuple[TargetInfo, ...]
    binary: dict[str, tuple[float, float]]
    fit_rows: tuple[np.ndarray | None, ...]
    splits: tuple[Split | None, ...]
    outer: Outer | None = None

    @property
    def level2(self) -> frozenset[str]:
        """The level-2 columns."""
        return frozenset(v.name for v in self.plan.variables
                         if v.level == 2 and v.role != "cluster")

    @property
    def level3(self) -> frozenset[str]:
        """The level-3 columns (three-level plans)."""
        return frozenset(v.name for v in self.plan.variables
                         if v.level == 3 and v.role != "cluster")


def make_smc_problem(plan: ModelPlan, data: pd.DataFrame) -> SmcProblem:
    """Check ``data`` against ``plan`` and build the arrays, designs and batches.

    Raises
    ------
    DataError
        A plan column missing from the data, a complete covariate with missing
        values, a level-2 variable that varies within a cluster, an integer
        column that a normal model would fill with fractions.
    PlanError
        A model without an intercept.
    """
    if plan.cluster is None:
        raise DataError("a model-based plan needs a cluster variable")
    for m in plan.models:
        if not m.intercept:
            raise PlanError(f"the model of '{m.dependent}' ({m.formula(plan.cluster)}) has no "
                            "intercept, which the SMC sampler needs; drop the '0 +' or '- 1'")
    measured = [v for v in plan.variables if v.role != "cluster"]
    require_columns(data, [v.name for v in measured], "column '{}' of the plan")
    grouping = Grouping.from_column(data, plan.cluster)
    outer = None if plan.outer is None else make_outer(data, plan.outer, grouping)
    coded = {f.column for m in plan.models for t in m.terms for f in t.factors
             if f.kind == "cat"}
    families = {m.dependent: m.family for m in plan.models}
    columns: dict[str, np.ndarray] = {}
    categories: dict[str, tuple[str, ...]] = {}
    for v in measured:
        x = data[v.name]
        if v.role == "covariate" and x.isna().any():
            raise DataError(f"the plan uses '{v.name}' as a complete variable, but it has "
                            f"{int(x.isna().sum())} missing values in these data; compile the "
                            "plan again on these data so that it is imputed")
        if v.name in coded or v.kind == "categorical" or not pd.api.types.is_numeric_dtype(x) \
                or pd.api.types.is_bool_dtype(x):
            cat = categorical(x)
            categories[v.name] = tuple(str(c) for c in cat.cat.categories)
            codes = cat.cat.codes.to_numpy().astype(float)
            codes[codes < 0] = np.nan
            columns[v.name] = codes
        else:
            if v.role == "target" and families.get(v.name) == "normal" and \
                    pd.api.types.is_integer_dtype(x):
                raise DataError(f"'{v.name}' has the integer dtype {x.dtype}, but its model is "
                                "normal and imputes fractional values; convert it to float "
                                "first")
            columns[v.name] = x.to_numpy(dtype=float, na_value=np.nan)
    observed = {t: ~np.isnan(columns[t]) for t in plan.targets}
    for name in plan.targets:
        level = plan.variable(name).level
        by = grouping if level == 2 or outer is None else outer.rows
        if level >= 2 and not by.constant_within(data[name], observed[name]):
            raise DataError(f"the plan imputes '{name}' as a level-{level} variable, but it "
                            f"varies within a cluster of '{by.name}' in these data; compile "
                            "the plan again on these data")
    binary = {name: _two_values(name, columns[name], name in categories)
              for name, family in families.items() if family == "logit"}
    for name, family in families.items():
        if family == "multinomial":
            _check_categories(name, columns[name], categories.get(name, ()))
    designs = tuple(model_design(m, categories) for m in plan.models)
    order = sorted(plan.draw_table, key=lambda d: not plan.only_in_own_model(d.variable))
    targets = tuple(_target(plan, d.variable, d.how, columns[d.variable], observed[d.variable],
                            designs, grouping, outer) for d in order)
    fit_rows = tuple(_fit_rows(plan, d, observed, grouping, outer) for d in designs)
    one = Frame({k: x[None] for k, x in columns.items()},
                {k: cluster_means(grouping, x[None]) for k, x in columns.items()},
                grouping.codes, grouping.n_rows, 1)
    splits = tuple(None if d.level >= 2 or d.dependent in binary or d.n_categories else
                   make_split(d, one, np.ones(grouping.n_rows, dtype=bool) if fit is None else fit,
                              _moving(d, observed, grouping), grouping)
                   for d, fit in zip(designs, fit_rows, strict=True))
    return SmcProblem(plan=plan, columns=columns, observed=observed, grouping=grouping,
                      categories=categories, designs=designs, targets=targets, binary=binary,
                      fit_rows=fit_rows, splits=splits, outer=outer)


def _moving(design: ModelDesign, observed: dict[str, np.ndarray],
            grouping: Grouping) -> np.ndarray:
    """Rows whose design or dependent holds an imputed value: a missing cell, or the
    cluster mean of a column with a missing cell in that cluster."""
    missing = {name: ~seen for name, seen in observed.items()}
    rows = missing.get(design.dependent, np.zeros(grouping.n_rows, dtype=bool)).copy()
    for a in (a for col in (*design.fixed, *design.random) for a in col):
        for name in (a.columns if a.kind == "expr" else (a.column,)):
            if name not in missing:
                continue
            rows |= missing[name]
            if a.kind in ("cm", "cwc"):
                rows |= (grouping.count(missing[name]) > 0)[grouping.codes]
    return rows


def _fit_rows(plan: ModelPlan, design: ModelDesign, observed: dict[str, np.ndarray],
              grouping: Grouping, outer: Outer | None) -> np.ndarray | None:
    """Rows a model is fitted on: see :attr:`SmcProblem.fit_rows`."""
    name = design.dependent
    if name not in observed or not plan.only_in_own_model(name):
        return None
    if design.level == 3 and outer is not None:
        return outer.rows.count(observed[name]) > 0
    return observed[name] if design.level == 1 else grouping.count(observed[name]) > 0


def _two_values(name: str, x: np.ndarray, coded: bool) -> tuple[float, float]:
    values = (0.0, 1.0) if coded else tuple(float(v) for v in np.unique(x[~np.isnan(x)]))
    if len(values) != 2:
        raise DataError(f"'{name}' has a logit model but takes {len(values)} distinct values in "
                        "these data; a logit model needs exactly two")
    return values[0], values[1]


def _check_categories(name: str, x: np.ndarray, labels: tuple[str, ...]) -> None:
    """A multinomial model needs a coded column with every category observed."""
    if len(labels) < 3:
        raise DataError(f"'{name}' has a multinomial model but {len(labels)} categories in "
                        "these data (it must be categorical with at least 3); compile the plan "
                        "again on these data")
    seen = np.bincount(x[~np.isnan(x)].astype(int), minlength=len(labels))
    if not seen.all():
        raise DataError(f"'{name}': the category {labels[int(np.argmin(seen))]!r} is never "
                        "observed, so its multinomial coefficients are not identified; drop "
                        "the unused category (e.g. Series.cat.remove_unused_categories())")


def _uses(design: ModelDesign, name: str) -> bool:
    return design.dependent == name or name in design.predictors


def _coupled(design: ModelDesign, name: str) -> bool:
    """Whether a change of one cell of ``name`` changes other rows of ``design``."""
    if design.level >= 2:
        return _uses(design, name)
    return any(a.kind in ("cm", "cwc") and a.column == name
               for col in (*design.fixed, *design.random) for a in col)


def _target(plan: ModelPlan, name: str, how: DrawKind, x: np.ndarray, observed: np.ndarray,
            designs: tuple[ModelDesign, ...], grouping: Grouping,
            outer: Outer | None) -> TargetInfo:
    inside = [k for k, d in enumerate(designs) if _uses(d, name)]
    level = plan.variable(name).level
    codes = grouping.codes
    batches: tuple[Batch, ...]
    if level == 3 and outer is not None:
        batches = (_outer_batch(np.flatnonzero(outer.rows.count(observed) == 0), outer),)
    elif level == 2:
        clusters = np.flatnonzero(grouping.count(observed) == 0)
        batches = (_summed(clusters, clusters, grouping),)
    elif any(_coupled(designs[k], name) for k in inside):
        batches = _slots(np.flatnonzero(~observed), grouping)
    else:
        cells = np.flatnonzero(~observed)
        batches = (Batch(cells, codes[cells], cells, summed=False, slot=np.arange(len(cells))),)
    sd = float(np.std(x[observed]))
    return TargetInfo(name=name, how=how, level=level,
                      row_models=tuple(k for k in inside if designs[k].level == 1),
                      cluster_models=tuple(k for k in inside if designs[k].level == 2),
                      batches=batches, step=sd if sd > 0 else 1.0,
                      top_models=tuple(k for k in inside if designs[k].level == 3))


def _outer_batch(cells: np.ndarray, outer: Outer) -> Batch:
    """A level-3 batch: the outer clusters ``cells`` (increasing), all their rows and inner
    clusters."""
    rows = np.flatnonzero(np.isin(outer.rows.codes, cells))
    clusters = np.flatnonzero(np.isin(outer.parent, cells))
    return Batch(cells, clusters, rows, summed=True,
                 slot=np.searchsorted(cells, outer.rows.codes[rows]),
                 cluster_slot=np.searchsorted(cells, outer.parent[clusters]))


def _slots(cells: np.ndarray, grouping: Grouping) -> tuple[Batch, ...]:
    """Slot k: the k-th missing cell of every cluster, with the rows of those clusters."""
    codes = grouping.codes
    cells = cells[np.argsort(codes[cells], kind="stable")]
    counts = np.bincount(codes[cells], minlength=grouping.n)
    starts = np.cumsum(counts) - counts
    rank = np.arange(len(cells)) - starts[codes[cells]]
    out = []
    for k in range(int(counts.max(initial=0))):
        slot = cells[rank == k]
        out.append(_summed(slot, codes[slot], grouping))
    return tuple(out)


def _summed(cells: np.ndarray, clusters: np.ndarray, grouping: Grouping) -> Batch:
    """A summed batch: one cell per cluster (``clusters`` increasing), all their rows."""
    rows = np.flatnonzero(np.isin(grouping.codes, clusters))
    return Batch(cells, clusters, rows, summed=True,
                 slot=np.searchsorted(clusters, grouping.codes[rows]))
