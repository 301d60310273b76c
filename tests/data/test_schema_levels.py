"""Column levels 1, 2, 3 with several grouping factors (nested and crossed), and overrides."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from recipe_compiler.data.levels import Nesting, nesting
from recipe_compiler.data.schema import infer_schema
from recipe_compiler.errors import DataError, DataWarning

NESTED = Nesting(("school:class", "school"), "nested")


def three_level(n_schools: int = 40, classes: int = 3, pupils: int = 4,
                seed: int = 1) -> pd.DataFrame:
    """Pupils (``x``) in classes (``c``: one value per class, labels 1..classes repeating
    across schools) in schools (``s``: one value per school, labels 101, 102, ...);
    a few missing values in each column."""
    rng = np.random.default_rng(seed)
    school = np.repeat(np.arange(101, 101 + n_schools), classes * pupils)
    klass = np.tile(np.repeat(np.arange(1, classes + 1), pupils), n_schools)
    room = (school - 101) * classes + klass - 1
    data = pd.DataFrame({
        "school": school, "class": klass,
        "x": rng.normal(size=len(school)),
        "c": rng.normal(size=n_schools * classes)[room],
        "s": rng.normal(size=n_schools)[school - 101],
    })
    for column in ("x", "c", "s"):
        data.loc[rng.choice(len(data), size=10, replace=False), column] = np.nan
    return data


def levels_of(data: pd.DataFrame, groupings: Nesting, **declared: int) -> dict[str, int]:
    columns = [c for c in data.columns if c not in ("school", "class", "rater", "item")]
    schema = infer_schema(data, columns, groupings.innermost, levels=declared,
                          groupings=groupings)
    return {c.name: c.level for c in schema.columns}


def test_nested_levels_1_2_3_over_observed_values() -> None:
    data = three_level()
    assert nesting(data, ["school", "school:class"]) == NESTED
    assert levels_of(data, NESTED) == {"x": 1, "c": 2, "s": 3}
    schema = infer_schema(data, ["x", "c", "s"], None, groupings=NESTED)
    assert (schema.cluster, schema.n_clusters) == ("school:class", 120)
    assert [c.within for c in schema.columns] == [(), ("school:class",),
                                                   ("school:class", "school")]


def test_two_level_behaviour_is_kept_without_groupings() -> None:
    data = three_level()
    schema = infer_schema(data, ["x", "c", "s"], "school")
    assert [c.level for c in schema.columns] == [1, 1, 2]
    assert all(c.within == () for c in schema.columns)
    assert (schema.cluster, schema.n_clusters) == ("school", 40)


def test_a_chain_of_three_factors_gives_level_4() -> None:
    data = three_level().assign(district=lambda d: (d["school"] - 101) // 4)
    data["d"] = np.arange(10, dtype=float)[data["district"]]
    n = nesting(data, ["district", "school", "school:class"])
    assert n.groupings == ("school:class", "school", "district")
    schema = infer_schema(data, ["x", "c", "s", "d"], None, groupings=n)
    assert [c.level for c in schema.columns] == [1, 2, 3, 4]


def test_crossed_levels_are_1_or_2() -> None:
    rng = np.random.default_rng(2)
    rater, item = np.repeat(np.arange(30), 20), np.tile(np.arange(20), 30)
    data = pd.DataFrame({"rater": rater, "item": item, "x": rng.normal(size=600),
                         "r": rng.normal(size=30)[rater], "i": rng.normal(size=20)[item]})
    crossed = nesting(data, ["rater", "item"])
    assert crossed == Nesting(("rater", "item"), "crossed")
    assert levels_of(data, crossed) == {"x": 1, "r": 2, "i": 2}
    schema = infer_schema(data, ["x", "r", "i"], "rater", groupings=crossed)
    assert [c.within for c in schema.columns] == [(), ("rater",), ("item",)]
    both = infer_schema(data.assign(k=1.0), ["k"], None, groupings=crossed)["k"]
    assert (both.level, both.within) == (2, ("rater", "item"))
    with pytest.raises(DataError, match=r"levels: 'r' is declared level 3, but the crossed "
                                        r"design has levels 1 to 2 \(grouping factors: rater, "
                                        r"item\)"):
        levels_of(data, crossed, r=3)
    with pytest.raises(DataError, match=r"^column 'x' is declared level 2 \(levels=\{'x': 2\}\), "
                                        r"but it varies within 30 of 30 clusters of 'rater': .* "
                                        r"and 20 of 20 clusters of 'item': "):
        levels_of(data, crossed, x=2)


def test_declared_levels_override_inference_within_the_design() -> None:
    data = three_level()
    assert levels_of(data, NESTED, s=2, c=1) == {"x": 1, "c": 1, "s": 2}
    assert infer_schema(data, ["s"], None, levels={"s": 2}, groupings=NESTED)["s"].within == (
        "school:class",)
    assert levels_of(data, NESTED, s=1) == {"x": 1, "c": 2, "s": 1}
    with pytest.raises(DataError, match="levels: 's' is declared level 4, but the 3-level "
                                        "design has levels 1 to 3"):
        levels_of(data, NESTED, s=4)
    with pytest.raises(DataError, match=r"levels: 's' is declared level 3, but the 2-level "
                                        r"design has levels 1 to 2 \(grouping factors: school\)"):
        infer_schema(data, ["s"], "school", levels={"s": 3})


def test_a_declared_level_3_column_that_varies_within_a_school_names_the_schools() -> None:
    data = three_level()
    with pytest.raises(DataError) as exc:
        levels_of(data, NESTED, c=3)
    message = str(exc.value)
    assert message.startswith("column 'c' is declared level 3 (levels={'c': 3}), but it varies "
                              "within 40 of 40 clusters of 'school': 101 (3 values in ")
    assert message.endswith("and 30 more; a level-3 column takes one value per cluster: "
                            "correct those values, or drop the declaration to impute it as a "
                            "level-2 column")
    data.loc[data.index[(data["school"] == 117) & data["s"].notna()][0], "s"] += 1.0
    with pytest.raises(DataError, match=r"varies within 1 of 40 clusters of 'school': 117 "
                                        r"\(2 values in \d+ rows\); a level-3 column"):
        levels_of(data, NESTED, s=3)


def test_a_declared_level_2_column_that_varies_within_a_class_names_the_classes() -> None:
    with pytest.raises(DataError, match=r"column 'x' is declared level 2 .* varies within 120 of "
                                        r"120 clusters of 'school:class': 101:1 \("):
        levels_of(three_level(), NESTED, x=2)


def test_a_column_varying_within_one_school_stays_level_2_with_a_warning() -> None:
    data = three_level()
    rows = data.index[(data["school"] == 117) & (data["class"] == 1)]
    data.loc[rows, "s"] = 5.0  # class 1 of school 117 differs from its other classes
    with pytest.warns(DataWarning, match=r"column 's' varies within only 1 of 40 clusters of "
                                         r"'school': 117 \(2 values in \d+ rows\); it is imputed "
                                         r"and used as a level-2 column. If it is a level-3 "
                                         r"variable .*levels=\{'s': 3\}"):
        assert levels_of(data, NESTED)["s"] == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert levels_of(three_level(), NESTED)["s"] == 3


def test_groupings_must_agree_with_the_cluster_and_be_complete() -> None:
    data = three_level()
    with pytest.raises(ValueError, match="not the innermost grouping factor"):
        infer_schema(data, ["x"], "school", groupings=NESTED)
    data.loc[[5, 7], "class"] = np.nan
    with pytest.raises(DataError, match=r"cluster variable 'class' has 2 missing values; .*"
                                        r"index labels 5, 7$"):
        infer_schema(data, ["x"], None, groupings=NESTED)
