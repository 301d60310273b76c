"""Single-level Bayesian imputation samplers, as mice's norm, pmm, logreg and polyreg.

The same functions impute level-2 variables (``2lonly.norm``, ``2lonly.pmm``,
``2lonly.polyreg``) when the caller passes cluster-level arrays.

norm and pmm are batched (:func:`draw_regression_batch`, the Gibbs loop's
sampler); :func:`draw_norm` and :func:`draw_pmm` are one chain's call.

This module also holds pieces shared with the two-level samplers (with
:mod:`.common`, whose :class:`~.common.Recovery` and checks it re-exports):

* :func:`fixed_design` centres the fixed-effects design of the observed rows
  and drops constant and aliased columns (pivoted Cholesky of the correlation
  matrix), so every later solve is well conditioned;
* :func:`draw_coefficients` draws ``N(A^-1 b, s^2 A^-1)`` from a Cholesky
  factor: the Bayesian regression step of norm, pmm and the Gibbs samplers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_solve, solve_triangular

from ...errors import SamplerError
from .common import (
    CONST_TOL,
    Recovery,
    as_batch,
    check_finite,
    check_observed,
    independent_columns,
    standard_normal,
    standardised,
)
from .matching import match_donors_batch
from .registry import TargetBatch, register

__all__ = ["Recovery", "check_finite", "check_observed", "draw_logreg", "draw_norm",
           "draw_pmm", "draw_polyreg", "draw_regression_batch"]

#: Newton iterations of the (multinomial) logistic fit.
NEWTON_MAX_ITER = 50


@dataclass(frozen=True, eq=False)
class FixedDesign:
    """Centred fixed-effects design of the observed rows, constant and aliased columns removed.

    The model ``X beta`` is reparametrised as ``coef[0] + sum_j coef[j] *
    (X[:, keep[j-1]] - center[j-1])``; constant and aliased columns of ``X``
    (other than the intercept) get coefficient zero, as mice does. Centring
    makes the intercept orthogonal to the other columns; scaling is left to
    the Cholesky factorisations, whose accuracy does not depend on the column
    scales (van der Sluis), and to the priors that need it (``scale``).

    Attributes
    ----------
    xs : ndarray, shape (n_obs, k + 1)
        A column of ones, then the centred kept columns.
    gram : ndarray, shape (k + 1, k + 1)
        ``xs' xs``.
    keep : ndarray of int, shape (k,)
        Columns of ``X`` kept, in increasing order.
    center, scale : ndarray, shape (k,)
        Mean and standard deviation of the kept columns over the observed rows.
    intercept : int
        Column of ``X`` that carries the intercept (constant, non-zero).
    intercept_value : float
        Its constant value.
    n_columns : int
        Number ``p`` of columns of ``X``.
    """

    xs: np.ndarray
    gram: np.ndarray
    keep: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    intercept: int
    intercept_value: float
    n_columns: int

    def rows(self, x: np.ndarray) -> np.ndarray:
        """The centred design (with leading ones) of other rows ``x`` of X."""
        out = np.empty((x.shape[0], len(self.keep) + 1))
        out[:, 0] = 1.0
        np.subtract(x[:, self.keep], self.center, out=out[:, 1:])
        return out

    def beta(self, coef: np.ndarray) -> np.ndarray:
        """Coefficients ``(p,)`` on the columns of X equivalent to ``coef``."""
        beta = np.zeros(self.n_columns)
        beta[self.keep] = coef[1:]
        beta[self.intercept] = (coef[0] - coef[1:] @ self.center) / self.intercept_value
        return beta


def fixed_design(x_obs: np.ndarray, log: Recovery) -> FixedDesign:
    """Centre the observed rows of X and drop constant and aliased columns.

    At most ``n_obs - 1`` coefficients are kept (the most linearly independent
    ones first), so a residual degree of freedom always remains.

    Parameters
    ----------
    x_obs : ndarray, shape (n_obs, p)
        Fixed design of the observed rows, including an intercept column.
    log : Recovery
        Receives a note for every dropped column.

    Raises
    ------
    SamplerError
        X has no intercept column or non-finite values.
    """
    n, p = x_obs.shape
    center = np.ones(n) @ x_obs / n
    xc = x_obs - center
    cross = xc.T @ xc
    if not np.isfinite(cross).all():
        raise SamplerError(f"imputing '{log.name}': predictors of the observed rows are "
                           "not finite")
    var = np.diag(cross) / n
    constant = var <= (CONST_TOL * center) ** 2
    carriers = np.flatnonzero(constant & (center != 0))
    if carriers.size == 0:
        raise SamplerError(f"imputing '{log.name}': X has no intercept (constant, non-zero) "
                           "column")
    intercept = int(carriers[0])
    dropped = constant.copy()
    dropped[intercept] = False
    if dropped.any():
        log.note(f"dropped constant predictor column(s) {np.flatnonzero(dropped).tolist()} of X")
    candidates = np.flatnonzero(~constant)
    scale = np.sqrt(var[candidates])
    corr = cross[candidates][:, candidates] / np.outer(scale, scale) / n
    order = independent_columns(corr)
    if len(order) < len(candidates):
        aliased = np.ones(len(candidates), dtype=bool)
        aliased[order] = False
        log.note(f"dropped aliased (collinear) predictor column(s) "
                 f"{candidates[aliased].tolist()} of X")
    if len(order) > n - 2:
        log.note(f"only {n} observed values: kept {n - 2} of {len(order)} predictor columns")
        order = order[: n - 2]
    order = np.sort(order)
    keep = candidates[order]
    if intercept == 0 and np.array_equal(keep, np.arange(1, p)):
        xs = xc  # the usual layout: no column gather
    else:
        xs = np.empty((n, len(keep) + 1))
        xs[:, 1:] = xc[:, keep]
    xs[:, 0] = 1.0
    gram = np.zeros((len(keep) + 1, len(keep) + 1))
    gram[0, 0] = n
    gram[1:, 1:] = cross[keep][:, keep]
    return FixedDesign(xs=xs, gram=gram, keep=keep, center=center[keep], scale=scale[order],
                       intercept=intercept, intercept_value=float(center[intercept]),
                       n_columns=p)


def cholesky(a: np.ndarray, log: Recovery, what: str, chains: bool = False) -> np.ndarray:
    """Lower Cholesky factor(s) of ``a`` (shape (..., d, d)), jittered if not PD.

    If the factorisation fails, ``jitter * I`` is added to every matrix, the
    jitter growing tenfold from ``1e-10`` times the mean absolute diagonal until
    it succeeds; a note names ``what`` was jittered. With ``chains``, the first
    axis of ``a`` is a batch of chains, and each chain is jittered on its own
    (as if it were factorised alone).

    Raises
    ------
    SamplerError
        Still not positive definite with a jitter of 100 times the diagonal.
    """
    try:
        return np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        if chains:
            return np.stack([cholesky(chain, log, what) for chain in a])
    sym = (a + np.swapaxes(a, -1, -2)) / 2
    if not np.isfinite(sym).all():
        raise SamplerError(f"imputing '{log.name}': the {what} is not finite")
    base = max(float(np.mean(np.abs(np.diagonal(sym, axis1=-2, axis2=-1)))),
               np.finfo(float).tiny)
    eye = np.eye(a.shape[-1])
    for power in range(-10, 3):
        jitter = base * 10.0**power
        try:
            chol = np.linalg.cholesky(sym + jitter * eye)
        except np.linalg.LinAlgError:
            continue
        log.note(f"added jitter {jitter:.1e} to the non-positive-definite {what}")
        return chol
    raise SamplerError(f"imputing '{log.name}': the {what} is not positive definite "
                       "even after adding jitter")


def precision_noise(chol: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw of ``N(0, A^-1)`` given the lower Cholesky factor ``chol`` of ``A``."""
    z = rng.standard_normal(chol.shape[0])
    return solve_triangular(chol, z, lower=True, trans="T", check_finite=False)


