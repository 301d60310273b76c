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
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy import linalg, optimize

from ..errors import DataError
from .design import Design, build_design
from .lmm_result import LMMResult
from .lmm_units import WorkingUnits, centring, working_units

__all__ = ["SINGULAR_TOL", "LMMResult", "fit_design", "fit_lmm"]

SINGULAR_TOL = 1e-4
"""A diagonal element of ``theta`` below this marks a boundary (singular) fit, as
``lme4::isSingular(tol = 1e-4)``."""

_RANK_TOL = 1e-14
"""Smallest eigenvalue, relative to the largest, of a column-scaled cross-product
matrix that still counts as full rank: a condition number of the design up to
1e7, the rank tolerance lme4 applies to its QR decomposition."""

_START = 1.0
"""Starting value of the diagonal of the (column-scaled) ``Lambda``; its other
elements start at 0, as in lme4."""

_KKT_TOL = 1e-2
"""A derivative of the deviance in the relative covariance matrix with an
eigenvalue below ``-_KKT_TOL`` marks a saddle to escape from."""

_MAX_RESTARTS = 5
"""At most this many restarts from spurious optima."""

_GTOL = 1e-3
"""TNC's tolerance on the projected gradient of the deviance, scaled by ``1 +
|theta|``: ``theta`` to about 1e-8 on the reference models, beyond it the line
search only meets rounding noise."""


# ----------------------------------------------------------------------------- public fitters


def fit_lmm(formula: str, data: pd.DataFrame, *, reml: bool = False) -> LMMResult:
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
    reml : bool, default False
        Restricted maximum likelihood instead of maximum likelihood.

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


