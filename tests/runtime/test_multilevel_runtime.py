"""The runtime of plans with several grouping factors: three-level nested and crossed (issue 14).

Plans are built by hand (plain frozen data, as the compiler would write them) on the
known-truth data of :mod:`recipe_compiler.datasets.simulate_ml`: pupils in classes in
schools with incomplete pupil (``x``), class (``w``) and school (``z``) variables, and
ratings of raters crossed with items. What is checked is the runtime's bookkeeping,
against independent pandas computations: the units each target is updated on, the
grouping and blocks its sampler sees, the aggregated designs, the cluster means at every
level, the initial fill and the results; the samplers themselves are tested in
``tests/runtime/samplers``. A spy sampler (registered in place of ``multilevel_normal``
for one test, and removed after it) records what the Gibbs loop hands over.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

import recipe_compiler as rc
from recipe_compiler.compiler.options import make_options
from recipe_compiler.datasets.simulate_ml import simulate_ml
from recipe_compiler.plan import Cell, Derived, Plan, Variable
from recipe_compiler.runtime import gibbs
from recipe_compiler.runtime.gibbs import initial_values, start, sweep
from recipe_compiler.runtime.passive import compute
from recipe_compiler.runtime.problem import Problem, make_problem
from recipe_compiler.runtime.samplers import registry
from recipe_compiler.runtime.samplers.registry import TargetBatch

NESTED_FORMULA = "y ~ x + w + z + (1 + x | school:class) + (1 | school)"


def _cm(x: str, g: str) -> Derived:
    return Derived(f"cm({x}, {g})", "cm", (x,), detail=g)


def nested_plan(inner: str = "school:class", w_codes: dict[str, int] | None = None,
                method: str = "ml.norm") -> Plan:
    """Pupils in classes in schools: level-1 targets y (random slope of x over classes) and
    x, class-level w (random intercept over schools), school-level z (3lonly.pmm); means of
    x and y at both levels, and cwc(x) within classes.

    ``w_codes``: w's codes for the grouping factors (default: -2 on ``school`` only).
    """
    derived = (_cm("x", inner), _cm("x", "school"), _cm("y", inner), _cm("y", "school"),
               Derived(f"cwc(x, {inner})", "cwc", ("x", f"cm(x, {inner})")))
    variables = (Variable(inner, "cluster", 2, "cluster"),
                 Variable("school", "cluster", 3, "cluster"),
                 Variable("y", "target", 1, "numeric"), Variable("x", "target", 1, "numeric"),
                 Variable("w", "target", 2, "numeric"), Variable("z", "target", 3, "numeric"),
                 *(Variable(d.name, "derived", 1, "numeric") for d in derived))
    cx, cy = f"cm(x, {inner})", f"cm(y, {inner})"
    rows = {
        "y": {inner: -2, "school": -2, "x": 2, "w": 1, "z": 1, cx: 1, "cm(x, school)": 1},
        "x": {inner: -2, "school": -2, "y": 1, "w": 1, "z": 1, cy: 1, "cm(y, school)": 1},
        "w": {**(w_codes if w_codes is not None else {"school": -2}), "y": 1, "x": 1, "z": 1,
              "cm(x, school)": 1},
        "z": {"y": 1, "x": 1, "w": 1},
    }
    methods = (("y", method), ("x", method), ("w", method), ("z", "3lonly.pmm"),
               *((d.name, d.method) for d in derived))
    visit = ("y", cy, "cm(y, school)", "x", cx, "cm(x, school)", f"cwc(x, {inner})", "w", "z")
    return Plan(formula=NESTED_FORMULA, options=make_options(), cluster=inner,
                variables=variables, method_table=methods,
                cells=tuple(Cell(t, p, c, "hand-built", "test") for t, r in rows.items()
                            for p, c in r.items()),
                derived_defs=derived, visit=visit, groupings=(inner, "school"),
                nesting="nested")


def crossed_plan() -> Plan:
    """Ratings of raters crossed with items: level-1 targets y and x, means over each factor."""
    derived = (_cm("x", "rater"), _cm("x", "item"), _cm("y", "rater"), _cm("y", "item"))
    variables = (Variable("rater", "cluster", 2, "cluster"),
                 Variable("item", "cluster", 2, "cluster"),
                 Variable("y", "target", 1, "numeric"), Variable("x", "target", 1, "numeric"),
                 *(Variable(d.name, "derived", 1, "numeric") for d in derived))
    rows = {"y": {"rater": -2, "item": -2, "x": 1, "cm(x, rater)": 1, "cm(x, item)": 1},
            "x": {"item": -2, "rater": -2, "y": 1, "cm(y, rater)": 1, "cm(y, item)": 1}}
    return Plan(formula="y ~ x + (1 | rater) + (1 | item)", options=make_options(),
                cluster="rater", variables=variables,
                method_table=(("y", "ml.pmm"), ("x", "ml.norm"),
                              *((d.name, d.method) for d in derived)),
                cells=tuple(Cell(t, p, c, "hand-built", "test") for t, r in rows.items()
                            for p, c in r.items()),
                derived_defs=derived,
                visit=("y", "cm(y, rater)", "cm(y, item)", "x", "cm(x, rater)", "cm(x, item)"),
                groupings=("rater", "item"), nesting="crossed")


@pytest.fixture(scope="module")
def nested() -> pd.DataFrame:
    """40 schools x 4 classes x 6 pupils; y missing in 15% of the pupils too."""
    data = simulate_ml("three_level", seed=3, sizes=(40, 4, 6)).data
    drop = np.random.default_rng(4).random(len(data)) < 0.15
    return data.assign(y=data["y"].mask(drop))


@pytest.fixture(scope="module")
def crossed() -> pd.DataFrame:
    data = simulate_ml("crossed", seed=5, sizes=(40, 20, 6)).data
    drop = np.random.default_rng(6).random(len(data)) < 0.15
    return data.assign(y=data["y"].mask(drop))


@pytest.fixture(scope="module")
def problem(nested: pd.DataFrame) -> Problem:
    return make_problem(nested_plan(), nested)


def by_cluster(values: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Per-cluster means (clusters 0..n-1, all non-empty), by pandas."""
    return pd.Series(values).groupby(codes).mean().to_numpy()


