"""Seconds per FIMD section 7.10 example: ours (impute, analyse) against mice + miceadds.

Run: ``python benchmarks/fimd_7_10.py [--repeat 5] [--m 1]``. For each section it
imputes brandsma with the book's m (or ``--m``), maxit and options, fits the book's
analysis model on every completed data set and pools, and prints our imputation
seconds (median over repeats; wall clock, and CPU time of this process, which a
loaded machine does not inflate), analysis seconds, the R reference's
``impute_seconds`` (mice + miceadds, measured on the same kind of machine), its
ratio to our CPU seconds, and the largest |our estimate - R's| / R's pooled SE
over the fixed effects.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import recipe_compiler as rc
from recipe_compiler.analysis.mifit import MIFit
from recipe_compiler.datasets import FIMD_7_10

REFERENCE = Path(__file__).parents[1] / "tests" / "regression" / "data" / "fimd_7_10"
sys.path.insert(0, str(REFERENCE.parents[1]))
from test_fimd_7_10 import TERMS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--m", type=int, default=None, help="imputations (default: the book's)")
    args = parser.parse_args()
    brandsma = rc.datasets.load_brandsma()
    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"{platform.machine()}, recipe_compiler {rc.__version__}")
    print("| section | m | maxit | impute s | impute CPU s | analyse s | total s | R impute s | "
          "ratio (CPU) | max abs diff / SE |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for ex in FIMD_7_10:
        ref = json.loads((REFERENCE / f"section_{ex.section}.json").read_text())
        m = ex.m if args.m is None else args.m
        t_imp, c_imp, t_fit = [], [], []
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            imp = rc.impute(ex.data(brandsma), ex.formula, m=m, maxit=ex.maxit,
                            seed=ex.seed, **ex.options)
            t1, c1 = time.perf_counter(), time.process_time()
            mi = MIFit(ex.analysis, tuple(rc.fit_lmm(ex.analysis, ex.for_analysis(d, brandsma),
                                                     reml=False) for d in imp))
            pooled = mi.pool().set_index("term")
            t2 = time.perf_counter()
            t_imp.append(t1 - t0)
            c_imp.append(c1 - c0)
            t_fit.append(t2 - t1)
        diff = max(abs(pooled.loc[TERMS.get(r["term"], r["term"]), "estimate"] - r["estimate"])
                   / r["std.error"] for r in ref["pooled"])
        imp_s, cpu_s, fit_s = (statistics.median(t) for t in (t_imp, c_imp, t_fit))
        r_s = ref["impute_seconds"]
        print(f"| {ex.section} | {m} | {ex.maxit} | {imp_s:.4f} | {cpu_s:.4f} | {fit_s:.3f} | "
              f"{imp_s + fit_s:.3f} | {r_s:.2f} | {r_s / cpu_s:.0f}x | {diff:.2f} |")

if __name__ == "__main__":
    main()
