"""The logistic mixed-model fitter: Laplace deviance, limits, equivariance, bad input and a
known-truth multiple-imputation simulation."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import optimize

import recipe_compiler as rc
from recipe_compiler.analysis import glmm, laplace
from recipe_compiler.analysis.design import Design
from recipe_compiler.analysis.glmm import GLMMConvergenceWarning, GLMMResult, fit_glmm_design
from recipe_compiler.analysis.lmm import fit_lmm
from recipe_compiler.analysis.mifit import MIFit
from recipe_compiler.errors import DataError, OptionError


def simulate(seed: int, *, n_groups: int = 150, beta: tuple[float, ...] = (-0.3, 0.8, -0.5),
             psi: tuple[tuple[float, ...], ...] = ((1.0, 0.2), (0.2, 0.3))) -> Design:
    """Binary outcome, ``X = (1, x1, x2)``, random effects on its first ``len(psi)`` columns."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), rng.integers(5, 16, n_groups))
    n = len(g)
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.normal(size=n)])
    q = len(psi)
    b = rng.multivariate_normal(np.zeros(q), np.array(psi), size=n_groups) if q else None
    eta = X @ np.array(beta) + ((X[:, :q] * b[g]).sum(axis=1) if b is not None else 0.0)
    y = rng.binomial(1, 1.0 / (1.0 + np.exp(-eta))).astype(float)
    Z = X[:, :max(q, 1)].copy()
    return Design(y=y, X=X, x_names=("(Intercept)", "x1", "x2"), Z=Z,
                  z_names=("(Intercept)", "x1", "x2")[:Z.shape[1]], groups=g,
                  group_labels=np.arange(n_groups), outcome="y", cluster="g",
                  rows=pd.RangeIndex(n), n_dropped=0)


def frame(design: Design) -> pd.DataFrame:
    return pd.DataFrame({"y": design.y, "x1": design.X[:, 1], "x2": design.X[:, 2],
                         "g": design.groups})


