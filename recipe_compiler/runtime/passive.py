"""Derived variables, recomputed from their parents over all rows at once.

``2l.groupmean`` (cluster means, over the plan's cluster or, with several
grouping factors, over the factor a ``cm`` variable's ``detail`` names),
centring within cluster, products, dummy columns and ``I()`` expressions: each
one vectorised numpy pass. Dummies and expressions go through the term
evaluator (:mod:`recipe_compiler.model.terms`); an expression is parsed by the
safe expression language, never run as Python.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..data.grouping import Grouping
from ..errors import DataError
from ..model.expr import evaluate
from ..model.terms import expression, indicators
from ..plan import Derived


def mean_grouping(d: Derived, grouping: Grouping,
                  groupings: Mapping[str, Grouping] | None = None) -> Grouping:
    """The grouping factor a cluster mean ``d`` averages over: ``grouping`` (the plan's
    cluster) when ``d.detail`` is empty or names it, else ``groupings[d.detail]``.

    Raises
    ------
    DataError
        ``d.detail`` names no grouping factor of ``groupings``.
    """
    if d.detail in ("", grouping.name):
        return grouping
    if groupings is None or d.detail not in groupings:
        known = ", ".join(repr(g) for g in (groupings or [grouping.name]))
        raise DataError(f"cannot compute '{d.name}': it averages over {d.detail!r}, which is "
                        f"not a grouping factor of the plan (its grouping factors: {known})")
    return groupings[d.detail]


def compute(d: Derived, values: Mapping[str, np.ndarray], grouping: Grouping,
            categories: Mapping[str, tuple[str, ...]],
            groupings: Mapping[str, Grouping] | None = None) -> np.ndarray:
    """The current value of derived variable ``d`` for every row.

    Parameters
    ----------
    d : Derived
    values : mapping of str -> ndarray
        Current (completed) values of the plan variables.
    grouping : Grouping
        The (innermost) cluster of every row.
    categories : mapping of str -> tuple of str
        Category labels (in code order) of the categorical columns.
    groupings : mapping of str -> Grouping, optional
        Every grouping factor by name, for a ``cm`` whose ``detail`` names one
        (:func:`mean_grouping`).

    Raises
    ------
    FormulaError
        An ``expr`` whose ``detail`` is not a valid expression of its parents.
    DataError
        A dummy's level that the column lacks, an expression that is not finite,
        or a cluster mean over an unknown grouping factor.
    """
    if d.op == "cm":
        over = mean_grouping(d, grouping, groupings)
        return over.expand(over.means(values[d.parents[0]]))
    if d.op == "cwc":
        return values[d.parents[0]] - values[d.parents[1]]
    if d.op == "product":
        out = values[d.parents[0]].copy()
        for p in d.parents[1:]:
            out *= values[p]
        return out
    if d.op == "dummy":
        levels = categories.get(d.parents[0], ())
        if d.detail not in levels:
            raise DataError(f"cannot compute '{d.name}': '{d.parents[0]}' has no level "
                            f"{d.detail!r} (its levels: {', '.join(map(repr, levels))})")
        return indicators(values[d.parents[0]], [levels.index(d.detail)])[:, 0]
    out = evaluate(expression(d.detail, d.parents, d.name), values, grouping.n_rows)
    bad = ~np.isfinite(out)
    if bad.any():
        raise DataError(f"{d.name} is not finite (NaN or infinite) in {int(bad.sum())} of "
                        f"{len(out)} rows of the completed data, e.g. a division by zero or the "
                        "log of a non-positive value; change the expression or the data")
    return out
