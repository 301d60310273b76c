"""The pieces of the Gibbs loop: initial fill, derived-variable bookkeeping, maxit=0, sweeps.

Built on small seeded two-level frames; the samplers themselves are tested in
their own modules.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

import recipe_compiler as rc
from recipe_compiler.data.grouping import Grouping
from recipe_compiler.plan import Derived
from recipe_compiler.runtime import gibbs
from recipe_compiler.runtime.gibbs import (
    ChainState,
    initial_values,
    run_chain,
    start,
    sweep,
    update,
)
from recipe_compiler.runtime.passive import compute
from recipe_compiler.runtime.problem import Problem, derived_descendants, make_problem

FORMULA = "y ~ x*b + cm(x) + cwc(x):z + I(x ** 2) + (1 + x | g)"


@pytest.fixture(scope="module")
def data(make_frame: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    """x missing in every row of cluster 3; z in whole clusters (5, 6) and in single rows (1)."""
    d = make_frame(level1=("y", "x"), binary=("b",), level2=("z",), seed=21, n_clusters=7,
                   cluster_size=(5, 8), missing={"y": 0.25, "x": 0.3})
    d.loc[d["g"] == 3, "x"] = np.nan
    d.loc[d["g"].isin([5, 6]), "z"] = np.nan
    partial = d.index[(d["g"] == 1) & d["z"].notna()][1:3]  # z observed in some rows only
    d.loc[partial, "z"] = np.nan
    return d


@pytest.fixture(scope="module")
def problem(data: pd.DataFrame) -> Problem:
    return make_problem(rc.compile(FORMULA, data), data)


def check_derived(problem: Problem, values: dict[str, np.ndarray]) -> None:
    """Every derived variable equals its definition on the current values, exactly
    (``values`` of one chain, or of a batch of one)."""
    values = {k: v[0] if v.ndim == 2 else v for k, v in values.items()}
    for d in problem.plan.derived_defs:
        expected = compute(d, values, problem.grouping, problem.categories)
        np.testing.assert_array_equal(values[d.name], expected, err_msg=d.name)


def cluster_means(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per-row cluster means, computed independently of the runtime (pandas)."""
    return pd.Series(x).groupby(groups).transform("mean").to_numpy()


# ------------------------------------------------------------------------- initial fill


def test_initial_fill_keeps_observed_values_and_completes_every_target(
        problem: Problem) -> None:
    values = initial_values(problem, np.random.default_rng(0))
    for t in problem.plan.targets:
        obs = problem.observed[t]
        assert not np.isnan(values[t]).any(), t
        np.testing.assert_array_equal(values[t][obs], problem.columns[t][obs])


def test_level1_fill_draws_from_the_observed_values_of_the_same_cluster(
        problem: Problem) -> None:
    g = problem.grouping.codes
    seen: dict[int, set[float]] = {}
    for seed in range(40):
        values = initial_values(problem, np.random.default_rng(seed))
        for t in ("y", "x"):
            obs = problem.observed[t]
            for row in np.flatnonzero(~obs):
                own = problem.columns[t][obs & (g == g[row])]
                pool = own if own.size else problem.columns[t][obs]
                assert values[t][row] in set(pool), (t, row)
                if t == "x" and own.size:
                    seen.setdefault(int(g[row]), set()).add(float(values[t][row]))
    # the draws are random: some cluster with two observed values got both of them
    assert any(len(v) > 1 for v in seen.values())


def test_cluster_without_observed_values_draws_from_all_observed(problem: Problem,
                                                                  data: pd.DataFrame) -> None:
    rows = np.flatnonzero((data["g"] == 3).to_numpy())
    obs = problem.observed["x"]
    assert not obs[rows].any()
    drawn = set()
    for seed in range(10):
        values = initial_values(problem, np.random.default_rng(seed))
        assert set(values["x"][rows]) <= set(problem.columns["x"][obs])
        drawn |= set(values["x"][rows])
    assert len(drawn) > 1  # not one fixed donor


def test_level2_fill_takes_the_clusters_own_value_else_one_donor_cluster(
        problem: Problem) -> None:
    g, z = problem.grouping.codes, problem.columns["z"]
    obs = problem.observed["z"]
    observed_values = set(z[obs])
    for seed in range(10):
        values = initial_values(problem, np.random.default_rng(seed))["z"]
        for c in range(problem.grouping.n):
            rows = g == c
            assert len(set(values[rows])) == 1, f"cluster {c} is not constant"
            own = set(z[rows & obs])
            if own:  # observed in some rows of the cluster: that value, exactly
                assert set(values[rows]) == own
            else:
                assert set(values[rows]) <= observed_values
    partial = [c for c in range(problem.grouping.n) if obs[g == c].any() and not obs[g == c].all()]
    assert partial, "the fixture should have a cluster with z observed in some rows only"
    assert (np.bincount(g[obs], minlength=problem.grouping.n) == 0).any(), \
        "the fixture should have a cluster without any observed z"


