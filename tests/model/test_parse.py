"""The formula front end: lme4 syntax -> ModelSpec, carets under errors, design matrices."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from recipe_compiler.analysis.design import build_design
from recipe_compiler.errors import DataError, FormulaError
from recipe_compiler.model.parse import parse_formula
from recipe_compiler.model.spec import Factor, Term, cm, cwc, term, var

Caret = Callable[..., None]


def names(formula: str) -> list[str]:
    return [t.name for t in parse_formula(formula).terms]


# ----------------------------------------------------------------------------- fixed part


def test_plus_adds_main_effects_in_formula_order() -> None:
    spec = parse_formula("y ~ x + z")
    assert spec.outcome == "y"
    assert spec.intercept
    assert spec.terms == (term(var("x")), term(var("z")))
    assert spec.random is None and spec.cluster is None


def test_star_expands_to_main_effects_and_their_product() -> None:
    assert names("y ~ x*z") == ["x", "z", "x:z"]


def test_colon_is_the_product_alone() -> None:
    spec = parse_formula("y ~ x:z")
    assert [t.degree for t in spec.terms] == [2]
    assert spec.terms[0] == Term((var("z"), var("x")))  # order of factors does not matter


def test_minus_removes_a_term() -> None:
    assert names("y ~ x*z - x:z") == ["x", "z"]


def test_power_expands_to_all_two_way_products() -> None:
    assert names("y ~ (x + z)^2") == ["x", "z", "x:z"]


@pytest.mark.parametrize("formula", ["y ~ 0 + x", "y ~ x - 1", "y ~ x + 0"])
def test_zero_or_minus_one_removes_the_intercept(formula: str) -> None:
    spec = parse_formula(formula)
    assert not spec.intercept
    assert names(formula) == ["x"]


def test_intercept_only_model_has_no_terms() -> None:
    spec = parse_formula("y ~ 1 + (1 | g)")
    assert spec.intercept and spec.terms == ()


def test_I_keeps_the_expression_and_records_its_columns() -> None:
    (t,) = parse_formula("y ~ I(x ** 2 + z)").terms
    (f,) = t.factors
    assert f.kind == "expr"
    assert f.columns == ("x", "z")
    assert t.columns == ("x", "z")
    assert f.name == "I(x ** 2 + z)"


@pytest.mark.parametrize("call", ["C(c)", "factor(c)", "as.factor(c)"])
def test_C_and_factor_mark_a_categorical_column(call: str) -> None:
    (t,) = parse_formula(f"y ~ {call}").terms
    assert t.factors == (Factor("cat", "c"),)
    assert t.name == "C(c)"


def test_cm_and_cwc_are_cluster_mean_and_within_cluster_deviation() -> None:
    spec = parse_formula("y ~ cm(x) + cwc(x) + cm(x):z + (1 | g)")
    assert spec.terms == (term(cm("x")), term(cwc("x")), term(cm("x"), var("z")))
    assert spec.columns == ("y", "x", "z")


def test_whitespace_inside_calls_is_ignored() -> None:
    assert names("y ~ cm( x ) + C( c ) + (1 | g)") == ["cm(x)", "C(c)"]


# ----------------------------------------------------------------------------- random part


@pytest.mark.parametrize("formula", [
    "y ~ x + z + (1 + x | g)",
    "y ~ (1 + x | g) + x + z",
    "y ~ x + (1 + x | g) + z",
    "y~x+z+(1+x|g)",
])
def test_random_part_may_stand_anywhere(formula: str) -> None:
    spec = parse_formula(formula)
    assert names(formula) == ["x", "z"]
    assert spec.intercept
    assert spec.random is not None
    assert spec.random.cluster == "g" and spec.random.intercept
    assert spec.random.slopes == (term(var("x")),)


def test_random_part_alone_leaves_an_intercept_only_fixed_part() -> None:
    spec = parse_formula("y ~ (1 | g)")
    assert spec.intercept and spec.terms == ()
    assert spec.random is not None and spec.random.slopes == ()


def test_zero_in_the_random_part_removes_the_random_intercept() -> None:
    spec = parse_formula("y ~ x + (0 + x | g)")
    assert spec.random is not None
    assert not spec.random.intercept
    assert spec.random.slopes == (term(var("x")),)
    assert spec.intercept  # the fixed intercept is untouched


def test_a_slope_without_1_keeps_the_random_intercept_as_in_lme4() -> None:
    spec = parse_formula("y ~ x + (x | g)")
    assert spec.random is not None and spec.random.intercept


def test_random_group_span_covers_the_parenthesised_group() -> None:
    formula = "y ~ x + (1 + x | g)"
    spec = parse_formula(formula)
    assert spec.random is not None and spec.random.span is not None
    start, end = spec.random.span
    assert formula[start:end] == "(1 + x | g)"


def test_model_columns_are_outcome_then_fixed_then_slope_columns() -> None:
    spec = parse_formula("y ~ x*z + (1 + w | g)")
    assert spec.columns == ("y", "x", "z", "w")
    assert spec.cluster == "g"


# ----------------------------------------------------------------------------- errors and carets


def test_syntax_error_has_a_caret_under_the_misplaced_operator(caret: Caret) -> None:
    formula = "y ~ x + + (1 | g)"
    with pytest.raises(FormulaError, match="Operator `\\+`") as exc:
        parse_formula(formula)
    caret(str(exc.value), formula, "+", start=6)


def test_unbalanced_parenthesis_points_at_the_open_parenthesis(caret: Caret) -> None:
    formula = "y ~ x + (1 | g"
    with pytest.raises(FormulaError, match="unbalanced parenthesis") as exc:
        parse_formula(formula)
    caret(str(exc.value), formula, "(")


def test_stray_closing_parenthesis_is_pointed_at(caret: Caret) -> None:
    formula = "y ~ x + )"
    with pytest.raises(FormulaError, match="unbalanced parenthesis") as exc:
        parse_formula(formula)
    caret(str(exc.value), formula, ")")


def test_formula_without_tilde_is_underlined_whole(caret: Caret) -> None:
    with pytest.raises(FormulaError, match="no '~'") as exc:
        parse_formula("y x")
    caret(str(exc.value), "y x", "y x")


def test_second_tilde_is_pointed_at(caret: Caret) -> None:
    formula = "y ~ x ~ z"
    with pytest.raises(FormulaError, match="more than one '~'") as exc:
        parse_formula(formula)
    caret(str(exc.value), formula, "~", start=6)


def test_nothing_right_of_the_tilde_is_an_error(caret: Caret) -> None:
    with pytest.raises(FormulaError, match="no terms right of '~'") as exc:
        parse_formula("y ~ ")
    caret(str(exc.value), "y ~ ", "~")


@pytest.mark.parametrize("formula", ["", "   "])
def test_empty_formula_is_an_error(formula: str) -> None:
    with pytest.raises(FormulaError, match="formula is empty"):
        parse_formula(formula)


@pytest.mark.parametrize("formula, snippet", [
    ("y ~ x + foo(z) + (1 | g)", "foo(z)"),
    ("y ~ x + foo( z ) + (1 | g)", "foo( z )"),
    ("y ~ x + (1 | g) + log(z)", "log(z)"),
])
def test_unknown_function_is_named_and_underlined(formula: str, snippet: str,
                                                   caret: Caret) -> None:
    with pytest.raises(FormulaError) as exc:
        parse_formula(formula)
    fn = snippet.split("(")[0]
    assert f"unknown function '{fn}'" in str(exc.value)
    assert "cm(x), cwc(x), C(x), factor(x), I(expression)" in str(exc.value)
    caret(str(exc.value), formula, snippet)


def test_function_of_several_columns_is_refused(caret: Caret) -> None:
    formula = "y ~ cm(x + z) + (1 | g)"
    with pytest.raises(FormulaError, match="cm\\(\\) takes a single column name") as exc:
        parse_formula(formula)
    caret(str(exc.value), formula, "cm(x + z)")


def test_I_without_a_column_is_refused(caret: Caret) -> None:
    with pytest.raises(FormulaError, match="uses no column") as exc:
        parse_formula("y ~ I(1)")
    caret(str(exc.value), "y ~ I(1)", "I(1)")


def test_double_bar_is_refused_under_the_bars(caret: Caret) -> None:
    formula = "y ~ x + (1 + x || g)"
    with pytest.raises(FormulaError, match="'\\|\\|' are not supported") as exc:
        parse_formula(formula)
    caret(str(exc.value), formula, "||")


def test_random_group_must_be_added(caret: Caret) -> None:
    formula = "y ~ x * (1 | g)"
    with pytest.raises(FormulaError, match="must be added with '\\+'") as exc:
        parse_formula(formula)
    caret(str(exc.value), formula, "(1 | g)")


@pytest.mark.parametrize("formula, snippet", [("log(y) ~ x", "log(y)"), ("y + w ~ x", "y + w")])
def test_outcome_must_be_one_column(formula: str, snippet: str, caret: Caret) -> None:
    with pytest.raises(FormulaError, match="outcome must be a single column") as exc:
        parse_formula(formula)
    caret(str(exc.value), formula, snippet)


def test_missing_outcome_points_at_the_tilde(caret: Caret) -> None:
    with pytest.raises(FormulaError, match="no outcome") as exc:
        parse_formula(" ~ x")
    caret(str(exc.value), " ~ x", "~")


@pytest.mark.parametrize("formula", ["y ~ x + y + (1 | g)", "y ~ x + I(y * 2)",
                                     "y ~ x + (1 + y | g)"])
def test_outcome_on_the_right_is_refused(formula: str, caret: Caret) -> None:
    with pytest.raises(FormulaError, match="outcome 'y' also appears right of '~'") as exc:
        parse_formula(formula)
    caret(str(exc.value), formula, "y", start=formula.index("y", 1))


def test_outcome_as_cluster_is_refused(caret: Caret) -> None:
    with pytest.raises(FormulaError, match="is also the cluster variable") as exc:
        parse_formula("g ~ x + (1 | g)")
    caret(str(exc.value), "g ~ x + (1 | g)", "g")


@pytest.mark.parametrize("formula", ["y ~ x + g + (1 | g)", "y ~ x:g + (1 | g)"])
def test_cluster_as_fixed_term_is_refused(formula: str, caret: Caret) -> None:
    with pytest.raises(FormulaError, match="cluster variable 'g' cannot be a fixed term") as exc:
        parse_formula(formula)
    caret(str(exc.value), formula, "g")


def test_cluster_as_random_slope_is_refused(caret: Caret) -> None:
    formula = "y ~ x + (1 + g | g)"
    with pytest.raises(FormulaError, match="random slope over itself") as exc:
        parse_formula(formula)
    caret(str(exc.value), formula, "g")


@pytest.mark.parametrize("snippet", ["cm(x)", "cwc(x)", "cm( x )"])
def test_cluster_means_need_a_random_part(snippet: str, caret: Caret) -> None:
    formula = f"y ~ x + {snippet}"
    with pytest.raises(FormulaError, match="needs clusters") as exc:
        parse_formula(formula)
    caret(str(exc.value), formula, snippet)


def test_a_term_that_is_not_a_name_or_call_is_refused(caret: Caret) -> None:
    formula = "y ~ x + (1 + 2x | g)"
    with pytest.raises(FormulaError, match="cannot use '2x' as a term") as exc:
        parse_formula(formula)
    caret(str(exc.value), formula, "2x")


# ----------------------------------------------------------------------------- build_design


def test_design_names_columns_lme4_style(small: pd.DataFrame) -> None:
    d = build_design("y ~ x + cm(x) + cwc(x) + C(c) + (1 + x | g)", small)
    assert d.x_names == ("(Intercept)", "x", "cm(x)", "cwc(x)", "C(c)[T.2]", "C(c)[T.3]")
    assert d.z_names == ("(Intercept)", "x")
    assert d.outcome == "y" and d.cluster == "g"


def test_cluster_mean_is_computed_before_listwise_deletion(small: pd.DataFrame) -> None:
    d = build_design("y ~ x + cm(x) + cwc(x) + (1 | g)", small)
    x, mean, dev = d.X[:, 1], d.X[:, 2], d.X[:, 3]
    # cluster 1: observed x are 1 (row a, dropped: y missing) and 3 -> mean 2, not 3
    assert mean.tolist() == [2.0, 4.0, 4.0, 4.0]
    np.testing.assert_allclose(dev, x - mean)


def test_design_keeps_the_index_of_complete_rows_and_counts_the_dropped(
        small: pd.DataFrame) -> None:
    d = build_design("y ~ x + (1 | g)", small)
    assert list(d.rows) == ["b", "d", "e", "f"]
    assert d.n_dropped == 2
    assert d.y.tolist() == [2.0, 4.0, 5.0, 6.0]
    assert d.groups.tolist() == [0, 1, 1, 1]
    assert d.group_labels.tolist() == [1, 2]
    assert d.n_groups == 2


def test_categorical_levels_come_from_the_whole_column(small: pd.DataFrame) -> None:
    # level 3 lives in row f only; the treatment dummies still cover it after deletion
    d = build_design("y ~ C(c) + (1 | g)", small.assign(y=[1.0, 2, 3, 4, 5, np.nan]))
    assert d.x_names == ("(Intercept)", "C(c)[T.2]", "C(c)[T.3]")
    assert d.X[:, 2].tolist() == [0.0] * 5


def test_random_intercept_removed_leaves_only_the_slope(small: pd.DataFrame) -> None:
    d = build_design("y ~ 0 + x + (0 + x | g)", small)
    assert d.x_names == ("x",) and d.z_names == ("x",)


def test_design_of_an_I_expression_is_evaluated(small: pd.DataFrame) -> None:
    d = build_design("y ~ I(x ** 2) + (1 | g)", small)
    assert d.x_names == ("(Intercept)", "I(x ** 2)")
    assert d.X[:, 1].tolist() == [9.0, 4.0, 16.0, 36.0]


def test_design_accepts_a_parsed_spec(small: pd.DataFrame) -> None:
    spec = parse_formula("y ~ x + (1 | g)")
    assert build_design(spec, small).x_names == build_design("y ~ x + (1 | g)", small).x_names


def test_design_needs_a_random_part(small: pd.DataFrame) -> None:
    with pytest.raises(FormulaError, match="needs a random part"):
        build_design("y ~ x", small)


def test_design_names_an_unknown_column_with_a_caret(small: pd.DataFrame, caret: Caret) -> None:
    formula = "y ~ xx + (1 | g)"
    with pytest.raises(DataError, match="column 'xx' of the formula is not in the data; "
                                        "did you mean 'x'") as exc:
        build_design(formula, small)
    caret(str(exc.value), formula, "xx")


def test_design_without_a_complete_row_is_an_error(small: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="no row is complete"):
        build_design("y ~ x + (1 | g)", small.assign(x=[1.0, np.nan, np.nan, np.nan, 1, 1],
                                                     y=[np.nan, 1, 1, 1, np.nan, np.nan]))


def test_brandsma_design_dummy_codes_den_and_drops_incomplete_rows(
        brandsma: pd.DataFrame) -> None:
    d = build_design("lpo ~ iqv + C(den) + (1 | sch)", brandsma)
    assert d.x_names == ("(Intercept)", "iqv", "C(den)[T.2]", "C(den)[T.3]", "C(den)[T.4]")
    complete = brandsma[["lpo", "iqv", "den"]].notna().all(axis=1)
    assert d.n_dropped == int((~complete).sum()) > 0
    assert d.rows.equals(brandsma.index[complete])
    assert d.X.shape == (int(complete.sum()), 5)
