"""The two-level LMM fitter: profiled deviance, estimates, boundary fits and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import optimize

from recipe_compiler.analysis import lmm, lmm_core
from recipe_compiler.analysis.design import Design
from recipe_compiler.analysis.lmm import LMMResult, fit_design, fit_lmm
from recipe_compiler.errors import DataError


def make_design(y: np.ndarray, X: np.ndarray, Z: np.ndarray, groups: np.ndarray, *,
                x_names: tuple[str, ...] | None = None,
                z_names: tuple[str, ...] | None = None) -> Design:
    """A Design from plain arrays (cluster codes 0..G-1 given by ``groups``)."""
    x_names = x_names or ("(Intercept)", *(f"x{j}" for j in range(1, X.shape[1])))
    z_names = z_names or x_names[: Z.shape[1]]
    return Design(y=y, X=X, x_names=x_names, Z=Z, z_names=z_names, groups=groups,
                  group_labels=np.arange(groups.max() + 1), outcome="y", cluster="g",
                  rows=pd.RangeIndex(len(y)), n_dropped=0)


def simulate(seed: int, *, n_groups: int = 300, beta: tuple[float, ...] = (1.0, 0.5, -0.3),
             psi: tuple[tuple[float, ...], ...] = ((1.0, 0.3), (0.3, 0.5)),
             sigma2: float = 1.0) -> Design:
    """Random effects on the first ``len(psi)`` columns of ``X = (1, x1, x2)``; sizes 5-15.

    ``x2`` is a level-2 covariate unless it has a random slope (``len(psi) == 3``).
    """
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), rng.integers(5, 16, n_groups))
    n = len(g)
    x2 = rng.normal(size=n) if len(psi) == 3 else rng.normal(size=n_groups)[g]
    X = np.column_stack([np.ones(n), rng.normal(size=n), x2])
    q = len(psi)
    b = rng.multivariate_normal(np.zeros(q), np.array(psi), size=n_groups)
    y = X @ np.array(beta) + (X[:, :q] * b[g]).sum(axis=1) + rng.normal(0, np.sqrt(sigma2), n)
    return make_design(y, X, X[:, :q].copy(), g)


def dense_loglik(design: Design, fit: LMMResult) -> float:
    """The ML log-likelihood or REML criterion at the estimates, from dense V_c."""
    total, info = 0.0, np.zeros((design.X.shape[1],) * 2)
    for c in range(design.n_groups):
        rows = design.groups == c
        Z, X = design.Z[rows], design.X[rows]
        V = Z @ fit.cov_re.to_numpy() @ Z.T + fit.sigma2 * np.eye(rows.sum())
        e = design.y[rows] - X @ fit.fixef.to_numpy()
        total += np.linalg.slogdet(V)[1] + e @ np.linalg.solve(V, e)
        info += X.T @ np.linalg.solve(V, X)
    n, p = design.X.shape
    if fit.reml:
        return -0.5 * (total + np.linalg.slogdet(info)[1] + (n - p) * np.log(2 * np.pi))
    return -0.5 * (total + n * np.log(2 * np.pi))


# ----------------------------------------------------------------------------- the deviance


@pytest.mark.parametrize("reml", [False, True])
def test_analytic_gradient_matches_finite_differences(reml: bool) -> None:
    design = simulate(1, n_groups=40, psi=((1.0, 0.3, 0.1), (0.3, 0.5, 0.0), (0.1, 0.0, 0.4)))
    cp = lmm._cross_products(design)
    theta = np.array([0.8, 0.2, -0.1, 0.5, 0.05, 0.3])
    numeric = optimize.approx_fprime(theta, lambda t: lmm._profile(t, cp, reml).deviance, 1e-6)
    np.testing.assert_allclose(lmm._profile(theta, cp, reml).gradient, numeric, rtol=1e-4,
                               atol=1e-3)


@pytest.mark.parametrize("reml", [False, True])
def test_loglik_equals_dense_likelihood_at_the_estimates(reml: bool) -> None:
    design = simulate(2, n_groups=30)
    fit = fit_design(design, reml=reml)
    assert fit.loglik == pytest.approx(dense_loglik(design, fit), abs=1e-8)


def test_random_effects_are_the_conditional_modes() -> None:
    design = simulate(3, n_groups=25)
    fit = fit_design(design)
    psi = fit.cov_re.to_numpy()
    for c in (0, 7, 24):
        rows = design.groups == c
        Z = design.Z[rows]
        V = Z @ psi @ Z.T + fit.sigma2 * np.eye(rows.sum())
        blup = psi @ Z.T @ np.linalg.solve(V, design.y[rows] - design.X[rows] @ fit.fixef)
        np.testing.assert_allclose(fit.random_effects.loc[c].to_numpy(), blup, rtol=1e-9,
                                   atol=1e-12)


def test_row_order_does_not_change_the_fit() -> None:
    design = simulate(15, n_groups=30)
    perm = np.random.default_rng(15).permutation(len(design.y))
    shuffled = make_design(design.y[perm], design.X[perm], design.Z[perm], design.groups[perm])
    a, b = fit_design(design), fit_design(shuffled)
    assert b.loglik == pytest.approx(a.loglik, abs=1e-9)
    np.testing.assert_allclose(b.fixef, a.fixef, rtol=1e-7)
    np.testing.assert_allclose(b.random_effects, a.random_effects, atol=1e-6)


# ----------------------------------------------------------------------------- cross-checks


def test_random_intercept_matches_statsmodels_mixedlm() -> None:
    design = simulate(4, n_groups=80, psi=((0.8,),))
    ours = fit_design(design, reml=False)
    sm_fit = sm.MixedLM(design.y, design.X, groups=design.groups,
                        exog_re=design.Z).fit(reml=False, method=["powell", "lbfgs"])
    assert ours.loglik == pytest.approx(sm_fit.llf, abs=1e-4)
    assert ours.loglik >= sm_fit.llf - 1e-8
    np.testing.assert_allclose(ours.fixef, sm_fit.fe_params, rtol=1e-4)
    np.testing.assert_allclose(ours.se, sm_fit.bse_fe, rtol=1e-3)
    assert ours.sigma2 == pytest.approx(sm_fit.scale, rel=1e-4)
    assert ours.cov_re.iloc[0, 0] == pytest.approx(np.asarray(sm_fit.cov_re)[0, 0], rel=1e-3)


def test_random_slope_reml_matches_statsmodels_mixedlm() -> None:
    design = simulate(5, n_groups=80)
    ours = fit_design(design, reml=True)
    sm_fit = sm.MixedLM(design.y, design.X, groups=design.groups,
                        exog_re=design.Z).fit(reml=True, method=["powell", "lbfgs"])
    np.testing.assert_allclose(ours.fixef, sm_fit.fe_params, rtol=1e-4)
    np.testing.assert_allclose(ours.cov_re, sm_fit.cov_re, rtol=2e-3, atol=1e-4)
    assert ours.sigma2 == pytest.approx(sm_fit.scale, rel=1e-4)


def test_simulation_recovers_truth_and_standard_errors_are_calibrated() -> None:
    """100 seeded replications of a random-slope model (truth in :func:`simulate`).

    Tolerances are 4 Monte-Carlo standard errors of the mean (SDs from 200
    replications: fixed effects 0.06, 0.043, 0.056; tau00 0.09, tau01 0.05,
    tau11 0.052; sigma2 0.028); ML variances carry an O(1/G) downward bias,
    well inside them.
    """
    reps = 100
    est = np.array([np.r_[f.fixef, f.cov_re.to_numpy()[[0, 1, 1], [0, 0, 1]], f.sigma2, f.se]
                    for f in (fit_design(simulate(seed), reml=False) for seed in range(reps))])
    truth = np.array([1.0, 0.5, -0.3, 1.0, 0.3, 0.5, 1.0])
    mc_sd = np.array([0.06, 0.043, 0.056, 0.09, 0.05, 0.052, 0.028])
    np.testing.assert_array_less(np.abs(est[:, :7].mean(axis=0) - truth), 4 * mc_sd / np.sqrt(reps))
    # the model-based standard errors match the spread of the estimates
    np.testing.assert_allclose(est[:, 7:].mean(axis=0), est[:, :3].std(axis=0), rtol=0.2)


# ----------------------------------------------------------------------------- optimiser


@pytest.mark.parametrize("start", [3.0, 1.0, 0.1, 0.01])
def test_optimum_does_not_depend_on_the_start(monkeypatch: pytest.MonkeyPatch,
                                              start: float) -> None:
    """Some starts stop at spurious optima of the Cholesky parametrisation (a zero
    diagonal blocking a sign change, a zero column at a saddle); the restarts
    must reach the same optimum from every start."""
    design = simulate(4, n_groups=60, psi=((1.0, -0.2), (-0.2, 0.05)))
    reference = fit_design(design, reml=False)
    monkeypatch.setattr(lmm_core, "START", start)
    assert fit_design(design, reml=False).loglik == pytest.approx(reference.loglik, abs=1e-6)


def test_without_restarts_the_default_start_stops_early(monkeypatch: pytest.MonkeyPatch) -> None:
    """Guards that the data above do exercise the restarts."""
    design = simulate(4, n_groups=60, psi=((1.0, -0.2), (-0.2, 0.05)))
    best = fit_design(design, reml=False).loglik
    monkeypatch.setattr(lmm_core, "MAX_RESTARTS", 0)
    assert fit_design(design, reml=False).loglik < best - 1.0


def _escape(res: optimize.OptimizeResult, cp: object) -> np.ndarray | None:
    return lmm_core._escape_point(res, cp, False, lmm._profile)


def _minimise(theta: np.ndarray, cp: object) -> optimize.OptimizeResult:
    return lmm_core._minimise(theta, cp, False, lmm._profile)


def test_escape_point_flips_a_column_blocked_by_its_sign() -> None:
    cp = lmm._cross_products(simulate(7, n_groups=60))
    best = lmm_core.optimise(cp, False, lmm._profile)
    # Lambda_00 = 0 with Lambda_10 of the sign that makes d deviance / d Lambda_00 > 0
    for sign in (1.0, -1.0):
        theta = np.array([0.0, sign * 0.3, 0.2])
        prof = lmm._profile(theta, cp, False)
        if prof.gradient[0] > 0:
            break
    stuck = optimize.OptimizeResult(x=theta, fun=prof.deviance, jac=prof.gradient)
    restart = _escape(stuck, cp)
    assert restart is not None
    np.testing.assert_array_equal(restart, [0.0, -theta[1], 0.2])
    assert lmm._profile(restart, cp, False).gradient[0] < 0
    assert _minimise(restart, cp).fun == pytest.approx(best.fun, abs=1e-6)


def test_escape_point_leaves_a_saddle_along_a_negative_curvature() -> None:
    cp = lmm._cross_products(simulate(7, n_groups=60))
    best = lmm_core.optimise(cp, False, lmm._profile)
    # the slope column of Lambda at 0: a stationary point in theta, not an optimum
    stuck = _minimise(np.array([0.5, 0.0, 0.0]), cp)
    assert stuck.x[2] == 0.0 and stuck.fun > best.fun + 1.0
    restart = _escape(stuck, cp)
    assert restart is not None
    assert _minimise(restart, cp).fun == pytest.approx(best.fun, abs=1e-6)
    assert _escape(best, cp) is None


# ----------------------------------------------------------------------------- boundary fits


def test_zero_between_cluster_variance_gives_boundary_fit() -> None:
    rng = np.random.default_rng(8)
    g = np.repeat(np.arange(30), 6)
    noise = rng.normal(size=g.size)
    noise -= np.bincount(g, noise)[g] / 6  # cluster means exactly 0: ML variance is 0
    x = rng.normal(size=g.size)
    X = np.column_stack([np.ones(g.size), x])
    fit = fit_design(make_design(2.0 + x + noise, X, X[:, :1].copy(), g), reml=False)
    assert fit.boundary and fit.converged
    assert fit.theta[0] == 0.0
    assert fit.variance_components()["ICC|g"] == 0.0
    assert np.isfinite(fit.se).all() and np.isfinite(fit.loglik)
    assert (fit.random_effects.to_numpy() == 0).all()


def test_zero_slope_variance_gives_boundary_fit() -> None:
    rng = np.random.default_rng(9)
    g = np.repeat(np.arange(40), 8)
    x = rng.normal(size=g.size)
    x -= np.bincount(g, x)[g] / 8  # centred within clusters: no between-cluster slope
    e = rng.normal(size=g.size)
    # residuals orthogonal to (1, x) within each cluster: every cluster has slope 0.5
    for c in range(40):
        rows = g == c
        A = np.column_stack([np.ones(8), x[rows]])
        e[rows] -= A @ np.linalg.lstsq(A, e[rows], rcond=None)[0]
    y = 1.0 + 0.5 * x + rng.normal(size=40)[g] + e
    X = np.column_stack([np.ones(g.size), x])
    fit = fit_design(make_design(y, X, X.copy(), g))
    assert fit.boundary and fit.converged
    assert fit.cov_re.iloc[1, 1] == pytest.approx(0.0, abs=1e-8)
    assert np.isfinite(fit.varcorr["vcov"]).all()
    assert fit.fixef["x1"] == pytest.approx(0.5, abs=1e-8)


# ----------------------------------------------------------------------------- result


@pytest.fixture(scope="module")
def slope_fit() -> LMMResult:
    design = simulate(10, n_groups=50, psi=((1.0, 0.2, 0.1), (0.2, 0.5, 0.0), (0.1, 0.0, 0.3)))
    names = ("(Intercept)", "ses", "iqv")
    return fit_design(Design(**{**design.__dict__, "x_names": names, "z_names": names,
                                "Z": design.X.copy(), "cluster": "sch"}), reml=False)


def test_varcorr_is_laid_out_as_lme4s_as_data_frame(slope_fit: LMMResult) -> None:
    vc = slope_fit.varcorr
    assert list(vc.columns) == ["grp", "var1", "var2", "vcov", "sdcor"]
    assert list(vc["grp"]) == ["sch"] * 6 + ["Residual"]
    assert list(vc["var1"]) == ["(Intercept)", "ses", "iqv", "(Intercept)", "(Intercept)",
                                "ses", None]
    assert list(vc["var2"]) == [None, None, None, "ses", "iqv", "iqv", None]
    cov = slope_fit.cov_re
    assert vc["vcov"].iloc[4] == cov.loc["(Intercept)", "iqv"]
    assert vc["sdcor"].iloc[4] == pytest.approx(
        cov.loc["(Intercept)", "iqv"] / np.sqrt(cov.iloc[0, 0] * cov.iloc[2, 2]))
    assert vc["vcov"].iloc[-1] == slope_fit.sigma2


def test_variance_components_use_mitml_names_and_order(slope_fit: LMMResult) -> None:
    """Order of mitml 0.4-4 ``testEstimates(extra.pars = TRUE)`` as in the book's
    section 7.10.7 reference: variances, covariances, residual, ICC."""
    vc = slope_fit.variance_components()
    assert list(vc.index) == ["Intercept~~Intercept|sch", "ses~~ses|sch", "iqv~~iqv|sch",
                              "Intercept~~ses|sch", "Intercept~~iqv|sch", "ses~~iqv|sch",
                              "Residual~~Residual", "ICC|sch"]
    tau00 = slope_fit.cov_re.iloc[0, 0]
    assert vc["ICC|sch"] == pytest.approx(tau00 / (tau00 + slope_fit.sigma2))
    assert vc["ses~~iqv|sch"] == slope_fit.cov_re.loc["ses", "iqv"]


def test_variance_components_without_random_intercept_have_no_icc() -> None:
    design = simulate(11, n_groups=40)
    fit = fit_design(make_design(design.y, design.X, design.X[:, 1:2].copy(), design.groups,
                                 z_names=("x1",)))
    assert list(fit.variance_components().index) == ["x1~~x1|g", "Residual~~Residual"]


def test_df_complete_is_nobs_minus_fixed_theta_and_sigma(slope_fit: LMMResult) -> None:
    # lme4:::df.residual.merMod = nobs - (length(beta) + length(theta) + 1)
    assert slope_fit.df_complete == slope_fit.nobs - (3 + 6 + 1)


def test_result_fields_are_labelled(slope_fit: LMMResult) -> None:
    assert list(slope_fit.fixef.index) == list(slope_fit.x_names)
    assert list(slope_fit.se.index) == list(slope_fit.x_names)
    assert list(slope_fit.vcov.columns) == list(slope_fit.x_names)
    np.testing.assert_allclose(np.sqrt(np.diag(slope_fit.vcov)), slope_fit.se)
    assert slope_fit.random_effects.shape == (50, 3)
    assert slope_fit.random_effects.index.name == "sch"
    assert slope_fit.theta.shape == (6,)
    assert slope_fit.ngroups == 50 and slope_fit.converged


def test_summary_shows_random_and_fixed_effects(slope_fit: LMMResult) -> None:
    text = str(slope_fit)
    assert text == slope_fit.summary()
    for part in ("maximum likelihood", "Random effects:", "Residual", "Fixed effects:",
                 "Std. Error", "Number of obs", "corr((Intercept), ses)"):
        assert part in text


# ----------------------------------------------------------------------------- formula front end


def test_fit_lmm_equals_fit_design_on_the_same_matrices() -> None:
    design = simulate(12, n_groups=40)
    frame = pd.DataFrame({"y": design.y, "x": design.X[:, 1], "w": design.X[:, 2],
                          "g": design.groups})
    frame.loc[[3, 50], "x"] = np.nan
    by_formula = fit_lmm("y ~ x + w + (1 + x | g)", frame, reml=True)
    keep = frame["x"].notna().to_numpy()
    X = design.X[keep]
    by_hand = fit_design(make_design(design.y[keep], X, X[:, :2].copy(), design.groups[keep]),
                         reml=True)
    assert by_formula.n_dropped == 2 and by_formula.nobs == keep.sum()
    np.testing.assert_allclose(by_formula.fixef.to_numpy(), by_hand.fixef.to_numpy())
    assert by_formula.loglik == pytest.approx(by_hand.loglik)
    assert list(by_formula.z_names) == ["(Intercept)", "x"]


def test_fit_lmm_cluster_mean_uses_values_before_listwise_deletion() -> None:
    frame = pd.DataFrame({"g": np.repeat(np.arange(6), 5), "x": np.arange(30.0) % 7})
    frame["y"] = frame["x"] + np.random.default_rng(13).normal(size=30)
    frame.loc[[0, 7], "y"] = np.nan
    fit = fit_lmm("y ~ cm(x) + (1 | g)", frame)
    full_means = frame.groupby("g")["x"].transform("mean")
    by_hand = fit_design(make_design(
        frame["y"].dropna().to_numpy(),
        np.column_stack([np.ones(28), full_means[frame["y"].notna()]]),
        np.ones((28, 1)), frame["g"][frame["y"].notna()].to_numpy()))
    np.testing.assert_allclose(fit.fixef.to_numpy(), by_hand.fixef.to_numpy())


# ----------------------------------------------------------------------------- bad input


def _valid() -> Design:
    return simulate(14, n_groups=10)


@pytest.mark.parametrize(("change", "message"), [
    ({"groups": np.zeros(1, dtype=int)}, "design arrays disagree"),
    ({"X": np.ones(3)}, "design arrays disagree"),
    ({"x_names": ("a",)}, "must name every column"),
    ({"y": np.array([])}, "the design is empty"),
])
def test_malformed_design_raises_data_error(change: dict[str, object], message: str) -> None:
    with pytest.raises(DataError, match=message):
        fit_design(Design(**{**_valid().__dict__, **change}))


@pytest.mark.parametrize("field", ["y", "X", "Z"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_raise_data_error(field: str, bad: float) -> None:
    design = _valid()
    arr = getattr(design, field).copy()
    arr.flat[5] = bad
    with pytest.raises(DataError, match="NaN or infinite"):
        fit_design(Design(**{**design.__dict__, field: arr}))


def test_one_cluster_raises_data_error() -> None:
    d = _valid()
    one = np.zeros_like(d.groups)
    with pytest.raises(DataError, match=r"has 1 cluster; .* at least 2 clusters"):
        fit_design(Design(**{**d.__dict__, "groups": one, "group_labels": np.array([0])}))


def test_more_random_effects_than_observations_raises_data_error() -> None:
    rng = np.random.default_rng(15)
    g = np.repeat(np.arange(20), 2)
    X = np.column_stack([np.ones(40), rng.normal(size=40)])
    with pytest.raises(DataError, match=r"number of observations \(40\) <= number of random"):
        fit_design(make_design(rng.normal(size=40), X, X.copy(), g))


def test_rank_deficient_fixed_design_names_the_aliased_column() -> None:
    d = _valid()
    X = np.column_stack([d.X, 2 * d.X[:, 1]])
    with pytest.raises(DataError, match=r"X is rank deficient .* x(1|3)"):
        fit_design(Design(**{**d.__dict__, "X": X, "x_names": (*d.x_names, "x3")}))


def test_rank_deficient_random_design_raises_data_error() -> None:
    d = _valid()
    Z = np.column_stack([d.Z, d.Z[:, 0] + d.Z[:, 1]])
    with pytest.raises(DataError, match="Z is rank deficient"):
        fit_design(Design(**{**d.__dict__, "Z": Z, "z_names": ("a", "b", "c")}))


@pytest.mark.parametrize(("field", "names", "message"), [
    ("X", "x_names", "no column; include at least an intercept"),
    ("Z", "z_names", "needs at least a random intercept"),
])
def test_empty_design_matrices_raise_data_error(field: str, names: str, message: str) -> None:
    d = _valid()
    with pytest.raises(DataError, match=message):
        fit_design(Design(**{**d.__dict__, field: np.empty((len(d.y), 0)), names: ()}))


def test_all_zero_column_raises_data_error() -> None:
    d = _valid()
    Z = d.Z.copy()
    Z[:, 1] = 0.0
    with pytest.raises(DataError, match="all-zero columns: x1"):
        fit_design(Design(**{**d.__dict__, "Z": Z}))


def test_cluster_codes_must_cover_every_cluster() -> None:
    d = _valid()
    with pytest.raises(DataError, match=r"cluster codes must be 0\.\.10"):
        fit_design(Design(**{**d.__dict__, "group_labels": np.arange(11)}))


def test_no_more_observations_than_fixed_effects_raises_data_error() -> None:
    d = _valid()
    X = np.random.default_rng(16).normal(size=(len(d.y), len(d.y)))
    names = tuple(f"x{j}" for j in range(len(d.y)))
    with pytest.raises(DataError, match=r"observations for .* fixed effects"):
        fit_design(Design(**{**d.__dict__, "X": X, "x_names": names}))