# ------------------------------------------------------------------------- derived variables


def test_derived_variables_are_consistent_after_the_initial_fill(problem: Problem) -> None:
    values = initial_values(problem, np.random.default_rng(1))
    check_derived(problem, values)
    np.testing.assert_allclose(values["cm(x)"], cluster_means(values["x"], problem.grouping.codes))


def test_every_update_sees_fresh_derived_variables(problem: Problem,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Before each target is updated, every derived variable matches its parents."""
    visited: list[str] = []
    real = gibbs.update

    def checked(problem: Problem, state: ChainState, name: str, *args: Any) -> None:
        check_derived(problem, state.values)
        visited.append(name)
        real(problem, state, name, *args)

    monkeypatch.setattr(gibbs, "update", checked)
    state = start(problem, [np.random.default_rng(2)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rc.SamplerWarning)
        for _ in range(3):
            sweep(problem, state, [np.random.default_rng(3)], donors=5)
    check_derived(problem, state.values)  # and after the last one
    assert visited == problem.plan.targets * 3
    np.testing.assert_allclose(state.values["cm(x)"][0],
                               cluster_means(state.values["x"][0], problem.grouping.codes))
    np.testing.assert_allclose(state.values["cwc(x)"], state.values["x"] - state.values["cm(x)"])


def test_a_visit_sequence_without_derived_variables_is_repaired(problem: Problem) -> None:
    """A hand-edited plan that never recomputes cm(x) must not impute from a stale one."""
    plan = problem.plan
    bare = dataclasses.replace(plan, visit=tuple(plan.targets),
                               derived_defs=tuple(reversed(plan.derived_defs)))
    edited = dataclasses.replace(problem, plan=bare)
    state = start(edited, [np.random.default_rng(4)])
    check_derived(edited, state.values)  # children before parents in derived_defs: still fine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rc.SamplerWarning)
        sweep(edited, state, [np.random.default_rng(5)], donors=5)
    check_derived(edited, state.values)


def test_derived_descendants_are_listed_parents_first(problem: Problem) -> None:
    after = derived_descendants(problem.plan)
    assert set(after["x"]) >= {"cm(x)", "cwc(x)", "I(x ** 2)"}
    order = after["x"]
    assert order.index("cm(x)") < order.index("cwc(x)")
    assert "cwc(x):z" in after["z"] and "cwc(x):z" in after["x"]
    for name, ds in after.items():
        for d in ds:
            parents = problem.plan.derived[d].parents
            assert all(ds.index(p) < ds.index(d) for p in parents if p in ds), (name, d)


def test_the_same_visits_give_the_same_chain_as_the_compiled_sequence(
        problem: Problem) -> None:
    """Recomputing descendants after each update changes nothing for a compiled plan."""
    seed = np.random.SeedSequence(8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rc.SamplerWarning)
        a = run_chain(problem, 2, seed)
        bare = dataclasses.replace(problem, plan=dataclasses.replace(
            problem.plan, visit=tuple(problem.plan.targets)))
        b = run_chain(bare, 2, seed)
    for t in problem.plan.targets:
        np.testing.assert_array_equal(a.imputed[t], b.imputed[t])


# ------------------------------------------------------------------------- sweeps and chains


def test_maxit_zero_returns_the_initial_fill(problem: Problem) -> None:
    seed = np.random.SeedSequence(6)
    result = run_chain(problem, 0, seed)
    fill = initial_values(problem, np.random.default_rng(seed))
    for t in problem.plan.targets:
        np.testing.assert_array_equal(result.imputed[t], fill[t][~problem.observed[t]])
    assert result.mean.shape == (0, len(problem.plan.targets))


def test_maxit_zero_through_impute_is_the_initial_fill(data: pd.DataFrame,
                                                       problem: Problem) -> None:
    imp = rc.impute(data, FORMULA, m=2, maxit=0, seed=9)
    seeds = np.random.SeedSequence(9).spawn(2)
    for k, s in enumerate(seeds, start=1):
        fill = initial_values(problem, np.random.default_rng(s))
        done = imp.complete(k)
        for t in ("y", "x", "z"):
            np.testing.assert_array_equal(done[t].to_numpy(), fill[t])
    assert imp.chain_mean.empty


def test_a_sweep_moves_the_imputations_and_keeps_observed_values(problem: Problem) -> None:
    state = start(problem, [np.random.default_rng(10)])
    before = {t: state.values[t][0].copy() for t in problem.plan.targets}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rc.SamplerWarning)
        sweep(problem, state, [np.random.default_rng(11)], donors=5)
    g = problem.grouping.codes
    for t in problem.plan.targets:
        obs = problem.observed[t]
        np.testing.assert_array_equal(state.values[t][0, obs], problem.columns[t][obs])
        # cells free to move: level-2 cells of a partly observed cluster keep its value
        free = ~obs & ~np.isin(g, g[obs]) if t == "z" else ~obs
        assert free.any(), t
        assert not np.array_equal(state.values[t][0, free], before[t][free]), t
    assert set(state.samplers) >= {"y", "x"}  # warm-start states kept for the 2l targets


def test_a_level2_update_imputes_observed_values_exactly(problem: Problem) -> None:
    """2lonly.pmm donates a cluster's observed value bit for bit, not a recomputed mean."""
    state = start(problem, [np.random.default_rng(12)])
    obs, g = problem.observed["z"], problem.grouping.codes
    for seed in range(5):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rc.SamplerWarning)
            update(problem, state, "z", [np.random.default_rng(seed)], donors=5)
        z = state.values["z"][0]
        donors = set(problem.columns["z"][obs].tolist())
        assert set(z[~obs].tolist()) <= donors
        for c in np.unique(g):
            assert len(set(z[g == c].tolist())) == 1


