"""2l.norm / 2l.pmm: posterior recovery, imputation validity and robustness.

The chains run ``draw_2l`` call after call as the Gibbs loop does. Tolerances are
derived from Monte-Carlo error and posterior spread, stated at each check; the
tests are seeded, so they are deterministic.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from recipe_compiler.data.grouping import Grouping
from recipe_compiler.errors import SamplerError, SamplerWarning
from recipe_compiler.runtime.samplers.normal_2l import TwoLevelState, draw_2l

BETA = np.array([1.0, 0.5, -0.3])


def simulate(seed: int, n_groups: int = 100, size: int = 20, slope: bool = False,
             omega: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """``y = 1 + 0.5 x1 - 0.3 x2 + u_0 [+ u_1 x1] + e``, x2 at level 2, sigma2 = 1."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), size)
    n = len(groups)
    x1 = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x1, rng.normal(size=n_groups)[groups]])
    Z = np.column_stack([np.ones(n), x1]) if slope else np.ones((n, 1))
    if omega is None:
        omega = np.array([[0.5, 0.1], [0.1, 0.2]]) if slope else np.array([[0.5]])
    u = rng.multivariate_normal(np.zeros(len(omega)), omega, size=n_groups)
    y = X @ BETA + np.einsum("ij,ij->i", Z, u[groups]) + rng.normal(size=n)
    return {"y": y, "X": X, "Z": Z, "groups": groups, "omega": omega}


def run_chain(data: dict[str, np.ndarray], observed: np.ndarray, n_iter: int, seed: int,
              pmm: bool = False) -> tuple[list[np.ndarray], list[TwoLevelState]]:
    rng = np.random.default_rng(seed)
    state = None
    imputations, states = [], []
    n_groups = int(data["groups"].max()) + 1
    for _ in range(n_iter):
        imp, state = draw_2l(data["y"], observed, data["X"], data["Z"], Grouping(data["groups"],
                             n_groups), rng, state, pmm=pmm, name="lpo")
        imputations.append(imp)
        states.append(state)
    return imputations, states


def reml(data: dict[str, np.ndarray], slope: bool) -> tuple[np.ndarray, np.ndarray, float]:
    frame = pd.DataFrame({"y": data["y"], "x1": data["X"][:, 1], "x2": data["X"][:, 2],
                          "g": data["groups"]})
    fit = smf.mixedlm("y ~ x1 + x2", frame, groups="g",
                      re_formula="~x1" if slope else None).fit(reml=True)
    return fit.fe_params.to_numpy(), np.asarray(fit.cov_re), float(fit.scale)


@pytest.mark.parametrize("slope", [False, True], ids=["intercept", "slope"])
def test_posterior_of_a_fully_observed_chain_matches_reml_and_truth(slope: bool) -> None:
    # 1000 draws after 100 burn-in; the block update leaves little autocorrelation
    # (lag-1 < 0.2), so the MC error of a posterior mean is ~0.05 posterior sd. With
    # weak priors the posterior mean sits within O(1/n) of REML for beta and sigma2
    # (allow 0.3 sd); for the variance components the posterior mean exceeds the
    # REML estimate by O(1/G) (allow 0.6 sd). The truth lies within 3.5 sd.
    data = simulate(1, slope=slope)
    _, states = run_chain(data, np.ones(len(data["y"]), dtype=bool), 1100, seed=2)
    kept = states[100:]
    beta = np.array([s.beta for s in kept])
    omega = np.array([s.omega for s in kept])
    sigma2 = np.array([s.sigma2 for s in kept])
    fe, cov_re, scale = reml(data, slope)
    assert np.all(np.abs(beta.mean(0) - fe) < 0.3 * beta.std(0))
    assert abs(sigma2.mean() - scale) < 0.3 * sigma2.std()
    assert np.all(np.abs(omega.mean(0) - cov_re) < 0.6 * omega.std(0))
    assert np.all(np.abs(beta.mean(0) - BETA) < 3.5 * beta.std(0))
    assert np.all(np.abs(omega.mean(0) - data["omega"]) < 3.5 * omega.std(0))
    assert abs(sigma2.mean() - 1) < 3.5 * sigma2.std()
    lag1 = np.corrcoef(beta[:-1, 0], beta[1:, 0])[0, 1]
    assert lag1 < 0.2


def mar_missing(data: dict[str, np.ndarray], seed: int) -> np.ndarray:
    """About 30% of y missing, more often where x1 is high (MAR)."""
    rng = np.random.default_rng(seed)
    x1 = data["X"][:, 1]
    return rng.random(len(x1)) > 1 / (1 + np.exp(-(-1.0 + 1.2 * x1)))


