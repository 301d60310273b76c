"""A :class:`~recipe_compiler.plan.Plan` as a standalone R script for mice.

The script is written the way FIMD section 7.10 writes it: pad the data with
the derived columns, ``make.method``/``make.predictorMatrix``, one
``pred["target", c(...)] <- c(...)`` line per row, the passive methods, the
visit sequence and one ``mice()`` call.

Two flavors:

``"miceadds"`` (the book's)
    ``2l.pmm``, ``2l.continuous`` and ``2l.binary`` for level-1 targets and
    ``2l.groupmean`` for cluster means come from miceadds; all three read
    codes 3 and 4 like the plan does.
``"mice"``
    Methods of mice only. Level-1 continuous targets get ``2l.pan`` (needs the
    R package pan), which reads codes 3 and 4 as the plan does, or ``2l.norm``
    when their row only has code-2 predictors (mice's ``2l.norm`` ignores
    codes 1, 3 and 4). Binary ones get ``2l.bin``, which has no codes 3 and 4:
    their cluster means become explicit passive columns with code 1. Cluster
    means are passive ``~ I(ave(x, cluster))``.

A plan with several grouping factors (three-level or crossed) has no mice
method: the ``"miceadds"`` flavor writes miceadds' ``ml.lmer`` (see
:mod:`~recipe_compiler.export.r_ml`), the ``"mice"`` flavor refuses it.

Plan names such as ``cwc(iqv):sex`` are no R names; :func:`r_names` maps each
plan variable to one (``cwc_iqv.sex``), and the script starts with the table.
Every user string (names, category labels, formula text, expressions) enters
the script through :mod:`~recipe_compiler.export.r_literal`: as an escaped R
string literal, a backtick-quoted name or comment lines, so the script always
parses and no text becomes code.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..compiler.graph import initial_order
from ..errors import OptionError, PlanError, one_of
from ..model.expr import parse_expr, to_r
from ..plan import CODES, Derived, Plan
from .r_literal import (
    WIDTH,
    is_syntactic,
    load_lines,
    make_name,
    names_table,
    pred_row,
    r_comment,
    r_name,
    r_string,
    r_strings,
    r_vec,
    r_wrap,
)
from .r_ml import MlMethods, grouping_parts, ml_script, plan_header

__all__ = ["FLAVORS", "plan_to_r", "r_names"]

FLAVORS = ("miceadds", "mice")

_NUMBER = re.compile(r"^-?[0-9]+(?:\.[0-9]+)?$")
#: mice methods that impute a factor (the column must be one).
_FACTOR_METHODS = frozenset({"logreg", "polyreg", "polr"})
#: Two-level categorical methods that neither mice nor miceadds has: the single-level
#: method written instead, and what it leaves out.
_SINGLE_LEVEL_STAND_INS = {
    "2l.polyreg": ("polyreg", "mice and miceadds have no two-level nominal method; the "
                   "single-level multinomial logit has no cluster random effects (the cluster "
                   "means enter as fixed predictors)"),
    "2l.polr": ("polr", "mice and miceadds have no two-level ordinal method; mice's polr is a "
                "single-level proportional-odds logit, not the plan's two-level probit (the "
                "cluster means enter as fixed predictors)"),
}

#: A plan with several grouping factors: miceadds' ml.lmer and its ``model`` per method, and
#: mice's two-level-only method of the same draw (for outermost-level targets).
_ML_LMER = "ml.lmer"
_ML_MODELS = {"ml.pmm": "pmm", "ml.norm": "continuous", "ml.bin": "binary"}
_LEVEL_ONLY = {"ml.pmm": "2lonly.pmm", "ml.norm": "2lonly.norm", "3lonly.pmm": "2lonly.pmm",
               "3lonly.norm": "2lonly.norm", "ml.bin": "2lonly.function",
               "3lonly.polyreg": "2lonly.function"}
#: The mice method miceadds' 2lonly.function wraps, per plan method.
_LEVEL_ONLY_FUNCTIONS = {"ml.bin": "logreg", "3lonly.polyreg": "polyreg"}

#: Methods of the miceadds package, which the script must then load.
_MICEADDS_METHODS = frozenset({"2l.pmm", "2l.continuous", "2l.binary", "2l.groupmean",
                               "2lonly.function"})


# ------------------------------------------------------------------ names


def r_names(plan: Plan) -> dict[str, str]:
    """A valid, distinct R name for every plan variable, in plan order.

    Measured columns keep their names when these are valid R names.
    ``cm(iqv)`` becomes ``cm_iqv``, ``cwc(iqv)`` ``cwc_iqv``, ``cm(x, school)``
    ``cm_x_school`` (a grouping ``school:class``: ``school_class``), a product joins its
    factors with dots (``cwc(iqv):sex`` -> ``cwc_iqv.sex``), a dummy appends its
    level (``C(den)[T.2]`` -> ``den_2``); anything else is sanitised as R's
    ``make.names`` would. Clashes get a suffix ``_2``, ``_3``, ...; measured
    columns are named first, so they keep their names.

    Parameters
    ----------
    plan : Plan

    Returns
    -------
    dict
        Plan name -> R name.
    """
    return _assign_names(plan.names, plan.derived)


def _assign_names(names: Sequence[str], derived: dict[str, Derived]) -> dict[str, str]:
    out: dict[str, str] = {}
    used: set[str] = set()
    for name in sorted(names, key=lambda n: n in derived):
        base = candidate = _base_name(name, derived)
        k = 1
        while candidate in used:
            k += 1
            candidate = f"{base}_{k}"
        used.add(candidate)
        out[name] = candidate
    return {n: out[n] for n in names}


def _base_name(name: str, derived: dict[str, Derived]) -> str:
    d = derived.get(name)
    if d is None or d.op == "expr":
        return make_name(name)
    parents = [_base_name(p, derived) for p in d.parents]
    if d.op in ("cm", "cwc"):  # the grouping of cm(x, school) or of cwc's cluster mean
        mean = d if d.op == "cm" else derived.get(d.parents[1], d)
        return make_name(f"{d.op}_{parents[0]}_{mean.detail}" if mean.detail
                         else f"{d.op}_{parents[0]}")
    if d.op == "product":
        return ".".join(parents)
    return make_name(f"{parents[0]}_{d.detail}")


# ------------------------------------------------------------------ translation


@dataclass
class _Script:
    """The plan translated to R names and methods, before rendering."""

    names: dict[str, str]
    measured: list[str]
    derived: list[str]
    methods: dict[str, str]
    rows: dict[str, list[tuple[str, int]]]
    visit: list[str]
    notes: list[str] = field(default_factory=list)
    added: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    factors: list[str] = field(default_factory=list)


def _translate(plan: Plan, flavor: str) -> _Script:
    methods = dict(plan.method_table)
    rows = {t: plan.predictors(t) for t in [*plan.targets, *plan.derived]}
    extra: dict[str, Derived] = {}
    new_methods: dict[str, str] = {}
    changes: dict[tuple[str, str], list[str]] = {}
    explicit: dict[str, list[str]] = {}
    added_for: dict[str, str] = {}  # cluster means the plan lacks: the R method needing them
    for t in plan.targets:
        new, why = _target_method(plan, t, methods[t], rows[t], flavor)
        new_methods[t] = new
        if new != methods[t]:
            changes.setdefault((f"{methods[t]} -> {new}", why), []).append(t)
        before = set(extra)
        if new == "2l.bin":
            rows[t], explicit[t] = _explicit_means(plan, rows[t], extra)
        elif methods[t] in _SINGLE_LEVEL_STAND_INS:
            row, _ = _explicit_means(plan, rows[t], extra)
            rows[t] = [(p, 1) for p, code in row if code > 0]  # no cluster, no random slopes
        added_for.update({name: new for name in set(extra) - before})
    every = {**plan.derived, **extra}
    names = _assign_names([*plan.names, *extra], every)
    notes = [f"{', '.join(names[t] for t in targets)}: {change} ({why})"
             for (change, why), targets in changes.items()]
    notes += [f"{names[t]}: 2l.bin has no codes 3 and 4, so {', '.join(names[p] for p in ps)} "
              "enter with code 1 (2 for code 4) and their cluster means with code 1"
              for t, ps in explicit.items() if ps]
    if flavor == "mice" and any(d.op == "cm" for d in every.values()):
        notes.append("cluster means: passive ~ I(ave(x, cluster)) (miceadds' 2l.groupmean in "
                     "the plan)")
    cluster = names[plan.cluster] if plan.cluster else ""
    for name, d in extra.items():  # 2l.groupmean rows of the cluster means the plan lacked
        rows[name] = [(str(plan.cluster), -2), (d.parents[0], 1)]
    for name, d in every.items():
        new_methods[name] = _derived_method(d, names, cluster, flavor)
        if new_methods[name] != "2l.groupmean":
            rows[name] = []
    level2 = {names[t]: "polr" if methods[t] == "2lonly.polr" else "polyreg"
              for t in plan.targets if new_methods[t] == "2lonly.function"}
    args = []
    if level2:  # miceadds' 2lonly.function reads its settings per variable from these lists
        args = ["imputationFunction = list("
                + ", ".join(f"{r_name(t)} = {r_string(f)}" for t, f in level2.items()) + ")",
                "cluster_var = list("
                + ", ".join(f"{r_name(t)} = {r_string(cluster)}" for t in level2) + ")"]
    return _Script(
        names=names,
        measured=[v.name for v in plan.variables if v.role != "derived"],
        derived=list(every),
        methods=new_methods,
        rows=rows,
        visit=_visit(plan, extra),
        notes=notes,
        added={n: f"cluster mean of {d.parents[0]}, for {added_for[n]}"
               for n, d in extra.items()},
        args=args,
        factors=[t for t in plan.targets if new_methods[t] in _FACTOR_METHODS],
    )


def _target_method(plan: Plan, target: str, method: str, row: list[tuple[str, int]],
                   flavor: str) -> tuple[str, str]:
    """The R method of a target and why it differs from the plan's (if it does)."""
    if method in ("2lonly.polyreg", "2lonly.polr"):
        inner = "polr" if method == "2lonly.polr" else "polyreg"
        if flavor == "miceadds":
            return "2lonly.function", f"miceadds' level-2 wrapper around mice's {inner}"
        return "2lonly.pmm", "mice has no categorical level-2 method"
    if method in _SINGLE_LEVEL_STAND_INS:
        return _SINGLE_LEVEL_STAND_INS[method]
    if method == "polr":
        return "polr", "mice's polr is the proportional-odds logit, the plan's polr a probit"
    if method not in ("2l.pmm", "2l.norm", "2l.bin"):
        return method, ""
    if flavor == "miceadds":
        new = {"2l.norm": "2l.continuous", "2l.bin": "2l.binary"}.get(method, method)
        return new, "the miceadds method that reads codes 3 and 4 as the plan does"
    if method == "2l.bin" or plan.variable(target).kind == "binary":
        return "2l.bin", "binary; it must be coded 0/1"
    if all(code in (-2, 2) for _, code in row):
        return "2l.norm", "mice's 2l.norm uses code-2 predictors only, which is all this row has"
    return "2l.pan", ("needs the R package pan; it reads codes 3 and 4 as the plan does: 3 "
                      "adds the cluster mean, 4 the cluster mean and a random slope")


