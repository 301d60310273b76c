"""A :class:`~recipe_compiler.plan.ModelPlan` as a plain, JSON-ready dict, and back.

Layout (version 1)::

    {"format": "recipe_compiler.model_plan", "version": 1,
     "formula": "lpo ~ iqv + cm(iqv) + (1 + iqv | sch)", "cluster": "sch",
     "auxiliary": ["apr"], "methods": {"sex": "logit"},
     "variables": [{"name", "role", "level", "kind", "n_missing"}, ...],
     "models": [{"dependent": "iqv", "family": "normal", "level": 1,
                 "role": "covariate", "formula": "iqv ~ 1 + ses + (1 | sch)",
                 "reason": "..."}, ...],
     "draws": [{"variable": "iqv", "how": "exact normal", "reason": "..."}, ...]}

A three-level plan (two nested grouping factors) adds ``"groupings": ["school:class",
"school"]`` (innermost first; ``cluster`` is the first, both are variables of role
``cluster``, with levels 2 and 3); its models' formulas carry the outer random
intercept, ``x ~ 1 + w + (1 | school:class) + (1 | school)``, ``w ~ 1 + z + (1 |
school)``, and level-3 models (over the schools) have level 3.

Loading is inert: each model's terms are read back by the formula parser (so an
``I()`` term passes the safe expression parser, never ``eval``), and every
entry is validated; a :class:`~recipe_compiler.errors.PlanError` names the
entry at fault.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..compiler.smc import draw_for
from ..errors import PlanError, RecipeError, suggest
from ..model.parse import parse_formula
from ..plan.fcs import Variable
from ..plan.smc import DRAW_KINDS, FAMILIES, Draw, ModelPlan, SubModel
from .spec_json import check_cluster, get_entry, read_variables

__all__ = ["FORMAT", "VERSION", "model_plan_to_spec", "spec_to_model_plan"]

FORMAT = "recipe_compiler.model_plan"
VERSION = 1

_KEYS = ("format", "version", "formula", "cluster", "auxiliary", "methods", "variables",
         "models", "draws", "groupings")
_ROLES = ("outcome", "covariate", "auxiliary")


def model_plan_to_spec(plan: ModelPlan) -> dict[str, Any]:
    """The plan as a JSON-ready dict; ``spec_to_model_plan(model_plan_to_spec(p)) == p``."""
    out = {
        "format": FORMAT,
        "version": VERSION,
        "formula": plan.formula,
        "cluster": plan.cluster,
        "auxiliary": list(plan.auxiliary),
        "methods": dict(plan.methods),
        "variables": [{"name": v.name, "role": v.role, "level": v.level, "kind": v.kind,
                       "n_missing": v.n_missing} for v in plan.variables],
        "models": [{"dependent": m.dependent, "family": m.family, "level": m.level,
                    "role": m.role, "formula": m.formula(plan.cluster), "reason": m.reason}
                   for m in plan.models],
        "draws": [{"variable": d.variable, "how": d.how, "reason": d.reason}
                  for d in plan.draw_table],
    }
    if plan.groupings:
        out["groupings"] = list(plan.groupings)
    return out


def spec_to_model_plan(spec: Mapping[str, Any]) -> ModelPlan:
    """Build and validate a :class:`ModelPlan` from a spec dict.

    Raises
    ------
    PlanError
        Naming the entry at fault: a wrong ``format`` or ``version``, an unknown
        key, variable, role, family or draw kind, a model formula that does not
        parse or uses a column that is not a plan variable, a target without a
        draw or without a model.
    """
    if not isinstance(spec, Mapping):
        raise PlanError(f"a plan spec must be a JSON object, got {type(spec).__name__}")
    if spec.get("format") != FORMAT:
        raise PlanError(f"spec 'format' must be {FORMAT!r}, got {spec.get('format')!r}")
    if spec.get("version") != VERSION:
        raise PlanError(f"spec 'version' {spec.get('version')!r} is not supported; this reader "
                        f"understands version {VERSION}")
    unknown = [k for k in spec if k not in _KEYS]
    if unknown:
        raise PlanError(f"spec: unknown key {unknown[0]!r}; valid keys: {', '.join(_KEYS)}")
    groupings = _outer(spec)
    variables = read_variables(get_entry(spec, "variables", list, "spec"),
                               max_level=3 if groupings else 2)
    for v in variables:
        if v.role not in ("cluster", "target", "covariate"):
            raise PlanError(f"variables: {v.name!r} has role {v.role!r}; a model-based plan has "
                            "the roles 'cluster', 'target' and 'covariate'")
    cluster = spec.get("cluster")
    if groupings:
        declared = [v.name for v in variables if v.role == "cluster"]
        levels = [next(v.level for v in variables if v.name == g) if g in declared else None
                  for g in groupings]
        if cluster != groupings[0] or declared != list(groupings) or levels != [2, 3]:
            raise PlanError(f"spec 'groupings' {list(groupings)!r}: the first must be 'cluster' "
                            f"({cluster!r}), and both the variables of role 'cluster' in this "
                            f"order, with levels 2 and 3 (have {declared!r}, levels {levels})")
    else:
        check_cluster(cluster, variables)
    if cluster is None:
        raise PlanError("spec 'cluster' is null; a model-based plan needs a cluster variable")
    formula = get_entry(spec, "formula", str, "spec")
    names = [v.name for v in variables]
    auxiliary = tuple(_names(spec.get("auxiliary", []), names, "auxiliary"))
    methods = get_entry(spec, "methods", dict, "spec") if "methods" in spec else {}
    for column, family in methods.items():
        if column not in names or family not in FAMILIES:
            raise PlanError(f"methods[{column!r}]={family!r}: the column must be a plan "
                            f"variable and the family one of {', '.join(FAMILIES)}")
    models = tuple(_model(e, i, str(cluster), names, groupings[1] if groupings else "")
                   for i, e in enumerate(get_entry(spec, "models", list, "spec")))
    draws = tuple(_draw(e, i, variables)
                  for i, e in enumerate(get_entry(spec, "draws", list, "spec")))
    _check_coverage(variables, models, draws, formula)
    return ModelPlan(formula=formula, cluster=cluster, variables=tuple(variables),
                     models=models, draw_table=draws, auxiliary=auxiliary,
                     methods=tuple(sorted(methods.items())), groupings=groupings)


def _outer(spec: Mapping[str, Any]) -> tuple[str, ...]:
    """The ``groupings`` entry of a three-level spec (two names), else ``()``."""
    if "groupings" not in spec:
        return ()
    entry = get_entry(spec, "groupings", list, "spec")
    if len(entry) != 2 or not all(isinstance(g, str) for g in entry):
        raise PlanError(f"spec 'groupings' must list the two nested grouping factors, "
                        f"innermost first (e.g. ['school:class', 'school']), got {entry!r}")
    return tuple(entry)


def _names(value: object, names: list[str], where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PlanError(f"spec {where!r} must be a list of column names, got {value!r}")
    for v in value:
        if v not in names:
            raise PlanError(f"spec {where!r}: {v!r} is not a plan variable; {suggest(v, names)}")
    return value


def _model(entry: object, i: int, cluster: str, names: list[str], outer: str) -> SubModel:
    where = f"models[{i}]"
    if not isinstance(entry, Mapping):
        raise PlanError(f"{where} must be an object with dependent, family, level, role, "
                        "formula, reason")
    dependent = get_entry(entry, "dependent", str, where)
    where = f"models[{i}] ({dependent!r})"
    family, role = get_entry(entry, "family", str, where), get_entry(entry, "role", str, where)
    level = get_entry(entry, "level", int, where)
    for key, value, valid in (("family", family, FAMILIES), ("role", role, _ROLES),
                              ("level", level, (1, 2, 3) if outer else (1, 2))):
        if value not in valid:
            raise PlanError(f"{where}: {key} {value!r} is not valid; choose one of "
                            + ", ".join(map(repr, valid)))
    text = get_entry(entry, "formula", str, where)
    try:  # a level-2 model is parsed with a random part, so that cm() is allowed, then dropped
        parsed = parse_formula(text if level == 1 else f"{text} + (1 | {cluster})")
    except RecipeError as exc:
        raise PlanError(f"{where}: the formula {text!r} does not parse: {exc}") from None
    random = parsed.random
    if parsed.outcome != dependent or random is None or random.cluster != cluster:
        raise PlanError(f"{where}: the formula {text!r} must have the dependent "
                        f"{dependent!r} left of '~'" + (f" and the random part '(... | "
                                                        f"{cluster})'" if level == 1 else ""))
    extra = parsed.more_random
    if extra and (level == 3 or len(extra) > 1 or extra[0].cluster != outer
                  or extra[0].slopes or not extra[0].intercept):
        raise PlanError(f"{where}: the formula {text!r} may add only the outer random "
                        + (f"intercept '(1 | {outer})'" if outer and level < 3 else
                           "intercept of a three-level plan at levels 1 and 2"))
    for c in parsed.columns:
        if c not in names:
            raise PlanError(f"{where}: the formula uses {c!r}, which is not a plan variable; "
                            f"{suggest(c, names)}")
    return SubModel(dependent=dependent, family=family, level=level, fixed=parsed.terms,
                    random=random.slopes if level == 1 else (), role=role,
                    intercept=parsed.intercept,
                    random_intercept=random.intercept if level == 1 else False,
                    reason=get_entry(entry, "reason", str, where) if "reason" in entry else "",
                    outer=outer if extra else "")


def _draw(entry: object, i: int, variables: list[Variable]) -> Draw:
    where = f"draws[{i}]"
    if not isinstance(entry, Mapping):
        raise PlanError(f"{where} must be an object with variable, how, reason")
    name = get_entry(entry, "variable", str, where)
    targets = [v.name for v in variables if v.role == "target"]
    if name not in targets:
        raise PlanError(f"{where}: {name!r} is not an incomplete variable (role 'target') of "
                        f"the plan; {suggest(name, targets)}")
    how = get_entry(entry, "how", str, where)
    if how not in DRAW_KINDS:
        raise PlanError(f"{where} ({name!r}): how {how!r} is not valid; choose one of "
                        + ", ".join(map(repr, DRAW_KINDS)))
    return Draw(name, how, get_entry(entry, "reason", str, where) if "reason" in entry else "")


def _check_coverage(variables: list[Variable], models: tuple[SubModel, ...],
                    draws: tuple[Draw, ...], formula: str) -> None:
    """One model per dependent, the outcome model first, a draw and a model per target."""
    dependents = [m.dependent for m in models]
    repeated = {d for d in dependents if dependents.count(d) > 1}
    if repeated:
        raise PlanError(f"models: {sorted(repeated)[0]!r} is the dependent of more than one "
                        "model")
    if not models or models[0].role != "outcome" or \
            parse_formula(formula).outcome != models[0].dependent:
        raise PlanError("models: the first model must be the outcome model of the formula "
                        f"{formula!r} (role 'outcome')")
    drawn = [d.variable for d in draws]
    for v in variables:
        if v.role != "target":
            continue
        if v.name not in dependents:
            raise PlanError(f"models: the incomplete variable {v.name!r} has no model of its "
                            "own, so its missing values have no distribution")
        if drawn.count(v.name) != 1:
            raise PlanError(f"draws: the incomplete variable {v.name!r} must have exactly one "
                            f"draw entry, it has {drawn.count(v.name)}")
    for i, d in enumerate(draws):
        level = next(v.level for v in variables if v.name == d.variable)
        valid = draw_for(d.variable, level, models).how
        if d.how != valid and not (d.how == "metropolis" and valid.startswith("exact")):
            raise PlanError(f"draws[{i}] ({d.variable!r}): {d.how!r} does not fit the models, "
                            f"which call for {valid!r}" + (" (or 'metropolis')"
                                                           if valid.startswith("exact") else ""))
