"""``cm(x, g)`` / ``cwc(x, g)``: cluster means over a named grouping factor (issue 14)."""

from __future__ import annotations

import pytest

from recipe_compiler.errors import FormulaError
from recipe_compiler.model.parse import parse_formula
from recipe_compiler.model.spec import Factor, Term, cm, cwc, term

NESTED = "(1 | school/class)"


def factors(formula: str) -> list[Factor]:
    spec = parse_formula(formula)
    return [f for t in (*spec.terms, *spec.slopes) for f in t.factors]


def test_a_column_of_a_nested_factor_names_that_factor_and_the_innermost_is_canonical() -> None:
    spec = parse_formula(f"y ~ x + cm(x, school) + cwc(x, class) + {NESTED}")
    assert spec.cluster == "school:class"
    assert [t.name for t in spec.terms] == ["x", "cm(x, school)", "cwc(x)"]
    assert spec.terms[1] == term(cm("x", "school")) == term(Factor("cm", "x", group="school"))
    assert spec.terms[2] == term(cwc("x"))
    # cm(x), cm(x, class) and cm(x, school:class) are one term: written twice, kept once
    for inner in ("cm(x)", "cm(x, class)", "cm(x, school:class)", "cm(x, `school:class`)"):
        assert parse_formula(f"y ~ {inner} + {NESTED}").terms == (term(Factor("cm", "x")),)
    assert parse_formula(f"y ~ cm(x) + cm(x, class) + {NESTED}").terms == (
        term(Factor("cm", "x")),)


def test_with_one_grouping_factor_cm_x_g_is_cm_x() -> None:
    assert parse_formula("y ~ cm(x, g) + cwc(z, g) + (1 | g)").terms == \
        parse_formula("y ~ cm(x) + cwc(z) + (1 | g)").terms


def test_a_python_keyword_or_a_quoted_name_as_grouping_factor() -> None:
    """``class`` is a Python keyword (formulaic parses terms as Python)."""
    spec = parse_formula("y ~ cm(x, class) * z + (1 | class) + (1 | school)")
    assert [t.name for t in spec.terms] == ["cm(x, class)", "z", "cm(x, class):z"]
    spec = parse_formula("y ~ cm(`read dis`, `my school`) + (1 | `my school`) + (1 | room)")
    assert spec.terms[0].factors == (Factor("cm", "read dis", group="my school"),)


def test_group_in_random_slopes_and_with_a_categorical_column() -> None:
    spec = parse_formula("y ~ cm(C(s), school) + (1 + cwc(x, school) | school/class)")
    assert spec.terms == (term(Factor("cm", "s", group="school")),)
    assert spec.nested_categorical == ("s",)
    assert spec.random is not None
    assert spec.random.slopes == (term(Factor("cwc", "x", group="school")),)
    assert spec.slopes == spec.random.slopes  # both terms of school/class carry the slope


def test_interaction_of_group_means_and_names_that_parse_back() -> None:
    spec = parse_formula(f"y ~ cm(x, school):cwc(x) + cm(z, school:class) + {NESTED}")
    assert spec.terms == (term(Factor("cm", "z")),  # formulaic orders terms by degree
                          Term((Factor("cwc", "x"), Factor("cm", "x", group="school"))))
    for f in factors(f"y ~ cm(x, school) + cwc(x, school) + {NESTED} + (1 | a:b)"):
        assert factors(f"y ~ {f.name} + {NESTED} + (1 | a:b)") == [f]


def test_separate_terms_keep_the_written_factor_until_the_data_name_the_innermost() -> None:
    """``(1 | school) + (1 | class)``: the formula does not say which is innermost."""
    spec = parse_formula("y ~ cm(x) + cm(x, school) + cm(x, class):z + "
                         "(1 | school) + (1 + cwc(x, class) | class)")
    assert spec.cluster == "school"  # provisional: formula order
    assert [t.name for t in spec.terms] == ["cm(x)", "cm(x, school)", "cm(x, class):z"]
    inner = spec.with_innermost("class")
    assert inner.cluster == "class" and [r.cluster for r in inner.randoms] == ["class", "school"]
    assert [t.name for t in inner.terms] == ["cm(x)", "cm(x, school)", "cm(x):z"]
    assert [t.name for t in inner.slopes] == ["cwc(x)"]
    assert inner.with_innermost("class") is inner
    assert spec.with_innermost("school") is spec
    with pytest.raises(ValueError, match="'room' is not a grouping factor"):
        spec.with_innermost("room")
    nested = parse_formula(f"y ~ cm(x, school) + {NESTED}")
    with pytest.raises(ValueError, match="makes 'school:class' the innermost"):
        nested.with_innermost("school")


# ----------------------------------------------------------------------------- errors


def caret(exc: pytest.ExceptionInfo[FormulaError], formula: str) -> str:
    assert exc.value.span is not None
    return formula[slice(*exc.value.span)]


def test_a_group_that_is_not_a_grouping_factor_is_refused_with_the_caret_under_it() -> None:
    formula = f"y ~ x + cm(x,  klass) + {NESTED}"
    with pytest.raises(FormulaError, match=r"'klass' in cm\(x, klass\) is not a grouping factor "
                                           r"of the model; valid: school:class, school, "
                                           r"class\n") as exc:
        parse_formula(formula)
    assert caret(exc, formula) == "klass"
    assert str(exc.value).endswith("\n                   ^^^^^")
    formula = "y ~ x + (1 + cwc(x, sch) | g)"
    with pytest.raises(FormulaError, match=r"'sch' in cwc\(x, sch\) is not a grouping factor "
                                           r"of the model; valid: g") as exc:
        parse_formula(formula)
    assert caret(exc, formula) == "sch"


def test_a_group_in_a_model_without_random_part_is_refused() -> None:
    formula = "y ~ x + cwc(x, g)"
    with pytest.raises(FormulaError, match=r"cwc\(x, g\) averages over the clusters of 'g', but "
                                           r"the model has no random part; add one such as "
                                           r"\(1 \| g\)") as exc:
        parse_formula(formula)
    assert caret(exc, formula) == "g"


def test_a_column_of_several_factors_and_bad_arguments_are_refused() -> None:
    formula = "y ~ cm(x, a) + (1 | a:b) + (1 | a:c)"
    with pytest.raises(FormulaError, match=r"'a' in cm\(x, a\) is a column of several grouping "
                                           r"factors \(a:b, a:c\); name one of them") as exc:
        parse_formula(formula)
    assert caret(exc, formula) == "a"
    with pytest.raises(FormulaError, match=r"cm\(\) takes a column name and optionally a "
                                           r"grouping factor, cm\(x, g\), got 'x, g, h'"):
        parse_formula("y ~ cm(x, g, h) + (1 | g)")
    formula = "y ~ cm(x, 1) + (1 | g)"
    with pytest.raises(FormulaError, match="must be the name of a grouping factor") as exc:
        parse_formula(formula)
    assert caret(exc, formula) == "1"
    with pytest.raises(FormulaError, match=r"C\(\) takes a single column name, got 'x, g'"):
        parse_formula("y ~ C(x, g) + (1 | g)")
