"""Two-level logistic imputation (``2l.bin``) by Polya-Gamma Gibbs sampling.

The imputation model is the logistic mixed model

    logit P(y = 1) = X beta + Z_c u_c,   u_c ~ N(0, Omega),

updated call after call from a :class:`BinaryState` by the data augmentation
of Polson, Scott & Windle (2013): given ``eta``, ``w_i ~ PG(1, eta_i)`` makes
the likelihood Gaussian in ``(beta, u)``, so

1. ``w | beta, u``: Polya-Gamma, drawn exactly by :func:`sample_pg1`;
2. ``(beta, u) | w, Omega`` as one block, exactly as the normal model of
   :mod:`~recipe_compiler.runtime.samplers.normal_2l` with weights ``w`` and working
   response ``(y - 1/2) / w``: ``beta`` with ``u`` integrated out (prior
   ``N(0, 5^2)`` per coefficient on the standardised predictors, negligible
   unless the data separate), then ``u_c | beta`` batched over clusters;
3. ``Omega | u``: inverse-Wishart, as in the normal model.

Missing rows are imputed by ``Bernoulli(logistic(X beta + Z u_c))``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from scipy.special import expit, log_ndtr

from ...data.grouping import Grouping
from ...errors import SamplerError
from .common import CentredDesign, Recovery, as_batch, centred_design, check_finite, per_chain
from .normal_2l import (
    Moments,
    check_state,
    draw_effects,
    draw_omega,
    pd_inverse,
    random_design,
    random_part_batch,
)
from .registry import TargetBatch, register
from .single import fit_multinomial

__all__ = ["BinaryState", "draw_2l_bin", "draw_2l_bin_batch", "sample_pg1"]

#: Prior standard deviation of the coefficients on the standardised predictors.
COEF_PRIOR_SD = 5.0
#: Start value of the random-effects variances on the scaled-Z, logit scale.
OMEGA_START = 1.0
#: Truncation point of Devroye's PG(1, z) sampler (Polson, Scott & Windle 2013).
PG_TRUNC = 0.64
#: Proposals per pending entry in the later rounds of the rejection samplers.
PG_BATCH = 4

_Proposal = Callable[[np.ndarray, tuple[int, int], np.random.Generator],
                     tuple[np.ndarray, np.ndarray]]


@dataclass
class BinaryState:
    """Warm-start state of one binary target's logistic mixed model in one chain.

    In a batch of chains (:func:`draw_2l_bin_batch`) every attribute has a
    leading chain axis.

    Attributes
    ----------
    beta : ndarray, shape (p,)
        Fixed effects on the logit scale (zero for dropped columns).
    u : ndarray, shape (G, q)
        Random effects per cluster.
    omega : ndarray, shape (q, q)
        Random-effects covariance.
    """

    beta: np.ndarray
    u: np.ndarray
    omega: np.ndarray


def draw_2l_bin(y: np.ndarray, observed: np.ndarray, X: np.ndarray, Z: np.ndarray,
                grouping: Grouping, rng: np.random.Generator,
                state: BinaryState | None = None, *, name: str = "y",
                n_inner: int = 1) -> tuple[np.ndarray, BinaryState]:
    """One (or ``n_inner``) Polya-Gamma Gibbs update(s), then imputations.

    One chain's call of :func:`draw_2l_bin_batch` (a batch of one).

    Parameters
    ----------
    y : ndarray, shape (n,)
        Current completed 0/1 values; entries at ``~observed`` are ignored.
    observed : ndarray of bool, shape (n,)
    X : ndarray, shape (n, p)
        Fixed design, including an intercept column.
    Z : ndarray, shape (n, q)
        Random design; column 0 is the random intercept (ones).
    grouping : Grouping
        The cluster of every row.
    rng : numpy.random.Generator
        Source of all randomness.
    state : BinaryState, optional
        State after the previous call (not modified); ``None`` starts from the
        single-level logistic fit, ``u = 0`` and ``Omega = I`` (scaled Z).
    name : str
        The target's name, for warnings and errors.
    n_inner : int
        Number of Gibbs sweeps before imputing.

    Returns
    -------
    imputations : ndarray, shape (n_missing,)
        0/1 values for ``y[~observed]``, in the dtype of ``y``.
    state : BinaryState
        The updated state.
    """
    batch, columns = as_batch(y, observed, X, Z, grouping, name)
    random_design(Z, grouping, observed, name)  # checks Z and the cluster codes
    warm = None
    if state is not None:
        check_state(state.u, state.omega, grouping.n, Z.shape[1], name)
        if state.beta.shape != (X.shape[1],):
            raise SamplerError(f"imputing '{name}': the sampler state has {state.beta.shape} "
                               f"fixed effects for {X.shape[1]} columns of X")
        warm = BinaryState(beta=columns.from_x(state.beta), u=state.u[None],
                           omega=state.omega[None])
    out, new = draw_2l_bin_batch(batch, [rng], warm, n_inner=n_inner)
    return out[0].astype(y.dtype), BinaryState(beta=columns.to_x(new.beta), u=new.u[0],
                                               omega=new.omega[0])


def draw_2l_bin_batch(t: TargetBatch, rngs: list[np.random.Generator],
                      state: BinaryState | None = None, *,
                      n_inner: int = 1) -> tuple[np.ndarray, BinaryState]:
    """One (or ``n_inner``) Polya-Gamma Gibbs update(s) in each chain, then imputations.

    Parameters
    ----------
    t : TargetBatch
        The target in ``C`` chains.
    rngs : list of numpy.random.Generator
        One per chain.
    state : BinaryState, optional
        The batch's state after the previous call (leading chain axis, ``beta``
        on the original columns; not modified); ``None`` at the first call.
    n_inner : int
        Number of Gibbs sweeps before imputing.

    Returns
    -------
    imputations : ndarray, shape (C, n_missing)
        0/1 values.
    state : BinaryState
        With a leading chain axis.

    Raises
    ------
    SamplerError
        Observed values other than 0 and 1, non-finite inputs or a state that does not fit.
    """
    log, design, xs, z_scale = binary_design(t)
    y_obs, z, n = t.y_obs, t.z_obs, len(t.y_obs)
    q1 = z_scale.shape[1] - 1
    zs = None if z is None else z / z_scale[:, 1:, None]
    if state is None:
        omega = OMEGA_START * np.broadcast_to(np.eye(q1 + 1), (t.chains, q1 + 1, q1 + 1))
        eta = np.empty((t.chains, n))
        for c in range(t.chains):
            kept = xs[c][design.keep[c]].T
            theta, _ = fit_multinomial(kept, y_obs.astype(int), 2, np.ones(n), log)
            eta[c] = kept @ theta[:, 0]
    else:
        check_state(state.u, state.omega, t.grouping.n, q1 + 1, t.name, chains=t.chains)
        if state.beta.shape != t.x_offset.shape:
            raise SamplerError(f"imputing '{t.name}': the sampler state has "
                               f"{state.beta.shape[-1]} fixed effects for "
                               f"{t.x_offset.shape[1]} columns of X")
        stored = state.beta.copy()
        stored[:, 0] += np.sum(state.beta[:, 1:] * t.x_offset[:, 1:], axis=1)
        omega = state.omega * z_scale[:, :, None] * z_scale[:, None, :]
        eta = ((stored[:, None, :] @ t.x_obs)[:, 0]
               + random_part_batch(t.z_obs, state.u, t.g_obs.codes))
    omega_inv = pd_inverse(omega, log, chains=True)
    kappa = y_obs - 0.5
    prior = coef_prior(design.scale)
    for _ in range(max(n_inner, 1)):
        w = np.stack([sample_pg1(eta[c], rng) for c, rng in enumerate(rngs)])
        mom = weighted_moments(xs, zs, t.g_obs, w, kappa)
        effects = draw_effects(replace(mom, xtx=mom.xtx + prior), omega_inv, rngs, log,
                               design.keep)
        omega, omega_inv = draw_omega(effects.u, rngs, log)
        eta = (effects.coef[:, None, :] @ xs)[:, 0] + random_part_batch(zs, effects.u,
                                                                   t.g_obs.codes)
    u_rows = effects.u / z_scale[:, None, :]
    eta_mis = ((design.shifted(effects.coef)[:, None, :] @ t.x_mis)[:, 0]
               + random_part_batch(t.z_mis, u_rows, t.g_mis.codes))
    check_finite(eta_mis, t.name, "linear predictors of the missing rows")
    draws = per_chain(rngs, lambda rng: rng.random(eta_mis.shape[1]))
    new_state = BinaryState(beta=design.beta(effects.coef), u=u_rows,
                            omega=omega / (z_scale[:, :, None] * z_scale[:, None, :]))
    log.warn()
    return (draws < expit(eta_mis)).astype(float), new_state


def binary_design(t: TargetBatch) -> tuple[Recovery, CentredDesign, np.ndarray, np.ndarray]:
    """The start of a logistic sampler's visit: ``(log, design, xs, z_scale)``.

    ``design`` is the centred fixed design of the observed rows, ``xs`` its kept
    columns centred (column 0 the intercept, ones), ``z_scale`` (C, q) the root mean
    square of each random-design column (1 for the intercept and for a zero column).

    Raises
    ------
    SamplerError
        Observed values other than 0 and 1, or a random design that is not finite.
    """
    log = Recovery(t.name)
    if np.any((t.y_obs != 0) & (t.y_obs != 1)):
        raise SamplerError(f"imputing '{t.name}': observed values of a binary target must be "
                           "0 or 1")
    design = centred_design(t.x_obs, t.x_offset, log)
    # the centred kept columns, once per call: the weights change at every inner sweep
    xs = (t.x_obs - design.center[:, :, None]) * design.keep[:, :, None]
    xs[:, 0] = 1.0
    z = t.z_obs
    z_scale = np.ones((t.chains, 1 + (0 if z is None else z.shape[1])))
    if z is not None:
        z_scale[:, 1:] = np.sqrt(np.einsum("caj,caj->ca", z, z) / len(t.y_obs))
        if not np.isfinite(z_scale).all():
            raise SamplerError(f"imputing '{t.name}': the random design Z is not finite")
        z_scale[z_scale == 0] = 1.0
    return log, design, xs, z_scale


def coef_prior(scale: np.ndarray) -> np.ndarray:
    """The coefficients' prior precision (C, p, p) on the centred design.

    ``N(0, COEF_PRIOR_SD^2)`` per standardised coefficient: ``scale`` (C, p) are the
    centred columns' scales (:attr:`~.common.CentredDesign.scale`); the intercept's
    entry is ``1 / COEF_PRIOR_SD^2``.
    """
    diagonal = np.arange(scale.shape[1])
    prior = np.zeros((scale.shape[0], len(diagonal), len(diagonal)))
    prior[:, diagonal, diagonal] = scale**2 / COEF_PRIOR_SD**2
    prior[:, 0, 0] = 1 / COEF_PRIOR_SD**2
    return prior


def weighted_moments(xs: np.ndarray, zs: np.ndarray | None, g_obs: Grouping, w: np.ndarray,
                     kappa: np.ndarray) -> Moments:
    """The :class:`Moments` under weights ``w`` (C, n) with ``W r = kappa``, centred ``xs``."""
    seg = g_obs.segment_sums
    q1 = 0 if zs is None else zs.shape[1]
    chains, p, _ = xs.shape
    shape = (chains, g_obs.n, q1 + 1)
    ztx, ztr, ztz = np.empty((*shape, p)), np.empty(shape), np.empty((*shape, q1 + 1))
    xw = xs * w[:, None, :]
    ztx[:, :, 0] = seg(xw).transpose(0, 2, 1)
    ztr[:, :, 0] = seg(kappa)
    ztz[:, :, 0, 0] = ztx[:, :, 0, 0]
    for a in range(q1):
        assert zs is not None
        za = zs[:, a]
        ztx[:, :, a + 1] = seg(xw * za[:, None, :]).transpose(0, 2, 1)
        ztr[:, :, a + 1] = seg(za * kappa)
        ztz[:, :, a + 1, 0] = ztz[:, :, 0, a + 1] = ztx[:, :, a + 1, 0]
        for b in range(a, q1):
            ztz[:, :, a + 1, b + 1] = ztz[:, :, b + 1, a + 1] = seg(za * zs[:, b] * w)
    return Moments(xtx=xw @ xs.transpose(0, 2, 1), xtr=xs @ kappa, ztz=ztz, ztx=ztx, ztr=ztr)


def sample_pg1(z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exact draws of ``PG(1, z)``, vectorised over ``z``.

    Devroye's alternating-series rejection sampler (Polson, Scott & Windle
    2013, sec. 4 and Algorithm 1): propose ``J*(1, |z|/2)`` from a mixture of
    a truncated inverse Gaussian (left of :data:`PG_TRUNC`) and a shifted
    exponential (right of it), accept by the alternating series of the
    density, and return a quarter of it. Each round redraws only the entries
    still pending, so the cost is a few vectorised passes (acceptance rate
    above 99.9%).

    Parameters
    ----------
    z : ndarray
        Tilting parameters (any shape).
    rng : numpy.random.Generator

    Returns
    -------
    ndarray
        Draws, same shape as ``z``; ``E = tanh(z/2) / (2z)``.
    """
    half = np.abs(np.asarray(z, dtype=float)).ravel() / 2
    out = np.empty_like(half)
    pending = np.arange(half.size)
    while pending.size:
        x = _pg_proposal(half[pending], rng)
        accepted = _pg_accept(x, rng)
        out[pending[accepted]] = x[accepted] / 4
        pending = pending[~accepted]
    return out.reshape(np.shape(z))


