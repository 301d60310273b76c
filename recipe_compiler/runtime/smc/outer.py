"""The outer random-intercept block of a three-level (nested) SMC model.

In a plan with two nested grouping factors (pupils in classes in schools) the
level-1 and level-2 models have, besides their inner random effects, a random
intercept ``v_s ~ N(0, tau)`` over the outer clusters (schools). Since every
inner cluster lies within one outer cluster, ``v`` is an offset that is constant
within each inner cluster: the inner block (:mod:`.normal`, or the level-2
regression of :mod:`.models`) is updated given ``v``, then ``(beta_0, v)`` given
the rest by :func:`~recipe_compiler.runtime.samplers.normal_ml.draw_intercept_block`
(the FCS multilevel sampler's step: the intercept with ``v`` integrated out, then
``v``, one scalar per outer cluster, from segment sums), then ``tau | v`` from the
prior of the other variance components
(:func:`~recipe_compiler.runtime.samplers.normal_2l.draw_omega` with ``q = 1``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...data.grouping import Grouping
from ...data.levels import nested_in
from ...errors import DataError
from ..samplers.common import Recovery
from ..samplers.normal_2l import draw_omega
from ..samplers.normal_ml import draw_intercept_block

__all__ = ["Outer", "draw_outer", "make_outer"]


@dataclass(frozen=True, eq=False)
class Outer:
    """The outer grouping factor of a three-level plan.

    Attributes
    ----------
    rows : Grouping
        The outer cluster of every row.
    parent : ndarray of int, shape (G,)
        The outer cluster of every inner cluster.
    first : ndarray of int, shape (S,)
        One inner cluster of every outer cluster (where its values are read).
    """

    rows: Grouping
    parent: np.ndarray
    first: np.ndarray

    @property
    def n(self) -> int:
        """Number of outer clusters ``S``."""
        return self.rows.n


def make_outer(data: pd.DataFrame, name: str, grouping: Grouping) -> Outer:
    """The :class:`Outer` of grouping factor ``name``, in which ``grouping`` is nested.

    Raises
    ------
    DataError
        ``grouping`` is not nested in ``name`` in these data.
    """
    rows = Grouping.from_column(data, name)
    if not nested_in(grouping, rows):
        raise DataError(f"the clusters of '{grouping.name}' are not nested in those of "
                        f"'{name}' in these data (some cluster lies in several); compile the "
                        "plan again on these data")
    parent = np.zeros(grouping.n, dtype=np.intp)
    parent[grouping.codes] = rows.codes
    first = np.zeros(rows.n, dtype=np.intp)
    first[parent[::-1]] = np.arange(grouping.n)[::-1]
    return Outer(rows=rows, parent=parent, first=first)


def draw_outer(partial: np.ndarray, codes: Grouping, sigma2: np.ndarray,
               tau: np.ndarray, rngs: list[np.random.Generator], name: str
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw ``(beta_0, v) | rest``, then ``tau | v``, in every chain.

    Parameters
    ----------
    partial : ndarray, shape (C, n)
        Per unit (row or inner cluster), the dependent minus every part of the
        model but the intercept and ``v``.
    codes : Grouping
        The outer cluster of each unit.
    sigma2, tau : ndarray, shape (C,)
        The residual variance and the previous variance of ``v``.
    rngs : list of numpy.random.Generator
    name : str
        The dependent (for messages).

    Returns
    -------
    intercept : ndarray, shape (C,)
    v : ndarray, shape (C, S)
    tau : ndarray, shape (C,)
    """
    info = codes.sizes / sigma2[:, None]
    score = codes.segment_sums(partial) / sigma2[:, None]
    intercept, v = draw_intercept_block(info, score, tau, rngs)
    log = Recovery(name)
    new_tau = draw_omega(v[:, :, None], rngs, log)[0][:, 0, 0]
    log.warn()
    return intercept, v, new_tau
