"""Cluster aggregation helpers against pandas groupby and explicit loops."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recipe_compiler.data.grouping import Grouping


def _data(seed: int = 0, n: int = 200, n_groups: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, n_groups - 2, size=n)  # the last two clusters stay empty
    return rng.normal(size=(n, 3)), groups


def test_sizes_sums_and_means_match_pandas_and_empty_clusters_are_zero() -> None:
    x, groups = _data()
    frame = pd.DataFrame(x).groupby(groups)
    grouping = Grouping(groups, 12)
    sizes = grouping.sizes
    assert sizes.tolist() == np.bincount(groups, minlength=12).tolist()
    np.testing.assert_allclose(grouping.sums(x)[:10], frame.sum().to_numpy())
    means = grouping.means(x)
    np.testing.assert_allclose(means[:10], frame.mean().to_numpy())
    assert np.all(means[10:] == 0) and np.isfinite(means).all()
    one = grouping.means(x[:, 0])
    assert one.shape == (12,)
    np.testing.assert_allclose(one, means[:, 0])


def test_crossprod_matches_a_per_cluster_loop() -> None:
    x, groups = _data(1)
    weights = np.random.default_rng(2).random(len(groups))
    b = np.column_stack([x, weights])
    got = Grouping(groups, 12).crossprod(x * weights[:, None], b)
    assert got.shape == (12, 3, 4)
    for c in range(12):
        rows = groups == c
        expected = (x[rows] * weights[rows, None]).T @ b[rows]
        np.testing.assert_allclose(got[c], expected, atol=1e-12)


