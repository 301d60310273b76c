"""lme4's profiled deviance for several random-effects terms, by block elimination.

With terms ``k = 1..K`` (term ``k``: ``q_k`` random effects for each of the ``G_k``
levels of its grouping factor), ``Lambda`` is block diagonal with ``Lambda_k`` repeated
over the levels of term ``k``, and the penalised system is ``A = Lambda' Z'Z Lambda + I``
(Bates, Maechler, Bolker and Walker 2015, JSS 67(1), section 3). Its sparsity decides
how to factor it:

* Term 1 is the factor with the most levels (lme4 orders the terms so). Every row
  has one level of it, so the term-1 block ``A_11`` is block diagonal with ``q_1 x
  q_1`` blocks: a batched Cholesky factorisation ``L_1``. The other terms ("rest")
  are left to the Schur complement ``S = A_rr - B'B``, ``B = L_1^-1 A_1r``, whose
  order is the number of rest random effects, the smaller factors'.
* Levels that never share a row, directly or through a chain of rows, do not
  interact: ``A`` is block diagonal over the connected components of the graph of
  levels. Classes in schools give one component per school (``S`` is then block
  diagonal with ``q_school x q_school`` blocks); crossed raters and items give one
  component holding every item (``S`` is dense, of the order of the item effects).
  Each component is factored densely. Components of a size class (their numbers of
  term-1 levels within a factor 2) are padded to a common size (identity on the
  padding, which adds ``log 1 = 0``) and factored in one batch: a :class:`Block`.

The factorisation is exact. Its cost per deviance evaluation is ``O(G_1 q_1^3)`` for
the term-1 blocks plus, per component with ``J`` term-1 levels and ``m`` rest effects,
``O(J q_1 m^2 + m^3)``: for nested designs ``m`` is the handful of effects of one
school, for a crossed design the effects of the smaller factor. Padding at most doubles
the term-1 work; the rest effects of a component are padded to the largest in its class.

Alternatives: a dense Cholesky factorisation of all of ``A`` costs ``O(q^3)`` for ``q``
random effects, about ``3e12`` flops for the 100k-row three-level benchmark; scipy has no
sparse Cholesky, and ``splu`` (LU with a COLAMD ordering) is exact but twice the work
of a Cholesky factorisation, pivots, and gives solves and a determinant but not the
blocks of ``A^-1`` the analytic gradient needs; on these designs its fill is the same
Schur complement over the smaller factors. Eliminating the largest factor first (lme4
orders its terms so too) runs here as a few batched LAPACK calls. A sparse Cholesky
package would pay off only for crossed designs whose ``J q_1 m^2`` term dominates
(thousands of levels on both sides); none is used.

The analytic gradient uses, as :mod:`.lmm` does, the derivative of the deviance in
the relative covariance matrix of term ``k``, ``M_k = sum_l (P_ll - (n / r2) w_l w_l'
- [REML] Q_l H^-1 Q_l')`` over its levels ``l``, with ``P = Z'V^-1 Z``, ``w = Z'V^-1 (y -
X beta)``, ``Q = Z'V^-1 X``; the diagonal blocks of ``P = Z'Z - Y'Y`` come from ``Y =
L^-1 Lambda' Z'Z``, column block by column block, without forming ``A^-1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from scipy import linalg
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components

from .lmm_core import factor_blocks, lambda_matrix

_BATCH_SOLVE_MAX = 64
"""Components up to this order are solved in one batched LAPACK call; larger ones (a
crossed design: one big component) one at a time by triangular solves."""


@dataclass(frozen=True, eq=False)
class Block:
    """Cross-products of the rows of ``C`` components, padded to a common size.

    Component ``c`` holds up to ``J`` term-1 levels (slot ``j``) and ``m`` rest
    effects: for each rest term ``k`` up to ``G_k`` levels of ``q_k`` effects, at
    ``segments[k - 1] = (offset, G_k, q_k)``; ``Z`` is divided by the term's ``scale``.
    """

    t11: np.ndarray  # (C, J, q1, q1): Z_1j'Z_1j
    t1r: np.ndarray  # (C, J, q1, m): Z_1j'Z_r
    t1w: np.ndarray  # (C, J, q1, p + 1): Z_1j'[X y]
    trr: np.ndarray  # (C, m, m): Z_r'Z_r
    trw: np.ndarray  # (C, m, p + 1): Z_r'[X y]
    segments: tuple[tuple[int, int, int], ...]  # per rest term: (offset, G_k, q_k)


@dataclass(frozen=True, eq=False)
class Layout:
    """Everything of the data a deviance evaluation needs.

    ``Z`` is used divided by ``scale`` (the column root mean squares of each term),
    which conditions the optimisation; level ``l`` of term ``k`` is in block
    ``place[k][0][l]``, component ``place[k][1][l]``, slot ``place[k][2][l]``.
    """

    blocks: tuple[Block, ...]
    wtw: np.ndarray  # (p + 1, p + 1): [X y]'[X y]
    ztz: tuple[np.ndarray, ...]  # per term: Z_k'Z_k, the sum over its levels of Z_kl'Z_kl
    place: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]
    scale: tuple[np.ndarray, ...]  # per term: (q_k,)
    tri: tuple[np.ndarray, np.ndarray]  # places of theta in the block-diagonal Lambda
    q: int  # sum of q_k: the order of the block-diagonal Lambda
    nobs: int
    p: int

    @property
    def sizes(self) -> tuple[int, ...]:
        """``q_k`` of every term."""
        return tuple(s.shape[0] for s in self.scale)


def build_layout(y: np.ndarray, X: np.ndarray, zs: list[np.ndarray], codes: list[np.ndarray],
                 n_levels: list[int]) -> Layout:
    """Cross-products of ``[Z X y]`` in blocks of padded components.

    Parameters
    ----------
    y, X : ndarray
        Outcome ``(n,)`` and fixed design ``(n, p)``.
    zs, codes, n_levels : lists, one entry per term
        Random-effects design ``(n, q_k)``, level codes ``0 .. G_k - 1`` (every level
        present) and ``G_k``; term 1 must be the one with the most levels.
    """
    n = y.shape[0]
    scale = [np.sqrt(np.einsum("ij,ij->j", z, z) / n) for z in zs]
    scale = [np.where(s == 0, 1.0, s) for s in scale]  # an all-zero column is reported elsewhere
    zs = [z / s for z, s in zip(zs, scale, strict=True)]
    comp, n_comp = _components(codes, n_levels)
    slot = [_slots(c, n_comp) for c in comp]
    # size classes: ceil(log2(number of term-1 levels)) of each component
    size_class = np.frexp(np.bincount(comp[0], minlength=n_comp) - 1)[1]
    _, block = np.unique(size_class, return_inverse=True)
    n_blocks = int(block.max()) + 1
    local = _slots(block, n_blocks)
    W = np.column_stack([X, y])
    row_block = block[comp[0][codes[0]]]
    blocks = []
    for b in range(n_blocks):  # a few size classes
        rows = np.flatnonzero(row_block == b)
        blocks.append(_block(W[rows], [z[rows] for z in zs], local[comp[0][codes[0][rows]]],
                             [s[c[rows]] for s, c in zip(slot, codes, strict=True)],
                             int((block == b).sum())))
    sizes = [z.shape[1] for z in zs]
    base = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    tri_cols, tri_rows = zip(*(np.triu_indices(q) for q in sizes), strict=True)
    return Layout(
        blocks=tuple(blocks), wtw=W.T @ W, ztz=tuple(z.T @ z for z in zs),
        place=tuple((block[c], local[c], s) for c, s in zip(comp, slot, strict=True)),
        scale=tuple(scale),
        tri=(np.concatenate([r + o for r, o in zip(tri_rows, base[:-1], strict=True)]),
             np.concatenate([c + o for c, o in zip(tri_cols, base[:-1], strict=True)])),
        q=int(base[-1]), nobs=n, p=X.shape[1])


def _block(W: np.ndarray, zs: list[np.ndarray], comp: np.ndarray, slots: list[np.ndarray],
           n_comp: int) -> Block:
    """The padded cross-products of the rows of one block.

    ``comp`` is the component of each row within the block and ``slots[k]`` the slot of
    its level of term ``k`` within the component. One sparse matrix ``E`` holds each
    row's ``Z`` values at its component's padded coordinates; ``E'E`` and ``E'[X y]``
    are then scattered into the arrays.
    """
    n, P = W.shape
    sizes = [z.shape[1] for z in zs]
    J, q1 = int(slots[0].max()) + 1, sizes[0]
    widths = [(int(s.max()) + 1) * q for s, q in zip(slots[1:], sizes[1:], strict=True)]
    offsets = np.concatenate([[0], np.cumsum(widths)]).astype(int)
    m, jq = int(offsets[-1]), J * q1
    width = jq + m
    at = comp * width
    cols = [at[:, None] + slots[0][:, None] * q1 + np.arange(q1)]
    for k in range(1, len(zs)):
        start = jq + offsets[k - 1] + slots[k] * sizes[k]
        cols.append(at[:, None] + start[:, None] + np.arange(sizes[k]))
    total = sum(sizes)
    E = csr_matrix((np.column_stack(zs).ravel(), np.column_stack(cols).ravel(),
                    np.arange(0, n * total + 1, total)), shape=(n, n_comp * width))
    ete = (E.T @ E).tocoo()
    c, a, b, v = ete.row // width, ete.row % width, ete.col % width, ete.data
    t11, t1r = np.zeros((n_comp, J, q1, q1)), np.zeros((n_comp, J, q1, m))
    trr = np.zeros((n_comp, m, m))
    sel = (a < jq) & (b < jq)
    t11[c[sel], a[sel] // q1, a[sel] % q1, b[sel] % q1] = v[sel]
    sel = (a < jq) & (b >= jq)
    t1r[c[sel], a[sel] // q1, a[sel] % q1, b[sel] - jq] = v[sel]
    sel = (a >= jq) & (b >= jq)
    trr[c[sel], a[sel] - jq, b[sel] - jq] = v[sel]
    etw = np.asarray(E.T @ W).reshape(n_comp, width, P)
    return Block(t11=t11, t1r=t1r, t1w=etw[:, :jq].reshape(n_comp, J, q1, P), trr=trr,
                 trw=etw[:, jq:],
                 segments=tuple((int(offsets[k]), w // q, q) for k, (w, q)
                                in enumerate(zip(widths, sizes[1:], strict=True))))


def _components(codes: list[np.ndarray], n_levels: list[int]) -> tuple[list[np.ndarray], int]:
    """Component of every level of every term: connected components of the graph
    joining the term-1 level of each row to its levels of the other terms."""
    if len(codes) == 1:
        return [np.arange(n_levels[0])], n_levels[0]
    start = np.concatenate([[0], np.cumsum(n_levels)]).astype(int)
    src = np.tile(codes[0], len(codes) - 1)
    dst = np.concatenate([start[k] + codes[k] for k in range(1, len(codes))])
    graph = coo_matrix((np.ones(src.size), (src, dst)), shape=(start[-1], start[-1]))
    n_comp, label = connected_components(graph, directed=False)
    return [label[start[k]:start[k + 1]] for k in range(len(codes))], int(n_comp)


def _slots(group: np.ndarray, n_groups: int) -> np.ndarray:
    """Rank of each element among the elements of its group (``0 .. n_groups - 1``)."""
    order = np.argsort(group, kind="stable")
    counts = np.bincount(group, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.empty_like(order)
    slot[order] = np.arange(order.size) - starts[group[order]]
    return slot


# ----------------------------------------------------------------------------- one evaluation


@dataclass(frozen=True, eq=False)
class _Eliminated:
    """One block at one ``theta``: the factors and what the gradient needs of them."""

    upper1: np.ndarray  # (C * J, q1, q1): L_1' with A_1j = L_1 L_1'
    y11: np.ndarray  # (C, J, q1, q1): L_1^-1 Lambda_1' Z_1j'Z_1j
    b0: np.ndarray  # (C, J, q1, m): L_1^-1 Lambda_1' Z_1'Z_r; B = L_1^-1 A_1r = B0 Lambda_r
    c1: np.ndarray  # (C, J, q1, p + 1): L_1^-1 Lambda_1' Z_1'[X y]
    g0: np.ndarray  # (C, m, m): B0'B0
    h0: np.ndarray  # (C, m, p + 1): B0'c1
    low: np.ndarray  # (C, m, m): L_S, S = L_S L_S'
    rt1: np.ndarray  # (C, m, J q1) and
    rtr: np.ndarray  # (C, m, m): the rest rows of Y = L^-1 Lambda' Z'Z are L_S^-1 [rt1 | rtr]
    e: np.ndarray  # (C, m, p + 1): L_S^-1 (Lambda_r' Z_r'[X y] - B' c1)
    xt1: np.ndarray  # (C, m, J q1): L_S^-1 rt1
    xr: np.ndarray  # (C, m, m): L_S^-1 rtr


@dataclass(frozen=True, eq=False)
class Profile:
    """The profiled quantities at one (scaled) ``theta``; see :func:`profile`."""

    deviance: float
    gradient: np.ndarray
    m: np.ndarray  # block-diagonal derivative of the deviance in the relative covariances
    beta: np.ndarray
    pwrss: float
    schur: np.ndarray  # (p + 1, p + 1): [X y]' V^-1 [X y]
    lams: tuple[np.ndarray, ...]  # scaled Lambda_k
    parts: tuple[_Eliminated, ...]  # per block


def profile(theta: np.ndarray, lay: Layout, reml: bool) -> Profile:
    """lme4's profiled deviance (ML or REML) of ``theta`` (scaled) and its gradient.

    With ``L = [[L_1, 0], [B', L_S]]`` the Cholesky factor of ``A`` (module
    docstring), ``[c1; e] = L^-1 Lambda' Z'[X y]`` and ``[X y]' V^-1 [X y] = [X y]'[X
    y] - c1'c1 - e'e`` give ``beta``, the penalised residual sum of squares ``r2`` and
    ``log|X' V^-1 X|``; ``log|A| = 2 sum log diag(L_1) + 2 sum log diag(L_S)``.
    """
    lam_full = lambda_matrix(theta, lay)
    bounds = np.concatenate([[0], np.cumsum(lay.sizes)])
    lams = tuple(lam_full[i:j, i:j] for i, j in pairwise(bounds))
    parts = tuple(_eliminate(blk, lams) for blk in lay.blocks)
    P = lay.wtw.shape[0]
    p = P - 1
    schur = lay.wtw - sum(_gram(x.c1) + _gram(x.e) for x in parts)
    schur_low = np.linalg.cholesky(schur)
    r2 = float(schur_low[p, p] ** 2)
    beta = np.linalg.solve(schur[:p, :p], schur[:p, p])
    n_eff = lay.nobs - p if reml else lay.nobs
    logdet = 2.0 * sum(np.log(np.diagonal(x.upper1, axis1=1, axis2=2)).sum()
                       + np.log(np.diagonal(x.low, axis1=1, axis2=2)).sum() for x in parts)
    deviance = logdet + n_eff * (1.0 + np.log(2.0 * np.pi * r2 / n_eff))
    # phi weighs the outer products of G = Z'V^-1 [X y] in the gradient
    v = np.concatenate([-beta, [1.0]])
    phi = (n_eff / r2) * np.outer(v, v)
    if reml:
        deviance += 2.0 * np.log(np.diagonal(schur_low)[:p]).sum()
        phi[:p, :p] += np.linalg.inv(schur[:p, :p])
    mm = np.zeros((lay.q, lay.q))
    for (i, j), ztz in zip(pairwise(bounds), lay.ztz, strict=True):
        mm[i:j, i:j] = ztz
    for blk, x in zip(lay.blocks, parts, strict=True):
        for (i, j), minus in zip(pairwise(bounds), _m_parts(blk, x, phi), strict=True):
            mm[i:j, i:j] -= minus
    return Profile(deviance=float(deviance), gradient=(2.0 * mm @ lam_full)[lay.tri], m=mm,
                   beta=beta, pwrss=r2, schur=schur, lams=lams, parts=parts)


def _eliminate(blk: Block, lams: tuple[np.ndarray, ...]) -> _Eliminated:
    """Factor the components of one block: term 1 by batched blocks, then the rest."""
    lam1, rest = lams[0], lams[1:]
    C, J, q1, m = blk.t1r.shape
    P, jq = blk.t1w.shape[3], J * q1
    # term 1: batched factors of A_1j = I + Lambda_1' Z_1j'Z_1j Lambda_1
    a11 = lam1.T @ blk.t11 @ lam1
    a11.reshape(-1, q1 * q1)[:, :: q1 + 1] += 1.0
    rhs = lam1.T @ np.concatenate([blk.t11, blk.t1r, blk.t1w], axis=3)
    upper1, solved = factor_blocks(a11.reshape(-1, q1, q1), rhs.reshape(C * J, q1, -1))
    solved = solved.reshape(C, J, q1, -1)
    y11, b0, c1 = solved[..., :q1], solved[..., q1:q1 + m], solved[..., q1 + m:]
    b0f, c1f = b0.reshape(C, jq, m), c1.reshape(C, jq, P)
    # B = B0 Lambda_r: B'B, B'B0 and B'c1 from B0'B0 and B0'c1, one product each
    g0 = b0f.transpose(0, 2, 1) @ b0f
    h0 = b0f.transpose(0, 2, 1) @ c1f
    # the rest: S = I + Lambda_r' (Z_r'Z_r - B0'B0) Lambda_r per component
    rtr = _left(blk.trr - g0, rest, blk)
    s = _right(rtr, rest, blk)
    s.reshape(C, m * m)[:, :: m + 1] += 1.0
    low = np.linalg.cholesky(s)
    d = _left(blk.trw - h0, rest, blk)
    rt1 = _left((blk.t1r.swapaxes(2, 3) - b0.swapaxes(2, 3) @ y11).transpose(0, 2, 1, 3)
                .reshape(C, m, jq), rest, blk)
    x = _tri_solve(low, np.concatenate([d, rt1, rtr], axis=2))
    return _Eliminated(upper1=upper1, y11=y11, b0=b0, c1=c1, g0=g0, h0=h0, low=low, rt1=rt1,
                       rtr=rtr, e=x[..., :P], xt1=x[..., P:P + jq], xr=x[..., P + jq:])


def _m_parts(blk: Block, x: _Eliminated, phi: np.ndarray) -> list[np.ndarray]:
    """What one block takes off ``M_k = Z_k'Z_k - sum_l (Y'Y)_ll - sum_l G_l phi G_l'``
    of every term: the diagonal blocks of ``Y'Y`` and ``G phi G'`` over its levels, with
    ``G = Z'V^-1 [X y] = Z'[X y] - Y'[c1; e]``."""
    C, J, q1, m = blk.t1r.shape
    P = blk.t1w.shape[3]
    f = _tri_solve(x.low, x.e, transpose=True)
    g1 = blk.t1w - x.y11.swapaxes(2, 3) @ x.c1 - (x.rt1.transpose(0, 2, 1) @ f).reshape(
        C, J, q1, P)
    gr = blk.trw - x.h0 - x.rtr.transpose(0, 2, 1) @ f
    out = [_gram(x.y11) + _gram(x.xt1.reshape(C, m, J, q1)) + _weighted_gram(g1, phi)]
    for off, g, q in blk.segments:
        g0s = x.g0[:, off:off + g * q, off:off + g * q].reshape(C, g, q, g, q)
        xrs = x.xr[..., off:off + g * q].reshape(C, m, g, q)
        grs = gr[:, off:off + g * q].reshape(C, g, q, P)
        out.append(np.einsum("cgagb->ab", g0s) + _gram(xrs) + _weighted_gram(grs, phi))
    return out


