"""The Gibbs update of a level-1 normal SMC model in a batch of chains, from cluster sums.

The two-level block of :func:`~recipe_compiler.runtime.samplers.normal_2l.draw_2l`
(``(beta, u) | Omega, sigma2`` with ``u`` integrated out of ``beta``, then
``Omega``, then ``sigma2``, on the standardised scale) needs only the
per-cluster cross-products of the model's columns ``v = (X, Z's slopes, y)``.
Most rows never change: no imputed value enters their design or dependent
(:class:`Split`). Their cross-products are summed once per run; each sweep adds
those of the few moving rows, then standardises the sums (centred X, scaled Z,
standardised y) by their own moments, so that a sweep costs O(moving rows +
clusters) instead of O(rows). Where the sums cannot be standardised safely (a
constant or aliased column, or digits lost to a column far from centred) the
sweep takes the moments from the rows, as :func:`~.normal_2l.draw_2l_batch` does.

The cluster blocks (q x q, q the random effects, usually 1 or 2) are held entry
by entry with the chains and clusters last (shape (q, q, C, G)), and factorised
and solved by unrolled formulas, each step one operation over all chains and
clusters (no per-matrix LAPACK call, no loops over tiny trailing axes); a block
that is not positive definite goes through the jittered
:func:`~recipe_compiler.runtime.samplers.single.cholesky`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...data.grouping import Grouping
from ...errors import SamplerError
from ..samplers.common import (
    ALIAS_TOL,
    CONST_TOL,
    LOST_DIGITS,
    CentredDesign,
    Recovery,
    centred_design,
    per_chain,
    standard_normal,
)
from ..samplers.normal_2l import (
    SIGMA2_PRIOR,
    TwoLevelBatchState,
    chain_moments,
    draw_omega,
    pd_inverse,
)
from ..samplers.single import cholesky
from .terms import Frame, ModelDesign

__all__ = ["Blocks", "Split", "draw_block_effects", "make_split", "update_normal_batch"]


@dataclass(frozen=True, eq=False)
class Split:
    """A level-1 normal model's fit rows split into fixed and moving ones.

    Attributes
    ----------
    fit : ndarray of int
        The rows the model is fitted on; ``grouping`` is their grouping.
    grouping : Grouping
    moving : ndarray of int
        The fit rows whose design or dependent holds an imputed value (a missing
        cell, or a cluster mean of a column with a missing cell in the cluster),
        sorted by cluster.
    starts, clusters : ndarray of int
        Where each cluster's moving rows start in ``moving``, and that cluster.
    shift : ndarray, shape (m,)
        Constant subtracted from each column of ``v = (X, Z's slopes, y)`` (the
        mean of its fixed rows; 0 for the intercept and Z), so that the sums
        centre accurately.
    fixed : ndarray, shape (m, m, G)
        Per cluster (last axis), ``sum v v'`` of the shifted columns over the fixed rows.
    z_columns : ndarray of int
        Where Z's columns are in ``v`` (the random intercept is X's first column).
    centred : ndarray of int
        The columns of ``v`` that are centred (X's but the intercept, and y).
    """

    fit: np.ndarray
    grouping: Grouping
    moving: np.ndarray
    starts: np.ndarray
    clusters: np.ndarray
    shift: np.ndarray
    fixed: np.ndarray
    z_columns: np.ndarray
    centred: np.ndarray


def make_split(design: ModelDesign, data: Frame, fit: np.ndarray, moving: np.ndarray,
               grouping: Grouping) -> Split:
    """The :class:`Split` of a model.

    Parameters
    ----------
    design : ModelDesign
    data : Frame
        One chain of the data (NaN where missing): the fixed rows' values.
    fit, moving : ndarray of bool
        The fit rows, and the rows whose values change with the imputations.
    grouping : Grouping
    """
    p, q1 = len(design.fixed), len(design.random) - 1
    still = np.flatnonzero(fit & ~moving)
    v = _columns(design, data, still)[0]
    shift = np.zeros(p + q1 + 1)
    if still.size:
        shift[1:p] = v[1:p].mean(axis=1)
        shift[-1] = v[-1].mean()
    v -= shift[:, None]
    g_still = grouping.subset(still)
    fixed = np.stack([g_still.segment_sums(v[i] * v) for i in range(len(v))])
    rows = np.flatnonzero(fit & moving)
    rows = rows[np.argsort(grouping.codes[rows], kind="stable")]
    codes = grouping.codes[rows]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if rows.size else rows
    return Split(fit=np.flatnonzero(fit), grouping=grouping.subset(fit), moving=rows,
                 starts=starts, clusters=codes[starts], shift=shift,
                 fixed=fixed, z_columns=np.r_[0, np.arange(p, p + q1)],
                 centred=np.r_[1:p, p + q1])


def _columns(design: ModelDesign, frame: Frame, rows: np.ndarray) -> np.ndarray:
    """``v = (X, Z's slopes, y)`` on ``rows``, shape (C, m, r)."""
    z = design.Z(frame, rows)[:, 1:]
    y = frame.values[design.dependent].take(rows, axis=1)
    return np.concatenate([design.X(frame, rows), z, y[:, None]], axis=1)


@dataclass(frozen=True, eq=False)
class Blocks:
    """Moments of a standardised two-level model (centred X, scaled Z, standardised y).

    Attributes
    ----------
    ztz, ztx, ztr : ndarray
        Per cluster ``Z_c'Z_c``, ``Z_c'X_c``, ``Z_c'y_c``, entry by entry with the
        chains and clusters last: shapes (q, q, C, G), (q, p, C, G), (q, C, G).
    xtx, xtr, yty : ndarray
        ``X'X`` (C, p, p) (with any prior precision), ``X'y`` (C, p), ``y'y`` (C,).
    design : CentredDesign
        The centring of X and its kept columns.
    z_scale : ndarray, shape (C, q)
        The scale Z's columns were divided by.
    y_center, y_scale : ndarray, shape (C,)
        How y was standardised.
    """

    ztz: np.ndarray
    ztx: np.ndarray
    ztr: np.ndarray
    xtx: np.ndarray
    xtr: np.ndarray
    yty: np.ndarray
    design: CentredDesign
    z_scale: np.ndarray
    y_center: np.ndarray
    y_scale: np.ndarray


def update_normal_batch(design: ModelDesign, frame: Frame, split: Split,
                        state: TwoLevelBatchState, rngs: list[np.random.Generator],
                        offset: np.ndarray | None = None) -> TwoLevelBatchState:
    """One warm Gibbs update of a level-1 normal model in ``C`` chains at once.

    The block of :func:`~recipe_compiler.runtime.samplers.normal_2l.draw_2l`
    for a batch of chains whose values differ by chain, without imputations
    (the missing values are drawn by :mod:`.conditionals`). Chain ``c`` draws
    from ``rngs[c]`` only, and its arithmetic does not depend on the other chains.

    Parameters
    ----------
    design : ModelDesign
    frame : Frame
        The chains' row frame.
    split : Split
        The model's fit rows.
    state : TwoLevelBatchState
        The chains' previous draw (original units).
    rngs : list of numpy.random.Generator
        One per chain.
    offset : ndarray, shape (C, G), optional
        Subtracted from the dependent, constant within each cluster (a three-level
        plan's outer random intercept, :mod:`.outer`): applied to the cluster sums.

    Raises
    ------
    SamplerError
        Non-finite values of the dependent variable or of the designs.
    """
    name = design.dependent
    log = Recovery(name)
    sums = _cluster_sums(design, frame, split)
    if offset is not None:
        _subtract_offset(sums, offset)
    if not np.isfinite(sums).all():
        raise SamplerError(f"imputing '{name}': its values or predictors contain NaN or "
                           "infinity")
    std = _from_sums(sums, split, len(design.fixed))
    if std is None:
        std = _from_rows(design, frame, split, log, offset)
    units = std.z_scale / std.y_scale[:, None]
    outer = units[:, :, None] * units[:, None, :]
    sigma2 = state.sigma2 / std.y_scale**2
    omega_inv = pd_inverse(state.omega * outer, log, chains=True)
    b, u = draw_block_effects(std, 1 / sigma2, omega_inv, rngs, log)
    u_rows = np.ascontiguousarray(u.transpose(1, 2, 0))
    omega, _ = draw_omega(u_rows, rngs, log)
    q = len(u)
    fitted = [sum(std.ztx[a, j] * b[:, j, None] for j in range(b.shape[1])) for a in range(q)]
    rss = (std.yty - 2 * np.sum(b * std.xtr, axis=1)
           + np.sum((std.xtx @ b[:, :, None])[..., 0] * b, axis=1)
           - 2 * sum((u[a] * (std.ztr[a] - fitted[a])).sum(axis=-1) for a in range(q))
           + sum((std.ztz[a, c] * u[a] * u[c]).sum(axis=-1) for a in range(q)
                 for c in range(q)))
    n = len(split.fit)
    gamma = per_chain(rngs, lambda rng: rng.gamma(SIGMA2_PRIOR + n / 2))
    sigma2 = (SIGMA2_PRIOR + np.maximum(rss, 1e-12 * std.yty) / 2) / gamma
    beta = std.design.beta(b) * std.y_scale[:, None]
    beta[:, 0] += std.y_center
    log.warn()
    return TwoLevelBatchState(beta=beta, u=u_rows / units[:, None, :], omega=omega / outer,
                              sigma2=sigma2 * std.y_scale**2)


def _cluster_sums(design: ModelDesign, frame: Frame, split: Split) -> np.ndarray:
    """Per chain and cluster, ``sum v v'`` of the shifted columns over the fit rows,
    shape (m, m, C, G)."""
    sums = np.repeat(split.fixed[:, :, None, :], frame.chains, axis=2)
    if split.moving.size:
        v = (_columns(design, frame, split.moving) - split.shift[:, None]).transpose(1, 0, 2)
        moving = np.add.reduceat(v[:, None] * v[None, :], split.starts, axis=-1)
        sums[..., split.clusters] += moving
    return sums


def _subtract_offset(sums: np.ndarray, offset: np.ndarray) -> None:
    """Cluster sums ``(m, m, C, G)`` of ``v = (X, Z, y)`` with ``y - o`` for ``y``, in place,
    ``o`` ``(C, G)`` constant within each cluster: column 0 (the intercept, 1) gives
    ``sum v_j`` and the cluster size, so ``sum v_j (y - o) = sum v_j y - o sum v_j`` and
    ``sum (y - o)^2 = sum y^2 - 2 o sum y + o^2 n``."""
    yy = sums[-1, -1] - 2 * offset * sums[-1, 0] + offset**2 * sums[0, 0]
    column = sums[:, -1] - offset * sums[:, 0]
    column[-1] = yy
    sums[:, -1] = column
    sums[-1, :] = column


def _from_sums(sums: np.ndarray, split: Split, p: int) -> Blocks | None:
    """The standardised moments from the cluster sums; ``None`` where a chain has a
    constant or aliased column of X, or a column of X or y too far from centred to
    centre by sums."""
    n = len(split.fit)
    total = np.moveaxis(sums.sum(axis=-1), 2, 0)
    mean = total[:, 0, :] / n
    cross = total - n * mean[:, :, None] * mean[:, None, :]
    diagonal = np.diagonal(cross, axis1=1, axis2=2)
    var = diagonal[:, 1:p] / n
    checked = split.centred
    lost = diagonal[:, checked] < LOST_DIGITS * np.diagonal(total, axis1=1, axis2=2)[:, checked]
    true_mean = mean[:, 1:p] + split.shift[1:p]
    if p - 1 > n - 2 or (var <= (CONST_TOL * true_mean) ** 2).any() or lost.any():
        return None
    if p > 1:
        sd = np.sqrt(var)
        corr = cross[:, 1:p, 1:p] / (sd[:, :, None] * sd[:, None, :]) / n
        try:
            remaining = 1 / np.diagonal(np.linalg.inv(corr), axis1=1, axis2=2)
        except np.linalg.LinAlgError:
            return None
        if not (np.isfinite(remaining) & (remaining > 2 * ALIAS_TOL)).all():
            return None
    chains = len(total)
    y_var = diagonal[:, -1] / n
    y_scale = np.sqrt(np.maximum(y_var, 0.0))
    y_scale[y_scale == 0] = 1.0
    y_mean = mean[:, -1]
    zi = split.z_columns
    z_scale = np.ones((chains, len(zi)))
    z_scale[:, 1:] = np.sqrt(np.diagonal(total, axis1=1, axis2=2)[:, zi[1:]] / n)
    z_scale[z_scale == 0] = 1.0
    center = mean[:, :p].copy()
    center[:, 0] = 0.0
    gram = cross[:, :p, :p].copy()
    gram[:, 0, :] = gram[:, :, 0] = 0.0
    gram[:, 0, 0] = n
    scale = np.ones((chains, p))
    scale[:, 1:] = np.sqrt(var)
    design = CentredDesign(n=n, center=center, gram=gram, keep=np.ones((chains, p), dtype=bool),
                           scale=scale, offset=np.tile(split.shift[:p], (chains, 1)))
    zs = z_scale.T[:, :, None]
    blocks = sums[zi]
    x_blocks = blocks[:, :p]
    return Blocks(
        ztz=blocks[:, zi] / (zs[:, None] * zs[None, :]),
        ztx=(x_blocks - x_blocks[:, :1] * center.T[None, :, :, None]) / zs[:, None],
        ztr=(blocks[:, -1] - blocks[:, 0] * y_mean[:, None]) / (zs * y_scale[:, None]),
        xtx=gram, xtr=cross[:, :p, -1] / y_scale[:, None], yty=y_var / y_scale**2 * n,
        design=design, z_scale=z_scale, y_center=y_mean + split.shift[-1], y_scale=y_scale)


def _from_rows(design: ModelDesign, frame: Frame, split: Split, log: Recovery,
               offset: np.ndarray | None = None) -> Blocks:
    """The standardised moments from the fit rows (:func:`~.normal_2l.chain_moments`),
    constant and aliased columns dropped by :func:`~..samplers.common.centred_design`;
    ``offset`` per cluster subtracted from the dependent."""
    v = _columns(design, frame, split.fit)
    if offset is not None:
        v[:, -1] -= offset.take(split.grouping.codes, axis=1)
    p = len(design.fixed)
    offset = v[:, :p].mean(axis=2)
    offset[:, 0] = 0.0
    x = v[:, :p] - offset[:, :, None]
    y = v[:, -1]
    y_center, y_scale = y.mean(axis=1), y.std(axis=1)
    y_scale[y_scale == 0] = 1.0
    ys = (y - y_center[:, None]) / y_scale[:, None]
    centred = centred_design(x, offset, log)
    mom, z_scale = chain_moments(x, v[:, p:-1], split.grouping, centred, ys, log.name)
    return Blocks(
        ztz=np.ascontiguousarray(mom.ztz.transpose(2, 3, 0, 1)),
        ztx=np.ascontiguousarray(mom.ztx.transpose(2, 3, 0, 1)),
        ztr=np.ascontiguousarray(mom.ztr.transpose(2, 0, 1)), xtx=mom.xtx, xtr=mom.xtr,
        yty=np.einsum("cn,cn->c", ys, ys), design=centred, z_scale=z_scale,
        y_center=y_center, y_scale=y_scale)


def draw_block_effects(std: Blocks, weight: np.ndarray, omega_inv: np.ndarray,
                       rngs: list[np.random.Generator], log: Recovery
                       ) -> tuple[np.ndarray, np.ndarray]:
    """``beta`` with ``u`` integrated out, then ``u | beta``, per chain.

    :func:`~recipe_compiler.runtime.samplers.normal_2l.draw_effects` on the
    moments times ``weight`` (``1 / sigma2`` per chain): with ``P_c = Omega^-1 +
    w Z_c'Z_c``, ``beta`` has precision ``w X'X - sum_c w^2 X_c'Z_c P_c^-1 Z_c'X_c``,
    and ``u_c | beta ~ N(P_c^-1 w Z_c'(r_c - X_c beta), P_c^-1)``. Chain ``c``
    draws the noise of its kept coefficients, then of its ``u`` (cluster by
    cluster). Returns the coefficients (C, p) and ``u`` as (q, C, G).
    """
    q, d, chains, n_groups = std.ztx.shape
    keep = std.design.keep
    w = weight[:, None]
    chol_u = _small_cholesky(std.ztz * w + omega_inv.transpose(1, 2, 0)[..., None], log)
    ztx = std.ztx * w
    # P_c^-1 [Z_c'X_c, Z_c'r_c] in one pass of the two triangular solves
    solved = _solve_upper(chol_u, _solve_lower(chol_u, np.concatenate(
        [ztx, std.ztr[:, None] * w], axis=1)))
    left = ztx.transpose(2, 1, 0, 3).reshape(chains, d, q * n_groups)
    cross = left @ solved.transpose(2, 0, 3, 1).reshape(chains, q * n_groups, d + 1)
    gram = std.xtx * weight[:, None, None] - cross[..., :d]
    rhs = std.xtr * w - cross[..., d]
    chol_b = cholesky(gram, log, "marginal precision of the fixed effects", chains=True)
    kept = keep.sum(axis=1)
    if np.all(kept == d):  # the usual case: one draw per chain, no scatter
        draws = standard_normal(rngs, (d + n_groups * q,))
        z = draws[:, :d]
        noise = draws[:, d:].reshape(chains, n_groups, q).transpose(2, 0, 1)[:, None]
    else:
        z = np.zeros((chains, d))
        noise = np.empty((q, 1, chains, n_groups))
        for c, rng in enumerate(rngs):
            draws = rng.standard_normal(kept[c] + n_groups * q)
            z[c, keep[c]] = draws[:kept[c]]
            noise[:, 0, c] = draws[kept[c]:].reshape(n_groups, q).T
    half = np.linalg.solve(chol_b, rhs[..., None])
    coef = np.linalg.solve(np.swapaxes(chol_b, -1, -2), half + z[..., None])[..., 0]
    u = solved[:, d] + _solve_upper(chol_u, noise)[:, 0]
    for j in range(d):
        u -= solved[:, j] * coef[:, j, None]
    return coef, u


def _small_cholesky(a: np.ndarray, log: Recovery) -> np.ndarray:
    """Lower Cholesky factors of small matrices held entry by entry, ``(q, q, C, G)``,
    unrolled; through the jittered :func:`~..samplers.single.cholesky` if one is not
    positive definite."""
    q = a.shape[0]
    chol = np.zeros_like(a)
    for j in range(q):
        pivot = a[j, j] - sum(chol[j, k] ** 2 for k in range(j))
        if not (pivot > 0).all():
            jittered = cholesky(np.ascontiguousarray(a.transpose(2, 3, 0, 1)), log,
                                "cluster precision matrices", chains=True)
            return np.ascontiguousarray(jittered.transpose(2, 3, 0, 1))
        chol[j, j] = np.sqrt(pivot)
        for i in range(j + 1, q):
            chol[i, j] = (a[i, j] - sum(chol[i, k] * chol[j, k] for k in range(j))) / chol[j, j]
    return chol


def _solve_lower(chol: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``L x = b`` for ``L`` (q, q, C, G) and ``b`` (q, r, C, G), unrolled."""
    x = np.empty_like(b)
    for i in range(len(b)):
        acc = b[i].copy()
        for k in range(i):
            acc -= chol[i, k] * x[k]
        x[i] = acc / chol[i, i]
    return x


def _solve_upper(chol: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``L' x = b`` for ``L`` (q, q, C, G) and ``b`` (q, r, C, G), unrolled."""
    x = np.empty_like(b)
    q = len(b)
    for i in reversed(range(q)):
        acc = b[i].copy()
        for k in range(i + 1, q):
            acc -= chol[k, i] * x[k]
        x[i] = acc / chol[i, i]
    return x
