"""Pieces shared by the samplers.

:class:`Recovery` collects what a sampler did to keep going (dropped columns,
jitter, ...) and emits it as one :class:`~recipe_compiler.errors.SamplerWarning`
per call; :func:`check_observed` and :func:`check_finite` check inputs; the
batched samplers' designs are centred through their cross-products
(:class:`CentredDesign`), draw per chain (:func:`standard_normal`,
:func:`per_chain`), and one chain's arrays become a batch of one by :func:`as_batch`.

A batched sampler handles ``C`` chains at once: arrays carry a leading chain
axis, and every random draw of chain ``c`` comes from its own generator
(:func:`standard_normal`, :func:`per_chain`), in the same order whatever the
batch, so that no chain's draws or arithmetic depend on the other chains.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack

from ...data.grouping import Grouping
from ...errors import SamplerError, SamplerWarning
from .registry import TargetBatch

__all__ = ["ALIAS_TOL", "CONST_TOL", "CentredDesign", "ColumnMap", "Recovery", "as_batch",
           "centred_design", "check_finite", "check_observed", "independent_columns",
           "per_chain", "standard_normal"]

#: A predictor is dropped as aliased when ``1 - R^2`` on the columns kept before
#: it (the pivot of the pivoted Cholesky of the correlation matrix) is below this.
ALIAS_TOL = 1e-8
#: A column is constant among the observed rows when ``sd <= CONST_TOL * |mean|``.
CONST_TOL = 1e-10
#: Cross-products centred by subtraction are recomputed from the centred columns when a
#: variance is below this share of the column's mean square (6 digits lost to cancellation).
LOST_DIGITS = 1e-6
class Recovery:
    """What a sampler did to recover from a numerical problem, warned about once.

    Parameters
    ----------
    name : str
        The target's name, used in the warning.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.actions: list[str] = []

    def note(self, action: str) -> None:
        """Record one recovery action (a short clause such as ``"dropped ..."``)."""
        self.actions.append(action)

    def warn(self) -> None:
        """Emit one :class:`SamplerWarning` listing every action, if there was any."""
        if self.actions:  # a batch of chains may note the same action more than once
            warnings.warn(f"imputing '{self.name}': " + "; ".join(dict.fromkeys(self.actions)),
                          SamplerWarning, stacklevel=3)


def check_observed(y: np.ndarray, observed: np.ndarray, name: str) -> np.ndarray:
    """The finite observed values of ``y``; raise if fewer than two.

    Raises
    ------
    SamplerError
        Shape mismatch, non-finite observed values or fewer than 2 observed.
    """
    if observed.dtype != np.bool_ or observed.shape != y.shape or y.ndim != 1:
        raise SamplerError(f"imputing '{name}': y must be 1-D and observed a boolean mask "
                           f"of the same shape (got {y.shape} and {observed.shape})")
    y_obs = np.compress(observed, y)
    if len(y_obs) < 2:
        raise SamplerError(f"imputing '{name}': {len(y_obs)} observed value(s); at least 2 "
                           "are needed to fit an imputation model")
    if not np.isfinite(y_obs).all():
        raise SamplerError(f"imputing '{name}': observed values contain NaN or infinity")
    return y_obs


def check_finite(values: np.ndarray, name: str, what: str) -> np.ndarray:
    """Return ``values`` if all finite, else raise :class:`SamplerError` about ``what``."""
    if not np.isfinite(values).all():
        raise SamplerError(f"imputing '{name}': {what} are not finite "
                           "(NaN or infinite predictors, or numerical overflow)")
    return values




