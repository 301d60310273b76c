"""Known-truth two-level data with an incomplete categorical predictor, MAR through an auxiliary.

Used by ``tests/runtime/test_categorical_recovery.py`` (one replication each) and
``benchmarks/categorical_simulation.py`` (many). Three scenarios, each with ``G``
clusters of ``s`` rows, a level-1 ``x`` (ICC 0.2), cluster effects ``u ~ N(0, 0.5)``
and ``e ~ N(0, 1)``:

``"nominal"``
    ``eth`` in {a, b, c} at level 1, ``log P(k)/P(a) = alpha_k + delta_k x + v_ck``
    (``v_c ~ N(0, 0.5 I)``: the probabilities depend on ``x`` and on the cluster);
    ``y = 1 + 0.5 x + 0.8 [b] - 0.6 [c] + u + e``; ``y ~ x + C(eth) + (1 | g)``.
``"ordinal"``
    ``lik`` in {1, 2, 3, 4} at level 1 (an ordered pandas categorical), cut from
    ``0.7 x + v_c + N(0, 1)`` at ``(-0.5, 0.3, 1.1)`` (``v_c ~ N(0, 0.5)``);
    ``y = 1 + 0.5 x + 0.4 [2] + 0.9 [3] + 1.2 [4] + u + e``; ``y ~ x + lik + (1 | g)``.
``"level2"``
    ``w`` in {a, b, c} per cluster, ``log P(k)/P(a) = alpha_k + delta_k z`` with a
    complete level-2 ``z ~ N(0, 1)``; ``y = 1 + 0.5 x + 0.3 z + 0.7 [b] - 0.5 [c] + u
    + e``; ``y ~ x + z + C(w) + (1 | g)``.

The auxiliary ``a = 0.5 y + 0.6 ([b] - [c]) + N(0, 1)`` (for the ordinal scenario
``0.5 y + 0.3 lik + N(0, 1)``) is outside the analysis model. The categorical
variable goes missing with probability ``logistic(-0.8 + 1.2 za)`` (``za`` the
standardised ``a``; for ``"level2"`` the standardised cluster mean of ``a``, a
whole cluster at a time): MAR given ``a``, which depends on ``y``, so listwise
deletion is biased.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit

SCENARIOS = ("nominal", "ordinal", "level2")


@dataclass(frozen=True)
class Simulated:
    """One simulated data set and what is known about it.

    Attributes
    ----------
    data : pandas.DataFrame
        The incomplete data (``g``, ``y``, ``x``, the categorical column, ``a``, ...).
    complete : pandas.Series
        The categorical column before deletion.
    target : str
        The incomplete categorical column.
    analysis : str
        The analysis model.
    truth : dict of str -> float
        The true fixed effects, by term name of the analysis.
    """

    data: pd.DataFrame
    complete: pd.Series
    target: str
    analysis: str
    truth: dict[str, float]


def simulate(scenario: str, seed: int, n_clusters: int = 60, size: int = 20) -> Simulated:
    """One data set of ``scenario`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_clusters), size)
    n = len(g)
    x = np.sqrt(0.2) * rng.normal(size=n_clusters)[g] + np.sqrt(0.8) * rng.normal(size=n)
    u = np.sqrt(0.5) * rng.normal(size=n_clusters)[g]
    e = rng.normal(size=n)
    frame = {"g": g, "x": x}
    if scenario == "nominal":
        v = np.sqrt(0.5) * rng.normal(size=(n_clusters, 2))[g]
        k = _multinomial(rng, np.column_stack([-0.2 + 0.8 * x, 0.3 - 0.6 * x]) + v)
        y = 1 + 0.5 * x + np.array([0.0, 0.8, -0.6])[k] + u + e
        a = 0.5 * y + np.array([0.0, 0.6, -0.6])[k] + rng.normal(size=n)
        column = pd.Series(np.array(["a", "b", "c"])[k])
        truth = {"(Intercept)": 1.0, "x": 0.5, "C(eth)[T.b]": 0.8, "C(eth)[T.c]": -0.6}
        target, analysis, missing = "eth", "y ~ x + C(eth) + (1 | g)", _mar(rng, a)
    elif scenario == "ordinal":
        latent = 0.7 * x + np.sqrt(0.5) * rng.normal(size=n_clusters)[g] + rng.normal(size=n)
        k = np.searchsorted([-0.5, 0.3, 1.1], latent)
        y = 1 + 0.5 * x + np.array([0.0, 0.4, 0.9, 1.2])[k] + u + e
        a = 0.5 * y + 0.3 * k + rng.normal(size=n)
        column = pd.Series(pd.Categorical(k + 1, categories=[1, 2, 3, 4], ordered=True))
        truth = {"(Intercept)": 1.0, "x": 0.5, "C(lik)[T.2]": 0.4, "C(lik)[T.3]": 0.9,
                 "C(lik)[T.4]": 1.2}
        target, analysis, missing = "lik", "y ~ x + lik + (1 | g)", _mar(rng, a)
    elif scenario == "level2":
        z = rng.normal(size=n_clusters)
        k = _multinomial(rng, np.column_stack([0.2 + 0.8 * z, -0.3 - 0.7 * z]))[g]
        y = 1 + 0.5 * x + 0.3 * z[g] + np.array([0.0, 0.7, -0.5])[k] + u + e
        a = 0.5 * y + np.array([0.0, 0.6, -0.6])[k] + rng.normal(size=n)
        column = pd.Series(np.array(["a", "b", "c"])[k])
        frame["z"] = z[g]
        truth = {"(Intercept)": 1.0, "x": 0.5, "z": 0.3, "C(w)[T.b]": 0.7, "C(w)[T.c]": -0.5}
        a_bar = np.bincount(g, weights=a) / size
        target, analysis = "w", "y ~ x + z + C(w) + (1 | g)"
        missing = _mar(rng, a_bar)[g]
    else:
        raise ValueError(f"scenario {scenario!r}; valid: {', '.join(SCENARIOS)}")
    frame.update({"y": y, target: column.where(~missing), "a": a})
    return Simulated(data=pd.DataFrame(frame), complete=column, target=target,
                     analysis=analysis, truth=truth)


def _multinomial(rng: np.random.Generator, eta: np.ndarray) -> np.ndarray:
    """Category codes 0..K-1 drawn from the softmax of ``[0, eta]`` row by row."""
    weights = np.exp(np.column_stack([np.zeros(len(eta)), eta]))
    cumulative = np.cumsum(weights, axis=1)
    return (cumulative < rng.random((len(eta), 1)) * cumulative[:, -1:]).sum(axis=1)


def _mar(rng: np.random.Generator, score: np.ndarray) -> np.ndarray:
    """Missing with probability ``logistic(-0.8 + 1.2 z)``, ``z`` the standardised score."""
    z = (score - score.mean()) / score.std()
    return rng.random(len(score)) < expit(-0.8 + 1.2 * z)
