"""What the mixed-model fitters share: design checks, ``Lambda`` from ``theta``, the optimiser.

The linear fitters (:mod:`.lmm` with one grouping factor, :mod:`.lmm_multi` with
several) and the logistic one (:mod:`.glmm`) parametrise the random-effects covariance
by lme4's ``theta``: the elements of the lower-triangular relative covariance factor
``Lambda`` (block diagonal with several terms), column by column, with its diagonal
bounded below by 0 (Bates, Maechler, Bolker and Walker 2015, JSS 67(1), section 3).
This module holds

* the checks of a design every fitter makes (:func:`check_design`, :func:`check_rank`);
* :func:`lambda_matrix` (``theta`` to ``Lambda``) and :func:`factor_blocks` (batched
  Cholesky factors of the per-cluster blocks);
* the optimiser of the linear fitters' profiled deviance, :func:`optimise`: bounded
  truncated Newton from :data:`START`, restarted from spurious optima of the Cholesky
  parametrisation, and :func:`has_converged`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from scipy import linalg, optimize

from ..errors import DataError
from .design import Design

__all__ = ["MAX_RESTARTS", "SINGULAR_TOL", "START", "Parametrised", "Profiler", "Stationary",
           "check_design", "check_rank", "factor_blocks", "has_converged", "lambda_matrix",
           "optimise"]

SINGULAR_TOL = 1e-4
"""A diagonal element of ``theta`` below this marks a boundary (singular) fit, as
``lme4::isSingular(tol = 1e-4)``."""

START = 1.0
"""Starting value of the diagonal of the (column-scaled) ``Lambda``; its other
elements start at 0, as in lme4."""

MAX_RESTARTS = 5
"""At most this many restarts of :func:`optimise` from spurious optima."""

_RANK_TOL = 1e-14
"""Smallest eigenvalue, relative to the largest, of a column-scaled cross-product
matrix that still counts as full rank: a condition number of the design up to
1e7, the rank tolerance lme4 applies to its QR decomposition."""

_KKT_TOL = 1e-2
"""A derivative of the deviance in the relative covariance matrix with an
eigenvalue below ``-_KKT_TOL`` marks a saddle to escape from."""

_GTOL = 1e-3
"""TNC's tolerance on the projected gradient of the deviance, scaled by ``1 +
|theta|``: ``theta`` to about 1e-8 on the reference models, beyond it the line
search only meets rounding noise."""


# ----------------------------------------------------------------------------- checks


def check_design(design: Design) -> None:
    """Raise a :class:`~recipe_compiler.errors.DataError` for a design no fitter can handle.

    Parameters
    ----------
    design : Design
        Outcome, fixed and random design matrices and cluster codes of one
        random-effects term (the multi-term fitter checks each term with the fixed part).

    Raises
    ------
    DataError
        Empty or non-finite arrays, mismatched shapes, no fixed or no random column, a
        constant outcome, cluster codes that are not ``0..G-1`` with every cluster
        present, fewer than two clusters, no more observations than fixed effects or
        than random effects.
    """
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


def check_rank(gram: np.ndarray, a: np.ndarray, names: tuple[str, ...], what: str,
               shift: np.ndarray | None = None) -> None:
    """Raise a :class:`~recipe_compiler.errors.DataError` naming the aliased columns when
    ``a - shift`` is rank deficient.

    Parameters
    ----------
    gram : numpy.ndarray, shape (k, k)
        The cross-product matrix of the columns of ``a - shift``, up to column scaling
        (e.g. computed in working units).
    a : numpy.ndarray, shape (n, k)
        The design; only used (pivoted QR) to name the aliased columns.
    names : tuple of str
        Names of the columns of ``a``.
    what : str
        What ``a`` is, for the message (``"fixed-effects design X"``).
    shift : numpy.ndarray, shape (k,), optional
        Column shifts (the centring of the working units).

    Raises
    ------
    DataError
        All-zero columns, or a condition number of the column-scaled design above about
        1e7 (lme4's rank tolerance).
    """
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


# ----------------------------------------------------------------------------- Lambda


class Parametrised(Protocol):
    """A problem parametrised by ``theta``: the places of its elements in a
    (block-diagonal) ``q x q`` matrix ``Lambda``."""

    @property
    def tri(self) -> tuple[np.ndarray, np.ndarray]: ...

    @property
    def q(self) -> int: ...


class Stationary(Protocol):
    """What the optimiser needs of a profiled deviance at one ``theta``."""

    @property
    def deviance(self) -> float: ...

    @property
    def gradient(self) -> np.ndarray: ...

    @property
    def m(self) -> np.ndarray: ...


Profiler = Callable[[np.ndarray, Any, bool], Stationary]
"""``profile(theta, problem, reml)``: the profiled deviance of ``problem`` at ``theta``
(its gradient in ``theta`` and its derivative ``m`` in ``Lambda Lambda'``)."""


def lambda_matrix(theta: np.ndarray, problem: Parametrised) -> np.ndarray:
    """The relative covariance factor ``Lambda`` (``q x q``) whose elements at
    ``problem.tri`` are ``theta``, zero elsewhere."""
    lam = np.zeros((problem.q, problem.q))
    lam[problem.tri] = theta
    return lam


def factor_blocks(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cholesky factors of a stack of small positive-definite ``a_c`` and ``L_c^-1 b_c``.

    One right-looking elimination of the rows of ``[a_c | b_c]``: row ``j`` is
    divided by the square root of its pivot, then its outer product is taken
    off the rows below.

    Parameters
    ----------
    a : numpy.ndarray, shape (G, q, q)
        Positive-definite blocks (only their upper triangles are read).
    b : numpy.ndarray, shape (G, q, k)
        Right-hand sides.

    Returns
    -------
    upper : numpy.ndarray, shape (G, q, q)
        ``U_c = L_c'`` with ``a_c = L_c L_c'`` (upper triangles only).
    solved : numpy.ndarray, shape (G, q, k)
        ``L_c^-1 b_c``.
    """
    q = a.shape[-1]
    aug = np.concatenate([a, b], axis=2)
    for j in range(q):
        aug[:, j, j:] /= np.sqrt(aug[:, j, j, None])
        aug[:, j + 1:, j + 1:] -= aug[:, j, j + 1:q, None] * aug[:, j, None, j + 1:]
    return np.triu(aug[:, :, :q]), aug[:, :, q:]


# ----------------------------------------------------------------------------- optimiser


def optimise(problem: Parametrised, reml: bool, profile: Profiler) -> optimize.OptimizeResult:
    """Minimise the profiled deviance over ``theta``.

    Bounded truncated Newton from ``theta`` with diagonal :data:`START` (and 0
    elsewhere), restarted (at most :data:`MAX_RESTARTS` times) while the optimum
    found is a spurious one (see :func:`_escape_point`).

    Parameters
    ----------
    problem : Parametrised
        What ``profile`` evaluates the deviance of.
    reml : bool
        Passed on to ``profile``.
    profile : Profiler
        The profiled deviance with its gradient.

    Returns
    -------
    scipy.optimize.OptimizeResult
        ``x`` the (scaled) ``theta``, ``fun`` the deviance, ``jac`` its gradient.
    """
    rows, cols = problem.tri
    res = _minimise(np.where(rows == cols, START, 0.0), problem, reml, profile)
    for _ in range(MAX_RESTARTS):
        theta = _escape_point(res, problem, reml, profile)
        if theta is None:
            break
        trial = _minimise(theta, problem, reml, profile)
        if trial.fun >= res.fun:
            break
        res = trial
    return res


def has_converged(res: optimize.OptimizeResult) -> bool:
    """Success of :func:`optimise`, or a stop (e.g. a failed line search) with a small
    projected gradient."""
    if res.success:
        return True
    free = (res.x > 0) | (res.jac < 0)
    return bool(np.abs(res.jac * (1 + np.abs(res.x)))[free].max(initial=0.0) < 10 * _GTOL)


def _objective(theta: np.ndarray, problem: Parametrised, reml: bool,
               profile: Profiler) -> tuple[float, np.ndarray]:
    prof = profile(theta, problem, reml)
    return prof.deviance, prof.gradient


def _minimise(theta: np.ndarray, problem: Parametrised, reml: bool,
              profile: Profiler) -> optimize.OptimizeResult:
    """Bounded truncated Newton (TNC) from ``theta``.

    TNC's C code calls no BLAS, so it does not stall on the threads of a busy
    machine as the tiny BLAS calls of L-BFGS-B can.
    """
    rows, cols = problem.tri
    bounds = [(0.0, None) if r == c else (None, None) for r, c in zip(rows, cols, strict=True)]
    return optimize.minimize(_objective, theta, args=(problem, reml, profile), jac=True,
                             method="TNC", bounds=bounds,
                             options={"gtol": _GTOL, "maxfun": 2000})


def _escape_point(res: optimize.OptimizeResult, problem: Parametrised, reml: bool,
                  profile: Profiler) -> np.ndarray | None:
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
    rows, cols = problem.tri
    blocked = (rows == cols) & (res.x <= 0.0) & (res.jac > 0.0)
    if blocked.any():
        return np.where(np.isin(cols, cols[blocked]), -res.x, res.x)
    eigval, eigvec = np.linalg.eigh(profile(res.x, problem, reml).m)
    if eigval[0] >= -_KKT_TOL:
        return None
    lam = lambda_matrix(res.x, problem)
    # a small ridge keeps Sigma + t step positive definite for the Cholesky factor
    step = np.outer(eigvec[:, 0], eigvec[:, 0]) + 1e-6 * np.eye(problem.q)
    for t in (1.0, 0.1, 0.01):
        theta = np.linalg.cholesky(lam @ lam.T + t * step)[problem.tri]
        if profile(theta, problem, reml).deviance < res.fun:
            return theta
    return None