def fit_design(design: Design, *, reml: bool = False) -> LMMResult:
    """Fit a two-level linear mixed model given as design matrices.

    Minimises lme4's profiled deviance (ML or REML) over ``theta`` by a
    bounded truncated-Newton method with the analytic gradient, restarted from
    a better point while the optimum found is a spurious one (see
    :func:`_escape_point`).

    Parameters
    ----------
    design : Design
        Outcome, fixed and random design matrices and cluster codes.
    reml : bool, default False
        Restricted maximum likelihood instead of maximum likelihood.

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
    _check_design(design)
    cp = _cross_products(design)
    q, p = cp.q, cp.p
    _check_rank(cp.gram[q:q + p, q:q + p], design.X, design.x_names, "fixed-effects design X",
                shift=cp.units.x_shift)
    _check_rank(cp.gram[:q, :q], design.Z, design.z_names, "random-effects design Z")
    try:
        profile = _last_profile()
        res = _optimise(cp, reml, profile)
        return _result(design, cp, res.x, reml, converged=_converged(res), profile=profile)
    except np.linalg.LinAlgError as exc:
        raise DataError(f"the model of '{design.outcome}' cannot be fitted ({exc} in the "
                        "profiled deviance): its likelihood has no maximum, as when the fixed "
                        f"effects and '{design.cluster}' fit '{design.outcome}' exactly (to "
                        "within rounding)") from exc


# ----------------------------------------------------------------------------- checks


def _check_design(design: Design) -> None:
    """Raise a :class:`DataError` for a design the fitter cannot handle."""
    y, X, Z, g = design.y, design.X, design.Z, design.groups
    n = y.shape[0] if y.ndim == 1 else 0
    if n == 0:
        raise DataError(f"the design is empty or malformed: the outcome must be a non-empty "
                        f"1-d array, got shape {y.shape}")
    if X.ndim != 2 or Z.ndim != 2 or g.shape != (n,) or X.shape[0] != n or Z.shape[0] != n:
        raise DataError(f"design arrays disagree: y {y.shape}, X {X.shape}, Z {Z.shape}, "
                        f"groups {g.shape}; X and Z must be 2-d with one row per outcome value")
    if X.shape[1] != len(design.x_names) or Z.shape[1] != len(design.z_names):
        raise DataError("x_names/z_names must name every column of X/Z")
    if X.shape[1] == 0:
        raise DataError("the fixed-effects design has no column; include at least an intercept")
    if Z.shape[1] == 0:
        raise DataError("the random-effects design has no column; "
                        "a mixed model needs at least a random intercept")
    for name, a in (("outcome", y), ("X", X), ("Z", Z)):
        if not np.isfinite(a).all():
            raise DataError(f"{name} has NaN or infinite values; "
                            "only finite values are valid (drop or impute missing rows)")
    if (y == y[0]).all():
        raise DataError(f"the outcome '{design.outcome}' is constant ({float(y[0]):g} in every "
                        "row used): a mixed model needs an outcome that varies")
    G = design.n_groups
    valid = np.issubdtype(g.dtype, np.integer) and g.min() >= 0
    counts = np.bincount(g, minlength=G) if valid else np.array([-1])
    if counts.shape != (G,) or (counts == 0).any():
        raise DataError(f"cluster codes must be 0..{G - 1} with every cluster present")
    if G < 2:
        raise DataError(f"grouping factor '{design.cluster}' has {G} cluster; "
                        "a random-effects model needs at least 2 clusters")
    if n <= X.shape[1]:
        raise DataError(f"{n} observations for {X.shape[1]} fixed effects: "
                        "a model needs more observations than fixed effects")
    q = Z.shape[1]
    if n <= q * G:
        raise DataError(f"number of observations ({n}) <= number of random effects "
                        f"({q} x {G} clusters = {q * G}): the random-effects parameters and "
                        "the residual variance are unidentifiable; use fewer random slopes")


def _check_rank(gram: np.ndarray, a: np.ndarray, names: tuple[str, ...], what: str,
                shift: np.ndarray | None = None) -> None:
    """Raise a :class:`DataError` naming the aliased columns when ``a - shift`` (with
    cross-product matrix ``gram`` of its columns, up to column scaling) is rank
    deficient."""
    norms = np.sqrt(np.diag(gram))
    if (norms == 0).any():
        zero = [names[j] for j in np.flatnonzero(norms == 0)]
        raise DataError(f"{what} has all-zero columns: {', '.join(zero)}")
    eig = np.linalg.eigvalsh(gram / np.outer(norms, norms))
    if eig[0] > _RANK_TOL * eig[-1]:
        return
    a = a if shift is None else a - shift
    _, r, piv = linalg.qr(a / np.sqrt(np.einsum("ij,ij->j", a, a)), mode="economic",
                          pivoting=True)
    diag = np.abs(np.diag(r))
    rank = min(int((diag > np.sqrt(_RANK_TOL) * diag[0]).sum()), a.shape[1] - 1)
    aliased = [names[j] for j in piv[rank:]]
    raise DataError(f"{what} is rank deficient (rank {rank} of {a.shape[1]} columns); "
                    f"columns {', '.join(aliased)} are linear combinations of the others: "
                    "drop them")


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
    scale[scale == 0] = 1.0  # an all-zero column, reported by _check_rank
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


class _Parametrised(Protocol):
    """What the optimiser needs of a problem: the places of ``theta`` in a (block-diagonal)
    ``q x q`` matrix ``Lambda``; the multi-term fitter (:mod:`.lmm_multi`) supplies its own."""

    @property
    def tri(self) -> tuple[np.ndarray, np.ndarray]: ...

    @property
    def q(self) -> int: ...


class _Stationary(Protocol):
    """What the optimiser needs of a profile (see :func:`_profile`)."""

    @property
    def deviance(self) -> float: ...

    @property
    def gradient(self) -> np.ndarray: ...

    @property
    def m(self) -> np.ndarray: ...


def _lambda(theta: np.ndarray, cp: _Parametrised) -> np.ndarray:
    """The (scaled) relative covariance factor with lower triangle ``theta``."""
    lam = np.zeros((cp.q, cp.q))
    lam[cp.tri] = theta
    return lam


def _factor_blocks(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cholesky factors of a stack of small positive-definite ``a_c`` and ``L_c^-1 b_c``.

    One right-looking elimination of the rows of ``[a_c | b_c]``: row ``j`` is
    divided by the square root of its pivot, then its outer product is taken
    off the rows below.

    Returns
    -------
    upper : ndarray, shape (G, q, q)
        ``U_c = L_c'`` with ``a_c = L_c L_c'`` (upper triangles only).
    solved : ndarray, shape (G, q, k)
        ``L_c^-1 b_c``.
    """
    q = a.shape[-1]
    aug = np.concatenate([a, b], axis=2)
    for j in range(q):
        aug[:, j, j:] /= np.sqrt(aug[:, j, j, None])
        aug[:, j + 1:, j + 1:] -= aug[:, j, j + 1:q, None] * aug[:, j, None, j + 1:]
    return np.triu(aug[:, :, :q]), aug[:, :, q:]


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
    lam = _lambda(theta, cp)
    lt_t = np.matmul(lam.T, cp.zt_t)
    a = (lt_t[:, :, :q].reshape(-1, q) @ lam).reshape(-1, q, q)  # one product, not G
    a.reshape(-1, q * q)[:, :: q + 1] += 1.0
    upper, r = _factor_blocks(a, lt_t)
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


