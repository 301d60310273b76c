"""``rc.fit_lmm`` with several grouping factors, against lme4 through the formula API.

The data and the lme4 references are those of ``tests/regression/test_lme4_multilevel.py``
(``tests/regression/data/lme4_multilevel_{nested,crossed}.csv`` and
``lme4_multilevel.json``; the R script that made them is in that module's docstring:
lme4 1.1-31, ``lmer(formula, data, REML = reml)``). Here the same models are reached from
formulas, written as lme4 takes them and as the nesting shorthand ``school/class``. In
the nested data ``class`` is labelled 1-4 within each school, so the class factor is the
interaction ``school:class``. Tolerances as in that module (the issue's): log-likelihood
1e-6 relative, fixed effects 1e-4 absolute, variance components 1% relative.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import recipe_compiler as rc
from recipe_compiler.analysis.lmm_multi_result import MultiLMMResult
from recipe_compiler.analysis.mifit import MIFit
from recipe_compiler.errors import DataError, FormulaError

DATA = Path(__file__).parents[1] / "regression" / "data"
REFERENCE = json.loads((DATA / "lme4_multilevel.json").read_text())

# each reference model, as lme4 wrote it and in equivalent notations of our parser
FORMULAS = {
    "nested_intercepts": ["y ~ x + w + z + (1 | school) + (1 | school:class)",
                          "y ~ x + w + z + (1 | school/class)"],
    "nested_slope": ["y ~ x + w + z + (1 + x | school:class) + (1 | school)"],
    "crossed_intercepts": ["y ~ x + (1 | rater) + (1 | item)",
                           "y ~ x + (1 | item) + (1 | rater)"],
    "crossed_slope": ["y ~ x + (1 + x | rater) + (1 | item)"],
}
CASES = [(f"{model}_{kind}", formula) for model, formulas in FORMULAS.items()
         for formula in formulas for kind in ("ml", "reml")]


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return {kind: pd.read_csv(DATA / f"lme4_multilevel_{kind}.csv")
            for kind in ("nested", "crossed")}


@pytest.mark.parametrize(("key", "formula"), CASES)
def test_formula_fits_match_lme4(key: str, formula: str, frames: dict[str, pd.DataFrame]) -> None:
    ref = REFERENCE[key]
    fit = rc.fit_lmm(formula, frames[ref["data"]], reml=ref["reml"])
    assert isinstance(fit, MultiLMMResult)
    assert fit.converged and not fit.boundary
    assert fit.loglik == pytest.approx(ref["loglik"], rel=1e-6)
    assert list(fit.fixef.index) == list(ref["fixef"])
    np.testing.assert_allclose(fit.fixef.to_numpy(), list(ref["fixef"].values()), atol=1e-4)
    np.testing.assert_allclose(fit.se.to_numpy(), list(ref["se"].values()), rtol=1e-3)
    vc = fit.varcorr
    assert list(vc["grp"]) == ref["varcorr"]["grp"]
    np.testing.assert_allclose(vc["vcov"], ref["varcorr"]["vcov"], rtol=0.01)
    assert fit.ngroups.to_dict() == ref["ngrps"] and fit.nobs == ref["nobs"]


@pytest.mark.parametrize("model", ["nested_intercepts", "crossed_intercepts"])
def test_reml_is_the_default_as_in_lme4(model: str, frames: dict[str, pd.DataFrame]) -> None:
    """``rc.fit_lmm`` defaults to REML, as ``lmer`` (and ``imp.fit``), for one grouping
    factor and for several; ``reml=False`` gives the ML fit."""
    formula = FORMULAS[model][0]
    data = frames[REFERENCE[f"{model}_reml"]["data"]]
    fit, ml = rc.fit_lmm(formula, data), rc.fit_lmm(formula, data, reml=False)
    assert fit.reml and not ml.reml
    assert fit.loglik == pytest.approx(REFERENCE[f"{model}_reml"]["loglik"], rel=1e-6)
    assert ml.loglik == pytest.approx(REFERENCE[f"{model}_ml"]["loglik"], rel=1e-6)
    single = rc.fit_lmm("y ~ x + (1 | item)", frames["crossed"])
    assert isinstance(single, rc.LMMResult) and single.reml


def test_summary_says_nested(frames: dict[str, pd.DataFrame]) -> None:
    fit = rc.fit_lmm("y ~ x + w + z + (1 | school/class)", frames["nested"])
    assert isinstance(fit, MultiLMMResult)
    assert fit.nesting == ("school:class (240) nested in school (60)",)
    assert "Grouping: school:class (240) nested in school (60)" in fit.summary()


def test_summary_says_crossed(frames: dict[str, pd.DataFrame]) -> None:
    fit = rc.fit_lmm("y ~ x + (1 | rater) + (1 | item)", frames["crossed"])
    assert isinstance(fit, MultiLMMResult)
    assert fit.nesting == ("rater (40) crossed with item (30)",)
    assert "Grouping: rater (40) crossed with item (30)" in str(fit)


def test_class_labels_repeated_across_schools_are_crossed_in_the_data(
        frames: dict[str, pd.DataFrame]) -> None:
    # 'class' alone (1-4 in every school) is not nested in school: the data say so
    fit = rc.fit_lmm("y ~ x + (1 | school) + (1 | class)", frames["nested"])
    assert isinstance(fit, MultiLMMResult)
    assert fit.nesting == ("school (60) crossed with class (4)",)


def test_one_grouping_factor_still_gives_the_two_level_result(
        frames: dict[str, pd.DataFrame]) -> None:
    fit = rc.fit_lmm("y ~ x + (1 | school)", frames["nested"])
    assert isinstance(fit, rc.LMMResult)


def test_cluster_mean_uses_the_innermost_factor(frames: dict[str, pd.DataFrame]) -> None:
    data = frames["nested"]
    fit = rc.fit_lmm("y ~ x + cm(x) + (1 | school/class)", data)
    # the same model with the class mean computed by hand
    cls = data["school"].astype(str) + ":" + data["class"].astype(str)
    by_hand = data.assign(xbar=data.groupby(cls)["x"].transform("mean"))
    ref = rc.fit_lmm("y ~ x + xbar + (1 | school/class)", by_hand)
    # same data, so equal up to the optimiser's stopping point
    np.testing.assert_allclose(fit.fixef.to_numpy(), ref.fixef.to_numpy(), rtol=1e-6)
    assert fit.loglik == pytest.approx(ref.loglik, rel=1e-9)
    school = data.assign(xbar=data.groupby("school")["x"].transform("mean"))
    other = rc.fit_lmm("y ~ x + xbar + (1 | school/class)", school)
    assert abs(other.fixef["xbar"] - fit.fixef["cm(x)"]) > 1e-3  # not the school mean


def test_a_grouping_factor_with_missing_values_is_named(frames: dict[str, pd.DataFrame]) -> None:
    data = frames["nested"].copy()
    data.loc[data.index[:3], "class"] = np.nan
    with pytest.raises(DataError, match="'class' has 3 missing values"):
        rc.fit_lmm("y ~ x + (1 | school/class)", data)


def test_a_missing_grouping_column_is_named_with_a_caret(
        frames: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(DataError, match="grouping variable 'klass' of the formula is not in "
                       "the data") as exc:
        rc.fit_lmm("y ~ x + (1 | school/klass)", frames["nested"])
    assert str(exc.value).splitlines()[-1].strip() == "^^^^^"


def test_single_factor_fitters_refuse_several(frames: dict[str, pd.DataFrame]) -> None:
    data = frames["crossed"].assign(b=lambda d: (d["y"] > d["y"].median()).astype(int))
    with pytest.raises(FormulaError, match="this fitter takes one grouping factor"):
        rc.fit_glmm("b ~ x + (1 | rater) + (1 | item)", data)


def test_smc_imputation_takes_nested_factors(frames: dict[str, pd.DataFrame]) -> None:
    """FCS and model-based plans both take two nested grouping factors (the FCS ones in
    ``tests/compiler/test_multilevel.py``, the SMC ones in ``tests/compiler/test_smc.py``)."""
    data = frames["nested"].copy()
    data.loc[data.index[::7], "x"] = np.nan
    plan = rc.compile("y ~ x + w + (1 | school/class)", data, approach="smc")
    assert plan.groupings == ("school:class", "school")


def test_pooling_takes_multi_term_fits(frames: dict[str, pd.DataFrame]) -> None:
    data = frames["crossed"]
    formula = "y ~ x + (1 | rater) + (1 | item)"
    fit = rc.fit_lmm(formula, data)
    assert isinstance(fit, MultiLMMResult)
    pooled = MIFit(formula, (fit, fit)).pool()
    # identical fits: no between-imputation variance, the pooled estimate is the fit's
    np.testing.assert_allclose(pooled["estimate"], fit.fixef.to_numpy())
    np.testing.assert_allclose(pooled["std_error"], fit.se.to_numpy())
