"""Known-truth recovery of incomplete nominal covariates by ``approach="smc"``.

Scenarios (f) ``"nominal"`` (a 3-category level-1 ``k``, multinomial logit on ``x``
with random intercepts per category) and (g) ``"nominal_level2"`` (a 3-category
level-2 ``w``, multinomial logit on ``z``) of :mod:`recipe_compiler.datasets.simulate`:
50 clusters of 20, about a third of the values missing, MAR through the auxiliary
``a``. ``benchmarks/smc_simulation.py`` cut down to ``REPS`` replications with
``m = 5`` and ``maxit = 30`` (half of it burn-in).

Tolerance (Monte Carlo error), as in ``test_smc_recovery.py``: with ``R``
replications and ``diff_r = est_r - complete_r`` (the pooled SMC estimate minus the
same data set's complete-data estimate), ``|mean(diff)| < 4 sd(diff) / sqrt(R) + 0.03
|truth|``: four Monte Carlo SEs (a false alarm once in ~16,000 terms if SMC is
unbiased) plus the 3% the issue allows. Measured at R = 20 (about 0.4 s and 0.25 s
per replication): MC SEs 0.8-3.8% of the truth for (f) and 0.1-5.7% for (g) (the
level-2 dummies rest on 50 clusters), largest |bias| 8.3% (2.2 MC SEs, C(k)[T.c])
and 4.0%; at R = 100 (another seed) (f) is within 1.3% on every term (MC SEs
0.3-1.3%), coverage 0.92-0.99. Listwise deletion is biased on the intercept beyond
twice its MC error in both (-16% and -13% at R = 20); SMC must be closer.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
from smc_simulation import Settings, run, summarise

REPS = 20
SETTINGS = Settings(methods=("listwise", "smc"), m=5, maxit_smc=30, seed=1618)
SCENARIOS = ["nominal", "nominal_level2"]


@pytest.fixture(scope="module")
def reduced() -> pd.DataFrame:
    results = run(SCENARIOS, REPS, SETTINGS, n_jobs=2, progress=False)
    assert (results["error"] == "").all(), results.loc[results["error"] != "", "error"].iloc[0]
    return summarise(results).set_index(["scenario", "method", "term"])


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_smc_recovers_the_dummies_of_a_nominal_covariate(reduced: pd.DataFrame,
                                                         scenario: str) -> None:
    smc = reduced.xs((scenario, "smc"), level=("scenario", "method"))
    dummies = [t for t in smc.index if t.startswith("C(")]
    assert len(dummies) == 2 and (smc["reps"] == REPS).all()
    bound = 4 * smc["rel_bias_cd_mcse"] + 0.03
    assert (smc["rel_bias_cd"].abs() < bound).all(), smc[["rel_bias_cd", "rel_bias_cd_mcse"]]


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_smc_removes_the_bias_of_listwise_deletion(reduced: pd.DataFrame,
                                                   scenario: str) -> None:
    listwise = reduced.loc[(scenario, "listwise", "(Intercept)")]
    smc = reduced.loc[(scenario, "smc", "(Intercept)")]
    assert abs(listwise["rel_bias_cd"]) > 2 * listwise["rel_bias_cd_mcse"]
    assert abs(smc["rel_bias_cd"]) < abs(listwise["rel_bias_cd"])
