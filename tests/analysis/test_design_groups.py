"""``cm(x, g)`` / ``cwc(x, g)`` in the analysis design: means over a named grouping factor."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import recipe_compiler as rc
from recipe_compiler.analysis.design import build_design


def pupils(seed: int = 3, n_schools: int = 25, classes: int = 4, size: int = 6) -> pd.DataFrame:
    """Pupils in classes (labels 1..classes in every school; ``room`` unique) in schools,
    with ``x`` missing in about 10% of the rows and ``y`` in a few; rows shuffled;
    ``rater`` is crossed with the schools."""
    rng = np.random.default_rng(seed)
    school = np.repeat(np.arange(n_schools), classes * size)
    klass = np.tile(np.repeat(np.arange(1, classes + 1), size), n_schools)
    room = school * classes + klass - 1
    x = rng.normal(size=len(school)) + rng.normal(size=n_schools)[school] \
        + 0.7 * rng.normal(size=n_schools * classes)[room]
    y = 1 + 0.5 * x + rng.normal(size=n_schools)[school] \
        + 0.5 * rng.normal(size=n_schools * classes)[room] + rng.normal(size=len(school))
    data = pd.DataFrame({"school": school, "class": klass, "room": room,
                         "rater": rng.integers(0, 7, size=len(school)), "x": x, "y": y})
    data.loc[rng.random(len(data)) < 0.1, "x"] = np.nan
    data.loc[rng.random(len(data)) < 0.03, "y"] = np.nan
    return data.sample(frac=1.0, random_state=seed)


def means(data: pd.DataFrame, by: str | list[str]) -> pd.Series:
    """The pandas reference: mean of the observed ``x`` per cluster, on every row."""
    return data.groupby(by)["x"].transform("mean")


def column(design: rc.analysis.design.Design, name: str) -> np.ndarray:
    return design.X[:, design.x_names.index(name)]


def test_cluster_means_over_each_factor_match_a_pandas_groupby() -> None:
    data = pupils()
    d = build_design("y ~ x + cm(x, school) + cwc(x, school) + cm(x) + cwc(x, class) + "
                     "(1 | school/class)", data, several=True)
    assert d.x_names == ("(Intercept)", "x", "cm(x, school)", "cwc(x, school)", "cm(x)",
                         "cwc(x)")
    rows = data.loc[d.rows]
    school, klass = means(data, "school").loc[d.rows], means(data, ["school", "class"])[d.rows]
    np.testing.assert_allclose(column(d, "cm(x, school)"), school, rtol=1e-12)
    np.testing.assert_allclose(column(d, "cwc(x, school)"), rows["x"] - school, rtol=1e-12)
    np.testing.assert_allclose(column(d, "cm(x)"), klass, rtol=1e-12)
    np.testing.assert_allclose(column(d, "cwc(x)"), rows["x"] - klass, rtol=1e-12)
    assert np.abs(column(d, "cm(x, school)") - column(d, "cm(x)")).max() > 0.1


def test_separate_nested_terms_take_the_innermost_factor_from_the_data() -> None:
    """``(1 | school) + (1 | room)`` written outer first: plain cm(x) is the room mean."""
    data = pupils()
    d = build_design("y ~ cm(x) + cm(x, school) + cm(x, room) + (1 | school) + (1 | room)",
                     data, several=True)
    assert d.x_names == ("(Intercept)", "cm(x)", "cm(x, school)")  # cm(x, room) is cm(x)
    np.testing.assert_allclose(column(d, "cm(x)"), means(data, "room")[d.rows], rtol=1e-12)
    np.testing.assert_allclose(column(d, "cm(x, school)"), means(data, "school")[d.rows],
                               rtol=1e-12)


def test_crossed_factors_average_over_the_factor_named_plain_cm_over_the_first() -> None:
    data = pupils()
    d = build_design("y ~ cm(x) + cm(x, rater) + (1 | school) + (1 | rater)", data,
                     several=True)
    np.testing.assert_allclose(column(d, "cm(x)"), means(data, "school")[d.rows], rtol=1e-12)
    np.testing.assert_allclose(column(d, "cm(x, rater)"), means(data, "rater")[d.rows],
                               rtol=1e-12)


def test_group_proportions_of_a_categorical_column() -> None:
    """``cm(C(s), school)``: the share of each level after the first in each school."""
    data = pupils().assign(s=lambda d: np.where(d["x"] > 0.5, "hi", "lo"))
    d = build_design("y ~ cm(C(s), school) + cwc(C(s), school) + (1 | school/class)", data,
                     several=True)
    assert d.x_names == ("(Intercept)", "cm(C(s)[T.lo], school)", "cwc(C(s)[T.lo], school)")
    lo = (data["s"] == "lo").astype(float)
    share = lo.groupby(data["school"]).transform("mean")
    np.testing.assert_allclose(column(d, "cm(C(s)[T.lo], school)"), share[d.rows], rtol=1e-12)
    np.testing.assert_allclose(column(d, "cwc(C(s)[T.lo], school)"), (lo - share)[d.rows],
                               rtol=1e-12)


def test_group_means_in_a_random_slope() -> None:
    data = pupils()
    d = build_design("y ~ x + (1 + cwc(x, school) | school/class)", data, several=True)
    slope = data.loc[d.rows, "x"] - means(data, "school")[d.rows]
    np.testing.assert_allclose(d.Z[:, 1], slope, rtol=1e-12)
    for term in d.more_terms:
        np.testing.assert_allclose(term.Z[:, 1], slope, rtol=1e-12)


def test_fit_lmm_with_a_group_mean_equals_the_fit_with_a_precomputed_column() -> None:
    """The two designs agree to rounding (bincount against pandas' mean), so the fits
    agree to the optimiser's convergence tolerance (about 1e-6 relative here)."""
    data = pupils()
    fit = rc.fit_lmm("y ~ x + cm(x, school) + (1 | school/class)", data)
    manual = rc.fit_lmm("y ~ x + xs + (1 | school/class)",
                        data.assign(xs=means(data, "school")))
    np.testing.assert_allclose(fit.fixef.to_numpy(), manual.fixef.to_numpy(), rtol=1e-5)
    assert list(fit.fixef.index) == ["(Intercept)", "x", "cm(x, school)"]


@pytest.mark.filterwarnings("ignore")
def test_imputations_fit_computes_group_means_on_each_completed_data_set() -> None:
    """imp.fit fits each completed data set as rc.fit_lmm does (same numbers), whose
    design holds the school means of the completed x."""
    data = pupils()
    imp = rc.impute(data.drop(columns=["rater"]), "y ~ x + (1 | room)", m=2, maxit=2, seed=4)
    formula = "y ~ x + cm(x, school) + (1 | school/class)"
    fits = imp.fit(formula, reml=True).fits
    for fit, completed in zip(fits, imp, strict=True):
        again = rc.fit_lmm(formula, completed, reml=True)
        np.testing.assert_allclose(fit.fixef.to_numpy(), again.fixef.to_numpy(), rtol=1e-12)
        d = build_design(formula, completed, several=True)
        np.testing.assert_allclose(column(d, "cm(x, school)"), means(completed, "school"),
                                   rtol=1e-12)
        assert completed["x"].notna().all()
