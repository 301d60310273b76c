"""A :class:`~recipe_compiler.plan.Plan` as a plain, JSON-ready dict, and back.

The spec is meant to be read and edited by hand: change a code in
``predictors``, delete a predictor, swap a method, then load it with
:func:`~recipe_compiler.export.plan_files.load_plan`. Loading validates everything
and names the offending entry.

Layout (version 1)::

    {"format": "recipe_compiler.plan", "version": 1,
     "formula": "...", "options": {...}, "cluster": "sch",
     "variables": [{"name", "role", "level", "kind", "n_missing"}, ...],
     "methods": {"lpo": "2l.pmm", ...},
     "predictors": {"lpo": {"sch": -2, "iqv": 3, ...}, ...},      # non-zero cells
     "provenance": [{"target", "predictor", "code", "step", "reason"}, ...],
     "derived": [{"name", "op", "parents", "detail"}, ...],
     "visit_sequence": ["lpo", "cm(lpo)", ...]}

A plan with several grouping factors (three-level or crossed) adds two keys,
``"groupings"`` (innermost first for nested factors: ``["school:class",
"school"]``) and ``"nesting"`` (``"nested"`` or ``"crossed"``); ``"cluster"`` is
the first grouping. The variables with role ``cluster`` are the groupings, in
that order; levels run to 3 in nested plans; a ``cm`` entry's ``detail`` names
the grouping it averages over. A two-level spec has neither key, so it is the
same as before these plans existed.

``predictors`` is authoritative for the codes; ``provenance`` explains them.
A cell whose code in ``predictors`` differs from its provenance entry (or that
``predictors`` no longer lists, or that has no provenance entry) gets the step
``"edited by hand"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, cast, get_args

from ..compiler.graph import ancestors, derived_graph
from ..compiler.methods import DERIVED_METHODS, METHODS, target_scope
from ..compiler.methods import names as scope_methods
from ..compiler.options import make_options
from ..errors import FormulaError, PlanError, suggest
from ..model.expr import parse_expr
from ..plan import CODES, Cell, Derived, DerivedOp, Plan, Role, Variable

__all__ = ["EDITED", "FORMAT", "VERSION", "check_cluster", "get_entry", "plan_to_spec",
           "read_variables", "spec_to_plan"]

FORMAT = "recipe_compiler.plan"
VERSION = 1
#: The provenance step of a cell changed, added or removed in a hand-edited spec.
EDITED = "edited by hand"

_KEYS = ("format", "version", "formula", "options", "cluster", "groupings", "nesting",
         "variables", "methods", "predictors", "provenance", "derived", "visit_sequence")
#: The ``nesting`` of a spec with several grouping factors.
NESTINGS = ("nested", "crossed")


def plan_to_spec(plan: Plan) -> dict[str, Any]:
    """The plan as a JSON-ready dict (see the module docstring for the layout).

    Parameters
    ----------
    plan : Plan

    Returns
    -------
    dict
        Plain ``dict``/``list``/``str``/``int`` values only;
        ``spec_to_plan(plan_to_spec(plan)) == plan``.
    """
    predictors: dict[str, dict[str, int]] = {}
    for c in plan.cells:
        if c.code:
            predictors.setdefault(c.target, {})[c.predictor] = c.code
    several = ({"groupings": list(plan.groupings), "nesting": plan.nesting}
               if plan.several_groupings else {})
    return {
        "format": FORMAT,
        "version": VERSION,
        "formula": plan.formula,
        "options": plan.options.to_dict(),
        "cluster": plan.cluster,
        **several,
        "variables": [{"name": v.name, "role": v.role, "level": v.level, "kind": v.kind,
                       "n_missing": v.n_missing} for v in plan.variables],
        "methods": dict(plan.method_table),
        "predictors": predictors,
        "provenance": [{"target": c.target, "predictor": c.predictor, "code": c.code,
                        "step": c.step, "reason": c.reason} for c in plan.cells],
        "derived": [{"name": d.name, "op": d.op, "parents": list(d.parents),
                     "detail": d.detail} for d in plan.derived_defs],
        "visit_sequence": list(plan.visit),
    }


def spec_to_plan(spec: Mapping[str, Any]) -> Plan:
    """Build and validate a :class:`Plan` from a spec dict (possibly edited by hand).

    Parameters
    ----------
    spec : mapping
        As written by :func:`plan_to_spec`. ``provenance`` may be omitted: every
        cell of ``predictors`` then gets the step ``"edited by hand"``.

    Returns
    -------
    Plan

    Raises
    ------
    PlanError
        Naming the entry at fault: a missing or wrong ``format``/``version``, an
        unknown variable, role, method or derivation, a code outside the valid
        ones, a cycle among the derived variables, a derived variable used to
        predict one of its own ancestors; with several grouping factors, also
        ``groupings`` that are not the cluster variables in order, an unknown
        ``nesting``, a level that does not fit it, a ``cm`` over no grouping, a
        method of another scope, codes 3 and 4, a random slope without a
        grouping.
    """
    if not isinstance(spec, Mapping):
        raise PlanError(f"a plan spec must be a JSON object, got {type(spec).__name__}")
    _check_header(spec)
    options = get_entry(spec, "options", dict, "spec")
    try:
        opts = make_options(**options)
    except (TypeError, ValueError) as exc:  # TypeError: a key that is not a string
        raise PlanError(f"spec 'options': {exc}") from exc
    several = "groupings" in spec or "nesting" in spec
    variables = read_variables(get_entry(spec, "variables", list, "spec"),
                               max_level=3 if several else 2)
    names = [v.name for v in variables]
    cluster = spec.get("cluster")
    if several:
        groupings, nesting = _groupings(spec, variables)
    else:
        check_cluster(cluster, variables)
        groupings, nesting = (() if cluster is None else (cluster,)), ""
    derived = _derived(get_entry(spec, "derived", list, "spec"), variables, groupings)
    methods = _methods(get_entry(spec, "methods", dict, "spec"), variables, derived, groupings,
                       nesting)
    predictors = _predictors(get_entry(spec, "predictors", dict, "spec"), variables,
                             groupings)
    provenance = _provenance(spec.get("provenance", []), names)
    cells = _merge(provenance, predictors)
    _check_ancestry(cells, derived)
    visit = _visit(get_entry(spec, "visit_sequence", list, "spec"), variables)
    return Plan(formula=get_entry(spec, "formula", str, "spec"), options=opts, cluster=cluster,
                variables=tuple(variables), method_table=tuple(methods.items()),
                cells=tuple(cells), derived_defs=tuple(derived), visit=visit,
                groupings=groupings, nesting=nesting)


# ------------------------------------------------------------------ validation


_KIND_NAMES = {str: "a string", int: "an integer", list: "a list", dict: "an object"}
#: op -> (fewest, most) parents of a derived variable (None: no upper bound), and what they are.
_ARITY: dict[str, tuple[int, int | None, str]] = {
    "cm": (1, 1, "the variable whose cluster mean it is"),
    "cwc": (2, 2, "the variable and its cluster mean"),
    "product": (2, None, "the factors"),
    "dummy": (1, 1, "the categorical variable"),
    "expr": (1, None, "the variables of the expression"),
}


def get_entry(entry: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    """``entry[key]``, checked to be present and of type ``kind`` (a bool is no int)."""
    if key not in entry:
        raise PlanError(f"{where}: the key {key!r} is missing")
    value = entry[key]
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise PlanError(f"{where}: {key!r} must be {_KIND_NAMES[kind]}, got {value!r}")
    return value


def _check_header(spec: Mapping[str, Any]) -> None:
    if spec.get("format") != FORMAT:
        raise PlanError(f"spec 'format' must be {FORMAT!r}, got {spec.get('format')!r}; "
                        "is this a plan written by rc.save_plan()?")
    if "version" not in spec:
        raise PlanError(f"spec 'version' is missing; this reader understands version {VERSION}")
    if spec["version"] != VERSION:
        raise PlanError(f"spec 'version' {spec['version']!r} is not supported; this reader "
                        f"understands version {VERSION}")
    unknown = [k for k in spec if k not in _KEYS]
    if unknown:
        raise PlanError(f"spec: unknown key {unknown[0]!r}; valid keys: {', '.join(_KEYS)}")


def _known(name: object, names: list[str], where: str) -> str:
    """``name`` if it is a plan variable, else a PlanError naming ``where``."""
    if not isinstance(name, str) or name not in names:
        raise PlanError(f"{where}: {name!r} is not a variable of the plan; "
                        f"{suggest(str(name), names)}")
    return name


def read_variables(entries: list[Any], max_level: int = 2) -> list[Variable]:
    """The spec's ``variables`` entries as :class:`Variable` records.

    ``max_level`` is the highest level a variable may have (3 in a spec with
    several grouping factors).

    Raises
    ------
    PlanError
        An entry that is not an object, a missing or mistyped key, an unknown role
        or level, a negative ``n_missing``, or a name used twice (the message names
        the entry).
    """
    roles = get_args(Role)
    out: list[Variable] = []
    for i, e in enumerate(entries):
        where = f"variables[{i}]"
        if not isinstance(e, Mapping):
            raise PlanError(f"{where} must be an object with name, role, level, kind, n_missing")
        name = get_entry(e, "name", str, where)
        where = f"variables[{i}] ({name!r})"
        role = get_entry(e, "role", str, where)
        if role not in roles:
            raise PlanError(f"{where}: role {role!r} is not valid; choose one of "
                            + ", ".join(map(repr, roles)))
        level = get_entry(e, "level", int, where)
        if not 1 <= level <= max_level:
            valid = "1 or 2" if max_level == 2 else f"1 to {max_level}"
            raise PlanError(f"{where}: level must be {valid}, got {level!r}")
        n_missing = get_entry(e, "n_missing", int, where) if "n_missing" in e else 0
        if n_missing < 0:
            raise PlanError(f"{where}: n_missing must be >= 0, got {n_missing}")
        if any(v.name == name for v in out):
            raise PlanError(f"{where}: the variable {name!r} is listed twice")
        out.append(Variable(name, role, level, get_entry(e, "kind", str, where), n_missing))
    return out


def check_cluster(cluster: object, variables: list[Variable]) -> None:
    """Raise :class:`PlanError` unless ``cluster`` names the variable whose role is cluster."""
    declared = [v.name for v in variables if v.role == "cluster"]
    if cluster is None:
        if declared:
            raise PlanError(f"spec 'cluster' is null but variable {declared[0]!r} has role "
                            "'cluster'")
        return
    if not isinstance(cluster, str) or declared != [cluster]:
        raise PlanError(f"spec 'cluster' {cluster!r} must be the one variable with role "
                        f"'cluster'; variables with that role: {declared or 'none'}")


def _groupings(spec: Mapping[str, Any], variables: list[Variable]
               ) -> tuple[tuple[str, ...], Literal["", "nested", "crossed"]]:
    """The ``groupings`` and ``nesting`` of a spec that has them, checked against its variables.

    The groupings are the variables of role ``cluster`` in the order listed,
    ``cluster`` is the first, ``nesting`` fits their number, and so do the
    levels: nested groupings have levels 2, 3, ... (innermost first), crossed
    ones level 2, and measured variables no level above the top grouping's.
    """
    entry = get_entry(spec, "groupings", list, "spec")
    declared = [v.name for v in variables if v.role == "cluster"]
    if entry != declared or not all(isinstance(g, str) for g in entry):
        raise PlanError(f"spec 'groupings' {entry!r} must be the variables with role 'cluster', "
                        f"in the order they are listed: {declared}")
    cluster = spec.get("cluster")
    if cluster != (entry[0] if entry else None):
        raise PlanError(f"spec 'cluster' {cluster!r} must be the first grouping factor, "
                        f"{entry[0] if entry else None!r}")
    nesting = get_entry(spec, "nesting", str, "spec")
    valid = NESTINGS if len(entry) > 1 else ("",)
    if nesting not in valid:
        raise PlanError(f"spec 'nesting' {nesting!r} is not valid for {len(entry)} grouping "
                        f"factor(s); choose one of {', '.join(map(repr, valid))}")
    levels = {g: (k + 2 if nesting == "nested" else 2) for k, g in enumerate(entry)}
    top = max(levels.values(), default=1)
    for i, v in enumerate(variables):
        want = levels.get(v.name)
        if want is not None and v.level != want:
            raise PlanError(f"variables[{i}] ({v.name!r}): the grouping factor number "
                            f"{entry.index(v.name) + 1} of a {nesting or 'single'} design has "
                            f"level {want}, got {v.level}")
        if want is None and v.level > top:
            raise PlanError(f"variables[{i}] ({v.name!r}): level {v.level} is above the top "
                            f"level {top} of the grouping factors {entry}")
    return tuple(entry), cast(Literal["", "nested", "crossed"], nesting)


def _derived(entries: list[Any], variables: list[Variable], groupings: tuple[str, ...]
             ) -> list[Derived]:
    names = [v.name for v in variables]
    ops = get_args(DerivedOp)
    out: list[Derived] = []
    for i, e in enumerate(entries):
        where = f"derived[{i}]"
        if not isinstance(e, Mapping):
            raise PlanError(f"{where} must be an object with name, op, parents, detail")
        name = _known(get_entry(e, "name", str, where), names, where)
        where = f"derived[{i}] ({name!r})"
        op = get_entry(e, "op", str, where)
        if op not in ops:
            raise PlanError(f"{where}: op {op!r} is not valid; choose one of "
                            + ", ".join(map(repr, ops)))
        parents = get_entry(e, "parents", list, where)
        fewest, most, what = _ARITY[op]
        if not fewest <= len(parents) <= (most or len(parents)):
            count = f"{fewest}" if most == fewest else f"at least {fewest}"
            raise PlanError(f"{where}: op {op!r} takes {count} parents ({what}), got "
                            f"{len(parents)}: {parents!r}")
        for p in parents:
            _known(p, names, f"{where} parent")
            if p in groupings:
                raise PlanError(f"{where} parent: {p!r} is {_cluster_what(groupings)}, which "
                                "only groups the rows; a derived variable is computed from "
                                "values")
        if any(d.name == name for d in out):
            raise PlanError(f"{where}: {name!r} is defined twice")
        if op == "cm" and not groupings:
            raise PlanError(f"{where}: a cluster mean needs a cluster, and the spec has none")
        detail = get_entry(e, "detail", str, where) if "detail" in e else ""
        if op == "cm" and detail not in ("", *groupings):
            raise PlanError(f"{where}: detail {detail!r} must be the grouping factor the mean "
                            f"is taken over, one of {', '.join(map(repr, groupings))} (or '': "
                            f"the innermost, {groupings[0]!r})")
        if op == "expr":  # re-parsed by the safe expression language: never run as Python
            try:
                parse_expr(detail, parents, label=f"the detail {detail!r}")
            except FormulaError as exc:
                raise PlanError(f"{where}: {exc}") from None
        out.append(Derived(name, op, tuple(parents), detail))
    defined = {d.name for d in out}
    for v in variables:
        if (v.role == "derived") != (v.name in defined):
            problem = ("has role 'derived' but no entry in 'derived'" if v.role == "derived"
                       else f"has role {v.role!r} but is defined in 'derived'")
            raise PlanError(f"variable {v.name!r} {problem}")
    derived_graph({d.name: d.parents for d in out})
    _check_cwc(out)
    return out


def _check_cwc(derived: list[Derived]) -> None:
    """Each ``cwc`` entry's second parent is the ``cm`` entry of its first."""
    ops = {d.name: d for d in derived}
    for i, d in enumerate(derived):
        if d.op != "cwc":
            continue
        x, mean = d.parents
        m = ops.get(mean)
        if m is None or m.op != "cm" or m.parents != (x,):
            raise PlanError(f"derived[{i}] ({d.name!r}): the second parent {mean!r} must be the "
                            f"cluster mean of {x!r}, a derived entry with op 'cm' and parents "
                            f"[{x!r}]")


