"""Design matrices of a two-level linear mixed model, as plain arrays.

:func:`recipe_compiler.formula.build_design` turns a formula and a DataFrame
into a :class:`Design`; the fitter in :mod:`recipe_compiler.lmm` works on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True, eq=False)
class Design:
    """Arrays of one two-level model on the rows that are complete for it.

    Attributes
    ----------
    y : ndarray, shape (n,)
        The outcome.
    X : ndarray, shape (n, p)
        Fixed-effects design; ``x_names`` names its columns, lme4-style
        (``"(Intercept)"``, ``"iqv"``, ``"iqv:ses"``, ``"cm(iqv)"``, ``"C(den)[T.2]"``).
    Z : ndarray, shape (n, q)
        Random-effects design (intercept first when present); ``z_names`` names it.
    groups : ndarray of int, shape (n,)
        Cluster codes ``0 .. n_groups - 1``; ``group_labels[code]`` is the label.
    outcome, cluster : str
        Names of the outcome and the grouping column.
    rows : pandas.Index
        Index labels of the rows used (after listwise deletion).
    n_dropped : int
        Rows left out because a model variable was missing.
    """

    y: np.ndarray
    X: np.ndarray
    x_names: tuple[str, ...]
    Z: np.ndarray
    z_names: tuple[str, ...]
    groups: np.ndarray
    group_labels: np.ndarray
    outcome: str
    cluster: str
    rows: pd.Index
    n_dropped: int

    @property
    def n_groups(self) -> int:
        """Number of clusters with at least one row."""
        return len(self.group_labels)
