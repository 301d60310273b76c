"""The SMC runtime with two nested grouping factors (runtime/smc/outer.py and its callers).

Closed forms: the cluster sums with a per-class offset equal the sums of the offset
dependent over the rows (to rounding: the same products summed in another order,
``rtol = 1e-9`` where float64 gives ~1e-13, an algebraic slip is an O(1) error); a
school-level value's full conditional in ``y ~ x + z + (1 | class) + (1 | school)``,
``z ~ 1`` is normal with precision ``1/s2z + n_s b_z^2 / s2y`` (``n_s`` the school's
rows), checked on 300 successive exact draws standardised by it (mean and variance of
the pooled ``N(0, 1)`` values within 4.5 standard errors).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import recipe_compiler as rc
from recipe_compiler.errors import SamplerWarning
from recipe_compiler.runtime.samplers.common import Recovery
from recipe_compiler.runtime.smc import normal
from recipe_compiler.runtime.smc.conditionals import draw_target
from recipe_compiler.runtime.smc.models import Params
from recipe_compiler.runtime.smc.outer import make_outer
from recipe_compiler.runtime.smc.problem import make_smc_problem
from recipe_compiler.runtime.smc.sweep import SmcChainResult, initial_state, run_smc_batch

S, K, N = 12, 3, 5  # schools, classes per school, pupils per class
FORMULA = "y ~ x + w + z + (1 + x | school:class) + (1 | school)"


def data(seed: int) -> pd.DataFrame:
    """Pupils in classes in schools; x (level 1), w (class), z (school) partly missing."""
    rng = np.random.default_rng(seed)
    school = np.repeat(np.arange(S), K * N)
    klass = np.repeat(np.arange(S * K), N)
    z = rng.normal(size=S)[school]
    w = rng.normal(size=S * K)[klass]
    x = rng.normal(size=S * K * N) + rng.normal(size=S)[school]
    y = 1 + 0.5 * x + 0.5 * w + 0.5 * z + rng.normal(size=S)[school] + rng.normal(size=len(x))
    d = pd.DataFrame({"school": school + 1, "class": klass % K + 1, "y": y, "x": x, "w": w,
                      "z": z, "a": y + rng.normal(size=len(x))})
    d.loc[rng.random(len(x)) < 0.2, "x"] = np.nan
    d.loc[np.isin(klass, [1, 5, 9, 20]), "w"] = np.nan
    d.loc[np.isin(school, [2, 7]), "z"] = np.nan
    return d


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return data(3)


def test_offset_cluster_sums_equal_the_rows(frame: pd.DataFrame) -> None:
    plan = rc.compile(FORMULA, frame, approach="smc", auxiliary=["a"])
    problem = make_smc_problem(plan, frame)
    assert problem.outer is not None and problem.outer.n == S
    current = initial_state(problem, [np.random.default_rng(s) for s in range(2)])
    offset = np.random.default_rng(1).normal(size=(2, problem.grouping.n))
    checked = 0
    for design, split in zip(problem.designs, problem.splits, strict=True):
        if split is None:
            continue
        sums = normal._cluster_sums(design, current.frame, split)
        normal._subtract_offset(sums, offset)
        fast = normal._from_sums(sums, split, len(design.fixed))
        assert fast is not None
        slow = normal._from_rows(design, current.frame, split, Recovery(design.dependent),
                                 offset)
        for name in ("ztz", "ztx", "ztr", "xtx", "xtr", "yty", "y_center", "y_scale"):
            np.testing.assert_allclose(getattr(fast, name), getattr(slow, name), rtol=1e-9,
                                       atol=1e-9, err_msg=f"{design.dependent}: {name}")
        checked += 1
    assert checked == 3  # y, x, a


def test_the_outer_grouping_maps_classes_to_schools(frame: pd.DataFrame) -> None:
    plan = rc.compile(FORMULA, frame, approach="smc")
    problem = make_smc_problem(plan, frame)
    outer = make_outer(frame, "school", problem.grouping)
    assert np.array_equal(outer.parent, np.repeat(np.arange(S), K))
    assert np.array_equal(outer.parent[outer.first], np.arange(S))
    crossed = frame.assign(school=np.arange(len(frame)) % S)
    with pytest.raises(rc.DataError, match="not nested in those of 'school'"):
        make_outer(crossed, "school", problem.grouping)


def test_school_value_drawn_once_per_school_from_its_rows() -> None:
    d = data(4)
    d["x"] = d["x"].fillna(0.0)
    d["w"] = d["w"].fillna(0.0)
    plan = rc.compile("y ~ x + z + (1 | school:class) + (1 | school)", d, approach="smc")
    problem = make_smc_problem(plan, d)
    rng = np.random.default_rng(0)
    current = initial_state(problem, [rng])
    b = np.array([0.2, 0.4, -0.9])
    u = np.random.default_rng(5).normal(size=(1, S * K, 1))
    v = np.random.default_rng(6).normal(size=(1, S))
    s2y, s2z, mz = 0.7, 0.5, 0.3
    current.params = [Params(b[None], u, np.array([s2y]), v=v, tau=np.array([1.0])),
                      Params(np.array([[mz]]), None, np.array([s2z]))]
    t = next(t for t in problem.targets if t.name == "z")
    assert t.how == "exact normal per cluster" and t.level == 3
    missing = np.array([2, 7])  # school codes (labels 3 and 8)
    got = np.empty((300, 2))
    rows = d["school"].to_numpy() - 1
    for k in range(300):
        draw_target(problem, current, t, np.zeros(1), [rng])
        z = current.values["z"][0]
        got[k] = z[np.searchsorted(rows, missing)]
        assert np.all(np.ptp(z.reshape(S, K * N), axis=1) == 0)  # constant within schools
        assert np.allclose(current.means["z"][0], z[::N])
    klass = problem.grouping.codes
    resid = np.bincount(rows, d["y"] - b[0] - b[1] * d["x"] - u[0, klass, 0] - v[0, rows],
                        minlength=S)[missing]
    precision = 1 / s2z + K * N * b[2] ** 2 / s2y
    mean = (mz / s2z + b[2] * resid / s2y) / precision
    z = ((got - mean) * np.sqrt(precision)).ravel()
    assert abs(z.mean()) < 4.5 / np.sqrt(z.size)
    assert abs(z.var() - 1) < 4.5 * np.sqrt(2 / z.size)


def test_imputations_respect_the_levels_and_chains_are_independent(frame: pd.DataFrame) -> None:
    plan = rc.compile(FORMULA, frame, approach="smc", auxiliary=["a"])
    problem = make_smc_problem(plan, frame)
    seeds = np.random.SeedSequence(8).spawn(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplerWarning)
        together = run_smc_batch(problem, 6, seeds)
        alone = [run_smc_batch(problem, 6, [s])[0] for s in seeds]
    for a, b in zip(together, alone, strict=True):
        assert isinstance(a, SmcChainResult) and isinstance(b, SmcChainResult)
        assert all(np.array_equal(a.imputed[t], b.imputed[t]) for t in a.imputed)
        assert all(np.array_equal(a.beta[t], b.beta[t]) for t in a.beta)
    imp = rc.impute(frame, plan, m=2, maxit=6, seed=1)
    for k in (1, 2):
        done = imp.complete(k)
        assert not done[["x", "w", "z"]].isna().any().any()
        observed = frame["x"].notna()
        assert np.array_equal(done.loc[observed, "x"], frame.loc[observed, "x"])
        assert (done.groupby(["school", "class"])["w"].nunique() == 1).all()
        assert (done.groupby("school")["z"].nunique() == 1).all()
