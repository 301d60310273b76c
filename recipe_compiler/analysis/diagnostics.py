"""Convergence diagnostics: rank-normalised split R-hat (Vehtari et al. 2021)."""

from __future__ import annotations

import numpy as np
from scipy import stats

from ..errors import RecipeError


def rhat(draws: np.ndarray) -> float:
    """Rank-normalised split R-hat of draws shaped (iterations, chains).

    The maximum of the bulk R-hat (on rank-normalised split chains) and the tail
    R-hat (on the rank-normalised folded draws), as in Vehtari, Gelman, Simpson,
    Carpenter and Bürkner (2021), *Bayesian Analysis* 16(2), 667-718.

    Raises
    ------
    RecipeError
        Fewer than 4 iterations or 2 chains.
    """
    x = np.asarray(draws, dtype=float)
    if x.ndim != 2 or x.shape[0] < 4 or x.shape[1] < 2:
        raise RecipeError(f"R-hat needs at least 4 iterations and 2 chains, got shape {x.shape}"
                          " (iterations, chains); raise maxit or m")
    n = x.shape[0] // 2
    split = np.concatenate([x[-2 * n:-n], x[-n:]], axis=1)
    bulk = _basic_rhat(_rank_normalise(split))
    tail = _basic_rhat(_rank_normalise(np.abs(split - np.median(split))))
    return float(max(bulk, tail))


def _rank_normalise(x: np.ndarray) -> np.ndarray:
    ranks = stats.rankdata(x, method="average").reshape(x.shape)
    return np.asarray(stats.norm.ppf((ranks - 3 / 8) / (x.size + 1 / 4)))


def _basic_rhat(x: np.ndarray) -> float:
    n = x.shape[0]
    within = x.var(axis=0, ddof=1).mean()
    between = n * x.mean(axis=0).var(ddof=1)
    if within == 0:
        return 1.0 if between == 0 else float("inf")
    return float(np.sqrt(((n - 1) / n * within + between / n) / within))
