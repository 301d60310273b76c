"""Rubin's rules against ``mice::pool.scalar`` (mice 3.15.0).

``data/rubin_pool.json`` holds five estimates and standard errors and, for
``dfcom`` = Inf, 100 and 3000, the output of::

    mice::pool.scalar(Q, U = se^2, n = dfcom + 1, k = 1)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recipe_compiler.analysis.pooling import pool

REFERENCE = json.loads((Path(__file__).parent / "data" / "rubin_pool.json").read_text())
COLUMNS = {"qbar": "estimate", "ubar": "ubar", "b": "b", "t": "t", "df": "df", "r": "riv",
           "fmi": "fmi"}


@pytest.mark.parametrize("expected", REFERENCE["pooled"], ids=lambda e: f"dfcom={e['dfcom']}")
def test_pool_reproduces_mice_pool_scalar(expected: dict) -> None:
    q = np.array(REFERENCE["estimates"])
    u = np.array(REFERENCE["std_errors"]) ** 2
    row = pool(q, u, dfcom=float(expected["dfcom"])).iloc[0]
    for theirs, ours in COLUMNS.items():
        assert row[ours] == pytest.approx(expected[theirs], rel=1e-8, abs=1e-12), theirs