def check_derived(problem: Problem, values: dict[str, np.ndarray]) -> None:
    """Every cm(v, g) equals pandas' per-row mean of the current v over g, in each chain."""
    for d in problem.plan.derived_defs:
        if d.op != "cm":
            continue
        codes = problem.grouping_over(d.detail).codes
        for c in range(len(values[d.name])):
            expected = pd.Series(values[d.parents[0]][c]).groupby(codes).transform("mean")
            np.testing.assert_allclose(values[d.name][c], expected, rtol=1e-12, atol=1e-12,
                                       err_msg=d.name)


# ------------------------------------------------------------------------- the layouts


def test_each_grouping_factor_is_built_and_rows_are_sorted_by_the_innermost(
        problem: Problem, nested: pd.DataFrame) -> None:
    inner, school = problem.grouping, problem.grouping_over("school")
    assert list(problem.groupings) == ["school:class", "school"]
    assert (inner.n, school.n) == (160, 40)
    assert np.all(np.diff(inner.codes) >= 0)
    order = np.arange(len(nested)) if problem.order is None else problem.order
    rows = nested.iloc[order]
    # the same class (school, class) and school in each of the problem's rows
    pairs = pd.Series(list(zip(rows["school"], rows["class"], strict=True)))
    assert pairs.groupby(inner.codes).nunique().max() == 1
    assert pd.Series(rows["school"].to_numpy()).groupby(school.codes).nunique().max() == 1


def test_a_level1_target_has_its_first_grouping_with_the_slope_and_a_block_per_other(
        problem: Problem) -> None:
    lay = problem.layouts["y"]
    assert (lay.scope, lay.aggregated, lay.random) == ("multilevel", False, ("x",))
    assert [c.source for c in lay.fixed] == ["x", "w", "z", "cm(x, school:class)",
                                             "cm(x, school)"]
    assert not any(c.mean for c in lay.fixed)
    assert lay.grouping is problem.grouping
    np.testing.assert_array_equal(lay.g_mis.codes, problem.grouping.codes[lay.rows_mis])
    (b_obs, b_mis), = lay.blocks
    school = problem.grouping_over("school").codes
    np.testing.assert_array_equal(b_obs.codes, school[lay.rows_obs])
    np.testing.assert_array_equal(b_mis.codes, school[lay.rows_mis])
    assert b_obs.n == 40


