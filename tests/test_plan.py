"""The Plan value: its pandas views, explain(), the summary, equality and hashing."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pandas as pd
import pytest

import recipe_compiler as rc
from recipe_compiler.compiler.options import Options
from recipe_compiler.errors import PlanError
from recipe_compiler.plan import CODES, Cell, Derived, Variable

F7107 = ("lpo ~ iqv*ses + cm(iqv)*cm(ses) + iqv*cm(iqv) + iqv*cm(ses) + ses*cm(iqv) "
         "+ ses*cm(ses) + (1 + ses + iqv | sch)")


@pytest.fixture(scope="module")
def frame(make_frame: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    return make_frame(level1=("y", "x"), binary=("b",), level2=("z",), seed=5,
                      missing={"y": 0.2, "x": 0.2, "b": 0.1, "z": 0.3})


@pytest.fixture(scope="module")
def plan(frame: pd.DataFrame) -> rc.Plan:
    return rc.compile("y ~ x*b + x*z + (1 + x | g)", frame, centering="cluster")


@pytest.fixture(scope="module")
def plan_7107(brandsma: pd.DataFrame) -> rc.Plan:
    return rc.compile(F7107, brandsma[["sch", "lpo", "iqv", "ses"]], random_slopes="means_only")


# ----------------------------------------------------------------------------- views


def test_predictor_matrix_is_int_square_over_all_plan_variables(plan: rc.Plan) -> None:
    pm = plan.predictor_matrix
    assert list(pm.index) == plan.names and list(pm.columns) == plan.names
    assert (pm.dtypes == "int64").all()
    assert pm.index.name == "target" and pm.columns.name == "predictor"
    assert set(pm.to_numpy().ravel()) <= set(CODES)


def test_plan_variables_are_cluster_then_targets_then_covariates_then_derived(
        plan: rc.Plan) -> None:
    roles = [plan.variable(n).role for n in plan.names]
    assert roles[0] == "cluster" and plan.names[0] == "g"
    assert plan.targets == ["y", "x", "b", "z"]
    first_derived = roles.index("derived")
    assert all(r == "derived" for r in roles[first_derived:])
    assert set(plan.names[first_derived:]) == set(plan.derived)


def test_methods_is_a_series_over_all_plan_variables(plan: rc.Plan) -> None:
    methods = plan.methods
    assert isinstance(methods, pd.Series)
    assert list(methods.index) == plan.names and methods.name == "method"
    assert methods["g"] == ""
    assert methods[["y", "x", "b", "z"]].tolist() == ["2l.pmm", "2l.pmm", "2l.pmm", "2lonly.pmm"]
    assert methods["cm(x)"] == "2l.groupmean" and methods["cwc(x)"] == "passive"


def test_predictors_are_the_nonzero_cells_in_plan_order(plan: rc.Plan) -> None:
    row = plan.predictor_matrix.loc["y"]
    expected = [(p, int(c)) for p, c in row.items() if c]
    assert plan.predictors("y") == expected
    assert ("g", -2) in expected


def test_unknown_variable_is_a_plan_error_with_a_suggestion(plan: rc.Plan) -> None:
    with pytest.raises(PlanError, match="'yy' is not a plan variable; did you mean 'y'"):
        plan.variable("yy")
    with pytest.raises(PlanError):
        plan.explain("yy")


def test_derived_variables_know_their_definitions(plan: rc.Plan) -> None:
    d = plan.derived
    assert d["cm(x)"].expression == "groupmean(x)"
    assert d["cwc(x)"].parents == ("x", "cm(x)")
    assert d["cwc(x)"].expression == "~ I(x - cm(x))"
    assert d["cwc(x):b"].expression == "~ I(cwc(x) * b)"
    assert plan.variable("cm(x)").level == 2 and plan.variable("cwc(x):b").level == 1


def test_dummy_and_expression_definitions() -> None:
    assert Derived("C(d)[T.2]", "dummy", ("d",), "2").expression == "~ I(as.integer(d == 2))"
    assert Derived("I(x ** 2)", "expr", ("x",), "x ** 2").expression == "~ I(x ** 2)"
    assert Derived("I(x ** 2)", "expr", ("x",), "x ** 2").method == "passive"


# ----------------------------------------------------------------------------- explain


def test_explain_gives_code_meaning_step_and_reason(plan_7107: rc.Plan) -> None:
    ex = plan_7107.explain("iqv")
    assert list(ex.columns) == ["code", "meaning", "step", "reason"]
    assert ex.index.name == "predictor"
    row = ex.loc["lpo:cm(lpo)"]
    assert row["code"] == 1 and row["meaning"] == "fixed effect"
    assert row["step"] == "7.5.8 cross-level interaction"
    assert row["reason"] == "image of analysis term 'iqv:cm(iqv)' (role map iqv <-> lpo)"
    assert ex.loc["cm(lpo):cm(ses)", "step"] == "7.5.7 level-2 interaction"
    assert ex.loc["lpo:ses", "step"] == "7.5.5 level-1 interaction"


def test_explain_joins_every_step_that_put_a_predictor_there(plan_7107: rc.Plan) -> None:
    row = plan_7107.explain("lpo").loc["iqv"]
    assert row["code"] == 3  # means_only: the random slope writes 3, not 4
    assert row["step"] == "7.5.3-4 level-1 variable + cluster mean; 7.10.6 random slope"
    assert "random slope in the analysis model (role map identity)" in row["reason"]


def test_explain_rows_match_the_predictor_matrix(plan: rc.Plan) -> None:
    for target in plan.targets:
        ex = plan.explain(target)
        kept = ex[ex["code"] != 0]
        assert dict(kept["code"]) == dict(plan.predictors(target))


def test_explain_lists_excluded_terms_last_with_code_0(frame: pd.DataFrame) -> None:
    plan = rc.compile("y ~ x + cm(x)*z + (1 | g)", frame)
    ex = plan.explain("z")
    excluded = ex[ex["code"] == 0]
    assert set(excluded.index) == {"cm(x):z", "cm(y):z"}  # used by the rows of x and y
    assert (excluded["step"] == "7.6.8 excluded: involves the target").all()
    assert excluded["reason"].str.endswith("contains 'z'").all()
    assert list(ex["code"]).index(0) == len(ex) - len(excluded)


def test_explain_of_a_cluster_mean_shows_its_parent(plan: rc.Plan) -> None:
    ex = plan.explain("cm(x)")
    assert dict(ex["code"]) == {"g": -2, "x": 1}
    assert ex.loc["x", "step"] == "2l.groupmean"


# ----------------------------------------------------------------------------- str, equality


def test_str_is_the_summary(plan: rc.Plan) -> None:
    text = str(plan)
    assert text == plan.summary()
    lines = text.splitlines()
    assert lines[0] == "Imputation plan for: y ~ x*b + x*z + (1 + x | g)"
    assert lines[1] == "cluster: g"
    assert lines[2] == ("options: interactions='implied', centering='cluster', "
                        "random_slopes='include'")
    assert any(line.split()[:2] == ["y", "2l.pmm"] for line in lines)
    assert "  cwc(x)                   passive       ~ I(x - cm(x))" in lines
    assert lines[-1] == "visit sequence: " + ", ".join(plan.visit_sequence)
    assert "predictor matrix (target rows, non-zero columns):" in lines


def test_summary_lists_nonempty_options_only(frame: pd.DataFrame) -> None:
    plan = rc.compile("y ~ x + (1 | g)", frame, auxiliary=["b"], methods={"y": "2l.norm"})
    options_line = str(plan).splitlines()[2]
    assert "auxiliary=['b']" in options_line and "methods={'y': '2l.norm'}" in options_line
    assert "auxiliary" not in str(rc.compile("y ~ x + (1 | g)", frame)).splitlines()[2]


def test_compiling_twice_gives_equal_plans_with_equal_hashes(frame: pd.DataFrame) -> None:
    a = rc.compile("y ~ x*b + x*z + (1 + x | g)", frame, centering="cluster")
    b = rc.compile("y ~ x*b + x*z + (1 + x | g)", frame.copy(), centering="cluster")
    assert a == b and hash(a) == hash(b)
    assert len({a, b}) == 1


def test_plans_of_different_options_differ(frame: pd.DataFrame) -> None:
    a = rc.compile("y ~ x*b + (1 + x | g)", frame)
    b = rc.compile("y ~ x*b + (1 + x | g)", frame, random_slopes="means_only")
    assert a != b


def test_plan_is_immutable(plan: rc.Plan) -> None:
    with pytest.raises(AttributeError):
        plan.visit = ()  # type: ignore[misc]


# ----------------------------------------------------------------------------- several groupings


def _nested_plan() -> rc.Plan:
    """A hand-built three-level plan: the IR alone, no compiler."""
    variables = (Variable("school:class", "cluster", 2, "cluster"),
                 Variable("school", "cluster", 3, "cluster"),
                 Variable("y", "target", 1, "continuous", 4), Variable("x", "target", 1,
                                                                       "continuous", 3),
                 Variable("cm(x, school)", "derived", 3, "derived"))
    cells = (Cell("y", "school:class", -2, "ML.1.0 grouping factor", ""),
             Cell("y", "school", -2, "ML.1.0 grouping factor", ""),
             Cell("y", "x", 2, "ML.1.1 level-1 variable + means", ""),
             Cell("y", "cm(x, school)", 1, "ML.1.1 level-1 variable + means", ""),
             Cell("x", "school:class", -2, "ML.1.0 grouping factor", ""),
             Cell("x", "school", -2, "ML.1.0 grouping factor", ""),
             Cell("x", "y", 2, "ML.1.4 random slope over 'school:class'", ""))
    return rc.Plan(formula="y ~ x + (1 + x | school/class)", options=Options(),
                   cluster="school:class", variables=variables,
                   method_table=(("y", "ml.pmm"), ("x", "ml.norm"),
                                 ("cm(x, school)", "2l.groupmean")),
                   cells=cells, derived_defs=(Derived("cm(x, school)", "cm", ("x",), "school"),),
                   visit=("y", "x", "cm(x, school)"), groupings=("school:class", "school"),
                   nesting="nested")


def test_summary_of_a_plan_with_several_groupings_names_them_and_their_nesting() -> None:
    lines = _nested_plan().summary().splitlines()
    assert lines[1] == ("grouping factors (nested, innermost first): school:class (level 2), "
                        "school (level 3)")
    assert not any(line.startswith("cluster:") for line in lines)
    assert "  cm(x, school)            2l.groupmean  groupmean(x) within school" in lines
    assert "  x            ml.norm        level 1, continuous, 3 missing" in lines


def test_smc_advice_of_a_plan_with_several_groupings_says_when_smc_applies() -> None:
    """``(1 + x | school/class)`` has a slope of x over school too: beyond approach="smc";
    with the slope over classes only, SMC is offered as for two levels; crossed: not."""
    plan = _nested_plan()
    advice = plan.smc_advice
    assert advice.startswith("note: the random slope of x involve(s) an incomplete variable")
    assert advice.endswith("(approach=\"smc\" covers two nested grouping factors with random "
                           "slopes over the innermost only)")
    inner = dataclasses.replace(plan, formula="y ~ x + (1 + x | school:class) + (1 | school)")
    assert inner.smc_advice.endswith("approach=\"smc\" is the unbiased alternative")
    crossed = dataclasses.replace(inner, nesting="crossed")
    assert crossed.smc_advice.endswith("random slopes over the innermost only)")


def test_explain_of_a_plan_with_several_groupings_cites_the_rules() -> None:
    ex = _nested_plan().explain("y")
    assert dict(ex["code"]) == {"school:class": -2, "school": -2, "x": 2, "cm(x, school)": 1}
    assert ex.loc["cm(x, school)", "step"] == "ML.1.1 level-1 variable + means"
