"""Known-truth simulation of incomplete categorical predictors: bias of the pooled estimates.

Run ``python benchmarks/categorical_simulation.py [--reps 200] [--m 5] [--maxit 10]``.
For each scenario of ``tests/runtime/categorical_truth.py`` (a nominal level-1
predictor imputed by ``2l.polyreg``, an ordinal one by ``2l.polr``, a nominal
level-2 one by ``2lonly.polyreg``; MAR through the auxiliary ``a``) it simulates
``--reps`` data sets, imputes each with ``rc.impute(data, analysis, auxiliary=["a"])``,
fits the analysis model (REML) and pools, and prints per fixed effect: the truth,
the mean pooled estimate, its relative bias ``(mean - truth) / |truth|`` and the
Monte Carlo se of that bias, the coverage of the 95% interval, the ratio of the mean
pooled se to the sd of the estimates, and the relative bias of listwise deletion.
A second table compares, per category, the share among the imputed cells
(averaged over the m imputations) with the share of the deleted true values.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import recipe_compiler as rc

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "runtime"))
from categorical_truth import SCENARIOS, simulate

#: Cluster counts and sizes per scenario (a level-2 variable needs more clusters).
SIZES = {"nominal": (60, 20), "ordinal": (60, 20), "level2": (150, 8)}


def replicate(scenario: str, seed: int, m: int, maxit: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pooled and listwise estimates of one data set, and its category shares."""
    n_clusters, size = SIZES[scenario]
    sim = simulate(scenario, seed, n_clusters=n_clusters, size=size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sampler recoveries are counted by the tests
        imp = rc.impute(sim.data, sim.analysis, m=m, maxit=maxit, seed=seed, auxiliary=["a"])
        pooled = imp.fit(sim.analysis).pool().set_index("term")
        listwise = rc.fit_lmm(sim.analysis, sim.data, reml=True).fixef
    rows = pd.DataFrame({"truth": pd.Series(sim.truth), "estimate": pooled["estimate"],
                         "se": pooled["std_error"], "df": pooled["df"], "listwise": listwise})
    missing = sim.data[sim.target].isna()
    imputed = pd.concat([d.loc[missing, sim.target] for d in imp]).astype(str)
    shares = pd.DataFrame({
        "true": sim.complete[missing].astype(str).value_counts(normalize=True),
        "imputed": imputed.value_counts(normalize=True)}).fillna(0.0)
    return rows.loc[list(sim.truth)], shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--m", type=int, default=5)
    parser.add_argument("--maxit", type=int, default=10)
    args = parser.parse_args()
    from scipy.stats import t as student_t

    print(f"{args.reps} replications, m={args.m}, maxit={args.maxit}, REML analysis")
    print("| scenario | method | term | truth | mean estimate | rel. bias | MC se | coverage "
          "| se / sd | listwise rel. bias |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    share_rows = []
    for scenario in SCENARIOS:
        start = time.perf_counter()
        results, shares = zip(*(replicate(scenario, seed, args.m, args.maxit)
                                for seed in range(1, args.reps + 1)), strict=True)
        seconds = time.perf_counter() - start
        method = {"nominal": "2l.polyreg", "ordinal": "2l.polr", "level2": "2lonly.polyreg"}
        stacked = pd.concat(results, keys=range(len(results)), names=["rep", "term"])
        for term, r in stacked.groupby(level="term", sort=False):
            truth = r["truth"].iloc[0]
            bias = (r["estimate"] - truth) / abs(truth)
            half = student_t.ppf(0.975, r["df"]) * r["se"]
            cover = np.mean(np.abs(r["estimate"] - truth) <= half)
            listwise = (r["listwise"].mean() - truth) / abs(truth)
            print(f"| {scenario} | {method[scenario]} | {term} | {truth:g} | "
                  f"{r['estimate'].mean():.3f} | {100 * bias.mean():+.1f}% | "
                  f"{100 * bias.std() / np.sqrt(len(bias)):.1f}% | {100 * cover:.0f}% | "
                  f"{r['se'].mean() / r['estimate'].std():.2f} | {100 * listwise:+.1f}% |")
        share = pd.concat(shares, keys=range(len(shares)), names=["rep", "category"]).fillna(0.0)
        for category, s in share.groupby(level="category"):
            diff = s["imputed"] - s["true"]
            share_rows.append(f"| {scenario} | {category} | {s['true'].mean():.3f} | "
                              f"{s['imputed'].mean():.3f} | {diff.mean():+.3f} | "
                              f"{diff.std() / np.sqrt(len(diff)):.3f} |")
        print(f"|   | ({seconds:.0f} s for {args.reps} replications) | | | | | | | | |")
    print()
    print("| scenario | category | true share of imputed cells | imputed share | difference "
          "| MC se |")
    print("|---|---|---|---|---|---|")
    print("\n".join(share_rows))


if __name__ == "__main__":
    main()
