"""Registry-scale imputation: time and peak memory against the number of rows.

Run: ``python benchmarks/scale.py [--rows 10000 100000 1000000] [--n-jobs 2]``.

The problem (issue 13): ``y ~ x*z + w + b + (1 + x | g)`` with ``g`` uniform over
``rows / 100`` clusters; ``x``, ``w`` normal, ``b`` Bernoulli(0.4), ``z`` at level 2;
``y`` with a random intercept and a random slope of ``x``; 20% of ``y``, 10% of
``x``, ``w``, ``b`` and of the clusters' ``z`` missing completely at random.
For each size it imputes (m = 5, maxit = 10), then fits the analysis model on the
five completed data sets and pools, and prints wall seconds of both steps, the CPU
seconds of this process and its workers, and the peak resident memory of this
process and of its largest worker; their total is at most ``self + n_jobs x
worker``. Each size runs in a fresh process (``--one`` runs one size here), so
the peaks are those of that size.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
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
    """Peak resident memory (MB) of this process and of its largest (waited-for) child."""
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return self_kb / 1024, child_kb / 1024


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run(n_rows: int, n_jobs: int, m: int, maxit: int) -> str:
    """One size: impute, fit and pool; the table row."""
    data = simulate(n_rows)
    c0, t0 = cpu_seconds(), time.perf_counter()
    imp = rc.impute(data, FORMULA, m=m, maxit=maxit, seed=1, n_jobs=n_jobs, progress=False)
    t1 = time.perf_counter()
    imp.fit(FORMULA).pool()
    t2 = time.perf_counter()
    cpu = cpu_seconds() - c0
    own, workers = peak_mb()
    total = own + (n_jobs * workers if n_jobs > 1 else 0)
    return (f"| {n_rows:,} | {data['g'].nunique():,} | {n_jobs} | {t1 - t0:.1f} | {t2 - t1:.1f} | "
            f"{t2 - t0:.1f} | {cpu:.1f} | {own:.0f} | {workers:.0f} | {total:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--m", type=int, default=5)
    parser.add_argument("--maxit", type=int, default=10)
    parser.add_argument("--one", action="store_true", help="run the one size here, row only")
    args = parser.parse_args()
    if args.one:
        print(run(args.rows[0], args.n_jobs, args.m, args.maxit), flush=True)
        return
    print("| rows | clusters | n_jobs | impute s | fit + pool s | total s | CPU s (all) | "
          "peak MB (self) | peak MB (largest worker) | peak MB total (at most) |")
    print("|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for n_rows in args.rows:
        subprocess.run([sys.executable, __file__, "--one", "--rows", str(n_rows), "--n-jobs",
                        str(args.n_jobs), "--m", str(args.m), "--maxit", str(args.maxit)],
                       check=True)


if __name__ == "__main__":
    main()
