"""The Laplace deviance of a two-level logistic mixed model, vectorised over clusters.

For given ``(theta, beta)`` penalised iteratively reweighted least squares
(PIRLS) finds the spherical conditional modes ``u_c`` of every cluster at once:
each cluster's Newton step solves its own ``q x q`` system ``H_c = I + Lambda'
Z_c'W_c Z_c Lambda`` (a batched solve, with step halving per cluster). The
Laplace deviance is ``-2 log p(y | u) + |u|^2 + sum_c log|H_c|`` at the modes,
lme4's objective for ``glmer(..., nAGQ = 1)``; :func:`laplace` returns it with
its analytic gradient in ``(theta, beta)``, :func:`hessian` differences that
gradient. Everything is ``O(n q^2)``: per-row outer products summed per cluster
by ``np.add.reduceat`` on the rows sorted by cluster, no loop over clusters or rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from .design import Design
from .lmm_core import lambda_matrix
from .lmm_units import WorkingUnits, working_arrays

__all__ = ["MAX_HALVING", "Clusters", "Mode", "Objective", "clusters", "conditional_vcov",
           "hessian", "laplace"]

_PIRLS_TOL = 1e-10
"""PIRLS stops when no conditional mode moves more than this in a Newton step."""

_MAX_PIRLS = 50
"""At most this many Newton steps for the conditional modes."""

MAX_HALVING = 30
"""At most this many halvings of a cluster's Newton step that raises its objective."""

FD_STEP = 1e-4
"""Step of the central differences for the Hessian, relative to ``max(1, |x|)``
(lme4's ``deriv12`` uses 1e-4)."""


@dataclass(frozen=True, eq=False)
class Clusters:
    """The design sorted by cluster, with what every deviance evaluation reuses.

    ``Z`` is used divided by ``scale`` (its column root mean squares), as in the
    LMM fitter; then ``Lambda = Lambda_scaled / scale[:, None]``. ``X`` is used in
    the working ``units`` of the LMM fitters (:mod:`.lmm_units`: centred when it has an
    intercept, columns scaled by powers of two), so that ``beta = x_map @ beta_working``.
    """

    y: np.ndarray  # (n,)
    X: np.ndarray  # (n, p), working units
    units: WorkingUnits
    Z: np.ndarray  # (n, q), column-scaled
    zz: np.ndarray  # (n, q, q): z_i z_i'
    counts: np.ndarray  # (G,)
    starts: np.ndarray  # (G,): first row of each cluster
    scale: np.ndarray  # (q,)
    tri: tuple[np.ndarray, np.ndarray]  # row and column of each theta element in Lambda

    @property
    def p(self) -> int:
        return int(self.X.shape[1])

    @property
    def q(self) -> int:
        return int(self.Z.shape[1])

    @property
    def ntheta(self) -> int:
        return len(self.tri[0])

    @property
    def x_map(self) -> np.ndarray:
        """``A`` with ``X_working = X A`` (:attr:`.lmm_units.WorkingUnits.x_map`)."""
        return self.units.x_map

    def lam(self, theta: np.ndarray) -> np.ndarray:
        """The (scaled) relative covariance factor with lower triangle ``theta``."""
        return lambda_matrix(theta, self)

    def per_cluster(self, a: np.ndarray) -> np.ndarray:
        """Sums of ``a`` (rows in cluster order) over the rows of each cluster."""
        return np.add.reduceat(a, self.starts, axis=0)

    def per_row(self, a: np.ndarray) -> np.ndarray:
        """Each cluster's ``a[c]`` repeated for its rows."""
        return np.repeat(a, self.counts, axis=0)