def _cluster_what(groupings: tuple[str, ...]) -> str:
    """How messages call the grouping columns: the cluster variable, or a grouping factor."""
    return "the cluster variable" if len(groupings) < 2 else "a grouping factor"


def _target_methods(level: int, groupings: tuple[str, ...], nesting: str
                    ) -> tuple[tuple[str, ...], str]:
    """The methods valid for a target of ``level``, and what the target is called."""
    what = f"level-{level} target" if groupings else "single-level target"
    if len(groupings) < 2:
        return scope_methods(target_scope(bool(groupings), level)), what
    if nesting == "crossed" and level > 1:
        return (), (f"{what} of a crossed design (a column constant within a crossed "
                    "grouping factor must be complete; such plans impute level-1 targets "
                    "only)")
    return (scope_methods("level3" if level == 3 else "multilevel"),
            f"{what} of a {nesting} design")


def _methods(table: dict[str, Any], variables: list[Variable], derived: list[Derived],
             groupings: tuple[str, ...], nesting: str) -> dict[str, str]:
    by_name = {v.name: v for v in variables}
    ops = {d.name: d for d in derived}
    for name, method in table.items():
        where = f"methods[{name!r}]"
        v = by_name[_known(name, list(by_name), "methods")]
        if not isinstance(method, str) or method not in METHODS:
            raise PlanError(f"{where}: {method!r} is not a known method; valid methods: "
                            + ", ".join(METHODS))
        if v.role == "derived":
            valid: tuple[str, ...] = (ops[name].method,)
            what = "derived variable"
        elif v.role == "target":
            valid, what = _target_methods(v.level, groupings, nesting)
        else:
            raise PlanError(f"{where}: {name!r} has role {v.role!r} and is not imputed; only "
                            "targets and derived variables have a method")
        if method not in valid:
            what = "derived variable" if method in DERIVED_METHODS else what
            raise PlanError(f"{where}: {method!r} is not valid for this {what}; choose one of "
                            + (", ".join(valid) or "none"))
    for v in variables:
        if v.role in ("target", "derived") and v.name not in table:
            raise PlanError(f"methods: {v.role} {v.name!r} has no method")
    return dict(table)