def modes(prof: Profile, lay: Layout) -> list[np.ndarray]:
    """Conditional modes of the random effects (lme4's ``ranef``) in the units of ``Z``.

    ``u = A^-1 Lambda' Z'(y - X beta)`` by back substitution with ``L'``, then ``b_k =
    Lambda_k u_k`` per level.

    Returns
    -------
    list of ndarray
        Per term, shape ``(G_k, q_k)`` in level-code order.
    """
    v = np.concatenate([-prof.beta, [1.0]])
    out = [np.empty((len(place[0]), q)) for place, q in zip(lay.place, lay.sizes, strict=True)]
    for b, (blk, x) in enumerate(zip(lay.blocks, prof.parts, strict=True)):
        C, J, q1, _ = blk.t1r.shape
        ur = _tri_solve(x.low, (x.e @ v)[:, :, None], transpose=True)[:, :, 0]
        lam_ur = _right(ur, tuple(lam.T for lam in prof.lams[1:]), blk)  # Lambda_r u_r
        r1 = x.c1 @ v - (x.b0 @ lam_ur[:, None, :, None])[..., 0]
        u1 = np.linalg.solve(x.upper1, r1.reshape(C * J, q1, 1)).reshape(C, J, q1)
        per_term = [u1]
        for off, g, q in blk.segments:
            per_term.append(ur[:, off:off + g * q].reshape(C, g, q))
        for k, u in enumerate(per_term):
            sel = lay.place[k][0] == b
            out[k][sel] = (u @ prof.lams[k].T)[lay.place[k][1][sel], lay.place[k][2][sel]]
    return [b / s for b, s in zip(out, lay.scale, strict=True)]