def clusters(design: Design) -> Clusters:
    """The rows of ``design`` sorted by cluster, ``X`` in working units, with the per-row
    ``z_i z_i'``.

    Raises
    ------
    DataError
        A column of ``X`` that is constant but not the intercept, or out of range
        (:func:`~recipe_compiler.analysis.lmm_units.working_units`).
    """
    order = np.argsort(design.groups, kind="stable")
    units, X, _ = working_arrays(design)  # the outcome (0/1) keeps its units
    Z = design.Z[order]
    scale = np.sqrt(np.einsum("ij,ij->j", Z, Z) / Z.shape[0])
    Z = Z / scale
    counts = np.bincount(design.groups, minlength=design.n_groups)
    cols, rows = np.triu_indices(Z.shape[1])  # the lower triangle of Lambda, column by column
    return Clusters(y=design.y[order], X=X[order], units=units, Z=Z,
                    zz=Z[:, :, None] * Z[:, None, :], counts=counts,
                    starts=np.concatenate([[0], np.cumsum(counts)[:-1]]), scale=scale,
                    tri=(rows, cols))


@dataclass(frozen=True, eq=False)
class Mode:
    """The conditional modes at one ``(theta, beta)`` and the Laplace deviance there."""

    deviance: float
    gradient: np.ndarray  # in (theta_scaled, beta_working)
    u: np.ndarray  # (G, q): spherical conditional modes
    w: np.ndarray  # (n,): IRLS weights mu (1 - mu) at the modes
    m: np.ndarray  # (n, q): Z Lambda
    h_inv: np.ndarray  # (G, q, q): H_c^-1
    converged: bool  # PIRLS converged


def _penalised(u: np.ndarray, m: np.ndarray, offset: np.ndarray,
               cl: Clusters) -> tuple[np.ndarray, np.ndarray]:
    """Linear predictor and per-cluster ``-2 log p(y_c | u_c) + |u_c|^2``."""
    eta = offset + np.einsum("ij,ij->i", m, cl.per_row(u))
    dev = 2.0 * (np.logaddexp(0.0, eta) - cl.y * eta)
    return eta, cl.per_cluster(dev) + np.einsum("ij,ij->i", u, u)


def _weights(eta: np.ndarray, lam: np.ndarray,
             cl: Clusters) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``mu``, IRLS weights ``w = mu (1 - mu)``, ``A_c = Z_c'W_cZ_c`` and ``H_c = I +
    Lambda' A_c Lambda``."""
    mu = special.expit(eta)
    w = mu * (1.0 - mu)
    a = cl.per_cluster(w[:, None, None] * cl.zz)
    h = np.matmul(np.matmul(lam.T, a), lam)
    q = cl.q
    h.reshape(-1, q * q)[:, :: q + 1] += 1.0
    return mu, w, a, h


