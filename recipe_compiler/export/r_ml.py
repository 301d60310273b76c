"""A plan with several grouping factors as an R script for mice with miceadds' ``ml.lmer``.

mice has no method for three-level or crossed random effects; miceadds'
``mice.impute.ml.lmer`` fits them with ``lme4::lmer``. The script follows the
package's documentation of that method:

* Grouping factors become integer id columns ``1, 2, ...``: an interaction such
  as ``school:class`` is built in R with ``interaction()``, a plain one is
  recoded with ``factor()`` (``ml.lmer`` averages ids when it aggregates rows
  to a higher level, and ``2l.groupmean`` matches them as numbers).
* Per ``ml.lmer`` target, ``levels_id`` lists its grouping factors (the plan's
  code -2: a random intercept each), ``random_slopes`` its predictors of code 2
  (over its first grouping factor), ``variables_levels`` the grouping it is
  constant within (a class-level target of a nested plan is imputed on one row
  per class, its predictors averaged over the class, as the plan does) and
  ``model`` ``"pmm"``, ``"continuous"`` or ``"binary"`` (``lme4::glmer``'s
  logistic model, for ``ml.bin``).
* ``aggregate_automatically = FALSE``: the plan's cluster means are its own
  derived variables (``cm(x, school)``, written as ``2l.groupmean`` columns with
  code 1 in the rows), so ``ml.lmer`` adds none; the fixed part of each model is
  then exactly the plan's row.
* An outermost-level target (``3lonly.*``), and any level-2 or level-3 target
  whose row has no grouping factor, gets mice's two-level-only method of the same
  draw with its level's grouping as the cluster: one row per cluster,
  predictors averaged over it (``ml.lmer`` needs at least one random effect);
  a categorical one (``3lonly.polyreg``) gets miceadds' ``2lonly.function``
  around mice's ``polyreg``, its settings in ``imputationFunction`` and
  ``cluster_var``. Categorical targets are converted to factors first.
* In a crossed plan each target without random slopes gets ``iter_re``: Gibbs
  sweeps that draw each factor's random effects given the others'.

:mod:`~recipe_compiler.export.r_mice` spells the method names (the layout rule)
and hands them over in :class:`MlMethods`; every user string enters the script
through :mod:`~recipe_compiler.export.r_literal`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import PlanError
from ..plan import Plan
from .r_literal import (
    WIDTH,
    load_lines,
    names_table,
    pred_row,
    r_comment,
    r_name,
    r_string,
    r_strings,
    r_vec,
    r_wrap,
)

__all__ = ["ITER_RE", "MlMethods", "grouping_parts", "ml_script", "plan_header"]

#: Gibbs sweeps over the random effects of crossed factors (``ml.lmer``'s ``iter_re``).
ITER_RE = 10


@dataclass(frozen=True)
class MlMethods:
    """The R methods of a plan with several grouping factors (spelled by ``r_mice``).

    Attributes
    ----------
    lmer : str
        miceadds' method (``ml.lmer``).
    models : mapping
        Plan method -> ``ml.lmer``'s ``model`` argument, for the methods it imputes.
    level_only : mapping
        Plan method -> mice's two-level-only method of the same draw.
    derived : mapping
        Derived variable -> its R method (``2l.groupmean`` or a passive ``~ I()``).
    groupmean : str
        The R method of a cluster mean.
    functions : mapping
        Plan method -> the mice method that ``level_only``'s wrapper calls
        (``imputationFunction`` of miceadds' ``2lonly.function``), for the methods
        whose level-only method is such a wrapper.
    """

    lmer: str
    models: Mapping[str, str]
    level_only: Mapping[str, str]
    derived: Mapping[str, str]
    groupmean: str
    functions: Mapping[str, str] = field(default_factory=dict)


def grouping_parts(plan: Plan) -> list[str]:
    """Data columns of the groupings that are no plan variable (``class`` of ``school:class``)."""
    parts = [p for g in plan.groupings for p in g.split(":")]
    return [p for p in dict.fromkeys(parts) if p not in plan.names]


def plan_header(plan: Plan, title: str, flavor: str, notes: Sequence[str]) -> list[str]:
    """The first comment lines of a script: what wrote it from which plan, and the notes."""
    opts = ", ".join(f"{k} = {v!r}" for k, v in plan.options.to_dict().items()
                     if v not in ([], {}))
    out = [f"# Multilevel imputation with {title}, written by recipe_compiler from the plan for",
           *r_comment(plan.formula, "#   "),
           *r_comment(opts, "# options: ", "#   ", width=WIDTH),
           f"# flavor: {flavor}"]
    if notes:
        out.append("# methods that differ from the plan's:")
        for note in notes:
            out += r_comment(note, "#   ", "#     ", width=WIDTH)
    return out


# ------------------------------------------------------------------ translation


@dataclass(frozen=True)
class _Target:
    """One target's R method and, for ``ml.lmer``, its settings (in R names)."""

    method: str
    row: list[tuple[str, int]]
    levels: list[str]
    level: str = ""
    slopes: tuple[str, list[str]] | None = None
    model: str = ""
    function: str = ""
    factor: bool = False


def _own_grouping(plan: Plan, level: int) -> str:
    """The grouping a target of ``level`` (2 or 3) is constant within, in a nested plan."""
    return plan.groupings[min(level - 2, len(plan.groupings) - 1)]


def _target(plan: Plan, t: str, method: str, r: Mapping[str, str], ms: MlMethods) -> _Target:
    row = plan.predictors(t)
    groups = [p for p in plan.groupings if (p, -2) in row]
    fixed = [(r[p], 1) for p, c in row if c in (1, 2)]
    level = plan.variable(t).level
    factor = plan.variable(t).kind in ("binary", "categorical", "ordinal")
    if method in ms.models and groups:
        slopes = [r[p] for p, c in row if c == 2]
        return _Target(ms.lmer, fixed, [r[g] for g in groups],
                       r[_own_grouping(plan, level)] if level > 1 else "",
                       (r[groups[0]], slopes) if slopes else None, ms.models[method],
                       factor=factor)
    if level == 1 or method not in ms.level_only:
        raise PlanError(f"target {t!r} ({method}): ml.lmer needs a grouping factor of code -2 "
                        f"in the row of a level-1 target, and the row has none; give one of "
                        + ", ".join(map(repr, plan.groupings)) + " code -2")
    own = r[_own_grouping(plan, level)]
    return _Target(ms.level_only[method], [(own, -2), *fixed], [], own,
                   function=ms.functions.get(method, ""), factor=factor)


# ------------------------------------------------------------------ rendering


def ml_script(plan: Plan, r: Mapping[str, str], ms: MlMethods, visit: Sequence[str],
              call: Sequence[str], d: str) -> str:
    """The script of a plan with several grouping factors.

    Parameters
    ----------
    plan : Plan
        With ``plan.several_groupings``.
    r : mapping
        R name of every plan variable and of every :func:`grouping_parts` column.
    ms : MlMethods
    visit : sequence of str
        mice's visit sequence (plan names).
    call : sequence of str
        The arguments ``m = ..``, ``maxit = ..``, perhaps ``seed = ..``.
    d : str
        The R variable holding the user's data (a syntactic name).

    Returns
    -------
    str
        The script, ending with a newline.

    Raises
    ------
    PlanError
        A level-1 target whose row has no grouping factor of code -2.
    """
    methods = dict(plan.method_table)
    targets = {t: _target(plan, t, methods[t], r, ms) for t in plan.targets}
    crossed = plan.nesting == "crossed"
    out = _header(plan, r, targets, ms, crossed)
    out += ["library(mice)", "library(miceadds)", ""]
    measured = [v.name for v in plan.variables if v.role != "derived"]
    columns = list(dict.fromkeys(p for n in measured
                                 for p in (n.split(":") if n in plan.groupings else [n])))
    out += load_lines(columns, [r[c] for c in columns], d)
    factors = [r[t] for t, s in targets.items() if s.factor]
    if factors:
        out.append("# categorical targets as factors")
        out += [f"{d}${r_name(t)} <- as.factor({d}${r_name(t)})" for t in factors]
    out += ["", *r_comment("grouping factors as integer cluster ids 1, 2, ...: ml.lmer averages "
                           "ids when it aggregates rows to a higher level, and 2l.groupmean "
                           "matches them as numbers", "# ", width=WIDTH)]
    col = {c: f"{d}${r_name(r[c])}" for c in [*columns, *plan.groupings]}
    for g in sorted(plan.groupings, key=lambda g: ":" not in g):  # interactions first
        out.append(r_wrap(r_vec([*(col[p] for p in g.split(":")), "drop = TRUE"],
                                f"{col[g]} <- as.integer(interaction(", "))", bare=True))
                   if ":" in g else f"{col[g]} <- as.integer(factor({col[g]}))")
    derived = list(plan.derived)
    if derived:
        out += ["", "# derived variables start empty; mice recomputes them from their parents",
                r_wrap(r_vec([f"{r_name(r[n])} = NA" for n in derived],
                             f"{d} <- data.frame({d}, ", ")", bare=True))]
    out += ["", "# imputation methods", f"meth <- make.method({d})"]
    groups: dict[str, list[str]] = {}
    for t, s in targets.items():
        groups.setdefault(s.method, []).append(r[t])
    out += [r_wrap(r_vec(r_strings(cols), "meth[", f"] <- {r_string(m)}", single=True))
            for m, cols in groups.items()]
    out += ["", *r_comment(f"predictor matrix: 1 a fixed effect; -2 the cluster of "
                           f"{ms.groupmean} and of the two-level-only methods. {ms.lmer} reads "
                           "the code-1 predictors of its row only: its grouping factors (the "
                           "plan's code -2) are in levels_id and its random slopes (code 2) in "
                           "random_slopes below", "# ", "#   ", width=WIDTH),
            f"pred <- make.predictorMatrix({d})", "pred[,] <- 0"]
    out += [pred_row(r[t], s.row) for t, s in targets.items() if s.row]
    if derived:
        out += ["", "# derived variables: cluster means and passive terms"]
        for n, dv in plan.derived.items():
            out.append(f"meth[{r_string(r[n])}] <- {r_string(ms.derived[n])}")
            if dv.op == "cm":
                g = dv.detail or plan.groupings[0]
                out.append(pred_row(r[n], [(r[g], -2), (r[dv.parents[0]], 1)]))
    args = ["pred = pred", "meth = meth", *call]
    if len(visit) > 1:
        out += ["", r_wrap(r_vec(r_strings([r[v] for v in visit]), "visit <- "))]
        args.insert(2, "visit = visit")
    lmer = {r[t]: s for t, s in targets.items() if s.method == ms.lmer}
    if lmer:
        out += ["", *_settings(lmer, crossed)]
        args += [f"{a} = {a}" for a in ("levels_id", "variables_levels", "model")]
        if any(s.slopes for s in lmer.values()):
            args.append("random_slopes = random_slopes")
        if crossed and any(not s.slopes for s in lmer.values()):
            args.append("iter_re = iter_re")
        args.append("aggregate_automatically = FALSE")
    wrapped = {r[t]: s for t, s in targets.items() if s.function}
    if wrapped:  # miceadds' 2lonly.function reads its settings per variable from these lists
        args += ["imputationFunction = list(" + ", ".join(
                     f"{r_name(t)} = {r_string(s.function)}" for t, s in wrapped.items()) + ")",
                 "cluster_var = list(" + ", ".join(
                     f"{r_name(t)} = {r_string(s.level)}" for t, s in wrapped.items()) + ")"]
    args.append("print = FALSE")
    out.append("")
    if any(dv.op == "cm" for dv in plan.derived.values()):
        out.append(f"# allow.na: keep the {ms.groupmean} columns, which start empty")
        args.append("allow.na = TRUE")
    out.append(r_wrap(r_vec(args, f"imp <- mice({d}, ", ")", bare=True)))
    return "\n".join(out) + "\n"


def _header(plan: Plan, r: Mapping[str, str], targets: Mapping[str, _Target], ms: MlMethods,
            crossed: bool) -> list[str]:
    methods = dict(plan.method_table)
    changes: dict[tuple[str, str], list[str]] = {}
    for t, s in targets.items():
        if s.method == ms.lmer:
            fit = "glmer (logistic)" if s.model == "binary" else "lmer"
            why = (f"lme4's {fit} with a random intercept per grouping factor; model = "
                   f"{r_string(s.model)}")
        else:
            why = (f"mice's method for a target constant within the clusters of {s.row[0][0]}: "
                   "one row per cluster, predictors averaged over it, as the plan does")
        changes.setdefault((f"{methods[t]} -> {s.method}", why), []).append(r[t])
    notes = [f"{', '.join(ts)}: {change} ({why})" for (change, why), ts in changes.items()]
    out = plan_header(plan, f"mice and miceadds' {ms.lmer}", "miceadds", notes)
    kind = "crossed" if crossed else "nested, innermost first"
    out += r_comment(f"grouping factors ({kind}): " + ", ".join(plan.groupings), "# ", "#   ",
                     width=WIDTH)
    differs = (f"{ms.lmer} draws the fixed effects from their sampling distribution and the "
               "random effects from their conditional distribution given lme4's estimates of "
               "the variance components, which are not drawn (the plan's sampler draws them "
               "too)")
    if any(s.model not in ("", "continuous", "binary") for s in targets.values()):
        differs += (f"; its predictive mean matching draws from {ms.lmer}'s default of 3 donors "
                    "(rc.impute's default is 5; pass donors = 5 to mice() for the same)")
    if crossed:
        differs += (f"; the random effects of the crossed factors are drawn by {ITER_RE} Gibbs "
                    "sweeps (iter_re) where the plan's sampler makes one per iteration")
        if any(s.slopes for s in targets.values()):
            differs += (" (miceadds has no iter_re with random slopes: a target with one draws "
                        "each factor's effects on their own)")
    out += r_comment(differs, "# what differs from the plan's sampler: ", "#   ", width=WIDTH)
    about = {g: "ids built in R by interaction()" for g in plan.groupings if ":" in g}
    about |= {p: "data column of a grouping factor" for p in grouping_parts(plan)}
    return [*out, "#", *names_table(dict(r), about), ""]


def _settings(lmer: Mapping[str, _Target], crossed: bool) -> list[str]:
    """The per-target argument lists of ``ml.lmer``."""
    def named(values: Mapping[str, str]) -> list[str]:
        return [f"{r_name(t)} = {v}" for t, v in values.items()]

    out = r_comment("settings of each ml.lmer target: levels_id its grouping factors (a random "
                    "intercept each); variables_levels the grouping it is constant within "
                    "(empty: level 1); model pmm (predictive mean matching) or continuous "
                    "(normal draws)", "# ", width=WIDTH)
    out.append(r_wrap(r_vec(named({t: _c(s.levels) for t, s in lmer.items()}),
                            "levels_id <- list(", ")", bare=True)))
    out.append(r_wrap(r_vec(named({t: r_string(s.level) for t, s in lmer.items()}),
                            "variables_levels <- c(", ")", bare=True)))
    out.append(r_wrap(r_vec(named({t: r_string(s.model) for t, s in lmer.items()}),
                            "model <- list(", ")", bare=True)))
    slopes = {t: s.slopes for t, s in lmer.items() if s.slopes}
    if slopes:
        out.append("# random_slopes: the predictors with a random slope (the plan's code 2)")
        out.append(r_wrap(r_vec(named({
            t: f"list({r_name(g)} = {_c(ps)})"
            for t, (g, ps) in slopes.items()}), "random_slopes <- list(", ")", bare=True)))
    sweeps = [t for t, s in lmer.items() if not s.slopes]
    if crossed and sweeps:
        out.append("# iter_re: Gibbs sweeps over the random effects of the crossed factors")
        out.append(r_wrap(r_vec(named(dict.fromkeys(sweeps, str(ITER_RE))),
                                "iter_re <- list(", ")", bare=True)))
    return out


def _c(items: Sequence[str]) -> str:
    """``"a"`` or ``c("a", "b")``: string literals as one R value."""
    return "".join(r_vec(r_strings(items), single=True))