def _gram(a: np.ndarray) -> np.ndarray:
    """``sum a[..., i] a[..., j]`` over all leading axes: one BLAS product."""
    flat = a.reshape(-1, a.shape[-1])
    return flat.T @ flat


def _weighted_gram(g: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """``sum_l g_l phi g_l'`` over the stack of ``(q, k)`` matrices ``g_l`` (leading axes)."""
    q, k = g.shape[-2:]
    gp = (g.reshape(-1, k) @ phi).reshape(g.shape)
    return np.moveaxis(gp, -2, 0).reshape(q, -1) @ np.moveaxis(g, -2, 0).reshape(q, -1).T


def _right(x: np.ndarray, lams: tuple[np.ndarray, ...], blk: Block) -> np.ndarray:
    """``x Lambda_r``: the last axis (rest effects) times the block-diagonal rest factor."""
    if not lams:
        return x
    parts = []
    for lam, (off, g, q) in zip(lams, blk.segments, strict=True):
        seg = x[..., off:off + g * q]
        parts.append((seg.reshape(*seg.shape[:-1], g, q) @ lam).reshape(seg.shape))
    return np.concatenate(parts, axis=-1)


def _left(x: np.ndarray, lams: tuple[np.ndarray, ...], blk: Block) -> np.ndarray:
    """``Lambda_r' x``: axis 1 (rest effects) of a ``(C, m, k)`` stack times ``Lambda_r'``."""
    return _right(x.transpose(0, 2, 1), lams, blk).transpose(0, 2, 1)


def _tri_solve(low: np.ndarray, rhs: np.ndarray, transpose: bool = False) -> np.ndarray:
    """``L_c^-1 rhs_c`` (or ``L_c^-T rhs_c``) for a stack of lower-triangular ``L_c``."""
    m = low.shape[-1]
    if m == 0:
        return rhs
    if m <= _BATCH_SOLVE_MAX:
        return np.linalg.solve(low.transpose(0, 2, 1) if transpose else low, rhs)
    return np.stack([linalg.solve_triangular(a, r, lower=True, trans=1 if transpose else 0)
                     for a, r in zip(low, rhs, strict=True)])
