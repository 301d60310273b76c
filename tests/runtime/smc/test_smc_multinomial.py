"""Nominal (multinomial logit) SMC models: exact enumeration against closed forms, and the
batched Polya-Gamma update against the truth.

The draws are checked as in ``test_smc_conditionals.py``: every parameter is fixed, so
each missing cell's category has known probabilities ``p``; over ``n`` independent
draws the frequency of a category has sd ``sqrt(p (1 - p) / n)`` and the tests allow
4.5 of those (a false alarm about once in 10^5 per cell; seeded anyway). The update
is checked on complete data: its draws are a Gibbs chain for the posterior, whose
mean lies within a few posterior sds (about the SEs) of the truth; 4 sds plus the
Monte Carlo error of the mean of 300 autocorrelated draws (under 0.3 sd) is the bound.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import logsumexp

import recipe_compiler as rc
from recipe_compiler.runtime.samplers.normal_2l import TwoLevelBatchState
from recipe_compiler.runtime.smc.conditionals import Current, draw_target
from recipe_compiler.runtime.smc.models import Params, log_density, update_params
from recipe_compiler.runtime.smc.problem import SmcProblem, make_smc_problem
from recipe_compiler.runtime.smc.sweep import initial_state

G, SIZE = 40, 6
LABELS = np.array(["a", "b", "c"])


def nominal_frame(seed: int, level2: bool) -> pd.DataFrame:
    """G clusters of SIZE rows: y, x level 1 and k, a 3-category column (level 2 if
    ``level2``), missing in one row per cluster (level 1) or in every third cluster."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(G), SIZE)
    codes = rng.integers(0, 3, G)[g] if level2 else rng.integers(0, 3, G * SIZE)
    codes[:3 * SIZE] = np.repeat([0, 1, 2], SIZE)  # every category observed
    d = pd.DataFrame({"g": g, "y": rng.normal(size=G * SIZE), "x": rng.normal(size=G * SIZE),
                      "k": pd.Categorical(LABELS[codes])})
    missing = (g % 3 == 2) if level2 else np.isin(np.arange(G * SIZE),
                                                  np.arange(3, G) * SIZE + 1)
    d.loc[missing, "k"] = np.nan
    return d


def normal(beta: np.ndarray, u: np.ndarray, sigma2: float, tau2: float) -> Params:
    """A level-1 normal model's parameters (one chain) with its random-intercept variance."""
    s2 = np.array([sigma2])
    return Params(beta[None], u[None], s2,
                  TwoLevelBatchState(beta[None], u[None], np.array([[[tau2]]]), s2))


def multinomial(betas: list[np.ndarray], us: list[np.ndarray | None]) -> Params:
    """A multinomial model's parameters (one chain) from each category's."""
    cats = [Params(b[None], None if u is None else u[None], np.ones(1))
            for b, u in zip(betas, us, strict=True)]
    u = None if us[0] is None else np.concatenate([c.u for c in cats], axis=2)
    return Params(np.concatenate([c.beta for c in cats], axis=1), u, np.ones(1),
                  categories=tuple(cats))


def setup(formula: str, data: pd.DataFrame, params: dict[str, Params]
          ) -> tuple[SmcProblem, Current, np.random.Generator]:
    plan = rc.compile(formula, data, approach="smc")
    assert isinstance(plan, rc.ModelPlan)
    problem = make_smc_problem(plan, data)
    rng = np.random.default_rng(0)
    current = initial_state(problem, [rng])
    current.params = [params[d.dependent] for d in problem.designs]
    return problem, current, rng


def frequencies(problem: SmcProblem, current: Current, rng: np.random.Generator, n: int,
                after: list | None = None) -> np.ndarray:
    """Over n draws, how often each missing cell of k takes each category, (cells, 3)."""
    t = next(t for t in problem.targets if t.name == "k")
    cells = ~problem.observed["k"]
    counts = np.zeros((int(cells.sum()), 3))
    for _ in range(n):
        draw_target(problem, current, t, np.zeros(1), [rng])
        counts[np.arange(len(counts)), current.values["k"][0, cells].astype(int)] += 1
        if after is not None:  # the outcome model's intercepts and the cells' categories
            after.append((current.params[0].u[0, :, 0].copy(),
                          current.values["k"][0, cells].copy()))
    return counts / n


def check(freq: np.ndarray, p: np.ndarray, n: int) -> None:
    z = (freq - p) / np.sqrt(np.maximum(p * (1 - p), 1e-12) / n)
    assert np.abs(z).max() < 4.5, np.abs(z).max()