def estimates(y: np.ndarray, data: dict[str, np.ndarray]) -> np.ndarray:
    """Mean of y, OLS slopes of y on x1 and x2, and the ANOVA between-cluster variance."""
    X = data["X"]
    ols = np.linalg.lstsq(X, y, rcond=None)[0]
    means = pd.Series(y).groupby(data["groups"]).mean().to_numpy()
    size = len(y) / len(means)
    within = pd.Series(y).groupby(data["groups"]).var().mean()
    return np.array([y.mean(), ols[1], ols[2], means.var(ddof=1) - within / size])


@pytest.mark.parametrize("pmm", [False, True], ids=["2l.norm", "2l.pmm"])
def test_mar_imputations_recover_full_data_estimates(pmm: bool) -> None:
    # m = 20 imputations (every 10th call after 50 burn-in). The MI estimate minus the
    # full-data estimate has sd about sqrt((1 + 1/m) B); allow 4 of those (+ a small
    # floor for the pmm discreteness). The complete-case mean is far off (> 4 sd here,
    # and more than three times the MI error).
    data = simulate(3)
    observed = mar_missing(data, 4)
    imputations, _ = run_chain(data, observed, 250, seed=5, pmm=pmm)
    rows = []
    for imp in imputations[59::10]:
        if pmm:
            assert np.isin(imp, data["y"][observed]).all()
        completed = data["y"].copy()
        completed[~observed] = imp
        rows.append(estimates(completed, data))
    est = np.array(rows)
    full = estimates(data["y"], data)
    between = est.var(axis=0, ddof=1) * (1 + 1 / len(est))
    assert np.all(np.abs(est.mean(0) - full) < 4 * np.sqrt(between) + 0.01), (est.mean(0), full)
    cc_error = abs(data["y"][observed].mean() - full[0])
    assert cc_error > 4 * np.sqrt(between[0]) and cc_error > 3 * abs(est[:, 0].mean() - full[0])


@pytest.mark.slow
def test_mixed_model_on_2l_pmm_imputations_recovers_the_variance_components() -> None:
    # Random-slope data, 30% MAR y; lmer-type fits (statsmodels MixedLM, REML) on m = 10
    # completed sets vs the same fit on the full data, within 4 sd of ((1 + 1/m) B)
    # plus 0.02 (the MixedLM optimiser tolerance on variance components).
    data = simulate(6, slope=True)
    observed = mar_missing(data, 7)
    imputations, _ = run_chain(data, observed, 150, seed=8, pmm=True)
    fits = []
    for imp in imputations[59::10]:
        completed = dict(data, y=data["y"].copy())
        completed["y"][~observed] = imp
        fe, cov_re, scale = reml(completed, slope=True)
        fits.append(np.concatenate([fe, cov_re.ravel()[[0, 1, 3]], [scale]]))
    est = np.array(fits)
    fe, cov_re, scale = reml(data, slope=True)
    full = np.concatenate([fe, cov_re.ravel()[[0, 1, 3]], [scale]])
    between = est.var(axis=0, ddof=1) * (1 + 1 / len(est))
    assert np.all(np.abs(est.mean(0) - full) < 4 * np.sqrt(between) + 0.02), (est.mean(0), full)


def test_clusters_without_observed_values_and_of_size_one_need_no_recovery() -> None:
    # Five clusters are entirely missing, and three clusters have a single row (one
    # observed, two missing). Nothing is degenerate, so no warning. In an empty
    # cluster the imputed cluster mean minus the fixed part has variance
    # omega + sigma2 / 20 = 0.55 (plus small parameter uncertainty); 5 clusters x 300
    # draws give a relative MC sd of about 0.04-0.08 with autocorrelation; allow 25%.
    data = simulate(9)
    keep = np.ones(len(data["y"]), dtype=bool)
    keep[np.flatnonzero(data["groups"] >= 97)] = False
    keep[np.flatnonzero(data["groups"] == 97)[0]] = True
    keep[np.flatnonzero(data["groups"] == 98)[0]] = True
    keep[np.flatnonzero(data["groups"] == 99)[0]] = True
    data = {k: (v[keep] if k != "omega" else v) for k, v in data.items()}
    observed = mar_missing(data, 10)
    empty = np.isin(data["groups"], [0, 1, 2, 3, 4])
    observed[empty] = False
    observed[data["groups"] == 97] = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        imputations, _ = run_chain(data, observed, 320, seed=11)
    fixed = (data["X"] @ BETA)[~observed]
    in_empty = empty[~observed]
    groups_mis = data["groups"][~observed][in_empty]
    centred = np.array([pd.Series(imp[in_empty] - fixed[in_empty]).groupby(groups_mis).mean()
                        for imp in imputations[20:]])
    assert np.isfinite(np.concatenate(imputations)).all()
    assert abs(centred.var() / 0.55 - 1) < 0.25


