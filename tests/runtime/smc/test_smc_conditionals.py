"""Missing-value draws of the SMC sampler against their full conditionals in closed form.

Each test fixes every model's parameters (fixed and random effects, variances), so
that the full conditional of each missing cell is a known density, then compares
many draws with it. Tolerances come from the Monte Carlo error: for K independent
standardised draws ``(draw - mean) / sd`` the sample mean has sd ``1/sqrt(K)`` and
the sample variance ``sqrt(2/K)``; the tests allow 4.5 of those (a false alarm
about once in 10^5 runs; they are seeded anyway).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

import recipe_compiler as rc
from recipe_compiler.runtime.smc.conditionals import Current, draw_target
from recipe_compiler.runtime.smc.models import Params
from recipe_compiler.runtime.smc.problem import SmcProblem, TargetInfo, make_smc_problem
from recipe_compiler.runtime.smc.sweep import initial_state

G, SIZE = 40, 6


def frame(seed: int, missing: dict[str, np.ndarray]) -> pd.DataFrame:
    """G clusters of SIZE rows: x, y level 1, z, w level 2, b binary; cells set missing."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(G), SIZE)
    d = pd.DataFrame({"g": g, "x": rng.normal(size=G * SIZE), "y": rng.normal(size=G * SIZE),
                      "z": rng.normal(size=G)[g], "w": rng.normal(size=G)[g],
                      "b": (rng.random(G * SIZE) < 0.5).astype(float)})
    for column, rows in missing.items():
        d.loc[rows, column] = np.nan
    return d


def setup(formula: str, data: pd.DataFrame, params: dict[str, Params],
          seed: int = 0) -> tuple[SmcProblem, Current, np.random.Generator]:
    plan = rc.compile(formula, data, approach="smc")
    assert isinstance(plan, rc.ModelPlan)
    problem = make_smc_problem(plan, data)
    rng = np.random.default_rng(seed)
    current = initial_state(problem, [rng])
    current.params = [one_chain(params[d.dependent]) for d in problem.designs]
    return problem, current, rng


def one_chain(p: Params) -> Params:
    """One chain's parameters as a batch of one."""
    return Params(p.beta[None], None if p.u is None else p.u[None], np.atleast_1d(p.sigma2))


def target(problem: SmcProblem, name: str) -> TargetInfo:
    return next(t for t in problem.targets if t.name == name)


def draws(problem: SmcProblem, current: Current, name: str, rng: np.random.Generator,
          n: int, scale: float = 0.0) -> np.ndarray:
    """n successive draws of the missing cells of ``name``, shape (n, n_cells)."""
    t = target(problem, name)
    cells = ~problem.observed[name]
    out = np.empty((n, int(cells.sum())))
    for k in range(n):
        draw_target(problem, current, t, np.array([scale]), [rng])
        out[k] = current.values[name][0, cells]
    return out


def check_standard_normal(z: np.ndarray) -> None:
    k = z.size
    assert abs(z.mean()) < 4.5 / np.sqrt(k)
    assert abs(z.var() - 1) < 4.5 * np.sqrt(2 / k)


def one_per_cluster(rng: np.random.Generator) -> np.ndarray:
    """One random row in each cluster."""
    return np.arange(G) * SIZE + rng.integers(0, SIZE, G)


# ----------------------------------------------------------------------------- exact normal


def test_level1_predictor_with_random_slope_and_interaction() -> None:
    """``y ~ x*z + (1 + x | g)`` and ``x ~ 1 + z + (1 | g)``: x enters y's mean with the
    coefficient ``c = b1 + b3 z + u1``, so ``x | rest`` is normal with precision
    ``1/s2x + c^2/s2y`` and mean ``(mx/s2x + c (y - b0 - b2 z - u0)/s2y) / precision``."""
    rows = one_per_cluster(np.random.default_rng(1))
    data = frame(1, {"x": rows})
    rng = np.random.default_rng(2)
    uy, ux = rng.normal(size=(G, 2)), rng.normal(size=(G, 1))
    beta_y, beta_x = np.array([0.5, 1.2, -0.4, 0.8]), np.array([0.3, 0.6])
    s2y, s2x = 0.7, 1.3
    problem, current, rng = setup("y ~ x*z + (1 + x | g)", data,
                                  {"y": Params(beta_y, uy, s2y), "x": Params(beta_x, ux, s2x)})
    assert problem.designs[0].x_names == ("(Intercept)", "x", "z", "x:z")
    got = draws(problem, current, "x", rng, 400)
    j, y, z = data["g"].to_numpy()[rows], data["y"].to_numpy()[rows], data["z"].to_numpy()[rows]
    c = beta_y[1] + beta_y[3] * z + uy[j, 1]
    mx = beta_x[0] + beta_x[1] * z + ux[j, 0]
    precision = 1 / s2x + c**2 / s2y
    mean = (mx / s2x + c * (y - beta_y[0] - beta_y[2] * z - uy[j, 0]) / s2y) / precision
    check_standard_normal((got - mean) * np.sqrt(precision))


