"""The logistic mixed-model fitter against lme4's glmer on five models of the brandsma data.

The reference ``data/glmer_brandsma.json`` was made in R 4.2.2 with lme4 1.1-31,
from the repository root, by::

    library(lme4); library(jsonlite)
    d <- read.csv("recipe_compiler/datasets/brandsma.csv")
    d$lpo_hi <- as.integer(d$lpo > median(d$lpo, na.rm = TRUE))
    d$iqm <- ave(d$iqv, d$sch, FUN = function(x) mean(x, na.rm = TRUE))
    models <- list(
      min_empty = list(formula = "min ~ 1 + (1 | sch)", vars = c("sch", "min")),
      min_iqv_ses = list(formula = "min ~ iqv + ses + (1 | sch)",
                         vars = c("sch", "min", "iqv", "ses")),
      lpo_hi_slope = list(formula = "lpo_hi ~ iqv + ses + (1 + iqv | sch)",
                          vars = c("sch", "lpo_hi", "iqv", "ses")),
      lpo_hi_sex = list(formula = "lpo_hi ~ iqv * sex + iqm + (1 + sex | sch)",
                        vars = c("sch", "lpo_hi", "iqv", "sex")),
      lpo_hi_three = list(formula = "lpo_hi ~ iqv + ses + sex + (1 + iqv + ses | sch)",
                          vars = c("sch", "lpo_hi", "iqv", "ses", "sex")))
    tight <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-9),
                          tolPwrss = 1e-12)
    summarise <- function(fit, seconds) {
      vc <- as.data.frame(VarCorr(fit))
      list(logLik = as.numeric(logLik(fit)), fixef = as.list(fixef(fit)),
           se = as.list(setNames(sqrt(diag(as.matrix(vcov(fit)))), names(fixef(fit)))),
           se_conditional = as.list(setNames(sqrt(diag(as.matrix(
             suppressWarnings(vcov(fit, use.hessian = FALSE))))), names(fixef(fit)))),
           theta = unname(getME(fit, "theta")),
           varcorr = lapply(seq_len(nrow(vc)), function(i) list(grp = vc$grp[i],
             var1 = if (is.na(vc$var1[i])) NULL else vc$var1[i],
             var2 = if (is.na(vc$var2[i])) NULL else vc$var2[i], vcov = vc$vcov[i])),
           singular = isSingular(fit), messages = fit@optinfo$conv$lme4$messages,
           seconds = seconds)
    }
    out <- list()
    for (name in names(models)) {
      m <- models[[name]]
      cc <- d[complete.cases(d[, m$vars]), ]
      f <- as.formula(m$formula)
      res <- lapply(list(default = glmerControl(), tight = tight), function(ctrl) {
        fit <- glmer(f, data = cc, family = binomial, nAGQ = 1, control = ctrl)
        times <- replicate(5, system.time(
          glmer(f, data = cc, family = binomial, nAGQ = 1, control = ctrl))[["elapsed"]])
        summarise(fit, median(times))
      })
      fit <- glmer(f, data = cc, family = binomial, nAGQ = 1)
      out[[name]] <- c(list(formula = m$formula, complete_case_vars = m$vars,
                            nobs = nobs(fit), ngroups = unname(ngrps(fit))), res)
    }
    out[["_meta"]] <- list(R = R.version.string,
                           lme4 = as.character(packageVersion("lme4")))
    writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"),
               "tests/regression/data/glmer_brandsma.json")

``default`` is glmer as users call it; ``tight`` is the same estimator with
tight tolerances. glmer's default PIRLS stops on a relative change of the
penalised deviance below ``tolPwrss = 1e-7``, which leaves its conditional
modes inexact by ~1e-3 and its Laplace deviance (through ``log|H|``, which is
not stationary in the modes) wrong by up to 0.05: on ``min_iqv_ses`` lme4's own
deviance function, evaluated at its default estimates, is 0.045 above its
tight optimum, and the default optimiser stops there. The stated accuracy
(fixed effects within 1e-3 relative, SEs and variance components within 1%,
logLik within 1e-6 relative) is therefore tested against ``tight``; against
``default`` we test that our log-likelihood is never lower and that estimates
agree within what its inexact deviance allows. ``lpo_hi_sex`` and
``lpo_hi_three`` are boundary (singular) fits in lme4 and here; glmer's default
SEs of ``lpo_hi_three`` (~0.001 for every coefficient) come from a
finite-difference Hessian across that boundary on the inexact deviance and are
not compared.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recipe_compiler.analysis import laplace
from recipe_compiler.analysis.design import build_design
from recipe_compiler.analysis.glmm import GLMMResult, fit_glmm
from recipe_compiler.datasets import load_brandsma

REFERENCE = json.loads((Path(__file__).parent / "data" / "glmer_brandsma.json").read_text())
MODELS = sorted(k for k in REFERENCE if not k.startswith("_"))


@pytest.fixture(scope="module")
def brandsma() -> pd.DataFrame:
    d = load_brandsma()
    d["lpo_hi"] = (d["lpo"] > d["lpo"].median()).astype(float).where(d["lpo"].notna())
    return d


def our_formula(formula: str) -> str:
    return formula.replace("iqm", "cm(iqv)")


@pytest.fixture(scope="module")
def fits(brandsma: pd.DataFrame) -> dict[str, GLMMResult]:
    return {name: fit_glmm(our_formula(REFERENCE[name]["formula"]), brandsma)
            for name in MODELS}


def values(ref: dict, key: str) -> np.ndarray:
    return np.array(list(ref[key].values()))


def names(ref: dict) -> list[str]:
    return [our_formula(n) for n in ref["tight"]["fixef"]]


@pytest.mark.parametrize("name", MODELS)
def test_matches_glmer_with_tight_tolerances(name: str, fits: dict[str, GLMMResult]) -> None:
    fit, ref = fits[name], REFERENCE[name]
    tight = ref["tight"]
    assert (fit.nobs, fit.ngroups) == (ref["nobs"], ref["ngroups"])
    assert fit.converged
    assert fit.vcov_method == "hessian"
    assert fit.boundary == tight["singular"]
    np.testing.assert_allclose(fit.loglik, tight["logLik"], rtol=1e-6)
    np.testing.assert_allclose(fit.fixef[names(ref)], values(tight, "fixef"), rtol=1e-3)
    np.testing.assert_allclose(fit.se[names(ref)], values(tight, "se"), rtol=0.01)
    # variance components to 1%; a variance lme4 puts at its bound 0 has no relative scale
    ref_vc = np.array([r["vcov"] for r in tight["varcorr"]])
    np.testing.assert_allclose(fit.varcorr["vcov"], ref_vc,
                               rtol=0.01, atol=1e-6 * np.abs(ref_vc).max())
    assert list(fit.varcorr["var1"]) == [r["var1"] for r in tight["varcorr"]]
    assert list(fit.varcorr["var2"]) == [r["var2"] for r in tight["varcorr"]]


@pytest.mark.parametrize("name", MODELS)
def test_at_least_as_good_as_default_glmer(name: str, fits: dict[str, GLMMResult]) -> None:
    fit, default = fits[name], REFERENCE[name]["default"]
    assert fit.loglik >= default["logLik"] - 1e-6 * abs(default["logLik"])
    # glmer's default optimum is off by up to 0.045 in deviance: estimates within a
    # fifth of a standard error
    gap = np.abs(fit.fixef[names(REFERENCE[name])] - values(default, "fixef")) / fit.se
    assert gap.max() < 0.2


@pytest.mark.parametrize("name", MODELS)
def test_conditional_covariance_matches_lme4(name: str, brandsma: pd.DataFrame,
                                             fits: dict[str, GLMMResult]) -> None:
    """lme4's ``vcov(fit, use.hessian = FALSE)`` (the fallback) at the tight estimates."""
    ref = REFERENCE[name]
    tight = ref["tight"]
    cl = laplace.clusters(build_design(our_formula(ref["formula"]), brandsma))
    lam = cl.lam(np.atleast_1d(tight["theta"]))
    beta = np.linalg.solve(cl.x_map, values(tight, "fixef"))  # in working units
    phi = np.concatenate([(cl.scale[:, None] * lam)[cl.tri], beta])
    mode = laplace.Objective(cl).mode(phi)
    se = np.sqrt(np.diag(laplace.conditional_vcov(mode, cl)))
    np.testing.assert_allclose(se, values(tight, "se_conditional"), rtol=1e-4)
    np.testing.assert_allclose(-0.5 * mode.deviance, tight["logLik"], rtol=1e-7)


def test_variance_components_named_as_mitml(fits: dict[str, GLMMResult]) -> None:
    vc = fits["lpo_hi_slope"].variance_components()
    assert list(vc.index) == ["Intercept~~Intercept|sch", "iqv~~iqv|sch", "Intercept~~iqv|sch"]
    tight = REFERENCE["lpo_hi_slope"]["tight"]
    np.testing.assert_allclose(vc, [r["vcov"] for r in tight["varcorr"]], rtol=0.01)
