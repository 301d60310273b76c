"""Known-truth two-level data with MAR missingness through an auxiliary variable.

Seven scenarios in which the recipes of FIMD Tables 7.5/7.6 are only approximate
(the checks of issue 15 for ``approach="smc"``), each a random-intercept model
with ``G`` clusters of ``s`` rows (default 50 of 20), ``u0 ~ N(0, 0.5)``,
``e ~ N(0, 1)`` and an intercept of 1:

``"slope"`` (a)
    ``y = 1 + 0.5 x + 0.4 z + 0.3 x z + u0 + u1 x + e``, a random slope
    ``u1 ~ N(0, 0.1)`` (correlation 0.3 with ``u0``) on the incomplete level-1
    ``x`` and a cross-level interaction with the complete level-2 ``z``.
    Analysis model ``y ~ x*z + (1 + x | g)``. ``x`` and ``y`` are incomplete.
``"moderator"`` (b)
    ``y = 1 + 0.5 x + 0.4 w + 0.3 x w + u0 + u1 x + e`` with the complete
    level-1 ``x`` and the incomplete level-2 moderator ``w``; ``y ~ x*w + (1 + x | g)``.
``"binary"`` (c)
    ``y = 1 + 0.5 x + 0.8 b + u0 + e`` with the incomplete level-1 binary ``b``,
    ``P(b = 1) = logistic(-0.3 + 0.8 x + c)``, ``c ~ N(0, 0.5)`` per cluster;
    ``y ~ x + b + (1 | g)``.
``"quadratic"`` (d)
    ``y = 1 + 0.5 x + 0.3 x^2 + u0 + e`` with the incomplete ``x``;
    ``y ~ x + I(x**2) + (1 | g)``.
``"cluster_mean"`` (e)
    ``y = 1 + 0.5 x + 0.8 cm(x) + u0 + e`` where ``cm(x)`` is the manifest mean
    of the cluster's ``s`` values of the incomplete ``x`` (ICC of ``x`` 0.3);
    ``y ~ x + cm(x) + (1 | g)``.
``"nominal"`` (f)
    ``y = 1 + 0.5 x + 0.6 [k = b] - 0.4 [k = c] + u0 + e`` with the incomplete
    level-1 nominal ``k`` (categories ``a``, ``b``, ``c``; ``a`` the reference),
    ``log P(k = b) / P(k = a) = -0.2 + 0.8 x + c_b`` and ``log P(k = c) /
    P(k = a) = 0.2 - 0.6 x + c_c``, ``c_b, c_c ~ N(0, 0.5)`` independent per
    cluster; ``y ~ x + C(k) + (1 | g)``.
``"nominal_level2"`` (g)
    ``y = 1 + 0.5 x + 0.4 z + 0.8 [w = b] - 0.6 [w = c] + u0 + e`` with the
    complete level-2 ``z`` and the incomplete level-2 nominal ``w`` (categories
    ``a``, ``b``, ``c``), ``log P(w = b) / P(w = a) = 0.2 + 0.8 z``, ``log P(w =
    c) / P(w = a) = -0.1 - 0.6 z``; ``y ~ x + z + C(w) + (1 | g)``.

Level-1 predictors ``x`` have an ICC of 0.2 (0.3 in ``"cluster_mean"``), level-2
ones are standard normal. The auxiliary ``a`` is a level-1 variable outside the
analysis model, linear in the analysis variables, ``a = 0.5 y + 0.5 v + 0.3 r +
N(0, 1)`` (``v`` the scenario's incomplete predictor, for a nominal one 0, 1, -1
for its categories ``a``, ``b``, ``c``; ``r ~ N(0, 1)`` per
cluster), so it correlates with the incomplete variables and the outcome, and
an auxiliary model ``a ~ y + x + ... + (1 | g)`` is correctly specified. The
probability that a value goes missing is ``logistic(alpha + gamma za)`` with
``za`` the standardised ``a`` (about a third of the values; for ``y`` in
``"slope"`` about an eighth); a level-2 value goes missing for the whole
cluster with ``za`` the standardised cluster mean of ``a``. The missingness
depends on ``a`` alone, which is observed: the data are MAR given ``a``, and
listwise deletion (and any imputation that leaves ``a`` out) is biased.

>>> from recipe_compiler.datasets import simulate
>>> sim = simulate.simulate("slope", seed=1)
>>> sim.formula, sim.auxiliary, sim.truth["x:z"]
('y ~ x*z + (1 + x | g)', ('a',), 0.3)
>>> sim.data.shape, bool(sim.data["x"].isna().any()), bool(sim.complete.notna().all(axis=None))
((1000, 5), True, True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import OptionError, one_of

__all__ = ["SCENARIOS", "Scenario", "Simulated", "simulate"]

_VAR_U0 = 0.5
_VAR_U1 = 0.1
_CORR_U = 0.3

#: Columns -> their values for all ``G * s`` rows, then the missingness masks.
_Columns = dict[str, np.ndarray]
_Generator = Callable[[np.random.Generator, np.ndarray, int], tuple[_Columns, _Columns]]


@dataclass(frozen=True)
class Scenario:
    """One known-truth scenario.

    Attributes
    ----------
    name : str
        Key in :data:`SCENARIOS`.
    label : str
        Short description for tables, e.g. ``"(a) random slope of x, x:z"``.
    formula : str
        The analysis model (lme4 syntax, cluster column ``g``).
    truth : dict
        True fixed effects, keyed by the term names :func:`~recipe_compiler.fit_lmm`
        gives them.
    auxiliary : tuple of str
        Columns outside the analysis model that drive the missingness.
    incomplete : tuple of str
        Columns with missing values.
    generate : callable
        ``generate(rng, g, G)`` -> (column values, missingness masks), ``g`` the
        0-based cluster code of every row.
    """

    name: str
    label: str
    formula: str
    truth: dict[str, float]
    auxiliary: tuple[str, ...]
    incomplete: tuple[str, ...]
    generate: _Generator


@dataclass(frozen=True, eq=False)
class Simulated:
    """One simulated data set of a :class:`Scenario`.

    Attributes
    ----------
    scenario : str
    data : pandas.DataFrame
        Columns ``g`` (cluster, 1..G), ``y``, the predictors and the auxiliary;
        NaN where a value was deleted.
    complete : pandas.DataFrame
        The same data before the deletion.
    truth : dict
        True fixed effects by term name.
    formula : str
        The analysis model.
    auxiliary : tuple of str
        The auxiliary columns (for ``rc.impute(..., auxiliary=...)``).
    """

    scenario: str
    data: pd.DataFrame
    complete: pd.DataFrame
    truth: dict[str, float]
    formula: str
    auxiliary: tuple[str, ...]


def simulate(scenario: str, seed: int | np.random.SeedSequence, *, n_clusters: int = 50,
             cluster_size: int = 20) -> Simulated:
    """Draw one data set of a scenario of :data:`SCENARIOS`.

    Parameters
    ----------
    scenario : str
        ``"slope"``, ``"moderator"``, ``"binary"``, ``"quadratic"``,
        ``"cluster_mean"``, ``"nominal"`` or ``"nominal_level2"`` (see the
        module docstring).
    seed : int or numpy.random.SeedSequence
        Seed of the generator; equal arguments give equal data.
    n_clusters, cluster_size : int
        ``G`` clusters (at least 2) of ``s`` rows (at least 2) each.

    Returns
    -------
    Simulated

    Raises
    ------
    OptionError
        An unknown scenario or a size below 2.
    """
    if scenario not in SCENARIOS:
        raise one_of("scenario", scenario, SCENARIOS)
    for name, value in (("n_clusters", n_clusters), ("cluster_size", cluster_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 2:
            raise OptionError(f"{name}={value!r} is not valid; it must be an integer >= 2")
    spec = SCENARIOS[scenario]
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_clusters), cluster_size)
    values, missing = spec.generate(rng, g, n_clusters)
    complete = pd.DataFrame({"g": g + 1, **values})
    data = complete.copy()
    for column, mask in missing.items():
        data.loc[mask, column] = np.nan
    return Simulated(scenario=scenario, data=data, complete=complete, truth=dict(spec.truth),
                     formula=spec.formula, auxiliary=spec.auxiliary)


# ----------------------------------------------------------------------------- building blocks


def _per_cluster(rng: np.random.Generator, g: np.ndarray, n_clusters: int,
                 var: float = 1.0) -> np.ndarray:
    """A normal cluster effect with variance ``var``, repeated over the cluster's rows."""
    return np.asarray(rng.normal(scale=np.sqrt(var), size=n_clusters)[g])


