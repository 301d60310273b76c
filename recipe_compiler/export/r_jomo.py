"""A model-based :class:`~recipe_compiler.plan.smc.ModelPlan` as an R script for ``jomo.lmer``.

``jomo::jomo.lmer`` (jomo 2.7) imputes under a joint model whose outcome part is a
linear mixed model given by an lme4 formula, as ``approach="smc"`` does. Its formula
parser is narrower than this package's; a plan is exported only when it lies within
what the function handles (read from jomo 2.7-4's ``jomo.lmer`` source):

* a continuous (``normal``) level-1 outcome, a fixed intercept and at least one
  level-1 predictor in the fixed part;
* one grouping factor with a random intercept and random slopes on level-1 columns;
* fixed terms that are columns (continuous, or binary/categorical passed as R factors:
  jomo imputes an incomplete factor with any number of categories through latent
  normals, where the plan has a logit or multinomial logit covariate model),
  powers ``I(x^k)`` of a continuous column (``I(x**2)`` in the formula) and products of
  these (``x:z``, ``x*w``), at level 1 or 2;
* cluster means ``cm()``, centred ``cwc()`` and other ``I()`` terms only of *complete*
  columns: the script computes them before the call (they are then fixed data); of an
  incomplete column they change with every imputation, which jomo cannot express;
* column names that are syntactic R names (jomo matches its formula's term labels
  against the column names as text, so backticked names silently break it).

Anything else raises :class:`~recipe_compiler.errors.PlanError` naming the term or
column out of reach. Two differences from the plan remain and are stated in the
script: jomo models the auxiliary columns jointly with the covariates (multivariate
normal with random intercepts) rather than regressing them on the outcome, and it
models all covariates jointly rather than in a sequential factorisation; its draws
are Metropolis-Hastings throughout.

Every user string enters the script through :mod:`~recipe_compiler.export.r_literal`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import OptionError, PlanError
from ..model.expr import Binary, Call, Col, Num, parse_expr, to_r
from ..model.spec import Factor, Term
from ..plan.smc import ModelPlan, SubModel
from .r_literal import (
    is_syntactic,
    make_name,
    r_comment,
    r_name,
    r_string,
    r_vec,
    r_wrap,
)

__all__ = ["plan_to_jomo"]

WIDTH = 80
_SMC_HINT = ("; impute in Python with approach=\"smc\", or export the FCS plan "
             "(approach=\"fcs\") for mice with rc.plan_to_r(plan)")


@dataclass(frozen=True)
class _Precomputed:
    """A term factor of complete columns, computed in the script before the call."""

    name: str
    level: int
    code: str
    what: str


@dataclass(frozen=True)
class _Call:
    """The plan translated into what the script needs."""

    columns: tuple[str, ...]
    levels: dict[str, int]
    factors: tuple[str, ...]
    precomputed: tuple[_Precomputed, ...]
    formula: str
    analysis: str


def plan_to_jomo(plan: ModelPlan, *, nburn: int = 1000, nbetween: int = 1000, nimp: int = 5,
                 seed: int | None = None, data_name: str = "d", analyse: bool = True) -> str:
    """A standalone R script that imputes with ``jomo::jomo.lmer`` under the plan's model.

    Parameters
    ----------
    plan : ModelPlan
        From ``recipe_compiler.compile(formula, data, approach="smc")``.
    nburn, nbetween, nimp : int
        jomo's burn-in iterations, iterations between imputations, imputations
        (jomo's defaults 1000, 1000, 5; jomo needs ``nimp >= 2``).
    seed : int, optional
        ``set.seed(seed)`` before the call; omitted when ``None``.
    data_name : str
        The R variable holding the user's data.
    analyse : bool
        Append the analysis: the plan's model fitted with ``lme4::lmer`` (ML) on every
        imputed data set (``mitml::jomo2mitml.list``) and pooled with
        ``mitml::testEstimates``.

    Returns
    -------
    str
        The script, ending with a newline.

    Raises
    ------
    PlanError
        The model is out of ``jomo.lmer``'s reach; the message names the term or column.
    OptionError
        Non-positive counts, ``nimp < 2``, a non-integer seed or a ``data_name`` that is
        no R name.
    """
    for name, value, low in (("nburn", nburn, 1), ("nbetween", nbetween, 1), ("nimp", nimp, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise OptionError(f"{name} must be an integer >= {low}, got {value!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise OptionError(f"seed must be an integer or None, got {seed!r}")
    if not is_syntactic(data_name):
        raise OptionError(f"data_name={data_name!r} is not a valid R name; use letters, "
                          "digits, '.' and '_', starting with a letter")
    d = data_name
    call = _Translation(plan, d).call()
    out = _header(plan)
    out += ["library(jomo)", "",
            f"# Load your data as `{d}` first: a data.frame with the columns",
            *r_comment(", ".join([str(plan.cluster), *_measured(plan)])
                       + " (missing values as NA),", "#   ",
                       width=WIDTH),
            f"# e.g. {d} <- read.csv(\"data.csv\")."]
    if call.factors:
        out.append("# binary and categorical variables are factors for jomo")
        out += [f"{d}[[{r_string(c)}]] <- factor({d}[[{r_string(c)}]])" for c in call.factors]
    if call.precomputed:
        out.append("# terms of complete columns, computed once (fixed data for jomo)")
        for p in call.precomputed:
            out += [*r_comment(p.what), r_wrap([f"{d}[[{r_string(p.name)}]] <- ", p.code])]
    out += ["# the model's columns, then the auxiliary ones",
            r_wrap(r_vec([r_string(c) for c in call.columns], f"{d} <- {d}[, ", "]")),
            "# level of each column (1: varies within clusters, 2: constant within them)",
            r_wrap(r_vec([f"{r_name(c)} = {call.levels[c]}" for c in call.columns], "level <- ")),
            ""]
    if seed is not None:
        out.append(f"set.seed({seed})")
    args = [call.formula, f"data = {d}", "level = level", f"nburn = {nburn}",
            f"nbetween = {nbetween}", f"nimp = {nimp}"]
    out += [r_wrap(r_vec(args, "imp <- jomo.lmer(", ")", bare=True)),
            "# imp: the data stacked nimp + 1 times; column Imputation (0: the original",
            "# data), the cluster renamed `clus`, the row number `id`"]
    if analyse:
        out += ["", "library(lme4)", "library(mitml)", "implist <- jomo2mitml.list(imp)",
                r_wrap(r_vec([call.analysis, "REML = FALSE"], "fits <- with(implist, lmer(", "))",
                           bare=True)),
                "print(testEstimates(fits, extra.pars = TRUE))"]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ translation


def _measured(plan: ModelPlan) -> list[str]:
    return [v.name for v in plan.variables if v.role not in ("cluster", "derived")]


class _Translation:
    """The outcome model in jomo's terms; collects factor and precomputed columns."""

    def __init__(self, plan: ModelPlan, data_name: str) -> None:
        self.plan = plan
        self.d = data_name
        self.factors: dict[str, None] = {}
        self.pre: dict[Factor, _Precomputed] = {}
        self.rhs: dict[str, None] = {}  # data columns the formula's right-hand side uses

    def call(self) -> _Call:
        plan = self.plan
        if plan.cluster is None:
            raise PlanError("jomo.lmer needs a grouping factor; the plan has none" + _SMC_HINT)
        if plan.outer is not None:
            raise PlanError(f"the plan has two grouping factors ({', '.join(plan.groupings)}): "
                            f"the random intercept (1 | {plan.outer}) is out of reach of "
                            "jomo.lmer, which fits two-level models (one grouping factor)"
                            + _SMC_HINT)
        cluster = plan.cluster
        for name in [cluster, *_measured(plan)]:
            if not is_syntactic(name):
                raise PlanError(f"column {name!r} is not a syntactic R name; jomo.lmer matches "
                                "its formula's terms against the column names as text, so "
                                "rename the column (letters, digits, '.' and '_')")
        out = next(m for m in plan.models if m.role == "outcome")
        self._check_outcome(out, cluster)
        self.factors.update(dict.fromkeys(m.dependent for m in plan.models
                                          if m.family != "normal" and m.role != "outcome"))
        fixed = [":".join(self._factor(t, f) for f in t.factors) for t in out.fixed]
        slopes = [self._slope(t) for t in out.random]
        levels = {c: plan.variable(c).level for c in [cluster, *_measured(plan)]}
        levels.update({p.name: p.level for p in self.pre.values()})
        if not any(levels[c] == 1 for c in self.rhs):
            raise PlanError("the fixed part has no level-1 predictor; jomo.lmer needs at least "
                            "one besides the outcome" + _SMC_HINT)
        columns = tuple(dict.fromkeys([cluster, out.dependent, *self.rhs, *plan.auxiliary]))
        lhs = f"{r_name(out.dependent)} ~ {' + '.join(fixed) or '1'}"
        rand = " + ".join(["1", *slopes])
        return _Call(columns=columns, levels=levels,
                     factors=tuple(c for c in self.factors if c in columns),
                     precomputed=tuple(self.pre.values()),
                     formula=f"{lhs} + ({rand} | {r_name(cluster)})",
                     analysis=f"{lhs} + ({rand} | clus)")

    def _check_outcome(self, out: SubModel, cluster: str) -> None:
        v = self.plan.variable(out.dependent)
        if out.family != "normal" or v.kind != "continuous" or v.level != 1:
            raise PlanError(f"the outcome '{out.dependent}' is {v.kind} at level {v.level}; "
                            "jomo.lmer needs a continuous level-1 outcome" + _SMC_HINT)
        if not out.intercept:
            raise PlanError("the fixed part has no intercept (0 + ...); jomo.lmer always fits "
                            "one" + _SMC_HINT)
        if not out.random_intercept:
            raise PlanError(f"the random part has no intercept (0 + ... | {cluster}); "
                            "jomo.lmer needs (1 + ... | cluster)" + _SMC_HINT)

    def _slope(self, term: Term) -> str:
        f = term.factors[0]
        if term.degree != 1 or (f.kind == "expr" and not self._complete(f)):
            raise PlanError(f"random slope '{term.name}': jomo.lmer takes random slopes on "
                            "columns only" + _SMC_HINT)
        text = self._factor(term, f)
        name = self.pre[f].name if f in self.pre else f.column
        level = self.pre[f].level if f in self.pre else self.plan.variable(f.column).level
        if level != 1:
            raise PlanError(f"random slope '{term.name}': '{name}' is a level-2 variable; "
                            "jomo.lmer takes random slopes on level-1 columns only")
        return text

    def _complete(self, f: Factor) -> bool:
        return all(self.plan.variable(c).n_missing == 0 for c in f.columns)

    def _factor(self, term: Term, f: Factor) -> str:
        """R text of one factor of a term."""
        if f.kind in ("var", "cat"):
            if f.kind == "cat":
                self.factors.setdefault(f.column)
            self.rhs.setdefault(f.column)
            return r_name(f.column)
        if not self._complete(f):
            if f.kind == "expr":
                return self._power(term, f)
            which = next(c for c in f.columns if self.plan.variable(c).n_missing)
            raise PlanError(f"term '{term.name}': jomo.lmer cannot express {f.name} of the "
                            f"incomplete column '{which}', which changes with every imputation"
                            + _SMC_HINT)
        if f.kind == "dummy" or f.level:
            raise PlanError(f"term '{term.name}': jomo.lmer cannot express {f.name}; write "
                            "the categorical column as C(x)" + _SMC_HINT)
        if f not in self.pre:
            self.pre[f] = self._precompute(f)
        self.rhs.setdefault(self.pre[f].name)
        return r_name(self.pre[f].name)

    def _power(self, term: Term, f: Factor) -> str:
        """``I(x^k)`` for an ``I()`` term that is an integer power of one column."""
        e = parse_expr(f.column)
        base: object = None
        exponent: object = None
        if isinstance(e, Binary) and e.op == "**":
            base, exponent = e.left, e.right
        elif isinstance(e, Call) and e.fn == "pow":
            base, exponent = e.args
        if isinstance(base, Col) and isinstance(exponent, Num) \
                and float(exponent.value).is_integer() and exponent.value >= 2 \
                and base.name not in self.factors:
            self.rhs.setdefault(base.name)
            return f"I({r_name(base.name)}^{int(exponent.value)})"
        raise PlanError(f"term '{term.name}': jomo.lmer takes I() terms of incomplete columns "
                        "only as integer powers of a continuous column, such as I(x**2)"
                        + _SMC_HINT)

    def _precompute(self, f: Factor) -> _Precomputed:
        def col(c: str) -> str:
            return f"{self.d}[[{r_string(c)}]]"

        cluster = col(str(self.plan.cluster))
        if f.kind == "cm":
            base, level = f"cm_{f.column}", 2
            code = f"ave({col(f.column)}, {cluster})"
        elif f.kind == "cwc":
            base, level = f"cwc_{f.column}", 1
            code = f"{col(f.column)} - ave({col(f.column)}, {cluster})"
        else:
            base = f"I({f.column})"
            level = max(self.plan.variable(c).level for c in f.columns)
            code = to_r(parse_expr(f.column), col)
        taken = {*self.plan.names, *(p.name for p in self.pre.values())}
        name = stem = make_name(base)
        k = 1
        while name in taken:
            k += 1
            name = f"{stem}_{k}"
        return _Precomputed(name=name, level=level, code=code, what=f.name)


# ------------------------------------------------------------------ rendering


def _header(plan: ModelPlan) -> list[str]:
    out = ["# Substantive-model-compatible imputation with jomo.lmer, written by recipe_compiler",
           "# from the model-based (approach=\"smc\") plan for",
           *r_comment(plan.formula, "#   "),
           "# Differences from the plan: jomo models the covariates jointly (multivariate",
           "# normal, latent normal for factors, random intercepts) instead of the plan's",
           "# sequential regressions"]
    if plan.auxiliary:
        out += r_comment(f"and the auxiliary columns ({', '.join(plan.auxiliary)}) in that "
                         "joint model, instead of regressing them on the outcome and the "
                         "predictors.", "# ", width=WIDTH)
    else:
        out[-1] += "."
    return [*out, ""]