@dataclass(frozen=True, eq=False)
class CentredDesign:
    """A batch of fixed designs (column 0 the intercept), centred through cross-products.

    The model ``X beta`` is reparametrised as ``coef[0] + sum_j coef[j] * (x_j -
    center_j)`` over the columns ``j >= 1``; no centred copy of the design is made:
    every moment is centred by :meth:`centre`. Constant and aliased columns are
    dropped, as :func:`~.single.fixed_design` does, by giving them a unit row
    and column in ``gram`` and zero moments, so their coefficient is zero and
    the shapes stay equal across chains.

    Attributes
    ----------
    n : int
        Number of observed rows.
    center : ndarray, shape (C, p)
        Mean of each column over the observed rows (0 for the intercept).
    gram : ndarray, shape (C, p, p)
        Centred ``X'X`` of the kept columns (``gram[:, 0, 0] = n``).
    keep : ndarray of bool, shape (C, p)
        Columns kept (the intercept always).
    scale : ndarray, shape (C, p)
        Standard deviation of each kept column (1 for the intercept and dropped ones).
    offset : ndarray, shape (C, p)
        The shift already subtracted from the stored columns (see :class:`TargetBatch`).
    """

    n: int
    center: np.ndarray
    gram: np.ndarray
    keep: np.ndarray
    scale: np.ndarray
    offset: np.ndarray

    def centre(self, moments: np.ndarray) -> np.ndarray:
        """Moments ``sum_i x_ij f_i`` (any shape ``(C, ..., p)``, entry 0 the sum of f)
        of the centred, kept columns."""
        shape = (self.center.shape[0],) + (1,) * (moments.ndim - 2) + (self.center.shape[1],)
        centred = moments - moments[..., :1] * self.center.reshape(shape)
        return centred * self.keep.reshape(shape)

    def shifted(self, coef: np.ndarray) -> np.ndarray:
        """Coefficients ``(C, p)`` on the stored (shifted) columns equivalent to ``coef``."""
        out = coef * self.keep
        out[:, 0] = coef[:, 0] - np.sum(out[:, 1:] * self.center[:, 1:], axis=1)
        return out

    def beta(self, coef: np.ndarray) -> np.ndarray:
        """Coefficients ``(C, p)`` on the original (unshifted) columns."""
        out = self.shifted(coef)
        out[:, 0] -= np.sum(out[:, 1:] * self.offset[:, 1:], axis=1)
        return out

    def noise(self, rngs: list[np.random.Generator]) -> np.ndarray:
        """Standard normal draws ``(C, p)`` for the kept columns, zero for dropped ones."""
        out = np.zeros(self.keep.shape)
        for c, rng in enumerate(rngs):
            out[c, self.keep[c]] = rng.standard_normal(int(self.keep[c].sum()))
        return out


def centred_design(x_obs: np.ndarray, offset: np.ndarray, log: Recovery) -> CentredDesign:
    """Centre the observed rows of a batch of designs and drop constant and aliased columns.

    As :func:`~.single.fixed_design`, chain by chain: a column is constant when its
    sd is at most ``CONST_TOL`` times its mean (``offset`` included); among the
    others the most linearly independent columns are kept (pivoted Cholesky of
    the correlation matrix), at most ``n - 2`` of them.

    Parameters
    ----------
    x_obs : ndarray, shape (C, p, n)
        Observed rows; column 0 is the intercept (ones).
    offset : ndarray, shape (C, p)
        Shift subtracted from each stored column.
    log : Recovery

    Raises
    ------
    SamplerError
        Non-finite predictors.
    """
    chains, p, n = x_obs.shape
    xtx = np.matmul(x_obs, x_obs.transpose(0, 2, 1))
    center = xtx[:, 0, :] / n
    center[:, 0] = 0.0
    cross = xtx - n * center[:, :, None] * center[:, None, :]
    if not np.isfinite(cross).all():
        raise SamplerError(f"imputing '{log.name}': predictors of the observed rows are "
                           "not finite")
    var = np.diagonal(cross, axis1=1, axis2=2) / n
    for c in np.flatnonzero(np.any(var < LOST_DIGITS * np.diagonal(xtx, axis1=1, axis2=2) / n,
                                   axis=1)):
        # the shift left the column far from centred: centre this chain explicitly
        centred = x_obs[c] - center[c][:, None]
        centred[0] = 1.0
        cross[c] = centred @ centred.T
        var[c] = np.diagonal(cross[c]) / n
    var = np.maximum(var, 0.0)
    constant = var <= (CONST_TOL * (center + offset)) ** 2
    constant[:, 0] = False
    keep = np.zeros((chains, p), dtype=bool)
    keep[:, 0] = True
    full = _full_rank(cross, var, n) & ~constant.any(axis=1)
    keep[full] = True
    for c in np.flatnonzero(~full):
        if constant[c].any():
            log.note(f"dropped constant predictor column(s) {np.flatnonzero(constant[c]).tolist()}"
                     " of X")
        candidates = np.flatnonzero(~constant[c])[1:]
        sd = np.sqrt(var[c, candidates])
        corr = cross[c][np.ix_(candidates, candidates)] / np.outer(sd, sd) / n
        order = independent_columns(corr)
        if len(order) < len(candidates):
            aliased = np.ones(len(candidates), dtype=bool)
            aliased[order] = False
            log.note(f"dropped aliased (collinear) predictor column(s) "
                     f"{candidates[aliased].tolist()} of X")
        if len(order) > n - 2:
            log.note(f"only {n} observed values: kept {n - 2} of {len(order)} predictor columns")
            order = order[: n - 2]
        keep[c, candidates[order]] = True
    both = keep[:, :, None] & keep[:, None, :]
    gram = np.where(both, cross, 0.0)
    gram[:, np.arange(p), np.arange(p)] = np.where(keep, np.diagonal(gram, axis1=1, axis2=2), 1.0)
    gram[:, 0, :] = gram[:, :, 0] = 0.0  # the centred columns are orthogonal to the intercept
    gram[:, 0, 0] = n
    scale = np.where(keep, np.sqrt(var), 1.0)
    scale[:, 0] = 1.0
    return CentredDesign(n=n, center=center, gram=gram, keep=keep, scale=scale, offset=offset)


