"""Known-truth recovery with several grouping factors: ``benchmarks/ml_simulation.py`` cut down.

``REPS`` replications of the scenarios of :mod:`recipe_compiler.datasets.simulate_ml`
(pupils in classes in schools, 100 x 4 x 10, with incomplete ``x``, ``w`` (class) and
``z`` (school) and a class-level random slope of ``x`` or of a complete ``v``; 200
raters crossed with 60 items with an incomplete ``x``; MAR through the auxiliary ``a``),
at the benchmark's sizes but with ``m = 3`` and ``maxit = 5``, imputed by
the compiled FCS recipe with ``auxiliary=["a"]`` and analysed by REML (fixed effects
pooled by Rubin's rules, variance components averaged over the imputations).

Tolerance (Monte Carlo error): with ``R`` replications and ``diff_r = est_r -
complete_r`` (the pooled estimate minus the same data set's complete-data estimate),
``|mean(diff)| < 3 sd(diff) / sqrt(R) + goal |truth|``, the goal of issue 14 being 5%
for fixed effects and 10% for variance components: three Monte Carlo SEs (about one
false alarm in 400 parameters, were the bias exactly at the goal) plus the allowed bias.
The paired difference removes the data set's own sampling noise, so the MC SE is that of
the missing information alone: at R = 40 it is 0.1-1.7% of the truth for the fixed
effects, 0.2-3.6% for the variances and 2-4% for the class intercept-slope covariance
(the bound is printed on failure). Listwise deletion must
break the same bound (its bias on the intercept is -15% to -31%), so the bound is one a
biased method fails.

What the full benchmark (200 replications, ``benchmarks/results/ml_simulation.md``)
found and these tests pin down:

* crossed design, default methods: every parameter unbiased;
* three levels, random slope on the complete ``v``, normal-model methods
  (``fcs_norm``): fixed effects and variances within the goals;
* three levels, random slope on the incomplete ``x`` (default methods): fixed effects
  within 5%, but the slope variance is about 20% and the intercept-slope covariance
  about 35% too small (the FCS recipes are approximate for random slopes of incomplete
  variables, FIMD section 7.5): a strict ``xfail``, so that a recipe which removes the
  bias shows up (at R = 40: -18% against a bound of 16%, -43% against 21%).

The benchmark also shows a bias that R = 40 cannot resolve and is left to it: with the
default ``3lonly.pmm`` the school intercept variance is about 14% too large (8% from
``z`` alone; ``3lonly.norm`` is unbiased).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from recipe_compiler.datasets.simulate_ml import ML_SCENARIOS

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
from ml_simulation import Settings, run, summarise

REPS = 40
GOAL = {"fixed": 0.05, "variance": 0.10}


def _simulate(name: str, method: str) -> pd.DataFrame:
    """The reduced simulation: per parameter of ``method`` and of listwise deletion, the
    relative bias against the complete-data fit, its bound and whether it is within."""
    settings = Settings(methods=("listwise", method), m=3, maxit=5, seed=1414)
    results = run([name], REPS, settings, progress=False)
    errors = results.loc[results["error"] != "", ["method", "error"]]
    assert errors.empty, errors.to_dict("records")
    summary = summarise(results)
    summary = summary[summary["method"] != "complete"]
    assert (summary["reps"] == REPS).all()
    spec = ML_SCENARIOS[name]
    assert list(summary.loc[summary["method"] == method, "term"]) == [*spec.fixed,
                                                                      *spec.variances]
    bound = 3 * summary["rel_bias_cd_mcse"] + summary["kind"].map(GOAL)
    out = summary.assign(bound=bound, ok=summary["rel_bias_cd"].abs() < bound)
    listwise = out[out["method"] == "listwise"]
    assert not listwise["ok"].all(), listwise.to_string()
    return out.loc[out["method"] == method,
                   ["term", "kind", "truth", "rel_bias_cd", "rel_bias_cd_mcse", "bound", "ok"]]


@pytest.fixture(scope="module")
def three_level_fcs() -> pd.DataFrame:
    return _simulate("three_level", "fcs")


@pytest.mark.slow
@pytest.mark.parametrize(("name", "method"), [("crossed", "fcs"),
                                              ("three_level_complete_slope", "fcs_norm")])
def test_fcs_recovers_fixed_effects_and_variances(name: str, method: str) -> None:
    out = _simulate(name, method)
    assert out["ok"].all(), out.to_string()


@pytest.mark.slow
def test_fcs_recovers_fixed_effects_with_a_random_slope_of_incomplete_x(
        three_level_fcs: pd.DataFrame) -> None:
    fixed = three_level_fcs[three_level_fcs["kind"] == "fixed"]
    assert fixed["ok"].all(), fixed.to_string()


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="FCS recipes are approximate for a random slope of an "
                   "incomplete variable: slope variance -22%, covariance -34% in the benchmark")
def test_fcs_recovers_the_slope_variance_of_incomplete_x(three_level_fcs: pd.DataFrame) -> None:
    rows = three_level_fcs.set_index("term").loc[["x~~x|school:class",
                                                  "Intercept~~x|school:class"]]
    assert rows["ok"].all(), rows.to_string()
