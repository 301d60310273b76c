"""Chains as a batch dimension: a chain's imputations do not depend on its batch.

A batch of chains runs in lockstep with a leading chain axis, each chain drawing
from its own generator; these tests check that this is exact (bit for bit)
however the chains are batched or distributed, that the designs kept in the
chain state stay equal to the current values, and that the batched centring
agrees with the one-chain :func:`~recipe_compiler.runtime.samplers.single.fixed_design`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

import recipe_compiler as rc
from recipe_compiler.runtime.chains import split
from recipe_compiler.runtime.gibbs import ChainResult, cluster_means, run_batch, start, sweep
from recipe_compiler.runtime.problem import Problem, make_problem
from recipe_compiler.runtime.samplers.common import Recovery, centred_design
from recipe_compiler.runtime.samplers.single import fixed_design

#: Every kind of update: 2l.pmm with a random slope and cluster means (y, x), 2l.bin
#: (b, unbatched: called chain by chain), 2lonly.norm (z) and derived variables.
FORMULA = "y ~ x*z + cm(x) + b + (1 + x | g)"
METHODS = {"z": "2lonly.norm", "b": "2l.bin"}


@pytest.fixture(scope="module")
def data(make_frame: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    return make_frame(level1=("y", "x"), binary=("b",), level2=("z",), seed=31, n_clusters=12,
                      cluster_size=(6, 12), missing={"y": 0.3, "x": 0.2, "b": 0.2, "z": 0.3})


@pytest.fixture(scope="module")
def problem(data: pd.DataFrame) -> Problem:
    plan = rc.compile(FORMULA, data, methods=METHODS)
    assert {"2l.pmm", "2l.bin", "2lonly.norm"} <= set(dict(plan.method_table).values())
    return make_problem(plan, data)


def equal(a: list[ChainResult], b: list[ChainResult]) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(x.mean, y.mean, equal_nan=True)
        and all(np.array_equal(x.imputed[t], y.imputed[t]) for t in x.imputed)
        for x, y in zip(a, b, strict=True))


def quiet(run: Callable[[], list[ChainResult]]) -> list[ChainResult]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rc.SamplerWarning)
        return run()


def test_a_chain_gives_the_same_imputations_in_any_batch(problem: Problem) -> None:
    seeds = np.random.SeedSequence(41).spawn(10)
    together = quiet(lambda: run_batch(problem, 3, seeds))
    alone = quiet(lambda: [r for s in seeds for r in run_batch(problem, 3, [s])])
    uneven = quiet(lambda: [r for b in split(seeds, 3) for r in run_batch(problem, 3, b)])
    assert [len(b) for b in split(seeds, 3)] == [3, 4, 3]
    assert equal(together, alone) and equal(together, uneven)
    # and the chains differ from each other (the seeds are used)
    assert not np.array_equal(together[0].imputed["y"], together[1].imputed["y"])


def test_n_jobs_and_executors_give_identical_imputations(data: pd.DataFrame) -> None:
    def run(**kwargs: object) -> pd.DataFrame:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rc.SamplerWarning)
            return rc.impute(data, FORMULA, methods=METHODS, m=5, maxit=2, seed=42,
                             **kwargs).complete("long")  # type: ignore[arg-type]

    one = run(n_jobs=1)
    pd.testing.assert_frame_equal(one, run(n_jobs=2))
    with ThreadPoolExecutor(max_workers=3) as pool:
        pd.testing.assert_frame_equal(one, run(executor=pool))
    obs = data.notna()
    for k in range(1, 6):  # observed cells bit for bit
        done = one[one[".imp"] == k].set_index(".id")[data.columns]
        assert done.where(obs).equals(data.where(obs))


def test_designs_stay_equal_to_the_current_values(problem: Problem) -> None:
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(43).spawn(3)]
    state = start(problem, rngs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rc.SamplerWarning)
        for _ in range(2):
            sweep(problem, state, rngs, donors=5)
    grouping = problem.grouping
    for t, lay in problem.layouts.items():
        d = state.designs[t]
        for j, col in enumerate(lay.fixed, start=1):
            values = state.values[col.source]
            if lay.scope == "level2":
                full = cluster_means(grouping, values)
            elif col.mean:
                full = np.take(cluster_means(grouping, values), grouping.codes, axis=1)
            else:
                full = values
            np.testing.assert_allclose(d.x_obs[:, j] + d.x_offset[:, j, None],
                                       full[:, lay.rows_obs], rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(d.x_mis[:, j] + d.x_offset[:, j, None],
                                       full[:, lay.rows_mis], rtol=1e-12, atol=1e-12)
        for k, name in enumerate(lay.random):
            assert d.z_obs is not None
            np.testing.assert_array_equal(d.z_obs[:, k], state.values[name][:, lay.rows_obs])


def test_rows_not_sorted_by_cluster_are_sorted_inside_and_mapped_back(
        data: pd.DataFrame) -> None:
    """Shuffled rows give the imputations of the same rows sorted (stably) by cluster."""
    shuffled = data.sample(frac=1.0, random_state=7)
    by_cluster = shuffled.sort_values("g", kind="stable")

    def run(d: pd.DataFrame) -> pd.DataFrame:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rc.SamplerWarning)
            return rc.impute(d, FORMULA, methods=METHODS, m=2, maxit=2, seed=44).complete(2)

    out = run(shuffled)
    assert out.index.equals(shuffled.index)
    pd.testing.assert_frame_equal(out.loc[by_cluster.index], run(by_cluster))
    assert (out.groupby("g")["z"].nunique() == 1).all()


def test_batched_centring_equals_the_one_chain_fixed_design() -> None:
    """Centring through cross-products (with a shift) gives fixed_design's Gram matrix.

    The shift is off the column means (as for columns constant among the observed
    rows only), so the exact re-centring path is taken for the constant column.
    """
    rng = np.random.default_rng(45)
    n = 200
    x = np.column_stack([np.ones(n), 50 + rng.normal(size=n), rng.normal(size=n) - 3,
                         np.full(n, 2.0)])
    x[:, 2] += 0.5 * x[:, 1]
    offset = np.concatenate([[0.0], x[:, 1:].mean(axis=0) + 0.3])
    ref = fixed_design(x, Recovery("a"))
    got = centred_design((x - offset).T[None], offset[None], Recovery("a"))
    assert np.flatnonzero(got.keep[0]).tolist() == [0, *ref.keep.tolist()] == [0, 1, 2]
    np.testing.assert_allclose(got.gram[0][:3, :3], ref.gram, rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(got.center[0, 1:3] + offset[1:3], ref.center, rtol=1e-12)
    # an aliased column is dropped too (which of the aliased ones is up to rounding)
    aliased = np.column_stack([x, x[:, 1] - x[:, 2]])
    log = Recovery("a")
    offset = np.concatenate([offset, [aliased[:, 4].mean()]])
    got = centred_design((aliased - offset).T[None], offset[None], log)
    assert got.keep[0].sum() == 3 and not got.keep[0, 3]
    assert any("aliased" in a for a in log.actions) and any("constant" in a for a in log.actions)
