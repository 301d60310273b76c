"""2l.bin: the Polya-Gamma sampler against closed forms, and logistic mixed-model recovery."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.special import expit

from recipe_compiler.data.grouping import Grouping
from recipe_compiler.errors import SamplerError, SamplerWarning
from recipe_compiler.runtime.samplers.logit_2l import BinaryState, draw_2l_bin, sample_pg1

Z_VALUES = [0.0, 0.1, 1.0, 2.5, 10.0, 40.0]


def pg_mean(z: float) -> float:
    """E[PG(1, z)] = tanh(z/2) / (2z), 1/4 at 0."""
    return 0.25 if z == 0 else float(np.tanh(z / 2) / (2 * z))


def pg_variance(z: float) -> float:
    """Var[PG(1, z)] = (sinh z - z) / (4 z^3 cosh^2(z/2)), 1/24 at 0."""
    if z < 1e-3:
        return 1 / 24
    return float((np.sinh(z) - z) / (4 * z**3 * np.cosh(z / 2) ** 2))


@pytest.mark.parametrize("z", Z_VALUES)
def test_pg_mean_and_variance_match_the_closed_forms(z: float) -> None:
    # 200000 draws; mean within 4.5 MC se; the sample variance within 4.5 of its
    # own se sqrt((m4 - s^4) / N), m4 the sample fourth central moment.
    n = 200_000
    draws = sample_pg1(np.full(n, z), np.random.default_rng(int(z * 10)))
    assert np.all(draws > 0)
    se_mean = draws.std() / np.sqrt(n)
    assert abs(draws.mean() - pg_mean(z)) < 4.5 * se_mean
    centred = draws - draws.mean()
    se_var = np.sqrt((np.mean(centred**4) - draws.var() ** 2) / n)
    assert abs(draws.var() - pg_variance(z)) < 4.5 * se_var


@pytest.mark.parametrize("z", [0.0, 1.0, 3.0])
def test_pg_laplace_transform_matches_the_closed_form(z: float) -> None:
    # E exp(-t w) = cosh(z/2) / cosh(sqrt((z^2/2 + t) / 2)) for w ~ PG(1, z): large t
    # probe the left (inverse-Gaussian) piece, small t the right tail. 100000 draws;
    # exp(-t w) lies in (0, 1], so its MC se is at most its sd / sqrt(N); allow 4.5.
    n = 100_000
    draws = sample_pg1(np.full(n, z), np.random.default_rng(7 + int(z)))
    for t in (0.5, 5.0, 50.0, 500.0):
        values = np.exp(-t * draws)
        exact = np.cosh(z / 2) / np.cosh(np.sqrt((z**2 / 2 + t) / 2))
        assert abs(values.mean() - exact) < 4.5 * values.std() / np.sqrt(n) + 1e-12


def test_pg_keeps_the_shape_of_z_and_is_reproducible() -> None:
    z = np.random.default_rng(3).normal(scale=5, size=(40, 25))
    draws = sample_pg1(z, np.random.default_rng(11))
    assert draws.shape == z.shape and np.all(draws > 0)
    assert np.array_equal(draws, sample_pg1(z, np.random.default_rng(11)))


def simulate(seed: int, n_groups: int = 100, size: int = 30, slope: bool = False) -> dict:
    """``logit P(y=1) = -0.5 + x1 + u_0 [+ u_1 x1]``, var(u_0) = 1 (var(u_1) = 0.25)."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), size)
    n = len(groups)
    x1 = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x1])
    Z = np.column_stack([np.ones(n), x1]) if slope else np.ones((n, 1))
    omega = np.diag([1.0, 0.25]) if slope else np.eye(1)
    u = rng.multivariate_normal(np.zeros(len(omega)), omega, size=n_groups)
    eta = X @ [-0.5, 1.0] + np.einsum("ij,ij->i", Z, u[groups])
    y = (rng.random(n) < expit(eta)).astype(float)
    return {"y": y, "X": X, "Z": Z, "groups": groups, "n_groups": n_groups, "omega": omega,
            "eta": eta}


def run_chain(data: dict, observed: np.ndarray, n_iter: int,
              seed: int) -> tuple[list[np.ndarray], list[BinaryState]]:
    rng = np.random.default_rng(seed)
    state = None
    imputations, states = [], []
    for _ in range(n_iter):
        imp, state = draw_2l_bin(data["y"], observed, data["X"], data["Z"], Grouping(data["groups"],
                                 data["n_groups"]), rng, state, name="sex")
        imputations.append(imp)
        states.append(state)
    return imputations, states


