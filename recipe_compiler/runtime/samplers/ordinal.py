"""Ordinal imputation by a cumulative probit model: ``2l.polr``, ``2lonly.polr`` and ``polr``.

The imputation model of an ordered target with observed categories ``0 .. L-1``
is the cumulative probit (mixed) model

    y = c  iff  gamma_c < y* <= gamma_c+1,   y* = X beta + Z_c u_c + e,
    e ~ N(0, 1),   u_c ~ N(0, Omega),

with ``gamma_0 = -inf``, ``gamma_1 = 0`` (X has the intercept) and
``gamma_L = +inf``; ``2lonly.polr`` and ``polr`` have no random part. Probit
rather than logit because with latent normals (Albert & Chib 1993) the update
of ``(beta, u)`` given ``y*`` is exactly the Gaussian block update of the normal
mixed model (:mod:`~recipe_compiler.runtime.samplers.normal_2l`, residual
variance fixed at 1), and every draw is exact.

One sweep (one call, warm-started from an :class:`OrdinalState`):

1. ``y* | gamma, beta, u, y``: truncated normals, drawn exactly by inversion in
   log space (:func:`scipy.special.ndtri_exp`), so far tails do not round;
2. ``(beta, u) | y*, Omega`` as in the normal model (prior ``N(0, 5^2)`` per
   coefficient on the standardised predictors, as in ``2l.bin``), then
   ``Omega | u``: inverse-Wishart;
3. ``gamma | beta, u`` with ``y*`` integrated out, by a Metropolis-Hastings step
   on the log spacings ``alpha_j = log(gamma_j+1 - gamma_j)`` (Cowles 1996's
   collapsed update, reparametrised so that proposals keep the order): a
   Gaussian random walk whose step sizes are fixed by the observed category
   shares (never by the chain's state, so the kernel is a valid MH kernel),
   accepted with the ratio of the likelihoods
   ``prod_i [Phi(gamma_y+1 - eta_i) - Phi(gamma_y - eta_i)]`` times the Jacobian
   ``prod_j exp(alpha_j)`` of a flat prior on the cut-points. Drawing the
   cut-points with ``y*`` integrated out avoids the crawl of the plain Gibbs
   update, whose uniform full conditionals shrink with n;
4. the latent scale, ``y*`` integrated out: ``beta``, ``u`` and ``gamma`` times
   ``c`` and ``Omega`` times ``c^2`` by a Metropolis-Hastings step on ``log c``
   (:func:`_rescale`), the direction along which data augmentation alone moves
   slowly (from the start values, the linear predictor and the cut-points must
   grow together); with it a chain is near its stationary distribution within
   about 10 sweeps where data augmentation alone took 30 to 40.

Every step is an exact (Gibbs) or valid Metropolis-Hastings update.

Missing rows are imputed by ``y* = X beta + Z u_c + N(0, 1)`` cut at ``gamma``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.special import log_ndtr, ndtri, ndtri_exp

from ...data.grouping import Grouping
from ...errors import SamplerError
from .logit_2l import COEF_PRIOR_SD
from .normal_2l import (
    OMEGA_PRIOR_DF,
    OMEGA_PRIOR_SCALE,
    RandomDesign,
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
    FixedDesign,
    Recovery,
    check_finite,
    check_observed,
    cholesky,
    draw_coefficients,
    fixed_design,
)

__all__ = ["OrdinalState", "draw_2l_polr", "draw_polr", "observed_categories"]

#: Sweeps of the first call of a chain, from the marginal start values.
INITIAL_SWEEPS = 10
#: Random-walk step of the log spacings, in units of their approximate posterior sd.
STEP_SCALE = 1.0
#: Start value of the random-effects variances (latent scale, scaled Z).
OMEGA_START = 0.5
#: Random-walk step of the log latent scale, times ``1 / sqrt(n_observed)``.
SCALE_STEP = 2.0


@dataclass
class OrdinalState:
    """Warm-start state of one ordinal target's cumulative probit model in one chain.

    Attributes
    ----------
    beta : ndarray, shape (p,)
        Fixed effects on the latent scale (zero for dropped columns of X).
    cuts : ndarray, shape (L - 1,)
        Cut-points ``gamma_1 = 0 < gamma_2 < ... < gamma_L-1``.
    u : ndarray, shape (G, q) or None
        Random effects per cluster (``None`` without a random part).
    omega : ndarray, shape (q, q) or None
        Random-effects covariance.
    """

    beta: np.ndarray
    cuts: np.ndarray
    u: np.ndarray | None = None
    omega: np.ndarray | None = None


def draw_2l_polr(y: np.ndarray, observed: np.ndarray, X: np.ndarray, Z: np.ndarray,
                 grouping: Grouping, rng: np.random.Generator, n_categories: int,
                 state: OrdinalState | None = None, *, name: str = "y",
                 n_inner: int = 1) -> tuple[np.ndarray, OrdinalState | None]:
    """One (or ``n_inner``) sweep(s) of the cumulative probit mixed model, then imputations.

    Parameters
    ----------
    y : ndarray, shape (n,)
        Current completed category codes ``0 .. n_categories - 1`` (in their
        order); entries at ``~observed`` are ignored.
    observed : ndarray of bool, shape (n,)
    X : ndarray, shape (n, p)
        Fixed design, including an intercept column.
    Z : ndarray, shape (n, q)
        Random design; column 0 is the random intercept (ones).
    grouping : Grouping
        The cluster of every row.
    rng : numpy.random.Generator
    n_categories : int
        Number ``K`` of categories.
    state : OrdinalState, optional
        State after the previous call (not modified); ``None`` starts from the
        observed category shares and runs :data:`INITIAL_SWEEPS` sweeps.
    name : str
        The target's name, for warnings and errors.
    n_inner : int
        Number of sweeps before imputing.

    Returns
    -------
    imputations : ndarray, shape (n_missing,)
        Category codes for ``y[~observed]``, in the dtype of ``y``.
    state : OrdinalState or None
        The updated state (``None`` when only one category is observed).
    """
    return _draw(y, observed, X, Z, grouping, rng, n_categories, state, name, n_inner)


def draw_polr(y: np.ndarray, observed: np.ndarray, X: np.ndarray, rng: np.random.Generator,
              n_categories: int, state: OrdinalState | None = None, *, name: str = "y",
              n_inner: int = 1) -> tuple[np.ndarray, OrdinalState | None]:
    """One (or ``n_inner``) sweep(s) of the single-level cumulative probit model, then imputations.

    As :func:`draw_2l_polr` without a random part: ``polr`` on the rows,
    ``2lonly.polr`` on one row per cluster.
    """
    return _draw(y, observed, X, None, None, rng, n_categories, state, name, n_inner)


def _draw(y: np.ndarray, observed: np.ndarray, X: np.ndarray, Z: np.ndarray | None,
          grouping: Grouping | None, rng: np.random.Generator, n_categories: int,
          state: OrdinalState | None, name: str,
          n_inner: int) -> tuple[np.ndarray, OrdinalState | None]:
    log = Recovery(name)
    levels, codes, constant = observed_categories(y, observed, n_categories, name, log)
    if constant is not None:
        log.warn()
        return constant, None
    n_mis = len(y) - len(codes)
    x_obs = np.compress(observed, X, axis=0)
    design = fixed_design(x_obs, log)
    rand = None if Z is None or grouping is None else random_design(Z, grouping, observed, name)
    shares = np.bincount(codes) / len(codes)
    if state is None:
        normal_scores = ndtri(np.cumsum(shares)[:-1])
        cuts = normal_scores - normal_scores[0]
        eta = np.full(len(codes), -normal_scores[0])
        u = None if rand is None else np.zeros((rand.g_obs.n, rand.scale.size))
        omega = None if rand is None else OMEGA_START * np.eye(rand.scale.size)
        n_sweeps = max(n_inner, INITIAL_SWEEPS)
    else:
        _check(state, X.shape[1], len(levels), rand, name)
        cuts = state.cuts
        eta = x_obs @ state.beta
        u = omega = None
        if rand is not None:
            assert state.u is not None and state.omega is not None
            u = state.u * rand.scale
            omega = state.omega * np.outer(rand.scale, rand.scale)
            eta = eta + random_part(rand.z_obs, u, rand.g_obs.codes)
        n_sweeps = max(n_inner, 1)
    step = STEP_SCALE * _spacing_sd(shares, len(codes))
    prior = np.diag(np.concatenate([[1.0], design.scale**2])) / COEF_PRIOR_SD**2
    par = _Params(np.zeros(design.xs.shape[1]), eta, cuts, u, omega)
    for _ in range(n_sweeps):
        latent = _latent(par.eta, par.cuts, codes, rng)
        par = _draw_effects(design, rand, latent, prior, par, rng, log)
        par = replace(par, cuts=_draw_cuts(par.cuts, par.eta, codes, step, rng))
        par = _rescale(par, codes, prior, rng)
    coef, cuts, u, omega = par.coef, par.cuts, par.u, par.omega
    eta_mis = design.rows(np.compress(~observed, X, axis=0)) @ coef
    if rand is not None and u is not None:
        eta_mis += random_part(rand.z_mis, u, rand.g_mis.codes)
    eta_mis = check_finite(eta_mis, name, "linear predictors of the missing rows")
    drawn = np.searchsorted(cuts, eta_mis + rng.standard_normal(n_mis))
    new_state = OrdinalState(beta=design.beta(coef), cuts=cuts)
    if rand is not None and u is not None and omega is not None:
        new_state.u = u / rand.scale
        new_state.omega = omega / np.outer(rand.scale, rand.scale)
    log.warn()
    return levels[drawn].astype(y.dtype), new_state



def observed_categories(y: np.ndarray, observed: np.ndarray, n_categories: int, name: str,
                        log: Recovery) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The observed categories of a categorical target, checked.

    Shared by the ordinal and the multinomial (:mod:`.multinomial_2l`) samplers.

    Parameters
    ----------
    y, observed : ndarray
        As in :func:`draw_2l_polr`.
    n_categories : int
        Number ``K`` of categories; observed values must be codes ``0 .. K - 1``.
    name : str
        The target's name, for errors.
    log : Recovery
        Notes the fall-back when only one category is observed (the caller warns).

    Returns
    -------
    levels : ndarray of int
        The observed category codes, ascending.
    codes : ndarray of int, shape (n_observed,)
        Each observed row's index into ``levels``.
    constant : ndarray or None
        When only one category is observed, the imputations: that category for
        every missing row, in the dtype of ``y``; otherwise ``None``.

    Raises
    ------
    SamplerError
        Observed values that are not codes, and the errors of :func:`~.common.check_observed`.
    """
    y_obs = check_observed(y, observed, name)
    if np.any((y_obs != np.round(y_obs)) | (y_obs < 0) | (y_obs >= n_categories)):
        raise SamplerError(f"imputing '{name}': observed values must be integer codes "
                           f"0..{n_categories - 1}")
    levels, codes = np.unique(y_obs.astype(np.intp), return_inverse=True)
    if len(levels) > 1:
        return levels, codes, None
    log.note(f"only category {levels[0]} is observed; imputing it for every missing row")
    return levels, codes, np.full(len(y) - len(y_obs), levels[0], dtype=y.dtype)

