"""ml.norm / ml.pmm (``normal_ml``): reduction to 2l, posterior recovery, predictive
variance, chain independence and state checks.

The chains run ``draw_ml_batch`` visit after visit as the Gibbs loop does (one sweep
per visit, warm-started). Data are simulated with fixed seeds, so every test is
deterministic; each tolerance is stated and derived where it is checked.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from recipe_compiler.data.grouping import Grouping
from recipe_compiler.errors import SamplerError
from recipe_compiler.runtime.samplers import get_sampler
from recipe_compiler.runtime.samplers.common import Recovery, as_batch, centred_design
from recipe_compiler.runtime.samplers.normal_2l import (
    TwoLevelBatchState,
    chain_moments,
    draw_2l_batch,
)
from recipe_compiler.runtime.samplers.normal_ml import (
    MultilevelBatchState,
    _minus,
    draw_ml_batch,
    marginal_moments,
    nested_parent,
    z_sums,
)
from recipe_compiler.runtime.samplers.registry import TargetBatch

BETA = np.array([1.0, 0.5, -0.3])
OMEGA = np.array([[0.3, 0.05], [0.05, 0.15]])
TAU_SCHOOL = 0.4


def three_level(seed: int, n_schools: int = 100, n_classes: int = 5,
                n_pupils: int = 8) -> dict:
    """Pupils in classes in schools: ``y = 1 + 0.5 x1 - 0.3 w + u_0 + u_1 x1 + v + e``.

    ``x1`` at level 1, ``w`` at the class level; class effects ``(u_0, u_1) ~ N(0,
    OMEGA)``, school intercepts ``v ~ N(0, 0.4)``, ``e ~ N(0, 1)``; 30% of y missing
    completely at random. Rows sorted by school and class (as the runtime keeps them).
    """
    rng = np.random.default_rng(seed)
    n_cls = n_schools * n_classes
    school = np.repeat(np.arange(n_schools), n_classes * n_pupils)
    cls = np.repeat(np.arange(n_cls), n_pupils)
    n = len(cls)
    x1 = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x1, rng.normal(size=n_cls)[cls]])
    Z = np.column_stack([np.ones(n), x1])
    u = rng.multivariate_normal(np.zeros(2), OMEGA, size=n_cls)
    v = rng.normal(scale=np.sqrt(TAU_SCHOOL), size=n_schools)
    mean = X @ BETA + np.einsum("ij,ij->i", Z, u[cls]) + v[school]
    y = mean + rng.normal(size=n)
    return {"y": y, "mean": mean, "X": X, "Z": Z, "main": Grouping(cls, n_cls),
            "blocks": [Grouping(school, n_schools)], "observed": rng.random(n) > 0.3}


def crossed(seed: int, n_raters: int = 40, n_items: int = 30) -> dict:
    """Raters crossed with items: ``y = 1 + 0.5 x1 - 0.3 w + a_rater + b_item + e``,
    ``a ~ N(0, 0.5)``, ``b ~ N(0, 0.3)``, ``w`` an item covariate, 30% of y MCAR."""
    rng = np.random.default_rng(seed)
    rater = np.repeat(np.arange(n_raters), n_items)
    item = np.tile(np.arange(n_items), n_raters)
    n = len(rater)
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.normal(size=n_items)[item]])
    mean = (X @ BETA + rng.normal(scale=np.sqrt(0.5), size=n_raters)[rater]
            + rng.normal(scale=np.sqrt(0.3), size=n_items)[item])
    return {"y": mean + rng.normal(size=n), "mean": mean, "X": X, "Z": np.ones((n, 1)),
            "main": Grouping(rater, n_raters), "blocks": [Grouping(item, n_items)],
            "observed": rng.random(n) > 0.3}


def two_blocks(seed: int) -> dict:
    """The three-level data with a second block crossed with the classes: 20
    neighbourhoods drawn at random per pupil (no effect in the truth)."""
    data = three_level(seed)
    hood = np.random.default_rng(seed + 1).integers(20, size=len(data["y"]))
    return {**data, "blocks": [*data["blocks"], Grouping(hood, 20)]}


def four_level(seed: int) -> dict:
    """The three-level data with the schools in 20 districts of 5 (a second nested block;
    no district effect in the truth)."""
    data = three_level(seed)
    district = data["blocks"][0].codes // 5
    return {**data, "blocks": [*data["blocks"], Grouping(district, 20)]}


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


def run(t: TargetBatch, visits: int, seed: int, pmm: bool = False
        ) -> tuple[np.ndarray, list[MultilevelBatchState]]:
    rngs = [np.random.default_rng(seed)]
    state = None
    draws, states = [], []
    for _ in range(visits):
        out, state = draw_ml_batch(t, rngs, state, pmm=pmm)
        assert isinstance(state, MultilevelBatchState)
        draws.append(out[0])
        states.append(state)
    return np.array(draws), states


@pytest.mark.parametrize("pmm", [False, True])
def test_without_blocks_is_the_two_level_sampler(pmm: bool) -> None:
    """blocks=() delegates to draw_2l_batch: identical draws and states, visit after visit,
    also through the registry ("multilevel_*" against "mixed_normal*")."""
    t = make_batch(three_level(1), chains=2, blocks=False)
    ml_key, twol_key = ("multilevel_pmm", "mixed_normal_pmm") if pmm else \
        ("multilevel_normal", "mixed_normal")
    rngs_a = [np.random.default_rng(s) for s in (3, 4)]
    rngs_b = [np.random.default_rng(s) for s in (3, 4)]
    rngs_c = [np.random.default_rng(s) for s in (3, 4)]
    sa = sb = sc = None
    for _ in range(4):
        a, sa = draw_ml_batch(t, rngs_a, sa, pmm=pmm)
        b, sb = draw_2l_batch(t, rngs_b, sb, pmm=pmm)
        c, sc = get_sampler(ml_key)(t, rngs_c, sc)  # type: ignore[call-arg]
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(c, b)
        assert isinstance(sa, TwoLevelBatchState) and isinstance(sb, TwoLevelBatchState)
        np.testing.assert_array_equal(sa.omega, sb.omega)
        np.testing.assert_array_equal(sa.beta, sb.beta)
    d, _ = get_sampler(twol_key)(t, [np.random.default_rng(s) for s in (3, 4)],  # type: ignore
                                 None)
    first, _ = draw_ml_batch(t, [np.random.default_rng(s) for s in (3, 4)], None, pmm=pmm)
    np.testing.assert_array_equal(d, first)


def posterior(states: list[MultilevelBatchState], burn: int) -> dict[str, np.ndarray]:
    kept = states[burn:]
    return {"beta": np.array([s.main.beta[0] for s in kept]),
            "omega": np.array([s.main.omega[0] for s in kept]),
            "sigma2": np.array([s.main.sigma2[0] for s in kept]),
            "tau": np.array([s.tau[0] for s in kept])}


def check_recovery(value: np.ndarray, truth: float | np.ndarray, what: str) -> None:
    """|posterior mean - truth| < 4 posterior sd + 0.02.

    The posterior sd stands for the sampling error of the posterior mean around the
    truth (large-sample agreement of posterior and sampling distribution), so 4 sd
    leave a 1-in-15,000 chance per check (normal tails) for a correct sampler. The
    Monte Carlo error of the mean over 2,000 visits with lag-1 autocorrelation at
    most 0.8 (measured) is below sd / 10 and within the 0.02 slack.
    """
    mean, sd = value.mean(axis=0), value.std(axis=0)
    assert np.all(np.abs(mean - truth) < 4 * sd + 0.02), (what, mean, sd, truth)


@pytest.mark.slow
def test_recovers_a_three_level_model() -> None:
    """100 schools x 5 classes x 8 pupils, 30% of y MCAR: posterior means of beta,
    Omega, sigma2 and the school variance near the data-generating values."""
    data = three_level(11)
    _, states = run(make_batch(data), 2200, seed=5)
    post = posterior(states, 200)
    check_recovery(post["beta"], BETA, "beta")
    check_recovery(post["omega"][:, 0, 0], OMEGA[0, 0], "Omega[0, 0]")
    check_recovery(post["omega"][:, 1, 1], OMEGA[1, 1], "Omega[1, 1]")
    check_recovery(post["sigma2"], 1.0, "sigma2")
    check_recovery(post["tau"][:, 0], TAU_SCHOOL, "tau (school)")
    # the split between school and class intercepts is identified: both clearly positive
    assert post["tau"][:, 0].mean() > 0.2 and post["omega"][:, 0, 0].mean() > 0.15


@pytest.mark.slow
def test_recovers_a_crossed_model() -> None:
    """40 raters x 30 items, 30% of y MCAR: beta, rater variance (Omega), item variance
    (tau) and sigma2 near the data-generating values."""
    data = crossed(12)
    _, states = run(make_batch(data), 2200, seed=6)
    post = posterior(states, 200)
    check_recovery(post["beta"], BETA, "beta")
    check_recovery(post["omega"][:, 0, 0], 0.5, "rater variance")
    check_recovery(post["tau"][:, 0], 0.3, "item variance")
    check_recovery(post["sigma2"], 1.0, "sigma2")


@pytest.mark.parametrize("design", [three_level, crossed])
def test_intercept_and_block_effects_mix(design) -> None:
    """The intercept is drawn with each block integrated out, so it does not crawl along
    the ridge with the mean of the block's effects: lag-1 autocorrelation < 0.3
    (measured 0.01 on the three-level data; drawing v given the intercept and the
    intercept given v instead gives 0.73 there)."""
    _, states = run(make_batch(design(13)), 600, seed=7)
    intercept = np.array([s.main.beta[0, 0] for s in states[100:]])
    centred = intercept - intercept.mean()
    assert centred[1:] @ centred[:-1] / (centred @ centred) < 0.3


def test_nested_block_leaves_the_start_at_once() -> None:
    """The school effects are drawn with the class effects integrated out, so from the
    start v = 0 the school variance (truth 0.4) exceeds 0.3 at the second visit:
    drawn given the class effects, which absorbed the school effects at the first
    sweep, it creeps up instead (0.10, 0.11, 0.13, ... measured)."""
    _, states = run(make_batch(three_level(11)), 2, seed=5)
    assert states[1].tau[0, 0] > 0.3


def test_marginal_precision_matches_dense_algebra() -> None:
    """``Marginal`` (Woodbury from the cluster moments) against ``V_c^-1`` formed and
    inverted densely for every class: ``1'V_c^-1 1`` and ``1'V_c^-1 r_c`` to 1e-10."""
    data = three_level(18, n_schools=4, n_classes=3, n_pupils=5)
    t = make_batch(data, chains=2)
    design = centred_design(t.x_obs, t.x_offset, Recovery("y"))
    ys = (t.y_obs - t.y_obs.mean()) / t.y_obs.std()
    mom, z_scale = chain_moments(t.x_obs, t.z_obs, t.g_obs, design, ys, "y")
    omega = np.array([[[0.5, 0.1], [0.1, 0.3]], [[0.2, -0.05], [-0.05, 0.4]]])
    sigma2 = np.array([0.8, 1.3])
    rest = np.random.default_rng(0).normal(size=(2, len(ys)))
    marginal = marginal_moments(mom, np.linalg.inv(omega), sigma2, Recovery("y"))
    score = marginal.score(z_sums(t, z_scale, rest))
    assert t.z_obs is not None
    z_rows = np.concatenate([np.ones((2, 1, len(ys))), t.z_obs], axis=1) / z_scale[:, :, None]
    for c in range(2):
        for g in range(t.g_obs.n):
            rows = t.g_obs.codes == g
            z = z_rows[c][:, rows].T
            v_inv = np.linalg.inv(sigma2[c] * np.eye(rows.sum()) + z @ omega[c] @ z.T)
            assert marginal.info[c, g] == pytest.approx(v_inv.sum(), rel=1e-10, abs=1e-12)
            assert score[c, g] == pytest.approx((v_inv @ rest[c, rows]).sum(), rel=1e-10,
                                                abs=1e-12)


def test_moments_of_nested_blocks_come_from_the_clusters() -> None:
    """``_minus`` takes a nested block's part from the cluster moments and a crossed
    block's from the rows; both agree with the row pass for every block (1e-10)."""
    data = two_blocks(19)
    t = make_batch(data, chains=2)
    design = centred_design(t.x_obs, t.x_offset, Recovery("y"))
    ys = (t.y_obs - t.y_obs.mean()) / t.y_obs.std()
    mom, z_scale = chain_moments(t.x_obs, t.z_obs, t.g_obs, design, ys, "y")
    rng = np.random.default_rng(1)
    v = [rng.normal(size=(2, g.n)) for g, _ in t.blocks]
    parents = [nested_parent(t.grouping, g, g_mis, t.observed) for g, g_mis in t.blocks]
    assert parents[0] is not None and parents[1] is None  # schools nested, hoods crossed
    fast = _minus(mom, t, design, z_scale, v, parents)
    rows = _minus(mom, t, design, z_scale, v, [None, None])
    np.testing.assert_allclose(fast.ztr, rows.ztr, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(fast.xtr, rows.xtr, rtol=1e-10, atol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("design", [two_blocks, four_level])
def test_recovers_the_school_variance_beside_a_null_block(design) -> None:
    """With a second block of no effect (crossed neighbourhoods, or districts above the
    schools) the school variance and Omega are still recovered (as in
    :func:`check_recovery`) and the null block's variance stays small: posterior mean
    below 0.1, a quarter of the school variance (measured 0.006 for neighbourhoods,
    0.023 for districts, whose 20 cluster means carry the schools' noise)."""
    _, states = run(make_batch(design(11)), 1000, seed=5)
    post = posterior(states, 200)
    check_recovery(post["tau"][:, 0], TAU_SCHOOL, "tau (school)")
    check_recovery(post["omega"][:, 0, 0], OMEGA[0, 0], "Omega[0, 0]")
    check_recovery(post["beta"], BETA, "beta")
    assert post["tau"][:, 1].mean() < 0.1


def test_norm_draws_have_the_predictive_variance() -> None:
    """ml.norm's draws of each missing y, over 400 visits, form its posterior predictive
    distribution; the true (held-out) y falls within their central 50% and 90%
    intervals at those rates. Per interval ~1,200 rows: binomial sd <= 0.015 (the
    rows share class and school effects, which correlates them a little), so the
    coverage must be within 0.05 of nominal. Too small a predictive variance (say
    sigma2 alone, no uncertainty in the effects) would cover ~0.83 instead of 0.90.
    The draws' mean deviation from the truth averages the effects' posterior error
    over 500 classes (sd ~ 0.03): |mean| < 0.1."""
    data = three_level(14)
    draws, _ = run(make_batch(data), 500, seed=8)
    truth = data["y"][~data["observed"]]
    kept = draws[100:]
    for level in (0.5, 0.9):
        low, high = np.quantile(kept, [(1 - level) / 2, (1 + level) / 2], axis=0)
        coverage = np.mean((truth >= low) & (truth <= high))
        assert abs(coverage - level) < 0.05, (level, coverage)
    assert abs(np.mean(kept - truth)) < 0.1


def test_pmm_imputes_observed_values_near_their_prediction() -> None:
    """ml.pmm imputes observed values only; their mean squared deviation from the true
    conditional mean is about that of ml.norm's draws, sigma2 (1) plus twice the
    posterior variance of the mean (draw around the posterior mean, posterior mean
    around the truth: ~2 x 0.22, measured 1.45 for ml.norm): in [1.2, 1.8]."""
    data = three_level(15)
    draws, _ = run(make_batch(data), 300, seed=9, pmm=True)
    assert np.isin(draws, data["y"][data["observed"]]).all()
    dev = draws[100:] - data["mean"][~data["observed"]]
    assert 1.2 < np.mean(dev**2) < 1.8
    assert abs(dev.mean()) < 0.1


@pytest.mark.parametrize("pmm", [False, True])
@pytest.mark.parametrize("design", [three_level, crossed, two_blocks, four_level])
def test_chains_are_independent_and_deterministic(design, pmm: bool) -> None:
    """Chain c of a batch of three draws what it draws alone (same generator seed), visit
    after visit; a rerun with the same seeds repeats every draw."""
    data = design(16)
    seeds = (21, 22, 23)

    def visits(chains: tuple[int, ...]) -> list[np.ndarray]:
        t = make_batch(data, chains=len(chains))
        rngs = [np.random.default_rng(s) for s in chains]
        state, out = None, []
        for _ in range(3):
            draw, state = draw_ml_batch(t, rngs, state, pmm=pmm)
            out.append(draw)
        return out

    batch = visits(seeds)
    np.testing.assert_array_equal(np.array(batch), np.array(visits(seeds)))
    for c, seed in enumerate(seeds):
        alone = visits((seed,))
        for a, b in zip(alone, batch, strict=True):
            np.testing.assert_allclose(a[0], b[c], rtol=1e-12, atol=1e-12)
    assert not np.allclose(batch[-1][0], batch[-1][1])


def test_refuses_a_state_that_does_not_fit() -> None:
    """A two-level state, or one with the wrong number of blocks, is a SamplerError."""
    t = make_batch(three_level(17))
    rngs = [np.random.default_rng(1)]
    _, state = draw_ml_batch(t, rngs, None)
    assert isinstance(state, MultilevelBatchState)
    with pytest.raises(SamplerError, match="MultilevelBatchState"):
        draw_ml_batch(t, rngs, state.main)
    bad = dataclasses.replace(state, tau=np.ones((1, 2)))
    with pytest.raises(SamplerError, match="does not match"):
        draw_ml_batch(t, rngs, bad)
    with pytest.raises(SamplerError, match="random design"):
        get_sampler("multilevel_pmm")(dataclasses.replace(t, z_obs=None, z_mis=None),  # type: ignore
                                      rngs, None)
