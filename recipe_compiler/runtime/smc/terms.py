"""Design matrices of the SMC models, evaluated from the current completed values.

Each model's terms are resolved once into :class:`Atom` products (categorical
factors become treatment-contrast indicator columns, ``I()`` expressions are
parsed by :mod:`recipe_compiler.model.expr`); at every evaluation the columns
are rebuilt from a :class:`Frame` of current values, on all rows or on the few
rows a missing-value draw touches. A frame holds a batch of ``C`` chains: every
column has a leading chain axis, and so has every design built from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ...model.expr import Expr, evaluate, parse_expr
from ...model.spec import Factor, Term
from ...plan.smc import SubModel

__all__ = ["Atom", "Frame", "ModelDesign", "design_columns", "model_design", "reads"]

AtomKind = Literal["var", "cm", "cwc", "dummy", "expr"]


@dataclass(frozen=True)
class Atom:
    """One factor of a design column.

    ``var``: the column; ``cm`` / ``cwc``: its cluster mean / deviation from it;
    ``dummy``: 1 where the (coded) column equals ``code``; ``expr``: ``expr``
    evaluated on ``columns``.
    """

    kind: AtomKind
    column: str
    code: float = 0.0
    expr: Expr | None = None
    columns: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class Frame:
    """The values a design reads, in a batch of ``C`` chains.

    Attributes
    ----------
    values : mapping of str -> ndarray
        Row frame: each column's current values, shape (C, n). Cluster frame:
        the per-cluster values, shape (C, G) (the cluster means, which are the
        values of level-2 columns).
    means : mapping of str -> ndarray
        Cluster means of the columns, shape (C, G).
    codes : ndarray of int or None
        Row frame: the cluster of every row; ``None`` for a cluster frame.
    n : int
        Number of rows (row frame) or clusters (cluster frame).
    chains : int
        ``C``.
    outer : ndarray of int or None
        Three-level plans: the outer cluster of every row (row frame) or cluster
        (cluster frame), where a model's outer random intercept is read.
    """

    values: Mapping[str, np.ndarray]
    means: Mapping[str, np.ndarray]
    codes: np.ndarray | None
    n: int
    chains: int
    outer: np.ndarray | None = None

    def atom(self, a: Atom, rows: np.ndarray | None) -> np.ndarray:
        """The values ``(C, r)`` of one atom on ``rows`` (all rows if ``None``)."""
        if a.kind == "expr":
            assert a.expr is not None
            env = {c: self._column(c, rows) for c in a.columns}
            shape = next(iter(env.values())).shape
            flat = {c: x.ravel() for c, x in env.items()}  # evaluate works on 1-D columns
            return evaluate(a.expr, flat, shape[0] * shape[1]).reshape(shape)
        if a.kind == "cm":
            return self._mean(a.column, rows)
        x = self._column(a.column, rows)
        if a.kind == "cwc":
            return x - self._mean(a.column, rows)
        if a.kind == "dummy":
            return (x == a.code).astype(float)
        return x

    def _column(self, column: str, rows: np.ndarray | None) -> np.ndarray:
        x = self.values[column]
        return x if rows is None else x.take(rows, axis=1)

    def _mean(self, column: str, rows: np.ndarray | None) -> np.ndarray:
        mean = self.means[column]
        if self.codes is None:
            return mean if rows is None else mean.take(rows, axis=1)
        return mean.take(self.codes if rows is None else self.codes[rows], axis=1)


@dataclass(frozen=True, eq=False)
class ModelDesign:
    """One model's dependent variable and its fixed and random design columns.

    Attributes
    ----------
    model : SubModel
    fixed, random : tuple of tuple of Atom
        One product of atoms per column, intercepts first when present.
    x_names, z_names : tuple of str
    n_categories : int
        ``K``, the categories of the dependent of a multinomial model (codes
        ``0 .. K-1``, 0 the reference); 0 for the other models.
    """

    model: SubModel
    fixed: tuple[tuple[Atom, ...], ...]
    random: tuple[tuple[Atom, ...], ...]
    x_names: tuple[str, ...]
    z_names: tuple[str, ...]
    n_categories: int = 0

    @property
    def dependent(self) -> str:
        """The model's dependent variable."""
        return self.model.dependent

    @property
    def level(self) -> int:
        """1: rows; 2: clusters; 3: outer clusters."""
        return self.model.level

    @property
    def predictors(self) -> frozenset[str]:
        """The columns the design reads."""
        return frozenset(c for col in (*self.fixed, *self.random) for a in col
                         for c in (a.column, *a.columns))

    def X(self, frame: Frame, rows: np.ndarray | None = None) -> np.ndarray:
        """Fixed design on ``rows``, column by column: shape (C, p, r)."""
        return design_columns(self.fixed, frame, rows)

    def Z(self, frame: Frame, rows: np.ndarray | None = None) -> np.ndarray:
        """Random design on ``rows``, column by column: shape (C, q, r)."""
        return design_columns(self.random, frame, rows)


