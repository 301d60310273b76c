"""The bundled brandsma data and the FIMD section 7.10 examples built on it."""

from __future__ import annotations

import pandas as pd
import pytest

import recipe_compiler as rc
from recipe_compiler.data.schema import infer_schema
from recipe_compiler.datasets import FIMD_7_10, fimd_example

COLUMNS = ["sch", "pup", "iqv", "iqp", "sex", "ses", "min", "rpg", "lpr", "lpo", "apr", "apo",
           "den", "ssi"]


def test_brandsma_has_4106_pupils_in_216_schools(brandsma: pd.DataFrame) -> None:
    assert brandsma.shape == (4106, 14)
    assert list(brandsma.columns) == COLUMNS
    assert brandsma["sch"].nunique() == 216


def test_brandsma_missing_counts_are_those_of_mice(brandsma: pd.DataFrame) -> None:
    missing = brandsma.isna().sum()
    assert missing[["sch", "pup", "min"]].tolist() == [0, 0, 0]
    assert missing[["lpo", "iqv", "sex", "ses", "den", "ssi"]].tolist() == [
        204, 17, 10, 137, 249, 622]


def test_brandsma_dtypes_are_int_when_complete_float_when_not(brandsma: pd.DataFrame) -> None:
    assert brandsma["sch"].dtype == "int64"
    assert brandsma["den"].dtype == "float64"
    assert sorted(brandsma["den"].dropna().unique()) == [1.0, 2.0, 3.0, 4.0]


def test_brandsma_levels_are_inferred_as_the_book_says(brandsma: pd.DataFrame) -> None:
    schema = infer_schema(brandsma, ["lpo", "iqv", "sex", "ses", "den", "ssi"], "sch")
    assert {c.name: c.level for c in schema.columns} == {
        "lpo": 1, "iqv": 1, "sex": 1, "ses": 1, "den": 2, "ssi": 2}
    assert schema["sex"].kind == "binary"


def test_each_call_returns_a_fresh_frame() -> None:
    a = rc.datasets.load_brandsma()
    a.loc[0, "lpo"] = -99.0
    assert rc.datasets.load_brandsma().loc[0, "lpo"] != -99.0


@pytest.mark.parametrize("example", FIMD_7_10, ids=lambda e: e.section)
def test_each_book_example_compiles_and_its_analysis_model_parses(
        example: rc.datasets.BookExample, brandsma: pd.DataFrame) -> None:
    plan = rc.compile(example.formula, example.data(brandsma), **example.options)
    assert plan.targets[0] == "lpo"
    assert rc.parse_formula(example.analysis).outcome == "lpo"


def test_an_unknown_book_section_lists_the_valid_ones() -> None:
    assert fimd_example("7.10.4").section == "7.10.4"
    with pytest.raises(rc.RecipeError, match=r"no FIMD example '7\.10\.9'; valid: 7\.10\.1, "):
        fimd_example("7.10.9")