def test_the_first_grouping_is_taken_in_plan_order_not_predictor_order(
        crossed: pd.DataFrame) -> None:
    """x lists item before rater; plan.groupings puts rater first."""
    problem = make_problem(crossed_plan(), crossed)
    rater, item = problem.grouping_over("rater"), problem.grouping_over("item")
    for t in ("y", "x"):
        lay = problem.layouts[t]
        assert lay.grouping.name == "rater"
        np.testing.assert_array_equal(lay.g_obs.codes, rater.codes[lay.rows_obs])
        (b_obs, b_mis), = lay.blocks
        np.testing.assert_array_equal(b_obs.codes, item.codes[lay.rows_obs])
        np.testing.assert_array_equal(b_mis.codes, item.codes[lay.rows_mis])


def test_a_class_level_target_is_updated_on_classes_with_its_schools(
        problem: Problem) -> None:
    lay, inner = problem.layouts["w"], problem.grouping
    school = problem.grouping_over("school").codes
    assert lay.aggregated and lay.over == "" and lay.blocks == ()
    assert all(c.mean for c in lay.fixed)
    assert lay.grouping.n_rows == 160 and lay.grouping.name == "school"
    np.testing.assert_array_equal(lay.grouping.codes,
                                  pd.Series(school).groupby(inner.codes).first().to_numpy())
    w = problem.columns["w"]
    seen = pd.Series(w).notna().groupby(inner.codes).any().to_numpy()
    np.testing.assert_array_equal(lay.observed, seen)
    np.testing.assert_array_equal(lay.y_obs, pd.Series(w).groupby(inner.codes).first()[seen])
    assert np.isnan(w[lay.fill_rows]).all()  # the rows of the classes without a value


def test_a_school_level_target_is_updated_on_schools(problem: Problem) -> None:
    lay = problem.layouts["z"]
    school = problem.grouping_over("school")
    assert (lay.scope, lay.over, lay.aggregated, lay.random) == ("level3", "school", True, ())
    assert len(lay.observed) == school.n == 40
    np.testing.assert_array_equal(lay.observed,
                                  school.count(problem.observed["z"]) > 0)
    np.testing.assert_array_equal(np.sort(lay.fill_rows),
                                  np.flatnonzero(~lay.observed[school.codes]))


def test_the_units_own_grouping_factor_is_no_random_intercept(nested: pd.DataFrame) -> None:
    """Code -2 on school:class for the class-level w (mice's way of naming the clusters)
    changes nothing: its random intercepts are over the schools only."""
    one = make_problem(nested_plan(), nested).layouts["w"]
    both = make_problem(nested_plan(w_codes={"school:class": -2, "school": -2}),
                        nested).layouts["w"]
    np.testing.assert_array_equal(both.grouping.codes, one.grouping.codes)
    assert both.blocks == ()


# ------------------------------------------------------------------- the loop's bookkeeping


def test_initial_fill_is_constant_within_the_units_and_keeps_observed_values(
        problem: Problem) -> None:
    values = initial_values(problem, np.random.default_rng(0))
    for t in problem.plan.targets:
        obs = problem.observed[t]
        assert not np.isnan(values[t]).any(), t
        np.testing.assert_array_equal(values[t][obs], problem.columns[t][obs])
    inner, school = problem.grouping.codes, problem.grouping_over("school").codes
    assert pd.Series(values["w"]).groupby(inner).nunique().max() == 1
    assert pd.Series(values["z"]).groupby(school).nunique().max() == 1
    check_derived(problem, {k: v[None] for k, v in values.items()})