def phi_of(cl: laplace.Clusters, theta: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """``(theta_scaled, beta_working)`` from lme4's (unscaled) ``theta`` and ``beta``."""
    return np.concatenate([(cl.scale[:, None] * cl.lam(theta))[cl.tri],
                           np.linalg.solve(cl.x_map, beta)])


def dense_laplace(design: Design, theta: np.ndarray, beta: np.ndarray) -> float:
    """The Laplace deviance cluster by cluster: modes by BFGS, ``log|H_c|`` from dense H_c."""
    q = design.Z.shape[1]
    lam = np.zeros((q, q))
    lam[np.triu_indices(q)[::-1]] = theta
    total = 0.0
    for c in range(design.n_groups):
        rows = design.groups == c
        y, m, off = design.y[rows], design.Z[rows] @ lam, design.X[rows] @ beta

        def f(u: np.ndarray, y: np.ndarray = y, m: np.ndarray = m,
              off: np.ndarray = off) -> float:
            eta = off + m @ u
            return float(2 * np.sum(np.logaddexp(0, eta) - y * eta) + u @ u)

        u = optimize.minimize(f, np.zeros(q), method="BFGS", options={"gtol": 1e-10}).x
        mu = 1 / (1 + np.exp(-(off + m @ u)))
        h = np.eye(q) + m.T @ ((mu * (1 - mu))[:, None] * m)
        total += f(u) + np.linalg.slogdet(h)[1]
    return total


# ----------------------------------------------------------------------------- the deviance


def test_laplace_deviance_equals_dense_computation() -> None:
    design = simulate(1, n_groups=40)
    cl = laplace.clusters(design)
    theta, beta = np.array([0.9, 0.15, 0.4]), np.array([-0.2, 0.7, -0.4])
    mode = laplace.laplace(phi_of(cl, theta, beta), cl, np.zeros((40, 2)))
    assert mode.converged
    np.testing.assert_allclose(mode.deviance, dense_laplace(design, theta, beta), rtol=1e-9)


def test_gradient_matches_finite_differences() -> None:
    cl = laplace.clusters(simulate(2, n_groups=60))
    rng = np.random.default_rng(0)
    phi = np.concatenate([rng.uniform(0.2, 1.0, cl.ntheta), rng.normal(0, 0.5, cl.p)])
    mode = laplace.laplace(phi, cl, np.zeros((60, 2)))
    numeric = []
    for k in range(len(phi)):
        step = np.zeros_like(phi)
        step[k] = 1e-5
        up, down = (laplace.laplace(phi + s, cl, mode.u).deviance for s in (step, -step))
        numeric.append((up - down) / 2e-5)
    np.testing.assert_allclose(mode.gradient, numeric, rtol=1e-6, atol=1e-6)


def test_zero_variance_is_logistic_regression() -> None:
    """At ``theta = 0`` the modes are 0, ``H_c = I``: the deviance is the GLM's."""
    design = simulate(3)
    cl = laplace.clusters(design)
    beta = np.array([-0.1, 0.5, -0.2])
    mode = laplace.laplace(phi_of(cl, np.zeros(3), beta), cl, np.zeros((150, 2)))
    logit = sm.Logit(design.y, design.X)
    np.testing.assert_allclose(mode.deviance, -2 * logit.loglike(beta), rtol=1e-12)
    # the gradient is in working units, beta = x_map beta_working
    np.testing.assert_allclose(mode.gradient[3:], cl.x_map.T @ (-2 * logit.score(beta)),
                               rtol=1e-9)


def test_boundary_fit_equals_statsmodels_logit() -> None:
    """No cluster effect in the data and the variance estimated at 0: an ordinary logistic
    regression, estimates, log-likelihood and standard errors alike."""
    design = simulate(12, psi=())
    fit = fit_glmm_design(design)
    assert isinstance(fit, GLMMResult)
    assert fit.boundary and fit.theta[0] == 0.0
    ref = sm.Logit(design.y, design.X).fit(disp=0, tol=1e-12)
    np.testing.assert_allclose(fit.fixef, ref.params, rtol=1e-5)
    np.testing.assert_allclose(fit.loglik, ref.llf, rtol=1e-10)
    np.testing.assert_allclose(fit.se, ref.bse, rtol=1e-3)
    np.testing.assert_allclose(fit.random_effects, 0.0, atol=1e-12)


def test_estimates_recover_the_truth() -> None:
    """One large seeded data set: each estimate within 3.5 of its standard errors of the
    truth (the sampling error of one data set is about one SE; 3.5 SE fails by chance
    with probability 5e-4 per coefficient)."""
    fit = fit_glmm_design(simulate(4, n_groups=600))
    assert isinstance(fit, GLMMResult) and fit.converged
    assert (np.abs(fit.fixef - [-0.3, 0.8, -0.5]) < 3.5 * fit.se).all()
    # the variances have SEs of roughly 0.12 (intercept) and 0.07 (slope) at this size
    np.testing.assert_allclose(np.diag(fit.cov_re), [1.0, 0.3], atol=0.3)


def test_equivariant_under_rescaling_and_reordering() -> None:
    design = simulate(5)
    fit = fit_glmm_design(design)
    order = np.random.default_rng(1).permutation(len(design.y))
    scaled = Design(y=design.y[order], X=design.X[order] * [1.0, 10.0, 1.0],
                    x_names=design.x_names, Z=design.Z[order] * [1.0, 10.0],
                    z_names=design.z_names, groups=design.groups[order],
                    group_labels=design.group_labels, outcome="y", cluster="g",
                    rows=design.rows[order], n_dropped=0)
    other = fit_glmm_design(scaled)
    assert isinstance(fit, GLMMResult) and isinstance(other, GLMMResult)
    np.testing.assert_allclose(other.loglik, fit.loglik, rtol=1e-9)
    np.testing.assert_allclose(other.fixef * [1, 10, 1], fit.fixef, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(other.se * [1, 10, 1], fit.se, rtol=1e-4)
    np.testing.assert_allclose(other.cov_re.iloc[1, 1] * 100, fit.cov_re.iloc[1, 1], rtol=1e-4)
    np.testing.assert_allclose(other.random_effects["x1"] * 10, fit.random_effects["x1"],
                               rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize(("shift", "scale"), [(3e6, 1e6), (1e8, 1.0), (0.0, 1e-6)])
def test_a_badly_scaled_predictor_fits_as_its_well_scaled_image(shift: float,
                                                                scale: float) -> None:
    """``x2 -> d + k x2``: ``beta_2 / k``, the intercept less ``d beta_2 / k``, ``Var(beta)
    -> M Var(beta) M'``; the log-likelihood, ``theta`` and the random effects unchanged.

    ``X`` is fitted in the working units of :mod:`.lmm_units` (centred, powers of two), so
    ``1e8 + x2`` is not taken for a copy of the intercept (the rank check sees the centred
    ``X``). The estimates agree to rounding and the Newton polish (observed: 3e-12
    relative); the covariance comes from a finite-difference Hessian whose steps differ
    with the working units of the two fits, so it agrees to the differencing error
    (observed: 1.1e-6 on the correlation scale, 5e-7 on the standard errors).
    """
    design = simulate(21)
    far, near = design.X.copy(), design.X.copy()
    far[:, 2] = shift + scale * design.X[:, 2]
    near[:, 2] = (far[:, 2] - shift) / scale  # the well-scaled data, to one rounding
    fit, ref = (fit_glmm_design(Design(**{**design.__dict__, "X": x})) for x in (far, near))
    assert isinstance(fit, GLMMResult) and isinstance(ref, GLMMResult)
    m = np.diag([1.0, 1.0, 1.0 / scale])
    m[0, 2] = -shift / scale
    np.testing.assert_allclose(fit.fixef, m @ ref.fixef, rtol=1e-8)
    np.testing.assert_allclose(fit.theta, ref.theta, rtol=1e-8)
    np.testing.assert_allclose(fit.random_effects, ref.random_effects, rtol=1e-7, atol=1e-9)
    assert fit.loglik == pytest.approx(ref.loglik, abs=1e-9)
    vcov = m @ ref.vcov.to_numpy() @ m.T
    se = np.sqrt(np.diag(vcov))
    np.testing.assert_allclose(fit.vcov / np.outer(se, se), vcov / np.outer(se, se), atol=1e-5)
    assert fit.converged and fit.vcov_method == ref.vcov_method == "hessian"


def test_result_layout_and_pooling() -> None:
    design = simulate(6)
    fit = fit_glmm_design(design)
    assert isinstance(fit, GLMMResult)
    assert fit.df_complete == len(design.y) - 3 - 3
    assert list(fit.variance_components().index) == [
        "Intercept~~Intercept|g", "x1~~x1|g", "Intercept~~x1|g"]
    assert fit.random_effects.shape == (150, 2)
    assert "Generalized linear mixed model" in fit.summary()
    pooled = MIFit("y ~ x1 + x2 + (1 + x1 | g)", (fit, fit)).pool()
    np.testing.assert_allclose(pooled["estimate"], fit.fixef)
    np.testing.assert_allclose(pooled["std_error"], fit.se)


def test_gaussian_family_is_the_ml_linear_mixed_model() -> None:
    rng = np.random.default_rng(7)
    d = pd.DataFrame({"g": np.repeat(np.arange(30), 8), "x": rng.normal(size=240)})
    d["y"] = d["x"] + rng.normal(size=30)[d["g"]] + rng.normal(size=240)
    ours = rc.fit_glmm("y ~ x + (1 | g)", d, family="gaussian")
    ref = fit_lmm("y ~ x + (1 | g)", d, reml=False)
    assert not ours.reml
    np.testing.assert_allclose(ours.fixef, ref.fixef)
    np.testing.assert_allclose(ours.loglik, ref.loglik)


# ----------------------------------------------------------------------------- problems


def test_unknown_family_lists_the_valid_ones() -> None:
    with pytest.raises(OptionError, match=r"family='poisson'.*'binomial', 'gaussian'"):
        rc.fit_glmm("y ~ x1 + (1 | g)", frame(simulate(8)), family="poisson")


@pytest.mark.parametrize(("values", "match"), [
    (lambda d: d["y"] * 2, "outcome 'y' has values other than 0 and 1 \\(2\\)"),
    (lambda d: d["y"].map({0.0: "no", 1.0: "yes"}), "outcome 'y' has dtype"),
    (lambda d: d["y"] * 0, "outcome 'y' is constant"),
])
def test_outcome_must_be_binary(values: Callable[[pd.DataFrame], pd.Series],
                                match: str) -> None:
    d = frame(simulate(9))
    d["y"] = values(d)
    with pytest.raises(DataError, match=match):
        rc.fit_glmm("y ~ x1 + (1 | g)", d)


def test_boolean_outcome_is_accepted() -> None:
    d = frame(simulate(9))
    as_float = rc.fit_glmm("y ~ x1 + (1 | g)", d)
    d["y"] = d["y"].astype(bool)
    np.testing.assert_allclose(rc.fit_glmm("y ~ x1 + (1 | g)", d).fixef, as_float.fixef)


def test_separation_is_reported_with_the_term() -> None:
    d = frame(simulate(10))
    d["y"] = (d["x2"] > 0).astype(float)
    with pytest.raises(DataError, match=r"separate outcome 'y'.*coefficients: x2"):
        rc.fit_glmm("y ~ x1 + x2 + (1 | g)", d)


def test_non_convergence_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(glmm, "_CONVERGED_GRAD", 0.0)
    with pytest.warns(GLMMConvergenceWarning, match="did not converge"):
        fit = fit_glmm_design(simulate(12))
    assert isinstance(fit, GLMMResult) and not fit.converged


def test_indefinite_hessian_falls_back_to_the_conditional_covariance(
        monkeypatch: pytest.MonkeyPatch) -> None:
    design = simulate(13)
    fit = fit_glmm_design(design)
    assert isinstance(fit, GLMMResult) and fit.vcov_method == "hessian"
    monkeypatch.setattr(glmm, "hessian", lambda objective, phi: -np.eye(len(phi)))
    with pytest.warns(GLMMConvergenceWarning, match="not positive definite"):
        other = fit_glmm_design(design)
    assert isinstance(other, GLMMResult) and other.vcov_method == "conditional"
    cl = laplace.clusters(design)
    mode = laplace.Objective(cl).mode(phi_of(cl, fit.theta, fit.fixef.to_numpy()))
    np.testing.assert_allclose(other.vcov, laplace.conditional_vcov(mode, cl), rtol=1e-4)


# ----------------------------------------------------------------------------- imputation


BETA = np.array([-0.5, 1.0, 0.5])


def simulate_incomplete(seed: int, n_groups: int = 100,
                        size: int = 20) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``y ~ x1 + x2 + (1 | g)`` with ``tau^2 = 1``; ``x1`` (ICC 1/3) missing more often
    where ``y = 1`` and ``x2 = 1`` (MAR, ~32%), the binary ``x2`` MCAR (15%)."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), size)
    n = len(g)
    x1 = rng.normal(0, np.sqrt(0.5), n_groups)[g] + rng.normal(size=n)
    x2 = rng.binomial(1, 0.5, n).astype(float)
    eta = BETA[0] + BETA[1] * x1 + BETA[2] * x2 + rng.normal(size=n_groups)[g]
    y = rng.binomial(1, 1 / (1 + np.exp(-eta))).astype(float)
    full = pd.DataFrame({"g": g, "y": y, "x1": x1, "x2": x2})
    d = full.copy()
    d.loc[rng.uniform(size=n) < 1 / (1 + np.exp(1.5 - y - 0.5 * x2)), "x1"] = np.nan
    d.loc[rng.uniform(size=n) < 0.15, "x2"] = np.nan
    return full, d


def test_multiple_imputation_recovers_the_truth() -> None:
    """20 seeded replications, m = 5: the mean pooled estimate is within 3.5 Monte Carlo
    standard errors (SD over replications / sqrt(20)) of the truth, while complete-case
    analysis, biased under this MAR mechanism, is not (so the check has power). The
    Laplace approximation's own bias at tau^2 = 1 and 20 pupils per cluster is well
    below that Monte Carlo error (benchmarks/glmm_fit.py --truth-reps 200 measures both)."""
    formula = "y ~ x1 + x2 + (1 | g)"
    pooled, complete_case = [], []
    for rep in range(20):
        _, d = simulate_incomplete(100 + rep)
        imp = rc.impute(d, formula, m=5, maxit=5, seed=rep, methods={"x2": "2l.bin"})
        pooled.append(imp.fit(formula, family="binomial").pool()["estimate"].to_numpy())
        complete_case.append(rc.fit_glmm(formula, d).fixef.to_numpy())
    pooled_a, cc_a = np.array(pooled), np.array(complete_case)
    mcse = pooled_a.std(axis=0, ddof=1) / np.sqrt(20)
    assert (np.abs(pooled_a.mean(axis=0) - BETA) < 3.5 * mcse).all()
    cc_mcse = cc_a.std(axis=0, ddof=1) / np.sqrt(20)
    assert np.abs(cc_a.mean(axis=0) - BETA)[[0, 2]].min() > 3.5 * cc_mcse[[0, 2]].max()


def test_imputations_fit_rejects_bad_options() -> None:
    _, d = simulate_incomplete(1, n_groups=30, size=10)
    imp = rc.impute(d, "y ~ x1 + x2 + (1 | g)", m=2, maxit=1, seed=1)
    with pytest.raises(OptionError, match="family='poisson'"):
        imp.fit("y ~ x1 + (1 | g)", family="poisson")
    with pytest.raises(OptionError, match="reml=True is not valid with family='binomial'"):
        imp.fit("y ~ x1 + (1 | g)", family="binomial", reml=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a plain fit: no convergence warning
        fit = imp.fit("y ~ x1 + (1 | g)", family="binomial")
    assert all(isinstance(f, GLMMResult) for f in fit.fits)
    assert list(fit.variance_components().index) == ["Intercept~~Intercept|g"]
