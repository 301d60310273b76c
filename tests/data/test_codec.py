"""Category encode / decode, and the analysis view of categorical columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recipe_compiler.data.codec import as_categories, decode, encode


@pytest.mark.parametrize("column, labels", [
    (pd.Series(["b", None, "a", "c", "a"]), ("a", "b", "c")),
    (pd.Series([2.0, np.nan, 1.0, 3.0, 1.0]), ("1", "2", "3")),
    (pd.Series(pd.Categorical(["hi", None, "lo", "mid", "lo"], categories=["lo", "mid", "hi"],
                              ordered=True)), ("lo", "mid", "hi")),
    (pd.Series([True, None, False, True, False], dtype="boolean"), ("False", "True")),
])
def test_codes_follow_the_label_order_and_decode_back_in_the_columns_dtype(
        column: pd.Series, labels: tuple[str, ...]) -> None:
    codes, found = encode(column)
    assert found == labels
    assert np.isnan(codes[1]) and codes.dtype == float
    completed = decode(column, np.array([codes[3]]), coded=True)  # impute row 3's category
    assert completed.dtype == column.dtype
    assert completed.iloc[1] == column.iloc[3]
    pd.testing.assert_series_equal(completed.drop(index=1), column.drop(index=1))


def test_uncoded_values_are_written_as_they_are() -> None:
    column = pd.Series([1.5, np.nan, np.nan])
    assert decode(column, np.array([0.25, 7.0]), coded=False).tolist() == [1.5, 0.25, 7.0]
    flags = pd.Series([True, None, False], dtype="boolean")
    assert decode(flags, np.array([1.0]), coded=False).tolist() == [True, True, False]


def test_as_categories_converts_the_named_columns_but_not_booleans() -> None:
    frame = pd.DataFrame({"den": [1.0, 2.0, 4.0], "sex": [True, False, True],
                          "c": pd.Categorical(["x", "y", "x"]), "v": [0.5, 1.5, 2.5]})
    out = as_categories(frame, ["den", "sex", "c", "missing_column"])
    assert list(out["den"].cat.categories) == [1, 2, 4]
    assert out["sex"].dtype == bool and out["v"].dtype == float
    assert frame["den"].dtype == float  # not modified
    assert as_categories(frame, ["c"]) is frame  # nothing to convert
