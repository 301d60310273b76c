"""Messy input through ``rc.impute``: a clear error early, or imputations that are neither
corrupt nor stale.

* The error table: each bad input raises exactly the documented
  :class:`~recipe_compiler.RecipeError` subclass (never a bare KeyError,
  TypeError, ...), whose first line names the problem and what would work, and
  leaves the data untouched. Cases already covered for ``rc.compile`` in
  ``compiler/test_assemble.py``/``data/test_schema.py`` are repeated here only through ``impute``.
* Sampler faults (collinear or constant predictors, clusters of one row, a
  cluster without any observed target value, 90% missing): the run completes,
  warns where it recovered, and the imputations move between iterations and
  chains.
* A KeyboardInterrupt propagates and leaves no worker process behind.
"""

from __future__ import annotations

import os
import re
import signal
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import recipe_compiler as rc
from recipe_compiler.compiler.options import LEVEL1_METHODS, METHODS
from recipe_compiler.runtime import chains
from recipe_compiler.runtime.samplers import normal_2l

FORMULA = "y ~ x + b + z + (1 | g)"
Case = Callable[[pd.DataFrame], tuple[Any, Any, dict[str, Any]]]


@pytest.fixture(scope="module")
def frame(make_frame: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    """y, x level-1 continuous, b level-1 0/1, z level-2; y, x, z incomplete, b complete."""
    return make_frame(level1=("y", "x"), binary=("b",), level2=("z",), seed=3, n_clusters=8,
                      cluster_size=(5, 8), missing={"y": 0.2, "x": 0.2, "z": 0.3})


def _set(d: pd.DataFrame, column: str, rows: Any, value: Any) -> pd.DataFrame:
    d = d.copy()
    if value is not None and not isinstance(value, float):
        d[column] = d[column].astype(object)
    d.loc[rows, column] = value
    return d


def _only_one_observed(d: pd.DataFrame, column: str) -> pd.DataFrame:
    d = d.copy()
    d.loc[d.index[1:], column] = np.nan
    return d


def _columns(d: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    d = d.copy()
    d.columns = pd.Index(names)
    return d


# (id, build (data, model, options), error type, regex on the first line of the message)
ERRORS: list[tuple[str, Case, type[rc.RecipeError], str]] = [
    # --- the frame
    ("empty frame", lambda d: (d.iloc[:0], FORMULA, {}), rc.DataError,
     r"^the data frame has no rows$"),
    ("not a frame", lambda d: (d.to_dict("list"), FORMULA, {}), rc.DataError,
     r"^data must be a pandas DataFrame, got dict$"),
    ("duplicate column names", lambda d: (_columns(d, ["g", "y", "x", "x", "z"]), FORMULA, {}),
     rc.DataError, r"^duplicate column names: 'x'; rename them so that each column name is "),
    ("MultiIndex columns",
     lambda d: (d.set_axis(pd.MultiIndex.from_product([list(d.columns), ["a"]]), axis=1),
                FORMULA, {}),
     rc.DataError, r"^the data frame has hierarchical \(MultiIndex\) column names; flatten "),
    # --- columns of the formula
    ("formula column missing", lambda d: (d, "y ~ xx + z + (1 | g)", {}), rc.DataError,
     r"^column 'xx' of the formula is not in the data; did you mean 'x'\?$"),
    ("formula column missing, no close name", lambda d: (d, "y ~ qqq + (1 | g)", {}),
     rc.DataError,
     r"^column 'qqq' of the formula is not in the data; valid names: 'g', 'y', 'x', 'b', 'z'$"),
    ("cluster variable missing", lambda d: (d, "y ~ x + (1 | gg)", {}), rc.DataError,
     r"^cluster variable 'gg' of the formula is not in the data; did you mean 'g'\?$"),
    ("cluster variable incomplete", lambda d: (_set(d, "g", 4, np.nan), FORMULA, {}),
     rc.DataError, r"^cluster variable 'g' has 1 missing values; it must be complete \(drop "),
    ("single cluster", lambda d: (d.assign(g=1), "y ~ x + b + (1 | g)", {}), rc.DataError,
     r"^cluster variable 'g' has a single cluster; a two-level model needs at least 2 "),
    ("all-missing column", lambda d: (d.assign(x=np.nan), FORMULA, {}), rc.DataError,
     r"^column 'x' is entirely missing; nothing can be imputed from it \(drop it from "),
    ("target with one observed value", lambda d: (_only_one_observed(d, "x"), FORMULA, {}),
     rc.DataError, r"^column 'x' has \d+ missing values and only 1 observed value; at least 2 "),
    ("outcome with one observed value", lambda d: (_only_one_observed(d, "y"), FORMULA, {}),
     rc.DataError, r"^column 'y' has \d+ missing values and only 1 observed value; at least 2 "),
    ("level-2 target observed in one cluster",
     lambda d: (d.assign(z=d["z"].where(d["g"] == 1)), FORMULA, {}), rc.DataError,
     r"^column 'z' is a level-2 variable observed in only 1 cluster of 'g'; at least 2 "),
    ("infinite value", lambda d: (_set(d, "x", 2, np.inf), FORMULA, {}), rc.DataError,
     r"^column 'x' holds infinite values; replace them by NaN \(missing\) or finite numbers$"),
    ("negative infinity", lambda d: (_set(d, "b", 2, -np.inf), FORMULA, {}), rc.DataError,
     r"^column 'b' holds infinite values"),
    ("string in a numeric column", lambda d: (_set(d, "x", 3, "n/a"), FORMULA, {}),
     rc.DataError, r"^column 'x' holds non-numeric values such as 'n/a'; convert it to numbers, "
                   r"or write C\(x\) to use it as categorical$"),
    ("undeclared categorical predictor with > 50 levels",
     lambda d: (d.assign(pid=pd.Categorical([f"p{i}" for i in range(len(d))])),
                "y ~ x + pid + (1 | g)", {}),
     rc.DataError, r"^column 'pid' has \d+ categories \(more than 50\); write C\(pid\) to "),
    ("datetime predictor",
     lambda d: (d.assign(when=pd.date_range("2020-01-01", periods=len(d))),
                "y ~ x + when + (1 | g)", {}),
     rc.DataError, r"^column 'when' has dtype datetime64\[\w+\], which an imputation model "
                   r"cannot use as a number; convert it to real numbers first"),
    ("complex predictor", lambda d: (d.assign(c=d["b"] + 1j), "y ~ x + c + (1 | g)", {}),
     rc.DataError, r"^column 'c' has dtype complex128"),
    ("declared level-2 column that varies",
     lambda d: (d, "y ~ x + (1 | g)", {"levels": {"x": 2}}),
     rc.DataError, r"^column 'x' is declared level 2 \(levels=\{'x': 2\}\), but it varies "
                   r"within \d+ of \d+ clusters of 'g': "),
    # --- run options (m=0, maxit=-1, donors=0, n_jobs=0, m=2.5: see test_imputations.py)
    ("m not an integer", lambda d: (d, FORMULA, {"m": "2"}), rc.OptionError,
     r"^m='2' is not valid; it must be an integer >= 1$"),
    ("m boolean", lambda d: (d, FORMULA, {"m": True}), rc.OptionError,
     r"^m=True is not valid; it must be an integer >= 1$"),
    ("maxit text", lambda d: (d, FORMULA, {"maxit": "10"}), rc.OptionError,
     r"^maxit='10' is not valid; it must be an integer >= 0$"),
    ("donors float", lambda d: (d, FORMULA, {"donors": 2.0}), rc.OptionError,
     r"^donors=2\.0 is not valid; it must be an integer >= 1$"),
    ("seed string", lambda d: (d, FORMULA, {"seed": "abc"}), rc.OptionError,
     r"^seed='abc' is not valid; use a non-negative integer, a numpy\.random\.SeedSequence "),
    ("seed negative", lambda d: (d, FORMULA, {"seed": -1}), rc.OptionError,
     r"^seed=-1 is not valid"),
    ("seed float", lambda d: (d, FORMULA, {"seed": 1.5}), rc.OptionError,
     r"^seed=1\.5 is not valid"),
    ("executor without submit", lambda d: (d, FORMULA, {"executor": "processes"}),
     rc.OptionError, r"^executor='processes' is not valid; use a concurrent\.futures\.Executor"),
    # --- compile options
    ("unknown option", lambda d: (d, FORMULA, {"centring": "cluster"}), rc.OptionError,
     r"^unknown option 'centring'; valid options: interactions, centering, random_slopes, "
     r"auxiliary, methods, categorical, levels$"),
    ("unknown option value", lambda d: (d, FORMULA, {"interactions": "some"}), rc.OptionError,
     r"^interactions='some' is not valid; choose one of 'implied', 'all_pairwise'$"),
    ("unknown method", lambda d: (d, FORMULA, {"methods": {"y": "pmmm"}}), rc.OptionError,
     r"^methods\['y'\]='pmmm' is not valid; choose one of " + ", ".join(
         f"'{m}'" for m in METHODS).replace(".", r"\.") + "$"),
    ("method of the wrong level", lambda d: (d, FORMULA, {"methods": {"y": "2lonly.pmm"}}),
     rc.OptionError, r"^methods\['y'\] \(a level-1 target\)='2lonly\.pmm' is not valid; choose "
                     r"one of " + ", ".join(f"'{m}'" for m in LEVEL1_METHODS).replace(".", r"\.")),
    ("method for a complete column", lambda d: (d, FORMULA, {"methods": {"b": "2l.bin"}}),
     rc.OptionError, r"^methods: 'b' is not an incomplete model column; targets are y, x, z$"),
    ("norm method on an integer column",
     lambda d: (d.assign(x=d["x"].round().astype("Int64")), FORMULA,
                {"methods": {"x": "2l.norm"}}),
     rc.OptionError, r"^methods\['x'\]='2l\.norm' imputes non-integer values, but 'x' has the "
                     r"dtype Int64; use a pmm method"),
    ("auxiliary not in the data", lambda d: (d, FORMULA, {"auxiliary": ["xz"]}), rc.DataError,
     r"^auxiliary column 'xz' is not in the data; did you mean 'z' or 'x'\?$"),
    # --- the formula
    ("model not a formula", lambda d: (d, 3, {}), rc.FormulaError,
     r"^the model must be a formula string such as 'y ~ x \+ \(1 \| g\)', a ModelSpec or a "
     r"compiled Plan, got int$"),
    ("random slope on a level-2 variable", lambda d: (d, "y ~ x + z + (1 + z | g)", {}),
     rc.FormulaError, r"^random slope of 'z', a level-2 variable \(constant within clusters of "
                      r"'g'\); random slopes need level-1 variables$"),
    ("grouping factor with missing values",
     lambda d: (_set(d.assign(h=d["g"] // 4), "h", d.index[:3], np.nan), "y ~ x + (1 | h/g)",
                {}),
     rc.DataError, r"^cluster variable 'h' has 3 missing values; it must be complete \(drop "
                   r"those rows or give them a cluster\): rows with index labels "),
    ("random slope of a level-3 variable on its own grouping",
     lambda d: (d.assign(h=d["g"] // 4, v=(d["g"] // 4) * 1.5), "y ~ x + v + (1 + v | h/g)",
                {}),
     rc.FormulaError, r"^random slope of 'v' over 'h:g': 'v' is a level-3 variable, constant "
                      r"within every cluster of 'h:g'"),
    ("declared level-3 column that varies within a school",
     lambda d: (_set(d.assign(h=d["g"] // 4, v=(d["g"] // 4) * 1.5), "v", d.index[0], 9.0),
                "y ~ x + v + (1 | h/g)", {"levels": {"v": 3}}),
     rc.DataError, r"^column 'v' is declared level 3 \(levels=\{'v': 3\}\), but it varies "
                   r"within 1 of 3 clusters of 'h': 0 \(2 values in "),
    ("level-2 outcome", lambda d: (d, "z ~ x + (1 | g)", {}), rc.FormulaError,
     r"^the outcome 'z' is constant within every cluster of 'g' \(a level-2 variable\); a "
     r"two-level model needs a level-1 outcome$"),
    ("unknown function in I()", lambda d: (d, "y ~ I(foo(x)) + (1 | g)", {}), rc.FormulaError,
     r"^unknown function 'foo' in I\(foo\(x\)\); allowed: column names .* and the functions "
     r"log, exp, sqrt, abs, "),
    ("I() not finite", lambda d: (d, "y ~ x + I(b / 0) + (1 | g)", {}), rc.DataError,
     r"^I\(b / 0\) is not finite \(NaN or infinite\) in \d+ of \d+ rows of the completed data, "
     r"e\.g\. a division by zero"),
    ("I() that cannot be computed", lambda d: (d, "y ~ I(x + 'a') + (1 | g)", {}),
     rc.FormulaError, r"^text 'a' in I\(x \+ 'a'\) is not allowed; an expression computes with "
                      r"numbers and columns only; allowed: "),
]


@pytest.mark.parametrize(("build", "error", "pattern"), [c[1:] for c in ERRORS],
                         ids=[c[0] for c in ERRORS])
def test_bad_input_stops_with_a_named_error(frame: pd.DataFrame, build: Case,
                                            error: type[rc.RecipeError], pattern: str) -> None:
    data, model, options = build(frame)
    before = data.copy() if isinstance(data, pd.DataFrame) else None
    with pytest.raises(rc.RecipeError) as exc:
        rc.impute(data, model, **{"m": 2, "maxit": 1, "seed": 1, **options})
    assert type(exc.value) is error, exc.value
    first = str(exc.value).splitlines()[0]
    assert re.search(pattern, first), first
    if before is not None:
        pd.testing.assert_frame_equal(data, before)


# ------------------------------------------------------------------------- a plan on other data


@pytest.fixture(scope="module")
def cat_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with k, a complete 3-level categorical covariate."""
    return frame.assign(k=np.resize([1, 2, 3], len(frame)))


PLAN_ERRORS: list[tuple[str, Callable[[pd.DataFrame], pd.DataFrame], str]] = [
    ("a plan column missing", lambda d: d.drop(columns=["x"]),
     r"^column 'x' of the plan is not in the data; valid names: "),
    ("the plan's cluster missing", lambda d: d.drop(columns=["g"]),
     r"^cluster variable 'g' is not in the data; valid names: "),
    ("a complete covariate now incomplete", lambda d: _set(d, "b", 3, np.nan),
     r"^the plan uses 'b' as a complete covariate, but it has 1 missing values in these data; "
     r"compile the plan again on these data"),
    ("a dummy's level absent", lambda d: d.assign(k=d["k"].replace(3, 2)),
     r"^the plan's dummy column 'C\(k\)\[T\.3\]' needs the level '3' of 'k' \(not as its first "
     r"level\), but the data have the levels '1', '2'; compile the plan again"),
    ("a level-2 target varying within a cluster", lambda d: _set(d, "z", 1, 99.0),
     r"^the plan imputes 'z' as a level-2 variable \(2lonly\.pmm\), but it varies within 1 of "
     r"\d+ clusters of 'g': \S+ \(2 values in \d+ rows\) in these data; correct those "
     r"values, or compile the plan again"),
    ("a target with one observed value", lambda d: _only_one_observed(d, "x"),
     r"^target 'x' has 1 observed value\(s\); at least 2 are needed to impute it"),
    ("a level-2 target observed in one cluster", lambda d: d.assign(z=d["z"].where(d["g"] == 1)),
     r"^level-2 target 'z' is observed in 1 cluster\(s\); at least 2 are needed"),
]


@pytest.mark.parametrize(("change", "pattern"), [c[1:] for c in PLAN_ERRORS],
                         ids=[c[0] for c in PLAN_ERRORS])
def test_a_plan_that_does_not_fit_the_data_is_refused(
        cat_frame: pd.DataFrame, change: Callable[[pd.DataFrame], pd.DataFrame],
        pattern: str) -> None:
    plan = rc.compile("y ~ x + b + z + C(k) + (1 | g)", cat_frame)
    data = change(cat_frame)
    with pytest.raises(rc.DataError) as exc:
        rc.impute(data, plan, m=1, maxit=1, seed=1)
    assert re.search(pattern, str(exc.value).splitlines()[0]), exc.value


def test_a_plan_whose_target_is_complete_in_the_data_runs_quietly(frame: pd.DataFrame) -> None:
    plan = rc.compile(FORMULA, frame)
    data = frame.assign(x=frame["x"].fillna(0.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no "mean of empty slice"
        warnings.simplefilter("ignore", rc.SamplerWarning)
        imp = rc.impute(data, plan, m=2, maxit=2, seed=1)
    assert imp.chain_mean.loc["x"].isna().all().all()
    pd.testing.assert_series_equal(imp.complete(1)["x"], data["x"])


# ------------------------------------------------------------------------- sampler faults


def run_both(data: pd.DataFrame, formula: str, **options: Any
             ) -> tuple[rc.Imputations, rc.Imputations, list[str]]:
    """Imputations with maxit 2 and 3 (same seed), checking that nothing is corrupt.

    Returns both and the messages of the SamplerWarnings (any other warning fails).
    """
    out = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for maxit in (2, 3):
            out.append(rc.impute(data, formula, m=2, maxit=maxit, seed=11, **options))
    assert all(issubclass(w.category, rc.SamplerWarning) for w in caught), caught
    for imp in out:
        for k in (1, 2):
            done = imp.complete(k)
            observed = data.notna()
            assert done[observed].equals(data[observed])  # observed cells exactly as given
            assert not done[imp.plan.targets].isna().any().any()
    return out[0], out[1], [str(w.message) for w in caught]


def assert_not_stale(data: pd.DataFrame, short: rc.Imputations, long: rc.Imputations,
                     targets: list[str]) -> None:
    """Imputations move: between iterations (maxit 2 vs 3) and between chains."""
    for t in targets:
        miss = data[t].isna()
        a, b = short.complete(1).loc[miss, t], long.complete(1).loc[miss, t]
        assert not a.equals(b), f"{t}: iteration 3 left the imputations of iteration 2"
        c1, c2 = long.complete(1).loc[miss, t], long.complete(2).loc[miss, t]
        assert not c1.equals(c2), f"{t}: both chains imputed the same values"
        if data[t].nunique() > 1 and miss.sum() > 1:
            assert (long.chain_var.loc[t] > 0).all().all(), t


def test_collinear_predictors_are_dropped_with_a_warning_naming_the_target(
        frame: pd.DataFrame) -> None:
    data = frame.assign(x=frame["x"].fillna(0.5))
    data = data.assign(x2=2 * data["x"])
    short, long, messages = run_both(data, "y ~ x + x2 + b + z + (1 | g)")
    assert any(re.match(r"imputing 'y': dropped aliased \(collinear\) ", m) for m in messages)
    assert_not_stale(data, short, long, ["y"])


def test_a_constant_predictor_is_dropped_with_a_warning_naming_the_target(
        frame: pd.DataFrame) -> None:
    short, long, messages = run_both(frame.assign(k=3.0), "y ~ x + k + b + (1 | g)")
    for t in ("y", "x"):
        assert any(m.startswith(f"imputing '{t}': dropped constant predictor") for m in messages)
    assert_not_stale(frame, short, long, ["y", "x"])


def test_clusters_of_one_row(frame: pd.DataFrame) -> None:
    data = frame.copy()
    singles = data.index[data["g"] > 5]
    data.loc[singles, "g"] = 100 + np.arange(len(singles))  # every row its own cluster
    short, long, _ = run_both(data, "y ~ x + b + (1 | g)")
    assert (data["g"].value_counts() == 1).sum() == len(singles)
    assert_not_stale(data, short, long, ["y", "x"])


def test_a_cluster_without_any_observed_target_value(frame: pd.DataFrame) -> None:
    data = frame.copy()
    data.loc[data["g"] == 4, "y"] = np.nan
    data.loc[data["g"] == 5, "x"] = np.nan
    short, long, _ = run_both(data, "y ~ x + b + z + (1 + x | g)")
    assert_not_stale(data, short, long, ["y", "x"])
    done = long.complete(1)
    assert done.loc[data["g"] == 4, "y"].nunique() > 1  # not one value for the whole cluster


def test_ninety_percent_missing(make_frame: Callable[..., pd.DataFrame]) -> None:
    data = make_frame(level1=("y", "x"), binary=("b",), level2=("z",), seed=5, n_clusters=10,
                      cluster_size=(6, 9), missing={"x": 0.9, "y": 0.2, "z": 0.3})
    assert data["x"].isna().mean() > 0.8
    short, long, _ = run_both(data, "y ~ x + cm(x) + b + z + (1 | g)")
    assert_not_stale(data, short, long, ["y", "x"])


# ------------------------------------------------------------------------- dtypes and exactness


def test_level2_categorical_in_large_clusters_keeps_exact_codes() -> None:
    """Cluster values are taken exactly: a mean of 49 codes 1 is 0.9999999999999999."""
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(6), 49)
    data = pd.DataFrame({"g": g, "y": rng.normal(size=len(g)) + rng.normal(size=6)[g],
                         "kind": pd.Categorical(np.array(["a", "b", "c", "b", "a", "c"])[g]),
                         "w": np.array([0.1, 0.7, 1.3, 2.9, 0.3, 0.2])[g]})
    data.loc[g == 5, ["kind", "w"]] = np.nan
    data.loc[::7, "y"] = np.nan
    imp = rc.impute(data, "y ~ C(kind) + w + (1 | g)", m=2, maxit=2, seed=1)
    assert imp.plan.methods["kind"] == "2lonly.polyreg"
    assert imp.plan.methods["w"] == "2lonly.pmm"
    for done in imp:
        assert done.loc[g == 5, "kind"].nunique() == 1
        assert done.loc[g == 5, "w"].iloc[0] in set(data["w"].dropna())  # exactly a donor value


def test_nullable_dtypes_are_imputed_in_their_dtype(frame: pd.DataFrame) -> None:
    data = frame.assign(n=pd.array(np.resize([1, 2, None, 4, 5, 3], len(frame)), dtype="Int64"),
                        f=pd.array(np.resize([True, None, False, True], len(frame)),
                                   dtype="boolean"))
    imp = rc.impute(data, "y ~ x + n + f + (1 | g)", m=2, maxit=2, seed=2)
    for done in imp:
        assert (done.dtypes == data.dtypes).all()
        assert done[["n", "f"]].notna().all().all()
        assert set(done["f"]) == {True, False}


def test_numpy_functions_in_i_are_supported(frame: pd.DataFrame) -> None:
    data = frame.assign(p=np.exp(frame["x"].fillna(0.0)))  # complete: no role-swapped log(y)
    imp = rc.impute(data, "y ~ I(np.log(p)) + b + (1 | g)", m=1, maxit=1, seed=1)
    assert "I(np.log(p))" in imp.plan.derived


def test_the_data_are_untouched_when_a_chain_fails(frame: pd.DataFrame,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    before = frame.copy()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise rc.SamplerError("imputing 'y': broken on purpose")

    monkeypatch.setattr(normal_2l, "draw_2l_batch", broken)
    with pytest.raises(rc.SamplerError, match="broken on purpose"):
        rc.impute(frame, FORMULA, m=2, maxit=2, seed=1)
    pd.testing.assert_frame_equal(frame, before)


def test_a_failing_chain_cancels_the_chains_not_yet_started(
        frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    started = []
    real = chains.run_batch

    def first_fails(problem: Any, maxit: int, seeds: Any, donors: int = 5) -> Any:
        started.append(seeds)
        if len(started) == 1:
            raise rc.SamplerError("imputing 'y': chain 1 fails")
        time.sleep(0.2)
        return real(problem, maxit, seeds, donors)

    monkeypatch.setattr(chains, "run_batch", first_fails)
    monkeypatch.setattr(chains, "executor_workers", lambda executor, m: m)  # a task per chain
    with ThreadPoolExecutor(1) as pool, pytest.raises(rc.SamplerError, match="chain 1 fails"):
        rc.impute(frame, FORMULA, m=6, maxit=1, seed=1, executor=pool)
    assert len(started) < 6


# ------------------------------------------------------------------------- KeyboardInterrupt


def _interrupt_on_third_call(monkeypatch: pytest.MonkeyPatch, log: Path | None = None,
                             delay: float = 0.0) -> None:
    """``draw_2l_batch`` raises KeyboardInterrupt on its 3rd call (per process); logs the pid."""
    real = normal_2l.draw_2l_batch
    calls = [0]

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        if log is not None:
            with open(log, "a") as fh:
                fh.write(f"{os.getpid()}\n")
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt
        time.sleep(delay)
        return real(*args, **kwargs)

    monkeypatch.setattr(normal_2l, "draw_2l_batch", interrupted)


def _alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (an unreaped dead child is left behind too)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "X"
    except FileNotFoundError:
        return False


def test_keyboard_interrupt_propagates_in_process(frame: pd.DataFrame,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _interrupt_on_third_call(monkeypatch)
    before = frame.copy()
    with pytest.raises(KeyboardInterrupt), warnings.catch_warnings():
        warnings.simplefilter("ignore", rc.SamplerWarning)
        rc.impute(frame, FORMULA, m=3, maxit=5, seed=1)
    pd.testing.assert_frame_equal(frame, before)


needs_fork = pytest.mark.skipif(
    not hasattr(os, "fork") or not Path("/proc/self/stat").exists()
    or __import__("multiprocessing").get_start_method() != "fork",
    reason="the patched sampler reaches the workers only through fork; pids checked in /proc")


@needs_fork
def test_keyboard_interrupt_in_a_worker_propagates_and_leaves_no_worker(
        frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    log = tmp_path / "pids"
    _interrupt_on_third_call(monkeypatch, log, delay=0.05)
    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):  # all chains to the end: about 40 s
        rc.impute(frame, FORMULA, m=8, maxit=100, seed=1, n_jobs=2)
    elapsed = time.perf_counter() - start
    pids = {int(p) for p in log.read_text().split()} - {os.getpid()}
    assert pids, "the chains did not run in worker processes"
    assert not [p for p in pids if _alive(p)]
    assert elapsed < 15  # the queued chains were cancelled, not run to the end


@needs_fork
def test_keyboard_interrupt_in_the_parent_stops_the_workers(
        frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Ctrl-C while waiting for slow chains: the running workers are terminated."""
    log = tmp_path / "pids"
    real = normal_2l.draw_2l_batch

    def slow(*args: Any, **kwargs: Any) -> Any:
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        time.sleep(0.05)
        return real(*args, **kwargs)

    monkeypatch.setattr(normal_2l, "draw_2l_batch", slow)

    def interrupt(signum: int, stack: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 1.5)
    start = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt):
            rc.impute(frame, FORMULA, m=4, maxit=400, seed=1, n_jobs=2)  # about a minute
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    elapsed = time.perf_counter() - start
    pids = {int(p) for p in log.read_text().split()} - {os.getpid()}
    assert pids
    assert not [p for p in pids if _alive(p)]
    assert elapsed < 20
