"""The known-truth generators of several grouping factors (`datasets.simulate_ml`).

The recovery test fits the analysis model (REML) to the complete data of ``R = 60``
seeds per scenario and requires ``|mean(est) - truth| < 4 sd(est) / sqrt(R)`` for every
fixed effect and variance component: four Monte Carlo SEs (a false alarm about once in
16,000 parameters if the generator's truth is right; the REML estimates are unbiased to
well under one MC SE at these sizes, 300 seeds gave at most 1.6%, 1.4 MC SEs). The MC SEs
are 0.3-1.5% of the truth for the fixed effects and variances, 2.5% for the class
intercept-slope covariance, so a truth misstated by 5% (10% for the covariance) fails.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import recipe_compiler as rc
from recipe_compiler.datasets.simulate_ml import ML_SCENARIOS, simulate_ml
from recipe_compiler.errors import OptionError

R = 60


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ML_SCENARIOS))
def test_complete_data_fits_recover_the_stated_truth(name: str) -> None:
    rows = []
    for seed in range(R):
        sim = simulate_ml(name, seed)
        fit = rc.fit_lmm(sim.formula, sim.complete, reml=True)
        rows.append(pd.concat([fit.fixef, fit.variance_components()]))
    est = pd.DataFrame(rows)
    truth = pd.Series(sim.truth)
    assert list(est.columns) == list(truth.index)
    mcse = est.std() / np.sqrt(R)
    assert (mcse < 0.05 * truth.abs()).all(), mcse / truth
    bias = est.mean() - truth
    assert (bias.abs() < 4 * mcse).all(), pd.DataFrame({"bias": bias, "mcse": mcse})


@pytest.mark.parametrize(("name", "mar"), [(n, m) for n in ML_SCENARIOS
                                           for m in ("auxiliary", "outcome")])
def test_missingness_is_mar_through_the_driver(name: str, mar: str) -> None:
    sim = simulate_ml(name, seed=5, mar=mar)
    spec = ML_SCENARIOS[name]
    assert sim.formula == spec.formula
    assert set(sim.data.columns[sim.data.isna().any()]) == set(spec.incomplete)
    assert not sim.complete.isna().any().any()
    observed = sim.data.notna()
    assert sim.data[observed].equals(sim.complete[observed])
    assert sim.auxiliary == (("a",) if mar == "auxiliary" else ())
    assert ("a" in sim.data) == (mar == "auxiliary")
    assert "a" not in rc.parse_formula(sim.formula).columns
    driver = sim.data["a" if mar == "auxiliary" else "y"]
    driver = (driver - driver.mean()) / driver.std()
    for column in spec.incomplete:
        missing = sim.data[column].isna()
        assert 0.1 < missing.mean() < 0.45, column
        # missingness rises with the driver: the missing rows' mean is well above the rest's
        assert driver[missing].mean() - driver[~missing].mean() > 0.3, column


def test_three_level_layout_and_levels() -> None:
    sim = simulate_ml("three_level", seed=2, sizes=(30, 3, 5))
    d, c = sim.data, sim.complete
    assert len(d) == 30 * 3 * 5
    assert c.groupby("school")["class"].nunique().eq(3).all()
    assert c.groupby("class")["school"].nunique().eq(1).all()  # classes numbered across schools
    assert c.groupby("class").size().eq(5).all()
    # w is a class variable, z a school variable, and each goes missing for whole units
    assert c.groupby("class")["w"].nunique().eq(1).all()
    assert c.groupby("school")["z"].nunique().eq(1).all()
    assert c.groupby("school")["w"].nunique().gt(1).all()
    assert d["w"].isna().groupby(d["class"]).nunique().eq(1).all()
    assert d["z"].isna().groupby(d["school"]).nunique().eq(1).all()
    assert c.groupby("class")["x"].nunique().gt(1).all()


def test_crossed_layout() -> None:
    sim = simulate_ml("crossed", seed=3, sizes=(40, 12, 5))
    c = sim.complete
    assert len(c) == 200
    assert c.groupby("rater")["item"].nunique().eq(5).all()  # distinct items per rater
    assert c["item"].between(1, 12).all() and c["item"].nunique() > 6
    # crossed, not nested: items are rated by several raters
    assert c.groupby("item")["rater"].nunique().gt(1).all()


def test_generators_are_seeded_and_reject_bad_arguments() -> None:
    a, b = simulate_ml("crossed", seed=3), simulate_ml("crossed", seed=3)
    pd.testing.assert_frame_equal(a.data, b.data)
    assert not a.complete.equals(simulate_ml("crossed", seed=4).complete)
    # the missingness driver does not change the complete data
    pd.testing.assert_frame_equal(
        simulate_ml("three_level", 1, mar="outcome").complete,
        simulate_ml("three_level", 1).complete.drop(columns="a"))
    with pytest.raises(OptionError, match="scenario"):
        simulate_ml("four_level", 1)
    with pytest.raises(OptionError, match="mar"):
        simulate_ml("crossed", 1, mar="mnar")
    with pytest.raises(OptionError, match="schools"):
        simulate_ml("three_level", 1, sizes=(10, 1, 5))
    with pytest.raises(OptionError, match="items per rater"):
        simulate_ml("crossed", 1, sizes=(10, 5, 6))
