"""What the data say about each column: level, kind, categories, and the bad-input checks."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from recipe_compiler.data.grouping import Grouping
from recipe_compiler.data.schema import (
    MAX_CATEGORIES,
    categorical,
    check_frame,
    distinct_per_cluster,
    infer_schema,
)
from recipe_compiler.errors import DataError, DataWarning

G = [1, 1, 2, 2, 3, 3]


def schema_of(**columns: list[object]) -> dict[str, tuple[int, str]]:
    """Level and kind of each column of a frame clustered by G."""
    data = pd.DataFrame({"g": G, **columns})
    s = infer_schema(data, list(columns), "g")
    return {c.name: (c.level, c.kind) for c in s.columns}


# ----------------------------------------------------------------------------- level


def test_constant_within_every_cluster_is_level_2() -> None:
    assert schema_of(w=[5.0, 5.0, 6.0, 6.0, 7.0, 7.0])["w"][0] == 2


def test_varying_within_one_cluster_is_level_1() -> None:
    assert schema_of(x=[5.0, 5.0, 6.0, 6.0, 7.0, 7.5])["x"][0] == 1


def test_level_is_judged_on_observed_values_only() -> None:
    assert schema_of(w=[5.0, np.nan, np.nan, 6.0, 7.0, 7.0])["w"][0] == 2
    # a cluster with every value missing says nothing
    assert schema_of(w=[np.nan, np.nan, 6.0, 6.0, 7.0, 7.0])["w"][0] == 2


def test_level_2_string_column_is_level_2() -> None:
    data = pd.DataFrame({"g": G, "s": ["a", "a", "b", "b", "a", "a"]})
    assert infer_schema(data, ["s"], "g", categorical=["s"])["s"].level == 2


def test_without_cluster_every_column_is_level_1() -> None:
    data = pd.DataFrame({"w": [5.0, 5.0, 6.0, 6.0]})
    s = infer_schema(data, ["w"], None)
    assert s["w"].level == 1 and s.n_clusters == 1 and s.cluster is None


def test_levels_of_the_synthetic_frame_are_as_built(
        make_frame: Callable[..., pd.DataFrame]) -> None:
    data = make_frame(level1=("y", "x"), binary=("b",), level2=("z",), level2_binary=("w",),
                      missing=0.3, seed=3)
    s = infer_schema(data, ["y", "x", "b", "z", "w"], "g")
    assert {c.name: c.level for c in s.columns} == {"y": 1, "x": 1, "b": 1, "z": 2, "w": 2}
    assert s.n_rows == len(data) and s.n_clusters == data["g"].nunique()


# ----------------------------------------------------------------------------- kind, categories


def test_two_distinct_numbers_are_binary_more_are_continuous() -> None:
    kinds = schema_of(b=[0.0, 1.0, 0.0, np.nan, 1.0, 0.0], x=[0.0, 1.0, 2.0, 0.0, 1.0, 0.0])
    assert kinds["b"] == (1, "binary")
    assert kinds["x"] == (1, "continuous")


def test_declared_categorical_has_sorted_string_categories() -> None:
    data = pd.DataFrame({"g": G, "c": [3.0, 1.0, 2.0, np.nan, 3.0, 1.0]})
    info = infer_schema(data, ["c"], "g", categorical=["c"])["c"]
    assert info.kind == "categorical"
    assert info.categories == ("1", "2", "3")  # whole-number floats become integer labels
    assert (info.n_missing, info.n_observed) == (1, 5)


def test_declared_categorical_with_two_levels_is_binary() -> None:
    data = pd.DataFrame({"g": G, "c": ["m", "f", "f", "m", "m", "f"]})
    info = infer_schema(data, ["c"], "g", categorical=["c"])["c"]
    assert info.kind == "binary" and info.categories == ("f", "m")


@pytest.mark.parametrize("values", [
    pd.Series(["lo", "hi", "mid", "lo", "hi", "mid"], dtype="category"),
    pd.Series([True, False, True, True, False, False]),
])
def test_category_and_bool_dtypes_are_categorical_without_declaring(values: pd.Series) -> None:
    data = pd.DataFrame({"g": G, "c": values})
    info = infer_schema(data, ["c"], "g")["c"]
    assert info.categories
    assert info.kind == ("binary" if len(info.categories) == 2 else "categorical")


def test_numeric_strings_are_categorical() -> None:
    data = pd.DataFrame({"g": G, "c": ["1", "2", "3", "1", "2", "3"]})
    assert infer_schema(data, ["c"], "g")["c"].categories == ("1", "2", "3")


def test_categorical_converts_whole_number_floats_to_integers() -> None:
    out = categorical(pd.Series([1.0, 2.0, np.nan]))
    assert list(out.cat.categories) == [1, 2]
    assert out.isna().tolist() == [False, False, True]


def test_categorical_keeps_a_categorical_series_as_is() -> None:
    x = pd.Series(["b", "a"], dtype=pd.CategoricalDtype(["b", "a"]))
    assert categorical(x) is x


def test_schema_lookup_of_an_unknown_column_suggests_close_names() -> None:
    data = pd.DataFrame({"g": G, "iqv": [1.0, 2, 3, 4, 5, 6]})
    s = infer_schema(data, ["iqv"], "g")
    assert "iqv" in s and "iqx" not in s
    assert s.names == ("iqv",)
    with pytest.raises(DataError, match="'iqx' is not part of the model; did you mean 'iqv'"):
        s["iqx"]


# ----------------------------------------------------------------------------- bad input


def test_non_frame_is_refused() -> None:
    with pytest.raises(DataError, match="data must be a pandas DataFrame, got dict"):
        check_frame({"x": [1]})


def test_empty_frame_is_refused() -> None:
    with pytest.raises(DataError, match="the data frame has no rows"):
        check_frame(pd.DataFrame({"x": []}))


def test_duplicate_column_names_are_named() -> None:
    data = pd.DataFrame([[1, 2, 3]], columns=["a", "b", "a"])
    with pytest.raises(DataError, match="duplicate column names: 'a'; rename them"):
        check_frame(data)


def test_missing_cluster_column_suggests_close_names() -> None:
    with pytest.raises(DataError, match="cluster variable 'gg' is not in the data; "
                                        "did you mean 'g'"):
        Grouping.from_column(pd.DataFrame({"g": G}), "gg")


def test_cluster_with_missing_values_is_refused() -> None:
    with pytest.raises(DataError, match="cluster variable 'g' has 2 missing values; it must "
                                        "be complete"):
        Grouping.from_column(pd.DataFrame({"g": [1, np.nan, 2, np.nan]}), "g")


def test_a_single_cluster_is_refused() -> None:
    with pytest.raises(DataError, match="cluster variable 'g' has a single cluster; a two-level "
                                        "model needs at least 2 clusters"):
        Grouping.from_column(pd.DataFrame({"g": [7, 7, 7]}), "g")


def test_cluster_codes_are_sorted_labels() -> None:
    grouping = Grouping.from_column(pd.DataFrame({"g": ["b", "a", "b", "c"]}), "g")
    codes, n = grouping.codes, grouping.n
    assert codes.tolist() == [1, 0, 1, 2] and n == 3


def test_all_missing_column_is_named() -> None:
    data = pd.DataFrame({"g": G, "x": [np.nan] * 6})
    with pytest.raises(DataError, match="column 'x' is entirely missing"):
        infer_schema(data, ["x"], "g")


def test_infinite_values_are_refused() -> None:
    data = pd.DataFrame({"g": G, "x": [1.0, np.inf, 3, 4, 5, 6]})
    with pytest.raises(DataError, match="column 'x' holds infinite values; replace them by NaN"):
        infer_schema(data, ["x"], "g")


def test_strings_in_a_numeric_column_are_named_with_an_example() -> None:
    data = pd.DataFrame({"g": G, "x": [1.0, 2.0, "n/a", 4.0, 5.0, 6.0]})
    with pytest.raises(DataError, match="column 'x' holds non-numeric values such as 'n/a'; "
                                        "convert it to numbers, or write C\\(x\\)"):
        infer_schema(data, ["x"], "g")


def test_more_than_50_undeclared_categories_are_refused() -> None:
    n = MAX_CATEGORIES + 2
    data = pd.DataFrame({"g": np.arange(n) % 2,
                         "c": pd.Series([f"k{i}" for i in range(n)], dtype="category")})
    with pytest.raises(DataError, match=f"column 'c' has {n} categories \\(more than 50\\); "
                                        "write C\\(c\\) to declare it"):
        infer_schema(data, ["c"], "g")
    assert len(infer_schema(data, ["c"], "g", categorical=["c"])["c"].categories) == n


def test_a_column_not_in_the_data_is_named() -> None:
    with pytest.raises(DataError, match="column 'q' is not in the data"):
        infer_schema(pd.DataFrame({"g": G}), ["q"], "g")


# ----------------------------------------------------------------------------- declared levels,
# nearly level-2 columns, ordered categories


def clustered(n_clusters: int = 40, size: int = 5, broken: tuple[int, ...] = ()) -> pd.DataFrame:
    """``s`` constant within each of ``n_clusters`` clusters (labels 101, 102, ...), except
    one extra value in each cluster of ``broken``; ``x`` varies within every cluster."""
    g = np.repeat(np.arange(101, 101 + n_clusters), size)
    s = (g % 7).astype(float)
    for c in broken:
        s[np.flatnonzero(g == c)[0]] += 0.5
    x = np.arange(len(g), dtype=float)
    return pd.DataFrame({"g": g, "s": s, "x": x})


def test_a_declared_level_2_column_that_varies_names_the_clusters_and_counts() -> None:
    data = clustered(broken=(104, 117))
    with pytest.raises(DataError) as exc:
        infer_schema(data, ["s"], "g", levels={"s": 2})
    assert str(exc.value).startswith(
        "column 's' is declared level 2 (levels={'s': 2}), but it varies within 2 of 40 "
        "clusters of 'g': 104 (2 values in 5 rows), 117 (2 values in 5 rows); a level-2 column "
        "takes one value per cluster")


def test_declared_levels_override_inference() -> None:
    data = clustered()
    assert infer_schema(data, ["s", "x"], "g", levels={"s": 1})["s"].level == 1
    assert infer_schema(data, ["s"], "g", levels={"s": 2})["s"].level == 2


def test_a_level_for_a_column_outside_the_model_or_without_clusters_is_refused() -> None:
    data = clustered()
    with pytest.raises(DataError, match="levels: 'ss' is not a measured column of the model; "
                                        "did you mean 's'"):
        infer_schema(data, ["s"], "g", levels={"ss": 2})
    with pytest.raises(DataError, match="declared level 2, but the model has no clusters"):
        infer_schema(data, ["s"], None, levels={"s": 2})


def test_a_nearly_level_2_column_stays_level_1_with_a_warning_naming_the_clusters() -> None:
    # 1 of 40 clusters with >= 2 rows is within 5%: a warning; 3 of 40 is not
    with pytest.warns(DataWarning, match=r"column 's' varies within only 1 of 40 clusters of "
                                         r"'g': 117 \(2 values in 5 rows\); it is imputed and "
                                         r"used as a level-1 column.*levels=\{'s': 2\}"):
        assert infer_schema(clustered(broken=(117,)), ["s"], "g")["s"].level == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert infer_schema(clustered(broken=(103, 110, 117)), ["s"], "g")["s"].level == 1


def test_distinct_values_per_cluster_are_counted_over_observed_values() -> None:
    data = pd.DataFrame({"g": [1, 1, 1, 2, 2, 3], "v": ["a", "b", None, "c", "c", None]})
    grouping = Grouping.from_column(data, "g")
    counts = distinct_per_cluster(data["v"], data["v"].notna().to_numpy(), grouping)
    assert counts.tolist() == [2, 1, 0]


def test_an_ordered_categorical_is_ordered_in_its_own_level_order() -> None:
    levels = ["low", "mid", "high"]
    data = pd.DataFrame({"g": G, "o": pd.Categorical(["mid", "low", "high", "mid", None, "low"],
                                                     categories=levels, ordered=True),
                         "u": pd.Categorical(["b", "a", "c", "b", "a", "c"])})
    s = infer_schema(data, ["o", "u"], "g")
    assert s["o"].ordered and s["o"].categories == ("low", "mid", "high")
    assert not s["u"].ordered and s["u"].kind == "categorical"
