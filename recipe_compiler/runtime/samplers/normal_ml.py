"""Normal imputation with several grouping factors (``ml.norm``, ``ml.pmm``).

The imputation model is the linear mixed model

    y = X beta + Z_c u_c + sum_k v_k[b_k] + e,
    u_c ~ N(0, Omega),   v_k[j] ~ N(0, tau_k),   e ~ N(0, sigma2),

with ``u`` the random intercept and slopes over the target's main grouping
(:attr:`~.registry.TargetBatch.grouping`) and ``v_k`` the random intercepts of
the extra blocks (:attr:`~.registry.TargetBatch.blocks`: classes in schools,
or raters crossed with items). It extends the two-level sampler of
:mod:`.normal_2l` by blockwise Gibbs, one sweep per call, warm-started from a
:class:`MultilevelBatchState`:

1. for each block nested in the main grouping (every main cluster inside one of
   its clusters: the class in its school): ``(beta_0, v_k) | slopes, v_-k,
   Omega, tau_k, sigma2`` with ``u`` integrated out (``beta_0`` the intercept,
   drawn with ``v_k`` integrated out too, then ``v_k | beta_0``, and
   ``beta_0`` discarded). The rows of a main cluster have precision
   ``V_c^-1 = (sigma2 I + Z_c Omega Z_c')^-1``, applied by Woodbury from the
   cluster's moments (:class:`Marginal`), and a block cluster sums its main
   clusters' ``1'V_c^-1 1`` and ``1'V_c^-1 r_c``;
2. ``(beta, u) | v, Omega, sigma2``: the two-level block update
   (:func:`~.normal_2l.draw_effects`, ``beta`` with ``u`` integrated out) on
   the working response ``y - sum_k v_k``; its :class:`~.normal_2l.Moments`
   are those of ``y`` (computed once per call) minus those of ``sum_k v_k``
   (one product with X and ``q`` segment sums); this redraws the intercept
   and ``u`` that step 1 integrated out, so steps 1-2 are a partially
   collapsed Gibbs sampler and nested blocks are drawn exactly given the
   slopes and variances;
3. for each other (crossed) block: ``(beta_0, v_k) | rest``, ``beta_0`` with
   ``v_k`` integrated out, then every ``v_k[j]`` from its normal full
   conditional (cluster sums by :meth:`Grouping.segment_sums`);
4. ``Omega | u`` and ``tau_k | v_k``: inverse-Wishart (:func:`~.normal_2l.draw_omega`,
   prior ``IW(q + 1, 0.01 I)``, for ``tau_k`` with ``q = 1``, that is
   ``IG(1, 0.005)``); ``sigma2 | rest``: inverse-gamma, prior ``IG(0.001, 0.001)``
   (the two-level sampler's priors, on the standardised scale).

Drawing the intercept with a block's effects integrated out removes the
posterior ridge between the intercept and the mean of ``v_k`` (a lag-1
autocorrelation of the intercept of about 0.7 in a three-level test without
it, about 0 with it), as step 2 does for ``u``; integrating ``u`` out of the
nested blocks' draw lets ``v_k`` and ``tau_k`` leave the start ``v_k = 0``
at once (conditionally on ``u`` the school effects are pinned by the class
effects). With no blocks the sampler is :func:`~.normal_2l.draw_2l_batch`
itself (the same draws from the same generators). The first call starts, as
the two-level sampler does, from OLS and ANOVA-type moment estimates (those of
:mod:`.normal_2l`), with ``v_k = 0`` and ``tau_k`` at the main grouping's
random-intercept variance.

A call costs the two-level sampler's work plus a few passes over the observed
rows (the moments of ``sum_k v_k``, the residual, a segment sum per block)
and, with nested blocks, a second batched Cholesky factorisation of the
per-cluster ``q x q`` precisions (step 1 takes its cluster sums from the
moments); with 100,000 rows (1,000 schools x 10 classes, a random slope) and
5 chains that is about 10 ms on top of the two-level sampler's 40 ms (ml.norm).
Every array has a leading chain axis and chain ``c`` draws from its own
generator only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...data.grouping import Grouping
from ...errors import SamplerError
from .common import CentredDesign, per_chain, standard_normal, standardised
from .matching import match_donors_batch
from .normal_2l import (
    SIGMA2_PRIOR,
    Moments,
    TwoLevelBatchState,
    chain_moments,
    check_state,
    draw_2l_batch,
    draw_effects,
    draw_omega,
    initial_state,
    pd_inverse,
    random_part_batch,
    solve_lower,
)
from .registry import TargetBatch, register
from .single import Recovery, check_finite, cholesky

__all__ = ["MultilevelBatchState", "draw_intercept_block", "draw_ml_batch"]


@dataclass
class MultilevelBatchState:
    """Warm-start state of a batch of ``C`` chains of :func:`draw_ml_batch`, in y's units.

    Attributes
    ----------
    main : TwoLevelBatchState
        ``beta`` (C, p) on the original columns, ``u`` (C, G, q), ``omega``
        (C, q, q) and ``sigma2`` (C,).
    v : tuple of ndarray, shape (C, G_k)
        Random intercepts of each extra block.
    tau : ndarray, shape (C, K)
        Their variances.
    """

    main: TwoLevelBatchState
    v: tuple[np.ndarray, ...]
    tau: np.ndarray


def draw_ml_batch(t: TargetBatch, rngs: list[np.random.Generator],
                  state: MultilevelBatchState | TwoLevelBatchState | None = None, *,
                  pmm: bool = True) -> tuple[np.ndarray, MultilevelBatchState | TwoLevelBatchState]:
    """One Gibbs sweep of the multilevel model in each chain, then imputations.

    Parameters
    ----------
    t : TargetBatch
        The target in ``C`` chains; ``t.blocks`` the extra random-intercept blocks.
    rngs : list of numpy.random.Generator
        One per chain; chain ``c`` draws from ``rngs[c]`` only.
    state : MultilevelBatchState, optional
        The batch's state after the previous call (not modified), ``None`` at the
        first; a :class:`~.normal_2l.TwoLevelBatchState` when ``t.blocks`` is empty.
    pmm : bool
        ``True`` for ml.pmm, ``False`` for ml.norm.

    Returns
    -------
    imputations : ndarray, shape (C, n_missing)
    state : MultilevelBatchState or TwoLevelBatchState
        The latter (the two-level sampler's) when there are no blocks.

    Raises
    ------
    SamplerError
        Non-finite observed values or predictors, or a state that does not fit.

    Notes
    -----
    ml.norm imputes ``X beta + Z u_c + sum_k v_k + N(0, sigma2)`` with the drawn
    values. ml.pmm matches as 2l.pmm does (:func:`~.normal_2l.draw_2l_batch`):
    observed rows are predicted with the mean of the conditional posterior of
    ``beta`` (step 2), missing rows with the drawn ``beta``, both with the drawn
    ``u`` and ``v_k`` of their clusters; each missing row takes the observed y of
    one of its ``donors`` nearest observed rows.
    """
    if not t.blocks:
        if state is not None and not isinstance(state, TwoLevelBatchState):
            raise SamplerError(f"imputing '{t.name}': the sampler state is not a "
                               "TwoLevelBatchState")
        return draw_2l_batch(t, rngs, state, pmm=pmm)
    if state is not None and not isinstance(state, MultilevelBatchState):
        raise SamplerError(f"imputing '{t.name}': the sampler state is not a "
                           "MultilevelBatchState")
    log, y_center, y_scale, ys, design = standardised(t)
    y_obs = t.y_obs
    mom, z_scale = chain_moments(t.x_obs, t.z_obs, t.g_obs, design, ys, t.name)
    units = z_scale / y_scale
    outer = units[:, :, None] * units[:, None, :]
    if state is None:
        omega, sigma2 = initial_state(design, mom, t.g_obs.sizes, float(ys @ ys))
        coef = np.linalg.solve(design.gram, mom.xtr[..., None])[..., 0]  # OLS
        v = [np.zeros((t.chains, g_obs.n)) for g_obs, _ in t.blocks]
        tau = np.repeat(omega[:, :1, 0], len(t.blocks), axis=1)
    else:
        omega, sigma2, v, tau = _standardised_state(t, state, units.shape[1], y_scale)
        omega = omega * outer
        coef = state.main.beta * design.keep / y_scale  # slopes; the intercept is not used
    sweep = _sweep(t, design, mom, z_scale, ys, coef, omega, sigma2, v, tau, rngs, log)
    u_rows = sweep.u / z_scale[:, None, :]
    pred_mis = ((design.shifted(sweep.coef)[:, None, :] @ t.x_mis)[:, 0]
                + random_part_batch(t.z_mis, u_rows, t.g_mis.codes)
                + block_part(sweep.v, [g_mis for _, g_mis in t.blocks]))
    check_finite(pred_mis, t.name, "predictions of the missing rows")
    if pmm:
        pred_obs = ((design.shifted(sweep.coef_mean)[:, None, :] @ t.x_obs)[:, 0]
                    + random_part_batch(t.z_obs, u_rows, t.g_obs.codes)
                    + block_part(sweep.v, [g_obs for g_obs, _ in t.blocks]))
        out = y_obs[match_donors_batch(pred_obs, pred_mis, t.donors, rngs)]
    else:
        noise = standard_normal(rngs, (pred_mis.shape[1],))
        out = y_center + y_scale * (pred_mis + np.sqrt(sweep.sigma2)[:, None] * noise)
    beta = design.beta(sweep.coef) * y_scale
    beta[:, 0] += y_center
    main = TwoLevelBatchState(beta=beta, u=sweep.u / units[:, None, :],
                              omega=sweep.omega / outer, sigma2=sweep.sigma2 * y_scale**2)
    new_state = MultilevelBatchState(main=main, v=tuple(vk * y_scale for vk in sweep.v),
                                     tau=sweep.tau * y_scale**2)
    log.warn()
    return out, new_state


@dataclass(frozen=True, eq=False)
class _Sweep:
    """The draws of one sweep on the standardised scale (Z columns scaled)."""

    coef: np.ndarray
    coef_mean: np.ndarray
    u: np.ndarray
    omega: np.ndarray
    sigma2: np.ndarray
    v: list[np.ndarray]
    tau: np.ndarray


def _sweep(t: TargetBatch, design: CentredDesign, mom: Moments, z_scale: np.ndarray,
           ys: np.ndarray, coef: np.ndarray, omega: np.ndarray, sigma2: np.ndarray,
           v: list[np.ndarray], tau: np.ndarray, rngs: list[np.random.Generator],
           log: Recovery) -> _Sweep:
    """Steps 1-4 of the module docstring, once, for every chain.

    ``coef`` are the previous sweep's coefficients (of the centred design), used by
    step 1 for the blocks nested in the main grouping; ``v`` is not modified.
    """
    obs_blocks = [g_obs for g_obs, _ in t.blocks]
    parents = [nested_parent(t.grouping, g, g_mis, t.observed) for g, g_mis in t.blocks]
    v = list(v)
    omega_inv = pd_inverse(omega, log, chains=True)
    if any(parent is not None for parent in parents):
        slopes = coef * (np.arange(coef.shape[1]) > 0)
        # Z_c'(y - X slopes) from the moments (the design is centred: no intercept part)
        base = mom.ztr - (mom.ztx @ slopes[:, None, :, None])[..., 0]
        marginal = marginal_moments(mom, omega_inv, sigma2, log)
        for k, parent in enumerate(parents):
            if parent is None:
                continue
            sums = base.copy()
            for j, (g_obs, other) in enumerate(zip(obs_blocks, parents, strict=True)):
                if j == k:
                    continue
                if other is None:
                    sums -= z_sums(t, z_scale, np.take(v[j], g_obs.codes, axis=1))
                else:  # constant within each main cluster: Z_c'1 v_j
                    sums -= np.take(v[j], other.codes, axis=1)[..., None] * mom.ztz[..., 0]
            score = marginal.score(sums)
            v[k] = draw_intercept_block(parent.segment_sums(marginal.info),
                                         parent.segment_sums(score), tau[:, k], rngs)[1]
    offset = block_part(v, obs_blocks)
    effects = draw_effects(_minus(mom, t, design, z_scale, v, parents).scaled(1 / sigma2),
                           omega_inv, rngs, log, design.keep)
    coef = effects.coef.copy()
    fitted = ((design.shifted(coef)[:, None, :] @ t.x_obs)[:, 0]
              + random_part_batch(t.z_obs, effects.u / z_scale[:, None, :], t.g_obs.codes))
    resid = ys - fitted - offset  # (C, n_obs)
    for k, g_obs in enumerate(obs_blocks):
        if parents[k] is not None:
            continue
        partial = resid + np.take(v[k], g_obs.codes, axis=1) + coef[:, :1]
        intercept, v[k] = draw_intercept_block(g_obs.sizes / sigma2[:, None],
                                                g_obs.segment_sums(partial) / sigma2[:, None],
                                                tau[:, k], rngs)
        coef[:, 0] = intercept
        resid = partial - np.take(v[k], g_obs.codes, axis=1) - intercept[:, None]
    new_tau = np.stack([draw_omega(vk[:, :, None], rngs, log)[0][:, 0, 0] for vk in v], axis=1)
    omega = draw_omega(effects.u, rngs, log)[0]
    rss = np.maximum(np.einsum("cn,cn->c", resid, resid), 1e-12 * float(ys @ ys))
    gamma = per_chain(rngs, lambda rng: rng.gamma(SIGMA2_PRIOR + len(ys) / 2))
    sigma2 = (SIGMA2_PRIOR + rss / 2) / gamma
    coef_mean = effects.coef_mean.copy()  # moved along with the intercept of step 3
    coef_mean[:, 0] += coef[:, 0] - effects.coef[:, 0]
    return _Sweep(coef=coef, coef_mean=coef_mean, u=effects.u, omega=omega, sigma2=sigma2,
                  v=v, tau=new_tau)


@dataclass(frozen=True, eq=False)
class Marginal:
    """Per main cluster, the precision ``V_c^-1`` of its rows with ``u_c`` integrated out.

    ``V_c = sigma2 I + Z_c Omega Z_c'``, so by Woodbury ``V_c^-1 = I / sigma2 - Z_c
    P_c^-1 Z_c' / sigma2^2`` with ``P_c = Omega^-1 + Z_c'Z_c / sigma2 = L L'``.
    ``ones`` is ``L^-1 Z_c'1`` (C, G, q) and ``info`` is ``1'V_c^-1 1`` (C, G).
    """

    chol: np.ndarray
    ones: np.ndarray
    info: np.ndarray
    sigma2: np.ndarray

    def score(self, sums: np.ndarray) -> np.ndarray:
        """``1'V_c^-1 r_c`` (C, G) from ``Z_c'r_c`` (C, G, q) (see :func:`z_sums`)."""
        solved = solve_lower(self.chol, sums[..., None])[..., 0]
        return (sums[..., 0] / self.sigma2
                - np.einsum("cga,cga->cg", self.ones, solved) / self.sigma2**2)


def marginal_moments(mom: Moments, omega_inv: np.ndarray, sigma2: np.ndarray,
                     log: Recovery) -> Marginal:
    """The :class:`Marginal` of unweighted moments (scaled Z, standardised y)."""
    s2 = sigma2[:, None]
    chol = cholesky(mom.ztz / s2[..., None, None] + omega_inv[:, None], log,
                    "cluster precision matrices", chains=True)
    # Z_c'1 is column 0 of Z_c'Z_c (column 0 of the scaled Z is the intercept, 1)
    ones = solve_lower(chol, mom.ztz[..., :1])[..., 0]
    info = mom.ztz[..., 0, 0] / s2 - np.einsum("cga,cga->cg", ones, ones) / s2**2
    return Marginal(chol=chol, ones=ones, info=info, sigma2=s2)


def draw_intercept_block(info: np.ndarray, score: np.ndarray, tau: np.ndarray,
                          rngs: list[np.random.Generator]) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``(beta_0, v) | rest``: ``beta_0`` with ``v`` integrated out, then ``v | beta_0``.

    For each cluster ``j`` of the block, the rest of the model contributes the
    log-likelihood ``-info_j (beta_0 + v_j)^2 / 2 + score_j (beta_0 + v_j)``, shape
    (C, G): ``info_j = n_j / sigma2`` and ``score_j`` the cluster's residual sum
    over ``sigma2`` with ``u`` given, or ``1'V_c^-1 1`` and ``1'V_c^-1 r_c`` summed
    over the main clusters ``c`` in ``j`` with ``u`` integrated out (nested blocks).
    With ``v_j ~ N(0, tau)`` and a flat prior, ``beta_0`` is normal with precision
    ``sum_j info_j / (1 + tau info_j)`` and mean ``sum_j score_j / (1 + tau info_j)``
    over it; then ``v_j`` is normal with precision ``info_j + 1 / tau`` and mean
    ``(score_j - info_j beta_0)`` over it.
    """
    t2 = tau[:, None]
    shrink = 1.0 / (1.0 + t2 * info)
    precision = np.sum(info * shrink, axis=1)
    noise = standard_normal(rngs, (info.shape[1] + 1,))
    intercept = np.sum(score * shrink, axis=1) / precision + noise[:, 0] / np.sqrt(precision)
    cluster_precision = info + 1.0 / t2
    mean = (score - info * intercept[:, None]) / cluster_precision
    return intercept, mean + noise[:, 1:] / np.sqrt(cluster_precision)


def nested_parent(main: Grouping, g_obs: Grouping, g_mis: Grouping,
                  observed: np.ndarray) -> Grouping | None:
    """The block's cluster of each main cluster if the main grouping is nested in the
    block (every main cluster's rows in one block cluster), else ``None``."""
    codes = np.empty(main.n_rows, dtype=np.intp)
    codes[observed], codes[~observed] = g_obs.codes, g_mis.codes
    parent = np.zeros(main.n, dtype=np.intp)
    parent[main.codes] = codes
    if not np.array_equal(parent[main.codes], codes):
        return None
    return Grouping(codes=parent, n=g_obs.n)


def z_sums(t: TargetBatch, z_scale: np.ndarray, f: np.ndarray) -> np.ndarray:
    """``Z_c'f`` per main cluster (scaled Z) of observed-row values ``f`` (C, n_obs): (C, G, q)."""
    seg = t.g_obs.segment_sums
    out = np.empty((*f.shape[:1], t.g_obs.n, z_scale.shape[1]))
    out[:, :, 0] = seg(f)
    for a in range(0 if t.z_obs is None else t.z_obs.shape[1]):
        assert t.z_obs is not None
        out[:, :, a + 1] = seg(t.z_obs[:, a] * f)
    return out / z_scale[:, None, :]


def _minus(mom: Moments, t: TargetBatch, design: CentredDesign, z_scale: np.ndarray,
           v: list[np.ndarray], parents: list[Grouping | None]) -> Moments:
    """The moments of the response minus ``sum_k v_k``, from those of the response.

    A nested block is constant within each main cluster, so its part comes from the
    clusters' moments (``Z_c'1``, ``X_c'1``); the others need a pass over the rows.
    """
    per_cluster = np.zeros(mom.ztr.shape[:2])
    rows: np.ndarray | None = None
    for (g_obs, _), vk, parent in zip(t.blocks, v, parents, strict=True):
        if parent is None:
            part = np.take(vk, g_obs.codes, axis=1)
            rows = part if rows is None else rows + part
        else:
            per_cluster += np.take(vk, parent.codes, axis=1)
    ztr = per_cluster[..., None] * mom.ztz[..., 0]
    xtr = np.einsum("cgp,cg->cp", mom.ztx[:, :, 0, :], per_cluster)  # centred X_c'1
    if rows is not None:
        ztr += z_sums(t, z_scale, rows)
        xtr += design.centre((t.x_obs @ rows[:, :, None])[..., 0])
    return Moments(xtx=mom.xtx, xtr=mom.xtr - xtr, ztz=mom.ztz, ztx=mom.ztx, ztr=mom.ztr - ztr)


def block_part(v: list[np.ndarray], groupings: list[Grouping]) -> np.ndarray:
    """Row-wise ``sum_k v_k[c, codes_k]`` over the (one or more) blocks, shape (C, n_rows)."""
    out = np.take(v[0], groupings[0].codes, axis=1)
    for vk, g in zip(v[1:], groupings[1:], strict=True):
        out += np.take(vk, g.codes, axis=1)
    return out


def _standardised_state(t: TargetBatch, state: MultilevelBatchState, q: int, y_scale: float
                        ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], np.ndarray]:
    """``(Omega (Z unscaled), sigma2, v, tau)`` of a checked state on the standardised y scale.

    Raises
    ------
    SamplerError
        A state whose shapes do not fit the batch, or non-finite / non-positive variances.
    """
    main = state.main
    check_state(main.u, main.omega, t.grouping.n, q, t.name, chains=t.chains)
    sigma2 = np.asarray(main.sigma2, dtype=float)
    tau = np.asarray(state.tau, dtype=float)
    if (sigma2.shape != (t.chains,) or not blocks_fit(t, state.v, tau)
            or not (np.isfinite(sigma2).all() and np.all(sigma2 > 0))):
        raise SamplerError(f"imputing '{t.name}': the sampler state does not match "
                           f"{t.chains} chain(s) and blocks of {[g.n for g, _ in t.blocks]} "
                           "clusters, or has variances that are not finite and positive")
    return (main.omega, sigma2 / y_scale**2, [vk / y_scale for vk in state.v],
            tau / y_scale**2)