def test_level1_nominal_values_are_enumerated_exactly() -> None:
    """``y ~ x + C(k) + (1 | g)`` and ``log P(k = c) / P(k = a) = a_c + v_jc``:
    ``P(k = c | y) ~ softmax(a + v_j)_c N(y; b0 + b1 x + b_c + u_j, s2)``."""
    data = nominal_frame(1, level2=False)
    rng = np.random.default_rng(2)
    beta = np.array([0.3, 0.5, 1.2, -0.9])
    u, v = rng.normal(size=(G, 1)), rng.normal(size=(2, G, 1))
    a = np.array([0.0, -0.4, 0.3])
    problem, current, rng = setup("y ~ x + C(k) + (1 | g)", data, {
        "y": normal(beta, u, 0.8, 1.0),
        "k": multinomial([np.array([a[1], 0.0]), np.array([a[2], 0.0])], [v[0], v[1]])})
    assert problem.designs[1].n_categories == 3
    assert next(t for t in problem.targets if t.name == "k").how == "enumerate"
    n = 2000
    freq = frequencies(problem, current, rng, n)
    rows = np.flatnonzero(~problem.observed["k"])
    y, x, j = (data[c].to_numpy()[rows] for c in ("y", "x", "g"))
    eta = np.column_stack([np.zeros(len(rows)), a[1] + v[0, j, 0], a[2] + v[1, j, 0]])
    mean = beta[0] + beta[1] * x + u[j, 0]
    logs = eta - (y[:, None] - mean[:, None] - np.r_[0.0, beta[2:]]) ** 2 / (2 * 0.8)
    check(freq, np.exp(logs - logsumexp(logs, axis=1, keepdims=True)), n)
    # the model's log density is the multinomial logit's
    design, params = problem.designs[1], current.params[1]
    got = log_density(design, params, current.frame, None)[0]
    codes = current.values["k"][0].astype(int)
    g = data["g"].to_numpy()
    full = np.column_stack([np.zeros(len(g)), a[1] + v[0, g, 0], a[2] + v[1, g, 0]])
    want = full[np.arange(len(g)), codes] - logsumexp(full, axis=1)
    assert np.allclose(got, want)


def test_level2_nominal_is_drawn_per_cluster_with_the_random_intercept_integrated_out() -> None:
    """``y ~ x + C(k) + (1 | g)`` with a level-2 ``k``, ``P(k = c) = softmax(a)_c``: with
    the random intercept (variance t2) integrated out, ``P(k_j = c | y_j)`` is ``softmax(a)_c``
    times the normal density of the cluster's residuals ``r = y - b0 - b1 x - b_c`` with
    covariance ``s2 I + t2 J``, i.e. ``exp(-(r'r - t2 (sum r)^2 / (s2 + n t2)) / (2 s2))``.
    The intercept is then drawn from ``N(t2 sum r / (s2 + n t2), s2 t2 / (s2 + n t2))``."""
    data = nominal_frame(3, level2=True)
    beta = np.array([0.3, 0.5, 1.2, -0.9])
    s2, t2 = 0.8, 0.6
    u = np.random.default_rng(4).normal(size=(G, 1))
    a = np.array([0.0, -0.4, 0.3])
    problem, current, rng = setup("y ~ x + C(k) + (1 | g)", data, {
        "y": normal(beta, u, s2, t2),
        "k": multinomial([np.array([a[1], 0.0]), np.array([a[2], 0.0])], [None, None])})
    assert problem.plan.draws["k"].how == "enumerate" and problem.designs[1].level == 2
    n = 2000
    intercepts: list = []
    freq = frequencies(problem, current, rng, n, intercepts)[::SIZE]  # one row per cluster
    clusters = np.arange(2, G, 3)
    g, y, x = (data[c].to_numpy() for c in ("g", "y", "x"))
    r = (y - beta[0] - beta[1] * x)[:, None] - np.r_[0.0, beta[2:]]  # (rows, 3)
    rr = np.stack([np.bincount(g, r[:, c] ** 2, minlength=G) for c in range(3)], axis=1)
    sr = np.stack([np.bincount(g, r[:, c], minlength=G) for c in range(3)], axis=1)
    logs = a - (rr - t2 * sr**2 / (s2 + SIZE * t2)) / (2 * s2)
    p = np.exp(logs - logsumexp(logs, axis=1, keepdims=True))[clusters]
    check(freq, p, n)
    # each missing cluster's intercept is drawn given the category just drawn: standardised
    # by that conditional, the n x 13 draws are independent standard normals (mean within
    # 4.5 / sqrt(K) of 0, variance within 4.5 sqrt(2 / K) of 1); the others are kept
    drawn = np.array([d[0] for d in intercepts])
    category = np.array([d[1][::SIZE] for d in intercepts]).astype(int)  # (n, clusters)
    mean = t2 * sr[clusters, category] / (s2 + SIZE * t2)
    z = (drawn[:, clusters] - mean) / np.sqrt(s2 * t2 / (s2 + SIZE * t2))
    assert abs(z.mean()) < 4.5 / np.sqrt(z.size)
    assert abs(z.var() - 1) < 4.5 * np.sqrt(2 / z.size)
    kept = np.setdiff1d(np.arange(G), clusters)
    assert np.array_equal(drawn[:, kept], np.broadcast_to(u[kept, 0], (n, len(kept))))


