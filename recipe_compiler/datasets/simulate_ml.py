"""Known-truth data with several grouping factors and MAR missingness (issue 14).

Three scenarios, each with fixed effects and variance components known:

``"three_level"``
    Pupils in classes in schools (default 100 schools x 4 classes x 10 pupils),
    ``y = 1 + 0.5 x + 0.5 w + 0.5 z + u0 + u1 x + s + e`` with a class random
    intercept ``u0`` (variance 0.3) and random slope of ``x`` ``u1`` (variance 0.1,
    correlation 0.3 with ``u0``), a school random intercept ``s`` (variance 0.2)
    and ``e ~ N(0, 1)``. ``z ~ N(0, 1)`` is a school variable, ``w = 0.4 z +
    N(0, 0.84)`` a class variable, ``x = 0.3 w + N(0, 0.6)`` plus a school part
    (variance 0.15) and a class part (0.25) a pupil variable. Analysis model ``y ~ x +
    w + z + (1 + x | school:class) + (1 | school)``; ``x``, ``w`` and ``z`` are
    incomplete. ``class`` numbers the classes
    1.. across schools, so ``(1 + x | class)`` names the same grouping. The FCS recipes
    are approximate here: ``x`` has a random slope (FIMD section 7.5).
``"three_level_complete_slope"``
    The same with the random slope on a complete pupil variable ``v`` (a class part
    of variance 0.2 and a pupil part of 0.8) instead of ``x``: ``y = 1 + 0.5 x + 0.5 v
    + 0.5 w + 0.5 z + u0 + u1 v + s + e`` (``s`` the school intercept), analysis model
    ``y ~ x + v + w + z + (1 + v | school:class) + (1 | school)``; ``x``, ``w`` and
    ``z`` are incomplete, and no incomplete variable has a random slope.
``"crossed"``
    Raters crossed with items (default 200 raters, 60 items, each rater rating 15
    items drawn at random), ``y = 1 + 0.5 x + r + t + e`` with a rater effect ``r``
    (variance 0.5), an item effect ``t`` (variance 0.3) and ``e ~ N(0, 1)``; ``x``
    has a rater part (variance 0.2), an item part (0.2) and a rating part (0.6).
    Analysis model ``y ~ x + (1 | rater) + (1 | item)``; ``x`` is incomplete.

With ``mar="auxiliary"`` (the default) the complete pupil-level auxiliary ``a = 0.5 y +
0.5 x + N(0, 1)``, outside the analysis model, drives the missingness: a pupil-level
value goes missing with probability ``logistic(alpha + 1.5 za)`` (``za`` the standardised
``a``, about 30% missing), a class value for the whole class with the standardised
class mean of ``a`` in place of ``za`` (slope 2, about 20% of the classes), a school
value for the whole school with the school mean (about 20% of the schools). With
``mar="outcome"`` the complete outcome ``y`` takes the place of ``a`` and the data have
no column ``a``. Either way the data are MAR given observed columns, and listwise
deletion is biased.

The truth is keyed as the fits name their estimates: fixed effects as
``fit.fixef`` (``"(Intercept)"``, ``"x"``, ...), variance components as
``fit.variance_components()`` (``"Intercept~~Intercept|school:class"``,
``"x~~x|school:class"``, ``"Intercept~~x|school:class"``,
``"Intercept~~Intercept|school"``, ``"Residual~~Residual"``).

>>> from recipe_compiler.datasets import simulate_ml
>>> sim = simulate_ml.simulate_ml("three_level", seed=1)
>>> sim.formula, sim.auxiliary, sim.variances["x~~x|school:class"]
('y ~ x + w + z + (1 + x | school:class) + (1 | school)', ('a',), 0.1)
>>> sim.data.shape, sorted(c for c in sim.data if sim.data[c].isna().any())
((4000, 7), ['w', 'x', 'z'])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from ..errors import OptionError, one_of

__all__ = ["MARS", "ML_SCENARIOS", "MLScenario", "MLSimulated", "simulate_ml"]

MARS = ("auxiliary", "outcome")
"""What drives the missingness: the auxiliary ``a`` or the outcome ``y``."""

_CORR_U = 0.3
_VAR_U0, _VAR_U1, _VAR_SCHOOL = 0.3, 0.1, 0.2
_VAR_RATER, _VAR_ITEM = 0.5, 0.3

#: Column -> values (one per row), grouping columns included, then the missingness masks.
_Columns = dict[str, np.ndarray]
_Generator = Callable[[np.random.Generator, tuple[int, int, int], str],
                      tuple[_Columns, _Columns]]


@dataclass(frozen=True)
class MLScenario:
    """One known-truth scenario with several grouping factors.

    Attributes
    ----------
    name : str
        Key in :data:`ML_SCENARIOS`.
    label : str
        Short description for tables.
    formula : str
        The analysis model (lme4 syntax).
    fixed : dict
        True fixed effects, keyed as ``fit.fixef``.
    variances : dict
        True variance components (and covariances), keyed as
        ``fit.variance_components()``.
    incomplete : tuple of str
        Columns with missing values.
    sizes : tuple of int
        Default sizes: schools, classes per school, pupils per class (nested);
        raters, items, items per rater (crossed).
    size_names : tuple of str
        What the three sizes count.
    generate : callable
        ``generate(rng, sizes, mar)`` -> (column values, missingness masks).
    """

    name: str
    label: str
    formula: str
    fixed: dict[str, float]
    variances: dict[str, float]
    incomplete: tuple[str, ...]
    sizes: tuple[int, int, int]
    size_names: tuple[str, str, str]
    generate: _Generator


@dataclass(frozen=True, eq=False)
class MLSimulated:
    """One simulated data set of an :class:`MLScenario`.

    Attributes
    ----------
    scenario : str
    data : pandas.DataFrame
        Grouping columns (integers from 1), ``y``, the predictors and (with
        ``mar="auxiliary"``) ``a``; NaN where a value was deleted.
    complete : pandas.DataFrame
        The same data before the deletion.
    fixed, variances : dict
        The truth (see :class:`MLScenario`).
    formula : str
        The analysis model.
    auxiliary : tuple of str
        ``("a",)`` with ``mar="auxiliary"``, else empty (for ``rc.impute(...,
        auxiliary=...)``).
    """

    scenario: str
    data: pd.DataFrame
    complete: pd.DataFrame
    fixed: dict[str, float]
    variances: dict[str, float]
    formula: str
    auxiliary: tuple[str, ...]

    @property
    def truth(self) -> dict[str, float]:
        """Fixed effects and variance components in one dict."""
        return {**self.fixed, **self.variances}


def simulate_ml(scenario: str, seed: int | np.random.SeedSequence, *,
                sizes: tuple[int, int, int] | None = None,
                mar: str = "auxiliary") -> MLSimulated:
    """Draw one data set of a scenario of :data:`ML_SCENARIOS`.

    Parameters
    ----------
    scenario : str
        ``"three_level"`` or ``"crossed"`` (see the module docstring).
    seed : int or numpy.random.SeedSequence
        Seed of the generator; equal arguments give equal data.
    sizes : tuple of int, optional
        ``(schools, classes per school, pupils per class)`` or ``(raters, items,
        items per rater)``; default :attr:`MLScenario.sizes`. Every size at least 2,
        items per rater at most the items.
    mar : {"auxiliary", "outcome"}
        What drives the missingness (see the module docstring).

    Returns
    -------
    MLSimulated

    Raises
    ------
    OptionError
        An unknown scenario or ``mar``, or invalid sizes.
    """
    if scenario not in ML_SCENARIOS:
        raise one_of("scenario", scenario, ML_SCENARIOS)
    if mar not in MARS:
        raise one_of("mar", mar, MARS)
    spec = ML_SCENARIOS[scenario]
    shape = spec.sizes if sizes is None else tuple(sizes)
    if len(shape) != 3 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer))
                              or v < 2 for v in shape):
        raise OptionError(f"sizes={sizes!r} is not valid; it must be three integers >= 2 "
                          f"({', '.join(spec.size_names)})")
    if scenario == "crossed" and shape[2] > shape[1]:
        raise OptionError(f"sizes={sizes!r} is not valid: items per rater ({shape[2]}) "
                          f"must not exceed the items ({shape[1]})")
    values, missing = spec.generate(np.random.default_rng(seed),
                                    (shape[0], shape[1], shape[2]), mar)
    if mar == "outcome":
        del values["a"]
    complete = pd.DataFrame(values)
    data = complete.copy()
    for column, mask in missing.items():
        data.loc[mask, column] = np.nan
    return MLSimulated(scenario=scenario, data=data, complete=complete, fixed=dict(spec.fixed),
                       variances=dict(spec.variances), formula=spec.formula,
                       auxiliary=("a",) if mar == "auxiliary" else ())


# ----------------------------------------------------------------------------- building blocks


def _normal(rng: np.random.Generator, var: float, size: int) -> np.ndarray:
    return rng.normal(scale=np.sqrt(var), size=size)


def _standardised(v: np.ndarray) -> np.ndarray:
    return np.asarray((v - v.mean()) / v.std())


def _mar(rng: np.random.Generator, score: np.ndarray, alpha: float,
         gamma: float) -> np.ndarray:
    """Missing with probability ``logistic(alpha + gamma * standardised score)``."""
    eta = alpha + gamma * _standardised(score)
    return np.asarray(rng.random(len(score)) < 1.0 / (1.0 + np.exp(-eta)))


def _unit_mar(rng: np.random.Generator, units: np.ndarray, n_units: int, score: np.ndarray,
              alpha: float) -> np.ndarray:
    """Whole units (classes, schools) missing, driven by the unit mean of ``score``."""
    mean = np.bincount(units, weights=score, minlength=n_units) / np.bincount(
        units, minlength=n_units)
    return _mar(rng, mean, alpha, 2.0)[units]


def _auxiliary(rng: np.random.Generator, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The complete pupil-level auxiliary ``a = 0.5 y + 0.5 x + N(0, 1)``."""
    return 0.5 * y + 0.5 * x + rng.normal(size=len(y))


