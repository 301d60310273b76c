"""Running the replications of a simulation benchmark, shared by ``smc_simulation`` and
``ml_simulation`` (and the tests that run their reduced versions); imported as
``_replications`` when a benchmark runs as a script."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

import pandas as pd

S = TypeVar("S")


def run_replications(replicate: Callable[[str, int, S], pd.DataFrame],
                     scenarios: Sequence[str], reps: int, settings: S, n_jobs: int = 1,
                     progress: bool = True) -> pd.DataFrame:
    """``replicate(scenario, rep, settings)`` for every replication of every scenario, in a
    process pool of ``n_jobs`` workers (in this process for one), rows concatenated in
    task order whatever the order they finish in."""
    tasks = [(s, r) for s in scenarios for r in range(reps)]
    frames: list[pd.DataFrame] = []
    if n_jobs == 1:
        for k, (s, r) in enumerate(tasks, start=1):
            frames.append(replicate(s, r, settings))
            _progress(progress, k, len(tasks))
        return pd.concat(frames, ignore_index=True)
    with ProcessPoolExecutor(max_workers=n_jobs) as pool:
        futures = [pool.submit(replicate, s, r, settings) for s, r in tasks]
        for k, future in enumerate(futures, start=1):
            frames.append(future.result())
            _progress(progress, k, len(tasks))
    return pd.concat(frames, ignore_index=True)


def _progress(show: bool, k: int, n: int) -> None:
    if show and (k == n or k % 10 == 0):
        print(f"\r{k}/{n} replications", end="\n" if k == n else "", file=sys.stderr,
              flush=True)


def error_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Failed replications per scenario and method with the first message."""
    bad = results[results["error"] != ""]
    return (bad.groupby(["scenario", "method"], sort=False)
            .agg(count=("rep", "size"), error=("error", "first")).reset_index())