def _predictors(table: dict[str, Any], variables: list[Variable],
                groupings: tuple[str, ...]) -> dict[tuple[str, str], int]:
    names = [v.name for v in variables]
    several = len(groupings) > 1
    codes = [c for c in sorted(CODES) if not (several and c in (3, 4))]
    valid = ", ".join(map(str, codes))
    if several:
        valid += " (codes 3 and 4 have no meaning with several grouping factors: the cluster "
        valid += "means are derived variables of their own)"
    else:
        valid += " (" + "; ".join(f"{c} {m}" for c, m in CODES.items()) + ")"
    cluster = groupings[0] if len(groupings) == 1 else None
    marks = (f"the cluster variable, which is {cluster!r}" if not several else
             "a grouping factor, one of " + ", ".join(map(repr, groupings)))
    out: dict[tuple[str, str], int] = {}
    for target, row in table.items():
        _known(target, names, "predictors")
        if not isinstance(row, Mapping):
            raise PlanError(f"predictors[{target!r}] must be an object {{predictor: code}}")
        for predictor, code in row.items():
            where = f"predictors[{target!r}][{predictor!r}]"
            _known(predictor, names, where)
            if isinstance(code, bool) or not isinstance(code, int) or code not in codes:
                raise PlanError(f"{where}: code {code!r} is not valid; valid codes: {valid}")
            if predictor == target and code:
                raise PlanError(f"{where}: a variable cannot predict itself")
            if code == -2 and predictor not in groupings:
                raise PlanError(f"{where}: code -2 marks {marks}")
            if code not in (-2, 0) and predictor in groupings:
                raise PlanError(f"{where}: code {code} is not valid for "
                                f"{_cluster_what(groupings)} {predictor!r}; it takes code -2 "
                                "(or 0: not used)")
            out[(target, predictor)] = code
    if several:
        _check_slopes(out, {v.name: v.level for v in variables}, groupings)
    return out