@dataclass(frozen=True, eq=False)
class _Params:
    """The chain's parameters inside one call, on the centred design and scaled Z.

    ``coef`` the coefficients, ``eta`` the linear predictor of the observed rows,
    ``cuts`` the cut-points, ``u`` and ``omega`` the random effects and their
    covariance (``None`` without a random part).
    """

    coef: np.ndarray
    eta: np.ndarray
    cuts: np.ndarray
    u: np.ndarray | None
    omega: np.ndarray | None


def _draw_effects(design: FixedDesign, rand: RandomDesign | None, latent: np.ndarray,
                  prior: np.ndarray, par: _Params, rng: np.random.Generator,
                  log: Recovery) -> _Params:
    """``(beta, u) | y*`` (unit residual variance), then ``Omega | u``."""
    if rand is None or par.omega is None:
        chol = cholesky(design.gram + prior, log, "cross-product matrix X'X")
        _, coef = draw_coefficients(chol, design.xs.T @ latent, 1.0, rng)
        return replace(par, coef=coef, eta=design.xs @ coef)
    mom = moments(design.xs, rand, latent, xtx=design.gram + prior)
    effects = draw_effects(mom, pd_inverse(par.omega, log), rng, log)
    omega, _ = draw_omega(effects.u, rng, log)
    eta = design.xs @ effects.coef + random_part(rand.z_obs, effects.u, rand.g_obs.codes)
    return _Params(effects.coef, eta, par.cuts, effects.u, omega)