def reads(column: tuple[Atom, ...], name: str) -> bool:
    """Whether a design column (a product of atoms) reads the column ``name``."""
    return any(name in (a.column, *a.columns) for a in column)


def design_columns(columns: tuple[tuple[Atom, ...], ...], frame: Frame,
                   rows: np.ndarray | None) -> np.ndarray:
    """The values ``(C, k, r)`` of ``k`` design columns on ``rows`` (all rows if ``None``)."""
    out = np.empty((frame.chains, len(columns), frame.n if rows is None else len(rows)))
    cache: dict[Atom, np.ndarray] = {}
    for j, atoms in enumerate(columns):
        if not atoms:
            out[:, j] = 1.0
            continue
        for k, a in enumerate(atoms):
            if a not in cache:
                cache[a] = frame.atom(a, rows)
            if k == 0:
                out[:, j] = cache[a]
            else:
                out[:, j] *= cache[a]
    return out


def model_design(model: SubModel, categories: Mapping[str, tuple[str, ...]]) -> ModelDesign:
    """Resolve a model's terms into design columns.

    Parameters
    ----------
    model : SubModel
    categories : mapping of str -> tuple of str
        The labels, in code order, of every column held as category codes
        (the dependent's too, for a multinomial model).
    """
    fixed, x_names = _columns(model.fixed, model.intercept, categories)
    if model.level >= 2:
        random: list[tuple[Atom, ...]] = []
        z_names: list[str] = []
    else:
        random, z_names = _columns(model.random, model.random_intercept, categories)
    return ModelDesign(model=model, fixed=tuple(fixed), random=tuple(random),
                       x_names=tuple(x_names), z_names=tuple(z_names),
                       n_categories=len(categories.get(model.dependent, ()))
                       if model.family == "multinomial" else 0)


def _columns(terms: tuple[Term, ...], intercept: bool, categories: Mapping[str, tuple[str, ...]]
             ) -> tuple[list[tuple[Atom, ...]], list[str]]:
    """Atom products and names of ``terms``, treatment contrasts as the analysis design.

    A categorical factor is coded by ``levels[1:]`` when the term without it is
    in the model too (or is the intercept), else by all its levels, as R does.
    """
    present = {t.key for t in terms}
    columns: list[tuple[Atom, ...]] = [()] if intercept else []
    names = ["(Intercept)"] if intercept else []
    for t in terms:
        block: list[tuple[tuple[Atom, ...], str]] = [((), "")]
        for f in t.factors:
            margin = t.key - {f}
            reduced = (not margin and intercept) or (bool(margin) and margin in present)
            choices = _atoms(f, categories, reduced)
            block = [((*atoms, a), f"{name}:{label}" if name else label)
                     for atoms, name in block for a, label in choices]
        columns += [atoms for atoms, _ in block]
        names += [name for _, name in block]
    return columns, names


def _atoms(f: Factor, categories: Mapping[str, tuple[str, ...]],
           reduced: bool) -> list[tuple[Atom, str]]:
    """The atom(s) of one factor with their column labels."""
    if f.kind == "expr":
        return [(Atom("expr", f.name, expr=parse_expr(f.column, f.columns),
                      columns=f.columns), f.name)]
    if f.kind in ("cat", "var", "dummy") and f.column in categories:
        levels = categories[f.column]
        if f.kind == "dummy":
            return [(Atom("dummy", f.column, float(levels.index(f.level))), f.name)]
        first = 1 if reduced else 0
        prefix = "T." if reduced else ""
        return [(Atom("dummy", f.column, float(k)), f"C({f.column})[{prefix}{levels[k]}]")
                for k in range(first, len(levels))]
    kind: AtomKind = "var" if f.kind in ("var", "cat") else f.kind  # type: ignore[assignment]
    return [(Atom(kind, f.column), f.name)]