Profiler = Callable[[np.ndarray, Any, bool], _Stationary]
"""``profile(theta, cp, reml)``: the profiled deviance of problem ``cp`` at ``theta``."""


def _objective(theta: np.ndarray, cp: _Parametrised, reml: bool,
               profile: Profiler = _profile) -> tuple[float, np.ndarray]:
    prof = profile(theta, cp, reml)
    return prof.deviance, prof.gradient


def _optimise(cp: _Parametrised, reml: bool,
              profile: Profiler = _profile) -> optimize.OptimizeResult:
    """Minimise from :data:`_START`, restarting while the optimum is a spurious one."""
    rows, cols = cp.tri
    res = _minimise(np.where(rows == cols, _START, 0.0), cp, reml, profile)
    for _ in range(_MAX_RESTARTS):
        theta = _escape_point(res, cp, reml, profile)
        if theta is None:
            break
        trial = _minimise(theta, cp, reml, profile)
        if trial.fun >= res.fun:
            break
        res = trial
    return res


def _minimise(theta: np.ndarray, cp: _Parametrised, reml: bool,
              profile: Profiler = _profile) -> optimize.OptimizeResult:
    """Bounded truncated Newton (TNC) from ``theta``.

    TNC's C code calls no BLAS, so it does not stall on the threads of a busy
    machine as the tiny BLAS calls of L-BFGS-B can.
    """
    rows, cols = cp.tri
    bounds = [(0.0, None) if r == c else (None, None) for r, c in zip(rows, cols, strict=True)]
    return optimize.minimize(_objective, theta, args=(cp, reml, profile), jac=True, method="TNC",
                             bounds=bounds, options={"gtol": _GTOL, "maxfun": 2000})


def _escape_point(res: optimize.OptimizeResult, cp: _Parametrised, reml: bool,
                  profile: Profiler = _profile) -> np.ndarray | None:
    """A better ``theta`` to restart from when ``res.x`` is a spurious optimum, else None.

    The optimiser stops where the gradient in the free elements of ``theta``
    vanishes; two such points are not optima over covariance matrices ``Sigma
    = Lambda Lambda'``:

    * a zero diagonal ``Lambda_jj`` whose derivative ``2 sum_{k > j} M_jk
      Lambda_kj`` is positive: negating column ``j`` leaves ``Sigma`` and the
      deviance unchanged and makes that derivative negative;
    * a derivative ``M`` of the deviance in ``Sigma`` with a negative eigenvalue
      (a saddle, e.g. a zero column of ``Lambda``): ``Sigma + t v v'`` along its
      eigenvector ``v`` lowers the deviance for small ``t``.
    """
    rows, cols = cp.tri
    blocked = (rows == cols) & (res.x <= 0.0) & (res.jac > 0.0)
    if blocked.any():
        return np.where(np.isin(cols, cols[blocked]), -res.x, res.x)
    eigval, eigvec = np.linalg.eigh(profile(res.x, cp, reml).m)
    if eigval[0] >= -_KKT_TOL:
        return None
    lam = _lambda(res.x, cp)
    # a small ridge keeps Sigma + t step positive definite for the Cholesky factor
    step = np.outer(eigvec[:, 0], eigvec[:, 0]) + 1e-6 * np.eye(cp.q)
    for t in (1.0, 0.1, 0.01):
        theta = np.linalg.cholesky(lam @ lam.T + t * step)[cp.tri]
        if profile(theta, cp, reml).deviance < res.fun:
            return theta
    return None


def _converged(res: optimize.OptimizeResult) -> bool:
    """Success, or a stop (e.g. a failed line search) with a small projected gradient."""
    if res.success:
        return True
    free = (res.x > 0) | (res.jac < 0)
    return bool(np.abs(res.jac * (1 + np.abs(res.x)))[free].max(initial=0.0) < 10 * _GTOL)


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
    lam_scaled = _lambda(theta_scaled, cp)
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
