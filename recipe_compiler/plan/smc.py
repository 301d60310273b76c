"""The frozen model-based (SMC) imputation plan: a product of regression models.

A :class:`ModelPlan` is what :func:`recipe_compiler.compile` makes of a formula
with ``approach="smc"``: the analysis model as the outcome model, one covariate
model per incomplete predictor (a sequential factorisation of their joint
distribution) and one model per auxiliary variable, with, for every incomplete
variable, how the sampler draws it. Like the FCS :class:`~.fcs.Plan` it is
plain frozen data; the pandas views are built on access.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import pandas as pd

from ..errors import PlanError, suggest
from ..model.spec import Term
from .fcs import Variable, VariableLookup

if TYPE_CHECKING:
    pass

Family = Literal["normal", "logit", "multinomial"]
ModelRole = Literal["outcome", "covariate", "auxiliary"]
DrawKind = Literal["exact normal", "metropolis", "enumerate", "exact normal per cluster"]

#: Valid values of the ``methods`` option with ``approach="smc"``: a model family per column.
FAMILIES: tuple[Family, ...] = ("normal", "logit", "multinomial")
DRAW_KINDS: tuple[DrawKind, ...] = ("exact normal", "metropolis", "enumerate",
                                    "exact normal per cluster")


@dataclass(frozen=True)
class SubModel:
    """One factor of the joint model: a regression of one variable on others.

    Attributes
    ----------
    dependent : str
        The variable this model describes.
    family : {"normal", "logit", "multinomial"}
        ``multinomial``: a multinomial logit of a categorical variable with
        ``K >= 3`` categories (the first the reference), one linear predictor per
        other category; at level 1 each has its own random intercept
        (independent across categories).
    level : int
        1: a two-level regression over the rows (random part ``random``);
        2: a regression over the (innermost) clusters, one row per cluster;
        3: in a three-level plan, an ordinary regression over the outer
        clusters (one row per outer cluster).
    fixed : tuple of Term
        Fixed terms, without the intercept.
    random : tuple of Term
        Random slopes (level 1 only).
    role : {"outcome", "covariate", "auxiliary"}
    intercept : bool
        Whether the fixed part has an intercept.
    random_intercept : bool
        Whether the random part has an intercept (level 1 only).
    reason : str
        Why the model is in the factorisation.
    outer : str
        In a three-level plan, the outer grouping factor over which the model
        (level 1 or 2) has a random intercept (``"school"``); empty otherwise.
    """

    dependent: str
    family: Family
    level: int
    fixed: tuple[Term, ...]
    random: tuple[Term, ...]
    role: ModelRole
    intercept: bool = True
    random_intercept: bool = True
    reason: str = ""
    outer: str = ""

    @property
    def terms(self) -> tuple[Term, ...]:
        """Fixed terms then random slopes."""
        return (*self.fixed, *self.random)

    @property
    def columns(self) -> tuple[str, ...]:
        """The dependent, then every column the terms use, without repeats."""
        return tuple(dict.fromkeys([self.dependent, *(c for t in self.terms
                                                      for c in t.columns)]))

    def formula(self, cluster: str | None) -> str:
        """The model in lme4 notation, e.g. ``iqv ~ 1 + ses + (1 | sch)``."""
        fixed = " + ".join(["1" if self.intercept else "0", *(t.name for t in self.fixed)])
        outer = f" + (1 | {self.outer})" if self.outer else ""
        if self.level >= 2 or cluster is None:
            return f"{self.dependent} ~ {fixed}{outer}"
        rand = " + ".join(["1" if self.random_intercept else "0",
                           *(t.name for t in self.random)])
        return f"{self.dependent} ~ {fixed} + ({rand} | {cluster}){outer}"

    def __str__(self) -> str:
        given = [t.name for t in self.fixed]
        if self.level == 1 and (self.random_intercept or self.random):
            given.append("u[" + " + ".join(["1" if self.random_intercept else "0",
                                            *(t.name for t in self.random)]) + "]")
        if self.outer:
            given.append(f"v[1 | {self.outer}]")
        return f"p({self.dependent} | {', '.join(given) or '1'})"


@dataclass(frozen=True)
class Draw:
    """How the sampler draws the missing values of one variable, and why."""

    variable: str
    how: DrawKind
    reason: str

    def __str__(self) -> str:
        return f"{self.variable}: {self.how} ({self.reason})"


@dataclass(frozen=True)
class ModelPlan(VariableLookup):
    """A compiled model-based (substantive-model-compatible) imputation plan.

    Build it with ``recipe_compiler.compile(formula, data, approach="smc")``.

    Attributes
    ----------
    formula : str
        The analysis model, which is the outcome model.
    cluster : str or None
        The (innermost) grouping factor.
    variables : tuple of Variable
        The grouping factors (levels 2, 3), then the measured columns (role
        ``target`` if incomplete, else ``covariate``) with their level and kind.
    models : tuple of SubModel
        The factors of the joint model: outcome, covariate models in the order
        of the sequential factorisation, auxiliary models.
    draw_table : tuple of Draw
        How each incomplete variable is drawn, in sweep order (those in no
        model but their own first, see :meth:`only_in_own_model`).
    auxiliary : tuple of str
        The auxiliary columns.
    methods : tuple of (str, str)
        Family overrides given at compile time, ``(column, family)``.
    groupings : tuple of str
        Three-level (nested) plans: the grouping factors, innermost first
        (``("school:class", "school")``; ``cluster`` is the first); empty for a
        two-level plan.
    """

    formula: str
    cluster: str | None
    variables: tuple[Variable, ...]
    models: tuple[SubModel, ...]
    draw_table: tuple[Draw, ...]
    auxiliary: tuple[str, ...] = ()
    methods: tuple[tuple[str, str], ...] = ()
    groupings: tuple[str, ...] = ()

    @property
    def outer(self) -> str | None:
        """The outer grouping factor of a three-level plan, else ``None``."""
        return self.groupings[1] if len(self.groupings) > 1 else None

    # ------------------------------------------------------------------ views

    @property
    def targets(self) -> list[str]:
        """Incomplete variables, in the order the sampler draws them."""
        return [d.variable for d in self.draw_table]

    @property
    def draws(self) -> dict[str, Draw]:
        """Per incomplete variable, how it is drawn (``.how``) and why (``.reason``)."""
        return {d.variable: d for d in self.draw_table}

    def model(self, dependent: str) -> SubModel:
        """The model whose dependent variable is ``dependent``."""
        for m in self.models:
            if m.dependent == dependent:
                return m
        raise PlanError(f"no model of the plan has the dependent variable '{dependent}'; "
                        f"{suggest(dependent, [m.dependent for m in self.models])}")

    def only_in_own_model(self, name: str) -> bool:
        """Whether ``name`` is the dependent of a model and in no model's terms.

        Such a variable's missing values are integrated out of its model's
        parameter update and drawn right after it (a blocked Gibbs step), so
        the sampler draws these variables first.
        """
        return any(m.dependent == name for m in self.models) and not any(
            name in t.columns for m in self.models for t in m.terms)

    def explain(self, name: str) -> pd.DataFrame:
        """Every model in which ``name`` appears, its role there and why.

        Returns
        -------
        pandas.DataFrame
            One row per model and occurrence: ``model`` (``p(y | ...)``),
            ``family``, ``role`` (``dependent``, ``predictor`` (the column or
            ``C(x)``, its treatment dummies), ``in term``, ``random slope``,
            ``in random slope``, ``random intercept`` (the outer grouping factor of a
            three-level plan)), ``term`` and ``why``.
        """
        self.variable(name)
        rows = []
        for m in self.models:
            if m.dependent == name:
                rows.append((str(m), m.family, "dependent", name, m.reason))
            if m.outer and m.outer == name:
                rows.append((str(m), m.family, "random intercept", f"(1 | {name})",
                             f"extra block: a random intercept over the outer grouping factor "
                             f"'{name}' (clusters of '{self.cluster}' nested in it)"))
            for part, terms in (("fixed", m.fixed), ("random", m.random)):
                for t in terms:
                    if name not in t.columns:
                        continue
                    plain = t.name == name or (len(t.factors) == 1 and t.factors[0].kind ==
                                               "cat" and t.factors[0].column == name)
                    role = ("predictor" if plain else "in term") if part == "fixed" else (
                        "random slope" if plain else "in random slope")
                    rows.append((str(m), m.family, role, t.name, _why(m, t, part)))
        return pd.DataFrame(rows, columns=["model", "family", "role", "term", "why"])

    def summary(self) -> str:
        """The factorisation, one line per model, and how each variable is drawn."""
        lines = [f"Model-based (SMC) imputation plan for: {self.formula}"]
        if self.outer:
            lines.append(f"groupings (nested, innermost first): {', '.join(self.groupings)}; "
                         f"random intercepts over '{self.outer}' (an extra block v) in the "
                         "models marked (1 | " + self.outer + ")")
        elif self.cluster:
            lines.append(f"cluster: {self.cluster}")
        if self.auxiliary:
            lines.append("auxiliary: " + ", ".join(self.auxiliary))
        lines += ["", "joint model = product of (sequential factorisation):"]
        width = max(len(str(m)) for m in self.models)
        for m in self.models:
            lines.append(f"  {m!s:<{width}}  {m.role}, {m.family}, level {m.level}:  "
                         f"{m.formula(self.cluster)}")
        lines += ["", "missing values drawn (in this order):"]
        for d in self.draw_table:
            v = self.variable(d.variable)
            lines.append(f"  {d.variable:<12} {d.how:<25} {v.n_missing} missing; {d.reason}")
        if not self.draw_table:
            lines.append("  (none: the model's columns are complete)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()



def _why(m: SubModel, t: Term, part: str) -> str:
    """Why term ``t`` is in model ``m``."""
    if m.role == "outcome":
        return f"{'random' if part == 'random' else 'fixed'} term '{t.name}' of the analysis model"
    if m.role == "auxiliary":
        return (f"auxiliary '{m.dependent}' is regressed on the analysis variables (and later "
                "auxiliaries), so that missingness that depends on it is MAR")
    return (f"covariate model of '{m.dependent}': conditions on the variables later in the "
            "sequential factorisation and the complete ones")
