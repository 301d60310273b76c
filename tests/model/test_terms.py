"""The term evaluator: factor columns, indicators, design matrices coded as formulaic codes them.

The package's design matrices used to come from formulaic for terms with several
categorical factors; :func:`term_matrix` now codes every term itself. The reference
here is formulaic's ``model_matrix`` on the same factor columns (formulaic is imported
by this test only as that reference), over hand-picked and random models.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from formulaic import model_matrix
from hypothesis import given, settings
from hypothesis import strategies as st

import recipe_compiler
from recipe_compiler.data.grouping import Grouping
from recipe_compiler.data.schema import categorical
from recipe_compiler.model.parse import parse_formula
from recipe_compiler.model.spec import Factor, Term
from recipe_compiler.model.terms import Coded, factor_column, indicators, term_matrix

RNG = np.random.default_rng(7)
N = 40
A = RNG.integers(0, 3, N)
B = RNG.integers(0, 2, N)
D = RNG.integers(0, 4, N)
XV = RNG.normal(size=N)
ZV = RNG.normal(size=N)
VALUES = {"C(a)": Coded(A, ("1", "2", "3")), "C(b)": Coded(B, ("1", "2")),
          "C(d)": Coded(D, ("u", "v", "w", "x")), "x": XV, "z": ZV}


def formulaic_matrix(terms: tuple[Term, ...], intercept: bool) -> tuple[np.ndarray, list[str]]:
    """formulaic's model matrix of the same factor columns (what the package used to call)."""
    frame = pd.DataFrame({
        name: (pd.Categorical.from_codes(v.codes, list(v.levels)) if isinstance(v, Coded) else v)
        for name, v in VALUES.items()})
    parts = ["1" if intercept else "0"]
    parts += [":".join(f"`{f.name}`" for f in t.factors) for t in terms]
    mm = model_matrix(" + ".join(parts), frame, output="pandas")
    names = ["(Intercept)" if c == "Intercept" else c.replace("`", "") for c in mm.columns]
    return np.asarray(mm, dtype=float), names


def check_like_formulaic(rhs: str) -> tuple[str, ...]:
    spec = parse_formula(f"y ~ {rhs}")
    X, names = term_matrix(spec.terms, spec.intercept, VALUES, N)
    ref, ref_names = formulaic_matrix(spec.terms, spec.intercept)
    assert list(names) == ref_names
    np.testing.assert_array_equal(X, ref)
    return names


@pytest.mark.parametrize(("rhs", "names"), [
    ("C(a):C(b)", ("(Intercept)", "C(b)[T.2]", "C(a)[T.2]:C(b)[1]", "C(a)[T.3]:C(b)[1]",
                   "C(a)[T.2]:C(b)[2]", "C(a)[T.3]:C(b)[2]")),
    ("C(a)*C(b)", ("(Intercept)", "C(a)[T.2]", "C(a)[T.3]", "C(b)[T.2]", "C(a)[T.2]:C(b)[T.2]",
                   "C(a)[T.3]:C(b)[T.2]")),
    ("0 + C(a) + C(b)", ("C(a)[1]", "C(a)[2]", "C(a)[3]", "C(b)[T.2]")),
    ("0 + C(a):x + C(b)", ("C(b)[1]", "C(b)[2]", "C(a)[1]:x", "C(a)[2]:x", "C(a)[3]:x")),
    ("x:z + C(a):x", ("(Intercept)", "x:z", "C(a)[1]:x", "C(a)[2]:x", "C(a)[3]:x")),
    ("x + C(a):x", ("(Intercept)", "x", "C(a)[T.2]:x", "C(a)[T.3]:x")),
    ("C(b) + C(a):C(b)", ("(Intercept)", "C(b)[T.2]", "C(a)[T.2]:C(b)[1]", "C(a)[T.3]:C(b)[1]",
                          "C(a)[T.2]:C(b)[2]", "C(a)[T.3]:C(b)[2]")),
    ("0 + C(a):C(b)", ("C(a)[1]:C(b)[1]", "C(a)[2]:C(b)[1]", "C(a)[3]:C(b)[1]",
                       "C(a)[1]:C(b)[2]", "C(a)[2]:C(b)[2]", "C(a)[3]:C(b)[2]")),
])
def test_categorical_coding_is_formulaics(rhs: str, names: tuple[str, ...]) -> None:
    assert check_like_formulaic(rhs) == names


