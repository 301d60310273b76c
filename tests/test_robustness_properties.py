"""``rc.impute`` on random messy two-level data: refuse with a RecipeError, or never corrupt.

The strategy draws a two-level frame (random cluster sizes including 1, rows in
random order, cluster labels of random type, a non-default index), columns of
random dtype (float, numpy int, nullable Int64, bool, nullable boolean,
category, object strings, pandas ``str`` strings, numeric strings), each at
level 1 or level 2 with up to 90% missing, a formula over them (main effects,
``C()``, ``cm()``, ``I()``, two-way products, random slopes) and options from
their valid values. The property: ``rc.impute(..., m=2, maxit=2)`` either
raises a :class:`~recipe_compiler.RecipeError` or returns imputations in which

* the input frame is not modified;
* every observed cell of every column is unchanged (exactly), every target is
  complete, non-model columns are untouched;
* shape, index, column order and dtypes are those of the input;
* pmm-type imputations are observed values; level-2 imputations are constant
  within each cluster.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import recipe_compiler as rc
from recipe_compiler.compiler.options import CENTERING, INTERACTIONS, RANDOM_SLOPES

SETTINGS = settings(max_examples=1000, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

#: Column kinds: (dtype family, level). Level-2 columns are constant within cluster.
KINDS = ("float1", "float2", "bin1", "int64", "Int64", "Int642", "bool", "boolean", "cat1",
         "cat2", "object2", "str2", "numstr2")
#: Kinds whose values are numbers (usable in cm(), I() and random slopes when level 1).
NUMERIC_L1 = ("float1", "bin1", "Int64", "int64")
#: Kinds that must be written C(x) (non-numeric strings).
STRINGS = ("object2", "str2")
RATES = (0.0, 0.1, 0.3, 0.6, 0.9)


@dataclass(frozen=True)
class Case:
    """One drawn problem: the frame's recipe, the formula and the options."""

    seed: int
    sizes: tuple[int, ...]
    label: str
    index: str
    columns: tuple[tuple[str, str, float], ...]  # (name, kind, missing rate)
    formula: str
    options: dict[str, Any]


def _column(kind: str, rate: float, g: np.ndarray, rng: np.random.Generator) -> pd.Series:
    """A column of ``kind`` for cluster codes ``g`` (0..G-1) with missing rate ``rate``."""
    n, n_groups = len(g), int(g.max()) + 1
    level2 = kind.endswith("2")
    drop = (rng.random(n_groups) < rate)[g] if level2 else rng.random(n) < rate
    if kind in ("float1", "float2"):
        x = rng.normal(size=n_groups)[g] + (0 if level2 else rng.normal(size=n))
        return pd.Series(np.where(drop, np.nan, x))
    if kind == "bin1":
        return pd.Series(np.where(drop, np.nan, (rng.random(n) < 0.5).astype(float)))
    if kind == "int64":  # numpy int: cannot hold NaN, so complete
        return pd.Series(rng.integers(0, 10, n), dtype="int64")
    if kind in ("Int64", "Int642"):
        x = pd.Series(rng.integers(0, 10, n_groups)[g] if level2 else rng.integers(0, 10, n),
                      dtype="Int64")
        x[drop] = pd.NA
        return x
    if kind == "bool":  # numpy bool: complete
        return pd.Series(rng.random(n) < 0.5)
    if kind == "boolean":
        b = pd.Series(rng.random(n) < 0.5, dtype="boolean")
        b[drop] = pd.NA
        return b
    labels = np.array(["lo", "mid", "hi"])
    pick = rng.integers(0, 3, n_groups)[g] if level2 else rng.integers(0, 3, n)
    values = labels[pick].astype(object)
    values[drop] = None
    if kind in ("cat1", "cat2"):
        return pd.Series(pd.Categorical(values, categories=["lo", "mid", "hi"]))
    if kind == "object2":
        return pd.Series(values, dtype=object)
    if kind == "str2":
        return pd.Series(values, dtype="str")
    numeric = np.array(["1", "2", "3"], dtype=object)[pick]
    numeric[drop] = None
    return pd.Series(numeric, dtype=object)  # numstr2: numbers as strings (categorical)