def _rescale(par: _Params, codes: np.ndarray, prior: np.ndarray,
             rng: np.random.Generator) -> _Params:
    """One Metropolis-Hastings move of the latent scale, ``y*`` integrated out.

    Multiplies the coefficients, the random effects and the cut-points by ``c``
    and ``Omega`` by ``c^2``, ``log c ~ N(0, SCALE_STEP^2 / n)``. The data fix the
    latent scale only through the unit residual variance, so data augmentation
    alone moves along it slowly (the linear predictor and the cut-points grow
    together as the chain leaves its start); this move goes along it directly.
    The ratio: likelihoods, the coefficient prior, the inverse-Wishart prior of
    ``Omega`` and the Jacobian (``p(u | Omega)`` and its Jacobian cancel).
    """
    n_obs = len(codes)
    s = SCALE_STEP / np.sqrt(n_obs) * rng.standard_normal()
    c = np.exp(s)
    free = len(par.coef) + len(par.cuts) - 1  # coefficients and free cut-points
    log_ratio = (_loglik(c * par.cuts, c * par.eta, codes) - _loglik(par.cuts, par.eta, codes)
                 - 0.5 * (c**2 - 1) * float(par.coef @ prior @ par.coef) + free * s)
    if par.omega is not None:
        q = par.omega.shape[0]
        df = q + OMEGA_PRIOR_DF
        trace = OMEGA_PRIOR_SCALE * float(np.trace(np.linalg.inv(par.omega)))
        log_ratio += q * (q + 1) * s - (df + q + 1) * q * s - trace * (np.exp(-2 * s) - 1) / 2
    if np.log(rng.random()) >= log_ratio:
        return par
    return _Params(c * par.coef, c * par.eta, c * par.cuts,
                   None if par.u is None else c * par.u,
                   None if par.omega is None else c**2 * par.omega)


