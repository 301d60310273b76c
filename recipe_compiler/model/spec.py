"""Frozen value objects describing an analysis model: factors, terms, the model.

A :class:`ModelSpec` is what :func:`recipe_compiler.model.parse.parse_formula` makes
of an lme4-style formula. It knows names, not data: the level and kind of each
column come from :mod:`recipe_compiler.data.schema`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from .expr import quote_name

FactorKind = Literal["var", "cm", "cwc", "cat", "expr", "dummy"]

_WRAP = {"var": "{}", "cm": "cm({})", "cwc": "cwc({})", "cat": "C({})", "expr": "I({})"}


@dataclass(frozen=True, order=True)
class Factor:
    """One factor of a term.

    Attributes
    ----------
    kind : {"var", "cm", "cwc", "cat", "expr", "dummy"}
        ``var`` a measured column; ``cm`` its cluster mean; ``cwc`` its deviation
        from the cluster mean; ``cat`` a categorical column (``C(x)``/``factor(x)``);
        ``expr`` an ``I(...)`` expression; ``dummy`` one indicator column of a
        categorical column (``C(x)[T.level]``).
    column : str
        The measured column (for ``expr``: the expression inside ``I()``, in the
        canonical text of :func:`recipe_compiler.model.expr.to_text`).
    columns : tuple of str
        The measured columns the factor depends on.
    level : str
        For ``dummy``: the level indicated. For ``cm`` / ``cwc`` of a categorical
        column: the level of the dummy column averaged or centred
        (``cm(C(sex)[T.1])``, a cluster proportion). Else empty.
    group : str
        For ``cm`` / ``cwc`` in a model with several grouping factors: the grouping
        factor whose clusters are averaged over (``cm(x, school)``; the name as in
        :attr:`RandomEffects.cluster`, e.g. ``"school:class"``). Empty: the
        innermost grouping factor (``cm(x)``).
    """

    kind: FactorKind
    column: str
    columns: tuple[str, ...] = ()
    level: str = ""
    group: str = ""

    def __post_init__(self) -> None:
        if not self.columns:
            object.__setattr__(self, "columns", (self.column,))

    @cached_property
    def name(self) -> str:
        """Canonical name: ``iqv``, ``cm(iqv)``, ``cwc(iqv)``, ``C(den)``, ``C(den)[T.2]``.

        A measured column is named as itself; inside ``cm()``, ``cwc()`` and ``C()`` a
        name that is not plain is in backticks (```` cm(`read dis`) ````), so that the
        name parses back to the factor.
        """
        if self.kind in ("var", "expr"):
            return _WRAP[self.kind].format(self.column)
        column = quote_name(self.column)
        if self.kind == "dummy":
            return f"C({column})[T.{self.level}]"
        if self.level:
            column = f"C({column})[T.{self.level}]"
        if self.group:
            column = f"{column}, {self.group}"
        return _WRAP[self.kind].format(column)

    def __str__(self) -> str:
        return self.name


def var(column: str) -> Factor:
    """A measured column as a factor."""
    return Factor("var", column)


def cm(column: str, group: str = "") -> Factor:
    """The cluster mean of a column as a factor (over the clusters of ``group``; empty:
    the innermost grouping factor)."""
    return Factor("cm", column, group=group)


def cwc(column: str, group: str = "") -> Factor:
    """The within-cluster deviation of a column as a factor (see :func:`cm`)."""
    return Factor("cwc", column, group=group)


@dataclass(frozen=True)
class Term:
    """A product of factors; equal terms have equal factor sets, whatever the order.

    ``factors`` keeps the order in which the term was written, for display.
    """

    factors: tuple[Factor, ...]
    key: frozenset[Factor] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        unique = tuple(dict.fromkeys(self.factors))
        object.__setattr__(self, "factors", unique)
        object.__setattr__(self, "key", frozenset(unique))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Term) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    @property
    def name(self) -> str:
        """Factor names joined by ``:``."""
        return ":".join(f.name for f in self.factors)

    @property
    def degree(self) -> int:
        """Number of factors."""
        return len(self.factors)

    @property
    def columns(self) -> tuple[str, ...]:
        """The measured columns the term depends on, without repeats."""
        return tuple(dict.fromkeys(c for f in self.factors for c in f.columns))

    def __iter__(self) -> Iterator[Factor]:
        return iter(self.factors)

    def __str__(self) -> str:
        return self.name


def term(*factors: Factor) -> Term:
    """Build a :class:`Term` from factors."""
    return Term(tuple(factors))


@dataclass(frozen=True)
class RandomEffects:
    """One random-effects term ``(1 + slopes | cluster)``.

    ``span`` is where the group ``( ... | cluster)`` stands in the formula text,
    for error carets that must point into the random part. ``factors`` are the
    grouping columns: ``(cluster,)`` for a single column, ``("school", "class")``
    for the interaction ``school:class`` (then ``cluster`` is ``"school:class"``).
    """

    cluster: str
    intercept: bool
    slopes: tuple[Term, ...]
    span: tuple[int, int] | None = None
    factors: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.factors:
            object.__setattr__(self, "factors", (self.cluster,))


@dataclass(frozen=True)
class ModelSpec:
    """A parsed analysis model: single-level, two-level, or with several grouping factors.

    Attributes
    ----------
    formula : str
        The formula text as given.
    outcome : str
        The outcome column.
    intercept : bool
        Whether the fixed part has an intercept.
    terms : tuple of Term
        Fixed terms in formula order (after expansion of ``*``), without the intercept.
    random : RandomEffects or None
        The random part; ``None`` for a single-level model. With several
        random-effects terms: the innermost one (see :attr:`randoms`): the one whose
        columns include every other term's (``school:class`` of ``(1 | school/class)``);
        else, until :meth:`with_innermost` names the innermost factor the data show,
        the one with the most columns (the first written on a tie).
    spans : tuple of (str, int, int)
        Where each column name first appears in ``formula`` (for error carets).
    nested_categorical : tuple of str
        Columns written ``cm(C(x))`` / ``cwc(C(x))``: categorical, although their
        factors are ``cm(x)`` / ``cwc(x)`` (see :attr:`categorical`).
    more_random : tuple of RandomEffects
        The random-effects terms after :attr:`random`, for a model with several
        grouping factors (``(1 | school/class)``, ``(1 | rater) + (1 | item)``).
    """

    formula: str
    outcome: str
    intercept: bool
    terms: tuple[Term, ...]
    random: RandomEffects | None
    spans: tuple[tuple[str, int, int], ...] = ()
    nested_categorical: tuple[str, ...] = ()
    more_random: tuple[RandomEffects, ...] = ()

    @property
    def randoms(self) -> tuple[RandomEffects, ...]:
        """Every random-effects term, the innermost (:attr:`random`) first; ``()`` for a
        single-level model."""
        return (self.random, *self.more_random) if self.random else ()

    @property
    def grouping_columns(self) -> tuple[str, ...]:
        """The columns of every grouping factor, without repeats."""
        return tuple(dict.fromkeys(c for r in self.randoms for c in r.factors))

    @property
    def slopes(self) -> tuple[Term, ...]:
        """The random slopes of every random-effects term, without repeats."""
        return tuple(dict.fromkeys(t for r in self.randoms for t in r.slopes))

    @property
    def categorical(self) -> tuple[str, ...]:
        """Columns written ``C(x)`` / ``factor(x)``, alone or inside ``cm()`` / ``cwc()``."""
        slopes = self.slopes
        cats = [f.column for t in (*self.terms, *slopes) for f in t.factors if f.kind == "cat"]
        return tuple(dict.fromkeys([*cats, *self.nested_categorical]))

    @property
    def cluster(self) -> str | None:
        """The grouping column of :attr:`random` (``"a:b"`` for an interaction), or ``None``."""
        return self.random.cluster if self.random else None

    @property
    def columns(self) -> tuple[str, ...]:
        """Measured columns used: the outcome, then the fixed and random terms' columns."""
        cols: list[str] = [self.outcome]
        for t in (*self.terms, *self.slopes):
            cols.extend(t.columns)
        return tuple(dict.fromkeys(cols))

    def span_of(self, name: str, part: Literal["any", "random"] = "any"
                ) -> tuple[int, int] | None:
        """Span of the first occurrence of ``name`` in the formula, if known.

        Parameters
        ----------
        name : str
            A column or factor name (``iqv``, ``cm(iqv)``).
        part : {"any", "random"}
            ``"random"``: only an occurrence inside a random-effects group (the first
        group, in formula order, that has it).
        """
        if part == "random":
            spans = sorted(r.span for r in self.randoms if r.span is not None)
            for lo, hi in spans:
                m = _whole_word(name).search(self.formula, lo, hi)
                if m:
                    return (m.start(), m.end())
            return None
        for n, start, end in self.spans:
            if n == name:
                return (start, end)
        m = _whole_word(name).search(self.formula)
        return (m.start(), m.end()) if m else None

    def with_innermost(self, cluster: str) -> ModelSpec:
        """The model with the grouping factor ``cluster`` as the innermost one.

        Its random-effects terms become :attr:`random` (the others keep their order),
        and ``cm(x, cluster)`` / ``cwc(x, cluster)`` become the canonical ``cm(x)`` /
        ``cwc(x)`` (group ``""``). For a model whose grouping factors are separate
        terms (``(1 | school) + (1 | class)``) the formula does not say which one is
        innermost, so the parser keeps each written ``g`` and ``""`` means the
        innermost factor as the data say; call this with the data's innermost factor
        (:func:`recipe_compiler.data.levels.nesting`). A model whose :attr:`random`
        has every other factor's columns (``(1 | school/class)``) is already
        canonical: ``cluster`` must then be its factor.

        Raises
        ------
        ValueError
            ``cluster`` is not a grouping factor of the model, or the formula already
            makes another factor innermost.
        """
        randoms = self.randoms
        if self.random is None or cluster == self.random.cluster:
            return self
        if cluster not in {r.cluster for r in randoms}:
            raise ValueError(f"{cluster!r} is not a grouping factor of {self.formula!r}")
        if innermost_written([r.factors for r in randoms]):
            raise ValueError(f"the formula {self.formula!r} makes {self.random.cluster!r} the "
                             f"innermost grouping factor, not {cluster!r}")

        def regroup(terms: tuple[Term, ...]) -> tuple[Term, ...]:
            return tuple(dict.fromkeys(Term(tuple(
                dataclasses.replace(f, group="") if f.group == cluster else f
                for f in t.factors)) for t in terms))

        ordered = sorted(randoms, key=lambda r: r.cluster != cluster)
        moved = [dataclasses.replace(r, slopes=regroup(r.slopes)) for r in ordered]
        return self.replace(terms=regroup(self.terms), random=moved[0],
                            more_random=tuple(moved[1:]))

    def replace(self, **changes: object) -> ModelSpec:
        """A copy with some fields changed (the spec itself is immutable)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def innermost_written(factors: Sequence[tuple[str, ...]]) -> bool:
    """True if the formula alone makes the first grouping factor innermost: its columns
    include every other factor's (``school:class`` of ``(1 | school/class)``)."""
    inner = set(factors[0])
    return all(inner >= set(f) for f in factors[1:])


def find_spans(formula: str, names: Iterable[str]) -> tuple[tuple[str, int, int], ...]:
    """First whole-word occurrence of each name in ``formula``."""
    out = []
    for name in names:
        m = _whole_word(name).search(formula)
        if m:
            out.append((name, m.start(), m.end()))
    return tuple(out)


def _whole_word(name: str) -> re.Pattern[str]:
    """``name`` not preceded or followed by a name character."""
    return re.compile(rf"(?<![\w.]){re.escape(name)}(?![\w.])")
