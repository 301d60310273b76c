"""ml.bin (``logit_ml``): reduction to 2l.bin, posterior recovery of a three-level and a
crossed logistic model, chain independence and state checks.

The chains run ``draw_ml_bin_batch`` visit after visit as the Gibbs loop does (one
Polya-Gamma sweep per visit, warm-started). Data are simulated with fixed seeds, so
every test is deterministic; each tolerance is stated and derived where it is checked.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.special import expit

from recipe_compiler.data.grouping import Grouping
from recipe_compiler.errors import SamplerError
from recipe_compiler.runtime.samplers import get_sampler
from recipe_compiler.runtime.samplers.common import as_batch
from recipe_compiler.runtime.samplers.logit_2l import BinaryState, draw_2l_bin_batch
from recipe_compiler.runtime.samplers.logit_ml import MultilevelBinaryState, draw_ml_bin_batch
from recipe_compiler.runtime.samplers.registry import TargetBatch

BETA = np.array([-0.3, 0.8, -0.5])
TAU_CLASS, TAU_SCHOOL = 0.3, 0.6


def three_level(seed: int, n_schools: int = 150, n_classes: int = 5, n_pupils: int = 10,
                slope: float = 0.0) -> dict:
    """Pupils in classes in schools: ``logit P(y=1) = -0.3 + 0.8 x1 - 0.5 w + u + v``.

    ``x1`` at level 1, ``w`` at the class level; class intercepts ``u ~ N(0, 0.3)``
    (plus ``slope`` x1 random slopes of that variance), school intercepts ``v ~ N(0,
    0.6)``; 30% of y missing completely at random. Rows sorted by school and class.
    """
    rng = np.random.default_rng(seed)
    n_cls = n_schools * n_classes
    school = np.repeat(np.arange(n_schools), n_classes * n_pupils)
    cls = np.repeat(np.arange(n_cls), n_pupils)
    n = len(cls)
    x1 = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x1, rng.normal(size=n_cls)[cls]])
    u = rng.normal(scale=np.sqrt(TAU_CLASS), size=(n_cls, 2))
    v = rng.normal(scale=np.sqrt(TAU_SCHOOL), size=n_schools)
    eta = X @ BETA + u[cls, 0] + slope * u[cls, 1] * x1 + v[school]
    y = (rng.random(n) < expit(eta)).astype(float)
    Z = np.column_stack([np.ones(n), x1]) if slope else np.ones((n, 1))
    return {"y": y, "X": X, "Z": Z, "main": Grouping(cls, n_cls),
            "blocks": [Grouping(school, n_schools)], "observed": rng.random(n) > 0.3}


def crossed(seed: int, n_raters: int = 60, n_items: int = 50) -> dict:
    """Raters crossed with items: ``logit P(y=1) = -0.3 + 0.8 x1 - 0.5 w + a + b``,
    ``a ~ N(0, 0.3)`` per rater, ``b ~ N(0, 0.6)`` per item, ``w`` an item covariate,
    30% of y MCAR."""
    rng = np.random.default_rng(seed)
    rater = np.repeat(np.arange(n_raters), n_items)
    item = np.tile(np.arange(n_items), n_raters)
    n = len(rater)
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.normal(size=n_items)[item]])
    eta = (X @ BETA + rng.normal(scale=np.sqrt(TAU_CLASS), size=n_raters)[rater]
           + rng.normal(scale=np.sqrt(TAU_SCHOOL), size=n_items)[item])
    y = (rng.random(n) < expit(eta)).astype(float)
    return {"y": y, "X": X, "Z": np.ones((n, 1)), "main": Grouping(rater, n_raters),
            "blocks": [Grouping(item, n_items)], "observed": rng.random(n) > 0.3}


def make_batch(data: dict, chains: int = 1, blocks: bool = True) -> TargetBatch:
    """The target in ``chains`` chains (the same designs), with the extra blocks."""
    one, _ = as_batch(data["y"], data["observed"], data["X"], data["Z"], data["main"], "y")
    obs = data["observed"]

    def rep(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.ascontiguousarray(np.repeat(a, chains, axis=0))

    return dataclasses.replace(
        one, x_obs=rep(one.x_obs), x_mis=rep(one.x_mis), x_offset=rep(one.x_offset),
        z_obs=rep(one.z_obs), z_mis=rep(one.z_mis),
        blocks=tuple((g.subset(obs), g.subset(~obs)) for g in data["blocks"]) if blocks else ())


def run(t: TargetBatch, visits: int, seeds: list[int]) -> tuple[np.ndarray, list]:
    """``visits`` calls; the draws (visits, C, n_mis) and the states."""
    rngs = [np.random.default_rng(s) for s in seeds]
    state = None
    draws, states = [], []
    for _ in range(visits):
        out, state = draw_ml_bin_batch(t, rngs, state)
        draws.append(out)
        states.append(state)
    return np.array(draws), states


def test_without_blocks_it_is_the_two_level_sampler() -> None:
    """blocks=() delegates to draw_2l_bin_batch: the same draws from the same generators,
    warm start included, also through the registry key ``multilevel_logit``."""
    t = make_batch(three_level(1, n_schools=20), chains=2, blocks=False)
    sampler = get_sampler("multilevel_logit")
    rngs_a = [np.random.default_rng(s) for s in (5, 6)]
    rngs_b = [np.random.default_rng(s) for s in (5, 6)]
    state_a = state_b = None
    for _ in range(3):
        out_a, state_a = sampler(t, rngs_a, state_a)
        out_b, state_b = draw_2l_bin_batch(t, rngs_b, state_b)
        np.testing.assert_array_equal(out_a, out_b)
    assert isinstance(state_a, BinaryState) and isinstance(state_b, BinaryState)
    np.testing.assert_array_equal(state_a.beta, state_b.beta)
    np.testing.assert_array_equal(state_a.omega, state_b.omega)


@pytest.mark.parametrize("design", ["three_level", "crossed"])
def test_a_chain_draws_the_same_alone_or_in_a_batch(design: str) -> None:
    """Chain c uses rngs[c] only: chain 1 of a batch of three equals the same chain
    run alone (imputations exactly, states to rounding of the batched linear algebra)."""
    data = three_level(2, n_schools=20, slope=1.0) if design == "three_level" else crossed(2)
    draws3, states3 = run(make_batch(data, chains=3), 4, [11, 12, 13])
    draws1, states1 = run(make_batch(data, chains=1), 4, [12])
    np.testing.assert_array_equal(draws3[:, 1], draws1[:, 0])
    s3, s1 = states3[-1], states1[-1]
    np.testing.assert_allclose(s3.main.beta[1], s1.main.beta[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(s3.v[0][1], s1.v[0][0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(s3.tau[1], s1.tau[0], rtol=1e-9)
    assert set(np.unique(draws3)) <= {0.0, 1.0}


def _recovery(data: dict, visits: int, burn: int) -> tuple[np.ndarray, np.ndarray]:
    """Posterior draws of beta (k, 3) and of (main variance, block variance) (k, 2)."""
    _, states = run(make_batch(data), visits, [7])
    kept = states[burn:]
    beta = np.array([s.main.beta[0] for s in kept])
    var = np.array([[s.main.omega[0, 0, 0], s.tau[0, 0]] for s in kept])
    return beta, var


def _check(draws: np.ndarray, target: np.ndarray, k: float) -> None:
    """Each posterior mean within ``k`` posterior sd of ``target``."""
    mean, sd = draws.mean(axis=0), draws.std(axis=0)
    assert np.all(np.abs(mean - target) < k * sd), (mean, sd, target)


def test_three_level_recovery_of_the_fixed_effects_and_variances() -> None:
    """150 schools x 5 classes x 10 pupils (5,250 observed rows), 500 kept visits.

    Against the truth: within 3.5 posterior sd (the posterior mean misses the truth by
    about one sd, the sampling error of the simulated data). Against lme4's Laplace fit
    of the same observed rows (R below): fixed effects within 0.5 posterior sd (the
    Monte Carlo error of the mean of 500 draws with lag-1 autocorrelation 0.1 is 0.05
    sd), variances within 1 sd (the posterior mean of a variance exceeds the mode by
    about half an sd, and the class variance mixes slowly: lag-1 autocorrelation 0.94,
    an effective sample of about 15, a Monte Carlo error of 0.26 sd). Measured: beta
    (-0.340, 0.813, -0.467), sd (0.073, 0.038, 0.043); variances (0.359, 0.557), sd
    (0.074, 0.101).

    R (the observed rows of ``three_level(3)`` as y, x1, w, c = class, s = school)::

        f <- glmer(y ~ x1 + w + (1 | s) + (1 | c), family = binomial, data = d)
        fixef(f)  # -0.3366 0.8111 -0.4646
        VarCorr(f)  # c 0.3179, s 0.5529
    """
    beta, var = _recovery(three_level(3), 600, 100)
    _check(beta, BETA, 3.5)
    _check(var, np.array([TAU_CLASS, TAU_SCHOOL]), 3.5)
    _check(beta, np.array([-0.3366, 0.8111, -0.4646]), 0.5)
    _check(var, np.array([0.3179, 0.5529]), 1.0)


def test_crossed_recovery_of_the_fixed_effects_and_variances() -> None:
    """60 raters x 50 items (2,100 observed rows), 500 kept visits, against lme4's fit
    of the same observed rows (tolerances as in the three-level test; the item variance
    of this sample is 0.32 by lme4, 3 posterior sd below the 0.6 of the simulation, so
    the truth is not the reference here). Measured: beta (-0.246, 0.803, -0.516),
    variances (0.212, 0.322), sd (0.071, 0.088).

    R (the observed rows of ``crossed(4)`` as y, x1, w, r = rater, i = item)::

        f <- glmer(y ~ x1 + w + (1 | r) + (1 | i), family = binomial, data = d)
        fixef(f)  # -0.2555 0.8049 -0.5259
        VarCorr(f)  # r 0.2203, i 0.3172
    """
    beta, var = _recovery(crossed(4), 600, 100)
    _check(beta, np.array([-0.2555, 0.8049, -0.5259]), 0.5)
    _check(var, np.array([0.2203, 0.3172]), 1.0)


def test_bad_observed_values_and_states_are_refused() -> None:
    data = three_level(5, n_schools=10)
    t = make_batch(data)
    rngs = [np.random.default_rng(0)]
    with pytest.raises(SamplerError, match="observed values of a binary target must be 0 or 1"):
        draw_ml_bin_batch(dataclasses.replace(t, y_obs=t.y_obs * 2), rngs)
    _, state = draw_ml_bin_batch(t, rngs)
    assert isinstance(state, MultilevelBinaryState)
    with pytest.raises(SamplerError, match="not a MultilevelBinaryState"):
        draw_ml_bin_batch(t, rngs, state.main)
    with pytest.raises(SamplerError, match="not a BinaryState"):
        draw_ml_bin_batch(make_batch(data, blocks=False), rngs, state)
    bad = dataclasses.replace(state, tau=-state.tau)
    with pytest.raises(SamplerError, match="does not match 1 chain"):
        draw_ml_bin_batch(t, rngs, bad)
