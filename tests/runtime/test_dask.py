"""Chains and analysis fits on a real Dask cluster (two worker processes, loopback only).

``rc.impute(..., executor=client.get_executor())`` must give the imputations of
``n_jobs=1`` with the same seed, sending the problem once per worker (one task
per batch of chains), and ``imp.fit(..., executor=...)`` the fits of this process.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

import recipe_compiler as rc
from recipe_compiler.runtime.problem import Problem

distributed = pytest.importorskip("distributed")

FORMULA = "y ~ x + b + (1 | g)"


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cluster's own start-up chatter
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           host="127.0.0.1", dashboard_address=None)
        with cluster, distributed.Client(cluster) as c:
            yield c


@pytest.fixture(scope="module")
def data(make_frame: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    return make_frame(level1=("y", "x"), binary=("b",), level2=(), seed=51, n_clusters=10,
                      cluster_size=(5, 9), missing={"y": 0.3, "x": 0.2, "b": 0.2})


class Counting:
    """An executor that counts the tasks submitted with a Problem among their arguments."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.problems = 0

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self.problems += sum(isinstance(a, Problem) for a in args)
        return self.inner.submit(fn, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.slow
def test_chains_on_dask_equal_one_process_and_the_problem_is_sent_once_per_worker(
        client: Any, data: pd.DataFrame) -> None:
    local = rc.impute(data, FORMULA, m=6, maxit=3, seed=52, n_jobs=1)
    executor = Counting(client.get_executor())
    remote = rc.impute(data, FORMULA, m=6, maxit=3, seed=52, executor=executor)
    pd.testing.assert_frame_equal(local.complete("long"), remote.complete("long"))
    for a, b in zip(local.chains, remote.chains, strict=True):
        np.testing.assert_array_equal(a.mean, b.mean)
    # one task per worker, each a batch of three chains: the problem goes out twice, not six times
    assert executor.problems == 2

    fits = local.fit(FORMULA, reml=False)
    there = local.fit(FORMULA, reml=False, executor=client.get_executor())
    pd.testing.assert_frame_equal(fits.pool(), there.pool())
