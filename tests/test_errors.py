"""``render_span``: the formula line that holds an error, with carets under the span."""

from __future__ import annotations

import pytest

import recipe_compiler as rc
from recipe_compiler.errors import FormulaError, render_span


def marked(rendered: str) -> tuple[str, str]:
    """The shown formula line and the text above the carets of the caret line."""
    shown, carets = rendered.split("\n")
    start = carets.index("^")
    return shown, shown[start:start + carets.count("^")]


def test_a_one_line_formula_is_shown_with_the_carets_under_the_span() -> None:
    assert render_span("y ~ a + b", (4, 5)) == "    y ~ a + b\n        ^"
    assert render_span("y ~ a + b", None) == "    y ~ a + b"
    # the end of the formula (a missing operand) gets one caret just after it
    assert render_span("y ~ a +", (7, 7)) == "    y ~ a +\n           ^"


@pytest.mark.parametrize(("formula", "span", "text", "line"), [
    ("y ~ a +\n  b + (1 | g)", (10, 11), "b", 2),
    ("y ~ a +\n  b\n  + (1 | g)", (16, 17), "(", 3),
    ("y ~ a\r\n  + (1 | g)", (11, 16), "(1 | ", 2),
    ("y ~ a +\n  b", (0, 1), "y", 1),
])
def test_a_multi_line_formula_shows_the_line_of_the_span(formula: str, span: tuple[int, int],
                                                         text: str, line: int) -> None:
    assert formula[span[0]:span[1]] == text  # the spans index the whole formula
    rendered = render_span(formula, span)
    shown, under = marked(rendered)
    assert shown.startswith(f"    line {line}: ")
    assert under == text
    assert "\n" not in shown and "\r" not in shown


def test_a_span_over_several_lines_is_marked_to_the_end_of_its_first_line() -> None:
    formula = "y ~ I(a +\n  b) + (1 | g)"
    shown, under = marked(render_span(formula, (4, 13)))
    assert shown == "    line 1: y ~ I(a +" and under == "I(a +"


def test_tabs_before_the_span_keep_the_carets_under_it() -> None:
    rendered = render_span("y ~ a +\n\t\tb$ + (1 | g)", (11, 12))
    shown, carets = rendered.split("\n")
    assert carets.expandtabs(8).index("^") == shown.expandtabs(8).index("$")


def test_without_a_span_every_line_is_shown() -> None:
    assert render_span("y ~ a +\n  (1 | g)", None) == "    y ~ a +\n      (1 | g)"


def test_a_formula_error_on_the_second_line_points_at_it() -> None:
    with pytest.raises(FormulaError, match="unknown function 'foo'") as exc:
        rc.parse_formula("y ~ x +\n  foo(x) + (1 | g)")
    shown, under = marked("\n".join(str(exc.value).split("\n")[-2:]))
    assert shown == "    line 2:   foo(x) + (1 | g)" and under == "foo(x)"
