"""``compile``: formula + data + options -> :class:`~recipe_compiler.plan.Plan`.

The pipeline: parse (model/parse.py) -> schema of the model's columns (data/schema.py;
with several grouping factors, how they nest: data/levels.py) -> recipe passes per
target (level1.py, level2.py; multilevel.py with several grouping factors) -> derived
variables and their DAG (graph.py) -> the frozen plan.
"""

from __future__ import annotations

from typing import Literal, overload

import pandas as pd

from ..data.grouping import Grouping
from ..data.levels import nesting
from ..data.schema import check_columns, check_frame, infer_schema, require_columns
from ..errors import DataError, FormulaError, OptionError, suggest
from ..model.parse import parse_formula
from ..model.spec import Factor, ModelSpec, Term
from ..plan import Cell, Derived, ModelPlan, Plan, Role, Variable
from . import Context, Entry, check_model, level1_row, level2_row
from .graph import visit_sequence
from .level1 import used_products
from .methods import GROUPMEAN, check_method, default_method, target_kind, target_scope
from .multilevel import check_multilevel, grouping_cells, multilevel_rows, multilevel_scope
from .options import make_options
from .smc import check_approach, compile_model_plan

__all__ = ["compile_plan"]


@overload
def compile_plan(model: str | ModelSpec, data: pd.DataFrame, approach: Literal["fcs"] = ...,
                 **options: object) -> Plan: ...


@overload
def compile_plan(model: str | ModelSpec, data: pd.DataFrame, approach: str = ...,
                 **options: object) -> Plan | ModelPlan: ...


def compile_plan(model: str | ModelSpec, data: pd.DataFrame, approach: str = "fcs",
                 **options: object) -> Plan | ModelPlan:
    """Compile the imputation model implied by a mixed model (FIMD Tables 7.5, 7.6).

    With several grouping factors (``(1 | school/class)``, ``(1 + x | class) + (1 |
    school)``, crossed ``(1 | rater) + (1 | item)``) the data say whether they are
    nested or crossed, and the rules ML.* of :mod:`.multilevel` give the rows. With
    ``approach="smc"``, the model-based plan instead (see
    :func:`~recipe_compiler.compiler.smc.compile_model_plan`).

    Parameters
    ----------
    model : str or ModelSpec
        The analysis model, lme4 style: ``"lpo ~ iqv*sex + cm(iqv)*den + (1 + iqv | sch)"``.
    data : pandas.DataFrame
        The incomplete data; levels and kinds of the columns are inferred from it.
    approach : {"fcs", "smc"}
        ``"fcs"``: the FIMD recipes (a :class:`Plan`); ``"smc"``: the analysis model
        as the outcome of a joint model (a :class:`ModelPlan`).
    **options
        ``interactions`` ("implied" | "all_pairwise"), ``centering`` ("none" |
        "cluster"), ``random_slopes`` ("include" | "means_only"), ``auxiliary``
        (list of columns; ``"C(x)"`` declares ``x`` categorical), ``methods``
        ({column: method}), ``categorical`` (columns to treat as ``C(x)``),
        ``levels`` ({column: 1 | 2 | 3}, overriding inference); with ``approach="smc"``
        only ``auxiliary`` and ``methods`` ({column: "normal" | "logit" | "multinomial"}).

    Returns
    -------
    Plan or ModelPlan

    Raises
    ------
    RecipeError
        FormulaError, DataError or OptionError, naming what is wrong.
    """
    if check_approach(approach) == "smc":
        return compile_model_plan(model, data, **options)
    opts = make_options(**options)
    if not isinstance(model, (str, ModelSpec)):
        raise FormulaError(f"the model must be a formula string such as 'y ~ x + (1 | g)' or a "
                           f"ModelSpec, got {type(model).__name__}")
    spec = parse_formula(model) if isinstance(model, str) else model
    several = len(spec.randoms) > 1
    if spec.random is None and opts.centering == "cluster":
        raise OptionError("centering='cluster' needs clusters, but the formula has no random "
                          "part such as (1 | cluster); use centering='none'")
    check_frame(data)
    check_columns(spec, data)
    nest = nesting(data, [r.cluster for r in spec.randoms]) if several else None
    if nest is not None:
        spec = spec.with_innermost(nest.innermost)
    groupings = {*spec.grouping_columns, *(nest.groupings if nest else ())} if several else {
        spec.cluster}
    for aux in opts.auxiliary:
        require_columns(data, [aux], "auxiliary column '{}'")
        if aux in groupings:
            raise OptionError(f"auxiliary column '{aux}' is the cluster variable, which every "
                              "imputation model already uses (code -2)")
    columns = [c for c in (*spec.columns, *opts.auxiliary) if c not in groupings]
    for c in opts.categorical:
        if c not in columns:
            raise OptionError(f"categorical: '{c}' is not a column of the formula or an "
                              f"auxiliary column; {suggest(c, columns)}")
    cluster = nest.innermost if nest else spec.cluster
    schema = infer_schema(data, columns, cluster,
                          categorical=[*spec.categorical, *opts.categorical],
                          levels=opts.declared_levels, groupings=nest)
    for info in schema.columns:
        if info.n_missing and info.n_observed < 2:
            raise DataError(f"column '{info.name}' has {info.n_missing} missing values and only "
                            f"{info.n_observed} observed value; at least 2 observed values are "
                            "needed to impute it (drop it from the model or supply more data)")
        if info.n_missing and info.level >= 2 and cluster is not None and (
                nest is None or nest.kind == "nested"):  # crossed: refused by check_multilevel
            _check_observed_clusters(data, info.name, info.level,
                                     nest.groupings[info.level - 2] if nest else cluster)
    if nest is None:
        ctx = Context(spec, schema, opts)
        check_model(ctx)
        return _assemble(ctx, _rows(ctx), _methods(ctx))
    ctx = Context(spec, schema, opts, nest.groupings, nest.kind)
    check_multilevel(ctx)
    whole = frozenset(c for c in ctx.targets if pd.api.types.is_integer_dtype(data[c].dtype)
                      or pd.api.types.is_bool_dtype(data[c].dtype))
    return _assemble(ctx, multilevel_rows(ctx), _methods(ctx, whole))


