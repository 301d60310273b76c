"""What every recipe pass needs to know about the model, and the rows passes return.

A :class:`Context` joins the parsed model, the data schema and the options, and
answers the questions the recipes ask of a term: its level, its dummy-coded
expansion, its cluster-centred form, its image under a role swap. With several
grouping factors it also holds them (innermost first for nested ones) and how
they relate, and names every cluster mean with its grouping factor.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from itertools import product

from ..data.schema import DataSchema
from ..errors import FormulaError
from ..model.expr import parse_expr, rename, to_text
from ..model.spec import Factor, ModelSpec, Term
from .options import Options


@dataclass(frozen=True)
class Entry:
    """One predictor of one target, with the recipe step that put it there and why."""

    predictor: Term
    code: int
    step: str
    reason: str


@dataclass(frozen=True)
class Context:
    """The model, the schema of its columns and the options, for the recipe passes.

    Attributes
    ----------
    spec : ModelSpec
    schema : DataSchema
    options : Options
    groupings : tuple of str
        With several grouping factors: all of them, innermost first for nested
        factors (``("school:class", "school")``), formula order for crossed ones;
        else empty.
    nesting : {"", "nested", "crossed"}
    """

    spec: ModelSpec
    schema: DataSchema
    options: Options
    groupings: tuple[str, ...] = ()
    nesting: str = ""

    @property
    def several(self) -> bool:
        """A model with several grouping factors (three-level or crossed)."""
        return len(self.groupings) > 1

    def grouping_level(self, group: str) -> int:
        """Level of a grouping factor's clusters: 2 innermost (and crossed), 3 the next."""
        if self.nesting != "nested":
            return 2
        return self.groupings.index(self.group_of(group)) + 2

    def group_of(self, group: str) -> str:
        """The grouping factor ``cm(x, group)`` averages over, as named in :attr:`groupings`.

        Empty: the innermost; ``class`` also names the nested factor ``school:class``.

        Raises
        ------
        FormulaError
            ``group`` is not a grouping factor of the model.
        """
        if not self.groupings:
            return group
        if not group:
            return self.groupings[0]
        if group in self.groupings:
            return group
        inner = [g for g in self.groupings if g.split(":")[-1] == group]
        if len(inner) == 1:
            return inner[0]
        raise FormulaError(f"'{group}' in cm(..., {group}) is not a grouping factor of the model; "
                           f"grouping factors: {', '.join(self.groupings)}", self.spec.formula,
                           self.spec.span_of(group))

    def constant_within(self, column: str, group: str) -> bool:
        """The column is constant within every cluster of the grouping factor."""
        if self.nesting == "crossed":
            return group in self.schema[column].within
        return self.level(column) >= self.grouping_level(group)

    @cached_property
    def measured(self) -> tuple[str, ...]:
        """Model columns then auxiliaries, without the cluster: the plan's measured order."""
        skip = {self.spec.cluster, *self.spec.grouping_columns} if self.several else {
            self.spec.cluster}
        cols = [c for c in self.spec.columns if c not in skip]
        return tuple(dict.fromkeys([*cols, *self.options.auxiliary]))

    @cached_property
    def auxiliary(self) -> frozenset[str]:
        """Auxiliary columns that are not already in the analysis model."""
        return frozenset(self.options.auxiliary) - set(self.spec.columns)

    def level(self, column: str) -> int:
        """Level (1, 2 or 3) of a measured column."""
        return self.schema[column].level

    @cached_property
    def level1(self) -> tuple[str, ...]:
        """Level-1 model columns (not auxiliaries), in plan order."""
        return tuple(c for c in self.measured if self.level(c) == 1 and c not in self.auxiliary)

    @cached_property
    def level2(self) -> tuple[str, ...]:
        """Level-2 model columns (not auxiliaries), in plan order."""
        return tuple(c for c in self.measured if self.level(c) == 2 and c not in self.auxiliary)

    @cached_property
    def level3(self) -> tuple[str, ...]:
        """Level-3 model columns (not auxiliaries), in plan order."""
        return tuple(c for c in self.measured if self.level(c) == 3 and c not in self.auxiliary)

    @cached_property
    def categorical(self) -> frozenset[str]:
        """Columns that enter the plan as dummy columns."""
        written = {f.column for t in self.spec.terms for f in t.factors if f.kind == "cat"}
        typed = {c.name for c in self.schema.columns if c.categories}
        return frozenset(written | typed)

    @cached_property
    def targets(self) -> tuple[str, ...]:
        """Incomplete columns: the outcome, other level-1 ones, then level-2, level-3 ones."""
        incomplete = [c for c in self.measured if self.schema[c].n_missing > 0]
        first = [c for c in incomplete if c == self.spec.outcome]
        rest = sorted((c for c in incomplete if c != self.spec.outcome), key=self.level)
        return tuple(first + rest)

    # ------------------------------------------------------------------ factors and terms

    def factor_level(self, f: Factor) -> int:
        """Level of a factor: ``cm(x, g)`` that of g's clusters (``cm(x)``: 2), ``cwc(x)`` 1;
        others take their columns' level."""
        if f.kind == "cm":
            return max(self.grouping_level(f.group) if self.several else 2,
                       *(self.level(c) for c in f.columns))
        if f.kind == "cwc" and self.several:
            return 1
        return max(self.level(c) for c in f.columns)

    def term_level(self, t: Term) -> int:
        """The lowest level of its factors (1 if any factor is level-1)."""
        return min(self.factor_level(f) for f in t.factors)

    def interaction_step(self, t: Term) -> str:
        """Table 7.5 step of a product: 5 (level-1), 7 (level-2) or 8 (cross-level)."""
        levels = {self.factor_level(f) for f in t.factors}
        if levels == {1}:
            return "7.5.5 level-1 interaction"
        if levels == {2}:
            return "7.5.7 level-2 interaction"
        return "7.5.8 cross-level interaction"

    def expand(self, t: Term) -> list[Term]:
        """Dummy-code the categorical factors of a term (treatment contrasts).

        ``x`` / ``C(x)`` of a categorical column become its dummy columns;
        ``cm(x)`` / ``cwc(x)`` the cluster means / deviations of those dummies.
        """
        choices: list[list[Factor]] = []
        for f in t.factors:
            if f.kind in ("cat", "var", "cm", "cwc") and f.column in self.categorical:
                kind = f.kind if f.kind in ("cm", "cwc") else "dummy"
                levels = self.schema[f.column].categories[1:]
                choices.append([Factor(kind, f.column, level=lv, group=f.group) for lv in levels])
            else:
                choices.append([f])
        return [self.canonical(Term(tuple(c))) for c in product(*choices)]

    def center(self, t: Term) -> Term:
        """With ``centering="cluster"``, continuous level-1 factors of a product become cwc."""
        if self.options.centering != "cluster" or t.degree < 2:
            return t
        return Term(tuple(
            Factor("cwc", f.column) if f.kind == "var" and self.level(f.column) == 1
            and self.schema[f.column].kind == "continuous" else f
            for f in t.factors))

    @cached_property
    def _rank(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.measured)}

    def canonical(self, t: Term) -> Term:
        """Factors ordered by their column's place in the plan, raw before cm.

        With several grouping factors, every ``cm`` / ``cwc`` names its grouping
        factor (``cm(x)`` becomes ``cm(x, school:class)``).
        """
        rank = self._rank

        def key(f: Factor) -> tuple[int, int, int, str]:
            group = self.groupings.index(f.group) if f.group in self.groupings else -1
            return (min(rank.get(c, len(rank)) for c in f.columns), f.kind == "cm", group, f.name)

        factors = t.factors
        if self.several:
            factors = tuple(dataclasses.replace(f, group=self.group_of(f.group))
                            if f.kind in ("cm", "cwc") else f for f in factors)
        return Term(tuple(sorted(factors, key=key)))

    def swap(self, t: Term, a: str, b: str) -> Term:
        """The image of a term under the role map ``a <-> b`` (section 7.10.7).

        ``C(a)`` maps to the plain column ``b``: :meth:`expand` dummy-codes any
        column that is categorical, so the image takes ``b``'s own coding.
        """
        if a == b:
            return t
        table = {a: b, b: a}
        out = []
        for f in t.factors:
            if f.kind == "expr":  # renamed in the parsed expression, not in its text
                e = rename(parse_expr(f.column, f.columns), table)
                out.append(Factor("expr", to_text(e), e.names))
            elif f.column in table:
                kind = "var" if f.kind == "cat" else f.kind
                out.append(dataclasses.replace(f, kind=kind, column=table[f.column],
                                               columns=(table[f.column],)))
            else:
                out.append(f)
        return Term(tuple(out))


def check_model(ctx: Context) -> None:
    """Reject models the recipes do not cover: level-2 outcome, level-2 random slopes."""
    spec = ctx.spec
    if spec.random is None:
        return
    if ctx.level(spec.outcome) == 2:
        raise FormulaError(f"the outcome '{spec.outcome}' is constant within every cluster of "
                           f"'{spec.cluster}' (a level-2 variable); a two-level model needs a "
                           "level-1 outcome", spec.formula, spec.span_of(spec.outcome))
    for t in spec.random.slopes:
        if ctx.term_level(t) == 2:
            span = spec.span_of(t.name, "random") or spec.span_of(t.columns[0], "random")
            raise FormulaError(f"random slope of '{t.name}', a level-2 variable (constant within "
                               f"clusters of '{spec.cluster}'); random slopes need level-1 "
                               "variables", spec.formula, span)
