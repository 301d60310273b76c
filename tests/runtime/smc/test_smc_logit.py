"""The batched Polya-Gamma update of a level-1 logit SMC model (runtime/smc/logit.py).

On complete data the update's draws are a Gibbs chain for the posterior of
``logit P(b = 1) = b0 + b1 x + u_j``; with a vague prior (N(0, 5^2) per standardised
coefficient) and 900 rows, the posterior mean is the ML estimate (glmer's, by
:func:`recipe_compiler.fit_glmm`) up to O(SE / sqrt(n)) and the posterior sd the
SE. Tolerance: 400 draws after burn-in, autocorrelation time below 5 (the Polya-Gamma
block integrates ``u`` out of ``beta``), so the mean of the draws has a Monte Carlo sd
of at most SE * sqrt(5 / 400) = 0.11 SE: 0.5 SE is about 4.5 Monte Carlo sds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

import recipe_compiler as rc
from recipe_compiler.runtime.smc.models import update_params
from recipe_compiler.runtime.smc.problem import make_smc_problem
from recipe_compiler.runtime.smc.sweep import initial_state


def test_the_batched_logit_update_centres_on_the_glmm_fit() -> None:
    rng = np.random.default_rng(8)
    g = np.repeat(np.arange(60), 15)
    x = rng.normal(size=len(g))
    b = (rng.random(len(g)) < expit(-0.4 + 0.9 * x + rng.normal(0, 0.8, 60)[g])).astype(float)
    complete = pd.DataFrame({"g": g, "x": x, "b": b, "y": x + b + rng.normal(size=len(g))})
    data = complete.assign(b=complete["b"].where(np.arange(len(g)) % 9 != 0))
    plan = rc.compile("y ~ x + b + (1 | g)", data, approach="smc")
    assert isinstance(plan, rc.ModelPlan)
    problem = make_smc_problem(plan, data)
    k = next(i for i, d in enumerate(problem.designs) if d.dependent == "b")
    design = problem.designs[k]
    assert design.x_names == ("(Intercept)", "x")
    current = initial_state(problem, [np.random.default_rng(s) for s in (1, 2)])
    current.values["b"][:] = b  # the complete data in both chains
    rngs = [np.random.default_rng(s) for s in (3, 4)]
    params = None
    draws = []
    for it in range(500):
        params = update_params(design, current.frame, current.cluster_frame, (0.0, 1.0),
                               problem.grouping, params, rngs, problem.fit_rows[k])
        if it >= 100:
            draws.append(params.beta)
    beta = np.stack(draws)  # (400, 2 chains, 2)
    fit = rc.fit_glmm("b ~ x + (1 | g)", complete)
    fixef, se = fit.fixef.to_numpy(), fit.se.to_numpy()
    for c in range(2):
        assert np.all(np.abs(beta[:, c].mean(axis=0) - fixef) < 0.5 * se)
        assert np.all(np.abs(beta[:, c].std(axis=0) / se - 1) < 0.3)