def _level1(rng: np.random.Generator, g: np.ndarray, n_clusters: int, icc: float) -> np.ndarray:
    """A unit-variance level-1 variable whose cluster component has variance ``icc``."""
    return _per_cluster(rng, g, n_clusters, icc) + rng.normal(scale=np.sqrt(1 - icc), size=len(g))


def _random_effects(rng: np.random.Generator, g: np.ndarray,
                    n_clusters: int) -> tuple[np.ndarray, np.ndarray]:
    """Random intercept and slope, variances 0.5 and 0.1, correlation 0.3, per row."""
    cov = _CORR_U * np.sqrt(_VAR_U0 * _VAR_U1)
    u = rng.multivariate_normal([0.0, 0.0], [[_VAR_U0, cov], [cov, _VAR_U1]], size=n_clusters)
    return u[g, 0], u[g, 1]


def _auxiliary(rng: np.random.Generator, g: np.ndarray, n_clusters: int, y: np.ndarray,
               v: np.ndarray) -> np.ndarray:
    """``a = 0.5 y + 0.5 v + 0.3 r + N(0, 1)``, ``r`` a standard normal cluster effect."""
    return 0.5 * y + 0.5 * v + 0.3 * _per_cluster(rng, g, n_clusters) + rng.normal(size=len(g))


