"""Table 7.6: the imputation model of a level-2 target, on small synthetic data."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest

import recipe_compiler as rc
from recipe_compiler.compiler import Context, level2_row
from recipe_compiler.compiler.options import make_options
from recipe_compiler.data.schema import infer_schema
from recipe_compiler.model.parse import parse_formula
from recipe_compiler.model.spec import term, var

Row = Callable[[rc.Plan, str], dict[str, int]]


@pytest.fixture(scope="module")
def frame(make_frame: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    """y, x level-1; b level-1 0/1; z, v level-2; w level-2 0/1; c a level-2 auxiliary.

    z and w are incomplete (whole clusters); v and c are complete.
    """
    return make_frame(level1=("y", "x"), binary=("b",), level2=("z", "v", "c"),
                      level2_binary=("w",), n_clusters=12, seed=21,
                      missing={"y": 0.2, "x": 0.2, "b": 0.2, "z": 0.3, "w": 0.3})


def test_level1_variables_enter_with_code_1_for_their_cluster_means(
        frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x + b + z + (1 | g)", frame)
    assert row(plan, "z") == {"y": 1, "x": 1, "b": 1}
    assert plan.predictors("z")[0] == ("g", -2)
    assert plan.methods["z"] == "2lonly.pmm"
    assert plan.explain("z").loc["x", "step"] == "7.6.3 cluster mean of level-1 variable"


def test_level2_row_has_no_cluster_mean_columns(frame: pd.DataFrame) -> None:
    plan = rc.compile("y ~ x + z + (1 | g)", frame)
    assert plan.derived == {}  # 2lonly aggregates code-1 level-1 predictors itself


def test_level1_interactions_used_by_level1_targets_enter(frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x*b + z + (1 | g)", frame)
    # x:b from y's row, y:b from x's row (x <-> y), y:x from b's row (b <-> y)
    assert row(plan, "z") == {"y": 1, "x": 1, "b": 1, "x:b": 1, "y:b": 1, "y:x": 1}
    assert plan.explain("z").loc["y:b", "step"] == "7.6.4 cluster mean of level-1 interaction"


def test_level1_interactions_enter_as_the_level1_rows_centre_them(
        frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x*b + z + (1 | g)", frame, centering="cluster")
    assert {"cwc(x):b", "cwc(y):b", "cwc(y):cwc(x)"} <= set(row(plan, "z"))


def test_without_level1_targets_the_analysis_interactions_enter(
        frame: pd.DataFrame, row: Row) -> None:
    data = frame.assign(y=frame["y"].fillna(0), x=frame["x"].fillna(0), b=frame["b"].fillna(0))
    plan = rc.compile("y ~ x*b + z + (1 | g)", data)
    assert plan.targets == ["z"]
    assert row(plan, "z") == {"y": 1, "x": 1, "b": 1, "x:b": 1}


def test_other_level2_variables_and_their_interactions_enter(frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x + z + v*w + (1 | g)", frame)
    assert row(plan, "z") == {"y": 1, "x": 1, "v": 1, "w": 1, "v:w": 1}
    assert plan.explain("z").loc["v:w", "step"] == "7.6.6 level-2 interaction"
    assert plan.explain("z").loc["v", "step"] == "7.6.5 level-2 predictor"


def test_products_of_cluster_means_and_level2_variables_enter(
        frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x + cm(x)*v + z + (1 | g)", frame)
    # cm(x):v is the analysis term; cm(y):v its image in x's row
    assert row(plan, "z") == {"y": 1, "x": 1, "v": 1, "cm(x):v": 1, "cm(y):v": 1}


def test_cross_level_interactions_do_not_enter(frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x*v + z + (1 | g)", frame)
    assert row(plan, "z") == {"y": 1, "x": 1, "v": 1}


def test_every_term_with_the_target_is_excluded(frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x + cm(x)*z + z*v + (1 | g)", frame)
    assert row(plan, "z") == {"y": 1, "x": 1, "v": 1}
    ex = plan.explain("z")
    excluded = ex[ex["code"] == 0]
    assert set(excluded.index) == {"cm(x):z", "cm(y):z", "z:v"}
    assert (excluded["step"] == "7.6.8 excluded: involves the target").all()


def test_all_pairwise_adds_the_products_of_other_level2_variables(
        frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x + z + v + w + (1 | g)", frame, interactions="all_pairwise")
    z = row(plan, "z")
    assert z["v:w"] == 1
    assert {"cm(x):v", "cm(x):w", "cm(y):v", "cm(y):w"} <= set(z)  # from the level-1 rows
    assert not any("z" in p.split(":") for p in z)


def test_auxiliaries_enter_with_code_1(frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x + z + (1 | g)", frame, auxiliary=["c", "b"])
    assert row(plan, "z") == {"y": 1, "x": 1, "b": 1, "c": 1}
    assert plan.explain("z").loc["c", "step"] == "7.6.7 auxiliary variable"


def test_a_categorical_level2_target_is_dummy_coded_elsewhere(
        frame: pd.DataFrame, row: Row) -> None:
    plan = rc.compile("y ~ x + C(w) + z + (1 | g)", frame)
    assert plan.methods["w"] == "2lonly.polyreg"
    assert row(plan, "w") == {"y": 1, "x": 1, "z": 1}
    assert row(plan, "z") == {"y": 1, "x": 1, "C(w)[T.1]": 1}
    assert row(plan, "y")["C(w)[T.1]"] == 1


def test_level2_targets_come_after_level1_targets_in_formula_order(
        frame: pd.DataFrame) -> None:
    plan = rc.compile("y ~ w + z + x + (1 | g)", frame)
    assert plan.targets == ["y", "x", "w", "z"]


def test_level2_row_pass_itself(frame: pd.DataFrame) -> None:
    spec = parse_formula("y ~ x + z + v + (1 | g)")
    ctx = Context(spec, infer_schema(frame, ["y", "x", "z", "v"], "g"), make_options())
    entries = level2_row(ctx, "z", [term(var("y"), var("x"))])
    assert {e.predictor.name: e.code for e in entries} == {"y": 1, "x": 1, "y:x": 1, "v": 1}