def test_designs_and_means_at_every_level_follow_the_current_values(problem: Problem) -> None:
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(9).spawn(2)]
    state = start(problem, rngs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rc.SamplerWarning)
        for _ in range(2):
            sweep(problem, state, rngs, donors=5)
    check_derived(problem, state.values)
    for t, lay in problem.layouts.items():
        d = state.designs[t]
        codes = problem.grouping_over(lay.over).codes
        for j, col in enumerate(lay.fixed, start=1):
            values = state.values[col.source]
            full = (np.stack([by_cluster(v, codes) for v in values]) if lay.aggregated
                    else values)
            np.testing.assert_allclose(d.x_obs[:, j] + d.x_offset[:, j, None],
                                       full[:, lay.rows_obs], rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(d.x_mis[:, j] + d.x_offset[:, j, None],
                                       full[:, lay.rows_mis], rtol=1e-12, atol=1e-12)
        for k, name in enumerate(lay.random):
            assert d.z_mis is not None
            np.testing.assert_array_equal(d.z_mis[:, k], state.values[name][:, lay.rows_mis])
    assert set(state.means) == {(v, "") for v in ("y", "x", "z", "cm(x, school)")} | {
        (v, "school") for v in ("y", "x", "w")}


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[TargetBatch]]:
    """Registers a recording sampler as ``multilevel_normal`` for one test (restored after):
    each missing unit gets the observed mean plus chain-specific noise."""
    seen: list[TargetBatch] = []

    def record(batch: TargetBatch, rngs: list[np.random.Generator],
               state: object | None) -> tuple[np.ndarray, object]:
        seen.append(batch)
        n = batch.x_mis.shape[2]
        draws = np.stack([batch.y_obs.mean() + rng.normal(size=n) for rng in rngs])
        return draws, None

    monkeypatch.setitem(registry._REGISTRY, "multilevel_normal", record)
    monkeypatch.setattr(registry, "_BATCHED", registry._BATCHED | {"multilevel_normal"})
    yield seen


def test_the_sampler_gets_the_blocks_and_its_draws_fill_whole_classes(
        problem: Problem, spy: list[TargetBatch]) -> None:
    result = gibbs.run_batch(problem, 1, np.random.SeedSequence(2).spawn(2))
    by_name = {b.name: b for b in spy}
    assert set(by_name) == {"y", "x", "w"}
    assert len(by_name["y"].blocks) == 1 and by_name["w"].blocks == ()
    assert by_name["w"].x_mis.shape[2] == int((~problem.layouts["w"].observed).sum())
    order = np.arange(problem.n) if problem.order is None else problem.order
    w = np.empty(problem.n)
    w[order] = problem.columns["w"]
    w[np.isnan(w)] = result[0].imputed["w"]  # result rows are the missing rows in row order
    inner = np.empty(problem.n, dtype=np.intp)
    inner[order] = problem.grouping.codes
    assert pd.Series(w).groupby(inner).nunique().max() == 1


