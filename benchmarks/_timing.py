"""Wall-time measurement shared by the fitter benchmarks (``lmm_fit``, ``glmm_fit``,
``lmm_multi_fit``); imported as ``_timing`` when a benchmark runs as a script."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))