def standardised(t: TargetBatch) -> tuple[Recovery, float, float, np.ndarray, CentredDesign]:
    """The start of every normal-model sampler's visit: ``(log, y_center, y_scale, ys,
    design)``, with ``ys`` the observed values standardised (``y_scale`` 1 for a constant
    target) and ``design`` the centred fixed design of the observed rows.

    Raises
    ------
    SamplerError
        The observed values contain NaN or infinity.
    """
    log = Recovery(t.name)
    if not np.isfinite(t.y_obs).all():
        raise SamplerError(f"imputing '{t.name}': observed values contain NaN or infinity")
    y_center, y_scale = float(t.y_obs.mean()), float(t.y_obs.std()) or 1.0
    ys = (t.y_obs - y_center) / y_scale
    return log, y_center, y_scale, ys, centred_design(t.x_obs, t.x_offset, log)


def _full_rank(cross: np.ndarray, var: np.ndarray, n: int) -> np.ndarray:
    """Chains whose non-intercept columns :func:`independent_columns` surely keeps all of.

    At each step of the pivoted Cholesky factorisation a column's remaining
    diagonal is ``1 - R^2`` on the columns chosen before it, at least ``1 - R^2``
    on all the others, ``1 / (corr^-1)_jj``; if that exceeds twice ``ALIAS_TOL``
    for every column (the factor 2 covers rounding), none is dropped. The
    others go through :func:`independent_columns` chain by chain.
    """
    p = cross.shape[1]
    if p == 1:
        return np.ones(len(cross), dtype=bool)
    if p - 1 > n - 2 or np.any(var[:, 1:] <= 0):
        return np.zeros(len(cross), dtype=bool)
    sd = np.sqrt(var[:, 1:])
    corr = cross[:, 1:, 1:] / (sd[:, :, None] * sd[:, None, :]) / n
    try:
        inverse = np.linalg.inv(corr)
    except np.linalg.LinAlgError:
        return np.zeros(len(cross), dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        remaining = 1 / np.diagonal(inverse, axis1=1, axis2=2)
    return np.all(np.isfinite(remaining) & (remaining > 2 * ALIAS_TOL), axis=1)


def independent_columns(corr: np.ndarray) -> np.ndarray:
    """Positions of a maximal well-conditioned column subset, most independent first."""
    if corr.shape[0] == 0:
        return np.zeros(0, dtype=int)
    _, piv, rank, _ = lapack.dpstrf(corr, tol=ALIAS_TOL)
    return piv[:rank].astype(int) - 1




def standard_normal(rngs: list[np.random.Generator], shape: tuple[int, ...]) -> np.ndarray:
    """Draws ``(C, *shape)``; chain ``c``'s from ``rngs[c]``."""
    return per_chain(rngs, lambda rng: rng.standard_normal(shape))


def per_chain(rngs: list[np.random.Generator],
              draw: Callable[[np.random.Generator], np.ndarray | float]) -> np.ndarray:
    """``draw(rng)`` for each chain's generator, stacked along a leading chain axis."""
    return np.stack([np.asarray(draw(rng), dtype=float) for rng in rngs])


@dataclass(frozen=True)
class ColumnMap:
    """Where X's columns went in :func:`as_batch`: the intercept (of constant
    ``value``) to column 0, the ``others`` after it in their order."""

    intercept: int
    others: tuple[int, ...]
    value: float

    def to_x(self, beta: np.ndarray) -> np.ndarray:
        """Coefficients ``(1, p)`` of the batch's columns -> ``(p,)`` on X's columns."""
        out = np.empty(len(self.others) + 1)
        out[list(self.others)] = beta[0, 1:]
        out[self.intercept] = beta[0, 0] / self.value
        return out

    def from_x(self, beta: np.ndarray) -> np.ndarray:
        """Coefficients ``(p,)`` on X's columns -> ``(1, p)`` on the batch's columns."""
        return np.concatenate([[beta[self.intercept] * self.value],
                               beta[list(self.others)]])[None]


def as_batch(y: np.ndarray, observed: np.ndarray, X: np.ndarray, Z: np.ndarray | None,
             grouping: Grouping | None, name: str, donors: int = 5
             ) -> tuple[TargetBatch, ColumnMap]:
    """One chain's arrays as a batch of one, and where X's columns went.

    The intercept (the first constant, non-zero column of X over the observed
    rows) becomes column 0 (ones); the other columns follow in their order,
    shifted by their observed means.

    Raises
    ------
    SamplerError
        Fewer than two finite observed values, shapes that do not match, no
        intercept column or non-finite predictors.
    """
    y_obs = check_observed(y, observed, name)
    if X.ndim != 2 or X.shape[0] != len(y):
        raise SamplerError(f"imputing '{name}': X must have shape ({len(y)}, p); got {X.shape}")
    x_obs = np.compress(observed, X, axis=0)
    center = np.ones(len(x_obs)) @ x_obs / len(x_obs)
    if not np.isfinite(center).all():
        raise SamplerError(f"imputing '{name}': predictors of the observed rows are not finite")
    sd = np.sqrt(np.ones(len(x_obs)) @ (x_obs - center) ** 2 / len(x_obs))
    carriers = np.flatnonzero((sd <= CONST_TOL * np.abs(center)) & (center != 0))
    if carriers.size == 0:
        raise SamplerError(f"imputing '{name}': X has no intercept (constant, non-zero) column")
    intercept = int(carriers[0])
    others = np.delete(np.arange(X.shape[1]), intercept)
    offset = np.concatenate([[0.0], center[others]])
    design = np.empty((1, X.shape[1], len(y)))
    design[0, 0] = 1.0
    design[0, 1:] = (X[:, others] - center[others]).T
    grouping = Grouping.single(len(y)) if grouping is None else grouping
    z = None if Z is None else Z[:, 1:].T[None]
    batch = TargetBatch(name=name, y_obs=y_obs, observed=observed,
                        x_obs=np.ascontiguousarray(design[:, :, observed]),
                        x_mis=np.ascontiguousarray(design[:, :, ~observed]),
                        x_offset=offset[None], z_obs=None if z is None else z[:, :, observed],
                        z_mis=None if z is None else z[:, :, ~observed], grouping=grouping,
                        g_obs=grouping.subset(observed), g_mis=grouping.subset(~observed),
                        donors=donors)
    return batch, ColumnMap(intercept, tuple(others.tolist()), float(center[intercept]))
