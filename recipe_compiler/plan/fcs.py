"""The frozen imputation plan: what to impute, how, from what, in which order.

A :class:`Plan` is plain data (tuples of small frozen records), so it compares,
hashes and serialises simply; the pandas views (``predictor_matrix``,
``methods``, ``explain()``) are built on access.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from ..compiler.codes import CODES
from ..compiler.methods import GROUPMEAN, PASSIVE
from ..compiler.options import Options
from ..errors import PlanError, RecipeError, suggest
from ..model.parse import parse_formula

Role = Literal["cluster", "target", "covariate", "derived"]
DerivedOp = Literal["cm", "cwc", "product", "dummy", "expr"]



@dataclass(frozen=True)
class Variable:
    """A plan variable: the cluster, a measured column, or a derived column."""

    name: str
    role: Role
    level: int
    kind: str
    n_missing: int = 0


@dataclass(frozen=True)
class Derived:
    """A derived variable, recomputed (never imputed) from its parents.

    Attributes
    ----------
    name : str
        ``cm(iqv)``, ``cwc(lpo)``, ``cwc(iqv):sex``, ``C(den)[T.2]``, ``I(iqv ** 2)``.
    op : {"cm", "cwc", "product", "dummy", "expr"}
    parents : tuple of str
        Plan variables it is computed from (``cwc(x)``: ``x`` and ``cm(x)``).
    detail : str
        For ``dummy`` the level; for ``expr`` the Python expression; for ``cm`` in
        a plan with several grouping factors, the grouping factor averaged over
        (``cm(x, school)``; empty: ``Plan.cluster``).
    """

    name: str
    op: DerivedOp
    parents: tuple[str, ...]
    detail: str = ""

    @property
    def method(self) -> str:
        """mice method: ``2l.groupmean`` for cluster means, else ``passive``."""
        return GROUPMEAN if self.op == "cm" else PASSIVE

    @property
    def expression(self) -> str:
        """The definition, in mice's passive ``~ I(...)`` style."""
        if self.op == "cm":
            return f"groupmean({self.parents[0]})"
        if self.op == "cwc":
            return f"~ I({self.parents[0]} - {self.parents[1]})"
        if self.op == "product":
            return f"~ I({' * '.join(self.parents)})"
        if self.op == "dummy":
            return f"~ I(as.integer({self.parents[0]} == {self.detail}))"
        return f"~ I({self.detail})"


@dataclass(frozen=True)
class Cell:
    """One predictor-matrix cell with its provenance.

    ``code == 0`` cells record terms that a recipe step excluded (step 7.5.10 /
    7.6.8), so that ``explain()`` can say why a term is absent.
    """

    target: str
    predictor: str
    code: int
    step: str
    reason: str


class VariableLookup:
    """Look-ups shared by the plans: their ``variables`` by name."""

    variables: tuple[Variable, ...]

    @property
    def names(self) -> list[str]:
        """All plan variables, in plan order."""
        return [v.name for v in self.variables]

    def variable(self, name: str) -> Variable:
        """The :class:`Variable` called ``name``."""
        for v in self.variables:
            if v.name == name:
                return v
        raise PlanError(f"'{name}' is not a plan variable; {suggest(name, self.names)}")


