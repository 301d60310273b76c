"""Vectorised predictive mean matching against a brute-force donor search."""

from __future__ import annotations

import numpy as np
import pytest

from recipe_compiler.runtime.samplers.matching import match_donors


def _nearest_sets(donors: np.ndarray, targets: np.ndarray, k: int) -> list[set[int]]:
    distance = np.abs(donors[None, :] - targets[:, None])
    return [set(np.argsort(row, kind="stable")[:k].tolist()) for row in distance]


@pytest.mark.parametrize("k", [1, 3, 5])
def test_chosen_donor_is_among_the_k_nearest(k: int) -> None:
    rng = np.random.default_rng(k)
    donors = rng.normal(size=300)
    targets = np.concatenate([rng.normal(scale=2, size=200), [-10.0, 10.0, donors[7]]])
    nearest = _nearest_sets(donors, targets, k)
    for _ in range(20):
        picked = match_donors(donors, targets, k, rng)
        assert all(p in s for p, s in zip(picked, nearest, strict=True))


def test_k_equal_one_is_the_closest_donor() -> None:
    rng = np.random.default_rng(0)
    donors, targets = rng.normal(size=100), rng.normal(size=50)
    expected = np.argmin(np.abs(donors[None, :] - targets[:, None]), axis=1)
    assert np.array_equal(match_donors(donors, targets, 1, rng), expected)


def test_donors_are_drawn_uniformly_from_the_pool() -> None:
    # 20000 draws over 5 donors: each share is 0.2 with MC sd sqrt(.2*.8/20000) = 0.0028;
    # allow 5 sd.
    rng = np.random.default_rng(1)
    donors = np.arange(10.0)
    picked = match_donors(donors, np.full(20000, 4.2), 5, rng)
    share = np.bincount(picked, minlength=10) / 20000
    assert set(np.flatnonzero(share)) == {2, 3, 4, 5, 6}
    np.testing.assert_allclose(share[2:7], 0.2, atol=5 * 0.0028)


def test_tied_donors_are_chosen_at_random_not_in_data_order() -> None:
    # 50 donors tie at 0. As in mice, one call shuffles once, so targets at 0 share a
    # pool of k = 2 tied donors; over 400 calls a given donor is never in the pool with
    # probability (48/50)^400 < 1e-7.
    rng = np.random.default_rng(2)
    donors = np.concatenate([np.zeros(50), np.ones(50)])
    picked = np.concatenate([match_donors(donors, np.zeros(5), 2, rng) for _ in range(400)])
    assert set(picked.tolist()) == set(range(50))


def test_pool_larger_than_donor_count_and_no_targets() -> None:
    rng = np.random.default_rng(3)
    picked = match_donors(np.array([1.0, 2.0]), np.array([0.0, 5.0]), 5, rng)
    assert set(picked.tolist()) <= {0, 1}
    assert match_donors(np.array([1.0, 2.0]), np.zeros(0), 5, rng).shape == (0,)
