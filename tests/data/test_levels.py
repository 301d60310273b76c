"""Several grouping factors: compound groupings, complete grouping columns, nested or crossed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recipe_compiler.data.grouping import Grouping
from recipe_compiler.data.levels import (
    Nesting,
    check_grouping_complete,
    nested_in,
    nesting,
    nesting_of,
)
from recipe_compiler.errors import DataError


def schools(n_schools: int = 6, classes: int = 3, pupils: int = 4, seed: int = 0) -> pd.DataFrame:
    """Pupils in classes in schools, rows shuffled; class labels repeat across schools
    (1, 2, 3 in every school), ``room`` is unique per class, ``district`` groups schools
    in pairs, ``rater`` is crossed with school."""
    school = np.repeat(np.arange(n_schools), classes * pupils)
    klass = np.tile(np.repeat(np.arange(1, classes + 1), pupils), n_schools)
    frame = pd.DataFrame({"school": school * 10, "class": klass,
                          "room": school * 100 + klass, "district": school // 2,
                          "rater": np.arange(len(school)) % 5})
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def test_a_compound_factor_has_the_sorted_distinct_combinations_as_clusters() -> None:
    data = schools()
    g = Grouping.from_column(data, "school:class")
    assert g.name == "school:class" and g.n == 18
    expected = sorted({(s, c) for s, c in zip(data["school"], data["class"], strict=True)})
    assert g.labels == tuple(f"{s}:{c}" for s, c in expected)
    # the same clusters as pandas' groupby over both columns (sorted keys)
    codes = data.groupby(["school", "class"], sort=True).ngroup().to_numpy()
    assert np.array_equal(g.codes, codes)
    # a column whose name holds ':' is that column, not a compound
    named = data.assign(**{"school:class": data["rater"]})
    assert Grouping.from_column(named, "school:class").n == 5


def test_a_compound_factor_with_an_absent_part_names_the_part() -> None:
    with pytest.raises(DataError, match=r"cluster variable 'klass' \(of the grouping factor "
                                        r"'school:klass'\) is not in the data; did you mean "
                                        r"'class'"):
        Grouping.from_column(schools(), "school:klass")


def test_missing_values_in_a_grouping_column_name_the_column_count_and_rows() -> None:
    data = schools().set_index(pd.Index([f"r{i}" for i in range(72)]))
    data.loc[["r3", "r9", "r10", "r20", "r30", "r40", "r50"], "class"] = np.nan
    message = (r"^cluster variable 'class' has 7 missing values; it must be complete \(drop "
               r"those rows or give them a cluster\): rows with index labels 'r3', 'r9', "
               r"'r10', 'r20', 'r30', \.\.\.$")
    for name in ("class", "school:class"):
        with pytest.raises(DataError, match=message):
            Grouping.from_column(data, name)
    with pytest.raises(DataError, match=message):
        check_grouping_complete(data, ["school", "school:class"])
    with pytest.raises(DataError, match=message):
        nesting(data, ["school:class", "school"])
    assert len(data) == 72  # nothing dropped
    check_grouping_complete(schools(), ["school", "school:class", "rater"])


def test_nested_in_compares_the_pairs_of_codes() -> None:
    data = schools()
    room, school = Grouping.from_column(data, "room"), Grouping.from_column(data, "school")
    klass = Grouping.from_column(data, "class")
    assert nested_in(room, school) and not nested_in(school, room)
    assert not nested_in(klass, school)  # class 1 is in every school
    assert nested_in(Grouping.from_column(data, "school:class"), school)


def test_two_nested_factors_are_ordered_innermost_first() -> None:
    data = schools()
    expected = Nesting(("school:class", "school"), "nested")
    assert nesting(data, ["school:class", "school"]) == expected
    assert nesting(data, ["school", "school:class"]) == expected
    assert nesting(data, ["school", "room"]) == Nesting(("room", "school"), "nested")
    assert nesting(data, ["school"]) == Nesting(("school",), "nested")
    assert nesting(data, ["school", "school"]).groupings == ("school",)


def test_a_chain_of_three_nested_factors() -> None:
    data = schools()
    n = nesting(data, ["district", "room", "school"])
    assert n == Nesting(("room", "school", "district"), "nested")
    assert (n.innermost, n.outermost) == ("room", "district")


def test_crossed_factors_keep_the_formula_order() -> None:
    data = schools()
    assert nesting(data, ["school", "rater"]) == Nesting(("school", "rater"), "crossed")
    assert nesting(data, ["rater", "school"]) == Nesting(("rater", "school"), "crossed")
    # class labels repeat across schools: as separate factors, class and school are crossed
    assert nesting(data, ["class", "school"]).kind == "crossed"
    # a nested pair with a third crossed factor is not a chain
    assert nesting(data, ["room", "school", "rater"]) == Nesting(
        ("room", "school", "rater"), "crossed")


def test_partially_crossed_factors_are_crossed() -> None:
    """One class shared by two schools makes the design (partially) crossed."""
    data = pd.DataFrame({"s": [1, 1, 1, 2, 2, 2], "c": [1, 1, 2, 2, 3, 3]})
    assert nesting(data, ["c", "s"]).kind == "crossed"
    assert nesting(data.assign(c=[1, 1, 2, 4, 3, 3]), ["c", "s"]).kind == "nested"


def test_equal_partitions_are_nested_both_ways_and_keep_the_given_order() -> None:
    data = pd.DataFrame({"a": [1, 1, 2, 2], "b": [5, 5, 7, 7]})
    assert nesting(data, ["b", "a"]) == Nesting(("b", "a"), "nested")
    assert nesting_of([Grouping.from_column(data, "a"), Grouping.from_column(data, "b")]) == \
        Nesting(("a", "b"), "nested")
