"""The sampler protocol and registry.

A sampler takes a :class:`Target` (the current values of one target and its
designs in one chain), a random generator and its own state from the previous
visit (``None`` at the first), and returns the new values of the target's
missing entries and its new state. A *batched* sampler (``register(key,
batched=True)``) updates the target in a batch of chains at once: it takes a
:class:`TargetBatch` (arrays with a leading chain axis), one generator per
chain and its batch state, and returns draws of shape ``(chains, n_missing)``;
it must use generator ``c`` for chain ``c`` only, so that a chain's draws do
not depend on the other chains of its batch. The Gibbs loop calls an unbatched
sampler once per chain (:meth:`TargetBatch.chain`).

Sampler modules register their samplers under the key that rows of the method
table (:mod:`recipe_compiler.compiler.methods`) name; the Gibbs loop looks them
up with :func:`get_sampler`, which refuses an unknown key loudly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

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


@dataclass(frozen=True, eq=False)
class TargetBatch:
    """What a batched sampler sees of one target at one visit, in ``C`` chains.

    The rows are split into observed and missing ones once per run, and each
    design is held column by column (``x[c, j]`` is column ``j`` of chain ``c``),
    so the Gibbs loop refreshes only the columns whose variables changed and a
    sampler reads the designs without copying them.

    Attributes
    ----------
    name : str
    y_obs : ndarray, shape (n_obs,)
        The observed values (the same in every chain).
    observed : ndarray of bool, shape (n,)
    x_obs, x_mis : ndarray, shape (C, p, n_obs) and (C, p, n_mis)
        Fixed design of the observed and the missing rows; column 0 is the
        intercept (ones), column ``j`` holds a predictor minus ``x_offset[c, j]``.
    x_offset : ndarray, shape (C, p)
        The constant subtracted from each column (0 for the intercept): a shift
        near the column's mean, so that cross-products centre it accurately.
    z_obs, z_mis : ndarray, shape (C, q - 1, n_obs) and (C, q - 1, n_mis), or None
        The random slopes' columns, not shifted (the random intercept is
        implicit); ``None`` for samplers without a random part.
    grouping : Grouping
        The cluster of each of the ``n`` rows.
    g_obs, g_mis : Grouping
        The clusters of the observed and of the missing rows.
    n_categories : int
        Number of categories of a target imputed as codes ``0 .. K-1`` (else 0).
    donors : int
        Donor pool size of predictive mean matching.
    blocks : tuple of (Grouping, Grouping)
        Extra random-intercept blocks (``multilevel`` scope): for each grouping
        factor after the first, the clusters of the observed and of the missing
        rows. Empty for the other scopes.
    """

    name: str
    y_obs: np.ndarray
    observed: np.ndarray
    x_obs: np.ndarray
    x_mis: np.ndarray
    x_offset: np.ndarray
    z_obs: np.ndarray | None
    z_mis: np.ndarray | None
    grouping: Grouping
    g_obs: Grouping
    g_mis: Grouping
    n_categories: int = 0
    donors: int = 5
    blocks: tuple[tuple[Grouping, Grouping], ...] = ()

    @property
    def chains(self) -> int:
        """Number of chains ``C`` in the batch."""
        return self.x_obs.shape[0]

    def chain(self, c: int) -> Target:
        """The :class:`Target` of chain ``c`` (rows in their original order), for
        unbatched samplers."""
        obs = self.observed
        y = np.zeros(len(obs))
        y[obs] = self.y_obs
        X = np.empty((len(obs), self.x_obs.shape[1]))
        X[obs] = (self.x_obs[c] + self.x_offset[c][:, None]).T
        X[~obs] = (self.x_mis[c] + self.x_offset[c][:, None]).T
        Z = None
        if self.z_obs is not None and self.z_mis is not None:
            Z = np.ones((len(obs), self.z_obs.shape[1] + 1))
            Z[obs, 1:] = self.z_obs[c].T
            Z[~obs, 1:] = self.z_mis[c].T
        return Target(self.name, y, obs, X, Z, self.grouping, self.n_categories, self.donors)


class Sampler(Protocol):
    """One update of one target: ``(target, rng, state) -> (draws, state)``."""

    def __call__(self, target: Target, rng: np.random.Generator, state: object | None,
                 /) -> tuple[np.ndarray, object | None]: ...


class BatchSampler(Protocol):
    """One update of one target in a batch of chains: ``(batch, rngs, state) -> (draws,
    state)`` with draws of shape ``(C, n_missing)``."""

    def __call__(self, target: TargetBatch, rngs: list[np.random.Generator],
                 state: object | None, /) -> tuple[np.ndarray, object | None]: ...


_REGISTRY: dict[str, Sampler | BatchSampler] = {}
_BATCHED: set[str] = set()


def register(key: str, *, batched: bool = False) -> Callable[[Any], Any]:
    """Decorator registering a sampler under ``key`` (each key once).

    ``batched=True`` declares a :class:`BatchSampler`.
    """
    def add(sampler: Any) -> Any:
        if key in _REGISTRY:
            raise ValueError(f"sampler {key!r} is registered twice")
        _REGISTRY[key] = sampler
        if batched:
            _BATCHED.add(key)
        return sampler
    return add


def get_sampler(key: str, method: str = "") -> Sampler | BatchSampler:
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


def is_batched(key: str) -> bool:
    """True if the sampler under ``key`` was registered with ``batched=True``."""
    return key in _BATCHED


def registered() -> tuple[str, ...]:
    """Keys of every registered sampler."""
    return tuple(sorted(_REGISTRY))
