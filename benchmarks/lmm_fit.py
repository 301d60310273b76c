"""Fit times of the LMM fitter on the seven lme4 reference models of brandsma.

Run ``python benchmarks/lmm_fit.py [--repeats 20]`` (package installed, or
``PYTHONPATH=.`` from the repository root). For each model of
``tests/regression/data/lme4_brandsma.json`` it prints the median wall time of
:func:`recipe_compiler.analysis.lmm.fit_design` (design matrices built once, as lme4's
recorded time excludes nothing but the data preparation) and of
:func:`recipe_compiler.analysis.lmm.fit_lmm` (formula and design included), statsmodels
``MixedLM(...).fit(method=["powell", "lbfgs"])`` on the same design, lme4's
recorded ``lme4_seconds`` and the ratios lme4 / ``fit_design`` and lme4 /
``fit_lmm`` (the fair one: ``lmer`` builds its model frame too), with the
log-likelihood difference ours - lme4.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import pandas as pd
import statsmodels.api as sm
from _timing import median_seconds

from recipe_compiler.analysis.design import build_design
from recipe_compiler.analysis.lmm import fit_design, fit_lmm
from recipe_compiler.datasets import load_brandsma

REFERENCE = Path(__file__).parents[1] / "tests" / "regression" / "data" / "lme4_brandsma.json"


def our_formula(formula: str) -> str:
    """The reference formula in our syntax: cluster means as ``cm()``, factors as ``C()``."""
    return (formula.replace("factor(den)", "C(den)").replace("iqm", "cm(iqv)")
            .replace("sem", "cm(ses)"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed fits per model (ours)")
    parser.add_argument("--sm-repeats", type=int, default=3, help="timed fits (statsmodels)")
    args = parser.parse_args()
    reference = json.loads(REFERENCE.read_text())
    data = load_brandsma()
    rows = []
    for name, ref in reference.items():
        if name.startswith("_"):
            continue
        formula, reml = our_formula(ref["formula"]), ref["reml"]
        design = build_design(formula, data)
        fit = fit_design(design, reml=reml)
        ours = median_seconds(lambda d=design, r=reml: fit_design(d, reml=r), args.repeats)
        with_formula = median_seconds(lambda f=formula, r=reml: fit_lmm(f, data, reml=r),
                                      args.repeats)
        model = sm.MixedLM(design.y, design.X, groups=design.groups, exog_re=design.Z)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sm_fit = model.fit(reml=reml, method=["powell", "lbfgs"])
            sm_time = median_seconds(
                lambda m=model, r=reml: m.fit(reml=r, method=["powell", "lbfgs"]),
                args.sm_repeats)
        rows.append({
            "model": name,
            "ours_ms": 1000 * ours,
            "fit_lmm_ms": 1000 * with_formula,
            "statsmodels_ms": 1000 * sm_time,
            "lme4_ms": 1000 * ref["lme4_seconds"],
            "lme4/ours": ref["lme4_seconds"] / ours,
            "lme4/fit_lmm": ref["lme4_seconds"] / with_formula,
            "dloglik_vs_lme4": fit.loglik - ref["logLik"],
            "dloglik_sm_vs_ours": sm_fit.llf - fit.loglik,
            "boundary": fit.boundary,
        })
    table = pd.DataFrame(rows).set_index("model")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