def build_frame(case: Case) -> pd.DataFrame:
    """The frame of a :class:`Case`: rows shuffled, plus two non-model columns."""
    rng = np.random.default_rng(case.seed)
    g = np.repeat(np.arange(len(case.sizes)), case.sizes)
    n = len(g)
    cols: dict[str | int, Any] = {}
    y = rng.normal(size=len(case.sizes))[g] + rng.normal(size=n)
    cols["y"] = pd.Series(np.where(rng.random(n) < 0.25, np.nan, y))
    for name, kind, rate in case.columns:
        cols[name] = _column(kind, rate, g, rng)
    note = np.full(n, "free text", dtype=object)
    note[rng.random(n) < 0.3] = None
    cols["note"] = pd.Series(note, dtype=object)
    cols["spare"] = pd.Series(np.where(rng.random(n) < 0.5, np.nan, rng.normal(size=n)))
    cols[7] = pd.Series(pd.date_range("2020-01-01", periods=n)).where(rng.random(n) < 0.8)
    labels = {"int": g + 1, "str": np.array([f"c{i:02d}" for i in g], dtype=object),
              "float": g * 1.5, "cat": pd.Categorical([f"s{i}" for i in g])}[case.label]
    frame = pd.DataFrame({"g": labels})
    for k, v in cols.items():
        frame[k] = v.array  # keeps the drawn dtype
    order = rng.permutation(n)
    frame = frame.iloc[order]
    if case.index == "range":
        frame = frame.reset_index(drop=True)
    elif case.index == "strings":
        frame.index = pd.Index([f"r{i}" for i in order], name="row")
    elif case.index == "shuffled":
        frame.index = pd.Index(rng.permutation(n) * 3 + 100)
    elif case.index == "duplicated":
        frame.index = pd.Index(rng.integers(0, max(n // 2, 1), n))
    # "kept": the shuffled RangeIndex labels
    return frame


@st.composite
def cases(draw: st.DrawFn) -> Case:
    n_groups = draw(st.integers(2, 8))
    size = st.one_of(st.just(1), st.integers(2, 8))  # a third of the clusters of size 1
    sizes = tuple(draw(st.lists(size, min_size=n_groups, max_size=n_groups)))
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=4))
    columns = tuple((f"v{i}", k, draw(st.sampled_from(RATES))) for i, k in enumerate(kinds))
    numeric_l1 = [c for c, k, _ in columns if k in NUMERIC_L1]
    categorical = {c for c, k, _ in columns
                   if k in STRINGS or (k not in NUMERIC_L1 and k not in ("float2",)
                                       and draw(st.booleans()))}

    def ref(c: str) -> str:
        return f"C({c})" if c in categorical else c

    names = [c for c, _, _ in columns]
    mains = draw(st.lists(st.sampled_from(names), unique=True, min_size=1))
    means = draw(st.lists(st.sampled_from(numeric_l1), unique=True, max_size=2)
                 if numeric_l1 else st.just([]))
    powers = draw(st.lists(st.sampled_from(numeric_l1), unique=True, max_size=1)
                  if numeric_l1 else st.just([]))
    pool = [ref(c) for c in mains] + [f"cm({c})" for c in means]
    combinations = list(itertools.combinations(pool, 2))
    pairs = draw(st.lists(st.sampled_from(combinations), unique=True, max_size=2)
                 if combinations else st.just([]))
    slopes = draw(st.lists(st.sampled_from(numeric_l1), unique=True, max_size=1)
                  if numeric_l1 else st.just([]))
    fixed = [ref(c) for c in mains] + [f"cm({c})" for c in means] + \
        [f"I({c} ** 2)" for c in powers] + [f"{a}:{b}" for a, b in pairs]
    random_part = "(" + " + ".join(["1", *slopes]) + " | g)"
    at = draw(st.integers(0, len(fixed)))
    formula = "y ~ " + " + ".join([*fixed[:at], random_part, *fixed[at:]])
    unused = [c for c in names if c not in mains and c not in slopes
              and c not in means and c not in powers]
    options: dict[str, Any] = {
        "interactions": draw(st.sampled_from(INTERACTIONS)),
        "centering": draw(st.sampled_from(CENTERING)),
        "random_slopes": draw(st.sampled_from(RANDOM_SLOPES)),
    }
    if draw(st.booleans()):
        options["methods"] = {"y": draw(st.sampled_from(["2l.pmm", "2l.norm"]))}
    aux = draw(st.lists(st.sampled_from(unused), unique=True, max_size=1) if unused
               else st.just([]))
    if aux:
        options["auxiliary"] = aux
    return Case(seed=draw(st.integers(0, 2**20)), sizes=sizes,
                label=draw(st.sampled_from(["int", "str", "float", "cat"])),
                index=draw(st.sampled_from(["range", "strings", "shuffled", "kept", "duplicated"])),
                columns=columns, formula=formula, options=options)


def check_imputations(data: pd.DataFrame, imp: rc.Imputations) -> None:
    """Every promise of :meth:`Imputations.complete` for every imputation."""
    plan = imp.plan
    methods = dict(plan.method_table)
    model = {v.name for v in plan.variables if v.role != "derived"}
    for k in range(1, imp.m + 1):
        done = imp.complete(k)
        assert done.shape == data.shape
        assert done.index.equals(data.index) and done.index.dtype == data.index.dtype
        assert list(done.columns) == list(data.columns)
        assert list(done.dtypes) == list(data.dtypes), (done.dtypes, data.dtypes)
        for c in data.columns:
            observed = data[c].notna().to_numpy()
            before, after = data[c].iloc[observed], done[c].iloc[observed]
            assert after.notna().all(), c
            assert (before == after).all(), c  # exact: values, labels, booleans
            if data[c].dtype.kind == "f":
                assert np.array_equal(before.to_numpy().view(np.int64),
                                      after.to_numpy().view(np.int64)), c
            if c not in model:
                pd.testing.assert_series_equal(done[c], data[c])
        for t in plan.targets:
            assert done[t].notna().all(), t
            imputed = done[t][data[t].isna()]
            if methods[t].endswith("pmm"):
                assert set(imputed) <= set(data[t].dropna()), t
            if methods[t].startswith("2lonly."):
                assert (done.groupby(plan.cluster, observed=True)[t].nunique() <= 1).all(), t
    long = imp.complete("long")
    assert len(long) == imp.m * len(data)


@SETTINGS
@given(case=cases())
def test_impute_refuses_or_never_corrupts(case: Case) -> None:
    data = build_frame(case)
    before = data.copy(deep=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # any other warning is a bug: numpy, pandas, ...
            warnings.simplefilter("ignore", rc.SamplerWarning)
            imp = rc.impute(data, case.formula, m=2, maxit=2, seed=case.seed, **case.options)
            check_imputations(data, imp)
    except rc.RecipeError as exc:
        event(f"refused: {type(exc).__name__}: {str(exc).split(';')[0][:60]}")
        pd.testing.assert_frame_equal(data, before)
        return
    event("imputed")
    pd.testing.assert_frame_equal(data, before)  # the input is never modified
