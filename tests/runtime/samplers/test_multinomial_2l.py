"""2l.polyreg: the multinomial logit mixed model by Polya-Gamma Gibbs sampling.

Checked against 2l.bin (two categories are the binary model exactly), a seeded
known-truth simulation, and its edge cases.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from recipe_compiler.data.grouping import Grouping
from recipe_compiler.errors import SamplerError, SamplerWarning
from recipe_compiler.runtime.samplers import Target, get_sampler
from recipe_compiler.runtime.samplers.logit_2l import draw_2l_bin
from recipe_compiler.runtime.samplers.multinomial_2l import MultinomialState, draw_2l_polyreg

BETA = np.array([[0.3, -0.4], [1.0, -0.6]])  # (p, K - 1): intercepts, slopes of x
SIGMA = np.array([[0.8, 0.3], [0.3, 0.5]])


def simulate(seed: int, n_groups: int = 100, size: int = 30) -> dict:
    """Three categories; ``log P(k)/P(0) = BETA[0, k] + BETA[1, k] x + u_ck``, u ~ N(0, SIGMA)."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), size)
    n = len(groups)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    u = rng.multivariate_normal(np.zeros(2), SIGMA, size=n_groups)
    eta = np.column_stack([np.zeros(n), X @ BETA + u[groups]])
    prob = np.exp(eta) / np.exp(eta).sum(axis=1, keepdims=True)
    y = (prob.cumsum(axis=1) < rng.random(n)[:, None]).sum(axis=1).astype(float)
    return {"y": y, "X": X, "Z": np.ones((n, 1)), "grouping": Grouping(groups, n_groups),
            "prob": prob}


def chain(data: dict, observed: np.ndarray, n_iter: int, seed: int,
          n_categories: int = 3) -> tuple[list[np.ndarray], list[MultinomialState]]:
    rng = np.random.default_rng(seed)
    state = None
    draws, states = [], []
    for _ in range(n_iter):
        out, state = draw_2l_polyreg(data["y"], observed, data["X"], data["Z"], data["grouping"],
                                     rng, n_categories, state, name="eth")
        assert state is not None
        draws.append(out)
        states.append(state)
    return draws, states