def test_the_batched_multinomial_update_recovers_the_truth() -> None:
    """Complete data from ``log P(k = c) / P(k = a) = a_c + b_c x + v_jc``, 80 clusters of
    25: the posterior means of ``(a_c, b_c)`` are within 4 posterior sds of the truth."""
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(80), 25)
    x = rng.normal(size=len(g))
    eta = np.column_stack([np.zeros(len(g)), -0.2 + 0.8 * x + rng.normal(0, 0.7, 80)[g],
                           0.2 - 0.6 * x + rng.normal(0, 0.7, 80)[g]])
    prob = np.exp(eta - logsumexp(eta, axis=1, keepdims=True))
    codes = (rng.random(len(g))[:, None] > prob.cumsum(axis=1)).sum(axis=1)
    complete = pd.DataFrame({"g": g, "x": x, "k": pd.Categorical(LABELS[codes]),
                             "y": x + codes + rng.normal(size=len(g))})
    data = complete.assign(k=complete["k"].where(np.arange(len(g)) % 9 != 0))
    plan = rc.compile("y ~ x + C(k) + (1 | g)", data, approach="smc")
    assert isinstance(plan, rc.ModelPlan) and plan.model("k").family == "multinomial"
    problem = make_smc_problem(plan, data)
    k = next(i for i, d in enumerate(problem.designs) if d.dependent == "k")
    current = initial_state(problem, [np.random.default_rng(s) for s in (1, 2)])
    current.values["k"][:] = codes
    rngs = [np.random.default_rng(s) for s in (3, 4)]
    params = None
    draws = []
    for it in range(400):
        params = update_params(problem.designs[k], current.frame, current.cluster_frame, None,
                               problem.grouping, params, rngs, problem.fit_rows[k])
        if it >= 100:
            draws.append(params.beta)
    beta = np.stack(draws)  # (300, 2 chains, 4): (a_b, b_b, a_c, b_c)
    truth = np.array([-0.2, 0.8, 0.2, -0.6])
    for c in range(2):
        assert np.all(np.abs(beta[:, c].mean(axis=0) - truth) < 4 * beta[:, c].std(axis=0))
    assert params is not None and params.u is not None and params.u.shape == (2, 80, 2)
    omega = np.array([p.warm.omega[:, 0, 0] for p in params.categories])
    assert np.all((omega > 0.1) & (omega < 2.0))  # truth 0.49


def test_the_level2_multinomial_update_recovers_the_truth() -> None:
    """Level 2: 1500 clusters of 2 rows, ``log P(w = c) / P(w = a) = a_c + b_c z``; the
    posterior means within 4 posterior sds of the truth."""
    rng = np.random.default_rng(6)
    n = 1500
    z = rng.normal(size=n)
    eta = np.column_stack([np.zeros(n), 0.2 + 0.8 * z, -0.1 - 0.6 * z])
    prob = np.exp(eta - logsumexp(eta, axis=1, keepdims=True))
    codes = (rng.random(n)[:, None] > prob.cumsum(axis=1)).sum(axis=1)
    g = np.repeat(np.arange(n), 2)
    data = pd.DataFrame({"g": g, "z": z[g], "w": pd.Categorical(LABELS[codes][g]),
                         "y": rng.normal(size=2 * n)})
    data.loc[g % 10 == 0, "w"] = np.nan
    plan = rc.compile("y ~ z + C(w) + (1 | g)", data, approach="smc")
    assert isinstance(plan, rc.ModelPlan) and plan.model("w").level == 2
    problem = make_smc_problem(plan, data)
    k = next(i for i, d in enumerate(problem.designs) if d.dependent == "w")
    current = initial_state(problem, [np.random.default_rng(1)])
    current.values["w"][:] = codes[g]
    current.means["w"][:] = codes
    params = None
    draws = []
    rngs = [np.random.default_rng(2)]
    for it in range(300):
        params = update_params(problem.designs[k], current.frame, current.cluster_frame, None,
                               problem.grouping, params, rngs, problem.fit_rows[k])
        if it >= 50:
            draws.append(params.beta[0])
    beta = np.stack(draws)  # (a_b, b_b, a_c, b_c)
    truth = np.array([0.2, 0.8, -0.1, -0.6])
    assert np.all(np.abs(beta.mean(axis=0) - truth) < 4 * beta.std(axis=0))
