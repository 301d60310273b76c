"""Registry-scale imputation: time and peak memory against the number of rows.

Run: ``python benchmarks/scale.py [--rows 10000 100000 1000000] [--n-jobs 2]``.

The problem (issue 13): ``y ~ x*z + w + b + (1 + x | g)`` with ``g`` uniform over
``rows / 100`` clusters; ``x``, ``w`` normal, ``b`` Bernoulli(0.4), ``z`` at level 2;
``y`` with a random intercept and a random slope of ``x``; 20% of ``y``, 10% of
``x``, ``w``, ``b`` and of the clusters' ``z`` missing completely at random.
For each size it imputes (m = 5, maxit = 10), then fits the analysis model on the
five completed data sets and pools, and prints wall seconds of both steps and
the peak resident memory of this process and of its worker processes.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import pandas as pd

import recipe_compiler as rc

FORMULA = "y ~ x*z + w + b + (1 + x | g)"


def simulate(n_rows: int, seed: int = 1) -> pd.DataFrame:
    """The issue's data set with ``n_rows`` rows in ``n_rows // 100`` clusters."""
    rng = np.random.default_rng(seed)
    n_clusters = max(n_rows // 100, 2)
    g = rng.integers(0, n_clusters, n_rows)
    z_c = rng.normal(size=n_clusters)
    u0 = rng.normal(scale=0.7, size=n_clusters)
    u1 = rng.normal(scale=0.3, size=n_clusters)
    x = rng.normal(size=n_rows) + 0.5 * z_c[g]
    w = rng.normal(size=n_rows)
    b = (rng.random(n_rows) < 0.4).astype(float)
    z = z_c[g]
    y = (1.0 + 0.5 * x + 0.3 * z + 0.2 * x * z + 0.4 * w - 0.3 * b + u0[g] + u1[g] * x
         + rng.normal(size=n_rows))
    data = pd.DataFrame({"g": g, "y": y, "x": x, "z": z, "w": w, "b": b})
    for col, share in (("y", 0.2), ("x", 0.1), ("w", 0.1), ("b", 0.1)):
        data.loc[rng.random(n_rows) < share, col] = np.nan
    z_missing = rng.random(n_clusters) < 0.1
    data.loc[z_missing[g], "z"] = np.nan
    return data


def peak_mb() -> tuple[float, float]:
    """Peak resident memory (MB) of this process and of its (waited-for) children."""
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return self_kb / 1024, child_kb / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--m", type=int, default=5)
    parser.add_argument("--maxit", type=int, default=10)
    args = parser.parse_args()
    print("| rows | clusters | impute s | fit + pool s | total s | peak MB (self) | "
          "peak MB (workers) |")
    print("|---|---|---|---|---|---|---|")
    for n_rows in args.rows:
        data = simulate(n_rows)
        t0 = time.perf_counter()
        imp = rc.impute(data, FORMULA, m=args.m, maxit=args.maxit, seed=1, n_jobs=args.n_jobs,
                        progress=False)
        t1 = time.perf_counter()
        imp.fit(FORMULA).pool()
        t2 = time.perf_counter()
        own, workers = peak_mb()
        print(f"| {n_rows:,} | {data['g'].nunique():,} | {t1 - t0:.1f} | {t2 - t1:.1f} | "
              f"{t2 - t0:.1f} | {own:.0f} | {workers:.0f} |", flush=True)


if __name__ == "__main__":
    main()