def test_two_categories_are_the_binary_model_exactly() -> None:
    # Holmes-Held with one non-reference category has offset 0: the same PG draws and
    # Gaussian updates as 2l.bin, so the same random stream gives the same states.
    data = simulate(3, n_groups=30, size=10)
    y = (data["y"] > 0).astype(float)
    observed = np.random.default_rng(4).random(len(y)) < 0.8
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    state_a = state_b = None
    for _ in range(5):
        _, state_a = draw_2l_polyreg(y, observed, data["X"], data["Z"], data["grouping"], rng_a,
                                     2, state_a)
        _, state_b = draw_2l_bin(y, observed, data["X"], data["Z"], data["grouping"], rng_b,
                                 state_b)
        assert state_a is not None
        np.testing.assert_allclose(state_a.beta[:, 0], state_b.beta, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(state_a.u, state_b.u, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(state_a.omega, state_b.omega, rtol=1e-9)


def test_multinomial_random_intercept_model_is_recovered() -> None:
    # 400 draws after 100 burn-in of a fully observed chain (G = 100, 30 rows each):
    # each fixed effect and each entry of Sigma within 3.5 posterior sd of the truth
    # (the posterior sd covers the sampling error; MC error of the means ~0.1 sd).
    data = simulate(1)
    _, states = chain(data, np.ones(len(data["y"]), dtype=bool), 500, seed=2)
    beta = np.array([s.beta for s in states[100:]])
    assert np.all(np.abs(beta.mean(0) - BETA) < 3.5 * beta.std(0))
    omega = np.array([s.omega for s in states[100:]])
    assert np.all(np.abs(omega.mean(0) - SIGMA) < 3.5 * omega.std(0))
    assert np.all(np.diagonal(omega, axis1=1, axis2=2) > 0)


def test_imputed_shares_match_the_truth_of_the_missing_rows() -> None:
    # MCAR 30%: over 200 draws (after 50 burn-in) the imputed share of each category
    # matches the mean model probability of the missing rows; the MC se of the mean
    # over draws of a share is below sqrt(p(1-p)/n_mis/200) * (autocorrelation ~3):
    # 0.01 at n_mis ~ 300; allow 0.03.
    data = simulate(7, n_groups=40, size=25)
    observed = np.random.default_rng(8).random(len(data["y"])) < 0.7
    draws, _ = chain(data, observed, 250, seed=9)
    shares = np.mean([np.bincount(d.astype(int), minlength=3) / len(d) for d in draws[50:]], 0)
    truth = data["prob"][~observed].mean(axis=0)
    np.testing.assert_allclose(shares, truth, atol=0.03)


def test_imputations_are_codes_of_observed_categories_in_the_dtype_of_y() -> None:
    data = simulate(11, n_groups=20, size=10)
    y = np.where(data["y"] == 1, 3.0, data["y"])  # code 1 never observed; K = 4
    observed = np.random.default_rng(12).random(len(y)) < 0.7
    rng = np.random.default_rng(13)
    out, state = draw_2l_polyreg(y, observed, data["X"], data["Z"], data["grouping"], rng, 4)
    assert out.dtype == y.dtype and len(out) == (~observed).sum()
    assert set(np.unique(out)) <= {0.0, 2.0, 3.0}
    assert state is not None and state.beta.shape == (2, 2) and state.u.shape == (20, 2)


def test_a_single_observed_category_is_imputed_everywhere_with_a_warning() -> None:
    data = simulate(2, n_groups=10, size=5)
    y = np.full(len(data["y"]), 2.0)
    observed = np.arange(len(y)) % 3 > 0
    with pytest.warns(SamplerWarning, match="only category 2 is observed"):
        out, state = draw_2l_polyreg(y, observed, data["X"], data["Z"], data["grouping"],
                                     np.random.default_rng(0), 3, name="eth")
    assert state is None and np.all(out == 2.0)


def test_random_slopes_get_one_block_per_category() -> None:
    data = simulate(5, n_groups=30, size=12)
    Z = np.column_stack([data["Z"], data["X"][:, 1]])
    observed = np.ones(len(data["y"]), dtype=bool)
    observed[::4] = False
    rng = np.random.default_rng(6)
    state = None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            _, state = draw_2l_polyreg(data["y"], observed, data["X"], Z, data["grouping"],
                                       rng, 3, state)
    assert state is not None and state.u.shape == (30, 4) and state.omega.shape == (4, 4)
    assert np.all(np.linalg.eigvalsh(state.omega) > 0)


@pytest.mark.parametrize("bad, message", [
    (np.array([0.0, 1.5]), "integer codes 0..2"), (np.array([0.0, 3.0]), "integer codes 0..2")])
def test_observed_values_must_be_codes(bad: np.ndarray, message: str) -> None:
    data = simulate(4, n_groups=5, size=4)
    y = data["y"].copy()
    y[:2] = bad
    with pytest.raises(SamplerError, match=message):
        draw_2l_polyreg(y, np.ones(len(y), dtype=bool), data["X"], data["Z"], data["grouping"],
                        np.random.default_rng(0), 3)


def test_a_state_of_other_dimensions_is_refused() -> None:
    data = simulate(4, n_groups=5, size=6)
    state = MultinomialState(beta=np.zeros((2, 1)), u=np.zeros((5, 2)), omega=np.eye(2))
    with pytest.raises(SamplerError, match="fixed effects of shape"):
        draw_2l_polyreg(data["y"], np.ones(len(data["y"]), dtype=bool), data["X"], data["Z"],
                        data["grouping"], np.random.default_rng(0), 3, state, name="eth")


def test_the_registered_sampler_needs_a_random_design_and_its_own_state() -> None:
    data = simulate(4, n_groups=5, size=6)
    sampler = get_sampler("mixed_multinomial")
    observed = np.ones(len(data["y"]), dtype=bool)
    target = Target("eth", data["y"], observed, data["X"], None, data["grouping"], 3)
    with pytest.raises(SamplerError, match="needs a random design"):
        sampler(target, np.random.default_rng(0), None)
    target = Target("eth", data["y"], observed, data["X"], data["Z"], data["grouping"], 3)
    with pytest.raises(SamplerError, match="not a MultinomialState"):
        sampler(target, np.random.default_rng(0), object())