def test_same_seed_gives_identical_output_and_the_input_state_is_not_modified() -> None:
    data = simulate(12, n_groups=30, slope=True)
    observed = mar_missing(data, 13)
    _, states = run_chain(data, observed, 3, seed=14)
    state = states[-1]
    before = copy.deepcopy(state)
    args = (data["y"], observed, data["X"], data["Z"], Grouping(data["groups"], 30))
    a = draw_2l(*args, np.random.default_rng(15), state, pmm=True, n_inner=2)
    b = draw_2l(*args, np.random.default_rng(15), state, pmm=True, n_inner=2)
    assert np.array_equal(a[0], b[0])
    for field in ("beta", "u", "omega", "sigma2"):
        assert np.array_equal(getattr(a[1], field), getattr(b[1], field))
        assert np.array_equal(getattr(state, field), getattr(before, field))
    assert a[1].u.shape == (30, 2) and a[1].beta.shape == (3,)


# --- robustness -------------------------------------------------------------------


def test_aliased_and_constant_columns_are_dropped_with_one_warning() -> None:
    # Dropping the duplicate and the constant column leaves exactly the clean design,
    # so with the same seed the draws are identical.
    data = simulate(16, n_groups=40)
    observed = mar_missing(data, 17)
    X = data["X"]
    bad = np.column_stack([X, 2 * X[:, 1] - X[:, 2], np.full(len(X), 3.0)])
    args = (data["y"], observed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got, state = draw_2l(*args, bad, data["Z"], Grouping(data["groups"], 40),
                             np.random.default_rng(18), name="iqv")
    assert len(caught) == 1 and caught[0].category is SamplerWarning
    assert all(s in str(caught[0].message) for s in ("'iqv'", "aliased", "constant"))
    clean, clean_state = draw_2l(*args, X, data["Z"], Grouping(data["groups"], 40),
                                 np.random.default_rng(18), name="iqv")
    np.testing.assert_allclose(got, clean)
    np.testing.assert_allclose(state.beta[:3], clean_state.beta)
    assert np.all(state.beta[3:] == 0)


def test_non_positive_definite_state_covariance_is_jittered() -> None:
    data = simulate(19, n_groups=30, slope=True)
    observed = mar_missing(data, 20)
    _, states = run_chain(data, observed, 2, seed=21)
    broken = copy.deepcopy(states[-1])
    broken.omega = np.array([[1.0, 2.0], [2.0, 1.0]])
    with pytest.warns(SamplerWarning, match=r"'lpo'.*jitter.*random-effects covariance"):
        imp, state = draw_2l(data["y"], observed, data["X"], data["Z"],
                             Grouping(data["groups"], 30), np.random.default_rng(22), broken,
                             name="lpo")
    assert np.isfinite(imp).all()
    assert np.all(np.linalg.eigvalsh(state.omega) > 0)


def test_very_few_observed_values_drop_predictors_and_keep_drawing() -> None:
    data = simulate(23, n_groups=10, size=5)
    observed = np.zeros(50, dtype=bool)
    observed[[0, 7, 21]] = True
    rng = np.random.default_rng(24)
    state = None
    for _ in range(3):
        with pytest.warns(SamplerWarning, match=r"'ses'.*only 3 observed values"):
            imp, state = draw_2l(data["y"], observed, data["X"], data["Z"], Grouping(data["groups"],
                                 10), rng, state, pmm=False, name="ses")
        assert np.isfinite(imp).all() and len(imp) == 47


def test_invalid_input_raises_naming_the_target() -> None:
    data = simulate(25, n_groups=10, size=5)
    args = (data["X"], data["Z"], Grouping(data["groups"], 10), np.random.default_rng(26))
    one = np.zeros(50, dtype=bool)
    one[3] = True
    with pytest.raises(SamplerError, match=r"'sex'.*1 observed"):
        draw_2l(data["y"], one, *args, name="sex")
    observed = np.ones(50, dtype=bool)
    with pytest.raises(SamplerError, match=r"'sex'.*cluster codes"):
        draw_2l(data["y"], observed, data["X"], data["Z"], Grouping(data["groups"], 5),
                np.random.default_rng(0), name="sex")
    bad_state = TwoLevelState(beta=np.zeros(3), u=np.zeros((9, 1)), omega=np.eye(1), sigma2=1.0)
    with pytest.raises(SamplerError, match=r"'sex'.*state"):
        draw_2l(data["y"], observed, *args, bad_state, name="sex")
