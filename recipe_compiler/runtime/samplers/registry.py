"""The sampler protocol and registry.

Every sampler has one signature: it takes a :class:`Target` (the current
values of one target and its designs), a random generator and its own state
from the previous visit (``None`` at the first), and returns the new values
of the target's missing entries and its new state. Sampler modules register
their samplers under the key that rows of the method table
(:mod:`recipe_compiler.compiler.methods`) name; the Gibbs loop looks them up
with :func:`get_sampler`, which refuses an unknown key loudly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ...data.grouping import Grouping
from ...errors import SamplerError


@dataclass(frozen=True, eq=False)
class Target:
    """What a sampler sees of one target at one visit.

    Attributes
    ----------
    name : str
        The target, for warnings and errors.
    y : ndarray, shape (n,)
        Current completed values (entries at ``~observed`` are ignored).
    observed : ndarray of bool, shape (n,)
    X : ndarray, shape (n, p)
        Fixed design with an intercept column.
    Z : ndarray, shape (n, q) or None
        Random design (column 0 the random intercept); ``None`` for samplers
        without a random part.
    grouping : Grouping
        The cluster of each of the ``n`` rows.
    n_categories : int
        Number of categories of a target imputed as codes ``0 .. K-1`` (else 0).
    donors : int
        Donor pool size of predictive mean matching.
    """

    name: str
    y: np.ndarray
    observed: np.ndarray
    X: np.ndarray
    Z: np.ndarray | None
    grouping: Grouping
    n_categories: int = 0
    donors: int = 5


class Sampler(Protocol):
    """One update of one target: ``(target, rng, state) -> (draws, state)``."""

    def __call__(self, target: Target, rng: np.random.Generator, state: object | None,
                 /) -> tuple[np.ndarray, object | None]: ...


_REGISTRY: dict[str, Sampler] = {}


def register(key: str) -> Callable[[Sampler], Sampler]:
    """Decorator registering a sampler under ``key`` (each key once)."""
    def add(sampler: Sampler) -> Sampler:
        if key in _REGISTRY:
            raise ValueError(f"sampler {key!r} is registered twice")
        _REGISTRY[key] = sampler
        return sampler
    return add


def get_sampler(key: str, method: str = "") -> Sampler:
    """The sampler registered under ``key``.

    Raises
    ------
    SamplerError
        No sampler has that key (names the method and the registered keys).
    """
    if key not in _REGISTRY:
        raise SamplerError(f"method '{method or key}' names the sampler {key!r}, which is not "
                           f"registered; registered samplers: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[key]


def registered() -> tuple[str, ...]:
    """Keys of every registered sampler."""
    return tuple(sorted(_REGISTRY))