def _check_observed_clusters(data: pd.DataFrame, column: str, level: int, group: str) -> None:
    """A level-2 (3) column must be observed in at least 2 clusters of its grouping factor."""
    grouping = Grouping.from_column(data, group)
    seen = int((grouping.count(data[column].notna().to_numpy()) > 0).sum())
    if seen < 2:
        raise DataError(f"column '{column}' is a level-{level} variable observed in only "
                        f"{seen} cluster of '{group}'; at least 2 clusters with "
                        "an observed value are needed to impute it (drop it from the "
                        "model or supply more data)")


def _rows(ctx: Context) -> dict[str, list[Entry]]:
    two_level = ctx.spec.random is not None
    l1_targets = [t for t in ctx.targets if not two_level or ctx.level(t) == 1]
    rows = {t: level1_row(ctx, t) for t in l1_targets}
    if not two_level:
        rows = {t: [_single_level(e) for e in es] for t, es in rows.items()}
    products = used_products(ctx, rows)
    for t in ctx.targets:
        if t not in rows:
            rows[t] = level2_row(ctx, t, products)
    return rows


def _single_level(e: Entry) -> Entry:
    """Without clusters there are no cluster means: codes 3 and 4 become 1."""
    if e.code in (3, 4):
        return Entry(e.predictor, 1, e.step.replace(" + cluster mean", ""), e.reason)
    return e


def _methods(ctx: Context, whole: frozenset[str] = frozenset()) -> dict[str, str]:
    """Each target's method: the override, else the method table's default for its kind.

    The kind is the schema's decision: a number, or a categorical column with two
    categories (binary), more (nominal) or more and ordered (ordinal). With several
    grouping factors, a number above level 1 is ``continuous`` (the normal model)
    unless its column holds whole numbers (``whole``: integer or boolean dtypes,
    which predictive mean matching keeps whole).
    """
    overrides = ctx.options.method_overrides
    for column in overrides:
        if column not in ctx.targets:
            raise OptionError(f"methods: '{column}' is not an incomplete model column; "
                              f"targets are {', '.join(ctx.targets) or '(none)'}")
    out = {}
    for t in ctx.targets:
        info = ctx.schema[t]
        scope = (multilevel_scope(ctx, t) if ctx.several
                 else target_scope(ctx.spec.random is not None, info.level))
        kind = target_kind(t in ctx.categorical, len(info.categories), info.ordered)
        if ctx.several and kind == "numeric" and info.level > 1 and t not in whole:
            kind = "continuous"
        if t in overrides:
            out[t] = check_method(overrides[t], scope,
                                  f"methods[{t!r}] (a level-{info.level} target)").name
            continue
        out[t] = default_method(scope, kind)
    return out


