"""The model-based (SMC) compile pass: analysis model + schema -> :class:`ModelPlan`.

The joint model of the incomplete data is a product of regressions (a
sequential factorisation, as Blimp and mdmb build it):

* the outcome model is the analysis model exactly as written;
* each incomplete level-1 predictor gets a random-intercept regression on the
  incomplete predictors later in the sequence, the complete level-1
  predictors, every level-2 variable, and the cluster means of those level-1
  variables whose cluster mean the analysis model uses;
* each incomplete level-2 predictor gets a regression over the clusters on the
  level-2 variables later in the sequence, the complete level-2 ones and the
  cluster means of the complete level-1 predictors;
* each auxiliary variable is an extra dependent variable regressed on the
  main effects of the analysis variables (and the later auxiliaries), so that
  missingness that depends on it is MAR for the imputation.

With two nested grouping factors (pupils in classes in schools, ``(1 + x |
school:class) + (1 | school)``; the innermost is the cluster, levels 1, 2, 3 from
:func:`~recipe_compiler.data.schema.infer_schema` with the
:func:`~recipe_compiler.data.levels.nesting` of the data) the outcome model is still
the analysis model (a random intercept only over the outer factor, for now); the
level-1 and level-2 (class) models get a random intercept over the outer factor too,
every model conditions on the level-3 (school) variables, and each incomplete level-3
variable gets a regression over the schools on the level-3 variables later in the
sequence and the complete ones. Three-level plans take normal-family variables and
terms linear in them (crossed factors and more than two are refused: the FCS recipes
cover them).

Continuous variables come first in the sequence and categorical ones last, so
a continuous variable never predicts a categorical one and its full conditional
stays exactly normal where its terms are linear in it. A binary variable gets a
logit model, a categorical one with ``K >= 3`` categories a multinomial logit
(one linear predictor per non-reference category; at level 1 each with its own
random intercept, independent across categories); both enter the other models
as treatment dummies, as ``C(x)`` does in the analysis, and their missing
values are drawn exactly by enumerating the categories. The pass is pure: it reads
the parsed model and the schema, never the data values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

import pandas as pd

from ..data.levels import Nesting, nesting
from ..data.schema import (
    DataSchema,
    check_columns,
    check_frame,
    infer_schema,
    require_columns,
)
from ..errors import DataError, FormulaError, OptionError, one_of
from ..model.expr import degree, parse_expr
from ..model.parse import parse_formula
from ..model.spec import Factor, ModelSpec, Term
from ..plan.fcs import Role, Variable
from ..plan.smc import FAMILIES, Draw, Family, ModelPlan, SubModel

__all__ = ["check_approach", "compile_model_plan", "draw_for", "term_degree"]

_FCS_ONLY = ("interactions", "centering", "random_slopes")
_FCS_HINT = "; use approach=\"fcs\" (the FIMD recipes) for this model"


def compile_model_plan(model: str | ModelSpec, data: pd.DataFrame,
                       **options: object) -> ModelPlan:
    """Compile the model-based (substantive-model-compatible) imputation model.

    Parameters
    ----------
    model : str or ModelSpec
        The analysis model, lme4 style: one random-effects group, or two over nested
        grouping factors with a random intercept only over the outer one.
    data : pandas.DataFrame
        The incomplete data; levels, kinds and missingness are read from it.
    **options
        ``auxiliary`` (list of columns used only for imputation; each becomes an
        extra dependent variable) and ``methods`` (``{column: family}`` with
        family ``"normal"``, ``"logit"`` or ``"multinomial"``; by default
        ``"logit"`` for binary, ``"multinomial"`` for categorical columns with
        three or more categories and ``"normal"`` for continuous columns).

    Returns
    -------
    ModelPlan

    Raises
    ------
    RecipeError
        A model the sampler does not handle (categorical outcome, cluster mean of
        a categorical column, no random part; crossed or more than two grouping
        factors, a random slope over the outer factor, categorical, cluster-mean or
        non-linear terms of a three-level model), naming the term and suggesting
        ``approach="fcs"``; bad options or data.
    """
    for key in options:
        if key in _FCS_ONLY:
            raise OptionError(f"option {key!r} configures the FCS recipes and does not apply "
                              "to approach=\"smc\", whose imputation model is the analysis model "
                              "itself; drop it")
        if key not in ("auxiliary", "methods"):
            raise OptionError(f"unknown option {key!r}; valid options with approach=\"smc\": "
                              "auxiliary, methods")
    auxiliary = options.get("auxiliary", ())
    methods = options.get("methods")
    if not isinstance(model, (str, ModelSpec)):
        raise FormulaError(f"the model must be a formula string such as 'y ~ x + (1 | g)' or a "
                           f"ModelSpec, got {type(model).__name__}")
    spec = parse_formula(model) if isinstance(model, str) else model
    if len(spec.randoms) > 2:
        third = spec.randoms[2]
        raise FormulaError(f"the model has {len(spec.randoms)} grouping factors ("
                           f"{', '.join(r.cluster for r in spec.randoms)}); approach=\"smc\" "
                           "handles at most two nested ones (pupils in classes in schools), so "
                           f"the term (... | {third.cluster}) has no model" + _FCS_HINT,
                           spec.formula, third.span)
    if spec.random is None:
        raise FormulaError("approach=\"smc\" needs a two-level model with a random part such as "
                           "(1 | cluster)" + _FCS_HINT + " (single-level data)", spec.formula,
                           (len(spec.formula), len(spec.formula) + 1))
    check_frame(data)
    check_columns(spec, data)
    nest = _nesting(spec, data)
    if nest is not None:
        spec = spec.with_innermost(nest.innermost)
        _check_outer(spec)
    groupings = nest.groupings if nest is not None else ()
    aux = _auxiliary(auxiliary, spec, data)
    cats = {f.column for t in spec.terms for f in t.factors if f.kind == "cat"}
    schema = infer_schema(data, [c for c in (*spec.columns, *aux) if c != spec.cluster
                                 and c not in (*spec.grouping_columns, *groupings)],
                          spec.cluster, categorical=cats, groupings=nest)
    assert spec.random is not None
    _check_data(schema, data, groupings or (spec.random.cluster,))
    if methods is not None and not isinstance(methods, Mapping):
        raise OptionError(f"methods must be a mapping {{column: family}}, got {methods!r}")
    overrides = {str(k): str(v) for k, v in (methods or {}).items()}
    families = _families(overrides, schema, spec, aux)
    _check_model(spec, schema)
    outer = groupings[1] if groupings else ""
    models = _models(spec, schema, aux, families, outer)
    draws = tuple(draw_for(v, schema[v].level, models)
                  for v in _sweep_order(spec, schema, aux, families))
    if outer:
        _check_three_level(spec, schema, families, draws)
    variables = [Variable(g, "cluster", k + 2, "cluster")
                 for k, g in enumerate(groupings or (spec.random.cluster,))]
    for info in schema.columns:
        role: Role = "target" if info.n_missing else "covariate"
        variables.append(Variable(info.name, role, info.level, info.kind, info.n_missing))
    plan = ModelPlan(formula=spec.formula, cluster=spec.cluster, variables=tuple(variables),
                     models=models, draw_table=draws, auxiliary=aux,
                     methods=tuple(sorted(overrides.items())), groupings=groupings)
    first = [d for d in draws if plan.only_in_own_model(d.variable)]
    return dataclasses.replace(plan, draw_table=(*first, *(d for d in draws if d not in first)))


# ------------------------------------------------------------------ checks


def _auxiliary(auxiliary: object, spec: ModelSpec, data: pd.DataFrame) -> tuple[str, ...]:
    aux = (auxiliary,) if isinstance(auxiliary, str) else auxiliary
    if not isinstance(aux, Iterable):
        raise OptionError(f"auxiliary must be a list of column names, got {auxiliary!r}")
    out = []
    for a in map(str, aux):
        require_columns(data, [a], "auxiliary column '{}'")
        if a == spec.cluster or a in spec.grouping_columns:
            raise OptionError(f"auxiliary column '{a}' is the cluster variable, which every "
                              "model of the plan already uses")
        if a not in spec.columns:
            out.append(a)
    return tuple(dict.fromkeys(out))


def _nesting(spec: ModelSpec, data: pd.DataFrame) -> Nesting | None:
    """The two grouping factors of a model, innermost first, if it has two; crossed
    factors refused."""
    if len(spec.randoms) < 2:
        return None
    nest = nesting(data, [r.cluster for r in spec.randoms])
    if len(nest.groupings) < 2:
        second = spec.randoms[1]
        raise FormulaError(f"two random-effects terms over the same grouping factor "
                           f"'{second.cluster}'; approach=\"smc\" takes one correlated term "
                           f"per factor: write them as one, (1 + ... | {second.cluster})",
                           spec.formula, second.span)
    if nest.kind == "crossed":
        second = spec.randoms[1]
        raise FormulaError(f"the grouping factors {', '.join(nest.groupings)} are crossed in "
                           "these data (not every cluster of one lies within one cluster of "
                           "the other); approach=\"smc\" handles nested factors only (pupils "
                           "in classes in schools): use approach=\"fcs\" (the default), which "
                           "handles crossed factors", spec.formula, second.span)
    return nest


def _check_outer(spec: ModelSpec) -> None:
    """The outer random-effects term of a three-level model: a random intercept only."""
    for r in spec.more_random:
        if r.slopes:
            t = r.slopes[0]
            raise FormulaError(f"random slope of '{t.name}' over the outer grouping factor "
                               f"'{r.cluster}': approach=\"smc\" takes a random intercept only "
                               f"over it, (1 | {r.cluster}), for now (random slopes over the "
                               f"innermost factor '{spec.cluster}' are fine)" + _FCS_HINT,
                               spec.formula, spec.span_of(t.name, "random") or r.span)
        if not r.intercept:
            raise FormulaError(f"the term (0 + ... | {r.cluster}) has no random intercept; "
                               "approach=\"smc\" needs (1 | " + r.cluster + ") over the "
                               "outer grouping factor", spec.formula, r.span)


def _check_three_level(spec: ModelSpec, schema: DataSchema, families: dict[str, Family],
                       draws: tuple[Draw, ...]) -> None:
    """What the three-level SMC sampler does not handle yet, naming the column or term."""
    for c, family in families.items():
        if family != "normal":
            raise OptionError(f"'{c}' has a {family} model; approach=\"smc\" with two "
                              "grouping factors takes continuous (normal) variables only for "
                              "now: give it a numeric coding with methods={'" + c + "': "
                              "'normal'} or use approach=\"fcs\"")
    for t in (*spec.terms, *spec.slopes):
        for f in t.factors:
            if f.kind in ("cm", "cwc", "cat"):
                raise FormulaError(f"'{f.name}': approach=\"smc\" with two grouping factors "
                                   "does not take cluster means or categorical terms yet"
                                   + _FCS_HINT, spec.formula, spec.span_of(f.name))
    for d in draws:
        if not d.how.startswith("exact"):
            raise FormulaError(f"'{d.variable}' enters a term that is not linear in it ("
                               f"{d.reason.split(',')[0]}); approach=\"smc\" with two grouping "
                               "factors draws normal full conditionals only for now" + _FCS_HINT,
                               spec.formula, spec.span_of(d.variable))


def _check_data(schema: DataSchema, data: pd.DataFrame, groupings: tuple[str, ...]) -> None:
    for info in schema.columns:
        if info.n_missing and info.n_observed < 2:
            raise DataError(f"column '{info.name}' has {info.n_missing} missing values and only "
                            f"{info.n_observed} observed value; at least 2 observed values are "
                            "needed to impute it (drop it from the model or supply more data)")
        if info.n_missing and info.level >= 2:
            group = groupings[info.level - 2]
            seen = data.loc[data[info.name].notna(), _grouping_columns(group)].drop_duplicates()
            if len(seen) < 2:
                raise DataError(f"column '{info.name}' is a level-{info.level} variable "
                                f"observed in only {len(seen)} cluster of '{group}'; at least 2 "
                                "clusters with an observed value are needed to impute it")


def _grouping_columns(group: str) -> list[str]:
    """The columns of a grouping factor (``"school:class"``: both)."""
    return group.split(":")


def _families(overrides: dict[str, str], schema: DataSchema, spec: ModelSpec,
              aux: tuple[str, ...]) -> dict[str, Family]:
    """The family of every modelled variable: overrides, else logit for binary columns,
    multinomial for categorical ones."""
    modelled = _modelled(spec, schema, aux)
    default: dict[str, Family] = {"binary": "logit", "categorical": "multinomial"}
    out = {c: default.get(schema[c].kind, "normal") for c in modelled}
    out[spec.outcome] = "normal"
    for column, family in overrides.items():
        where = f"methods[{column!r}]"
        if family not in FAMILIES:
            raise OptionError(f"{where}={family!r} is not valid with approach=\"smc\"; give a "
                              "model family: " + ", ".join(repr(f) for f in FAMILIES)
                              + " (FCS method names such as '2l.pmm' need approach=\"fcs\")")
        if column not in out:
            raise OptionError(f"{where}: '{column}' has no model of its own (models: "
                              f"{', '.join(out)}); only the outcome, incomplete predictors and "
                              "auxiliaries are modelled")
        info = schema[column]
        if family == "logit" and info.kind != "binary":
            raise OptionError(f"{where}='logit' needs a binary column, but '{column}' is "
                              f"{info.kind}; use 'normal'")
        if family == "multinomial" and info.kind != "categorical":
            raise OptionError(f"{where}='multinomial' needs a categorical column with three or "
                              f"more categories, but '{column}' is {info.kind}; use "
                              + ("'logit'" if info.kind == "binary" else "'normal'"))
        if family == "normal" and info.categories and info.kind != "continuous":
            raise OptionError(f"{where}='normal' needs a numeric column, but '{column}' is "
                              f"categorical ({', '.join(info.categories)}); use "
                              + ("'logit'" if info.kind == "binary" else "'multinomial'"))
        out[column] = "logit" if family == "logit" else "multinomial" \
            if family == "multinomial" else "normal"
    return out


def _modelled(spec: ModelSpec, schema: DataSchema, aux: tuple[str, ...]) -> list[str]:
    """Variables with a model of their own: outcome, incomplete predictors, auxiliaries."""
    predictors = [c for c in spec.columns if c not in (spec.outcome, spec.cluster)]
    return [spec.outcome, *(c for c in predictors if schema[c].n_missing), *aux]


def _check_model(spec: ModelSpec, schema: DataSchema) -> None:
    """Reject what the SMC sampler does not handle, naming the term."""
    out = schema[spec.outcome]
    if out.kind != "continuous":
        raise FormulaError(f"the outcome '{spec.outcome}' is {out.kind}; approach=\"smc\" needs "
                           "a continuous outcome (its model is a linear mixed model)" + _FCS_HINT,
                           spec.formula, spec.span_of(spec.outcome))
    if out.level >= 2:
        raise FormulaError(f"the outcome '{spec.outcome}' is constant within every cluster of "
                           f"'{spec.cluster}' (a level-{out.level} variable); the model needs a "
                           "level-1 outcome", spec.formula, spec.span_of(spec.outcome))
    assert spec.random is not None
    for t in spec.random.slopes:
        if all(schema[c].level >= 2 for c in t.columns) or any(
                f.kind == "cm" for f in t.factors):
            raise FormulaError(f"random slope of '{t.name}', a level-2 term (constant within "
                               f"clusters of '{spec.cluster}'); random slopes need level-1 "
                               "variables", spec.formula, spec.span_of(t.name, "random")
                               or spec.span_of(t.columns[0], "random"))
    for t in (*spec.terms, *spec.random.slopes):
        for f in t.factors:
            if f.kind in ("cm", "cwc") and schema[f.column].kind == "categorical":
                raise FormulaError(f"'{f.name}': approach=\"smc\" takes cluster means of "
                                   "numeric or binary columns only" + _FCS_HINT, spec.formula,
                                   spec.span_of(f.name))


# ------------------------------------------------------------------ the factorisation


def _main(column: str, schema: DataSchema) -> Factor:
    """A column as a main effect: ``C(x)`` if categorical, else ``x``."""
    return Factor("cat", column) if schema[column].categories else Factor("var", column)


def _terms(columns: Iterable[str], schema: DataSchema, means: Iterable[str] = ()
           ) -> tuple[Term, ...]:
    """Main effects of ``columns`` then the cluster means of ``means``."""
    out = [Term((_main(c, schema),)) for c in columns]
    out += [Term((Factor("cm", c),)) for c in means]
    return tuple(dict.fromkeys(out))


def _sequence(columns: Iterable[str], schema: DataSchema,
              families: dict[str, Family]) -> list[str]:
    """Continuous (normal-family) variables first, then categorical ones; else in given
    order."""
    cols = list(columns)
    return ([c for c in cols if families[c] == "normal"]
            + [c for c in cols if families[c] != "normal"])


def _models(spec: ModelSpec, schema: DataSchema, aux: tuple[str, ...],
            families: dict[str, Family], outer: str = "") -> tuple[SubModel, ...]:
    """The factorisation; ``outer``: the outer grouping factor of a three-level model
    (then level-1 and level-2 models get a random intercept over it, and level-3
    variables regressions over its clusters)."""
    assert spec.random is not None
    predictors = [c for c in spec.columns if c not in (spec.outcome, spec.cluster)]
    level = {c: schema[c].level for c in predictors}
    complete1 = [c for c in predictors if level[c] == 1 and not schema[c].n_missing]
    complete2 = [c for c in predictors if level[c] == 2 and not schema[c].n_missing]
    complete3 = [c for c in predictors if level[c] == 3 and not schema[c].n_missing]
    inc1 = _sequence([c for c in predictors if level[c] == 1 and schema[c].n_missing],
                     schema, families)
    inc2 = _sequence([c for c in predictors if level[c] == 2 and schema[c].n_missing],
                     schema, families)
    inc3 = _sequence([c for c in predictors if level[c] == 3 and schema[c].n_missing],
                     schema, families)
    with_mean = {f.column for t in (*spec.terms, *spec.random.slopes) for f in t.factors
                 if f.kind in ("cm", "cwc")}
    numeric1 = [c for c in complete1 if not schema[c].categories]
    higher = [*inc3, *complete3]
    models = [SubModel(spec.outcome, "normal", 1, spec.terms, spec.random.slopes, "outcome",
                       spec.intercept, spec.random.intercept,
                       "the analysis model, exactly as written", outer)]
    upper = "level-2 and level-3 variables" if outer else "level-2 variables"
    for k, x in enumerate(inc1):
        later = [*inc1[k + 1:], *complete1]
        models.append(SubModel(
            x, families[x], 1, _terms([*later, *inc2, *complete2, *higher], schema,
                                      [c for c in later if c in with_mean]), (), "covariate",
            reason=f"covariate model of the incomplete level-1 predictor '{x}' ({k + 1} of "
                   f"{len(inc1)} in the sequence): random-intercept regression on the later "
                   f"predictors, the complete ones and the {upper}", outer=outer))
    within = f", with a random intercept over '{outer}'" if outer else ""
    for k, w in enumerate(inc2):
        models.append(SubModel(
            w, families[w], 2, _terms([*inc2[k + 1:], *complete2, *higher], schema, numeric1),
            (), "covariate", random_intercept=False,
            reason=f"covariate model of the incomplete level-2 predictor '{w}' ({k + 1} of "
                   f"{len(inc2)} in the sequence): regression over the clusters{within} on the "
                   f"later {upper} and the cluster means of the complete level-1 ones",
            outer=outer))
    for k, z in enumerate(inc3):
        models.append(SubModel(
            z, families[z], 3, _terms([*inc3[k + 1:], *complete3], schema), (), "covariate",
            random_intercept=False,
            reason=f"covariate model of the incomplete level-3 predictor '{z}' ({k + 1} of "
                   f"{len(inc3)} in the sequence): regression over the clusters of '{outer}' "
                   "on the later level-3 variables"))
    analysis = [spec.outcome, *predictors]
    for k, a in enumerate(aux):
        if schema[a].level == 1:
            fixed = _terms([*analysis, *aux[k + 1:]], schema)
        elif schema[a].level == 3:
            fixed = _terms([c for c in (*analysis, *aux[k + 1:]) if schema[c].level == 3],
                           schema)
        else:
            lower = [c for c in (*analysis, *aux[k + 1:]) if schema[c].level == 1]
            fixed = _terms([c for c in (*analysis, *aux[k + 1:]) if schema[c].level >= 2],
                           schema, [c for c in lower if not schema[c].categories])
        models.append(SubModel(
            a, families[a], schema[a].level, fixed, (), "auxiliary",
            random_intercept=schema[a].level == 1,
            reason=f"auxiliary '{a}': an extra dependent variable regressed on the main "
                   "effects of the analysis variables (Blimp's approach), so that missingness "
                   "that depends on it is MAR", outer=outer if schema[a].level < 3 else ""))
    return tuple(models)


def _sweep_order(spec: ModelSpec, schema: DataSchema, aux: tuple[str, ...],
                 families: dict[str, Family]) -> list[str]:
    """Incomplete variables: outcome, level-1, level-2 predictors, auxiliaries."""
    predictors = [c for c in spec.columns if c not in (spec.outcome, spec.cluster)]
    inc = [c for c in predictors if schema[c].n_missing]
    order = [spec.outcome] if schema[spec.outcome].n_missing else []
    order += _sequence([c for c in inc if schema[c].level == 1], schema, families)
    order += _sequence([c for c in inc if schema[c].level == 2], schema, families)
    order += _sequence([c for c in inc if schema[c].level == 3], schema, families)
    order += [a for a in aux if schema[a].n_missing]
    return order


# ------------------------------------------------------------------ how each variable is drawn


def term_degree(t: Term, column: str) -> int | None:
    """Polynomial degree of term ``t`` in ``column``; ``None`` if not polynomial.

    Every factor that depends on ``column`` (``x``, ``cm(x)``, ``cwc(x)``,
    ``C(x)``) counts 1, an ``I()`` expression its degree as a polynomial in
    ``column`` (:func:`recipe_compiler.model.expr.degree`: ``I(x ** 2)`` 2,
    ``I(2 * x)`` 1, ``I(log(x))`` not polynomial).
    """
    total = 0
    for f in t.factors:
        if column not in f.columns:
            continue
        d = degree(parse_expr(f.column, f.columns), column) if f.kind == "expr" else 1
        if d is None:
            return None
        total += d
    return total


def _nonlinear(t: Term, column: str) -> bool:
    degree = term_degree(t, column)
    return degree is None or degree > 1


def draw_for(v: str, level: int, models: tuple[SubModel, ...]) -> Draw:
    """How the missing values of ``v`` (a level-``level`` variable) are drawn, and why.

    Decided by the models that contain ``v``: categorical (logit, multinomial)
    variables are enumerated; a continuous one is drawn exactly from a normal if
    every term of those models is at most linear in it and none of them is a
    logit or multinomial model, else by Metropolis-Hastings.
    """
    family = {m.dependent: m.family for m in models}
    inside = [m for m in models if v in m.columns]
    per_cluster = level >= 2
    coupled = [t.name for m in inside for t in m.terms for f in t.factors
               if f.column == v and f.kind in ("cm", "cwc")]
    where = ", ".join(str(m) for m in inside)
    slots = (f"; {', '.join(dict.fromkeys(coupled))} couples the rows of a cluster, so one "
             "missing cell per cluster is updated at a time" if coupled and not per_cluster
             else "")
    if family.get(v) == "logit":
        unit = "per cluster, " if per_cluster else ""
        return Draw(v, "enumerate", f"binary: {unit}both values' full conditional "
                    f"(product of {where}) evaluated and drawn exactly{slots}")
    if family.get(v) == "multinomial":
        unit = "per cluster, " if per_cluster else ""
        return Draw(v, "enumerate", f"categorical (multinomial logit): {unit}the full "
                    f"conditional (product of {where}) evaluated at every category and drawn "
                    f"exactly{slots}")
    nonlinear = [t.name for m in inside for t in m.terms if _nonlinear(t, v)]
    logit = [m for m in inside if m.family != "normal" and m.dependent != v]
    if nonlinear or logit:
        kinds = "/".join(dict.fromkeys(m.family for m in logit))
        why = (f"the term(s) {', '.join(dict.fromkeys(nonlinear))} are not linear in '{v}'"
               if nonlinear else
               f"'{v}' predicts the {kinds} model(s) {', '.join(map(str, logit))}")
        unit = " per cluster" if per_cluster else ""
        return Draw(v, "metropolis", f"{why}, so the full conditional (product of {where}) is "
                    f"not normal: random-walk Metropolis-Hastings{unit}, proposal scale tuned "
                    f"during burn-in{slots}")
    if level == 3:
        return Draw(v, "exact normal per cluster", f"level-3: the log densities of {where} "
                    "summed over each outer cluster's rows and clusters are quadratic in its "
                    "value; one exact normal draw per outer cluster")
    if per_cluster:
        return Draw(v, "exact normal per cluster", f"level-2: the log densities of {where} "
                    "summed over each cluster's rows are quadratic in its value; one exact "
                    "normal draw per cluster")
    return Draw(v, "exact normal", f"every term of {where} is linear in '{v}', so its full "
                f"conditional is exactly normal{slots}")


def check_approach(approach: object) -> str:
    """``approach`` if it is ``"fcs"`` or ``"smc"``, else an :class:`OptionError`."""
    if approach not in ("fcs", "smc"):
        raise one_of("approach", approach, ("fcs", "smc"))
    return str(approach)