def _explicit_means(plan: Plan, row: list[tuple[str, int]], extra: dict[str, Derived]
                    ) -> tuple[list[tuple[str, int]], list[str]]:
    """A 2l.bin row: codes 3 -> 1 and 4 -> 2, plus code 1 for those predictors' cluster means.

    Cluster means the plan lacks are added to ``extra``. Returns the new row and
    the predictors whose code was 3 or 4.
    """
    existing = {d.parents[0]: d.name for d in plan.derived_defs if d.op == "cm"}
    out = dict(row)
    changed = [p for p, code in row if code in (3, 4)]
    for predictor in changed:
        out[predictor] -= 2
        mean = existing.get(predictor, f"cm({predictor})")
        if mean not in plan.derived:
            extra.setdefault(mean, Derived(mean, "cm", (predictor,)))
        out[mean] = max(out.get(mean, 0), 1)
    order = {n: i for i, n in enumerate([*plan.names, *extra])}
    return sorted(out.items(), key=lambda pc: order[pc[0]]), changed


def _derived_method(d: Derived, names: dict[str, str], cluster: str, flavor: str) -> str:
    """mice's method string of a derived variable, in R names (``cluster``: its R name).

    A passive method is R code inside the method string: names in it are
    written by :func:`r_name`, a category label by :func:`r_string` and an
    expression by the expression language's :func:`~recipe_compiler.model.expr.to_r`
    (``np.log`` -> ``log``, ``**`` -> ``^``).
    """
    p = [r_name(names[x]) for x in d.parents]
    if d.op == "cm":
        return ("2l.groupmean" if flavor == "miceadds"
                else f"~ I(ave({p[0]}, {r_name(cluster)}))")
    if d.op == "cwc":
        return f"~ I({p[0]} - {p[1]})"
    if d.op == "product":
        return f"~ I({' * '.join(p)})"
    if d.op == "dummy":
        level = d.detail if _NUMBER.match(d.detail) else r_string(d.detail)
        return f"~ I(as.integer({p[0]} == {level}))"
    expr = parse_expr(d.detail, d.parents, label=d.name)
    return f"~ I({to_r(expr, lambda n: r_name(names[n]))})"