def test_a_cluster_mean_couples_the_cell_to_its_whole_cluster() -> None:
    """``y ~ x + cm(x) + (1 | g)``: a missing x_i moves cm(x) of its n rows by x_i/n, so
    row i's mean has coefficient ``a = b1 + b2/n`` on x_i, the other rows ``b2/n``; the
    conditional is normal with precision ``1/s2x + (a^2 + (n-1)(b2/n)^2)/s2y``."""
    rows = one_per_cluster(np.random.default_rng(3))
    data = frame(3, {"x": rows})
    b = np.array([0.2, 0.9, 1.5])
    u = np.random.default_rng(4).normal(size=(G, 1))
    s2y, s2x, mx = 0.5, 1.0, 0.4
    problem, current, rng = setup("y ~ x + cm(x) + (1 | g)", data,
                                  {"y": Params(b, u, s2y),
                                   "x": Params(np.array([mx]), np.zeros((G, 1)), s2x)})
    assert target(problem, "x").batches[0].summed
    got = draws(problem, current, "x", rng, 400)
    x, y, g = (data[c].to_numpy() for c in ("x", "y", "g"))
    others = np.bincount(g, np.nan_to_num(x), minlength=G)[g[rows]]  # sum of the other x
    coef = np.where(np.isin(np.arange(G * SIZE), rows), b[1] + b[2] / SIZE, b[2] / SIZE)
    # each row's residual at x_i = 0: y - b0 - b1 x (0 for row i) - b2 (others/n) - u
    resid = y - b[0] - b[1] * np.nan_to_num(x) - b[2] * (others / SIZE)[
        np.searchsorted(g[rows], g)] - u[g, 0]
    precision = 1 / s2x + np.bincount(g, coef**2, minlength=G)[g[rows]] / s2y
    mean = (mx / s2x + np.bincount(g, coef * resid, minlength=G)[g[rows]] / s2y) / precision
    check_standard_normal((got - mean) * np.sqrt(precision))
    # observed cells and the cluster means stay consistent with them
    assert np.array_equal(current.values["x"][0, ~np.isnan(x)], x[~np.isnan(x)])
    assert np.allclose(current.means["x"][0], current.grouping.means(current.values["x"][0]))


def test_level2_value_drawn_once_per_cluster_from_the_summed_rows() -> None:
    """``y ~ x + w + (1 | g)``, ``w ~ 1 + cm(x)`` at level 2: w_j multiplies b2 in all n
    rows, so ``w_j | rest`` has precision ``1/s2w + n b2^2/s2y``."""
    missing_clusters = np.arange(5, G, 3)
    data = frame(5, {"w": np.flatnonzero(np.isin(np.repeat(np.arange(G), SIZE),
                                                 missing_clusters))})
    b = np.array([0.1, 0.7, -1.1])
    u = np.random.default_rng(6).normal(size=(G, 1))
    s2y, s2w, mw = 0.8, 0.6, -0.3
    problem, current, rng = setup("y ~ x + w + (1 | g)", data,
                                  {"y": Params(b, u, s2y),
                                   "w": Params(np.array([mw, 0.5]), None, s2w)})
    assert target(problem, "w").how == "exact normal per cluster"
    got = draws(problem, current, "w", rng, 300)[:, ::SIZE]  # one value per cluster
    x, y, g = (data[c].to_numpy() for c in ("x", "y", "g"))
    resid = np.bincount(g, y - b[0] - b[1] * x - u[g, 0], minlength=G)[missing_clusters]
    precision = 1 / s2w + SIZE * b[2] ** 2 / s2y
    prior = mw + 0.5 * np.bincount(g, x, minlength=G)[missing_clusters] / SIZE
    mean = (prior / s2w + b[2] * resid / s2y) / precision
    check_standard_normal((got - mean) * np.sqrt(precision))
    assert np.all(np.ptp(current.values["w"][0].reshape(G, SIZE), axis=1) == 0)


