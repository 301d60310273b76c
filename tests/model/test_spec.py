"""The value objects of a parsed model: factors, terms, the model spec and its spans."""

from __future__ import annotations

import pytest

from recipe_compiler.model.parse import parse_formula
from recipe_compiler.model.spec import Factor, ModelSpec, Term, cm, cwc, find_spans, term, var


@pytest.mark.parametrize("factor, name", [
    (var("iqv"), "iqv"), (cm("iqv"), "cm(iqv)"), (cwc("iqv"), "cwc(iqv)"),
    (Factor("cat", "den"), "C(den)"), (Factor("dummy", "den", level="2"), "C(den)[T.2]"),
    (Factor("expr", "iqv ** 2", ("iqv",)), "I(iqv ** 2)"),
])
def test_factor_names_are_canonical(factor: Factor, name: str) -> None:
    assert factor.name == name == str(factor)


def test_factor_columns_default_to_its_column() -> None:
    assert cm("x").columns == ("x",)
    assert Factor("expr", "a * b", ("a", "b")).columns == ("a", "b")


def test_terms_are_equal_whatever_the_factor_order() -> None:
    a, b = term(var("x"), cm("z")), term(cm("z"), var("x"))
    assert a == b and hash(a) == hash(b)
    assert a.name == "x:cm(z)" and b.name == "cm(z):x"  # display keeps the written order


def test_term_drops_repeated_factors() -> None:
    t = term(var("x"), var("x"), var("z"))
    assert t.degree == 2 and t.name == "x:z"


def test_term_columns_are_unique_in_order() -> None:
    assert term(cwc("x"), cm("x"), var("z")).columns == ("x", "z")


def test_term_is_not_equal_to_other_types() -> None:
    assert term(var("x")) != "x"


def test_term_iterates_over_its_factors() -> None:
    assert list(term(var("x"), cm("z"))) == [var("x"), cm("z")]


def test_spec_without_random_part_has_no_cluster() -> None:
    spec = parse_formula("y ~ x")
    assert spec.cluster is None and spec.random is None


def test_span_of_finds_whole_words_only() -> None:
    spec = parse_formula("y ~ xx + x + (1 | g)")
    assert spec.span_of("x") == (9, 10)
    assert spec.span_of("xx") == (4, 6)
    assert spec.span_of("nope") is None


def test_span_of_in_the_random_part_skips_the_fixed_part() -> None:
    formula = "y ~ x + (1 + x | g)"
    spec = parse_formula(formula)
    assert spec.span_of("x") == (4, 5)
    assert spec.span_of("x", "random") == (13, 14)
    assert spec.span_of("g", "random") == (17, 18)


def test_span_of_in_the_random_part_of_a_single_level_model_is_none() -> None:
    assert parse_formula("y ~ x").span_of("x", "random") is None


def test_span_of_finds_factor_names_not_precomputed() -> None:
    formula = "y ~ x + cm(x) + (1 | g)"
    assert parse_formula(formula).span_of("cm(x)") == (8, 13)


def test_find_spans_reports_first_whole_word_occurrence() -> None:
    assert find_spans("y ~ x.1 + x + x", ["x", "x.1", "q"]) == (("x", 10, 11), ("x.1", 4, 7))


def test_replace_returns_a_changed_copy() -> None:
    spec = parse_formula("y ~ x + (1 | g)")
    other = spec.replace(outcome="z")
    assert isinstance(other, ModelSpec)
    assert other.outcome == "z" and spec.outcome == "y"


def test_equal_formulas_give_equal_hashable_specs() -> None:
    a, b = parse_formula("y ~ x*z + (1 | g)"), parse_formula("y ~ x*z + (1 | g)")
    assert a == b and hash(a) == hash(b)
    assert Term((var("x"), var("z"))) in set(a.terms)