def _mar(rng: np.random.Generator, score: np.ndarray, alpha: float,
         gamma: float = 1.5) -> np.ndarray:
    """Missing with probability ``logistic(alpha + gamma * standardised score)``."""
    z = (score - score.mean()) / score.std()
    return np.asarray(rng.random(len(score)) < 1.0 / (1.0 + np.exp(-(alpha + gamma * z))))


def _cluster_mar(rng: np.random.Generator, g: np.ndarray, n_clusters: int, a: np.ndarray,
                 alpha: float, gamma: float = 2.0) -> np.ndarray:
    """Whole clusters missing, driven by the cluster mean of ``a``."""
    abar = np.bincount(g, weights=a, minlength=n_clusters) / np.bincount(g, minlength=n_clusters)
    return _mar(rng, abar, alpha, gamma)[g]


# ----------------------------------------------------------------------------- scenarios


def _slope(rng: np.random.Generator, g: np.ndarray, n_clusters: int) -> tuple[_Columns, _Columns]:
    x = _level1(rng, g, n_clusters, 0.2)
    z = _per_cluster(rng, g, n_clusters)
    u0, u1 = _random_effects(rng, g, n_clusters)
    y = 1.0 + 0.5 * x + 0.4 * z + 0.3 * x * z + u0 + u1 * x + rng.normal(size=len(g))
    a = _auxiliary(rng, g, n_clusters, y, x)
    return ({"y": y, "x": x, "z": z, "a": a},
            {"x": _mar(rng, a, -1.0), "y": _mar(rng, a, -2.2, 1.0)})


def _moderator(rng: np.random.Generator, g: np.ndarray,
               n_clusters: int) -> tuple[_Columns, _Columns]:
    x = _level1(rng, g, n_clusters, 0.2)
    w = _per_cluster(rng, g, n_clusters)
    u0, u1 = _random_effects(rng, g, n_clusters)
    y = 1.0 + 0.5 * x + 0.4 * w + 0.3 * x * w + u0 + u1 * x + rng.normal(size=len(g))
    a = _auxiliary(rng, g, n_clusters, y, w)
    return {"y": y, "x": x, "w": w, "a": a}, {"w": _cluster_mar(rng, g, n_clusters, a, -1.0)}