@dataclass(frozen=True)
class Plan(VariableLookup):
    """A compiled multilevel imputation plan.

    Build it with :func:`recipe_compiler.compile`. All fields are immutable.

    Attributes
    ----------
    formula : str
        The analysis model the plan was compiled from.
    options : Options
    cluster : str or None
    variables : tuple of Variable
        Cluster, measured columns (outcome, formula order, auxiliaries), derived.
    method_table : tuple of (str, str)
        Method per imputed or derived variable.
    cells : tuple of Cell
    derived_defs : tuple of Derived
    visit : tuple of str
    groupings : tuple of str
        Every grouping factor: ``(cluster,)`` for a two-level plan, ``()`` without
        clusters; with several, innermost first for nested factors
        (``("school:class", "school")``), formula order for crossed ones.
        ``cluster`` is ``groupings[0]``.
    nesting : {"", "nested", "crossed"}
        How several grouping factors relate in the data (``""``: at most one).
    """

    formula: str
    options: Options
    cluster: str | None
    variables: tuple[Variable, ...]
    method_table: tuple[tuple[str, str], ...]
    cells: tuple[Cell, ...]
    derived_defs: tuple[Derived, ...]
    visit: tuple[str, ...]
    groupings: tuple[str, ...] = ()
    nesting: Literal["", "nested", "crossed"] = ""

    # ------------------------------------------------------------------ views

    def __post_init__(self) -> None:
        if not self.groupings and self.cluster is not None:
            object.__setattr__(self, "groupings", (self.cluster,))

    @property
    def several_groupings(self) -> bool:
        """More than one grouping factor (a three-level or crossed plan)."""
        return len(self.groupings) > 1

    @property
    def targets(self) -> list[str]:
        """Imputed columns in visit order (outcome, level-1, level-2)."""
        return [v.name for v in self.variables if v.role == "target"]

    @property
    def methods(self) -> pd.Series:
        """Method of every plan variable (``""``: not imputed)."""
        table = dict(self.method_table)
        return pd.Series([table.get(n, "") for n in self.names], index=self.names,
                         name="method", dtype=object)

    @property
    def derived(self) -> dict[str, Derived]:
        """Derived variables by name."""
        return {d.name: d for d in self.derived_defs}

    @property
    def visit_sequence(self) -> list[str]:
        """Each target followed by its derived descendants, parents first."""
        return list(self.visit)

    @property
    def predictor_matrix(self) -> pd.DataFrame:
        """mice predictor matrix: rows are imputed variables, integer codes -2..4."""
        names = self.names
        at = {n: i for i, n in enumerate(names)}
        codes = np.zeros((len(names), len(names)), dtype=np.int64)
        for c in self.cells:
            if c.code:
                codes[at[c.target], at[c.predictor]] = c.code
        return pd.DataFrame(codes, index=pd.Index(names, name="target"),
                            columns=pd.Index(names, name="predictor"))

    def predictors(self, target: str) -> list[tuple[str, int]]:
        """Non-zero ``(predictor, code)`` pairs of a target, in plan order."""
        self.variable(target)
        order = {n: i for i, n in enumerate(self.names)}
        cells = [(c.predictor, c.code) for c in self.cells if c.target == target and c.code]
        return sorted(cells, key=lambda pc: order[pc[0]])

    def explain(self, target: str) -> pd.DataFrame:
        """Why each predictor of ``target`` is there (or was excluded).

        Returns
        -------
        pandas.DataFrame
            One row per predictor: ``code``, ``meaning`` of the code, the recipe
            ``step`` (e.g. ``7.5.8 cross-level interaction``) and the ``reason``
            (e.g. which analysis-model term it is the image of). Excluded terms
            have code 0.
        """
        self.variable(target)
        rows = [(c.predictor, c.code, CODES[c.code], c.step, c.reason)
                for c in self.cells if c.target == target]
        order = {n: i for i, n in enumerate(self.names)}
        rows.sort(key=lambda r: (r[1] == 0, order.get(r[0], len(order))))
        return pd.DataFrame(rows, columns=["predictor", "code", "meaning", "step", "reason"]
                            ).set_index("predictor")

    def summary(self) -> str:
        """A readable multi-line description of the plan."""
        lines = [f"Imputation plan for: {self.formula}"]
        if self.several_groupings:
            levels = {v.name: v.level for v in self.variables if v.role == "cluster"}
            which = ", ".join(f"{g} (level {levels.get(g, 2)})" for g in self.groupings)
            order = ", innermost first" if self.nesting == "nested" else ""
            lines.append(f"grouping factors ({self.nesting}{order}): {which}")
        elif self.cluster:
            lines.append(f"cluster: {self.cluster}")
        opts = self.options.to_dict()
        lines.append("options: " + ", ".join(f"{k}={v!r}" for k, v in opts.items()
                                              if v not in ([], {})))
        lines.append("")
        lines.append("targets and methods:")
        methods = dict(self.method_table)
        for t in self.targets:
            v = self.variable(t)
            lines.append(f"  {t:<12} {methods[t]:<14} level {v.level}, {v.kind}, "
                         f"{v.n_missing} missing")
        if self.smc_advice:
            lines.append(self.smc_advice)
        if self.derived_defs:
            lines.append("")
            lines.append("derived variables:")
            for d in self.derived_defs:
                within = f" within {d.detail}" if d.op == "cm" and d.detail else ""
                lines.append(f"  {d.name:<24} {d.method:<13} {d.expression}{within}")
        lines.append("")
        lines.append("predictor matrix (target rows, non-zero columns):")
        pm = self.predictor_matrix.loc[self.targets]
        pm = pm.loc[:, (pm != 0).any(axis=0)]
        lines.append(pm.to_string())
        lines.append("")
        lines.append("visit sequence: " + ", ".join(self.visit))
        return "\n".join(lines)

    @property
    def smc_advice(self) -> str:
        """One line recommending ``approach="smc"`` where the recipes are approximate.

        Empty unless the analysis model has a random slope on an incomplete
        variable or an interaction involving one. With several grouping factors
        beyond ``approach="smc"``'s reach (crossed, more than two, or random slopes
        over an outer factor) the note says that the recipes are approximate and why
        SMC is not offered.
        """
        try:
            spec = parse_formula(self.formula)
        except RecipeError:  # a hand-edited spec's formula; nothing to advise on
            return ""
        targets = set(self.targets)
        slopes = [t.name for t in (spec.random.slopes if spec.random else ())
                  if targets & set(t.columns)]
        products = [t.name for t in spec.terms if t.degree > 1 and targets & set(t.columns)]
        if not slopes and not products:
            return ""
        what = [f"random slope of {', '.join(slopes)}"] if slopes else []
        what += [f"interaction {', '.join(products)}"] if products else []
        outer_slopes = any(r.slopes and r.cluster != self.cluster for r in spec.randoms)
        if self.several_groupings and (self.nesting != "nested" or len(self.groupings) > 2
                                       or outer_slopes):
            return (f"note: the {' and the '.join(what)} involve(s) an incomplete variable, "
                    "where the FCS recipes are approximate (approach=\"smc\" covers two nested "
                    "grouping factors with random slopes over the innermost only)")
        return (f"note: the {' and the '.join(what)} involve(s) an incomplete variable, where "
                "the FCS recipes are approximate; approach=\"smc\" is the unbiased alternative")

    def __str__(self) -> str:
        return self.summary()
