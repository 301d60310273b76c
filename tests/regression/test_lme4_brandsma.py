"""The LMM fitter against lme4 on seven models of the brandsma data.

The reference ``data/lme4_brandsma.json`` was made in R 4.2.2 with lme4 1.1-31
by the equivalent of (the script itself is not in the repository; this is what
its README and fields describe)::

    library(lme4)
    data(brandsma, package = "mice")
    d <- brandsma
    d$iqm <- ave(d$iqv, d$sch, FUN = function(x) mean(x, na.rm = TRUE))
    d$sem <- ave(d$ses, d$sch, FUN = function(x) mean(x, na.rm = TRUE))
    cc <- d[complete.cases(d[, complete_case_vars]), ]
    t0 <- Sys.time()
    fit <- lmer(formula, data = cc, REML = reml,
                control = lmerControl(optimizer = "bobyqa"))
    lme4_seconds <- as.numeric(Sys.time() - t0, units = "secs")
    list(logLik = logLik(fit), fixef = fixef(fit), se = sqrt(diag(vcov(fit))),
         varcorr = as.data.frame(VarCorr(fit)), sigma2 = sigma(fit)^2,
         nobs = nobs(fit), ngroups = ngrps(fit))

(one call per model; ``formula``, ``reml`` and ``complete_case_vars`` are stored
with each model). The cluster means ``iqm``/``sem`` average the non-missing
``iqv``/``ses`` of a school before listwise deletion.

Both ``ex53_slopes_*`` fits of lme4 end with a singular random-effects
covariance matrix. For ``ex53_slopes_ml`` lme4 stops at a spurious boundary
point: our log-likelihood is 2.03 higher, while our deviance at lme4's
estimates reproduces lme4's log-likelihood; there only the log-likelihood
bound and the boundary flag are compared.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recipe_compiler.analysis import lmm, lmm_core
from recipe_compiler.analysis.design import Design
from recipe_compiler.analysis.lmm import LMMResult, fit_design, fit_lmm
from recipe_compiler.datasets import load_brandsma

REFERENCE = json.loads((Path(__file__).parent / "data" / "lme4_brandsma.json").read_text())
MODELS = sorted(k for k in REFERENCE if not k.startswith("_"))


@pytest.fixture(scope="module")
def brandsma() -> pd.DataFrame:
    d = load_brandsma()
    d["iqm"] = d.groupby("sch")["iqv"].transform("mean")
    d["sem"] = d.groupby("sch")["ses"].transform("mean")
    return d


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """One lme4 model-matrix column: ``(Intercept)``, ``x``, ``factor(f)k`` or ``a:b``."""
    out = np.ones(len(frame))
    for atom in name.split(":"):
        if atom == "(Intercept)":
            continue
        if atom.startswith("factor("):
            var, level = atom[len("factor("):].split(")")
            out = out * (frame[var].to_numpy() == float(level))
        else:
            out = out * frame[atom].to_numpy(dtype=float)
    return out


def _random_names(ref: dict) -> tuple[str, ...]:
    return tuple(r["var1"] for r in ref["varcorr"] if r["grp"] == "sch" and r["var2"] is None)


def reference_design(ref: dict, data: pd.DataFrame) -> Design:
    """The design of a reference model built column by column from lme4's names."""
    cc = data.dropna(subset=ref["complete_case_vars"])
    x_names, z_names = tuple(ref["fixef"]), _random_names(ref)
    codes, labels = pd.factorize(cc["sch"], sort=True)
    return Design(
        y=cc["lpo"].to_numpy(dtype=float),
        X=np.column_stack([_column(cc, n) for n in x_names]), x_names=x_names,
        Z=np.column_stack([_column(cc, n) for n in z_names]), z_names=z_names,
        groups=codes, group_labels=np.asarray(labels), outcome="lpo", cluster="sch",
        rows=cc.index, n_dropped=len(data) - len(cc))


def reference_cov(ref: dict) -> np.ndarray:
    names = _random_names(ref)
    cov = np.zeros((len(names),) * 2)
    for r in ref["varcorr"]:
        if r["grp"] == "sch":
            i = names.index(r["var1"])
            j = names.index(r["var2"]) if r["var2"] else i
            cov[i, j] = cov[j, i] = r["vcov"]
    return cov


def lme4_singular(ref: dict) -> bool:
    eig = np.linalg.eigvalsh(reference_cov(ref))
    return bool(eig[0] < 1e-8 * eig[-1])


