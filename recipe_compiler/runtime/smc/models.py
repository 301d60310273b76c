"""Parameter updates of the SMC models given the completed data, and their log densities.

Every model's parameters are drawn from their full conditional given the
current completed data, by the runtime's existing blocks:

* level-1 normal models: the two-level Gibbs block of
  :func:`~recipe_compiler.runtime.samplers.normal_2l.draw_2l` (``beta`` with
  ``u`` integrated out, then ``u``, ``Omega``, ``sigma2``), on all rows;
* level-1 logit models: the Polya-Gamma block of
  :func:`~recipe_compiler.runtime.samplers.logit_2l.draw_2l_bin`;
* level-2 models (one row per cluster): Bayesian linear regression
  (``sigma2 | beta`` inverse-gamma, ``beta | sigma2`` normal, flat priors) or
  Polya-Gamma logistic regression, from the same kernels
  (:func:`~recipe_compiler.runtime.samplers.single.fixed_design`,
  :func:`~recipe_compiler.runtime.samplers.single.draw_coefficients`,
  :func:`~recipe_compiler.runtime.samplers.logit_2l.sample_pg1`).

Given the parameters (random effects included), rows are independent, so a
model's log density is a sum over rows: what the missing-value draws of
:mod:`.conditionals` add up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...data.grouping import Grouping
from ...errors import SamplerError
from ..samplers.common import centred_design, per_chain
from ..samplers.logit_2l import COEF_PRIOR_SD, BinaryState, draw_2l_bin, sample_pg1
from ..samplers.normal_2l import (
    SIGMA2_PRIOR,
    TwoLevelBatchState,
    TwoLevelState,
    chain_moments,
    draw_2l,
    draw_effects,
    draw_omega,
    pd_inverse,
    random_part,
)
from ..samplers.single import Recovery, cholesky, draw_coefficients, fixed_design
from .terms import Frame, ModelDesign

__all__ = ["Params", "linear_predictor", "log_density", "update_normal_batch", "update_params"]


@dataclass(frozen=True, eq=False)
class Params:
    """One draw of a model's parameters, in the units of the data.

    Attributes
    ----------
    beta : ndarray, shape (p,)
        Fixed effects.
    u : ndarray, shape (G, q) or None
        Random effects (level-1 models).
    sigma2 : float
        Residual variance (normal models; 1 for logit models).
    warm : TwoLevelState, BinaryState or None
        The two-level block's state, for its next update.
    """

    beta: np.ndarray
    u: np.ndarray | None
    sigma2: float
    warm: TwoLevelState | BinaryState | None = None


def update_params(design: ModelDesign, frame: Frame, cluster_frame: Frame,
                  binary: tuple[float, float] | None, grouping: Grouping,
                  previous: Params | None, rng: np.random.Generator,
                  rows: np.ndarray | None = None) -> Params:
    """Draw the parameters of one model given the completed data.

    Parameters
    ----------
    design : ModelDesign
    frame, cluster_frame : Frame
        The current values on the rows and on the clusters.
    binary : (float, float) or None
        The two values of the dependent variable of a logit model.
    grouping : Grouping
    previous : Params or None
        The previous draw (warm start); ``None`` at the first sweep.
    rng : numpy.random.Generator
    rows : ndarray of bool, optional
        The rows (clusters, for a level-2 model) to fit on; all if ``None``.
    """
    name = design.dependent
    if design.level == 2:
        X = design.X(cluster_frame)
        y = cluster_frame.values[name]
        if rows is not None:
            X, y = X[rows], y[rows]
        beta = None if previous is None else previous.beta
        if binary is None:
            return _regression(X, y, beta, rng, name)
        return _logistic(X, (y == binary[1]).astype(float), beta, rng, name)
    X, Z = design.X(frame), design.Z(frame)
    y = frame.values[name]
    fit = np.ones(len(y), dtype=bool) if rows is None else rows
    warm = None if previous is None else previous.warm
    if binary is None:
        assert warm is None or isinstance(warm, TwoLevelState)
        _, state = draw_2l(y, fit, X, Z, grouping, rng, warm, pmm=False, name=name)
        return Params(state.beta, state.u, state.sigma2, state)
    assert warm is None or isinstance(warm, BinaryState)
    _, bstate = draw_2l_bin((y == binary[1]).astype(float), fit, X, Z, grouping, rng, warm,
                            name=name)
    return Params(bstate.beta, bstate.u, 1.0, bstate)


def update_normal_batch(design: ModelDesign, frames: list[Frame], fit: np.ndarray,
                        g_fit: Grouping, state: TwoLevelBatchState,
                        rngs: list[np.random.Generator]) -> TwoLevelBatchState:
    """One warm Gibbs update of a level-1 normal model in ``C`` chains at once.

    The block of :func:`~recipe_compiler.runtime.samplers.normal_2l.draw_2l`
    (``(beta, u) | Omega, sigma2``, then ``Omega``, then ``sigma2``, on the
    standardised scale) for a batch of chains whose dependent variable differs
    by chain, and without imputations (the missing values are drawn by
    :mod:`.conditionals`). Chain ``c`` draws from ``rngs[c]`` only, and its
    arithmetic does not depend on the other chains.

    Parameters
    ----------
    design : ModelDesign
    frames : list of Frame
        Each chain's row frame.
    fit : ndarray of bool
        The rows to fit on; ``g_fit`` is their grouping.
    g_fit : Grouping
    state : TwoLevelBatchState
        The chains' previous draw (original units).
    rngs : list of numpy.random.Generator
        One per chain.

    Raises
    ------
    SamplerError
        Non-finite values of the dependent variable or of the designs.
    """
    name = design.dependent
    log = Recovery(name)
    rows = None if fit.all() else np.flatnonzero(fit)
    y = np.stack([f.values[name] if rows is None else f.values[name][rows] for f in frames])
    if not np.isfinite(y).all():
        raise SamplerError(f"imputing '{name}': its values contain NaN or infinity")
    chains, n = y.shape
    x = np.empty((chains, len(design.fixed), n))
    z = np.empty((chains, len(design.random) - 1, n))
    for c, f in enumerate(frames):
        x[c] = design.X(f, rows).T
        z[c] = design.Z(f, rows)[:, 1:].T
    offset = x.mean(axis=2)
    offset[:, 0] = 0.0
    x -= offset[:, :, None]
    y_center, y_scale = y.mean(axis=1), y.std(axis=1)
    y_scale[y_scale == 0] = 1.0
    ys = (y - y_center[:, None]) / y_scale[:, None]
    centred = centred_design(x, offset, log)
    mom, z_scale = chain_moments(x, z, g_fit, centred, ys, name)
    units = z_scale / y_scale[:, None]
    outer = units[:, :, None] * units[:, None, :]
    sigma2 = state.sigma2 / y_scale**2
    omega_inv = pd_inverse(state.omega * outer, log, chains=True)
    effects = draw_effects(mom.scaled(1 / sigma2), omega_inv, rngs, log, centred.keep)
    omega, _ = draw_omega(effects.u, rngs, log)
    b, u = effects.coef, effects.u
    yty = np.einsum("cn,cn->c", ys, ys)
    fitted = (mom.ztx @ b[:, None, :, None])[..., 0]
    rss = (yty - 2 * np.sum(b * mom.xtr, axis=1)
           + (b[:, None, :] @ mom.xtx @ b[:, :, None])[:, 0, 0]
           - 2 * np.sum((u * (mom.ztr - fitted)).reshape(len(b), -1), axis=1)
           + np.sum((u[..., None, :] @ mom.ztz @ u[..., None])[..., 0, 0], axis=1))
    gamma = per_chain(rngs, lambda rng: rng.gamma(SIGMA2_PRIOR + ys.shape[1] / 2))
    sigma2 = (SIGMA2_PRIOR + np.maximum(rss, 1e-12 * yty) / 2) / gamma
    beta = centred.beta(b) * y_scale[:, None]
    beta[:, 0] += y_center
    log.warn()
    return TwoLevelBatchState(beta=beta, u=u / units[:, None, :], omega=omega / outer,
                              sigma2=sigma2 * y_scale**2)


def _regression(X: np.ndarray, y: np.ndarray, beta: np.ndarray | None,
                rng: np.random.Generator, name: str) -> Params:
    """``sigma2 | beta`` (prior ``1/sigma2``), then ``beta | sigma2`` (flat prior)."""
    log = Recovery(name)
    design = fixed_design(X, log)
    chol = cholesky(design.gram, log, "cross-product matrix X'X")
    rhs = design.xs.T @ y
    if beta is None:
        beta = design.beta(draw_coefficients(chol, rhs, 0.0, rng)[0])
    resid = y - X @ beta
    sigma2 = float(resid @ resid / rng.chisquare(len(y)))
    _, coef = draw_coefficients(chol, rhs, np.sqrt(sigma2), rng)
    log.warn()
    return Params(design.beta(coef), None, sigma2)


def _logistic(X: np.ndarray, y: np.ndarray, beta: np.ndarray | None,
              rng: np.random.Generator, name: str) -> Params:
    """Polya-Gamma Gibbs step of a logistic regression, prior ``N(0, 5^2)`` per
    standardised coefficient (as the two-level logit block)."""
    log = Recovery(name)
    design = fixed_design(X, log)
    eta = np.zeros(len(y)) if beta is None else X @ beta
    w = sample_pg1(eta, rng)
    xw = design.xs * w[:, None]
    prior = np.diag(np.concatenate([[1.0], design.scale**2])) / COEF_PRIOR_SD**2
    chol = cholesky(xw.T @ design.xs + prior, log, "logistic precision matrix")
    _, coef = draw_coefficients(chol, design.xs.T @ (y - 0.5), 1.0, rng)
    log.warn()
    return Params(design.beta(coef), None, 1.0)


def linear_predictor(design: ModelDesign, params: Params, frame: Frame,
                     rows: np.ndarray | None = None) -> np.ndarray:
    """``X beta + Z u`` on ``rows`` (all rows if ``None``)."""
    eta = design.X(frame, rows) @ params.beta
    if params.u is not None:
        assert frame.codes is not None
        codes = frame.codes if rows is None else frame.codes[rows]
        eta += random_part(design.Z(frame, rows), params.u, codes)
    return eta


def log_density(design: ModelDesign, params: Params, frame: Frame,
                binary: tuple[float, float] | None, rows: np.ndarray | None = None,
                eta: np.ndarray | None = None) -> np.ndarray:
    """Log density of the dependent variable on ``rows``, up to a constant per row.

    ``eta`` is the linear predictor on ``rows`` when the caller has it. NaN (an
    ``I()`` term undefined at a proposed value) becomes ``-inf``.
    """
    if eta is None:
        eta = linear_predictor(design, params, frame, rows)
    y = frame.values[design.dependent]
    y = y if rows is None else y[rows]
    if binary is None:
        out = -0.5 * (y - eta) ** 2 / params.sigma2
    else:
        out = np.where(y == binary[1], eta, 0.0) - np.logaddexp(0.0, eta)
    return np.where(np.isnan(out), -np.inf, out)
