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
from .normal_2l import (
    check_state,
    draw_effects,
    draw_omega,
    moments,
    pd_inverse,
    random_design,
    random_part,
)
from .registry import Target, register
from .single import (
    Recovery,
    check_finite,
    check_observed,
    fit_multinomial,
    fixed_design,
)

__all__ = ["BinaryState", "draw_2l_bin", "sample_pg1"]

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
    log = Recovery(name)
    y_obs = check_observed(y, observed, name)
    if np.any((y_obs != 0) & (y_obs != 1)):
        raise SamplerError(f"imputing '{name}': observed values of a binary target must be "
                           "0 or 1")
    x_obs = np.compress(observed, X, axis=0)
    design = fixed_design(x_obs, log)
    rand = random_design(Z, grouping, observed, name)
    if state is None:
        theta, _ = fit_multinomial(design.xs, y_obs.astype(int), 2, np.ones(len(y_obs)), log)
        eta = design.xs @ theta[:, 0]
        omega = OMEGA_START * np.eye(rand.scale.size)
    else:
        check_state(state.u, state.omega, grouping.n, rand.scale.size, name)
        if state.beta.shape != (X.shape[1],):
            raise SamplerError(f"imputing '{name}': the sampler state has {state.beta.shape} "
                               f"fixed effects for {X.shape[1]} columns of X")
        omega = state.omega * np.outer(rand.scale, rand.scale)
        eta = x_obs @ state.beta + random_part(rand.z_obs, state.u * rand.scale,
                                               rand.g_obs.codes)
    omega_inv = pd_inverse(omega, log)
    kappa = y_obs - 0.5
    prior = np.diag(np.concatenate([[1.0], design.scale**2])) / COEF_PRIOR_SD**2
    for _ in range(max(n_inner, 1)):
        w = sample_pg1(eta, rng)
        mom = moments(design.xs, rand, kappa / w, weights=w)
        effects = draw_effects(replace(mom, xtx=mom.xtx + prior), omega_inv, rng, log)
        omega, omega_inv = draw_omega(effects.u, rng, log)
        eta = design.xs @ effects.coef + random_part(rand.z_obs, effects.u, rand.g_obs.codes)
    eta_mis = (design.rows(np.compress(~observed, X, axis=0)) @ effects.coef
               + random_part(rand.z_mis, effects.u, rand.g_mis.codes))
    eta_mis = check_finite(eta_mis, name, "linear predictors of the missing rows")
    out = (rng.random(len(eta_mis)) < expit(eta_mis)).astype(y.dtype)
    new_state = BinaryState(beta=design.beta(effects.coef), u=effects.u / rand.scale,
                            omega=omega / np.outer(rand.scale, rand.scale))
    log.warn()
    return out, new_state


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


@register("mixed_logit")
def _mixed_logit(t: Target, rng: np.random.Generator,
                 state: object | None) -> tuple[np.ndarray, BinaryState]:
    if t.Z is None:
        raise SamplerError(f"imputing '{t.name}': a two-level sampler needs a random design")
    if state is not None and not isinstance(state, BinaryState):
        raise SamplerError(f"imputing '{t.name}': the sampler state is not a BinaryState")
    return draw_2l_bin(t.y, t.observed, t.X, t.Z, t.grouping, rng, state, name=t.name)
