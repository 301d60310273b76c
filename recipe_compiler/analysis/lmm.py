"""Two-level linear mixed models fitted by the profiled deviance of lme4.

The model is ``y = X beta + Z b + e`` with one grouping factor, ``b_c ~ N(0,
sigma^2 Lambda Lambda')`` per cluster and ``e ~ N(0, sigma^2 I)``; ``Lambda`` is
the lower-triangular relative covariance factor whose elements, column by
column, form ``theta`` (Bates, Maechler, Bolker and Walker 2015, JSS 67(1),
section 3). The fixed effects and ``sigma^2`` are profiled out, so only
``theta`` is optimised, with its diagonal bounded below by 0.

Everything that does not depend on ``theta`` is computed once: the per-cluster
cross-products ``Z_c'[Z_c X_c y_c]`` (a ``(G, q, q + p + 1)`` array) and
``[X y]'[X y]``, with ``X`` and ``y`` centred and scaled (:mod:`.lmm_units`; the
estimates are mapped back exactly). One deviance evaluation is then a batched
factorisation of the ``G`` blocks ``I + Lambda' Z_c'Z_c Lambda`` and a ``(p + 1) x (p +
1)`` Cholesky factorisation, with the analytic gradient at little extra cost; nothing of size
``n x n`` and no Python loop over clusters or rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError
from .design import Design, build_design
from .lmm_core import (
    SINGULAR_TOL,
    check_design,
    check_rank,
    factor_blocks,
    has_converged,
    lambda_matrix,
    optimise,
)
from .lmm_result import LMMResult
from .lmm_units import WorkingUnits, centring, working_units

__all__ = ["SINGULAR_TOL", "LMMResult", "fit_design", "fit_lmm"]


# ----------------------------------------------------------------------------- public fitters


def fit_lmm(formula: str, data: pd.DataFrame, *, reml: bool = True) -> LMMResult:
    """Fit an lme4-style two-level model, ``y ~ x + cm(x) + (1 + x | g)``.

    ``rc.fit_lmm`` is :func:`recipe_compiler.analysis.lmm_multi.fit_lmm`, which also
    takes several grouping factors.

    Parameters
    ----------
    formula : str
        Model formula with one grouping factor (see
        :func:`recipe_compiler.analysis.design.build_design`).
    data : pandas.DataFrame
        Rows with a missing model variable are left out.
    reml : bool, default True
        Restricted maximum likelihood (lme4's ``lmer`` default); ``False`` for maximum
        likelihood (to compare models that differ in their fixed effects).

    Returns
    -------
    LMMResult

    Raises
    ------
    FormulaError
        A formula that cannot be parsed or is not a two-level mixed model.
    DataError
        A formula column missing from ``data``, or data the model cannot be
        fitted to (see :func:`fit_design`).
    """
    return fit_design(build_design(formula, data), reml=reml)


def fit_design(design: Design, *, reml: bool = True) -> LMMResult:
    """Fit a two-level linear mixed model given as design matrices.

    Minimises lme4's profiled deviance (ML or REML) over ``theta`` by a
    bounded truncated-Newton method with the analytic gradient, restarted from
    a better point while the optimum found is a spurious one (see
    :func:`~recipe_compiler.analysis.lmm_core.optimise`).

    Parameters
    ----------
    design : Design
        Outcome, fixed and random design matrices and cluster codes.
    reml : bool, default True
        Restricted maximum likelihood (lme4's ``lmer`` default); ``False`` for maximum
        likelihood (to compare models that differ in their fixed effects).

    Returns
    -------
    LMMResult
        A fit on the boundary of the parameter space (a variance at 0, a
        singular covariance matrix) is returned with ``boundary=True``.

    Raises
    ------
    DataError
        Empty or non-finite arrays, mismatched shapes, a constant outcome, fewer
        than two clusters, no more observations than fixed effects or than random
        effects, a rank-deficient fixed or random design (judged on the centred
        ``X``), or a likelihood without a maximum (an outcome that the fixed
        effects and the clusters fit exactly).
    """
    check_design(design)
    cp = _cross_products(design)
    q, p = cp.q, cp.p
    check_rank(cp.gram[q:q + p, q:q + p], design.X, design.x_names, "fixed-effects design X",
               shift=cp.units.x_shift)
    check_rank(cp.gram[:q, :q], design.Z, design.z_names, "random-effects design Z")
    try:
        profile = _last_profile()
        res = optimise(cp, reml, profile)
        return _result(design, cp, res.x, reml, converged=has_converged(res), profile=profile)
    except np.linalg.LinAlgError as exc:
        raise DataError(f"the model of '{design.outcome}' cannot be fitted ({exc} in the "
                        "profiled deviance): its likelihood has no maximum, as when the fixed "
                        f"effects and '{design.cluster}' fit '{design.outcome}' exactly (to "
                        "within rounding)") from exc


# ----------------------------------------------------------------------------- profiled deviance


@dataclass(frozen=True, eq=False)
class _CrossProducts:
    """Everything of the data a deviance evaluation needs.

    ``Z`` is used divided by ``scale`` (its column root mean squares), which
    conditions the optimisation; then ``Lambda = Lambda_scaled / scale[:, None]``.
    ``X`` and ``y`` are in the working ``units``; adding ``offsets`` (ML, REML) to the
    deviance in those units gives the deviance of the design.
    """

    zt_t: np.ndarray  # (G, q, q + p + 1): Z_c'[Z_c X_c y_c]
    gram: np.ndarray  # (q + p + 1, q + p + 1): [Z X y]'[Z X y]
    ztz_sum: np.ndarray  # (q, q): the Z'Z block of gram
    wtw: np.ndarray  # (p + 1, p + 1): the [X y]'[X y] block of gram
    scale: np.ndarray  # (q,)
    tri: tuple[np.ndarray, np.ndarray]  # row and column of each theta element in Lambda
    nobs: int
    p: int
    q: int
    units: WorkingUnits
    offsets: tuple[float, float]


def _cross_products(design: Design) -> _CrossProducts:
    """Per-cluster and total cross-products of the column-scaled ``Z`` and of ``X`` and
    ``y`` in working units.

    ``X`` and ``y`` are centred in the data; their scales, powers of two, are
    applied to the cross-products, which is exact.
    """
    Z = design.Z
    n, q = Z.shape
    p = design.X.shape[1]
    scale = np.sqrt(np.einsum("ij,ij->j", Z, Z) / n)
    scale[scale == 0] = 1.0  # an all-zero column, reported by check_rank
    W = np.column_stack([Z / scale, design.X, design.y])
    shift, intercept = centring(design.X, (np.ones(n) @ W)[q:])
    if intercept is not None:
        W -= np.concatenate([np.zeros(q), shift])  # all of W: faster than its [X y] columns
    with np.errstate(over="ignore", under="ignore"):  # out-of-range data: see working_units
        gram = W.T @ W
    units = working_units(design, shift, intercept, np.diag(gram)[q:] / n)
    inverse = np.concatenate([np.ones(q), 1.0 / units.x_scale, [1.0 / units.y_scale]])
    gram *= np.outer(inverse, inverse)
    groups = design.groups
    if (groups[1:] < groups[:-1]).any():  # rows in cluster order (small codes: radix sort)
        W = W[np.argsort(groups.astype(np.uint16) if design.n_groups <= 2**16 else groups,
                         kind="stable")]
    counts = np.bincount(groups, minlength=design.n_groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    zt_t = np.empty((len(starts), q, q + p + 1))
    for a in range(q):  # one (n, q + p + 1) temporary at a time; none for a column of ones
        zt_t[:, a] = np.add.reduceat(W if np.all(W[:, a] == 1.0) else W * W[:, a, None],
                                     starts, axis=0)
    zt_t *= inverse
    cols, rows = np.triu_indices(q)  # the lower triangle of Lambda, column by column
    return _CrossProducts(zt_t=zt_t, gram=gram, ztz_sum=gram[:q, :q], wtw=gram[q:, q:],
                          scale=scale, tri=(rows, cols), nobs=n, p=p, q=q, units=units,
                          offsets=(units.deviance_offset(n, False), units.deviance_offset(n, True)))


@dataclass(frozen=True, eq=False)
class _Profile:
    """The profiled quantities at one (scaled) ``theta``."""

    deviance: float
    gradient: np.ndarray
    m: np.ndarray  # (q, q): derivative of the deviance in Lambda Lambda'
    beta: np.ndarray
    pwrss: float
    schur: np.ndarray  # (p + 1, p + 1): [X y]' V^-1 [X y]
    upper: np.ndarray  # (G, q, q): U_c = L_c', A_c = L_c L_c'; the Cholesky factors
    r_e: np.ndarray  # (G, q): L_c^-1 Lambda' Z_c'(y_c - X_c beta)


def _profile(theta: np.ndarray, cp: _CrossProducts, reml: bool) -> _Profile:
    """Profiled deviance of lme4 (ML or REML) and its gradient in ``theta``.

    With ``A_c = I + Lambda' Z_c'Z_c Lambda = L_c L_c'``, ``V_c = I + Z_c Lambda
    Lambda' Z_c'`` (so ``|V_c| = |A_c|``, ``V_c^-1 = I - Z_c Lambda A_c^-1
    Lambda' Z_c'``) and ``R_c = L_c^-1 Lambda' Z_c'[Z_c X_c y_c]``, the matrix
    ``[X y]' V^-1 [X y] = [X y]'[X y] - sum_c R_c'R_c`` (restricted to its
    ``X y`` block) gives ``H = X' V^-1 X``, ``beta`` and the penalised residual
    sum of squares ``r2``. The deviance is ``sum log|A_c| + n (1 + log(2 pi r2 /
    n))`` for ML and ``sum log|A_c| + log|H| + (n - p) (1 + log(2 pi r2 / (n -
    p)))`` for REML. Its derivative in ``Lambda`` is ``2 M Lambda`` with ``M =
    sum_c (P_c - (n / r2) w_c w_c' - [REML] Q_c H^-1 Q_c')``, where ``P_c =
    Z_c'V_c^-1 Z_c``, ``Q_c = Z_c'V_c^-1 X_c`` and ``w_c = Z_c'V_c^-1 (y_c - X_c
    beta)``, all of the form ``Z_c'[.] - R_Zc' R_c[.]``.
    """
    q, p = cp.q, cp.p
    lam = lambda_matrix(theta, cp)
    lt_t = np.matmul(lam.T, cp.zt_t)
    a = (lt_t[:, :, :q].reshape(-1, q) @ lam).reshape(-1, q, q)  # one product, not G
    a.reshape(-1, q * q)[:, :: q + 1] += 1.0
    upper, r = factor_blocks(a, lt_t)
    flat = r.reshape(-1, q + p + 1)
    rr = flat.T @ flat
    schur = cp.wtw - rr[q:, q:]
    schur_low = np.linalg.cholesky(schur)
    r2 = float(schur_low[p, p] ** 2)
    beta = np.linalg.solve(schur[:p, :p], schur[:p, p])
    resid = np.concatenate([np.zeros(q), -beta, [1.0]])  # [Z X y] resid = y - X beta
    r_z = r[:, :, :q]
    r_e = (flat @ resid).reshape(-1, q)
    zt_e = (cp.zt_t.reshape(-1, q + p + 1) @ resid).reshape(-1, q)
    w = zt_e - np.einsum("gki,gk->gi", r_z, r_e)
    n_eff = cp.nobs - p if reml else cp.nobs
    m = cp.ztz_sum - rr[:q, :q] - (n_eff / r2) * (w.T @ w)
    logdet_a = 2.0 * np.log(upper.reshape(-1, q * q)[:, :: q + 1]).sum()
    deviance = logdet_a + n_eff * (1.0 + np.log(2.0 * np.pi * r2 / n_eff)) + cp.offsets[reml]
    if reml:
        qx = cp.zt_t[:, :, q:q + p] - np.matmul(r_z.transpose(0, 2, 1), r[:, :, q:q + p])
        qx_flat = qx.transpose(1, 0, 2).reshape(q, -1)
        m -= (qx @ np.linalg.inv(schur[:p, :p])).transpose(1, 0, 2).reshape(q, -1) @ qx_flat.T
        deviance += 2.0 * np.log(np.diagonal(schur_low)[:p]).sum()
    return _Profile(deviance=float(deviance), gradient=(2.0 * m @ lam)[cp.tri], m=m, beta=beta,
                    pwrss=r2, schur=schur, upper=upper, r_e=r_e)


# ----------------------------------------------------------------------------- result assembly


def _last_profile() -> Callable[[np.ndarray, _CrossProducts, bool], _Profile]:
    """:func:`_profile` remembering its last evaluation: the checks for a spurious optimum
    and the result assembly evaluate the optimiser's last point again."""
    last: dict[bytes, _Profile] = {}

    def profile(theta: np.ndarray, cp: _CrossProducts, reml: bool) -> _Profile:
        key = theta.tobytes()
        if key not in last:
            last.clear()
            last[key] = _profile(theta, cp, reml)
        return last[key]

    return profile