def blocks_fit(t: TargetBatch, v: tuple[np.ndarray, ...], tau: np.ndarray) -> bool:
    """Whether a state's block effects ``v`` and variances ``tau`` fit the batch's blocks:
    shapes (C, G_k) and (C, K), ``v`` finite, ``tau`` finite and positive."""
    return (tau.shape == (t.chains, len(t.blocks))
            and [vk.shape for vk in v] == [(t.chains, g.n) for g, _ in t.blocks]
            and all(np.isfinite(vk).all() for vk in v)
            and bool(np.isfinite(tau).all() and np.all(tau > 0)))


def _multilevel(t: TargetBatch, rngs: list[np.random.Generator], state: object | None,
                pmm: bool) -> tuple[np.ndarray, MultilevelBatchState | TwoLevelBatchState]:
    if t.z_obs is None:
        raise SamplerError(f"imputing '{t.name}': a multilevel sampler needs a random design")
    if state is not None and not isinstance(state, MultilevelBatchState | TwoLevelBatchState):
        raise SamplerError(f"imputing '{t.name}': the sampler state is not a "
                           "MultilevelBatchState")
    return draw_ml_batch(t, rngs, state, pmm=pmm)


register("multilevel_normal", batched=True)(
    lambda t, rngs, state: _multilevel(t, rngs, state, pmm=False))
register("multilevel_pmm", batched=True)(
    lambda t, rngs, state: _multilevel(t, rngs, state, pmm=True))
