"""Logistic imputation with several grouping factors (``ml.bin``) by Polya-Gamma Gibbs.

The imputation model is the logistic mixed model

    logit P(y = 1) = X beta + Z_c u_c + sum_k v_k[b_k],
    u_c ~ N(0, Omega),   v_k[j] ~ N(0, tau_k),

with ``u`` the random intercept and slopes over the target's main grouping
(:attr:`~.registry.TargetBatch.grouping`) and ``v_k`` the random intercepts of
the extra blocks (:attr:`~.registry.TargetBatch.blocks`). It is the two-level
sampler of :mod:`.logit_2l` extended by the blocks exactly as :mod:`.normal_ml`
extends the normal one: given the Polya-Gamma draws ``w_i ~ PG(1, eta_i)``
(:func:`~.logit_2l.sample_pg1`) the working response ``kappa / w`` (``kappa =
y - 1/2``) is normal with mean ``eta`` and precision ``w``, so each update of
:mod:`.normal_ml` holds with ``sigma2 = 1`` and the rows weighted by ``w``. One
sweep per call, warm-started from a :class:`MultilevelBinaryState`:

1. ``w | eta``: Polya-Gamma;
2. for each block nested in the main grouping (the school of a class):
   ``(beta_0, v_k) | slopes, v_-k, Omega, tau_k, w`` with ``u`` integrated out
   (the rows of a main cluster have precision ``(W^-1 + Z_c Omega Z_c')^-1``,
   by Woodbury from the weighted cluster moments), ``beta_0`` with ``v_k``
   integrated out too and then discarded
   (:func:`~.normal_ml.draw_intercept_block`);
3. ``(beta, u) | v, Omega, w``: the two-level update
   (:func:`~.normal_2l.draw_effects`, prior ``N(0, 5^2)`` per standardised
   coefficient as in :mod:`.logit_2l`) on the working response minus
   ``sum_k v_k``;
4. for each other (crossed) block: ``(beta_0, v_k) | rest``, cluster sums of
   ``w`` and of ``kappa - w * (eta - beta_0 - v_k)``;
5. ``Omega | u`` and ``tau_k | v_k``: inverse-Wishart
   (:func:`~.normal_2l.draw_omega`, ``tau_k`` with ``q = 1``).

Missing rows are imputed by ``Bernoulli(logistic(X beta + Z u_c + sum_k
v_k))``. With no blocks the sampler is :func:`~.logit_2l.draw_2l_bin_batch`
itself (the same draws from the same generators). The first call starts as the
two-level sampler does (the single-level logistic fit, ``u = 0``, ``Omega =
I`` on scaled Z) with ``v_k = 0`` and ``tau_k = 1``. Every array has a leading
chain axis and chain ``c`` draws from its own generator only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.special import expit

from ...errors import SamplerError
from .common import check_finite, per_chain
from .logit_2l import (
    OMEGA_START,
    BinaryState,
    binary_design,
    coef_prior,
    draw_2l_bin_batch,
    sample_pg1,
    weighted_moments,
)
from .normal_2l import check_state, draw_effects, draw_omega, pd_inverse, random_part_batch
from .normal_ml import (
    block_part,
    blocks_fit,
    draw_intercept_block,
    marginal_moments,
    nested_parent,
    z_sums,
)
from .registry import TargetBatch, register
from .single import fit_multinomial

__all__ = ["MultilevelBinaryState", "draw_ml_bin_batch"]


@dataclass
class MultilevelBinaryState:
    """Warm-start state of a batch of ``C`` chains of :func:`draw_ml_bin_batch` (logit scale).

    Attributes
    ----------
    main : BinaryState
        ``beta`` (C, p) on the original columns, ``u`` (C, G, q) and ``omega`` (C, q, q).
    v : tuple of ndarray, shape (C, G_k)
        Random intercepts of each extra block.
    tau : ndarray, shape (C, K)
        Their variances.
    """

    main: BinaryState
    v: tuple[np.ndarray, ...]
    tau: np.ndarray


def draw_ml_bin_batch(t: TargetBatch, rngs: list[np.random.Generator],
                      state: MultilevelBinaryState | BinaryState | None = None
                      ) -> tuple[np.ndarray, MultilevelBinaryState | BinaryState]:
    """One Polya-Gamma Gibbs sweep of the multilevel logistic model per chain, then imputations.

    Parameters
    ----------
    t : TargetBatch
        The target in ``C`` chains; ``t.blocks`` the extra random-intercept blocks.
    rngs : list of numpy.random.Generator
        One per chain; chain ``c`` draws from ``rngs[c]`` only.
    state : MultilevelBinaryState, optional
        The batch's state after the previous call (not modified), ``None`` at the
        first; a :class:`~.logit_2l.BinaryState` when ``t.blocks`` is empty.

    Returns
    -------
    imputations : ndarray, shape (C, n_missing)
        0/1 values.
    state : MultilevelBinaryState or BinaryState
        The latter (the two-level sampler's) when there are no blocks.

    Raises
    ------
    SamplerError
        Observed values other than 0 and 1, non-finite inputs, or a state that does
        not fit.
    """
    if not t.blocks:
        if state is not None and not isinstance(state, BinaryState):
            raise SamplerError(f"imputing '{t.name}': the sampler state is not a BinaryState")
        return draw_2l_bin_batch(t, rngs, state)
    if state is not None and not isinstance(state, MultilevelBinaryState):
        raise SamplerError(f"imputing '{t.name}': the sampler state is not a "
                           "MultilevelBinaryState")
    log, design, xs, z_scale = binary_design(t)
    y_obs, z, n = t.y_obs, t.z_obs, len(t.y_obs)
    if z is None:
        raise SamplerError(f"imputing '{t.name}': a multilevel sampler needs a random design")
    zs = z / z_scale[:, 1:, None]
    outer = z_scale[:, :, None] * z_scale[:, None, :]
    obs_blocks = [g_obs for g_obs, _ in t.blocks]
    if state is None:
        q = z_scale.shape[1]
        omega = OMEGA_START * np.broadcast_to(np.eye(q), (t.chains, q, q))
        coef = np.zeros(design.keep.shape)
        for c in range(t.chains):
            theta, _ = fit_multinomial(xs[c][design.keep[c]].T, y_obs.astype(int), 2,
                                       np.ones(n), log)
            coef[c, design.keep[c]] = theta[:, 0]
        eta = (coef[:, None, :] @ xs)[:, 0]
        v = [np.zeros((t.chains, g.n)) for g in obs_blocks]
        tau = np.full((t.chains, len(t.blocks)), OMEGA_START)
    else:
        omega, v, tau = _checked_state(t, state, z_scale.shape[1])
        omega = omega * outer
        beta = state.main.beta
        coef = beta * design.keep  # the slopes; the intercept is redrawn before it is used
        stored = beta.copy()
        stored[:, 0] += np.sum(beta[:, 1:] * t.x_offset[:, 1:], axis=1)
        eta = ((stored[:, None, :] @ t.x_obs)[:, 0]
               + random_part_batch(t.z_obs, state.main.u, t.g_obs.codes)
               + block_part(v, obs_blocks))
    w = np.stack([sample_pg1(eta[c], rng) for c, rng in enumerate(rngs)])
    kappa = y_obs - 0.5
    mom = weighted_moments(xs, zs, t.g_obs, w, kappa)
    omega_inv = pd_inverse(omega, log, chains=True)
    parents = [nested_parent(t.grouping, g_obs, g_mis, t.observed) for g_obs, g_mis in t.blocks]
    if any(parent is not None for parent in parents):  # step 2
        slopes = coef.copy()
        slopes[:, 0] = 0.0
        fixed = (slopes[:, None, :] @ xs)[:, 0]
        marginal = marginal_moments(mom, omega_inv, np.ones(t.chains), log)
        for k, parent in enumerate(parents):
            if parent is None:
                continue
            rest = (fixed + block_part(v, obs_blocks)
                    - np.take(v[k], obs_blocks[k].codes, axis=1))
            score = marginal.score(z_sums(t, z_scale, kappa - w * rest))
            v[k] = draw_intercept_block(parent.segment_sums(marginal.info),
                                         parent.segment_sums(score), tau[:, k], rngs)[1]
    offset = block_part(v, obs_blocks)  # step 3
    weighted = w * offset
    prior = coef_prior(design.scale)
    effects = draw_effects(replace(mom, xtx=mom.xtx + prior,
                                   xtr=mom.xtr - (xs @ weighted[:, :, None])[..., 0],
                                   ztr=mom.ztr - z_sums(t, z_scale, weighted)),
                           omega_inv, rngs, log, design.keep)
    coef = effects.coef.copy()
    fitted = (coef[:, None, :] @ xs)[:, 0] + random_part_batch(zs, effects.u, t.g_obs.codes)
    for k, g_obs in enumerate(obs_blocks):  # step 4
        if parents[k] is not None:
            continue
        before = np.take(v[k], g_obs.codes, axis=1)
        rest = fitted - coef[:, :1] + offset - before
        intercept, v[k] = draw_intercept_block(g_obs.segment_sums(w),
                                                g_obs.segment_sums(kappa - w * rest),
                                                tau[:, k], rngs)
        fitted += (intercept - coef[:, 0])[:, None]
        coef[:, 0] = intercept
        offset += np.take(v[k], g_obs.codes, axis=1) - before
    tau = np.stack([draw_omega(vk[:, :, None], rngs, log)[0][:, 0, 0] for vk in v], axis=1)
    omega = draw_omega(effects.u, rngs, log)[0]  # step 5
    u_rows = effects.u / z_scale[:, None, :]
    eta_mis = ((design.shifted(coef)[:, None, :] @ t.x_mis)[:, 0]
               + random_part_batch(t.z_mis, u_rows, t.g_mis.codes)
               + block_part(v, [g_mis for _, g_mis in t.blocks]))
    check_finite(eta_mis, t.name, "linear predictors of the missing rows")
    draws = per_chain(rngs, lambda rng: rng.random(eta_mis.shape[1]))
    main = BinaryState(beta=design.beta(coef), u=u_rows, omega=omega / outer)
    log.warn()
    return ((draws < expit(eta_mis)).astype(float),
            MultilevelBinaryState(main=main, v=tuple(v), tau=tau))


def _checked_state(t: TargetBatch, state: MultilevelBinaryState, q: int
                   ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """``(Omega (Z unscaled), v, tau)`` of a state that fits the batch.

    Raises
    ------
    SamplerError
        Shapes that do not fit the batch, or non-finite / non-positive variances.
    """
    main = state.main
    check_state(main.u, main.omega, t.grouping.n, q, t.name, chains=t.chains)
    tau = np.asarray(state.tau, dtype=float)
    if main.beta.shape != t.x_offset.shape or not blocks_fit(t, state.v, tau):
        raise SamplerError(f"imputing '{t.name}': the sampler state does not match "
                           f"{t.chains} chain(s), {t.x_offset.shape[1]} columns of X and "
                           f"blocks of {[g.n for g, _ in t.blocks]} clusters, or has variances "
                           "that are not finite and positive")
    return main.omega, list(state.v), tau


@register("multilevel_logit", batched=True)
def _multilevel_logit(t: TargetBatch, rngs: list[np.random.Generator], state: object | None
                      ) -> tuple[np.ndarray, MultilevelBinaryState | BinaryState]:
    if t.z_obs is None:
        raise SamplerError(f"imputing '{t.name}': a multilevel sampler needs a random design")
    if state is not None and not isinstance(state, MultilevelBinaryState | BinaryState):
        raise SamplerError(f"imputing '{t.name}': the sampler state is not a "
                           "MultilevelBinaryState")
    return draw_ml_bin_batch(t, rngs, state)
