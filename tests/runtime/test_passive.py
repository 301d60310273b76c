"""Derived variables are recomputed exactly from their parents."""

from __future__ import annotations

import numpy as np
import pytest

from recipe_compiler.data.grouping import Grouping
from recipe_compiler.errors import DataError, FormulaError
from recipe_compiler.plan import Derived
from recipe_compiler.runtime.passive import compute

G = Grouping(codes=np.array([0, 0, 1, 1, 1]), n=2, name="g", labels=(1, 2))
VALUES = {"x": np.array([1.0, 3.0, 2.0, 4.0, 6.0]), "s": np.array([0.0, 1.0, 1.0, 0.0, 1.0]),
          "cm(x)": np.array([2.0, 2.0, 4.0, 4.0, 4.0]), "den": np.array([0.0, 0.0, 2.0, 2.0, 2.0])}


def test_cluster_mean_is_disaggregated_to_every_row() -> None:
    out = compute(Derived("cm(x)", "cm", ("x",)), VALUES, G, {})
    np.testing.assert_array_equal(out, [2.0, 2.0, 4.0, 4.0, 4.0])


def test_centring_subtracts_the_cluster_mean() -> None:
    out = compute(Derived("cwc(x)", "cwc", ("x", "cm(x)")), VALUES, G, {})
    np.testing.assert_array_equal(out, [-1.0, 1.0, -2.0, 0.0, 2.0])


def test_product_multiplies_all_parents() -> None:
    out = compute(Derived("x:s:cm(x)", "product", ("x", "s", "cm(x)")), VALUES, G, {})
    np.testing.assert_array_equal(out, VALUES["x"] * VALUES["s"] * VALUES["cm(x)"])


def test_dummy_indicates_the_level_by_its_code() -> None:
    out = compute(Derived("C(den)[T.3]", "dummy", ("den",), "3"), VALUES, G,
                  {"den": ("1", "2", "3")})
    np.testing.assert_array_equal(out, [0, 0, 1, 1, 1])


def test_expression_is_evaluated_with_numpy() -> None:
    out = compute(Derived("I(x ** 2)", "expr", ("x",), "x ** 2"), VALUES, G, {})
    np.testing.assert_array_equal(out, VALUES["x"] ** 2)


def test_expression_of_a_parent_with_a_quoted_name() -> None:
    values = {"read dis": np.array([1.0, 2.0, 3.0, 4.0, 5.0])}
    d = Derived("I(`read dis` ** 2)", "expr", ("read dis",), "`read dis` ** 2")
    np.testing.assert_array_equal(compute(d, values, G, {}), values["read dis"] ** 2)


@pytest.mark.parametrize("detail", ["__import__('os').system('true')", "x.__class__",
                                    "np.save('f', x)", "x + s"])
def test_an_expression_outside_the_language_or_its_parents_is_refused(detail: str) -> None:
    with pytest.raises(FormulaError, match=r"in I\(x\)"):
        compute(Derived("I(x)", "expr", ("x",), detail), VALUES, G, {})


def test_an_expression_that_is_not_finite_is_a_data_error() -> None:
    with pytest.raises(DataError, match=r"^I\(1 / \(x - 1\)\) is not finite \(NaN or infinite\) "
                                        r"in 1 of 5 rows"):
        compute(Derived("I(1 / (x - 1))", "expr", ("x",), "1 / (x - 1)"), VALUES, G, {})