def _assemble(ctx: Context, rows: dict[str, list[Entry]], methods: dict[str, str]) -> Plan:
    derived: dict[str, Derived] = {}
    cells: list[Cell] = []
    cluster = ctx.groupings[0] if ctx.several else ctx.spec.cluster
    for target, entries in rows.items():
        if ctx.several:
            cells.extend(Cell(target, g, -2, step, reason)
                         for g, step, reason in grouping_cells(ctx, target))
        elif cluster:
            cells.append(Cell(target, cluster, -2, "7.5.9 / 7.6.8 cluster variable",
                              "cluster variable of the analysis model"))
        for e in entries:
            name = _declare(ctx, e.predictor, derived) if e.code else e.predictor.name
            cells.append(Cell(target, name, e.code, e.step, e.reason))
    for d in derived.values():
        if d.op == "cm" and cluster:
            cells.append(Cell(d.name, d.detail or cluster, -2, GROUPMEAN, "cluster variable"))
            cells.append(Cell(d.name, d.parents[0], 1, GROUPMEAN,
                              f"cluster mean of {d.parents[0]}"))
    variables = [Variable(g, "cluster", ctx.grouping_level(g), "cluster")
                 for g in ctx.groupings] if ctx.several else (
        [Variable(cluster, "cluster", 2, "cluster")] if cluster else [])
    for c in ctx.measured:
        info = ctx.schema[c]
        role: Role = "target" if c in ctx.targets else "covariate"
        variables.append(Variable(c, role, info.level, info.kind, info.n_missing))
    target_rank = {t: i for i, t in enumerate(ctx.targets)}
    variables.sort(key=lambda v: (v.role != "cluster", target_rank.get(v.name, len(target_rank))
                                  if v.role == "target" else len(target_rank)))
    for d in derived.values():
        level = _level(ctx, d.name, derived)
        variables.append(Variable(d.name, "derived", level, "derived"))
    parents = {d.name: d.parents for d in derived.values()}
    visit = visit_sequence(ctx.targets, parents, list(derived))
    table = [(t, m) for t, m in methods.items()] + [(d.name, d.method) for d in derived.values()]
    return Plan(formula=ctx.spec.formula, options=ctx.options, cluster=cluster,
                variables=tuple(variables), method_table=tuple(table), cells=tuple(cells),
                derived_defs=tuple(derived.values()), visit=visit, groupings=ctx.groupings,
                nesting="" if not ctx.several else "nested" if ctx.nesting == "nested"
                else "crossed")


def _level(ctx: Context, name: str, derived: dict[str, Derived]) -> int:
    """A derived variable's level: a mean's is its grouping factor's (at least its parent's);
    any other's the lowest of its parents'."""
    if name in derived:
        d = derived[name]
        parents = [_level(ctx, p, derived) for p in d.parents]
        if d.op == "cm":
            return max(ctx.grouping_level(d.detail) if ctx.several else 2, *parents)
        return min(parents)
    return ctx.level(name)


def _declare(ctx: Context, t: Term, derived: dict[str, Derived]) -> str:
    """The plan variable holding term ``t``, declaring it and its ancestors if derived."""
    t = ctx.canonical(t)
    if t.degree == 1:
        return _declare_factor(t.factors[0], derived)
    parents = tuple(_declare_factor(f, derived) for f in t.factors)
    if t.name not in derived:
        derived[t.name] = Derived(t.name, "product", parents)
    return t.name


def _declare_factor(f: Factor, derived: dict[str, Derived]) -> str:
    if f.kind == "var":
        return f.column
    if f.name in derived:
        return f.name
    if f.kind in ("cm", "cwc"):  # of a column, or of one dummy column of a categorical one
        base = _declare_factor(Factor("dummy", f.column, level=f.level) if f.level
                               else Factor("var", f.column), derived)
        if f.kind == "cm":
            d = Derived(f.name, "cm", (base,), f.group)
        else:
            mean = _declare_factor(Factor("cm", f.column, level=f.level, group=f.group), derived)
            d = Derived(f.name, "cwc", (base, mean))
    elif f.kind == "dummy":
        d = Derived(f.name, "dummy", (f.column,), f.level)
    elif f.kind == "expr":
        d = Derived(f.name, "expr", f.columns, f.column)
    else:
        raise AssertionError(f"factor {f.name} should have been expanded to dummies")
    derived[f.name] = d
    return f.name

