"""2l.polr, 2lonly.polr, polr: the cumulative probit sampler.

Checked against closed forms (truncated-normal moments), statsmodels'
``OrderedModel`` (probit maximum likelihood) and a seeded known-truth simulation.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ndtr
from scipy.stats import norm

from recipe_compiler.data.grouping import Grouping
from recipe_compiler.errors import SamplerError, SamplerWarning
from recipe_compiler.runtime.samplers import Target, get_sampler
from recipe_compiler.runtime.samplers.ordinal import (
    OrdinalState,
    _latent,
    draw_2l_polr,
    draw_polr,
)

CUTS = np.array([0.0, 0.7, 1.6])  # gamma_1 = 0: four categories
BETA = np.array([0.2, 0.8])  # latent intercept and slope of x


def simulate(seed: int, n_groups: int = 100, size: int = 30, tau2: float = 0.5) -> dict:
    """``y* = 0.2 + 0.8 x + u_c + e``, u ~ N(0, tau2), e ~ N(0, 1), cut at CUTS."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), size)
    n = len(groups)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    eta = X @ BETA + np.sqrt(tau2) * rng.normal(size=n_groups)[groups]
    y = np.searchsorted(CUTS, eta + rng.normal(size=n)).astype(float)
    return {"y": y, "X": X, "Z": np.ones((n, 1)), "grouping": Grouping(groups, n_groups),
            "eta": eta}


def run_chain(data: dict, observed: np.ndarray, rng: np.random.Generator,
              sweeps: int) -> list[tuple[np.ndarray, OrdinalState | None]]:
    """The imputations and state of every call of a 2l.polr chain on ``simulate`` data
    (four categories), each call warm-started from the previous state."""
    state: OrdinalState | None = None
    calls = []
    for _ in range(sweeps):
        out, state = draw_2l_polr(data["y"], observed, data["X"], data["Z"], data["grouping"],
                                  rng, 4, state)
        calls.append((out, state))
    return calls

@pytest.mark.parametrize("a, b", [(-np.inf, -1.0), (-0.5, 0.7), (2.0, 3.0), (8.0, np.inf),
                                  (-np.inf, -9.0), (30.0, np.inf)])
def test_latent_draws_are_exact_truncated_normals(a: float, b: float) -> None:
    # Mean of N(0, 1) truncated to (a, b): (phi(a) - phi(b)) / (Phi(b) - Phi(a)), also far
    # in the tails, where naive inversion rounds to the bound. 20000 draws; within 4.5
    # MC se (the sample sd over sqrt(n)) plus a float tolerance.
    n = 20_000
    codes = np.ones(n, dtype=np.intp)
    draws = _latent(np.zeros(n), np.array([a, b]), codes, np.random.default_rng(3))
    assert np.all((draws >= a) & (draws <= b))
    mass = (ndtr(-a) - ndtr(-b)) if a > 0 else (ndtr(b) - ndtr(a))
    exact = (norm.pdf(a) - norm.pdf(b)) / mass
    assert abs(draws.mean() - exact) < 4.5 * draws.std() / np.sqrt(n) + 1e-9


def test_single_level_posterior_matches_the_probit_maximum_likelihood() -> None:
    """statsmodels' OrderedModel(distr="probit") on the same data: with n = 3000 the
    posterior mean lies within 0.35 posterior sd of the MLE (posterior-MLE difference
    O(1/n) plus MC error of 700 autocorrelated draws, about 0.2 sd)."""
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    rng = np.random.default_rng(21)
    n = 3000
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.normal(size=n)])
    y = np.searchsorted(CUTS, X @ [0.2, 0.8, -0.5] + rng.normal(size=n)).astype(float)
    fit = OrderedModel(y, X[:, 1:], distr="probit").fit(method="bfgs", disp=False)
    thresholds = fit.model.transform_threshold_params(fit.params)[1:-1]
    mle = np.concatenate([[-thresholds[0]], fit.params[:2], thresholds[1:] - thresholds[0]])
    state, draws = None, []
    draw_rng = np.random.default_rng(22)
    for i in range(800):
        _, state = draw_polr(y, np.ones(n, dtype=bool), X, draw_rng, 4, state)
        assert state is not None
        if i >= 100:
            draws.append(np.concatenate([state.beta, state.cuts[1:]]))
    post = np.array(draws)
    assert np.all(np.abs(post.mean(0) - mle) < 0.35 * post.std(0))