def test_logistic_random_intercept_model_is_recovered() -> None:
    # 700 draws after 100 burn-in of a fully observed chain; truth within 3.5
    # posterior sd (MC error of the posterior means is ~0.1 sd at this mixing).
    data = simulate(1)
    _, states = run_chain(data, np.ones(len(data["y"]), dtype=bool), 800, seed=2)
    beta = np.array([s.beta for s in states[100:]])
    omega = np.array([s.omega[0, 0] for s in states[100:]])
    assert np.all(np.abs(beta.mean(0) - [-0.5, 1.0]) < 3.5 * beta.std(0))
    assert abs(omega.mean() - 1.0) < 3.5 * omega.std()


def test_imputations_follow_the_model_probabilities() -> None:
    # ~20% of y missing at random given x1. Over 300 draws (after 50 burn-in) the
    # imputed share of ones among the missing rows must match the mean true
    # probability: the MC error of the average is ~0.002 (draw-to-draw sd 0.02,
    # Bernoulli noise included) and the posterior sd of the mean probability,
    # i.e. the estimation error, ~0.01; allow 0.03.
    data = simulate(3)
    rng = np.random.default_rng(4)
    observed = rng.random(len(data["y"])) > expit(-1.5 + 0.8 * data["X"][:, 1])
    imputations, _ = run_chain(data, observed, 350, seed=5)
    draws = np.array(imputations[50:])
    assert set(np.unique(draws)) <= {0.0, 1.0}
    assert abs(draws.mean() - expit(data["eta"][~observed]).mean()) < 0.03


def test_random_slopes_and_empty_clusters_work_without_warnings() -> None:
    data = simulate(6, n_groups=40, slope=True)
    observed = np.random.default_rng(7).random(len(data["y"])) < 0.8
    observed[data["groups"] < 3] = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        imputations, states = run_chain(data, observed, 30, seed=8)
    assert np.all(np.linalg.eigvalsh(states[-1].omega) > 0)
    assert states[-1].u.shape == (40, 2) and np.isfinite(np.concatenate(imputations)).all()


def test_same_seed_gives_identical_output() -> None:
    data = simulate(9, n_groups=20, size=10)
    observed = np.arange(200) % 4 != 0
    _, states = run_chain(data, observed, 2, seed=10)
    args = (data["y"], observed, data["X"], data["Z"], Grouping(data["groups"], 20))
    a = draw_2l_bin(*args, np.random.default_rng(11), states[-1])
    b = draw_2l_bin(*args, np.random.default_rng(11), states[-1])
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1].u, b[1].u)


def test_collinear_column_is_dropped_with_one_warning() -> None:
    data = simulate(12, n_groups=20, size=10)
    observed = np.arange(200) % 3 != 0
    X = np.column_stack([data["X"], 3 * data["X"][:, 1]])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        imp, state = draw_2l_bin(data["y"], observed, X, data["Z"], Grouping(data["groups"], 20),
                                 np.random.default_rng(13), name="sex")
    assert len(caught) == 1 and caught[0].category is SamplerWarning
    assert "'sex'" in str(caught[0].message) and "aliased" in str(caught[0].message)
    assert state.beta[2] == 0 and np.isin(imp, [0.0, 1.0]).all()


def test_non_binary_or_too_few_observed_values_raise() -> None:
    data = simulate(14, n_groups=10, size=10)
    args = (data["X"], data["Z"], Grouping(data["groups"], 10), np.random.default_rng(15))
    observed = np.ones(100, dtype=bool)
    with pytest.raises(SamplerError, match=r"'sex'.*0 or 1"):
        draw_2l_bin(data["y"] * 2, observed, *args, name="sex")
    with pytest.raises(SamplerError, match=r"'sex'.*0 observed"):
        draw_2l_bin(data["y"], ~observed, *args, name="sex")


def test_pg_draws_for_large_eta_are_finite_and_silent() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = sample_pg1(np.array([200.0, -150.0, 0.5]), np.random.default_rng(0))
    assert np.all(np.isfinite(x)) and np.all(x > 0)
    # E[PG(1, z)] = tanh(z/2) / (2z): about 1/400 at z = 200; one draw is within 3x of it
    assert x[0] < 3 / 400
