"""Formulas with several grouping factors: nested, interacted and crossed random effects."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from recipe_compiler.errors import FormulaError
from recipe_compiler.model.parse import parse_formula
from recipe_compiler.model.spec import term, var

Caret = Callable[..., None]


def test_nesting_is_the_interaction_and_the_outer_factor() -> None:
    spec = parse_formula("y ~ x + (1 | school/class)")
    assert [r.cluster for r in spec.randoms] == ["school:class", "school"]
    assert [r.factors for r in spec.randoms] == [("school", "class"), ("school",)]
    assert spec.random is spec.randoms[0] and spec.cluster == "school:class"
    assert all(r.intercept and r.slopes == () for r in spec.randoms)
    assert spec.grouping_columns == ("school", "class")
    assert spec.columns == ("y", "x")


def test_nesting_equals_the_written_out_terms() -> None:
    nested = parse_formula("y ~ x + (1 + x | school/class)")
    written = parse_formula("y ~ x + (1 + x | school) + (1 + x | school:class)")
    assert [(r.factors, r.intercept, r.slopes) for r in nested.randoms] == \
        [(r.factors, r.intercept, r.slopes) for r in written.randoms]


def test_three_nesting_levels() -> None:
    spec = parse_formula("y ~ 1 + (1 | district/school/class)")
    assert [r.cluster for r in spec.randoms] == ["district:school:class", "district:school",
                                                "district"]


def test_slope_at_class_and_intercept_at_school() -> None:
    spec = parse_formula("y ~ x + w + (1 + x | class) + (1 | school)")
    assert spec.random is not None and spec.random.cluster == "class"
    assert spec.random.slopes == (term(var("x")),)
    assert [r.cluster for r in spec.more_random] == ["school"]
    assert spec.more_random[0].slopes == () and spec.more_random[0].intercept
    assert spec.slopes == (term(var("x")),)


def test_crossed_factors_keep_formula_order() -> None:
    spec = parse_formula("score ~ x + (1 | rater) + (0 + x | item)")
    assert [r.cluster for r in spec.randoms] == ["rater", "item"]
    assert not spec.randoms[1].intercept and spec.randoms[1].slopes == (term(var("x")),)


def test_random_spans_point_at_each_group() -> None:
    formula = "y ~ x + (1 | a) + (1 + x | b)"
    spec = parse_formula(formula)
    assert [formula[slice(*r.span)] for r in spec.randoms if r.span] == ["(1 | a)", "(1 + x | b)"]
    assert spec.span_of("b", "random") == (formula.index("| b") + 2, formula.index("| b") + 3)


def test_a_slope_of_the_outer_grouping_column_is_refused(caret: Caret) -> None:
    formula = "y ~ x + (1 + school | school/class)"
    with pytest.raises(FormulaError, match="cluster variable 'school' cannot have a random "
                       "slope") as exc:
        parse_formula(formula)
    caret(str(exc.value), formula, "school")


def test_a_grouping_column_as_fixed_term_is_refused(caret: Caret) -> None:
    formula = "y ~ x + class + (1 | school/class)"
    with pytest.raises(FormulaError, match="cluster variable 'class' cannot be a fixed") as exc:
        parse_formula(formula)
    caret(str(exc.value), formula, "class")


def test_the_outcome_as_second_grouping_factor_is_refused() -> None:
    with pytest.raises(FormulaError, match="outcome 'y' is also the cluster variable"):
        parse_formula("y ~ x + (1 | g) + (1 | y)")


@pytest.mark.parametrize(("grouping", "bad"), [("g/(h)", "(h)"), ("g:h + 1", "h + 1"),
                                               ("g/", "")])
def test_a_grouping_that_is_not_names_is_refused(grouping: str, bad: str,
                                                 caret: Caret) -> None:
    formula = f"y ~ x + (1 | {grouping})"
    with pytest.raises(FormulaError, match="a grouping factor must be a column name") as exc:
        parse_formula(formula)
    if bad:
        caret(str(exc.value), formula, bad)
    else:  # an empty factor after '/': the caret is at the closing parenthesis
        caret(str(exc.value), formula, ")", len(formula) - 1)


def test_double_bar_with_several_groups_names_the_alternative(caret: Caret) -> None:
    formula = "y ~ x + (1 | school) + (1 + x || class)"
    with pytest.raises(FormulaError, match=r"\(1 \| g\) \+ \(0 \+ x \| g\)") as exc:
        parse_formula(formula)
    caret(str(exc.value), formula, "||")


def test_quoted_names_in_a_nesting() -> None:
    spec = parse_formula("y ~ x + (1 | `my school`/class)")
    assert spec.grouping_columns == ("my school", "class")