def _binary(rng: np.random.Generator, g: np.ndarray, n_clusters: int) -> tuple[_Columns, _Columns]:
    x = _level1(rng, g, n_clusters, 0.2)
    eta = -0.3 + 0.8 * x + _per_cluster(rng, g, n_clusters, 0.5)
    b = (rng.random(len(g)) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    y = 1.0 + 0.5 * x + 0.8 * b + _per_cluster(rng, g, n_clusters, _VAR_U0) \
        + rng.normal(size=len(g))
    a = _auxiliary(rng, g, n_clusters, y, b)
    return {"y": y, "x": x, "b": b, "a": a}, {"b": _mar(rng, a, -1.0)}


def _quadratic(rng: np.random.Generator, g: np.ndarray,
               n_clusters: int) -> tuple[_Columns, _Columns]:
    x = _level1(rng, g, n_clusters, 0.2)
    y = 1.0 + 0.5 * x + 0.3 * x**2 + _per_cluster(rng, g, n_clusters, _VAR_U0) \
        + rng.normal(size=len(g))
    a = _auxiliary(rng, g, n_clusters, y, x)
    return {"y": y, "x": x, "a": a}, {"x": _mar(rng, a, -1.0)}


def _cluster_mean(rng: np.random.Generator, g: np.ndarray,
                  n_clusters: int) -> tuple[_Columns, _Columns]:
    x = _level1(rng, g, n_clusters, 0.3)
    sizes = np.bincount(g, minlength=n_clusters)
    cmx = (np.bincount(g, weights=x, minlength=n_clusters) / sizes)[g]
    y = 1.0 + 0.5 * x + 0.8 * cmx + _per_cluster(rng, g, n_clusters, _VAR_U0) \
        + rng.normal(size=len(g))
    a = _auxiliary(rng, g, n_clusters, y, x)
    return {"y": y, "x": x, "a": a}, {"x": _mar(rng, a, -1.0)}


_LABELS = np.array(["a", "b", "c"])
#: The numeric score of each category of a nominal predictor in the auxiliary.
_SCORE = np.array([0.0, 1.0, -1.0])


def _categories(rng: np.random.Generator, eta_b: np.ndarray, eta_c: np.ndarray) -> np.ndarray:
    """Codes 0, 1, 2 drawn from the multinomial logit with linear predictors 0, ``eta_b``,
    ``eta_c``."""
    weights = np.exp(np.stack([np.zeros_like(eta_b), eta_b, eta_c], axis=1))
    cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    return np.minimum((cumulative < rng.random(len(eta_b))[:, None]).sum(axis=1), 2)


def _nominal(rng: np.random.Generator, g: np.ndarray, n_clusters: int
             ) -> tuple[_Columns, _Columns]:
    x = _level1(rng, g, n_clusters, 0.2)
    k = _categories(rng, -0.2 + 0.8 * x + _per_cluster(rng, g, n_clusters, 0.5),
                    0.2 - 0.6 * x + _per_cluster(rng, g, n_clusters, 0.5))
    y = 1.0 + 0.5 * x + np.array([0.0, 0.6, -0.4])[k] \
        + _per_cluster(rng, g, n_clusters, _VAR_U0) + rng.normal(size=len(g))
    a = _auxiliary(rng, g, n_clusters, y, _SCORE[k])
    return {"y": y, "x": x, "k": _LABELS[k], "a": a}, {"k": _mar(rng, a, -1.0)}


def _nominal_level2(rng: np.random.Generator, g: np.ndarray, n_clusters: int
                    ) -> tuple[_Columns, _Columns]:
    x = _level1(rng, g, n_clusters, 0.2)
    z = rng.normal(size=n_clusters)
    w = _categories(rng, 0.2 + 0.8 * z, -0.1 - 0.6 * z)[g]
    y = 1.0 + 0.5 * x + 0.4 * z[g] + np.array([0.0, 0.8, -0.6])[w] \
        + _per_cluster(rng, g, n_clusters, _VAR_U0) + rng.normal(size=len(g))
    a = _auxiliary(rng, g, n_clusters, y, _SCORE[w])
    return ({"y": y, "x": x, "z": z[g], "w": _LABELS[w], "a": a},
            {"w": _cluster_mar(rng, g, n_clusters, a, -1.0)})


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("slope", "(a) random slope of incomplete x, x:z", "y ~ x*z + (1 + x | g)",
             {"(Intercept)": 1.0, "x": 0.5, "z": 0.4, "x:z": 0.3}, ("a",), ("y", "x"), _slope),
    Scenario("moderator", "(b) incomplete level-2 moderator w, x:w", "y ~ x*w + (1 + x | g)",
             {"(Intercept)": 1.0, "x": 0.5, "w": 0.4, "x:w": 0.3}, ("a",), ("w",), _moderator),
    Scenario("binary", "(c) incomplete binary b", "y ~ x + b + (1 | g)",
             {"(Intercept)": 1.0, "x": 0.5, "b": 0.8}, ("a",), ("b",), _binary),
    Scenario("quadratic", "(d) I(x**2) of incomplete x", "y ~ x + I(x**2) + (1 | g)",
             {"(Intercept)": 1.0, "x": 0.5, "I(x ** 2)": 0.3}, ("a",), ("x",), _quadratic),
    Scenario("cluster_mean", "(e) cm(x) of incomplete x", "y ~ x + cm(x) + (1 | g)",
             {"(Intercept)": 1.0, "x": 0.5, "cm(x)": 0.8}, ("a",), ("x",), _cluster_mean),
    Scenario("nominal", "(f) incomplete nominal k (3 categories)", "y ~ x + C(k) + (1 | g)",
             {"(Intercept)": 1.0, "x": 0.5, "C(k)[T.b]": 0.6, "C(k)[T.c]": -0.4}, ("a",),
             ("k",), _nominal),
    Scenario("nominal_level2", "(g) incomplete level-2 nominal w (3 categories)",
             "y ~ x + z + C(w) + (1 | g)",
             {"(Intercept)": 1.0, "x": 0.5, "z": 0.4, "C(w)[T.b]": 0.8, "C(w)[T.c]": -0.6},
             ("a",), ("w",), _nominal_level2),
)}
"""The scenarios of issue 15 by name: (a)-(e), and the nominal covariates (f), (g)."""
