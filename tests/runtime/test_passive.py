"""Derived variables are recomputed exactly from their parents."""

from __future__ import annotations

import numpy as np

from recipe_compiler.plan import Derived
from recipe_compiler.runtime.passive import compute

G = np.array([0, 0, 1, 1, 1])
VALUES = {"x": np.array([1.0, 3.0, 2.0, 4.0, 6.0]), "s": np.array([0.0, 1.0, 1.0, 0.0, 1.0]),
          "cm(x)": np.array([2.0, 2.0, 4.0, 4.0, 4.0]), "den": np.array([0.0, 0.0, 2.0, 2.0, 2.0])}


def test_cluster_mean_is_disaggregated_to_every_row() -> None:
    out = compute(Derived("cm(x)", "cm", ("x",)), VALUES, G, 2, {})
    np.testing.assert_array_equal(out, [2.0, 2.0, 4.0, 4.0, 4.0])


def test_centring_subtracts_the_cluster_mean() -> None:
    out = compute(Derived("cwc(x)", "cwc", ("x", "cm(x)")), VALUES, G, 2, {})
    np.testing.assert_array_equal(out, [-1.0, 1.0, -2.0, 0.0, 2.0])


def test_product_multiplies_all_parents() -> None:
    out = compute(Derived("x:s:cm(x)", "product", ("x", "s", "cm(x)")), VALUES, G, 2, {})
    np.testing.assert_array_equal(out, VALUES["x"] * VALUES["s"] * VALUES["cm(x)"])


def test_dummy_indicates_the_level_by_its_code() -> None:
    out = compute(Derived("C(den)[T.3]", "dummy", ("den",), "3"), VALUES, G, 2,
                  {"den": ("1", "2", "3")})
    np.testing.assert_array_equal(out, [0, 0, 1, 1, 1])


def test_expression_is_evaluated_with_numpy() -> None:
    out = compute(Derived("I(x ** 2)", "expr", ("x",), "x ** 2"), VALUES, G, 2, {})
    np.testing.assert_array_equal(out, VALUES["x"] ** 2)