def _check_slopes(codes: dict[tuple[str, str], int], levels: dict[str, int],
                  groupings: tuple[str, ...]) -> None:
    """Code 2 (a random slope on the target's first -2 grouping): level-1 targets with one."""
    for (target, predictor), code in codes.items():
        if code != 2:
            continue
        where = f"predictors[{target!r}][{predictor!r}]"
        if levels[target] != 1:
            raise PlanError(f"{where}: code 2 (a random slope) is valid for level-1 targets "
                            f"only; {target!r} has level {levels[target]}; use code 1")
        if not any(codes.get((target, g)) == -2 for g in groupings):
            raise PlanError(f"{where}: code 2 puts a random slope on the target's first "
                            f"grouping factor of code -2, and {target!r} has none; give one of "
                            + ", ".join(map(repr, groupings)) + " code -2, or use code 1")


def _provenance(entries: object, names: list[str]) -> list[Cell]:
    if not isinstance(entries, list):
        raise PlanError(f"spec: 'provenance' must be a list, got {entries!r}")
    out: list[Cell] = []
    seen: set[tuple[str, str]] = set()
    for i, e in enumerate(entries):
        where = f"provenance[{i}]"
        if not isinstance(e, Mapping):
            raise PlanError(f"{where} must be an object with target, predictor, code, step, "
                            "reason")
        target = _known(get_entry(e, "target", str, where), names, f"{where} target")
        predictor = _known(get_entry(e, "predictor", str, where), names, f"{where} predictor")
        code = get_entry(e, "code", int, where)
        if code not in CODES:
            raise PlanError(f"{where}: code {code!r} is not valid; valid codes: "
                            + ", ".join(str(c) for c in sorted(CODES)))
        if (target, predictor) in seen:
            raise PlanError(f"{where}: a second entry for target {target!r}, predictor "
                            f"{predictor!r}; each cell has one provenance entry")
        seen.add((target, predictor))
        out.append(Cell(target, predictor, code, get_entry(e, "step", str, where),
                        get_entry(e, "reason", str, where)))
    return out