def test_metropolis_on_the_same_density_agrees_with_the_exact_draw() -> None:
    """The quadratic (exact) draw and random-walk MH target the same normal: MH's chain,
    after tuning, has the exact draw's mean and variance. MH draws are autocorrelated:
    the tolerance uses the chain's effective sample size (batch means of 50)."""
    rows = one_per_cluster(np.random.default_rng(7))
    data = frame(7, {"x": rows})
    problem, current, rng = setup(
        "y ~ x*z + (1 + x | g)", data,
        {"y": Params(np.array([0.5, 1.2, -0.4, 0.8]), np.full((G, 2), 0.2), 0.7),
         "x": Params(np.array([0.3, 0.6]), np.zeros((G, 1)), 1.3)})
    exact = draws(problem, current, "x", rng, 2000)
    mh_target = dataclasses.replace(target(problem, "x"), how="metropolis")
    mh_problem = dataclasses.replace(problem, targets=(problem.targets[0], mh_target))
    mh = draws(mh_problem, current, "x", rng, 6000, scale=0.6)[1000:]
    mean, sd = exact.mean(axis=0), exact.std(axis=0)
    batches = ((mh - mean) / sd).reshape(-1, 50, G).mean(axis=1)  # (100, G) batch means
    se = batches.std(axis=0, ddof=1) / np.sqrt(len(batches))
    z = ((mh - mean) / sd).mean(axis=0) / np.sqrt(se**2 + 1 / len(exact))
    assert np.abs(z).max() < 4.5  # G = 40 cells
    assert abs(float(np.mean(mh.var(axis=0) / exact.var(axis=0))) - 1) < 0.1


# ----------------------------------------------------------------------------- binary


def test_binary_values_are_enumerated_exactly() -> None:
    """``y ~ b + (1 | g)``, ``logit P(b = 1) = a0 + v_j``: P(b = 1 | y) is
    ``expit(eta) N(y; b0 + b1 + u) / (that + (1 - expit(eta)) N(y; b0 + u))``; the
    frequency of 1 over n draws has sd ``sqrt(p (1 - p) / n)``."""
    rows = one_per_cluster(np.random.default_rng(8))
    data = frame(8, {"b": rows})
    b, u, s2y = np.array([0.2, 1.4]), np.random.default_rng(9).normal(size=(G, 1)), 0.9
    v = np.random.default_rng(10).normal(size=(G, 1))
    problem, current, rng = setup("y ~ b + (1 | g)", data,
                                  {"y": Params(b, u, s2y), "b": Params(np.array([-0.3]), v, 1.0)})
    assert target(problem, "b").how == "enumerate"
    n = 2000
    got = draws(problem, current, "b", rng, n)
    assert set(np.unique(got)) == {0.0, 1.0}
    y, j = data["y"].to_numpy()[rows], data["g"].to_numpy()[rows]
    log1 = np.log(expit(-0.3 + v[j, 0])) - (y - b[0] - b[1] - u[j, 0]) ** 2 / (2 * s2y)
    log0 = np.log(expit(0.3 - v[j, 0])) - (y - b[0] - u[j, 0]) ** 2 / (2 * s2y)
    p = expit(log1 - log0)
    z = (got.mean(axis=0) - p) / np.sqrt(p * (1 - p) / n)
    assert np.abs(z).max() < 4.5


@pytest.mark.parametrize("labels", [("boy", "girl"), (False, True)])
def test_categorical_binary_columns_are_drawn_as_their_labels(labels: tuple) -> None:
    data = frame(11, {"b": one_per_cluster(np.random.default_rng(11))})
    codes = data["b"].to_numpy()
    column = pd.Series(pd.Categorical.from_codes(np.nan_to_num(codes, nan=0).astype(int),
                                                 categories=list(labels)))
    data["b"] = column.where(~np.isnan(codes))
    imp = rc.impute(data, "y ~ C(b) + x + (1 | g)", approach="smc", m=1, maxit=3, seed=1)
    assert imp.plan.draws["b"].how == "enumerate"
    done = imp.complete(1)["b"]
    assert done.notna().all() and set(done) <= set(labels)
    assert done[data["b"].notna()].equals(data["b"][data["b"].notna()])