def test_a_plan_without_the_runtime_registration_is_refused_by_name(
        problem: Problem, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(registry._REGISTRY, "multilevel_normal", raising=False)
    with pytest.raises(rc.SamplerError, match="multilevel_normal"):
        gibbs.run_batch(problem, 1, np.random.SeedSequence(2).spawn(1))


# ------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def imp(nested: pd.DataFrame) -> rc.Imputations:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rc.SamplerWarning)
        return rc.impute(nested, nested_plan(method="ml.pmm"), m=3, maxit=3, seed=11)


def test_imputations_are_complete_and_keep_every_observed_value(
        nested: pd.DataFrame, imp: rc.Imputations) -> None:
    for done in imp:
        assert not done[["y", "x", "w", "z"]].isna().any().any()
        assert done.where(nested.notna()).equals(nested.where(nested.notna()))
        assert done.groupby(["school", "class"])["w"].nunique().max() == 1
        assert done.groupby("school")["z"].nunique().max() == 1
        for t in ("y", "x", "w", "z"):  # pmm: every imputed value is an observed one
            assert done[t].isin(nested[t].dropna()).all(), t


def test_same_seed_same_imputations_whatever_the_batching(
        nested: pd.DataFrame, imp: rc.Imputations, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = nested_plan(method="ml.pmm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rc.SamplerWarning)
        two = rc.impute(nested, plan, m=3, maxit=3, seed=11, n_jobs=2)
        monkeypatch.setattr(gibbs, "LOCKSTEP_CELLS", len(nested))  # one chain at a time
        alone = rc.impute(nested, plan, m=3, maxit=3, seed=11)
    for k in range(1, 4):
        pd.testing.assert_frame_equal(two.complete(k), imp.complete(k))
        pd.testing.assert_frame_equal(alone.complete(k), imp.complete(k))


def test_a_compound_grouping_factor_imputes_as_unique_class_ids(nested: pd.DataFrame,
                                                                imp: rc.Imputations) -> None:
    """simulate_ml numbers the classes across schools, so "class" and "school:class" are the
    same clusters in the same order: the same imputations, bit for bit."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rc.SamplerWarning)
        ids = rc.impute(nested, nested_plan("class", method="ml.pmm"), m=3, maxit=3, seed=11)
    for k in range(1, 4):
        pd.testing.assert_frame_equal(ids.complete(k), imp.complete(k))


def test_shuffled_rows_give_the_imputations_of_the_same_rows_sorted_by_class(
        nested: pd.DataFrame) -> None:
    """Rows are sorted (stably) by the innermost grouping inside and mapped back."""
    shuffled = nested.sample(frac=1.0, random_state=2)
    by_class = shuffled.sort_values(["school", "class"], kind="stable")
    plan = nested_plan(method="ml.pmm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rc.SamplerWarning)
        one = rc.impute(shuffled, plan, m=2, maxit=2, seed=11)
        two = rc.impute(by_class, plan, m=2, maxit=2, seed=11)
    assert make_problem(plan, shuffled).order is not None
    for k in (1, 2):
        pd.testing.assert_frame_equal(one.complete(k).loc[by_class.index], two.complete(k))


def test_a_crossed_plan_imputes_and_fits(crossed: pd.DataFrame) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rc.SamplerWarning)
        imp = rc.impute(crossed, crossed_plan(), m=2, maxit=2, seed=3)
    for done in imp:
        assert not done[["y", "x"]].isna().any().any()
        assert done.where(crossed.notna()).equals(crossed.where(crossed.notna()))
    pooled = imp.fit("y ~ x + (1 | rater) + (1 | item)").pool().set_index("term")
    assert list(pooled.index) == ["(Intercept)", "x"]
    assert np.isfinite(pooled["std_error"]).all()


# ------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("column", "where", "pattern"), [
    ("w", "class", r"^the plan imputes 'w' as a level-2 variable \(ml\.norm\), but it varies "
                   r"within 1 of \d+ clusters of 'school:class': \S+ \(2 values in \d+ rows\) "
                   r"in these data"),
    ("z", "school", r"^the plan imputes 'z' as a level-3 variable \(3lonly\.pmm\), but it "
                    r"varies within 1 of \d+ clusters of 'school': \S+ \(2 values in \d+ rows\) "
                    r"in these data"),
])
def test_a_unit_level_target_that_varies_within_its_units_is_refused(
        nested: pd.DataFrame, column: str, where: str, pattern: str) -> None:
    data = nested.copy()
    first = data.index[data[column].notna()][0]
    data.loc[first, column] = 99.0  # one pupil's value differs from its class and school
    with pytest.raises(rc.DataError, match=pattern):
        make_problem(nested_plan(), data)


def test_a_multilevel_target_without_a_grouping_factor_is_refused(
        nested: pd.DataFrame) -> None:
    with pytest.raises(rc.PlanError, match="'w' with a multilevel method but gives it no "
                                           r"grouping factor \(code -2\)"):
        make_problem(nested_plan(w_codes={}), nested)


def test_a_multilevel_method_without_grouping_factors_is_refused(
        nested: pd.DataFrame) -> None:
    single = rc.compile("y ~ x", nested)
    plan = dataclasses.replace(single, method_table=(("y", "ml.pmm"),))
    with pytest.raises(rc.PlanError, match=r"imputes 'y' with ml\.pmm, which needs grouping "
                                           "factors, but the plan has none"):
        make_problem(plan, nested)


def test_classes_not_nested_in_schools_are_refused_naming_both(nested: pd.DataFrame) -> None:
    """Class labels 1..4 reused in every school: w's units (classes) span several schools."""
    data = nested.assign(**{"class": (nested["class"] - 1) % 4 + 1})
    data["w"] = data["w"].where(data["w"].isna(), data["class"] * 0.1)
    with pytest.raises(rc.DataError, match="random intercept over 'school', but the clusters "
                                           "of 'class' are not nested in those of 'school'"):
        make_problem(nested_plan("class"), data)


def test_a_mean_over_an_unknown_grouping_factor_is_refused() -> None:
    g = rc.data.grouping.Grouping(codes=np.array([0, 0, 1]), n=2, name="class")
    with pytest.raises(rc.DataError, match=r"'cm\(x, shool\)': it averages over 'shool', "
                                           r"which is not a grouping factor of the plan"):
        compute(_cm("x", "shool"), {"x": np.ones(3)}, g, {}, {"class": g})