def _spacing_sd(shares: np.ndarray, n: int) -> np.ndarray:
    """Approximate posterior sd of each log spacing, from the observed category shares.

    With latent normal scores ``z_j = Phi^-1(P(y < j))``, ``var(gamma_j) ~
    P(1 - P) / (n phi(z_j)^2)`` (the variance of a sample quantile), and the sd of
    ``log(gamma_j+1 - gamma_j)`` is about ``sqrt(var_j + var_j+1) / (z_j+1 - z_j)``;
    the latent scale cancels. Divided by ``sqrt(L - 2)``, the number of spacings.
    """
    cum = np.cumsum(shares)[:-1]
    z = ndtri(cum)
    var = cum * (1 - cum) / (n * np.exp(-z**2) / (2 * np.pi))
    sd = np.sqrt(var[1:] + var[:-1]) / np.diff(z)
    return sd / np.sqrt(max(len(sd), 1))


def _edges(cuts: np.ndarray) -> np.ndarray:
    return np.concatenate([[-np.inf], cuts, [np.inf]])


def _log_interval(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``log Phi`` of the ends of ``(a, b)``, flipped to the lower tail where ``a > 0``.

    Returns ``(lo, hi, flip)``: the interval's probability is ``exp(hi) - exp(lo)``,
    of ``(a, b)`` where ``flip`` is False and of ``(-b, -a)`` where it is True, so
    that the ends never sit in the upper tail where ``Phi`` rounds to 1.
    """
    flip = a > 0
    lo = log_ndtr(np.where(flip, -b, a))
    hi = log_ndtr(np.where(flip, -a, b))
    return lo, hi, flip


def _loglik(cuts: np.ndarray, eta: np.ndarray, codes: np.ndarray) -> float:
    """``sum_i log(Phi(gamma_y+1 - eta_i) - Phi(gamma_y - eta_i))``."""
    edges = _edges(cuts)
    lo, hi, _ = _log_interval(edges[codes] - eta, edges[codes + 1] - eta)
    with np.errstate(divide="ignore"):
        return float(np.sum(hi + np.log1p(-np.exp(lo - hi))))


def _draw_cuts(cuts: np.ndarray, eta: np.ndarray, codes: np.ndarray, step: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
    """One Metropolis-Hastings update of the cut-points on their log spacings."""
    if len(cuts) < 2:
        return cuts
    alpha = np.log(np.diff(cuts))
    proposal = alpha + step * rng.standard_normal(len(alpha))
    new = np.concatenate([[0.0], np.cumsum(np.exp(proposal))])
    log_ratio = (_loglik(new, eta, codes) - _loglik(cuts, eta, codes)
                 + float(np.sum(proposal - alpha)))
    return new if np.log(rng.random()) < log_ratio else cuts


def _latent(eta: np.ndarray, cuts: np.ndarray, codes: np.ndarray,
            rng: np.random.Generator) -> np.ndarray:
    """Exact draws of ``y* ~ N(eta, 1)`` truncated to each row's category interval."""
    edges = _edges(cuts)
    a, b = edges[codes] - eta, edges[codes + 1] - eta
    lo, hi, flip = _log_interval(a, b)
    uniform = rng.random(len(eta))
    log_v = hi + np.log(uniform + (1 - uniform) * np.exp(lo - hi))
    x = ndtri_exp(np.minimum(log_v, 0.0))
    x = np.where(flip, -x, x)
    return eta + np.clip(x, a, b)


def _check(state: OrdinalState, p: int, n_levels: int, rand: RandomDesign | None,
           name: str) -> None:
    if state.beta.shape != (p,) or state.cuts.shape != (n_levels - 1,) or \
            not (np.isfinite(state.beta).all() and np.all(np.diff(state.cuts) > 0)):
        raise SamplerError(f"imputing '{name}': the sampler state does not match {p} columns "
                           f"of X and {n_levels} observed categories")
    if rand is not None:
        if state.u is None or state.omega is None:
            raise SamplerError(f"imputing '{name}': the sampler state has no random effects")
        check_state(state.u, state.omega, rand.g_obs.n, rand.scale.size, name)


def _check_target(t: Target, state: object | None) -> OrdinalState | None:
    if state is not None and not isinstance(state, OrdinalState):
        raise SamplerError(f"imputing '{t.name}': the sampler state is not an OrdinalState")
    return state


@register("mixed_ordinal_probit")
def _mixed_ordinal(t: Target, rng: np.random.Generator,
                   state: object | None) -> tuple[np.ndarray, OrdinalState | None]:
    if t.Z is None:
        raise SamplerError(f"imputing '{t.name}': a two-level sampler needs a random design")
    return draw_2l_polr(t.y, t.observed, t.X, t.Z, t.grouping, rng, t.n_categories,
                        _check_target(t, state), name=t.name)


@register("ordinal_probit")
def _ordinal(t: Target, rng: np.random.Generator,
             state: object | None) -> tuple[np.ndarray, OrdinalState | None]:
    return draw_polr(t.y, t.observed, t.X, rng, t.n_categories, _check_target(t, state),
                     name=t.name)
