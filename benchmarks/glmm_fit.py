"""Fit times of the logistic mixed-model fitter against glmer, and a known-truth study.

Run ``python benchmarks/glmm_fit.py [--repeats 20] [--truth-reps 0]`` (package
installed, or ``PYTHONPATH=.`` from the repository root).

For each model of ``tests/regression/data/glmer_brandsma.json`` it prints the
median wall time of :func:`recipe_compiler.analysis.glmm.fit_glmm_design`
(design built once) and of :func:`recipe_compiler.analysis.glmm.fit_glmm`
(formula and design included: the fair comparison, as ``glmer`` builds its model
frame too), glmer's recorded median times (``glmer(..., family = binomial)``
with default control, and with the tight tolerances the regression test uses;
R 4.2.2, lme4 1.1-31, median of 5 fits), the ratios glmer / ``fit_glmm`` and the
log-likelihood differences ours - glmer.

With ``--truth-reps R`` it also runs the known-truth simulation of
``tests/analysis/test_glmm.py`` (``y ~ x1 + x2 + (1 | g)``, 100 clusters of 20,
``x1`` MAR, ``x2`` MCAR; m = 5, maxit = 5) R times and prints, per coefficient,
the mean estimate, its relative bias and Monte Carlo SE for the data before
deletion, complete cases and multiple imputation pooled by Rubin's rules.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from _timing import median_seconds

import recipe_compiler as rc
from recipe_compiler.analysis.design import build_design
from recipe_compiler.analysis.glmm import fit_glmm, fit_glmm_design
from recipe_compiler.datasets import load_brandsma

ROOT = Path(__file__).parents[1]
REFERENCE = ROOT / "tests" / "regression" / "data" / "glmer_brandsma.json"


def timing_table(repeats: int) -> pd.DataFrame:
    reference = json.loads(REFERENCE.read_text())
    data = load_brandsma()
    data["lpo_hi"] = (data["lpo"] > data["lpo"].median()).astype(float).where(
        data["lpo"].notna())
    rows = []
    for name, ref in reference.items():
        if name.startswith("_"):
            continue
        formula = ref["formula"].replace("iqm", "cm(iqv)")
        design = build_design(formula, data)
        fit = fit_glmm(formula, data)
        ours = median_seconds(lambda d=design: fit_glmm_design(d), repeats)
        with_formula = median_seconds(lambda f=formula: fit_glmm(f, data), repeats)
        default, tight = ref["default"], ref["tight"]
        rows.append({
            "model": name,
            "ours_ms": 1000 * ours,
            "fit_glmm_ms": 1000 * with_formula,
            "glmer_ms": 1000 * default["seconds"],
            "glmer_tight_ms": 1000 * tight["seconds"],
            "glmer/fit_glmm": default["seconds"] / with_formula,
            "dloglik_default": fit.loglik - default["logLik"],
            "dloglik_tight": fit.loglik - tight["logLik"],
        })
    return pd.DataFrame(rows).set_index("model")


def truth_table(reps: int) -> pd.DataFrame:
    sys.path.insert(0, str(ROOT / "tests" / "analysis"))
    from test_glmm import BETA, simulate_incomplete

    formula = "y ~ x1 + x2 + (1 | g)"
    results: dict[str, list[np.ndarray]] = {"before deletion": [], "complete cases": [],
                                            "MI (m = 5)": []}
    for rep in range(reps):
        full, d = simulate_incomplete(10_000 + rep)
        results["before deletion"].append(fit_glmm(formula, full).fixef.to_numpy())
        results["complete cases"].append(fit_glmm(formula, d).fixef.to_numpy())
        imp = rc.impute(d, formula, m=5, maxit=5, seed=rep, methods={"x2": "2l.bin"})
        results["MI (m = 5)"].append(
            imp.fit(formula, family="binomial").pool()["estimate"].to_numpy())
    rows = []
    for method, estimates in results.items():
        a = np.array(estimates)
        mean, mcse = a.mean(axis=0), a.std(axis=0, ddof=1) / np.sqrt(reps)
        for term, truth, m, s in zip(("(Intercept)", "x1", "x2"), BETA, mean, mcse,
                                     strict=True):
            rows.append({"method": method, "term": term, "truth": truth, "mean": m,
                         "rel_bias_%": 100 * (m / truth - 1), "mcse_%": 100 * s / abs(truth)})
    return pd.DataFrame(rows).set_index(["method", "term"])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed fits per model (ours)")
    parser.add_argument("--truth-reps", type=int, default=0,
                        help="replications of the known-truth simulation (0: skip)")
    args = parser.parse_args()
    fmt = {"float_format": lambda v: f"{v:.4g}"}
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(timing_table(args.repeats).to_string(**fmt))
        if args.truth_reps:
            print()
            print(truth_table(args.truth_reps).to_string(**fmt))


if __name__ == "__main__":
    main()