def test_chain_statistics_of_a_target_without_missing_cells_are_nan_quietly(
        data: pd.DataFrame) -> None:
    plan = rc.compile(FORMULA, data)
    complete = data.assign(y=data["y"].fillna(0.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rc.SamplerWarning)
        warnings.simplefilter("error", RuntimeWarning)
        result = run_chain(make_problem(plan, complete), 2, np.random.SeedSequence(1))
    j = plan.targets.index("y")
    assert np.isnan(result.mean[:, j]).all() and np.isnan(result.var[:, j]).all()
    assert result.imputed["y"].size == 0


# ------------------------------------------------------------------------- the problem


def test_a_two_level_problem_has_its_one_grouping_and_means_over_it(problem: Problem) -> None:
    """The generalised layout keeps the two-level one: every design mean over the cluster."""
    assert problem.groupings == {"g": problem.grouping}
    assert problem.grouping_over("") is problem.grouping_over("g") is problem.grouping
    for t, lay in problem.layouts.items():
        assert lay.over == "" and lay.blocks == (), t
        assert lay.aggregated == (lay.scope == "level2"), t
        if not lay.aggregated:
            assert lay.mean_obs is not None and lay.mean_mis is not None
            np.testing.assert_array_equal(lay.mean_obs, lay.g_obs.codes)
            np.testing.assert_array_equal(lay.mean_mis, lay.g_mis.codes)
    state = start(problem, [np.random.default_rng(3)])
    assert {over for _, over in state.means} == {""}


def test_a_plan_column_missing_from_the_data_is_named(data: pd.DataFrame) -> None:
    plan = rc.compile(FORMULA, data)
    with pytest.raises(rc.DataError, match=r"^column 'x' of the plan is not in the data; "):
        make_problem(plan, data.drop(columns=["x"]))


def test_batched_cluster_means_over_another_grouping_equal_the_one_chain_means(
        problem: Problem) -> None:
    """gibbs.derive (all chains at once) and passive.compute (one chain) agree exactly on a
    cm whose detail names a second grouping factor (here: pairs of clusters)."""
    pairs = Grouping(codes=problem.grouping.codes // 2, n=(problem.grouping.n + 1) // 2,
                     name="pair")
    d = Derived("cm(x, pair)", "cm", ("x",), detail="pair")
    values = {"x": np.random.default_rng(4).normal(size=(3, problem.n))}
    batched = gibbs.derive(d, values, problem.grouping, {}, {"pair": pairs})
    for c in range(3):
        np.testing.assert_array_equal(
            batched[c], compute(d, {"x": values["x"][c]}, problem.grouping, {},
                                {"pair": pairs}))
    expected = pd.Series(values["x"][0]).groupby(pairs.codes).transform("mean")
    np.testing.assert_allclose(batched[0], expected, rtol=1e-12)
