"""The term evaluator: factors and terms of a model as numpy columns.

One place turns what a formula term means into numbers: a column, its cluster mean
``cm(x)`` and within-cluster deviation ``cwc(x)`` (through a
:class:`~recipe_compiler.data.grouping.Grouping`), an ``I()`` expression (through the
safe expression language of :mod:`.expr`), the indicator columns of a category, and
products of these. The analysis design (:mod:`recipe_compiler.analysis.design`)
builds its matrices with :func:`factor_column` and :func:`term_matrix`; the passive
updates (:mod:`recipe_compiler.runtime.passive`) compute expression-derived variables
with :func:`expression` and dummies with :func:`indicators`.

Categorical factors are coded as formulaic and patsy code them, so that the design
has full structural rank: a term spans every product of reduced-rank (treatment
contrast, ``C(x)[T.b]``) or full-rank (one indicator per level, ``C(x)[a]``)
categorical factors that the terms before it do not already span (the intercept
spans the empty product), merged into the fewest products. For a term with one
categorical factor this is R's rule: contrasts when the term without that factor is
already in the model (or is the intercept), else indicators. Columns of a product
vary its first factor fastest, as R does.

This module imports no data-layer code: the grouping is any object with
``observed_means`` and ``expand``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import product
from typing import TYPE_CHECKING

import numpy as np

from .expr import Expr, evaluate, parse_expr
from .spec import Factor, Term

if TYPE_CHECKING:
    from ..data.grouping import Grouping

__all__ = ["Coded", "expression", "factor_column", "indicators", "term_matrix"]


@dataclass(frozen=True, eq=False)
class Coded:
    """A categorical column: integer codes (``-1`` for missing) into ``levels``."""

    codes: np.ndarray
    levels: tuple[str, ...]

    def take(self, rows: np.ndarray) -> Coded:
        """The selected rows (a boolean mask or indices)."""
        return Coded(self.codes[rows], self.levels)


FactorValues = np.ndarray | Coded


@lru_cache(maxsize=1024)
def expression(text: str, columns: tuple[str, ...], label: str = "") -> Expr:
    """The parsed expression of an ``I()`` factor or an expression-derived variable.

    ``text`` may use only ``columns``; cached, so that a passive update costs no parse.

    Raises
    ------
    FormulaError
        If ``text`` is not a valid expression of ``columns``.
    """
    return parse_expr(text, columns, label=label or None)


def factor_column(f: Factor, columns: Mapping[str, np.ndarray],
                  grouping: Grouping | None) -> np.ndarray:
    """Values of a numeric factor on every row.

    Parameters
    ----------
    f : Factor
        ``var`` (the column), ``cm`` (the mean of the column's observed values in each
        cluster), ``cwc`` (the column minus that mean) or ``expr`` (an ``I()``
        expression, NaN where it is not finite).
    columns : mapping of str -> ndarray of float
        The measured columns ``f.columns``.
    grouping : Grouping or None
        The cluster of every row (needed for ``cm`` and ``cwc``): for ``cm(x, g)``
        the clusters of the grouping factor ``f.group``, for plain ``cm(x)`` those of
        the innermost factor (the caller picks).

    Returns
    -------
    ndarray of float
    """
    if f.kind == "expr":
        n = len(columns[f.columns[0]])
        return evaluate(expression(f.column, f.columns, f.name), columns, n)
    x = columns[f.column]
    if f.kind == "var":
        return x
    if f.kind not in ("cm", "cwc") or f.level or grouping is None:
        raise ValueError(f"factor {f.name} has no numeric value without its dummy coding "
                         "or a grouping")
    mean = grouping.expand(grouping.observed_means(x))
    return mean if f.kind == "cm" else x - mean


def indicators(codes: np.ndarray, levels: Sequence[int]) -> np.ndarray:
    """0/1 columns ``codes == level`` for each level; NaN rows where ``codes`` is missing.

    Parameters
    ----------
    codes : ndarray
        Category codes (ints with ``-1`` or floats with NaN for missing).
    levels : sequence of int
        The codes to indicate.

    Returns
    -------
    ndarray of float, shape (n, len(levels))
    """
    out = (codes[:, None] == np.asarray(levels)[None, :]).astype(float)
    missing = codes < 0 if codes.dtype.kind in "iu" else np.isnan(codes)
    out[missing] = np.nan
    return out


# ----------------------------------------------------------------------------- design matrices

_Scoped = tuple[tuple[Factor, bool], ...]  # factors of a product, each reduced-rank or not


def term_matrix(terms: Sequence[Term], intercept: bool, values: Mapping[str, FactorValues],
                n: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """Model matrix of ``terms`` (and the intercept), with column names.

    Parameters
    ----------
    terms : sequence of Term
        In model order (formulaic's: by degree, then as written).
    intercept : bool
    values : mapping of str -> ndarray or Coded
        Each factor's values by factor name: float arrays for numeric factors,
        :class:`Coded` for categorical (``cat``) factors.
    n : int
        Number of rows.

    Returns
    -------
    X : ndarray, shape (n, p)
    names : tuple of str
        ``(Intercept)``, ``x``, ``x:cm(z)``, ``C(c)[T.2]`` (contrast), ``C(c)[2]``
        (indicator), ``C(a)[T.2]:C(b)[1]``.
    """
    spanned: set[frozenset[tuple[Factor, bool]]] = {frozenset()} if intercept else set()
    columns: list[np.ndarray] = [np.ones(n)] if intercept else []
    names: list[str] = ["(Intercept)"] if intercept else []
    for t in terms:
        if any(f.kind == "cat" for f in t.factors):
            options = [((f, True), None) if f.kind == "cat" else ((f, False),)
                       for f in t.factors]
            span = [s for s in dict.fromkeys(tuple(p for p in combo if p is not None)
                                             for combo in product(*options))
                    if frozenset(s) not in spanned]
        else:  # a product of numeric factors spans itself
            numeric = tuple((f, False) for f in t.factors)
            span = [numeric] if frozenset(numeric) not in spanned else []
        spanned.update(frozenset(s) for s in span)
        for scoped in _simplify(span) if len(span) > 1 else span:
            block, labels = _product(scoped, values, n)
            columns.extend(block.T)
            names.extend(labels)
    X = np.column_stack(columns) if columns else np.empty((n, 0))
    return X, tuple(names)


def _simplify(span: list[_Scoped]) -> list[_Scoped]:
    """The fewest products spanning ``span``: ``A:b- + A`` becomes ``A:b+`` (formulaic's rule,
    applied to the shortest products first and repeated until nothing merges)."""
    out: list[_Scoped] = []
    for scoped in sorted(span, key=len):
        factors = set(scoped)
        for existing in out:
            extra = factors - set(existing)
            if len(factors) - 1 != len(existing) or len(extra) != 1:
                continue
            (new,) = extra
            if new[1]:
                merged = tuple((f, False) if (f, r) == new else (f, r) for f, r in scoped)
                rest = [e for e in out if e is not existing]
                out = _simplify([*rest, merged] if set(merged) not in map(set, rest) else rest)
                break
        else:
            out.append(scoped)
    return out


def _product(scoped: _Scoped, values: Mapping[str, FactorValues],
             n: int) -> tuple[np.ndarray, list[str]]:
    """Columns of one product, its first factor varying fastest, and their names."""
    if not scoped:
        return np.ones((n, 1)), ["(Intercept)"]
    block: np.ndarray | None = None
    labels = [""]
    for f, reduced in scoped:
        v = values[f.name]
        if isinstance(v, Coded):
            first = int(reduced)
            cols = indicators(v.codes, range(first, len(v.levels)))
            prefix = "T." if reduced else ""
            flabels = [f"{f.name}[{prefix}{lv}]" for lv in v.levels[first:]]
        else:
            cols, flabels = np.asarray(v, dtype=float)[:, None], [f.name]
        if block is None:
            block = cols
        elif block.shape[1] == 1 or cols.shape[1] == 1:
            block = cols * block
        else:  # column j * len(block) + i is cols[:, j] * block[:, i]
            block = (cols[:, :, None] * block[:, None, :]).reshape(n, -1)
        labels = [f"{a}:{b}" if a else b for b in flabels for a in labels]
    assert block is not None
    return block, labels