def _pg_proposal(z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Proposals of ``J*(1, z)``: exponential tail or truncated inverse Gaussian."""
    rate = np.pi**2 / 8 + z**2 / 2
    root = np.sqrt(1 / PG_TRUNC)
    log_base = np.log(rate) + rate * PG_TRUNC
    log_b = log_base - z + log_ndtr(root * (PG_TRUNC * z - 1))
    log_a = log_base + z + log_ndtr(-root * (PG_TRUNC * z + 1))
    # compared in log space: exp(log_b) overflows once |z| is above ~80 (separated data)
    log_mass = np.log(4 / np.pi) + np.logaddexp(log_b, log_a)
    right = np.log(rng.random(z.size)) + np.logaddexp(0.0, log_mass) < 0
    x = np.empty_like(z)
    x[right] = PG_TRUNC + rng.standard_exponential(int(right.sum())) / rate[right]
    x[~right] = _truncated_inverse_gaussian(z[~right], rng)
    return x


def _truncated_inverse_gaussian(z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draws of ``IG(mean 1/z, shape 1)`` truncated to ``(0, PG_TRUNC)``.

    For a mean above the truncation point, proposals from the truncated
    ``1/chi^2_1`` are accepted with probability ``exp(-z^2 x / 2)``; otherwise
    inverse-Gaussian draws (Michael, Schucany & Haas 1976) are kept when they
    fall below the truncation point.
    """
    out = np.empty_like(z)
    small = z * PG_TRUNC < 1
    out[small] = _rejection(z[small], _propose_inverse_chi2, rng)
    out[~small] = _rejection(z[~small], _propose_inverse_gaussian, rng)
    return out


def _rejection(z: np.ndarray, propose: _Proposal, rng: np.random.Generator) -> np.ndarray:
    """Per-entry rejection sampling, vectorised over the entries still pending.

    The first round makes one proposal per entry; later rounds make
    :data:`PG_BATCH` per pending entry and keep the first accepted, so the
    stragglers of a low acceptance rate (about 0.5 at worst) take few rounds.
    """
    out = np.empty_like(z)
    pending = np.arange(z.size)
    batch = 1
    while pending.size:
        x, ok = propose(z[pending][:, None], (pending.size, batch), rng)
        hit = ok.any(axis=1)
        out[pending[hit]] = x[hit, ok[hit].argmax(axis=1)]
        pending = pending[~hit]
        batch = PG_BATCH
    return out


def _propose_inverse_chi2(z: np.ndarray, shape: tuple[int, int],
                          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Proposals and acceptances for ``z < 1 / PG_TRUNC`` (Devroye's method)."""
    e1 = rng.standard_exponential(shape)
    e2 = rng.standard_exponential(shape)
    x = PG_TRUNC / (1 + PG_TRUNC * e1) ** 2
    ok = (e1**2 <= 2 * e2 / PG_TRUNC) & (rng.random(shape) <= np.exp(-0.5 * z**2 * x))
    return x, ok


def _propose_inverse_gaussian(z: np.ndarray, shape: tuple[int, int],
                              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-Gaussian proposals, accepted below the truncation point."""
    mean = 1 / z
    chi = rng.standard_normal(shape) ** 2 * mean
    x = np.maximum(mean * (1 + chi / 2 - np.sqrt(chi + chi**2 / 4)), np.finfo(float).tiny)
    x = np.where(rng.random(shape) * (mean + x) > mean, mean**2 / x, x)
    return x, x <= PG_TRUNC


def _pg_accept(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Accept/reject proposals by the alternating series ``S_n(x)`` of the density."""
    partial = _pg_series_term(0, x)
    threshold = rng.random(x.size) * partial
    accepted = np.zeros(x.size, dtype=bool)
    pending = np.arange(x.size)
    n = 0
    while pending.size:
        n += 1
        term = _pg_series_term(n, x[pending])
        if n % 2:
            partial[pending] -= term
            done = threshold[pending] <= partial[pending]
            accepted[pending[done]] = True
        else:
            partial[pending] += term
            done = threshold[pending] > partial[pending]
        pending = pending[~done]
    return accepted


def _pg_series_term(n: int, x: np.ndarray) -> np.ndarray:
    """Coefficient ``a_n(x)`` of the piecewise alternating series of ``J*(1, 0)``."""
    k = n + 0.5
    log_left = 1.5 * np.log(2 / (np.pi * x)) - 2 * k**2 / x
    log_right = -0.5 * k**2 * np.pi**2 * x
    return np.pi * k * np.exp(np.where(x > PG_TRUNC, log_right, log_left))


@register("mixed_logit", batched=True)
def _mixed_logit(t: TargetBatch, rngs: list[np.random.Generator],
                 state: object | None) -> tuple[np.ndarray, BinaryState]:
    if t.z_obs is None:
        raise SamplerError(f"imputing '{t.name}': a two-level sampler needs a random design")
    if state is not None and not isinstance(state, BinaryState):
        raise SamplerError(f"imputing '{t.name}': the sampler state is not a BinaryState")
    return draw_2l_bin_batch(t, rngs, state)
