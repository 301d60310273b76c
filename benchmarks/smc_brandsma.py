"""Seconds of ``approach="smc"`` on brandsma (FIMD section 7.10.6) against ``jomo.lmer``.

Run: ``python benchmarks/smc_brandsma.py [--repeat 3] [--m 10] [--maxit 190]``.

jomo.lmer's reference run (``tests/regression/data/smc/jomo_lmer_7.10.6.json``,
``impute_seconds``) makes 10 imputations from one chain of 1000 burn-in and
9 x 100 between-imputation iterations: 1900 iterations, each updating every
parameter and every missing value once. Ours runs one chain per imputation, so
the same total is ``m = 10`` chains of ``maxit = 190`` sweeps (each sweep
updates every model's parameters and every missing value once). The script
times ``rc.impute`` (compile and all chains; median of ``--repeat`` runs,
wall clock) on grand-mean-centred ``lpo`` for section 7.10.6's model
``lpo ~ iqv + cm(iqv) + (1 + iqv | sch)`` and for jomo's model without the
cluster mean, with ``n_jobs`` 1 and 2, then pools ``iqv`` of jomo's analysis
model for a sanity check against jomo's pooled estimate. With ``n_jobs = 1`` it
also reports the CPU seconds of this process (``time.process_time``), which
other work on the machine inflates much less than the wall clock.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

import recipe_compiler as rc

REFERENCE = (Path(__file__).parents[1] / "tests" / "regression" / "data" / "smc"
             / "jomo_lmer_7.10.6.json")
MODELS = ("lpo ~ iqv + cm(iqv) + (1 + iqv | sch)", "lpo ~ iqv + (1 + iqv | sch)")
JOMO_ANALYSIS = "lpo ~ iqv + (1 + iqv | sch)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--m", type=int, default=10)
    parser.add_argument("--maxit", type=int, default=190)
    parser.add_argument("--seed", type=int, default=441)
    args = parser.parse_args()
    ref = json.loads(REFERENCE.read_text())
    jomo_s = float(ref["impute_seconds"])
    jomo_iqv = next(r for r in ref["pooled"] if r["term"] == "iqv")
    d = rc.datasets.load_brandsma()[["sch", "lpo", "iqv"]].copy()
    d["lpo"] -= d["lpo"].mean()
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, "
          f"recipe_compiler {rc.__version__}; median of {args.repeat} runs")
    print(f"jomo.lmer {ref['versions']['jomo']}: 1900 iterations, {jomo_s:.2f} s, pooled iqv "
          f"{jomo_iqv['estimate']:.3f} (SE {jomo_iqv['std_error']:.3f})")
    print("| model | m x maxit | n_jobs | impute s | CPU s | jomo s / ours | iqv (SE) | "
          "|diff| / jomo SE |")
    print("|---|---|---|---|---|---|---|---|")
    for formula in MODELS:
        for n_jobs in (1, 2):
            seconds, cpu = [], []
            for _ in range(args.repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                imp = rc.impute(d, formula, approach="smc", m=args.m, maxit=args.maxit,
                                seed=args.seed, n_jobs=n_jobs)
                seconds.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            iqv = imp.fit(JOMO_ANALYSIS).pool().set_index("term").loc["iqv"]
            s = statistics.median(seconds)
            diff = abs(iqv["estimate"] - jomo_iqv["estimate"]) / jomo_iqv["std_error"]
            cpu_s = f"{statistics.median(cpu):.2f}" if n_jobs == 1 else "-"
            print(f"| `{formula}` | {args.m} x {args.maxit} | {n_jobs} | {s:.2f} | {cpu_s} | "
                  f"{jomo_s / s:.1f}x | {iqv['estimate']:.3f} ({iqv['std_error']:.3f}) | "
                  f"{diff:.2f} |")


if __name__ == "__main__":
    main()
