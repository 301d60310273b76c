"""How several grouping factors relate in the data: nested or crossed.

:func:`nesting` reads from the data whether the grouping factors of a model form a
chain of nested factors (pupils in classes in schools: every class lies within one
school) or are crossed (raters and items), and orders them: innermost first for a
nested chain, as given (formula order) otherwise. The schema
(:func:`recipe_compiler.data.schema.infer_schema`) uses the result to give columns
levels 1, 2, 3, ...; the compiler to lay out the plan's groupings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

import numpy as np
import pandas as pd

from ..errors import DataError
from .grouping import Grouping

__all__ = ["Nesting", "check_grouping_complete", "groupings_of", "nested_in", "nesting",
           "nesting_of"]

NestingKind = Literal["nested", "crossed"]


@dataclass(frozen=True)
class Nesting:
    """The grouping factors of a model and how they relate.

    Attributes
    ----------
    groupings : tuple of str
        Grouping factor names (``"school:class"`` for an interaction). Nested:
        innermost first (``("school:class", "school")``); crossed: in the order given
        (formula order).
    kind : {"nested", "crossed"}
        ``"nested"`` when every cluster of each factor lies within one cluster of the
        next (a chain; a single factor is trivially nested); ``"crossed"`` otherwise
        (fully or partially crossed, or a mix).
    """

    groupings: tuple[str, ...]
    kind: NestingKind

    @property
    def innermost(self) -> str:
        """The first grouping factor (the innermost of a nested chain)."""
        return self.groupings[0]

    @property
    def outermost(self) -> str:
        """The last grouping factor (the outermost of a nested chain)."""
        return self.groupings[-1]


def nested_in(fine: Grouping, coarse: Grouping) -> bool:
    """True if every cluster of ``fine`` (with rows) lies within one cluster of ``coarse``.

    Both groupings are of the same rows. One sort of the ``(fine, coarse)`` code
    pairs: nested when there are as many distinct pairs as clusters of ``fine``.
    """
    pairs = np.unique(fine.codes.astype(np.int64) * coarse.n + coarse.codes).size
    return bool(pairs == np.count_nonzero(fine.sizes))


def groupings_of(data: pd.DataFrame, groupings: Sequence[str], *,
                 min_clusters: int = 1) -> tuple[Grouping, ...]:
    """The :class:`Grouping` of each factor name (a column or a compound ``"a:b"``).

    Raises
    ------
    DataError
        A grouping column not in the data or with missing values (naming the rows),
        or a factor with fewer than ``min_clusters`` clusters.
    """
    return tuple(Grouping.from_column(data, g, min_clusters=min_clusters) for g in groupings)


def check_grouping_complete(data: pd.DataFrame, groupings: Sequence[str]) -> None:
    """Raise the :class:`~recipe_compiler.errors.DataError` of
    :meth:`Grouping.from_column <recipe_compiler.data.grouping.Grouping.from_column>` if a
    column of a grouping factor is absent or has missing values (the message names the
    column, the number of rows with a missing value and the first of their index labels)."""
    groupings_of(data, groupings)


def nesting(data: pd.DataFrame, groupings: Sequence[str]) -> Nesting:
    """Whether the grouping factors are nested (a chain) or crossed in ``data``.

    Parameters
    ----------
    data : pandas.DataFrame
    groupings : sequence of str
        Grouping factor names in formula order (a column, or ``"school:class"``);
        repeats are ignored.

    Returns
    -------
    Nesting
        Nested when, ordered by decreasing number of clusters (ties keep the given
        order), each factor is nested in the next (:func:`nested_in`); the groupings
        then innermost first. Else crossed, the groupings as given.

    Raises
    ------
    DataError
        No grouping factor, or a grouping column absent or with missing values.
    """
    names = tuple(dict.fromkeys(groupings))
    if not names:
        raise DataError("no grouping factor given; a multilevel model needs at least one, "
                        "e.g. (1 | cluster)")
    return nesting_of(groupings_of(data, names))


def nesting_of(groupings: Sequence[Grouping]) -> Nesting:
    """:func:`nesting` of groupings already built (of the same rows; named, in formula
    order; repeated names are ignored)."""
    parts = {g.name or "": g for g in groupings}
    names = tuple(parts)
    chain = sorted(names, key=lambda g: -parts[g].n)
    if all(nested_in(parts[a], parts[b]) for a, b in pairwise(chain)):
        return Nesting(groupings=tuple(chain), kind="nested")
    return Nesting(groupings=names, kind="crossed")
