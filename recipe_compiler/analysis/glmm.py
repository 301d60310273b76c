"""Two-level logistic mixed models fitted by lme4's Laplace approximation.

The model is ``logit P(y = 1 | b) = X beta + Z b`` with one grouping factor and
``b_c = Lambda u_c``, ``u_c ~ N(0, I)``; ``Lambda`` is the lower-triangular
factor of the random-effects covariance matrix whose elements, column by
column, form ``theta``, as in lme4 (Bates, Maechler, Bolker and Walker 2015,
JSS 67(1), section 3). The Laplace deviance

    D(theta, beta) = -2 log p(y | u*) + |u*|^2 + sum_c log|I + Lambda' Z_c'W_c Z_c Lambda|

at the conditional modes ``u*`` (:mod:`.laplace`, vectorised over clusters) is
``lme4::glmer(..., nAGQ = 1)``'s objective, which its second stage minimises
over ``theta`` and ``beta`` jointly. We minimise it from the logistic
regression without random effects with its analytic gradient by bounded
truncated Newton (TNC, whose C code calls no BLAS and so does not stall on the
threads of a busy machine, as L-BFGS-B does), then take Newton steps with the
finite-difference Hessian. The covariance of ``beta`` is glmer's: ``2
[H^-1]_beta`` with ``H`` that Hessian of ``D`` in ``(theta, beta)``, falling
back, as lme4 does with a warning, to the conditional ``(X'WX - X'WZ Lambda
H_c^-1 Lambda' Z'WX)^-1`` when it is not positive definite.

glmer's default tolerances (``tolPwrss = 1e-7`` on the relative change of the
penalised deviance) leave its conditional modes inexact, which moves its
Laplace deviance by up to a few hundredths; our modes are exact to 1e-10, so
our optimum agrees with glmer run with tight tolerances (see
``tests/regression/test_glmer_brandsma.py``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal, overload

import numpy as np
import pandas as pd
from scipy import optimize, special

from ..errors import DataError, one_of
from ..model.parse import parse_formula
from .design import Design, build_design
from .laplace import (
    FD_STEP,
    MAX_HALVING,
    Clusters,
    Mode,
    Objective,
    clusters,
    conditional_vcov,
    hessian,
)
from .lmm import LMMResult, fit_design
from .lmm_core import SINGULAR_TOL, START, check_design, check_rank
from .lmm_result import (
    fixed_effects_lines,
    random_effects_lines,
    varcorr_frame,
    variance_component_series,
)

__all__ = ["FAMILIES", "GLMMConvergenceWarning", "GLMMResult", "check_family", "fit_glmm",
           "fit_glmm_design"]

FAMILIES = ("binomial", "gaussian")
"""Valid ``family`` arguments: logistic (Laplace) or linear (ML) mixed models."""

_MAX_IRLS = 50
"""At most this many IRLS steps for the logistic regression that gives the start."""

_SEPARATION_PROB = 1e-8
"""A fitted probability (or its complement) below this in the logistic regression
without random effects marks (quasi-)complete separation, as R's glm warns of
probabilities 'numerically 0 or 1'."""

_GTOL = 1e-6
"""TNC's tolerance on the projected gradient of the deviance; TNC mostly stops
earlier, when the deviance no longer changes, and Newton steps finish the job."""

_MAX_FUN = 2000
"""At most this many deviance evaluations by TNC."""

_MAX_POLISH = 3
"""At most this many Newton steps after TNC."""

_CONVERGED_GRAD = 1e-3
"""A projected gradient of the deviance below this counts as converged (lme4
checks ``max |grad| < 2e-3`` after scaling by the Hessian)."""

_POLISHED_GRAD = 1e-7
"""Newton steps stop when the projected gradient is below this."""


class GLMMConvergenceWarning(UserWarning):
    """The Laplace fit did not converge, or its Hessian is not positive definite."""


# ----------------------------------------------------------------------------- result


@dataclass(frozen=True, eq=False)
class GLMMResult:
    """A fitted two-level logistic mixed model (lme4's ``glmer``, Laplace).

    Attributes
    ----------
    fixef, se : pandas.Series
        Fixed effects and their standard errors, indexed by ``x_names``.
    vcov : pandas.DataFrame
        The covariance matrix of ``fixef``, as lme4's ``vcov`` (see ``vcov_method``).
    vcov_method : {"hessian", "conditional"}
        ``"hessian"``: ``2 [H^-1]_beta`` with ``H`` the Hessian of the Laplace
        deviance in ``(theta, beta)`` (glmer's default); ``"conditional"``: the
        inverse of ``X'WX`` less its random-effects part at the conditional
        modes (lme4's fallback when ``H`` is not positive definite).
    cov_re : pandas.DataFrame
        The ``q x q`` covariance matrix of the random effects,
        ``Lambda Lambda'``, indexed by ``z_names``.
    loglik : float
        lme4's ``logLik``: minus half the Laplace deviance.
    nobs, ngroups, n_dropped : int
        Rows used, clusters, rows left out by listwise deletion.
    converged, boundary : bool
        The optimiser reached a vanishing projected gradient; some diagonal
        element of ``theta`` is below :data:`~recipe_compiler.analysis.lmm_core.SINGULAR_TOL`
        (lme4's ``isSingular``).
    theta : numpy.ndarray
        lme4's ``theta``: the lower triangle of ``Lambda``, column by column.
    x_names, z_names : tuple of str
        Names of the fixed and random effects.
    outcome, cluster : str
        Outcome and grouping column.
    df_complete : int
        Complete-data degrees of freedom as ``mice::pool`` obtains them for a
        glmer fit (``lme4:::df.residual.merMod``): ``nobs - p - q (q + 1) / 2``
        (no residual variance in a binomial model).
    random_effects : pandas.DataFrame
        Conditional modes of the random effects (lme4's ``ranef``), one row per
        cluster (indexed by its label), one column per random effect.
    family : str
        ``"binomial"`` (logit link).
    """

    fixef: pd.Series
    se: pd.Series
    vcov: pd.DataFrame
    vcov_method: str
    cov_re: pd.DataFrame
    loglik: float
    nobs: int
    ngroups: int
    n_dropped: int
    converged: bool
    boundary: bool
    theta: np.ndarray
    x_names: tuple[str, ...]
    z_names: tuple[str, ...]
    outcome: str
    cluster: str
    df_complete: int
    random_effects: pd.DataFrame
    family: str = "binomial"

    @property
    def varcorr(self) -> pd.DataFrame:
        """As lme4's ``as.data.frame(VarCorr(fit))`` of a glmer fit (no residual row).

        Columns ``grp``, ``var1``, ``var2``, ``vcov``, ``sdcor``: the variances
        in ``z_names`` order, then the covariances ``(i, j)``, ``i < j``, row by
        row, with correlations in ``sdcor``.
        """
        return varcorr_frame(self.cov_re.to_numpy(), self.z_names, self.cluster)

    def variance_components(self) -> pd.Series:
        """Variance components named as ``mitml::testEstimates(extra.pars = TRUE)``.

        Returns
        -------
        pandas.Series
            ``Intercept~~Intercept|sch``, ... (the variances), then the
            covariances in ``varcorr`` order. A binomial model has no residual
            variance, so (as mitml for a glmer fit) no ``Residual~~Residual``
            and no ``ICC``.
        """
        return variance_component_series(self.cov_re.to_numpy(), self.z_names, self.cluster)

    def summary(self) -> str:
        """A printable summary in the layout of lme4's ``print(fit)``."""
        lines = [
            "Generalized linear mixed model fit by maximum likelihood (Laplace approximation)",
            f"Family: {self.family} (logit)   Outcome: {self.outcome}   Cluster: {self.cluster}",
            f"logLik: {self.loglik:.4f}   converged: {self.converged}"
            + ("   boundary (singular) fit" if self.boundary else ""),
            "",
            "Random effects:",
        ]
        lines += random_effects_lines(self.cov_re.to_numpy(), self.z_names, self.cluster)
        lines.append(f"Number of obs: {self.nobs}, groups: {self.cluster}, {self.ngroups}"
                     + (f" ({self.n_dropped} rows with missing values dropped)"
                        if self.n_dropped else ""))
        lines += fixed_effects_lines(self.fixef, self.se, "z value")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


# ----------------------------------------------------------------------------- public fitters


@overload
def fit_glmm(formula: str, data: pd.DataFrame, *,
             family: Literal["binomial"] = ...) -> GLMMResult: ...


@overload
def fit_glmm(formula: str, data: pd.DataFrame, *, family: Literal["gaussian"]) -> LMMResult: ...


@overload
def fit_glmm(formula: str, data: pd.DataFrame, *,
             family: str) -> GLMMResult | LMMResult: ...


def fit_glmm(formula: str, data: pd.DataFrame, *,
             family: str = "binomial") -> GLMMResult | LMMResult:
    """Fit an lme4-style two-level generalised linear mixed model.

    ``family="binomial"`` is ``lme4::glmer(formula, family = binomial, nAGQ =
    1)``; ``family="gaussian"`` is the linear mixed model of
    :func:`~recipe_compiler.analysis.lmm.fit_lmm` by maximum likelihood.

    Parameters
    ----------
    formula : str
        Model formula with one random-effects group, e.g. ``"y ~ x + cm(x) + (1
        + x | g)"``.
    data : pandas.DataFrame
        Rows with a missing model variable are left out. A binomial outcome is
        0/1 (numeric or boolean).
    family : {"binomial", "gaussian"}, default "binomial"

    Returns
    -------
    GLMMResult or LMMResult
        :class:`GLMMResult` for ``"binomial"``, :class:`LMMResult` for ``"gaussian"``.

    Raises
    ------
    OptionError
        An unknown ``family``.
    FormulaError
        A formula that cannot be parsed or is not a two-level mixed model.
    DataError
        A formula column missing from ``data``, a binomial outcome that is not
        0/1, or data the model cannot be fitted to (see :func:`fit_glmm_design`).
    """
    check_family(family)
    if family == "binomial":
        outcome = parse_formula(formula).outcome
        if outcome in data.columns:
            column = data[outcome]
            if not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)):
                raise DataError(f"outcome '{outcome}' has dtype {column.dtype}; a binomial "
                                "outcome must be 0/1 numbers or booleans")
    return fit_glmm_design(build_design(formula, data), family=family)


def fit_glmm_design(design: Design, *, family: str = "binomial") -> GLMMResult | LMMResult:
    """Fit a two-level generalised linear mixed model given as design matrices.

    Parameters
    ----------
    design : Design
        Outcome, fixed and random design matrices and cluster codes.
    family : {"binomial", "gaussian"}, default "binomial"
        ``"gaussian"`` hands the design to
        :func:`~recipe_compiler.analysis.lmm.fit_design` (maximum likelihood).

    Returns
    -------
    GLMMResult or LMMResult
        A fit that did not converge is returned with ``converged=False`` and a
        :class:`GLMMConvergenceWarning`.

    Raises
    ------
    OptionError
        An unknown ``family``.
    DataError
        An outcome that is not 0/1 or is constant, fixed effects that
        separate the outcome (fitted probabilities numerically 0 or 1), and
        the design errors of :func:`~recipe_compiler.analysis.lmm.fit_design`.
    """
    check_family(family)
    if family == "gaussian":
        return fit_design(design, reml=False)
    check_design(design)
    _check_binary(design)
    check_rank(design.Z.T @ design.Z, design.Z, design.z_names, "random-effects design Z")
    cl = clusters(design)
    check_rank(cl.X.T @ cl.X, design.X, design.x_names, "fixed-effects design X",
               shift=cl.units.x_shift)
    beta0 = _logistic_start(cl, design)
    phi0 = np.concatenate([np.where(cl.tri[0] == cl.tri[1], START, 0.0), beta0])
    objective = Objective(cl)
    try:
        res = optimize.minimize(objective, phi0, jac=True, method="TNC", bounds=_bounds(cl),
                                options={"gtol": _GTOL, "maxfun": _MAX_FUN})
        phi, mode, hess = _polish(objective, res.x)
        return _result(design, cl, phi, mode, hess)
    except np.linalg.LinAlgError as exc:  # only with non-finite values of a diverging fit
        raise DataError(f"the logistic mixed model of '{design.outcome}' cannot be fitted: "
                        f"{exc} at the estimates; the fixed or random effects diverge "
                        "(near-separation within clusters): simplify the model") from exc


def check_family(family: str) -> None:
    """Raise an :class:`~recipe_compiler.errors.OptionError` unless ``family`` is in
    :data:`FAMILIES`."""
    if family not in FAMILIES:
        raise one_of("family", family, FAMILIES)


def _check_binary(design: Design) -> None:
    """Raise a :class:`DataError` unless the outcome is 0/1 (a constant one is refused by
    :func:`~recipe_compiler.analysis.lmm_core.check_design`)."""
    y = design.y
    bad = ~((y == 0) | (y == 1))
    if bad.any():
        shown = ", ".join(f"{v:g}" for v in np.unique(y[bad])[:5])
        raise DataError(f"outcome '{design.outcome}' has values other than 0 and 1 ({shown}); "
                        "a binomial model needs a 0/1 or boolean outcome")


def _bounds(cl: Clusters) -> list[tuple[float | None, float | None]]:
    """``theta_jj >= 0``; every other parameter is free."""
    rows, cols = cl.tri
    free: tuple[float | None, float | None] = (None, None)
    return [(0.0, None) if r == c else free for r, c in zip(rows, cols, strict=True)] + [
        free] * cl.p


def _logistic_start(cl: Clusters, design: Design) -> np.ndarray:
    """Logistic regression without random effects by IRLS: the starting ``beta`` (in
    working units).

    Raises a :class:`DataError` when the fixed effects separate the outcome:
    fitted probabilities numerically 0 or 1 (below :data:`_SEPARATION_PROB`),
    where the maximum-likelihood estimates do not exist.
    """
    X, y = cl.X, cl.y
    beta = np.zeros(X.shape[1])
    dev = np.inf
    for _ in range(_MAX_IRLS):
        eta = X @ beta
        mu = special.expit(eta)
        info = X.T @ ((mu * (1.0 - mu))[:, None] * X)
        step = np.linalg.lstsq(info, X.T @ (y - mu), rcond=None)[0]
        new_dev = dev
        for _ in range(MAX_HALVING):
            eta = X @ (beta + step)
            new_dev = 2.0 * float(np.sum(np.logaddexp(0.0, eta) - y * eta))
            if new_dev <= dev:
                break
            step /= 2.0
        beta = beta + step
        converged = dev - new_dev < 1e-10 * (abs(new_dev) + 0.1)
        dev = new_dev
        if converged:
            break
    mu = special.expit(X @ beta)
    extreme = np.minimum(mu, 1.0 - mu) < _SEPARATION_PROB
    if extreme.any():
        worst = [design.x_names[j] for j in np.argsort(-np.abs(beta))[:3]]
        raise DataError(f"the fixed effects separate outcome '{design.outcome}': "
                        f"{int(extreme.sum())} fitted probabilities are numerically 0 or 1, so "
                        "the maximum-likelihood estimates do not exist (largest standardised "
                        f"coefficients: {', '.join(worst)}); drop or merge the terms that "
                        "predict the outcome perfectly")
    return beta


# ----------------------------------------------------------------------------- result assembly


def _projected_gradient(phi: np.ndarray, gradient: np.ndarray, cl: Clusters) -> float:
    """Largest gradient component not blocked by a bound ``theta_jj >= 0``."""
    rows, cols = cl.tri
    lower = np.concatenate([rows == cols, np.zeros(cl.p, dtype=bool)])
    blocked = lower & (phi <= 0.0) & (gradient > 0.0)
    return float(np.abs(np.where(blocked, 0.0, gradient)).max())


def _polish(objective: Objective, phi: np.ndarray) -> tuple[np.ndarray, Mode, np.ndarray]:
    """Newton steps from ``phi`` with the finite-difference Hessian, while they lower the
    deviance; returns the point, its mode and the Hessian there.

    The Hessian is recomputed after a step only when the step is larger than the
    differencing step (else it is the Hessian at the end point to that accuracy).
    """
    cl = objective.cl
    mode = objective.mode(phi)
    hess = hessian(objective, phi)
    rows, cols = cl.tri
    lower = np.concatenate([rows == cols, np.zeros(cl.p, dtype=bool)])
    for _ in range(_MAX_POLISH):
        if _projected_gradient(phi, mode.gradient, cl) < _POLISHED_GRAD:
            break
        free = ~(lower & (phi <= 0.0) & (mode.gradient > 0.0))
        try:
            low = np.linalg.cholesky(hess[np.ix_(free, free)])
        except np.linalg.LinAlgError:  # not convex here: leave the point as TNC found it
            break
        trial = phi.copy()
        trial[free] -= np.linalg.solve(low.T, np.linalg.solve(low, mode.gradient[free]))
        trial[lower] = np.maximum(trial[lower], 0.0)
        step = np.abs(trial - phi) / np.maximum(1.0, np.abs(phi))
        new = objective.mode(trial)
        if not new.deviance <= mode.deviance:
            break
        phi, mode = trial, new
        if step.max() > FD_STEP:
            hess = hessian(objective, phi)
    return phi, mode, hess


def _vcov(hess: np.ndarray, mode: Mode, cl: Clusters) -> tuple[np.ndarray, str]:
    """glmer's covariance of ``beta``: ``2 [H^-1]_beta``, else the conditional one."""
    k = cl.ntheta
    try:
        inv = np.linalg.inv(hess)
    except np.linalg.LinAlgError:
        inv = np.full_like(hess, np.nan)
    vcov = cl.x_map @ (inv[k:, k:] + inv[k:, k:].T) @ cl.x_map.T
    if np.isfinite(vcov).all() and np.linalg.eigvalsh(vcov)[0] > 0:
        return vcov, "hessian"
    warnings.warn("the Hessian of the Laplace deviance is not positive definite (a boundary "
                  "or poorly identified fit); the covariance of the fixed effects is the "
                  "conditional one, as lme4 falls back to", GLMMConvergenceWarning,
                  stacklevel=4)
    return conditional_vcov(mode, cl), "conditional"


def _result(design: Design, cl: Clusters, phi: np.ndarray, mode: Mode,
            hess: np.ndarray) -> GLMMResult:
    gradient = _projected_gradient(phi, mode.gradient, cl)
    converged = mode.converged and gradient < _CONVERGED_GRAD
    if not converged:
        warnings.warn(f"the logistic mixed model of '{design.outcome}' did not converge "
                      f"(projected gradient of the deviance {gradient:.2g}); the estimates "
                      "may be unreliable: simplify the random part or rescale the predictors",
                      GLMMConvergenceWarning, stacklevel=3)
    vcov, method = _vcov(hess, mode, cl)
    q, p, k = cl.q, cl.p, cl.ntheta
    rows, cols = cl.tri
    lam_scaled = cl.lam(phi[:k])
    lam = lam_scaled / cl.scale[:, None]
    theta = lam[cl.tri]
    xn, zn = pd.Index(design.x_names), pd.Index(design.z_names)
    return GLMMResult(
        fixef=pd.Series(cl.x_map @ phi[k:], index=xn, name="estimate"),
        se=pd.Series(np.sqrt(np.diag(vcov)), index=xn, name="std_error"),
        vcov=pd.DataFrame(vcov, index=xn, columns=xn),
        vcov_method=method,
        cov_re=pd.DataFrame(lam @ lam.T, index=zn, columns=zn),
        loglik=-0.5 * mode.deviance,
        nobs=len(cl.y),
        ngroups=design.n_groups,
        n_dropped=design.n_dropped,
        converged=converged,
        boundary=bool((theta[rows == cols] < SINGULAR_TOL).any()),
        theta=theta,
        x_names=design.x_names,
        z_names=design.z_names,
        outcome=design.outcome,
        cluster=design.cluster,
        df_complete=len(cl.y) - p - q * (q + 1) // 2,
        random_effects=pd.DataFrame(mode.u @ lam_scaled.T / cl.scale,
                                    index=pd.Index(design.group_labels, name=design.cluster),
                                    columns=zn),
    )
