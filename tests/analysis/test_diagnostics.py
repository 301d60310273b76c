"""Rank-normalised split R-hat."""

from __future__ import annotations

import numpy as np
import pytest

from recipe_compiler.analysis.diagnostics import rhat
from recipe_compiler.errors import RecipeError


def test_rhat_is_near_one_for_independent_chains_of_one_distribution() -> None:
    rng = np.random.default_rng(1)
    # 4 chains x 1000 iid draws: R-hat - 1 has MC sd ~ 1e-3; 1.01 is a safe bound.
    assert rhat(rng.normal(size=(1000, 4))) < 1.01


def test_rhat_flags_chains_stuck_at_different_locations() -> None:
    rng = np.random.default_rng(2)
    draws = rng.normal(size=(200, 4)) + np.array([0.0, 0.0, 3.0, 3.0])
    assert rhat(draws) > 1.5


def test_rhat_flags_a_trend_within_chains_by_splitting_them() -> None:
    rng = np.random.default_rng(3)
    draws = rng.normal(size=(200, 4)) * 0.1 + np.linspace(0, 5, 200)[:, None]
    assert rhat(draws) > 1.5


def test_rhat_flags_chains_with_different_spread_through_the_tail_rhat() -> None:
    rng = np.random.default_rng(4)
    draws = rng.normal(size=(2000, 4)) * np.array([1.0, 1.0, 4.0, 4.0])
    assert rhat(draws) > 1.1


def test_rhat_needs_four_iterations_and_two_chains() -> None:
    with pytest.raises(RecipeError, match="at least 4 iterations and 2 chains"):
        rhat(np.zeros((3, 4)))
