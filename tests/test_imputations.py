"""``rc.impute`` and the ``Imputations`` it returns: data integrity and reproducibility."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

import recipe_compiler as rc
from recipe_compiler.datasets.simulate_ml import simulate_ml

FORMULA = "lpo ~ iqv*sex + cm(iqv)*den + (1 | sch)"


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    d = rc.datasets.load_brandsma()[["sch", "lpo", "iqv", "sex", "den", "ssi", "pup"]]
    d = d.iloc[:1500].copy()
    d.index = pd.Index([f"p{i}" for i in range(len(d))], name="pupil")  # a non-default index
    return d


@pytest.fixture(scope="module")
def imp(data: pd.DataFrame) -> rc.Imputations:
    return rc.impute(data, FORMULA, m=3, maxit=3, seed=7)


def test_observed_cells_are_unchanged_bitwise_in_every_imputation(
        data: pd.DataFrame, imp: rc.Imputations) -> None:
    observed = data.notna().to_numpy()
    for k in range(imp.m + 1):
        done = imp.complete(k)
        a, b = data.to_numpy(dtype=float), done.to_numpy(dtype=float)
        assert np.array_equal(a[observed].view(np.int64), b[observed].view(np.int64))


def test_targets_are_complete_and_non_targets_keep_their_missing_values(
        data: pd.DataFrame, imp: rc.Imputations) -> None:
    for k in range(1, imp.m + 1):
        done = imp.complete(k)
        assert not done[imp.plan.targets].isna().any().any()
        pd.testing.assert_series_equal(done["ssi"], data["ssi"])  # not in the model


def test_shape_index_column_order_and_dtypes_are_preserved(
        data: pd.DataFrame, imp: rc.Imputations) -> None:
    done = imp.complete(2)
    assert done.index.equals(data.index) and list(done.columns) == list(data.columns)
    assert (done.dtypes == data.dtypes).all()


def test_pmm_imputes_only_observed_values(data: pd.DataFrame, imp: rc.Imputations) -> None:
    done = imp.complete(1)
    for t in imp.plan.targets:
        miss = data[t].isna()
        assert set(done.loc[miss, t]) <= set(data[t].dropna())


def test_level2_imputations_are_constant_within_cluster(imp: rc.Imputations) -> None:
    done = imp.complete(1)
    assert (done.groupby("sch")["den"].nunique() == 1).all()


def test_long_format_stacks_imputations_with_imp_and_id(data: pd.DataFrame,
                                                        imp: rc.Imputations) -> None:
    long = imp.complete("long", include=True)
    assert list(long.columns[:2]) == [".imp", ".id"]
    assert len(long) == (imp.m + 1) * len(data)
    assert sorted(long[".imp"].unique()) == list(range(imp.m + 1))
    assert list(long.loc[long[".imp"] == 0, ".id"]) == list(data.index)
    assert len(imp.complete("long")) == imp.m * len(data)


def test_same_seed_gives_identical_imputations(data: pd.DataFrame,
                                               imp: rc.Imputations) -> None:
    again = rc.impute(data, FORMULA, m=3, maxit=3, seed=7)
    pd.testing.assert_frame_equal(imp.complete("long"), again.complete("long"))
    other = rc.impute(data, FORMULA, m=3, maxit=3, seed=8)
    assert not imp.complete("long").equals(other.complete("long"))


def test_result_does_not_depend_on_n_jobs_or_executor(data: pd.DataFrame,
                                                      imp: rc.Imputations) -> None:
    two = rc.impute(data, FORMULA, m=3, maxit=3, seed=7, n_jobs=2)
    pd.testing.assert_frame_equal(imp.complete("long"), two.complete("long"))
    with ThreadPoolExecutor(2) as ex:
        threads = rc.impute(data, FORMULA, m=3, maxit=3, seed=7, executor=ex)
    pd.testing.assert_frame_equal(imp.complete("long"), threads.complete("long"))


def test_chain_statistics_have_one_column_per_chain(imp: rc.Imputations) -> None:
    mean = imp.chain_mean
    assert mean.shape == (len(imp.plan.targets) * imp.maxit, imp.m)
    assert list(mean.index.get_level_values("variable").unique()) == imp.plan.targets
    assert (imp.chain_var.to_numpy() >= 0).all()


def test_maxit_zero_returns_the_initial_fill(data: pd.DataFrame) -> None:
    imp0 = rc.impute(data, FORMULA, m=2, maxit=0, seed=1)
    assert not imp0.complete(1)[imp0.plan.targets].isna().any().any()


def test_a_compiled_plan_can_be_imputed(data: pd.DataFrame) -> None:
    plan = rc.compile(FORMULA, data)
    a = rc.impute(data, plan, m=2, maxit=2, seed=3)
    b = rc.impute(data, FORMULA, m=2, maxit=2, seed=3)
    pd.testing.assert_frame_equal(a.complete("long"), b.complete("long"))


def test_categorical_level2_target_is_imputed_with_its_labels(data: pd.DataFrame) -> None:
    d = data.copy()
    d["den"] = d["den"].map({1.0: "pub", 2.0: "cat", 3.0: "prot", 4.0: "other"}).astype(
        "category")
    imp = rc.impute(d, "lpo ~ iqv + C(den) + (1 | sch)", m=2, maxit=2, seed=1)
    assert imp.plan.methods["den"] == "2lonly.polyreg"
    done = imp.complete(1)
    assert done["den"].dtype == d["den"].dtype and done["den"].notna().all()


@pytest.mark.parametrize(("option", "value"), [("m", 0), ("maxit", -1), ("donors", 0),
                                               ("n_jobs", 0), ("m", 2.5)])
def test_bad_run_options_are_refused(data: pd.DataFrame, option: str, value: object) -> None:
    with pytest.raises(rc.OptionError, match=f"{option}="):
        rc.impute(data, FORMULA, **{option: value})  # type: ignore[arg-type]


def test_compile_options_cannot_be_combined_with_a_plan(data: pd.DataFrame) -> None:
    plan = rc.compile(FORMULA, data)
    with pytest.raises(rc.OptionError, match="compile again"):
        rc.impute(data, plan, centering="cluster")


def test_complete_rejects_an_out_of_range_k(imp: rc.Imputations) -> None:
    with pytest.raises(rc.RecipeError, match=r"1\.\.3"):
        imp.complete(4)


def test_analyze_pools_a_user_function(imp: rc.Imputations) -> None:
    def mean_lpo(d: pd.DataFrame) -> tuple[pd.Series, np.ndarray]:
        return pd.Series({"mean": d["lpo"].mean()}), np.array([d["lpo"].var() / len(d)])

    out = imp.analyze(mean_lpo)
    assert list(out["term"]) == ["mean"] and out["std_error"].iloc[0] > 0


def test_editing_the_callers_frame_afterwards_reaches_neither_complete_nor_fit(
        data: pd.DataFrame) -> None:
    frame = data.copy()
    imp = rc.impute(frame, FORMULA, m=2, maxit=2, seed=4)
    analysis = "lpo ~ iqv + sex + (1 | sch)"
    completed, pooled = imp.complete("long", include=True), imp.fit(analysis).pool()
    frame.loc[frame.index[:200], "iqv"] = 1e6  # values edited in place
    frame["lpo"] = np.nan  # a column replaced
    del frame["sex"]  # a column removed
    frame.index = pd.RangeIndex(len(frame))  # the labels replaced
    pd.testing.assert_frame_equal(imp.complete("long", include=True), completed)
    pd.testing.assert_frame_equal(imp.fit(analysis).pool(), pooled)
    assert imp.complete(1).index.equals(data.index)  # the caller's labels are kept


def test_imputations_do_not_share_memory_with_a_numpy_backed_frame(data: pd.DataFrame) -> None:
    values = data.to_numpy(dtype=float)  # a frame that wraps this array, not a copy of it
    frame = pd.DataFrame(values, index=data.index, columns=data.columns, copy=False)
    imp = rc.impute(frame, FORMULA, m=1, maxit=1, seed=5)
    completed = imp.complete(1)
    values[:, list(data.columns).index("iqv")] = 1e6
    assert frame["iqv"].eq(1e6).all()  # the write reached the caller's frame ...
    pd.testing.assert_frame_equal(imp.complete(1), completed)  # ... but not the imputations
    assert not np.shares_memory(imp.data.to_numpy(), values)


def test_long_format_refuses_data_that_already_have_its_columns() -> None:
    data = pd.DataFrame({"g": np.repeat(np.arange(6), 5), "y": np.arange(30.0),
                         ".imp": 1.0})
    data.loc[[0, 7, 13], "y"] = np.nan
    imp = rc.impute(data, "y ~ 1 + (1 | g)", m=2, maxit=1, seed=1)
    assert imp.complete(1).shape == data.shape
    with pytest.raises(rc.DataError, match=r"^the data already have the column\(s\) \.imp,"):
        imp.complete("long")


# ------------------------------------------------------------------ several grouping factors

NESTED = "y ~ x + w + z + (1 + x | school/class)"
CROSSED = "y ~ x + (1 | rater) + (1 | item)"


@pytest.fixture(scope="module")
def three_level() -> pd.DataFrame:
    """30 schools x 4 classes x 6 pupils; x (pupil), w (class) and z (school) incomplete,
    and a string index."""
    d = simulate_ml("three_level", seed=21, sizes=(30, 4, 6)).data
    d.index = pd.Index([f"r{i}" for i in range(len(d))])
    return d


@pytest.fixture(scope="module")
def imp3(three_level: pd.DataFrame) -> rc.Imputations:
    return rc.impute(three_level, NESTED, m=3, maxit=3, seed=5, auxiliary=["a"])


def test_a_three_level_formula_imputes_every_level_and_keeps_observed_cells(
        three_level: pd.DataFrame, imp3: rc.Imputations) -> None:
    obs = three_level.notna()
    for done in imp3:
        assert not done[["x", "w", "z"]].isna().any().any()
        assert done.where(obs).equals(three_level.where(obs))
        assert done.groupby(["school", "class"])["w"].nunique().max() == 1
        assert done.groupby("school")["z"].nunique().max() == 1
        # level 1 matches donors (observed values only); class and school values are
        # drawn from the normal model (ml.norm, 3lonly.norm)
        assert done["x"].isin(three_level["x"].dropna()).all()
        for t in ("w", "z"):
            assert not done.loc[three_level[t].isna(), t].isin(three_level[t].dropna()).any()


def test_a_three_level_imputation_is_the_same_for_any_n_jobs_or_executor(
        three_level: pd.DataFrame, imp3: rc.Imputations) -> None:
    two = rc.impute(three_level, NESTED, m=3, maxit=3, seed=5, auxiliary=["a"], n_jobs=2)
    with ThreadPoolExecutor(2) as pool:
        threads = rc.impute(three_level, NESTED, m=3, maxit=3, seed=5, auxiliary=["a"],
                            executor=pool)
    pd.testing.assert_frame_equal(two.complete("long"), imp3.complete("long"))
    pd.testing.assert_frame_equal(threads.complete("long"), imp3.complete("long"))


def test_a_three_level_fit_pools_fixed_effects_and_components_at_both_levels(
        imp3: rc.Imputations) -> None:
    fit = imp3.fit(NESTED)
    pooled = fit.pool().set_index("term")
    assert list(pooled.index) == ["(Intercept)", "x", "w", "z"]
    assert np.isfinite(pooled[["estimate", "std_error"]].to_numpy()).all()
    components = fit.variance_components()
    assert {"Intercept~~Intercept|school:class", "x~~x|school:class",
            "Intercept~~Intercept|school", "Residual~~Residual"} <= set(components.index)


def test_a_crossed_formula_imputes_and_pools() -> None:
    d = simulate_ml("crossed", seed=22, sizes=(40, 20, 6)).data
    imp = rc.impute(d, CROSSED, m=2, maxit=3, seed=6)
    obs = d.notna()
    for done in imp:
        assert not done["x"].isna().any()
        assert done.where(obs).equals(d.where(obs))
    pooled = imp.fit(CROSSED).pool().set_index("term")
    assert list(pooled.index) == ["(Intercept)", "x"]
    assert np.isfinite(pooled["std_error"]).all()