def test_two_level_probit_model_is_recovered() -> None:
    # 500 draws after 100 burn-in of a chain with 30% MCAR missing: fixed effects,
    # cut-points and the random-intercept variance within 3.5 posterior sd of the truth.
    data = simulate(1)
    observed = np.random.default_rng(2).random(len(data["y"])) < 0.7
    states = [state for _, state in run_chain(data, observed, np.random.default_rng(3), 600)]
    assert all(state is not None and state.omega is not None for state in states)
    post = np.array([np.concatenate([state.beta, state.cuts[1:], state.omega[0]])
                     for state in states[100:]])
    truth = np.concatenate([BETA, CUTS[1:], [0.5]])
    assert np.all(np.abs(post.mean(0) - truth) < 3.5 * post.std(0))


def test_imputed_shares_match_the_truth_of_the_missing_rows() -> None:
    # MCAR 30%: over 200 draws the imputed share of each category matches the mean model
    # probability of the missing rows given their cluster effects; MC se of a share's
    # mean ~0.01 (n_mis ~ 300, autocorrelation ~3); allow 0.03.
    data = simulate(5, n_groups=40, size=25)
    observed = np.random.default_rng(6).random(len(data["y"])) < 0.7
    shares = [np.bincount(out.astype(int), minlength=4) / len(out)
              for out, _ in run_chain(data, observed, np.random.default_rng(7), 250)[50:]]
    edges = np.concatenate([[-np.inf], CUTS, [np.inf]])
    eta = data["eta"][~observed][:, None]
    truth = (ndtr(edges[1:] - eta) - ndtr(edges[:-1] - eta)).mean(axis=0)
    np.testing.assert_allclose(np.mean(shares, 0), truth, atol=0.03)


def test_unobserved_categories_are_never_imputed_and_codes_keep_the_dtype() -> None:
    data = simulate(8, n_groups=20, size=10)
    y = np.where(data["y"] == 2, 3.0, data["y"])  # code 2 never observed
    observed = np.random.default_rng(9).random(len(y)) < 0.6
    out, state = draw_2l_polr(y, observed, data["X"], data["Z"], data["grouping"],
                              np.random.default_rng(10), 4)
    assert out.dtype == y.dtype and set(np.unique(out)) <= {0.0, 1.0, 3.0}
    assert state is not None and state.cuts.shape == (2,) and state.cuts[0] == 0.0


def test_a_single_observed_category_is_imputed_everywhere_with_a_warning() -> None:
    y = np.array([1.0, 1.0, np.nan, 1.0])
    with pytest.warns(SamplerWarning, match="only category 1 is observed"):
        out, state = draw_polr(y, ~np.isnan(y), np.ones((4, 1)), np.random.default_rng(0), 3)
    assert state is None and out.tolist() == [1.0]


def test_a_state_that_does_not_fit_is_refused() -> None:
    data = simulate(4, n_groups=5, size=6)
    observed = np.ones(len(data["y"]), dtype=bool)
    bad = OrdinalState(beta=np.zeros(2), cuts=np.array([0.0, 0.5]))
    with pytest.raises(SamplerError, match="does not match 2 columns of X and 4 observed"):
        draw_polr(data["y"], observed, data["X"], np.random.default_rng(0), 4, bad, name="lik")
    no_effects = OrdinalState(beta=np.zeros(2), cuts=CUTS)
    with pytest.raises(SamplerError, match="has no random effects"):
        draw_2l_polr(data["y"], observed, data["X"], data["Z"], data["grouping"],
                     np.random.default_rng(0), 4, no_effects, name="lik")


def test_registered_samplers_dispatch_and_check_their_state() -> None:
    data = simulate(4, n_groups=8, size=6)
    observed = np.arange(len(data["y"])) % 5 > 0
    target = Target("lik", data["y"], observed, data["X"], data["Z"], data["grouping"], 4)
    out, state = get_sampler("mixed_ordinal_probit")(target, np.random.default_rng(0), None)
    assert len(out) == (~observed).sum() and isinstance(state, OrdinalState)
    out, state = get_sampler("ordinal_probit")(target, np.random.default_rng(0), None)
    assert state is not None and state.u is None
    with pytest.raises(SamplerError, match="not an OrdinalState"):
        get_sampler("ordinal_probit")(target, np.random.default_rng(0), object())
    flat = Target("lik", data["y"], observed, data["X"], None, data["grouping"], 4)
    with pytest.raises(SamplerError, match="needs a random design"):
        get_sampler("mixed_ordinal_probit")(flat, np.random.default_rng(0), None)
