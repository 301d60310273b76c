"""End to end: every FIMD section 7.10 example from one ``impute`` call, against mice + miceadds.

The references (``data/fimd_7_10/section_7.10.N.json``, copied from
``shared/reference``) were made by the book's own R code, e.g. for 7.10.2::

    imp <- mice(d, pred = pred, meth = "2l.pmm", seed = 919, m = 10, print = FALSE)
    fit <- with(imp, lmer(lpo ~ iqv + (1 | sch), REML = FALSE))
    summary(pool(fit))
    testEstimates(as.mitml.result(fit), extra.pars = TRUE)$extra.pars

with mice 3.15.0, miceadds 3.18-24, lme4 1.1-31, mitml 0.4-4 (scripts in
``shared/reference/R``). Two R runs with different seeds differ by at most 0.25
pooled standard errors, so a fixed effect within 0.5 SE is agreement.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import recipe_compiler as rc
from recipe_compiler.analysis.mifit import MIFit
from recipe_compiler.datasets import FIMD_7_10, BookExample

DATA = Path(__file__).parent / "data" / "fimd_7_10"

#: R's term names -> this package's.
TERMS = {
    "iqm": "cm(iqv)", "sem": "cm(ses)",
    "as.factor(den)2": "C(den)[T.2]", "as.factor(den)3": "C(den)[T.3]",
    "as.factor(den)4": "C(den)[T.4]",
    "den2": "C(den)[T.2]", "den3": "C(den)[T.3]", "den4": "C(den)[T.4]",
    "iqm:den2": "cm(iqv):C(den)[T.2]", "iqm:den3": "cm(iqv):C(den)[T.3]",
    "iqm:den4": "cm(iqv):C(den)[T.4]",
    "sex:den2": "sex:C(den)[T.2]", "sex:den3": "sex:C(den)[T.3]", "sex:den4": "sex:C(den)[T.4]",
    "iqm:sem": "cm(iqv):cm(ses)", "iqv:iqm": "iqv:cm(iqv)", "iqv:sem": "iqv:cm(ses)",
    "ses:iqm": "ses:cm(iqv)", "ses:sem": "ses:cm(ses)",
}


def reference(section: str) -> dict:
    return json.loads((DATA / f"section_{section}.json").read_text())


def run_example(ex: BookExample, brandsma: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    imp = rc.impute(ex.data(brandsma), ex.formula, m=ex.m, maxit=ex.maxit, seed=ex.seed,
                    **ex.options)
    fits = tuple(rc.fit_lmm(ex.analysis, ex.for_analysis(d, brandsma), reml=False)
                 for d in imp)
    mi = MIFit(ex.analysis, fits)
    return mi.pool().set_index("term"), mi.variance_components()


@pytest.fixture(scope="module")
def brandsma() -> pd.DataFrame:
    return rc.datasets.load_brandsma()


@pytest.mark.slow
@pytest.mark.parametrize("ex", FIMD_7_10, ids=[e.section for e in FIMD_7_10])
def test_pooled_results_agree_with_mice_and_miceadds(ex: BookExample,
                                                     brandsma: pd.DataFrame) -> None:
    ref = reference(ex.section)
    pooled, components = run_example(ex, brandsma)
    ref_terms = [TERMS.get(r["term"], r["term"]) for r in ref["pooled"]]
    assert sorted(pooled.index) == sorted(ref_terms)
    for r, term in zip(ref["pooled"], ref_terms, strict=True):
        ours = pooled.loc[term]
        assert abs(ours["estimate"] - r["estimate"]) <= 0.5 * r["std.error"], term
        assert ours["std_error"] == pytest.approx(r["std.error"], rel=0.15), term
    for name, value in ref.get("var_comp", {}).items():
        if is_covariance(name):
            continue  # the issue sets no tolerance for covariances; they are near 0 and noisy
        assert components[name] == pytest.approx(value, rel=component_tolerance(name)), name


def is_covariance(name: str) -> bool:
    a, _, b = name.split("|")[0].partition("~~")
    return bool(b) and a != b and not name.startswith("Residual")


def component_tolerance(name: str) -> float:
    """5% for the intercept and residual variances and the ICC, 25% for slope variances."""
    if name.startswith(("Residual", "ICC", "Intercept~~Intercept")):
        return 0.05
    return 0.25


def test_term_map_covers_every_reference_term() -> None:
    for ex in FIMD_7_10:
        for r in reference(ex.section)["pooled"]:
            name = TERMS.get(r["term"], r["term"])
            assert "(" not in name or name.startswith(("(Intercept)", "cm(", "C(")) or \
                ":" in name, name


def test_reference_seeds_differ_by_less_than_a_quarter_se() -> None:
    """The reference's own Monte Carlo noise, which the 0.5 SE tolerance is set against."""
    for section in ("7.10.2", "7.10.5", "7.10.7"):
        a = reference(section)["pooled"]
        b = json.loads((DATA / f"section_{section}_seed99.json").read_text())["pooled"]
        diffs = [abs(x["estimate"] - y["estimate"]) / x["std.error"]
                 for x, y in zip(a, b, strict=True)]
        assert np.max(diffs) <= 0.25
