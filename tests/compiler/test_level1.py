"""Table 7.5: the imputation model of a level-1 target, step by step, on small synthetic data."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

import recipe_compiler as rc
from recipe_compiler.compiler import Context, Entry, level1_row
from recipe_compiler.compiler.level1 import merge
from recipe_compiler.compiler.options import make_options
from recipe_compiler.data.schema import infer_schema
from recipe_compiler.model.parse import parse_formula
from recipe_compiler.model.spec import cwc, term, var

Row = Callable[[rc.Plan, str], dict[str, int]]


@pytest.fixture(scope="module")
def frame(make_frame: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    """y, x level-1 continuous; b level-1 0/1; z level-2, w level-2 0/1; a, c auxiliaries."""
    data = make_frame(level1=("y", "x", "a"), binary=("b",), level2=("z", "c"),
                      level2_binary=("w",), n_clusters=10, seed=7,
                      missing={"y": 0.2, "x": 0.2, "b": 0.2, "z": 0.2, "w": 0.2, "a": 0.2})
    k = pd.cut(data["x"].fillna(0.0), [-np.inf, -0.5, 0.5, np.inf], labels=False)
    return data.assign(k=k.astype(float))  # a complete 3-category level-1 column


# ----------------------------------------------------------------------------- role map


def test_outcome_row_is_the_analysis_model_itself(frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x + z + x:z + (1 | g)", frame)
    assert row(plan, "y") == {"x": 3, "z": 1, "x:z": 1}
    assert plan.predictors("y")[0] == ("g", -2)


def test_other_level1_target_swaps_roles_with_the_outcome(frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x + z + x:z + (1 | g)", frame)
    assert row(plan, "x") == {"y": 3, "z": 1, "y:z": 1}
    reason = str(plan.explain("x").loc["y:z", "reason"])
    assert reason == "image of analysis term 'x:z' (role map x <-> y)"


def test_role_map_swaps_cluster_means_and_deviations(frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x + cm(x):z + cwc(x):b + (1 | g)", frame)
    assert row(plan, "x") == {"y": 3, "b": 3, "z": 1, "cm(y):z": 1, "cwc(y):b": 1}
    assert row(plan, "b") == {"y": 3, "x": 3, "z": 1, "cm(x):z": 1, "y:cwc(x)": 1}


def test_a_cluster_mean_main_effect_gets_no_column_of_its_own(
        frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x + cm(x) + (1 | g)", frame)
    assert row(plan, "y") == {"x": 3}
    assert row(plan, "x") == {"y": 3}
    assert plan.derived == {}


# ----------------------------------------------------------------------------- random slopes


def test_random_slope_gives_code_4_to_its_image(frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x + b + (1 + x | g)", frame)
    assert row(plan, "y") == {"x": 4, "b": 3}
    assert row(plan, "x") == {"y": 4, "b": 3}  # image of x under x <-> y is y
    assert row(plan, "b") == {"y": 3, "x": 4}
    assert plan.explain("y").loc["x", "step"] == (
        "7.5.3-4 level-1 variable + cluster mean; 7.10.6 random slope")


def test_means_only_writes_3_for_random_slopes(frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x + b + (1 + x + b | g)", frame, random_slopes="means_only")
    pm = plan.predictor_matrix.loc[plan.targets]
    assert not (pm == 4).any().any()
    assert row(plan, "y") == {"x": 3, "b": 3}


def test_a_categorical_random_slope_gives_code_4_to_its_dummies(
        frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x + C(b) + (1 + C(b) | g)", frame)
    assert row(plan, "y") == {"x": 3, "C(b)[T.1]": 4}
    assert row(plan, "b") == {"y": 4, "x": 3}


def test_a_cwc_random_slope_counts_as_its_column(frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ cwc(x) + (1 + cwc(x) | g)", frame)
    assert row(plan, "y") == {"x": 4}


# ----------------------------------------------------------------------------- interactions


def test_implied_adds_only_the_analysis_model_interactions(frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x + b + z + w + (1 | g)", frame)
    assert row(plan, "y") == {"x": 3, "b": 3, "z": 1, "w": 1}


def test_all_pairwise_adds_every_product_but_cluster_mean_pairs(
        frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x + b + z + w + (1 | g)", frame, interactions="all_pairwise")
    assert row(plan, "y") == {
        "x": 3, "b": 3, "z": 1, "w": 1,
        "x:b": 1,                                  # level-1 x level-1
        "x:z": 1, "x:w": 1, "b:z": 1, "b:w": 1,    # level-1 x level-2
        "z:w": 1,                                  # level-2 x level-2
        "cm(x):z": 1, "cm(x):w": 1, "cm(b):z": 1, "cm(b):w": 1,  # cluster mean x level-2
    }
    assert "cm(x):cm(b)" not in plan.names


def test_all_pairwise_keeps_the_analysis_model_interactions(frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x*b*z + cm(x):cm(b) + (1 | g)", frame, interactions="all_pairwise")
    assert {"x:b:z", "cm(x):cm(b)"} <= set(row(plan, "y"))


def test_interaction_steps_name_their_levels(frame: pd.DataFrame) -> None:
    plan = rc.compile("y ~ x*b + x*z + cm(x)*z + (1 | g)", frame)
    steps = plan.explain("y")["step"]
    assert steps["x:b"] == "7.5.5 level-1 interaction"
    assert steps["x:z"] == "7.5.8 cross-level interaction"
    assert steps["cm(x):z"] == "7.5.7 level-2 interaction"
    assert steps["z"] == "7.5.6 level-2 predictor"


def test_I_terms_are_carried_over_through_the_role_map(frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x + I(x ** 2) + (1 | g)", frame)
    assert row(plan, "y") == {"x": 3, "I(x ** 2)": 1}
    assert row(plan, "x") == {"y": 3, "I(y ** 2)": 1}
    assert plan.derived["I(y ** 2)"].parents == ("y",)


# ----------------------------------------------------------------------------- centering


def test_cluster_centering_puts_continuous_level1_factors_within_cluster(
        frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x*b + x*z + (1 | g)", frame, centering="cluster")
    assert row(plan, "y") == {"x": 3, "b": 3, "z": 1, "cwc(x):b": 1, "cwc(x):z": 1}
    assert row(plan, "x") == {"y": 3, "b": 3, "z": 1, "cwc(y):b": 1, "cwc(y):z": 1}
    assert row(plan, "b") == {"y": 3, "x": 3, "z": 1, "cwc(y):cwc(x)": 1, "cwc(x):z": 1}


def test_binary_and_level2_factors_stay_raw_when_centering(frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ b*w + (1 | g)", frame, centering="cluster")
    assert row(plan, "y") == {"b": 3, "w": 1, "b:w": 1}
    assert row(plan, "b") == {"y": 3, "w": 1, "cwc(y):w": 1}  # the image y:w is centred


def test_no_centering_keeps_raw_products(frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x*b + (1 | g)", frame, centering="none")
    assert row(plan, "y") == {"x": 3, "b": 3, "x:b": 1}


def test_main_effects_are_never_centred(frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x + z + (1 | g)", frame, centering="cluster")
    assert row(plan, "y") == {"x": 3, "z": 1}


# ----------------------------------------------------------------------------- auxiliaries


def test_auxiliaries_are_main_effects_by_level(frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x + (1 | g)", frame, auxiliary=["c", "a"])
    assert row(plan, "y") == {"x": 3, "a": 3, "c": 1}
    assert plan.explain("y").loc["a", "step"] == "7.5.9 auxiliary variable"


def test_auxiliaries_do_not_enter_products(frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x + (1 | g)", frame, auxiliary=["a", "c"],
                      interactions="all_pairwise")
    assert row(plan, "y") == {"x": 3, "a": 3, "c": 1}


def test_an_incomplete_auxiliary_becomes_a_target(frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x + (1 | g)", frame, auxiliary=["a", "c"])
    assert plan.targets == ["y", "x", "a"]  # c is complete
    assert row(plan, "a") == {"y": 3, "x": 3, "c": 1}
    excluded = plan.explain("a").loc["a"]
    assert excluded["code"] == 0
    assert excluded["step"] == "7.5.10 excluded: involves the target"


def test_an_auxiliary_already_in_the_model_changes_nothing(frame: pd.DataFrame) -> None:
    assert rc.compile("y ~ x + (1 | g)", frame, auxiliary=["x"]).cells == rc.compile(
        "y ~ x + (1 | g)", frame).cells


# ----------------------------------------------------------------------------- exclusion


def test_no_row_holds_a_term_of_its_own_target(frame: pd.DataFrame) -> None:
    plan = rc.compile("y ~ x*b + cm(x)*z + cwc(x):w + (1 + x | g)", frame,
                      interactions="all_pairwise", centering="cluster")
    for t in plan.targets:
        for p, _ in plan.predictors(t):
            assert p != t
            if p in plan.derived:
                assert t not in _ancestors(plan, p), (t, p)


def _ancestors(plan: rc.Plan, name: str) -> set[str]:
    parents = plan.derived[name].parents
    return set(parents).union(*(_ancestors(plan, p) for p in parents if p in plan.derived))


# ----------------------------------------------------------------------------- categorical


def test_categorical_predictor_enters_as_dummy_columns(frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x + C(k) + z + (1 | g)", frame)
    assert row(plan, "y") == {"x": 3, "C(k)[T.1]": 3, "C(k)[T.2]": 3, "z": 1}
    assert plan.derived["C(k)[T.2]"].expression == "~ I(as.integer(k == 2))"


def test_products_with_a_categorical_factor_are_products_of_its_dummies(
        frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x*C(k) + (1 | g)", frame)
    assert row(plan, "y") == {"x": 3, "C(k)[T.1]": 3, "C(k)[T.2]": 3,
                              "x:C(k)[T.1]": 1, "x:C(k)[T.2]": 1}
    assert row(plan, "x") == {"y": 3, "C(k)[T.1]": 3, "C(k)[T.2]": 3,
                              "y:C(k)[T.1]": 1, "y:C(k)[T.2]": 1}
    assert plan.derived["x:C(k)[T.1]"].parents == ("x", "C(k)[T.1]")


def test_a_categorical_target_maps_to_the_outcome_under_the_role_map(
        frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x*C(b) + (1 | g)", frame)
    assert plan.methods["b"] == "2l.bin"
    assert row(plan, "b") == {"y": 3, "x": 3, "y:x": 1}
    assert row(plan, "x") == {"y": 3, "C(b)[T.1]": 3, "y:C(b)[T.1]": 1}


def test_all_pairwise_with_a_categorical_uses_cluster_means_of_its_dummies(
        frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x + C(b) + z + (1 | g)", frame, interactions="all_pairwise")
    assert {"C(b)[T.1]:z": 1, "cm(C(b)[T.1]):z": 1}.items() <= row(plan, "y").items()
    assert plan.derived["cm(C(b)[T.1])"].parents == ("C(b)[T.1]",)


# ----------------------------------------------------------------------------- the pass itself


def test_level1_row_returns_entries_with_steps(frame: pd.DataFrame) -> None:
    spec = parse_formula("y ~ x*z + (1 | g)")
    ctx = Context(spec, infer_schema(frame, ["y", "x", "z"], "g"), make_options())
    entries = {e.predictor.name: e for e in level1_row(ctx, "x")}
    assert set(entries) == {"y", "z", "y:z"}
    assert entries["y"].code == 3 and entries["z"].code == 1
    assert entries["y:z"].step == "7.5.8 cross-level interaction"


def test_merge_keeps_the_highest_code_and_joins_steps() -> None:
    t = term(var("x"))
    merged = merge([Entry(t, 3, "s1", "r1"), Entry(t, 4, "s2", "r2"), Entry(t, 3, "s1", "r1")])
    assert merged == [Entry(t, 4, "s1; s2", "r1; r2")]


def test_merge_lets_an_exclusion_win() -> None:
    t = term(cwc("x"), var("b"))
    assert [e.code for e in merge([Entry(t, 1, "a", "r"), Entry(t, 0, "b", "r")])] == [0]