def laplace(phi: np.ndarray, cl: Clusters, u0: np.ndarray) -> Mode:
    """Laplace deviance at ``phi = (theta_scaled, beta_working)`` and its gradient.

    PIRLS from ``u0``: per cluster, Newton steps ``H_c^-1 (Lambda' Z_c'(y_c -
    mu_c) - u_c)``, halved while they raise the cluster's ``-2 log p + |u|^2``.

    The gradient follows from ``D = F(u*) + sum_c log|H_c(u*)|`` with ``F``
    stationary in ``u`` at the modes ``u*`` and ``du*/dphi = -H^-1 d^2F/(du
    dphi) / 2``. With ``r = y - mu``, ``w = mu (1 - mu)``, ``P_c = Lambda H_c^-1
    Lambda'``, ``s_i = z_i'P_c z_i w_i (1 - 2 mu_i)`` (the derivative of
    ``log|H_c|`` in ``eta_i``), ``v_c = H_c^-1 Lambda' Z_c's_c`` and ``e = -2 r
    + s - w Z Lambda v``, it is ``X'e`` in ``beta`` and ``sum_c [Z_c'e_c u_c' +
    Z_c'r_c v_c' + 2 A_c Lambda H_c^-1]`` in ``Lambda``, ``A_c = Z_c'W_cZ_c``.
    """
    theta, beta = phi[:cl.ntheta], phi[cl.ntheta:]
    lam = cl.lam(theta)
    m = cl.Z @ lam
    offset = cl.X @ beta
    u = u0
    eta, f = _penalised(u, m, offset, cl)
    converged = False
    for _ in range(_MAX_PIRLS):
        mu, w, a, h = _weights(eta, lam, cl)
        score = cl.per_cluster(m * (cl.y - mu)[:, None]) - u
        step = np.linalg.solve(h, score[:, :, None])[:, :, 0]
        if np.abs(step).max() <= _PIRLS_TOL:
            converged = True
            break
        t = np.ones(len(u))
        for _ in range(MAX_HALVING):
            trial = u + t[:, None] * step
            eta_t, f_t = _penalised(trial, m, offset, cl)
            worse = f_t > f + 1e-12 * (1.0 + np.abs(f))
            if not worse.any():
                break
            t = np.where(worse, t / 2.0, t)
        u, eta, f = trial, eta_t, f_t
    else:  # the weights and H at the modes of the last step
        mu, w, a, h = _weights(eta, lam, cl)
    low = np.linalg.cholesky(h)
    logdet = 2.0 * np.log(np.diagonal(low, axis1=1, axis2=2)).sum()
    h_inv = np.linalg.inv(h)
    r = cl.y - mu
    proj = np.matmul(np.matmul(lam, h_inv), lam.T)  # P_c
    s = np.einsum("ijk,ijk->i", cl.zz, cl.per_row(proj)) * w * (1.0 - 2.0 * mu)
    v = np.einsum("gij,gj->gi", h_inv, cl.per_cluster(m * s[:, None]))
    e = -2.0 * r + s - w * np.einsum("ij,ij->i", m, cl.per_row(v))
    zt = cl.per_cluster(cl.Z[:, :, None] * np.stack([e, r], axis=1)[:, None, :])  # (G, q, 2)
    grad_lam = (np.einsum("ga,gb->ab", zt[:, :, 0], u) + np.einsum("ga,gb->ab", zt[:, :, 1], v)
                + 2.0 * np.einsum("gij,jk,gkl->il", a, lam, h_inv))
    return Mode(deviance=float(f.sum() + logdet),
                gradient=np.concatenate([grad_lam[cl.tri], cl.X.T @ e]),
                u=u, w=w, m=m, h_inv=h_inv, converged=converged)


class Objective:
    """The Laplace deviance and its gradient, each PIRLS warm-started from the
    modes of the previous evaluation (the only state; it changes no result beyond
    the PIRLS tolerance)."""

    def __init__(self, cl: Clusters) -> None:
        self.cl = cl
        self.u = np.zeros((len(cl.counts), cl.q))

    def mode(self, phi: np.ndarray) -> Mode:
        mode = laplace(phi, self.cl, self.u)
        if np.isfinite(mode.u).all():
            self.u = mode.u
        return mode

    def __call__(self, phi: np.ndarray) -> tuple[float, np.ndarray]:
        mode = self.mode(phi)
        return mode.deviance, mode.gradient


def hessian(objective: Objective, phi: np.ndarray) -> np.ndarray:
    """Hessian of the deviance by central differences of its analytic gradient."""
    u = objective.u
    steps = FD_STEP * np.maximum(1.0, np.abs(phi))
    columns = []
    for k, step in enumerate(steps):
        delta = np.zeros_like(phi)
        delta[k] = step
        objective.u = u
        up = objective.mode(phi + delta).gradient
        objective.u = u
        down = objective.mode(phi - delta).gradient
        columns.append((up - down) / (2.0 * step))
    objective.u = u
    hess = np.column_stack(columns)
    return (hess + hess.T) / 2.0


def conditional_vcov(mode: Mode, cl: Clusters) -> np.ndarray:
    """``(X'WX - sum_c X_c'W_c Z_c Lambda H_c^-1 Lambda' Z_c'W_c X_c)^-1`` (lme4's RX),
    in the units of the design."""
    wx = mode.w[:, None] * cl.X
    xwm = cl.per_cluster(wx[:, :, None] * mode.m[:, None, :])  # (G, p, q)
    schur = cl.X.T @ wx - np.einsum("gai,gij,gbj->ab", xwm, mode.h_inv, xwm)
    return cl.x_map @ np.linalg.inv(schur) @ cl.x_map.T