def draw_coefficients(chol: np.ndarray, rhs: np.ndarray, scale: float,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Mean and one draw of ``N(A^-1 rhs, scale^2 A^-1)``, ``A = chol chol'``.

    With ``A = X'X`` and ``rhs = X'y`` this is the regression step of a
    Bayesian linear model with a flat prior on the coefficients.
    """
    mean = cho_solve((chol, True), rhs, check_finite=False)
    return mean, mean + scale * precision_noise(chol, rng)


def draw_norm(y: np.ndarray, observed: np.ndarray, X: np.ndarray, rng: np.random.Generator,
              *, name: str = "y") -> np.ndarray:
    """Impute by Bayesian linear regression (mice ``norm``, Rubin 1987 p. 167).

    Draws ``sigma^2 ~ RSS / chi^2(n_obs - k)`` and ``beta ~ N(beta_hat,
    sigma^2 (X'X)^-1)``, then ``y_mis = X_mis beta + N(0, sigma^2)``.

    Parameters
    ----------
    y : ndarray, shape (n,)
        Current values; entries where ``~observed`` are ignored.
    observed : ndarray of bool, shape (n,)
    X : ndarray, shape (n, p)
        Predictors including an intercept column.
    rng : numpy.random.Generator
    name : str
        The target's name, for warnings and errors.

    Returns
    -------
    ndarray, shape (n_missing,)
        Imputations for ``y[~observed]``, in that order.

    Raises
    ------
    SamplerError
        Fewer than two observed values, or non-finite inputs.
    """
    batch, _ = as_batch(y, observed, X, None, None, name)
    return draw_regression_batch(batch, [rng], pmm=False)[0]


def draw_pmm(y: np.ndarray, observed: np.ndarray, X: np.ndarray, rng: np.random.Generator,
             *, donors: int = 5, name: str = "y") -> np.ndarray:
    """Impute by predictive mean matching, type-1 matching (mice ``pmm``).

    Observed rows are predicted with the least-squares coefficients, missing
    rows with coefficients drawn as in :func:`draw_norm`; each missing row takes
    the observed value of one of its ``donors`` nearest observed rows.

    Parameters
    ----------
    y, observed, X, rng, name
        As in :func:`draw_norm`.
    donors : int
        Size of the donor pool (mice default 5).

    Returns
    -------
    ndarray, shape (n_missing,)
        Observed values of ``y``, one per missing row.
    """
    batch, _ = as_batch(y, observed, X, None, None, name, donors)
    return draw_regression_batch(batch, [rng], pmm=True)[0]


def draw_regression_batch(t: TargetBatch, rngs: list[np.random.Generator], *,
                          pmm: bool) -> np.ndarray:
    """mice's ``norm`` (``pmm=False``) or ``pmm`` in a batch of chains (random part ignored).

    Per chain, as mice's ``.norm.draw``: least-squares coefficients from the
    centred cross-products, ``sigma^2 = RSS / chi^2(n_obs - k)`` and drawn
    coefficients ``beta_hat + sigma L^-T z``; norm imputes ``X_mis beta +
    N(0, sigma^2)``, pmm matches the observed rows' least-squares predictions
    with the missing rows' drawn ones.

    Returns
    -------
    ndarray, shape (C, n_missing)
    """
    log, y_center, y_scale, ys, design = standardised(t)
    y_obs = t.y_obs
    xty = design.centre(t.x_obs @ ys)
    chol = cholesky(design.gram, log, "cross-product matrix X'X", chains=True)
    half = np.linalg.solve(chol, xty[..., None])
    coef_hat = np.linalg.solve(np.swapaxes(chol, 1, 2), half)[..., 0]
    rss = np.maximum(float(ys @ ys) - np.sum(coef_hat * xty, axis=1), 0.0)
    df = len(ys) - design.keep.sum(axis=1)
    sigma = np.sqrt(rss / np.array([rng.chisquare(df[c]) for c, rng in enumerate(rngs)]))
    coef = coef_hat + sigma[:, None] * np.linalg.solve(np.swapaxes(chol, 1, 2),
                                                       design.noise(rngs)[..., None])[..., 0]
    pred_mis = (design.shifted(coef)[:, None, :] @ t.x_mis)[:, 0]
    check_finite(pred_mis, t.name, "predictions of the missing rows")
    if pmm:
        pred_obs = (design.shifted(coef_hat)[:, None, :] @ t.x_obs)[:, 0]
        out = y_obs[match_donors_batch(pred_obs, pred_mis, t.donors, rngs)]
    else:
        noise = standard_normal(rngs, (pred_mis.shape[1],))
        out = y_center + y_scale * (pred_mis + sigma[:, None] * noise)
    log.warn()
    return out


def draw_logreg(y: np.ndarray, observed: np.ndarray, X: np.ndarray, rng: np.random.Generator,
                *, name: str = "y") -> np.ndarray:
    """Impute a 0/1 variable by Bayesian logistic regression (mice ``logreg``).

    The logistic model is fitted by Newton-Raphson (IRLS) on the observed rows
    augmented as in White, Daniel & Royston (2010) against perfect prediction;
    ``beta`` is drawn from ``N(beta_hat, V)`` and the imputations from
    ``Bernoulli(logistic(X_mis beta))``.

    Parameters
    ----------
    y, observed, X, rng, name
        As in :func:`draw_norm`; observed ``y`` must be 0 or 1.

    Returns
    -------
    ndarray, shape (n_missing,)
        0/1 imputations, in the dtype of ``y``.
    """
    return _draw_categorical(y, observed, X, rng, 2, name)


def draw_polyreg(y: np.ndarray, observed: np.ndarray, X: np.ndarray, rng: np.random.Generator,
                 *, n_categories: int, name: str = "y") -> np.ndarray:
    """Impute an unordered categorical variable by multinomial logistic regression.

    As mice ``polyreg``, the model is fitted on the observed rows augmented
    against perfect prediction (White, Daniel & Royston 2010), over the
    categories that are observed; unlike mice, the coefficients are drawn from
    the normal approximation ``N(beta_hat, I(beta_hat)^-1)`` of their posterior,
    so the imputations reflect parameter uncertainty.

    Parameters
    ----------
    y, observed, X, rng, name
        As in :func:`draw_norm`; observed ``y`` are integer codes.
    n_categories : int
        Number ``K`` of categories; codes are ``0 .. K-1``.

    Returns
    -------
    ndarray, shape (n_missing,)
        Category codes, in the dtype of ``y``.
    """
    return _draw_categorical(y, observed, X, rng, n_categories, name)


def _draw_categorical(y: np.ndarray, observed: np.ndarray, X: np.ndarray,
                      rng: np.random.Generator, n_categories: int, name: str) -> np.ndarray:
    """Shared body of :func:`draw_logreg` and :func:`draw_polyreg`."""
    log = Recovery(name)
    y_obs = check_observed(y, observed, name)
    if np.any((y_obs != np.round(y_obs)) | (y_obs < 0) | (y_obs >= n_categories)):
        raise SamplerError(f"imputing '{name}': observed values must be integer codes "
                           f"0..{n_categories - 1}")
    levels, codes = np.unique(y_obs.astype(int), return_inverse=True)
    n_mis = len(y) - len(y_obs)
    if len(levels) == 1:
        log.note(f"only category {levels[0]} is observed; imputing it for every missing row")
        log.warn()
        return np.full(n_mis, levels[0], dtype=y.dtype)
    design = fixed_design(np.compress(observed, X, axis=0), log)
    theta = _draw_multinomial(design, codes, len(levels), rng, log)
    eta = check_finite(design.rows(np.compress(~observed, X, axis=0)) @ theta, name,
                       "predictions of the missing rows")
    cumulative = np.cumsum(_probabilities(eta)[1], axis=1)
    drawn = (cumulative < rng.random(n_mis)[:, None]).sum(axis=1)
    log.warn()
    return levels[np.minimum(drawn, len(levels) - 1)].astype(y.dtype)


def fit_multinomial(x: np.ndarray, codes: np.ndarray, n_levels: int, weights: np.ndarray,
                    log: Recovery) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood multinomial logit by Newton-Raphson with step halving.

    Parameters
    ----------
    x : ndarray, shape (n, d)
        Design (centred, with an intercept column).
    codes : ndarray of int, shape (n,)
        Categories ``0 .. n_levels-1``; category 0 is the baseline.
    n_levels : int
    weights : ndarray, shape (n,)
        Case weights.
    log : Recovery
        Notes a fit that did not converge.

    Returns
    -------
    theta : ndarray, shape (d, n_levels - 1)
        Coefficients of the non-baseline categories.
    chol : ndarray, shape (d * (n_levels - 1), d * (n_levels - 1))
        Lower Cholesky factor of the observed information at ``theta``; its
        rows and columns follow ``theta.T.ravel()`` (category-major).
    """
    d, m = x.shape[1], n_levels - 1
    onehot = np.zeros((len(codes), n_levels))
    onehot[np.arange(len(codes)), codes] = 1.0
    onehot = onehot[:, 1:]
    theta = np.zeros((d, m))
    loglik, prob = _multinomial_loglik(x, onehot, weights, theta)
    for _ in range(NEWTON_MAX_ITER):
        info = _multinomial_information(x, weights, prob)
        chol = cholesky(info, log, "information matrix of the logistic fit")
        grad = (x.T @ (weights[:, None] * (onehot - prob))).T.ravel()
        step = cho_solve((chol, True), grad, check_finite=False).reshape(m, d).T
        for _halving in range(30):
            new_loglik, new_prob = _multinomial_loglik(x, onehot, weights, theta + step)
            if new_loglik >= loglik - 1e-12 * abs(loglik):
                break
            step = step / 2
        theta, gain = theta + step, new_loglik - loglik
        loglik, prob = new_loglik, new_prob
        if np.max(np.abs(step)) < 1e-8 or gain < 1e-10 * (1 + abs(loglik)):
            break
    else:
        log.note(f"the logistic fit did not converge in {NEWTON_MAX_ITER} Newton steps")
    info = _multinomial_information(x, weights, prob)
    return theta, cholesky(info, log, "information matrix of the logistic fit")


def _multinomial_loglik(x: np.ndarray, onehot: np.ndarray, weights: np.ndarray,
                        theta: np.ndarray) -> tuple[float, np.ndarray]:
    """Weighted log-likelihood and non-baseline probabilities ``(n, m)``."""
    eta = x @ theta
    normaliser, prob = _probabilities(eta)
    loglik = float(weights @ (np.sum(onehot * eta, axis=1) - normaliser))
    return loglik, prob[:, 1:]


def _probabilities(eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log normaliser ``(n,)`` and probabilities ``(n, m + 1)`` (baseline first).

    ``eta`` holds the ``m`` non-baseline linear predictors; the baseline's is 0.
    """
    top = np.maximum(eta.max(axis=1), 0.0)[:, None]
    weights = np.exp(np.hstack([-top, eta - top]))
    total = weights.sum(axis=1)
    return top[:, 0] + np.log(total), weights / total[:, None]


def _multinomial_information(x: np.ndarray, weights: np.ndarray,
                             prob: np.ndarray) -> np.ndarray:
    """Observed information (negative Hessian), category-major blocks."""
    d, m = x.shape[1], prob.shape[1]
    info = np.empty((m * d, m * d))
    for a in range(m):
        for b in range(a, m):
            w = weights * prob[:, a] * ((a == b) - prob[:, b])
            block = x.T @ (x * w[:, None])
            info[a * d:(a + 1) * d, b * d:(b + 1) * d] = block
            info[b * d:(b + 1) * d, a * d:(a + 1) * d] = block.T
    return info


def _augmentation(design: FixedDesign, n_levels: int) -> tuple[np.ndarray, np.ndarray,
                                                               np.ndarray]:
    """Pseudo-rows against perfect prediction (White, Daniel & Royston 2010).

    For each predictor and category, two rows at the predictor's mean plus and
    minus half its standard deviation (clipped to its observed range), the
    other predictors at their means, with total weight ``k + 1``.
    """
    k = design.xs.shape[1] - 1
    if k == 0:
        return np.zeros((0, 1)), np.zeros(0, dtype=int), np.zeros(0)
    low, high = design.xs[:, 1:].min(axis=0), design.xs[:, 1:].max(axis=0)
    rows = np.zeros((2 * k * n_levels, k + 1))
    rows[:, 0] = 1.0
    column = np.repeat(np.arange(k), 2 * n_levels)
    offset = np.tile([0.5, -0.5], k * n_levels) * design.scale[column]
    rows[np.arange(len(rows)), column + 1] = np.clip(offset, low[column], high[column])
    codes = np.tile(np.repeat(np.arange(n_levels), 2), k)
    weights = np.full(len(rows), (k + 1) / len(rows))
    return rows, codes, weights


def _draw_multinomial(design: FixedDesign, codes: np.ndarray, n_levels: int,
                      rng: np.random.Generator, log: Recovery) -> np.ndarray:
    """Coefficients ``(k + 1, n_levels - 1)`` drawn from the normal approximation."""
    aug_x, aug_codes, aug_w = _augmentation(design, n_levels)
    x = np.vstack([design.xs, aug_x])
    weights = np.concatenate([np.ones(len(codes)), aug_w])
    theta, chol = fit_multinomial(x, np.concatenate([codes, aug_codes]), n_levels, weights, log)
    noise = precision_noise(chol, rng).reshape(n_levels - 1, -1).T
    return theta + noise


# The registered samplers: single-level methods have no state between visits.
register("regression_normal", batched=True)(
    lambda t, rngs, _: (draw_regression_batch(t, rngs, pmm=False), None))
register("regression_pmm", batched=True)(
    lambda t, rngs, _: (draw_regression_batch(t, rngs, pmm=True), None))
register("regression_logit")(
    lambda t, rng, _: (draw_logreg(t.y, t.observed, t.X, rng, name=t.name), None))
register("regression_multinomial")(
    lambda t, rng, _: (draw_polyreg(t.y, t.observed, t.X, rng, n_categories=t.n_categories,
                                    name=t.name), None))
