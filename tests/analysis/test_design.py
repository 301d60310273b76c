"""The analysis design built through the term evaluator: names in backticks, several
categorical factors in one term, rows without a cluster, and I() terms that are not finite.

(The design tests that predate the term evaluator are in tests/model/test_parse.py.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import recipe_compiler as rc
from recipe_compiler.analysis.design import build_design
from recipe_compiler.errors import DataError


def test_names_in_backticks_reach_the_design_and_the_fit(brandsma: pd.DataFrame) -> None:
    data = brandsma.rename(columns={"lpo": "read score", "iqv": "iq verbal", "sch": "school id"})
    formula = ("`read score` ~ `iq verbal` + I(`iq verbal` ** 2) + cm(`iq verbal`) + C(den) "
               "+ (1 + `iq verbal` | `school id`)")
    d = build_design(formula, data)
    assert d.x_names[:4] == ("(Intercept)", "iq verbal", "I(`iq verbal` ** 2)",
                             "cm(`iq verbal`)")
    assert d.z_names == ("(Intercept)", "iq verbal") and d.cluster == "school id"
    plain = build_design("lpo ~ iqv + I(iqv ** 2) + cm(iqv) + C(den) + (1 + iqv | sch)",
                         brandsma)
    np.testing.assert_array_equal(d.X, plain.X)
    fit = rc.fit_lmm(formula, data)
    assert fit.loglik == pytest.approx(rc.fit_lmm(
        "lpo ~ iqv + I(iqv ** 2) + cm(iqv) + C(den) + (1 + iqv | sch)", brandsma).loglik,
        abs=1e-9)


def test_a_term_with_two_categorical_factors_is_coded_without_formulaic(
        brandsma: pd.DataFrame) -> None:
    d = build_design("lpo ~ C(den):C(sex) + (1 | sch)", brandsma)
    assert d.x_names == ("(Intercept)", "C(sex)[T.1]", "C(den)[T.2]:C(sex)[0]",
                         "C(den)[T.3]:C(sex)[0]", "C(den)[T.4]:C(sex)[0]",
                         "C(den)[T.2]:C(sex)[1]", "C(den)[T.3]:C(sex)[1]",
                         "C(den)[T.4]:C(sex)[1]")
    assert np.linalg.matrix_rank(d.X) == d.X.shape[1]
    rows = brandsma.loc[d.rows]
    np.testing.assert_array_equal(d.X[:, 7], ((rows["den"] == 4) & (rows["sex"] == 1)))


def test_rows_without_a_cluster_are_dropped_and_means_use_the_others(
        small: pd.DataFrame) -> None:
    data = small.assign(g=[1, 1, np.nan, 2, 2, 2], x=[1.0, 3.0, 5.0, 2.0, 4.0, 6.0])
    d = build_design("y ~ x + cm(x) + (1 | g)", data)
    assert list(d.rows) == ["b", "d", "e", "f"] and d.n_dropped == 2
    assert d.X[:, 2].tolist() == [2.0, 4.0, 4.0, 4.0]  # row c has no cluster: not in the mean
    assert d.group_labels.tolist() == [1.0, 2.0] and d.groups.tolist() == [0, 1, 1, 1]


def test_clusters_without_a_complete_row_are_not_in_the_design(small: pd.DataFrame) -> None:
    data = small.assign(y=[np.nan, np.nan, np.nan, 4.0, 5.0, 6.0])
    d = build_design("y ~ x + (1 | g)", data)
    assert d.n_groups == 1 and d.group_labels.tolist() == [2] and set(d.groups) == {0}


def test_an_I_term_that_is_not_finite_is_a_data_error(small: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"^the design column 'I\(np\.log\(x - 2\)\)' of the "
                                        r"formula is not finite \(NaN or infinite\) in 1 of 4 "
                                        r"complete rows"):
        build_design("y ~ I(np.log(x - 2)) + (1 | g)", small)


def test_a_text_column_used_as_a_number_is_a_data_error(small: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"^column 'x' \(in I\(x \* 2\)\) holds values that are "
                                        r"not numbers; .* or write C\(x\)"):
        build_design("y ~ I(x * 2) + (1 | g)", small.assign(x=list("uvwxyz")))