def _merge(provenance: list[Cell], predictors: dict[tuple[str, str], int]) -> list[Cell]:
    """Cells with the codes of ``predictors`` and the explanations of ``provenance``."""
    cells: list[Cell] = []
    for c in provenance:
        code = predictors.get((c.target, c.predictor), 0)
        if code == c.code:
            cells.append(c)
        else:
            was = f"was code {c.code} ({c.step}: {c.reason})"
            reason = (f"removed from the predictors; {was}" if code == 0
                      else f"code set to {code}; {was}")
            cells.append(Cell(c.target, c.predictor, code, EDITED, reason))
    known = {(c.target, c.predictor) for c in provenance}
    for (target, predictor), code in predictors.items():
        if (target, predictor) not in known:
            cells.append(Cell(target, predictor, code, EDITED, "added to the predictors"))
    return cells


def _check_ancestry(cells: list[Cell], derived: list[Derived]) -> None:
    parents = {d.name: d.parents for d in derived}
    above = {name: ancestors(parents, name) for name in parents}
    for c in cells:
        if c.code and c.target in above.get(c.predictor, ()):
            raise PlanError(f"predictors[{c.target!r}][{c.predictor!r}]: the derived variable "
                            f"{c.predictor!r} is computed from {c.target!r}, so it cannot "
                            f"predict {c.target!r} (FIMD 7.5 step 10)")


def _visit(sequence: list[Any], variables: list[Variable]) -> tuple[str, ...]:
    roles = {v.name: v.role for v in variables}
    for i, name in enumerate(sequence):
        role = roles[_known(name, list(roles), f"visit_sequence[{i}]")]
        if role not in ("target", "derived"):
            what = ("a grouping factor" if role == "cluster" and sum(
                r == "cluster" for r in roles.values()) > 1
                else "the cluster variable" if role == "cluster" else f"a {role}")
            raise PlanError(f"visit_sequence[{i}]: {name!r} is {what}, which is never "
                            "imputed; only targets and derived variables are visited")
    for v in variables:
        if v.role == "target" and v.name not in sequence:
            raise PlanError(f"visit_sequence: the target {v.name!r} is never visited, so it "
                            "would never be imputed")
    return tuple(sequence)