def _result(design: Design, cp: _CrossProducts, theta_scaled: np.ndarray, reml: bool,
            converged: bool,
            profile: Callable[[np.ndarray, _CrossProducts, bool], _Profile] = _profile
            ) -> LMMResult:
    prof = profile(theta_scaled, cp, reml)
    q, p, n = cp.q, cp.p, cp.nobs
    rows, cols = cp.tri
    lam_scaled = lambda_matrix(theta_scaled, cp)
    lam = lam_scaled / cp.scale[:, None]
    theta = lam[cp.tri]
    sigma2 = prof.pwrss / (n - p if reml else n)
    # back from the working units to those of the design
    beta, vcov = cp.units.fixef(prof.beta, sigma2 * np.linalg.inv(prof.schur[:p, :p]))
    y_scale = cp.units.y_scale
    sigma2 *= y_scale ** 2
    cov_re = sigma2 * lam @ lam.T
    # conditional modes b_c = Lambda L_c^-T L_c^-1 Lambda' Z_c'(y_c - X_c beta)
    u = y_scale * np.linalg.solve(prof.upper, prof.r_e[:, :, None])[:, :, 0]
    xn, zn = pd.Index(design.x_names), pd.Index(design.z_names)
    return LMMResult(
        fixef=pd.Series(beta, index=xn, name="estimate"),
        se=pd.Series(np.sqrt(np.diag(vcov)), index=xn, name="std_error"),
        vcov=pd.DataFrame(vcov, index=xn, columns=xn),
        cov_re=pd.DataFrame(cov_re, index=zn, columns=zn),
        sigma2=sigma2,
        loglik=-0.5 * prof.deviance,
        nobs=n,
        ngroups=design.n_groups,
        n_dropped=design.n_dropped,
        reml=reml,
        converged=converged,
        boundary=bool((theta[rows == cols] < SINGULAR_TOL).any()),
        theta=theta,
        x_names=design.x_names,
        z_names=design.z_names,
        outcome=design.outcome,
        cluster=design.cluster,
        df_complete=n - (p + q * (q + 1) // 2 + 1),
        random_effects=pd.DataFrame(u @ lam_scaled.T / cp.scale,
                                    index=pd.Index(design.group_labels, name=design.cluster),
                                    columns=zn),
    )
