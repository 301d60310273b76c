"""The multi-term LMM fitter against lme4 on a three-level and a crossed design.

Data: ``data/lme4_multilevel_nested.csv`` (1,642 pupils in 240 classes, labelled 1-4
within each of 60 schools) and ``data/lme4_multilevel_crossed.csv`` (598 ratings of 30
items by 40 raters, each pair rated with probability 0.5), generated once by::

    import numpy as np, pandas as pd
    rng = np.random.default_rng(20240614)
    # three-level: 60 schools x 4 classes x 8 pupils, ~15% of pupils dropped
    S, K, P = 60, 4, 8
    school = np.repeat(np.arange(1, S + 1), K * P)
    klass = np.tile(np.repeat(np.arange(1, K + 1), P), S)
    keep = rng.random(S * K * P) > 0.15
    cid = (school - 1) * K + klass - 1
    u_school = rng.normal(0, np.sqrt(0.8), S)
    cov = np.array([[1.0, 0.2], [0.2, 0.25]])
    u_class = rng.multivariate_normal([0, 0], cov, S * K)
    z = rng.normal(size=S)[school - 1]
    w = rng.normal(size=S * K)[cid]
    x = rng.normal(size=S * K * P) + 0.5 * rng.normal(size=S * K)[cid]
    y = (10 + 2 * x + 0.5 * w - 1 * z + u_school[school - 1] + u_class[cid, 0]
         + u_class[cid, 1] * x + rng.normal(0, 2, S * K * P))
    d3 = pd.DataFrame({"school": school, "class": klass, "x": x, "w": w, "z": z,
                       "y": y})[keep]
    d3.round(6).to_csv("lme4_multilevel_nested.csv", index=False)
    # crossed: 40 raters x 30 items, each pair rated with probability 0.5
    R, I = 40, 30
    pairs = np.argwhere(rng.random((R, I)) < 0.5)
    rater, item = pairs[:, 0], pairs[:, 1]
    n = len(rater)
    x = rng.normal(size=n)
    b_r = rng.multivariate_normal([0, 0], [[1.0, 0.1], [0.1, 0.2]], R)
    b_i = rng.normal(0, np.sqrt(0.5), I)
    y = 3 + 0.7 * x + b_r[rater, 0] + b_r[rater, 1] * x + b_i[item] + rng.normal(0, 1, n)
    dc = pd.DataFrame({"rater": [f"r{r + 1:02d}" for r in rater],
                       "item": [f"i{i + 1:02d}" for i in item], "x": x, "y": y})
    dc.round(6).to_csv("lme4_multilevel_crossed.csv", index=False)

Reference ``data/lme4_multilevel.json``: R 4.2.2, lme4 1.1-31 (default optimiser,
nloptwrap), on those CSV files, by this script (its ``_three_level_100k`` and
``_crossed_50k`` entries time the large designs of ``benchmarks/lmm_multi_fit.py``; they are
not used here)::

    library(lme4)
    library(jsonlite)
    nested <- read.csv("lme4_multilevel_nested.csv")
    crossed <- read.csv("lme4_multilevel_crossed.csv")
    models <- list(
      nested_intercepts = c("nested", "y ~ x + w + z + (1 | school) + (1 | school:class)"),
      nested_slope = c("nested", "y ~ x + w + z + (1 + x | school:class) + (1 | school)"),
      crossed_intercepts = c("crossed", "y ~ x + (1 | rater) + (1 | item)"),
      crossed_slope = c("crossed", "y ~ x + (1 + x | rater) + (1 | item)"))
    out <- list()
    for (name in names(models)) for (reml in c(FALSE, TRUE)) {
      d <- if (models[[name]][1] == "nested") nested else crossed
      f <- as.formula(models[[name]][2])
      fit <- lmer(f, data = d, REML = reml)
      times <- replicate(20, system.time(lmer(f, data = d, REML = reml))[["elapsed"]])
      vc <- as.data.frame(VarCorr(fit))
      out[[paste0(name, if (reml) "_reml" else "_ml")]] <- list(
        formula = models[[name]][2], data = models[[name]][1], reml = reml,
        fixef = as.list(fixef(fit)), se = as.list(sqrt(diag(as.matrix(vcov(fit))))),
        vcov = unname(as.matrix(vcov(fit))),
        varcorr = list(grp = vc$grp, var1 = ifelse(is.na(vc$var1), "", vc$var1),
                       var2 = ifelse(is.na(vc$var2), "", vc$var2), vcov = vc$vcov,
                       sdcor = vc$sdcor),
        sigma = sigma(fit), loglik = as.numeric(logLik(fit)),
        reml_criterion = if (reml) REMLcrit(fit) else NA,
        theta = unname(getME(fit, "theta")), ngrps = as.list(ngrps(fit)), nobs = nobs(fit),
        singular = isSingular(fit), lme4_median_ms = 1000 * median(times))
    }
    large <- list(  # python benchmarks/lmm_multi_fit.py --write-csv .
      `_three_level_100k` = list("big.csv", y ~ x + w + z + (1 + x | school:class) + (1 | school),
                                 c(FALSE, TRUE)),
      `_crossed_50k` = list("big_crossed.csv", y ~ x + (1 | rater) + (1 | item), FALSE))
    for (key in names(large)) {
      d <- read.csv(large[[key]][[1]])
      f <- large[[key]][[2]]
      b <- list(formula = deparse(f), nobs = nrow(d))
      for (reml in large[[key]][[3]]) {
        kind <- if (reml) "reml" else "ml"
        times <- replicate(3, system.time(lmer(f, data = d, REML = reml))[["elapsed"]])
        fit <- lmer(f, data = d, REML = reml)
        b[[paste0("lme4_median_ms_", kind)]] <- 1000 * median(times)
        b[[paste0("loglik_", kind)]] <- as.numeric(logLik(fit))
        b[[paste0("theta_", kind)]] <- unname(getME(fit, "theta"))
      }
      out[[key]] <- b
    }
    out[["_versions"]] <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")))
    write(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, na = "null"),
          "lme4_multilevel.json")

None of the eight fits is singular. Tolerances (the issue's): log-likelihood 1e-6
relative, fixed effects 1e-4 absolute, variance components 1% relative; our
log-likelihood may only exceed lme4's (its bobyqa stops a little short of the optimum).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recipe_compiler.analysis.design import build_design
from recipe_compiler.analysis.lmm_multi import TermSpec, fit_multi, multi_design
from recipe_compiler.analysis.lmm_multi_result import MultiLMMResult

DATA = Path(__file__).parent / "data"
REFERENCE = json.loads((DATA / "lme4_multilevel.json").read_text())
MODELS = sorted(k for k in REFERENCE if not k.startswith("_"))

# our fixed part (build_design needs one random group; it only selects rows here) and terms
SPECS: dict[str, tuple[str, list[TermSpec]]] = {
    "nested_intercepts": ("y ~ x + w + z + (1 | school)", [(["1"], "school/class")]),
    "nested_slope": ("y ~ x + w + z + (1 | school)",
                     [(["1", "x"], "school:class"), (["1"], "school")]),
    "crossed_intercepts": ("y ~ x + (1 | rater)", [(["1"], "rater"), (["1"], "item")]),
    "crossed_slope": ("y ~ x + (1 | rater)", [(["1", "x"], "rater"), (["1"], "item")]),
}


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return {kind: pd.read_csv(DATA / f"lme4_multilevel_{kind}.csv")
            for kind in ("nested", "crossed")}


@pytest.fixture(scope="module", params=MODELS)
def case(request: pytest.FixtureRequest,
         frames: dict[str, pd.DataFrame]) -> tuple[MultiLMMResult, dict]:
    ref = REFERENCE[request.param]
    formula, specs = SPECS[request.param.rsplit("_", 1)[0]]
    data = frames[ref["data"]]
    fit = fit_multi(multi_design(build_design(formula, data), data, specs), reml=ref["reml"])
    return fit, ref


def test_loglik_and_criterion(case: tuple[MultiLMMResult, dict]) -> None:
    fit, ref = case
    assert fit.converged and not fit.boundary
    assert fit.loglik == pytest.approx(ref["loglik"], rel=1e-6)
    assert fit.loglik >= ref["loglik"] - 1e-9 * abs(ref["loglik"])
    if ref["reml"]:
        assert fit.reml_criterion == pytest.approx(ref["reml_criterion"], rel=1e-6)


def test_fixed_effects_and_their_covariance(case: tuple[MultiLMMResult, dict]) -> None:
    fit, ref = case
    assert list(fit.fixef.index) == list(ref["fixef"])
    np.testing.assert_allclose(fit.fixef.to_numpy(), list(ref["fixef"].values()), atol=1e-4)
    np.testing.assert_allclose(fit.se.to_numpy(), list(ref["se"].values()), rtol=1e-3)
    np.testing.assert_allclose(fit.vcov.to_numpy(), ref["vcov"], rtol=2e-3, atol=1e-7)


def test_variance_components(case: tuple[MultiLMMResult, dict]) -> None:
    fit, ref = case
    vc, want = fit.varcorr, ref["varcorr"]
    assert list(vc["grp"]) == want["grp"]
    assert list(vc["var1"].fillna("")) == want["var1"]
    assert list(vc["var2"].fillna("")) == want["var2"]
    np.testing.assert_allclose(vc["vcov"], want["vcov"], rtol=0.01)
    np.testing.assert_allclose(vc["sdcor"], want["sdcor"], rtol=0.01)
    assert fit.sigma == pytest.approx(ref["sigma"], rel=0.01)
    np.testing.assert_allclose(fit.theta, ref["theta"], rtol=0.01)


def test_groups_and_observations(case: tuple[MultiLMMResult, dict]) -> None:
    fit, ref = case
    assert fit.ngroups.to_dict() == ref["ngrps"]
    assert fit.nobs == ref["nobs"]
