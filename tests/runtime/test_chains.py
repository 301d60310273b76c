"""Running m chains: how many worker processes ``n_jobs`` starts, and its valid values."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pandas as pd
import pytest

import recipe_compiler as rc
from recipe_compiler.runtime import chains
from recipe_compiler.runtime.chains import worker_count

FORMULA = "y ~ x + (1 | g)"


@pytest.fixture(scope="module")
def data(make_frame: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    return make_frame(level1=("y", "x"), binary=(), level2=(), seed=3, n_clusters=6,
                      missing={"y": 0.3, "x": 0.2})


@pytest.fixture
def pools(monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """``max_workers`` of every process pool run_chains starts (the pools do run)."""
    started: list[int | None] = []

    class Recording(ProcessPoolExecutor):
        def __init__(self, max_workers: int | None = None, **kwargs: Any) -> None:
            started.append(max_workers)
            super().__init__(max_workers=max_workers, **kwargs)

    monkeypatch.setattr(chains, "ProcessPoolExecutor", Recording)
    return started


def test_n_jobs_is_capped_at_m_and_results_equal_n_jobs_1(
        data: pd.DataFrame, pools: list[int | None]) -> None:
    one = rc.impute(data, FORMULA, m=2, maxit=2, seed=5, n_jobs=1)
    assert pools == []  # n_jobs=1 runs in this process
    many = rc.impute(data, FORMULA, m=2, maxit=2, seed=5, n_jobs=10000)
    assert len(pools) == 1 and pools[0] is not None and pools[0] <= 2
    pd.testing.assert_frame_equal(one.complete("long"), many.complete("long"))


def test_n_jobs_is_capped_at_the_available_cpus(
        data: pd.DataFrame, pools: list[int | None], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chains, "available_cpus", lambda: 2)
    one = rc.impute(data, FORMULA, m=3, maxit=1, seed=6)
    capped = rc.impute(data, FORMULA, m=3, maxit=1, seed=6, n_jobs=64)
    assert pools == [2]
    pd.testing.assert_frame_equal(one.complete("long"), capped.complete("long"))


def test_one_cpu_or_one_chain_runs_in_this_process(
        data: pd.DataFrame, pools: list[int | None], monkeypatch: pytest.MonkeyPatch) -> None:
    rc.impute(data, FORMULA, m=1, maxit=1, seed=7, n_jobs=8)
    monkeypatch.setattr(chains, "available_cpus", lambda: 1)
    rc.impute(data, FORMULA, m=3, maxit=1, seed=7, n_jobs=-1)
    assert pools == []


@pytest.mark.parametrize(("n_jobs", "m", "cpus", "workers"), [
    (1, 5, 8, 1), (3, 5, 8, 3), (10000, 5, 8, 5), (10000, 20, 8, 8),
    (-1, 20, 8, 8), (-2, 20, 8, 7), (-8, 20, 8, 1), (-100, 20, 8, 1), (-1, 3, 8, 3),
])
def test_worker_count_follows_joblibs_convention(
        monkeypatch: pytest.MonkeyPatch, n_jobs: int, m: int, cpus: int, workers: int) -> None:
    monkeypatch.setattr(chains, "available_cpus", lambda: cpus)
    assert worker_count(n_jobs, m) == workers


@pytest.mark.parametrize("n_jobs", [0, True, False, 2.0, 1.5, "2", None])
def test_bad_n_jobs_is_refused_before_any_work(
        data: pd.DataFrame, n_jobs: object, monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was compiled before n_jobs was checked")

    monkeypatch.setattr(importlib.import_module("recipe_compiler.impute"), "compile_plan", never)
    with pytest.raises(rc.OptionError) as err:
        rc.impute(data, FORMULA, m=2, n_jobs=n_jobs)  # type: ignore[arg-type]
    assert str(err.value) == (f"n_jobs={n_jobs!r} is not valid; use a positive integer (number "
                              "of processes), -1 for all CPUs or -k for all but k - 1")


def test_available_cpus_is_positive_and_at_most_the_machine() -> None:
    assert 1 <= chains.available_cpus() <= (os.cpu_count() or 1)