FACTORS = ["C(a)", "C(b)", "C(d)", "x", "z"]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(st.sampled_from(FACTORS), min_size=1, max_size=3, unique=True),
                min_size=1, max_size=5),
       st.booleans())
def test_random_models_are_coded_as_formulaic_codes_them(terms: list[list[str]],
                                                         intercept: bool) -> None:
    rhs = ("1 + " if intercept else "0 + ") + " + ".join(":".join(t) for t in terms)
    check_like_formulaic(rhs)


def test_brandsma_analysis_model_columns(brandsma: pd.DataFrame) -> None:
    spec = parse_formula("lpo ~ iqv*sex + cm(iqv)*C(den) + sex*C(den) + (1 | sch)")
    grouping = Grouping.from_column(brandsma, "sch")
    cols = {c: brandsma[c].to_numpy(dtype=float) for c in ("iqv", "sex")}
    den = pd.Categorical(categorical(brandsma["den"]))
    values: dict[str, np.ndarray | Coded] = {
        f.name: Coded(np.asarray(den.codes), tuple(map(str, den.categories))) if f.kind == "cat"
        else factor_column(f, cols, grouping) for t in spec.terms for f in t.factors}
    X, names = term_matrix(spec.terms, True, values, len(brandsma))
    assert names[:6] == ("(Intercept)", "iqv", "sex", "cm(iqv)", "C(den)[T.2]", "C(den)[T.3]")
    assert "cm(iqv):C(den)[T.4]" in names and "sex:C(den)[T.2]" in names
    j = names.index("iqv:sex")
    np.testing.assert_array_equal(X[:, j], cols["iqv"] * cols["sex"])


def test_a_repeated_term_adds_no_column() -> None:
    t = Term((Factor("var", "x"),))
    X, names = term_matrix((t, t), True, VALUES, N)
    assert names == ("(Intercept)", "x") and X.shape == (N, 2)


# ----------------------------------------------------------------------------- factors


def test_cluster_means_use_the_observed_values_of_each_cluster() -> None:
    g = Grouping(codes=np.array([0, 0, 0, 1, 1]), n=2)
    cols = {"x": np.array([1.0, np.nan, 3.0, 4.0, 8.0])}
    np.testing.assert_array_equal(factor_column(Factor("cm", "x"), cols, g), [2, 2, 2, 6, 6])
    np.testing.assert_array_equal(factor_column(Factor("cwc", "x"), cols, g),
                                  [-1, np.nan, 1, -2, 2])
    assert factor_column(Factor("var", "x"), cols, g) is cols["x"]


def test_an_expression_factor_is_nan_where_not_finite() -> None:
    f = Factor("expr", "np.log(x) / z", ("x", "z"))
    cols = {"x": np.array([1.0, -1.0, np.e]), "z": np.array([0.0, 1.0, 2.0])}
    np.testing.assert_array_equal(factor_column(f, cols, None), [np.nan, np.nan, 0.5])


def test_indicators_mark_missing_codes_missing() -> None:
    out = indicators(np.array([0, 2, -1, 1]), [1, 2])
    np.testing.assert_array_equal(out, [[0, 0], [0, 1], [np.nan, np.nan], [1, 0]])
    out = indicators(np.array([0.0, np.nan, 2.0]), [2])
    np.testing.assert_array_equal(out[:, 0], [0, np.nan, 1])


def test_only_the_formula_parser_imports_formulaic() -> None:
    root = Path(recipe_compiler.__file__).parent
    importers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                       if re.search(r"^\s*(from|import) formulaic", p.read_text(encoding="utf-8"),
                                    re.M))
    assert importers == ["model/parse.py"]