def _visit(plan: Plan, extra: dict[str, Derived]) -> list[str]:
    """The plan's visit sequence, with each added cluster mean after its parent.

    Derived variables of complete columns, which the plan's sequence never
    visits, come first (parents first): mice computes a passive column only
    when it visits it.
    """
    seq: list[str] = []
    for v in plan.visit:
        seq.append(v)
        seq.extend(n for n, d in extra.items() if d.parents[0] == v)
    every = {**plan.derived, **extra}
    order = initial_order({n: d.parents for n, d in every.items()}, list(every))
    return [n for n in order if n not in seq] + seq


# ------------------------------------------------------------------ rendering


def plan_to_r(plan: Plan, flavor: str = "miceadds", m: int = 5, maxit: int = 10,
              seed: int | None = None, data_name: str = "d") -> str:
    """A standalone R script that runs the plan with mice.

    Parameters
    ----------
    plan : Plan
    flavor : {"miceadds", "mice"}
        ``"miceadds"``: the book's methods (``2l.pmm``, ``2l.groupmean``);
        ``"mice"``: methods of mice only (see the module docstring). A plan with
        several grouping factors: ``"miceadds"`` writes miceadds' ``ml.lmer``.
    m, maxit : int
        Number of imputations and of iterations.
    seed : int, optional
        ``seed`` of the ``mice()`` call; omitted when ``None``.
    data_name : str
        The R variable holding the user's data.

    Returns
    -------
    str
        The script, ending with a newline.

    Raises
    ------
    OptionError
        An unknown flavor, a non-positive ``m``/``maxit``, a non-integer seed or
        a ``data_name`` that is no R name.
    PlanError
        A plan with several grouping factors and ``flavor="mice"`` (mice has no
        method for them), or with a level-1 target whose row has none.
    """
    if flavor not in FLAVORS:
        raise one_of("flavor", flavor, FLAVORS)
    for name, value in (("m", m), ("maxit", maxit)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise OptionError(f"{name} must be a positive integer, got {value!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise OptionError(f"seed must be an integer or None, got {seed!r}")
    if not is_syntactic(data_name):
        raise OptionError(f"data_name={data_name!r} is not a valid R name; use letters, "
                          "digits, '.' and '_', starting with a letter")
    if plan.several_groupings:
        return _several(plan, flavor, m, maxit, seed, data_name)
    s = _translate(plan, flavor)
    r = s.names
    d = data_name
    out = _header(plan, s, flavor)
    libraries = ["mice"]
    if _MICEADDS_METHODS & set(s.methods.values()):
        libraries.append("miceadds")
    out += [f"library({lib})" for lib in libraries] + [""]
    out += load_lines(s.measured, [r[n] for n in s.measured], d)
    if s.factors:
        out.append("# logreg and polyreg impute factors")
        out += [f"{d}${r_name(r[t])} <- as.{_factor_kind(s.methods[t])}({d}${r_name(r[t])})"
                for t in s.factors]
    if s.derived:
        out += ["", "# derived variables start empty; mice recomputes them from their parents",
                r_wrap(r_vec([f"{r_name(r[n])} = NA" for n in s.derived],
                           f"{d} <- data.frame({d}, ",
                           ")", bare=True))]
    out += ["", "# imputation methods", f"meth <- make.method({d})"]
    groups: dict[str, list[str]] = {}
    for t in plan.targets:
        groups.setdefault(s.methods[t], []).append(r[t])
    for method, cols in groups.items():
        out.append(r_wrap(r_vec(r_strings(cols), "meth[", f"] <- {r_string(method)}",
                              single=True)))
    codes = "; ".join(f"{c} {meaning}" for c, meaning in CODES.items() if c)
    out += ["", *r_comment(codes, "# predictor matrix: ", "#   ", width=WIDTH),
            f"pred <- make.predictorMatrix({d})", "pred[,] <- 0"]
    out += [_row(t, s) for t in plan.targets if s.rows[t]]
    if s.derived:
        out += ["", "# derived variables: cluster means and passive terms"]
        for n in s.derived:
            out.append(f"meth[{r_string(r[n])}] <- {r_string(s.methods[n])}")
            if s.rows[n]:
                out.append(_row(n, s))
    call = ["pred = pred", "meth = meth", f"m = {m}", f"maxit = {maxit}"]
    if len(s.visit) > 1:  # mice reads a single string as the name of a visit scheme
        out += ["", r_wrap(r_vec(r_strings([r[v] for v in s.visit]), "visit <- "))]
        call.insert(2, "visit = visit")
    out.append("")
    if seed is not None:
        call.append(f"seed = {seed}")
    call += [*s.args, "print = FALSE"]
    if "2l.groupmean" in s.methods.values():
        # mice drops a column that starts empty unless its method is passive, or allow.na
        # is set; not always, as mice hands allow.na on to the methods (2l.bin's glmer fails)
        out.append("# allow.na: keep the 2l.groupmean columns, which start empty")
        call.append("allow.na = TRUE")
    out.append(r_wrap(r_vec(call, f"imp <- mice({d}, ", ")", bare=True)))
    return "\n".join(out) + "\n"


def _several(plan: Plan, flavor: str, m: int, maxit: int, seed: int | None, d: str) -> str:
    """The script of a plan with several grouping factors (see :mod:`.r_ml`)."""
    if flavor != "miceadds":
        raise PlanError(f"mice has no imputation method for several grouping factors (this "
                        f"plan's are {plan.nesting}: {', '.join(map(repr, plan.groupings))}); "
                        "export it with flavor=\"miceadds\", which writes miceadds' ml.lmer")
    names = _assign_names([*plan.names, *grouping_parts(plan)], plan.derived)
    derived = {n: _derived_method(dv, names, "", flavor) for n, dv in plan.derived.items()}
    methods = MlMethods(_ML_LMER, _ML_MODELS, _LEVEL_ONLY, derived, "2l.groupmean",
                        _LEVEL_ONLY_FUNCTIONS)
    call = [f"m = {m}", f"maxit = {maxit}", *([f"seed = {seed}"] if seed is not None else [])]
    return ml_script(plan, names, methods, _visit(plan, {}), call, d)


def _header(plan: Plan, s: _Script, flavor: str) -> list[str]:
    return [*plan_header(plan, "mice", flavor, s.notes), "#", *names_table(s.names, s.added),
            ""]


def _row(target: str, s: _Script) -> str:
    """``pred["target", c(...)] <- c(...)`` for the non-zero cells of a row."""
    return pred_row(s.names[target], [(s.names[p], c) for p, c in s.rows[target]])


def _factor_kind(method: str) -> str:
    """R's conversion for the target of a categorical method: polr needs an ordered factor."""
    return "ordered" if method == "polr" else "factor"
