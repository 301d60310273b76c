"""Convergence on brandsma: R-hat below 1.1 and no trend after the first iterations.

m = 10 chains, maxit = 20 iterations, sections 7.10.2, 7.10.5 and 7.10.7 (the
issue's choice: the simplest, the one with a level-2 target and passive
interactions, and the one with random slopes and 18 derived variables).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import recipe_compiler as rc
from recipe_compiler.datasets import fimd_example


@pytest.mark.slow
@pytest.mark.parametrize("section", ["7.10.2", "7.10.5", "7.10.7"])
def test_chains_mix_and_show_no_trend(section: str) -> None:
    ex = fimd_example(section)
    brandsma = rc.datasets.load_brandsma()
    imp = rc.impute(ex.data(brandsma), ex.formula, m=10, maxit=20, seed=2024, **ex.options)
    rhat = imp.rhat()
    assert (rhat < 1.1).all(), rhat
    means = imp.chain_mean
    for t in imp.plan.targets:
        late = means.loc[t].to_numpy()[5:]  # iterations 6..20, shape (15, 10)
        # slope of the across-chain mean against iteration, in units of its own SE:
        # no trend means |t| small; 4 is far beyond the 5% two-sided critical value.
        y = late.mean(axis=1)
        it = np.arange(len(y), dtype=float)
        slope, intercept = np.polyfit(it, y, 1)
        resid = y - (slope * it + intercept)
        se = np.sqrt(resid.var(ddof=2) / ((it - it.mean()) ** 2).sum())
        assert abs(slope) < 4 * se + 1e-12, (t, slope, se)


def test_rhat_is_reported_per_target() -> None:
    data = rc.datasets.load_brandsma()[["sch", "lpo", "iqv"]]
    imp = rc.impute(data, "lpo ~ iqv + (1 | sch)", m=3, maxit=4, seed=1)
    r = imp.rhat()
    assert isinstance(r, pd.Series) and list(r.index) == ["lpo", "iqv"]
