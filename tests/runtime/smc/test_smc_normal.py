"""The level-1 normal update from cluster sums (runtime/smc/normal.py) against the rows.

The sweep's moments come from per-cluster sums of the fixed rows (once) plus the
moving rows (each sweep); they must equal, to rounding, the moments the runtime's
row-based kernels (``centred_design`` + ``chain_moments``) give on the same
completed data. Rounding: the two sum the same products in a different order over
a few hundred rows, so ``rtol = 1e-9`` (float64 gives ~1e-13) is loose and still
catches any algebraic slip (those are O(1) relative errors).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

import recipe_compiler as rc
from recipe_compiler.runtime.samplers.common import Recovery
from recipe_compiler.runtime.smc import normal
from recipe_compiler.runtime.smc.problem import SmcProblem, make_smc_problem
from recipe_compiler.runtime.smc.sweep import initial_state

FORMULA = "y ~ x*z + cm(x) + (1 + x | g)"


@pytest.fixture(scope="module")
def problem(make_frame: Callable[..., pd.DataFrame]) -> SmcProblem:
    frame = make_frame(level1=("y", "x"), level2=("z",), missing={"y": 0.2, "x": 0.2},
                       seed=4, n_clusters=20, cluster_size=(5, 12))
    plan = rc.compile(FORMULA, frame, approach="smc")
    assert isinstance(plan, rc.ModelPlan)
    return make_smc_problem(plan, frame)


def test_the_moments_from_cluster_sums_equal_those_from_the_rows(problem: SmcProblem) -> None:
    current = initial_state(problem, [np.random.default_rng(s) for s in range(3)])
    checked = 0
    for design, split in zip(problem.designs, problem.splits, strict=True):
        if split is None:
            continue
        # the moving rows are few: cm(x) moves the clusters with a missing x, not all rows
        assert 0 < len(split.moving) < len(split.fit)
        sums = normal._cluster_sums(design, current.frame, split)
        fast = normal._from_sums(sums, split, len(design.fixed))
        assert fast is not None
        slow = normal._from_rows(design, current.frame, split, Recovery(design.dependent))
        for name in ("ztz", "ztx", "ztr", "xtx", "xtr", "yty", "z_scale", "y_center",
                     "y_scale"):
            np.testing.assert_allclose(getattr(fast, name), getattr(slow, name), rtol=1e-9,
                                       atol=1e-9, err_msg=name)
        np.testing.assert_allclose(fast.design.center + fast.design.offset,
                                   slow.design.center + slow.design.offset, rtol=1e-9)
        checked += 1
    assert checked == 2  # y's and x's models


def test_a_constant_predictor_takes_the_row_path_and_is_dropped() -> None:
    rng = np.random.default_rng(0)
    d = pd.DataFrame({"g": np.repeat(np.arange(30), 8), "x": rng.normal(size=240),
                      "k": np.full(240, 3.0)})
    d["y"] = d["x"] + rng.normal(size=240)
    d.loc[::7, "y"] = np.nan
    d.loc[::11, "x"] = np.nan
    plan = rc.compile("y ~ x + k + (1 | g)", d, approach="smc")
    assert isinstance(plan, rc.ModelPlan)
    prob = make_smc_problem(plan, d)
    current = initial_state(prob, [np.random.default_rng(1)])
    design, split = prob.designs[0], prob.splits[0]
    assert split is not None
    assert normal._from_sums(normal._cluster_sums(design, current.frame, split), split,
                             len(design.fixed)) is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        imp = rc.impute(d, plan, m=1, maxit=3, seed=2)
    assert any("dropped constant predictor column(s) [2]" in str(w.message) for w in caught)
    assert imp.complete(1).notna().all().all()


def test_unrolled_cholesky_and_solves_match_lapack() -> None:
    rng = np.random.default_rng(3)
    q, r, chains, groups = 3, 2, 4, 5
    half = rng.normal(size=(chains, groups, q, q + 2))
    spd = half @ np.swapaxes(half, -1, -2)  # (C, G, q, q)
    b = rng.normal(size=(chains, groups, q, r))
    log = Recovery("t")
    chol = normal._small_cholesky(np.ascontiguousarray(spd.transpose(2, 3, 0, 1)), log)
    lapack = np.linalg.cholesky(spd)
    np.testing.assert_allclose(chol.transpose(2, 3, 0, 1), lapack, rtol=1e-10, atol=1e-12)
    lower = normal._solve_lower(chol, np.ascontiguousarray(b.transpose(2, 3, 0, 1)))
    np.testing.assert_allclose(lower.transpose(2, 3, 0, 1), np.linalg.solve(lapack, b),
                               rtol=1e-10, atol=1e-12)
    upper = normal._solve_upper(chol, np.ascontiguousarray(b.transpose(2, 3, 0, 1)))
    np.testing.assert_allclose(upper.transpose(2, 3, 0, 1),
                               np.linalg.solve(np.swapaxes(lapack, -1, -2), b),
                               rtol=1e-10, atol=1e-12)
    # a block that is not positive definite goes through the jittered factorisation
    singular = spd.copy()
    singular[1, 2] = np.outer([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    jittered = normal._small_cholesky(np.ascontiguousarray(singular.transpose(2, 3, 0, 1)), log)
    assert np.isfinite(jittered).all() and log.actions
