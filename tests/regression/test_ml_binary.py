"""End to end: an incomplete binary pupil-level predictor in a three-level model.

Pupils in classes in schools (40 x 4 x 10); ``b`` a binary pupil variable from a
three-level logistic model in ``x`` and an auxiliary ``a``, missing at random through
``a`` (about 30%); ``y = 0.5 + 1.0 b + 0.5 x + 0.4 a + school + class + e``. Each
replication imputes with the compiled recipe (``b`` as 0/1 numbers with
``methods={"b": "ml.bin"}``, ``auxiliary=["a"]``, m = 5, maxit = 10) and pools
``y ~ b + x + (1 | school/class)`` by Rubin's rules.

Tolerance (Monte Carlo error, as ``test_ml_simulation.py``): with ``diff_r`` the pooled
coefficient of ``b`` minus the same data set's complete-data estimate (before the values
were deleted), ``|mean(diff)| < 3 sd(diff) / sqrt(R) + 0.05 |1.0|``: three Monte Carlo
SEs of the mean over ``R = 20`` replications (the paired difference removes the data
set's own sampling noise, so its sd is that of the missing information alone: measured
0.031) plus the 5% bias goal of issue 14 for fixed effects. Measured: mean(diff) =
+0.016 against a bound of 0.071. Listwise deletion breaks the same kind of bound on the
intercept (truth 0.5; its MAR selection on ``a`` shifts it by -0.083 against a bound of
0.036), so the bound is one a biased method fails.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

import recipe_compiler as rc

FORMULA = "y ~ b + x + (1 | school/class)"
R = 20


def simulate(seed: int, schools: int = 40, classes: int = 4, pupils: int = 10
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The complete and the incomplete data of one replication."""
    rng = np.random.default_rng(seed)
    school = np.repeat(np.arange(schools), classes * pupils)
    klass = np.tile(np.repeat(np.arange(classes), pupils), schools)
    cid = school * classes + klass
    n = len(school)
    x, a = rng.normal(size=n), rng.normal(size=n)
    eta = (-0.3 + 0.8 * x + 0.8 * a + rng.normal(scale=0.7, size=schools)[school]
           + rng.normal(scale=0.5, size=schools * classes)[cid])
    b = (rng.random(n) < expit(eta)).astype(float)
    y = (0.5 + 1.0 * b + 0.5 * x + 0.4 * a + rng.normal(scale=0.6, size=schools)[school]
         + rng.normal(scale=0.4, size=schools * classes)[cid] + rng.normal(size=n))
    full = pd.DataFrame({"school": school, "class": klass, "y": y, "b": b, "x": x, "a": a})
    data = full.copy()
    data.loc[rng.random(n) < expit(-1.2 + 1.2 * a), "b"] = np.nan
    return full, data


def test_pooled_coefficient_of_an_imputed_binary_predictor_matches_the_complete_data() -> None:
    diffs, listwise, imputed = [], [], []
    for r in range(R):
        full, data = simulate(100 + r)
        plan = rc.compile(FORMULA, data, auxiliary=["a"], methods={"b": "ml.bin"})
        assert dict(plan.method_table)["b"] == "ml.bin"
        imp = rc.impute(data, plan, m=5, maxit=10, seed=r)
        pooled = imp.fit(FORMULA).pool().set_index("term")["estimate"]
        complete = rc.fit_lmm(FORMULA, full).fixef
        cc = rc.fit_lmm(FORMULA, data).fixef
        diffs.append(pooled["b"] - complete["b"])
        listwise.append(cc["(Intercept)"] - complete["(Intercept)"])
        missing = data["b"].isna()
        imputed.append(np.concatenate([imp.complete(k)["b"][missing] for k in (1, 5)]))
    values = np.concatenate(imputed)
    assert set(np.unique(values)) == {0.0, 1.0}
    d = np.array(diffs)
    bound = 3 * d.std(ddof=1) / np.sqrt(R) + 0.05
    assert abs(d.mean()) < bound, (d.mean(), bound, d)
    lw = np.array(listwise)
    assert abs(lw.mean()) > 3 * lw.std(ddof=1) / np.sqrt(R) + 0.05 * 0.5, lw
