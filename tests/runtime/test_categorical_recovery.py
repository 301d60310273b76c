"""Known truth: incomplete categorical predictors, MAR through an auxiliary, are recovered.

Per scenario of :mod:`categorical_truth` (a nominal level-1 predictor whose
probabilities depend on ``x`` and on the cluster, imputed by ``2l.polyreg``; a
4-level ordinal one by ``2l.polr``; a nominal level-2 one by ``2lonly.polyreg``),
a few seeded replications with ``rc.impute(..., auxiliary=["a"])``, the analysis
model fitted and pooled. ``benchmarks/categorical_simulation.py`` runs the same
with many replications and reports the relative bias.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from categorical_truth import SCENARIOS, simulate

import recipe_compiler as rc

REPS = 5
METHODS = {"nominal": "2l.polyreg", "ordinal": "2l.polr", "level2": "2lonly.polyreg"}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_pooled_coefficients_are_unbiased_and_imputed_shares_match_the_truth(
        scenario: str) -> None:
    """Over REPS replications: the mean pooled estimate of each fixed effect lies within
    3.5 Monte Carlo se of the truth (se: the mean pooled standard error / sqrt(REPS), the
    pooled se estimating the sd of one replication's estimate); and per category the
    share among the imputed cells (all m imputations of all replications) lies within
    4 se of the share of the deleted true values, se = sqrt(2 p (1 - p) / n), n the
    number of imputed cells of one imputation over the replications (two independent
    draws of n categories: the truth and one imputation; the m imputations only lower it).
    """
    size = {"n_clusters": 150, "size": 8} if scenario == "level2" else {}
    estimates, errors, true_cells, imputed_cells = [], [], [], []
    for seed in range(1, REPS + 1):
        sim = simulate(scenario, seed, **size)
        imp = rc.impute(sim.data, sim.analysis, m=5, maxit=5, seed=seed, auxiliary=["a"])
        assert imp.plan.methods[sim.target] == METHODS[scenario]
        pooled = imp.fit(sim.analysis).pool().set_index("term").loc[list(sim.truth)]
        estimates.append(pooled["estimate"])
        errors.append(pooled["std_error"])
        missing = sim.data[sim.target].isna()
        true_cells.append(sim.complete[missing].astype(str))
        imputed_cells.extend(d.loc[missing, sim.target].astype(str) for d in imp)
    truth = pd.Series(sim.truth)
    mean = pd.concat(estimates, axis=1).mean(axis=1)
    tolerance = 3.5 * pd.concat(errors, axis=1).mean(axis=1) / np.sqrt(REPS)
    assert (mean - truth).abs().le(tolerance).all(), pd.DataFrame(
        {"truth": truth, "mean": mean, "tolerance": tolerance})
    true_share = pd.concat(true_cells).value_counts(normalize=True)
    imputed_share = pd.concat(imputed_cells).value_counts(normalize=True)
    n = len(pd.concat(true_cells))
    for category, p in true_share.items():
        assert abs(imputed_share.get(category, 0.0) - p) < 4 * np.sqrt(2 * p * (1 - p) / n), \
            (category, p, imputed_share.get(category, 0.0))
