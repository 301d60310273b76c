"""Shared fixtures: the bundled brandsma data, a seeded synthetic two-level frame factory and
the six-row frame of the design tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import pytest

import recipe_compiler as rc


def two_level_frame(*, seed: int = 0, n_clusters: int = 6, cluster_size: tuple[int, int] = (3, 6),
                    level1: Sequence[str] = ("y", "x"), binary: Sequence[str] = ("b",),
                    level2: Sequence[str] = ("z",), level2_binary: Sequence[str] = (),
                    missing: float | Mapping[str, float] = 0.0) -> pd.DataFrame:
    """A seeded synthetic two-level data set with cluster column ``g``.

    Parameters
    ----------
    seed : int
        Seed of the random generator; equal arguments give equal frames.
    n_clusters : int
        Number of clusters (at least 2).
    cluster_size : (int, int)
        Inclusive range of the cluster sizes (lower bound at least 2).
    level1, binary : sequence of str
        Level-1 continuous and level-1 0/1 columns.
    level2, level2_binary : sequence of str
        Level-2 (constant within cluster) continuous and 0/1 columns.
    missing : float or mapping
        Probability that a value is missing: one rate for every column, or a rate
        per column (others complete). Level-2 values go missing a whole cluster
        at a time.

    Returns
    -------
    pandas.DataFrame
        Columns ``g``, then the columns in argument order. Whatever the missingness,
        every level-1 column varies within cluster 0 (rows 0 and 1 stay observed and
        differ), each 0/1 column takes both values, and level-2 values of clusters
        0 and 1 stay observed and differ.
    """
    rng = np.random.default_rng(seed)
    lo, hi = cluster_size
    sizes = rng.integers(max(lo, 2), max(hi, lo, 2) + 1, size=n_clusters)
    g = np.repeat(np.arange(1, n_clusters + 1), sizes)
    n = len(g)
    effect = rng.normal(size=n_clusters)[g - 1]
    cols: dict[str, np.ndarray] = {"g": g}
    for name in level1:
        x = effect + rng.normal(size=n)
        x[1] = x[0] + 1.0
        cols[name] = x
    for name in binary:
        b = (rng.random(n) < 0.5).astype(float)
        b[:2] = (0.0, 1.0)
        cols[name] = b
    for name in level2:
        v = rng.normal(size=n_clusters)
        v[1] = v[0] + 1.0
        cols[name] = v[g - 1]
    for name in level2_binary:
        w = (rng.random(n_clusters) < 0.5).astype(float)
        w[:2] = (0.0, 1.0)
        cols[name] = w[g - 1]
    level2_names = {*level2, *level2_binary}
    protected_clusters = np.isin(g, (1, 2))
    for name in cols:
        if name == "g":
            continue
        rate = missing.get(name, 0.0) if isinstance(missing, Mapping) else missing
        if name in level2_names:
            drop = (rng.random(n_clusters) < rate)[g - 1] & ~protected_clusters
        else:
            drop = rng.random(n) < rate
            drop[:2] = False
        cols[name] = np.where(drop, np.nan, cols[name])
    return pd.DataFrame(cols)


@pytest.fixture(scope="session")
def make_frame() -> Callable[..., pd.DataFrame]:
    """The :func:`two_level_frame` factory (session scope: safe under hypothesis)."""
    return two_level_frame


@pytest.fixture(scope="session")
def brandsma() -> pd.DataFrame:
    """The bundled brandsma data. Treat as read-only: copy before changing it."""
    return rc.datasets.load_brandsma()


@pytest.fixture
def small() -> pd.DataFrame:
    """Six rows in two clusters for the design tests: x is missing in row c, y in row a; c is
    level-2 categorical."""
    return pd.DataFrame({"g": [1, 1, 1, 2, 2, 2],
                         "y": [np.nan, 2.0, 3.0, 4.0, 5.0, 6.0],
                         "x": [1.0, 3.0, np.nan, 2.0, 4.0, 6.0],
                         "c": [1, 1, 1, 2, 2, 3]}, index=list("abcdef"))


def check_caret(message: str, formula: str, snippet: str, start: int | None = None) -> None:
    """Assert that ``message`` ends with ``formula`` and a caret line exactly under ``snippet``.

    Parameters
    ----------
    message : str
        The error message.
    formula : str
        The formula the message shows.
    snippet : str
        The text the carets must underline.
    start : int, optional
        Where ``snippet`` starts in ``formula``; by default its first occurrence.
    """
    where = formula.index(snippet) if start is None else start
    assert formula[where:where + len(snippet)] == snippet
    *_, shown, carets = message.splitlines()
    assert shown == f"    {formula}"
    assert carets == "    " + " " * where + "^" * len(snippet)


@pytest.fixture(scope="session")
def caret() -> Callable[..., None]:
    """:func:`check_caret`, the exact check of an error's caret line."""
    return check_caret


def target_row(plan: rc.Plan, target: str) -> dict[str, int]:
    """Non-zero predictors of a target row, without the cluster column.

    Parameters
    ----------
    plan : Plan
    target : str

    Returns
    -------
    dict
        Predictor name -> code.
    """
    return {p: c for p, c in plan.predictors(target) if c != -2}


@pytest.fixture(scope="session")
def row() -> Callable[[rc.Plan, str], dict[str, int]]:
    """:func:`target_row`, a target's predictors as ``{name: code}``."""
    return target_row
