"""``approach="smc"`` on pupils in classes in schools: a seeded, reduced known-truth benchmark.

The scenario is ``three_level`` of :mod:`recipe_compiler.datasets.simulate_ml`
(``y ~ x + w + z + (1 + x | school:class) + (1 | school)``; ``x`` level 1 with a random
slope over the classes, ``w`` class level, ``z`` school level, all incomplete, MAR
through the auxiliary ``a``), run by ``benchmarks/ml_simulation.py`` cut down: ``REPS``
replications of 60 schools x 4 classes x 10 pupils, ``m = 5``, ``maxit = 100`` (half of
it burn-in). The FCS recipe (``fcs``) underestimates the class-level slope variance by
about 22% and the slope-intercept covariance by about 33% on this scenario (full
benchmark, ``benchmarks/results/ml_simulation.md``); the model-based imputation has the
analysis model as its outcome model, so it is unbiased by construction.

Tolerance (Monte Carlo error): with ``R`` replications and ``diff_r = est_r -
complete_r`` (the pooled fixed effect, or the variance component averaged over the
imputations' REML fits, minus the same data set's complete-data REML estimate),
``|mean(diff)| < 2 sd(diff) / sqrt(R) + g |truth|`` with ``g`` the goal of issue 14
(5% for fixed effects, 10% for variance components). The paired difference removes the
data set's sampling noise; at R = 16 the MC SEs are 0.8-1.6% of the truth for the fixed
effects and 0.4-6% for the variance components (seed 4242: the mean differences are
within +-1.3% for the fixed effects and +-7% for the variance components, slope
variance -5.8% (4.9), covariance +0.8% (6.0)), so an unbiased method exceeds the bound
only if its mean difference is more than ``g / MCSE + 2`` (> 3.6) MC SEs off, while
FCS's -22% on the slope variance exceeds it whenever its MC SE is under 6%. The
benchmark (100 replications of 100 x 4 x 10, maxit 200) gives -2.0% (1.2) and +3.0%
(2.3) for the slope variance and covariance. The FCS side is asserted by the
benchmark, not here (it would double the run time).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
from ml_simulation import Settings, run, summarise

REPS = 16
SETTINGS = Settings(methods=("smc",), m=5, maxit_smc=100, seed=4242,
                    sizes=(("three_level", (60, 4, 10)),))
GOAL = {"fixed": 0.05, "variance": 0.10}


@pytest.mark.slow
def test_smc_recovers_fixed_effects_and_variance_components_at_every_level() -> None:
    results = run(["three_level"], REPS, SETTINGS, progress=False)
    assert not (results["error"] != "").any(), results.loc[results["error"] != "", "error"]
    table = summarise(results)
    smc = table[table["method"] == "smc"].set_index("term")
    assert set(smc.index) == {"(Intercept)", "x", "w", "z",
                              "Intercept~~Intercept|school:class", "x~~x|school:class",
                              "Intercept~~x|school:class", "Intercept~~Intercept|school",
                              "Residual~~Residual"}
    assert (smc["reps"] == REPS).all()
    for term, row in smc.iterrows():
        bound = 2 * row["rel_bias_cd_mcse"] + GOAL[row["kind"]]
        assert abs(row["rel_bias_cd"]) < bound, (term, row["rel_bias_cd"], bound)
    # the two components the FCS recipe misses by 22% and 33%
    for term in ("x~~x|school:class", "Intercept~~x|school:class"):
        assert abs(smc.loc[term, "rel_bias_cd"]) < 0.15, (term, smc.loc[term, "rel_bias_cd"])
    assert np.isfinite(smc["rel_bias_cd_mcse"]).all()
