"""``rc.compile``: targets and methods, the single-level case, and each bad input's message."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

import recipe_compiler as rc
from recipe_compiler.compiler.options import LEVEL1_METHODS, LEVEL2_METHODS
from recipe_compiler.errors import DataError, FormulaError, OptionError

Caret = Callable[..., None]


@pytest.fixture(scope="module")
def frame(make_frame: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    """y, x level-1 continuous; b level-1 0/1; z, w level-2; everything but z incomplete."""
    return make_frame(level1=("y", "x"), binary=("b",), level2=("z",), level2_binary=("w",),
                      missing={"y": 0.2, "x": 0.2, "b": 0.2, "w": 0.3}, seed=11, n_clusters=12,
                      cluster_size=(5, 8))


# ----------------------------------------------------------------------------- targets, methods


def test_targets_are_outcome_then_level1_then_level2_in_formula_order(
        frame: pd.DataFrame) -> None:
    plan = rc.compile("y ~ w + b + x + z + (1 | g)", frame)
    assert plan.targets == ["y", "b", "x", "w"]  # z is complete: a covariate


def test_complete_columns_are_covariates_not_targets(frame: pd.DataFrame) -> None:
    plan = rc.compile("y ~ x + z + (1 | g)", frame)
    assert plan.variable("z").role == "covariate"
    assert plan.methods["z"] == ""
    assert "z" not in plan.predictor_matrix.loc[plan.targets].index


def test_complete_data_compile_to_a_plan_without_targets(frame: pd.DataFrame) -> None:
    plan = rc.compile("y ~ x + (1 | g)", frame.fillna(0.0))
    assert plan.targets == [] and plan.visit_sequence == [] and plan.derived == {}


def test_default_methods_follow_the_target_level(frame: pd.DataFrame) -> None:
    plan = rc.compile("y ~ x + b + w + (1 | g)", frame)
    assert plan.methods[["y", "x", "b", "w"]].tolist() == [
        "2l.pmm", "2l.pmm", "2l.pmm", "2lonly.pmm"]


def test_declared_categorical_targets_get_categorical_methods(frame: pd.DataFrame) -> None:
    plan = rc.compile("y ~ x + C(b) + C(w) + (1 | g)", frame)
    assert plan.methods[["b", "w"]].tolist() == ["2l.bin", "2lonly.polyreg"]


def test_a_nominal_level1_target_gets_2l_polyreg_and_an_ordinal_one_2l_polr(
        frame: pd.DataFrame) -> None:
    data = frame.assign(k=np.where(frame["x"] > 0.5, 2.0, np.where(frame["x"] < -0.5, 0.0, 1.0)))
    data.loc[data["x"].isna(), "k"] = np.nan
    assert rc.compile("y ~ C(k) + (1 | g)", data).methods["k"] == "2l.polyreg"
    ordered = data.assign(k=pd.Categorical(data["k"], categories=[2.0, 0.0, 1.0], ordered=True))
    assert rc.compile("y ~ k + (1 | g)", ordered).methods["k"] == "2l.polr"
    plan = rc.compile("y ~ C(k) + (1 | g)", data, methods={"k": "2l.polr"})
    assert plan.methods["k"] == "2l.polr"
    assert rc.compile("y ~ C(k) + (1 | g)", data, methods={"k": "2l.pmm"}).methods["k"] == \
        "2l.pmm"


def test_level2_and_single_level_categorical_defaults(frame: pd.DataFrame) -> None:
    w3 = frame["w"] + (frame["g"] % 3 == 0)  # level 2, three categories
    data = frame.assign(w3=w3, o3=pd.Categorical(w3, ordered=True))
    plan = rc.compile("y ~ C(w3) + o3 + (1 | g)", data)
    assert plan.methods[["w3", "o3"]].tolist() == ["2lonly.polyreg", "2lonly.polr"]
    single = rc.compile("y ~ C(w3) + o3", data)
    assert single.methods[["w3", "o3"]].tolist() == ["polyreg", "polr"]


@pytest.mark.parametrize("target, method", [("y", "2l.norm"), ("w", "2lonly.norm")])
def test_a_valid_method_override_is_used(frame: pd.DataFrame, target: str, method: str) -> None:
    plan = rc.compile("y ~ x + w + (1 | g)", frame, methods={target: method})
    assert plan.methods[target] == method


@pytest.mark.parametrize("target, method, level, valid", [
    ("y", "2lonly.pmm", 1, LEVEL1_METHODS), ("w", "2l.pmm", 2, LEVEL2_METHODS)])
def test_a_method_of_the_wrong_level_lists_the_valid_ones(
        frame: pd.DataFrame, target: str, method: str, level: int,
        valid: tuple[str, ...]) -> None:
    with pytest.raises(OptionError) as exc:
        rc.compile("y ~ x + w + (1 | g)", frame, methods={target: method})
    choices = ", ".join(repr(v) for v in valid)
    assert str(exc.value) == (f"methods[{target!r}] (a level-{level} target)={method!r} is not "
                              f"valid; choose one of {choices}")


def test_an_unknown_method_lists_the_valid_ones(frame: pd.DataFrame) -> None:
    with pytest.raises(OptionError, match=r"methods\['y'\]='pmmm' is not valid; choose one of "
                                          r"'2l\.pmm', '2l\.norm'"):
        rc.compile("y ~ x + (1 | g)", frame, methods={"y": "pmmm"})


def test_a_method_for_a_column_that_is_not_a_target_is_refused(frame: pd.DataFrame) -> None:
    with pytest.raises(OptionError, match="methods: 'z' is not an incomplete model column; "
                                          "targets are y, x"):
        rc.compile("y ~ x + z + (1 | g)", frame, methods={"z": "2lonly.pmm"})


def test_a_parsed_spec_compiles_like_its_formula(frame: pd.DataFrame) -> None:
    formula = "y ~ x*b + (1 + x | g)"
    assert rc.compile(rc.parse_formula(formula), frame) == rc.compile(formula, frame)


def test_compile_does_not_modify_the_data(frame: pd.DataFrame) -> None:
    before = frame.copy()
    rc.compile("y ~ x*b + cm(x)*w + (1 + x | g)", frame, centering="cluster",
               interactions="all_pairwise")
    pd.testing.assert_frame_equal(frame, before)


# ----------------------------------------------------------------------------- single level


def test_single_level_formula_uses_codes_1_only(frame: pd.DataFrame) -> None:
    plan = rc.compile("y ~ x*b", frame)
    assert plan.cluster is None
    pm = plan.predictor_matrix.loc[plan.targets]
    assert set(np.unique(pm.to_numpy())) == {0, 1}
    assert plan.predictors("y") == [("x", 1), ("b", 1), ("x:b", 1)]
    assert plan.explain("y").loc["x", "step"] == "7.5.3-4 level-1 variable"


def test_single_level_methods_are_pmm_logreg_polyreg(frame: pd.DataFrame) -> None:
    data = frame.assign(k=pd.Series(np.arange(len(frame)) % 3, dtype=float)
                        .where(frame["x"].notna()))
    plan = rc.compile("y ~ x + C(b) + C(k)", data)
    assert plan.methods[["y", "x", "b", "k"]].tolist() == ["pmm", "pmm", "logreg", "polyreg"]


def test_single_level_methods_must_be_single_level(frame: pd.DataFrame) -> None:
    with pytest.raises(OptionError, match="choose one of 'pmm', 'norm', 'logreg', 'polyreg'"):
        rc.compile("y ~ x", frame, methods={"y": "2l.pmm"})


def test_cluster_centering_needs_a_random_part(frame: pd.DataFrame) -> None:
    with pytest.raises(OptionError, match="centering='cluster' needs clusters"):
        rc.compile("y ~ x*b", frame, centering="cluster")


# ----------------------------------------------------------------------------- bad input


def test_unknown_column_is_named_with_suggestions_and_caret(frame: pd.DataFrame,
                                                             caret: Caret) -> None:
    formula = "y ~ xx + b + (1 | g)"
    with pytest.raises(DataError) as exc:
        rc.compile(formula, frame)
    assert str(exc.value).startswith("column 'xx' of the formula is not in the data; "
                                     "did you mean 'x'?")
    caret(str(exc.value), formula, "xx")


def test_unknown_column_without_close_names_lists_the_columns(frame: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"column 'qqq' .* valid names: 'g', 'y', 'x', 'b'"):
        rc.compile("y ~ qqq + (1 | g)", frame)


def test_missing_cluster_column_is_named_with_a_caret(frame: pd.DataFrame,
                                                       caret: Caret) -> None:
    formula = "y ~ x + (1 | gg)"
    with pytest.raises(DataError) as exc:
        rc.compile(formula, frame)
    assert str(exc.value).startswith("cluster variable 'gg' of the formula is not in the data; "
                                     "did you mean 'g'?")
    caret(str(exc.value), formula, "gg")


def test_cluster_with_missing_values_is_refused(frame: pd.DataFrame) -> None:
    data = frame.assign(g=frame["g"].where(frame.index != 3))
    with pytest.raises(DataError, match="cluster variable 'g' has 1 missing values"):
        rc.compile("y ~ x + (1 | g)", data)


def test_a_single_cluster_is_refused(frame: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="has a single cluster"):
        rc.compile("y ~ x + (1 | g)", frame.assign(g=1))


def test_unknown_option_name_is_refused(frame: pd.DataFrame) -> None:
    with pytest.raises(OptionError, match="unknown option 'random_slope'; valid options: "):
        rc.compile("y ~ x + (1 | g)", frame, random_slope="include")


def test_unknown_option_value_is_refused(frame: pd.DataFrame) -> None:
    with pytest.raises(OptionError, match="random_slopes='none' is not valid; choose one of "
                                          "'include', 'means_only'"):
        rc.compile("y ~ x + (1 | g)", frame, random_slopes="none")


def test_auxiliary_not_in_the_data_is_named(frame: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="auxiliary column 'zz' is not in the data; "
                                        "did you mean 'z'"):
        rc.compile("y ~ x + (1 | g)", frame, auxiliary=["zz"])


def test_the_cluster_cannot_be_auxiliary(frame: pd.DataFrame) -> None:
    with pytest.raises(OptionError, match="auxiliary column 'g' is the cluster variable"):
        rc.compile("y ~ x + (1 | g)", frame, auxiliary=["g"])


def test_an_all_missing_column_is_named(frame: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="column 'x' is entirely missing"):
        rc.compile("y ~ x + (1 | g)", frame.assign(x=np.nan))


def test_an_empty_frame_is_refused(frame: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="the data frame has no rows"):
        rc.compile("y ~ x + (1 | g)", frame.iloc[:0])


def test_data_must_be_a_frame() -> None:
    with pytest.raises(DataError, match="data must be a pandas DataFrame, got list"):
        rc.compile("y ~ x + (1 | g)", [[1, 2]])  # type: ignore[arg-type]


def test_duplicate_column_names_are_refused(frame: pd.DataFrame) -> None:
    data = frame.copy()
    data.columns = [*frame.columns[:-1], "x"]
    with pytest.raises(DataError, match="duplicate column names: 'x'"):
        rc.compile("y ~ x + (1 | g)", data)


def test_infinite_values_are_refused(frame: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="column 'x' holds infinite values"):
        rc.compile("y ~ x + (1 | g)", frame.assign(x=frame["x"].replace(frame["x"][0], np.inf)))


def test_strings_in_a_numeric_column_are_refused(frame: pd.DataFrame) -> None:
    x = frame["x"].astype(object)
    x[2] = "abc"
    with pytest.raises(DataError, match="column 'x' holds non-numeric values such as 'abc'"):
        rc.compile("y ~ x + (1 | g)", frame.assign(x=x))


def test_many_undeclared_categories_are_refused(frame: pd.DataFrame) -> None:
    ids = pd.Series([f"p{i}" for i in range(len(frame))], dtype="category")
    assert len(frame) > 50
    with pytest.raises(DataError, match=r"column 'pid' has \d+ categories \(more than 50\); "
                                        r"write C\(pid\)"):
        rc.compile("y ~ x + pid + (1 | g)", frame.assign(pid=ids))


def test_random_slope_on_a_level2_variable_points_into_the_random_part(
        frame: pd.DataFrame, caret: Caret) -> None:
    formula = "y ~ x + z + (1 + z | g)"
    with pytest.raises(FormulaError, match="random slope of 'z', a level-2 variable") as exc:
        rc.compile(formula, frame)
    caret(str(exc.value), formula, "z", start=formula.rindex("z"))


def test_random_slope_on_a_cluster_mean_is_refused(frame: pd.DataFrame, caret: Caret) -> None:
    formula = "y ~ x + cm(x) + (1 + cm(x) | g)"
    with pytest.raises(FormulaError, match="random slope of 'cm\\(x\\)'") as exc:
        rc.compile(formula, frame)
    caret(str(exc.value), formula, "cm(x)", start=formula.rindex("cm(x)"))


def test_a_level2_outcome_is_refused(frame: pd.DataFrame, caret: Caret) -> None:
    formula = "w ~ x + (1 | g)"
    with pytest.raises(FormulaError, match="the outcome 'w' is constant within every cluster "
                                           "of 'g' \\(a level-2 variable\\)") as exc:
        rc.compile(formula, frame)
    caret(str(exc.value), formula, "w")


def test_cluster_mean_of_a_categorical_column_is_the_mean_of_its_dummies(
        frame: pd.DataFrame) -> None:
    plan = rc.compile("y ~ C(b) + cm(b):z + (1 | g)", frame)
    derived = plan.derived
    assert derived["cm(C(b)[T.1])"].op == "cm"
    assert derived["cm(C(b)[T.1])"].parents == ("C(b)[T.1]",)
    assert derived["C(b)[T.1]"].parents == ("b",)
    assert ("cm(C(b)[T.1]):z", 1) in plan.predictors("y")


def test_every_error_is_a_value_error(frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError):
        rc.compile("y ~ x + (1 | gg)", frame)