# ----------------------------------------------------------------------------- scenarios


def _three_level(rng: np.random.Generator, sizes: tuple[int, int, int], mar: str, *,
                 complete_slope: bool = False) -> tuple[_Columns, _Columns]:
    """``"three_level"``, or with ``complete_slope`` ``"three_level_complete_slope"``."""
    n_schools, n_classes, n_pupils = sizes
    n_cls = n_schools * n_classes
    school = np.repeat(np.arange(n_schools), n_classes * n_pupils)
    klass = np.repeat(np.arange(n_cls), n_pupils)
    z = rng.normal(size=n_schools)
    w = 0.4 * z[np.arange(n_cls) // n_classes] + _normal(rng, 0.84, n_cls)
    x = (0.3 * w[klass] + _normal(rng, 0.15, n_schools)[school] + _normal(rng, 0.25, n_cls)[klass]
         + _normal(rng, 0.6, len(klass)))
    v = _normal(rng, 0.2, n_cls)[klass] + _normal(rng, 0.8, len(klass)) if complete_slope \
        else np.zeros(len(klass))
    cov = _CORR_U * np.sqrt(_VAR_U0 * _VAR_U1)
    u = rng.multivariate_normal([0.0, 0.0], [[_VAR_U0, cov], [cov, _VAR_U1]], size=n_cls)[klass]
    y = (1.0 + 0.5 * x + 0.5 * v + 0.5 * w[klass] + 0.5 * z[school] + u[:, 0]
         + u[:, 1] * (v if complete_slope else x)
         + _normal(rng, _VAR_SCHOOL, n_schools)[school] + rng.normal(size=len(klass)))
    a = _auxiliary(rng, y, x)
    score = a if mar == "auxiliary" else y
    masks = {"x": _mar(rng, score, -1.0, 1.5),
             "w": _unit_mar(rng, klass, n_cls, score, -1.6),
             "z": _unit_mar(rng, school, n_schools, score, -1.6)}
    return ({"school": school + 1, "class": klass + 1, "y": y, "x": x,
             **({"v": v} if complete_slope else {}), "w": w[klass], "z": z[school], "a": a},
            masks)


def _crossed(rng: np.random.Generator, sizes: tuple[int, int, int],
             mar: str) -> tuple[_Columns, _Columns]:
    n_raters, n_items, per_rater = sizes
    rater = np.repeat(np.arange(n_raters), per_rater)
    item = np.argsort(rng.random((n_raters, n_items)), axis=1)[:, :per_rater].ravel()
    x = (_normal(rng, 0.2, n_raters)[rater] + _normal(rng, 0.2, n_items)[item]
         + _normal(rng, 0.6, len(rater)))
    y = (1.0 + 0.5 * x + _normal(rng, _VAR_RATER, n_raters)[rater]
         + _normal(rng, _VAR_ITEM, n_items)[item] + rng.normal(size=len(rater)))
    a = _auxiliary(rng, y, x)
    score = a if mar == "auxiliary" else y
    return ({"rater": rater + 1, "item": item + 1, "y": y, "x": x, "a": a},
            {"x": _mar(rng, score, -1.0, 1.5)})


ML_SCENARIOS: dict[str, MLScenario] = {s.name: s for s in (
    MLScenario(
        "three_level", "pupils in classes in schools: incomplete x (slope), w, z",
        "y ~ x + w + z + (1 + x | school:class) + (1 | school)",
        {"(Intercept)": 1.0, "x": 0.5, "w": 0.5, "z": 0.5},
        {"Intercept~~Intercept|school:class": _VAR_U0, "x~~x|school:class": _VAR_U1,
         "Intercept~~x|school:class": _CORR_U * np.sqrt(_VAR_U0 * _VAR_U1),
         "Intercept~~Intercept|school": _VAR_SCHOOL, "Residual~~Residual": 1.0},
        ("x", "w", "z"), (100, 4, 10), ("schools", "classes per school", "pupils per class"),
        _three_level),
    MLScenario(
        "three_level_complete_slope",
        "pupils in classes in schools: incomplete x, w, z; random slope of complete v",
        "y ~ x + v + w + z + (1 + v | school:class) + (1 | school)",
        {"(Intercept)": 1.0, "x": 0.5, "v": 0.5, "w": 0.5, "z": 0.5},
        {"Intercept~~Intercept|school:class": _VAR_U0, "v~~v|school:class": _VAR_U1,
         "Intercept~~v|school:class": _CORR_U * np.sqrt(_VAR_U0 * _VAR_U1),
         "Intercept~~Intercept|school": _VAR_SCHOOL, "Residual~~Residual": 1.0},
        ("x", "w", "z"), (100, 4, 10), ("schools", "classes per school", "pupils per class"),
        partial(_three_level, complete_slope=True)),
    MLScenario(
        "crossed", "raters crossed with items: incomplete x",
        "y ~ x + (1 | rater) + (1 | item)", {"(Intercept)": 1.0, "x": 0.5},
        {"Intercept~~Intercept|rater": _VAR_RATER, "Intercept~~Intercept|item": _VAR_ITEM,
         "Residual~~Residual": 1.0},
        ("x",), (200, 60, 15), ("raters", "items", "items per rater"), _crossed),
)}
"""The scenarios of issue 14, by name."""