def assert_matches_reference(fit: LMMResult, ref: dict) -> None:
    assert fit.nobs == ref["nobs"]
    assert fit.ngroups == ref["ngroups"]
    assert fit.loglik >= ref["logLik"] - 0.01
    assert fit.converged
    assert fit.boundary == lme4_singular(ref)
    if abs(fit.loglik - ref["logLik"]) > 1e-3:  # lme4 stopped elsewhere (ex53_slopes_ml)
        assert lme4_singular(ref)
        return
    names = list(ref["fixef"])
    np.testing.assert_allclose(fit.fixef[names], list(ref["fixef"].values()), rtol=1e-4)
    np.testing.assert_allclose(fit.se[names], list(ref["se"].values()), rtol=0.01)
    np.testing.assert_allclose(fit.varcorr["vcov"], [r["vcov"] for r in ref["varcorr"]],
                               rtol=0.01)
    assert list(fit.varcorr["var1"].fillna("-")) == [r["var1"] or "-" for r in ref["varcorr"]]
    assert list(fit.varcorr["var2"].fillna("-")) == [r["var2"] or "-" for r in ref["varcorr"]]
    assert fit.sigma2 == pytest.approx(ref["sigma2"], rel=0.01)


@pytest.mark.parametrize("model", MODELS)
def test_fit_design_matches_lme4(model: str, brandsma: pd.DataFrame) -> None:
    ref = REFERENCE[model]
    assert_matches_reference(fit_design(reference_design(ref, brandsma), reml=ref["reml"]), ref)


def _our_formula(formula: str) -> str:
    return (formula.replace("factor(den)", "C(den)").replace("iqm", "cm(iqv)")
            .replace("sem", "cm(ses)"))


def _lme4_name(name: str) -> str:
    for ours, theirs in (("cm(iqv)", "iqm"), ("cm(ses)", "sem")):
        name = name.replace(ours, theirs)
    for level in "234":
        name = name.replace(f"C(den)[T.{level}]", f"factor(den){level}")
    return name


@pytest.mark.parametrize("model", MODELS)
def test_fit_lmm_with_cluster_means_matches_lme4(model: str, brandsma: pd.DataFrame) -> None:
    """Through the formula: ``cm(iqv)`` must equal the README's ``iqm``."""
    ref = REFERENCE[model]
    fit = fit_lmm(_our_formula(ref["formula"]), load_brandsma(), reml=ref["reml"])
    renamed = [_lme4_name(n) for n in fit.x_names]
    assert sorted(renamed) == sorted(ref["fixef"])
    fit = LMMResult(**{**fit.__dict__, "x_names": tuple(renamed),
                       "fixef": fit.fixef.set_axis(renamed), "se": fit.se.set_axis(renamed)})
    assert_matches_reference(fit, ref)


def test_ex53_ml_improves_on_lme4s_spurious_boundary_point(brandsma: pd.DataFrame) -> None:
    ref = REFERENCE["ex53_slopes_ml"]
    design = reference_design(ref, brandsma)
    fit = fit_design(design, reml=False)
    assert fit.loglik - ref["logLik"] == pytest.approx(2.026, abs=0.01)
    assert fit.boundary and fit.theta[-1] == 0.0
    # our profiled deviance at lme4's (singular) covariance gives lme4's logLik
    cp = lmm._cross_products(design)
    lam = np.linalg.cholesky(reference_cov(ref) / ref["sigma2"] + 1e-14 * np.eye(3))
    at_lme4 = -0.5 * lmm._profile((cp.scale[:, None] * lam)[cp.tri], cp, False).deviance
    assert at_lme4 == pytest.approx(ref["logLik"], abs=1e-4)


@pytest.mark.parametrize("start", [3.0, 1.0, 0.3, 0.03])
def test_ex53_optimum_does_not_depend_on_the_start(start: float, brandsma: pd.DataFrame,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """From start 1.0 the optimiser first stops at a zero intercept diagonal
    blocked by its column's sign, and for the 2x2 model at a saddle: the
    restarts must reach one optimum from every start."""
    for model in ("ex53_slopes_ml", "contextual_slope_ml"):
        design = reference_design(REFERENCE[model], brandsma)
        best = fit_design(design, reml=False).loglik
        monkeypatch.setattr(lmm_core, "START", start)
        assert fit_design(design, reml=False).loglik == pytest.approx(best, abs=1e-5)
        monkeypatch.undo()
