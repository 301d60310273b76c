"""Two-level normal imputation (``2l.norm``, ``2l.pmm``) by a warm-started Gibbs sampler.

The imputation model is the linear mixed model

    y = X beta + Z_c u_c + e,   u_c ~ N(0, Omega),   e ~ N(0, sigma2),

fitted to the observed rows by Gibbs sweeps that continue, call after call,
from a :class:`TwoLevelState` (one per target and chain):

1. ``(beta, u) | Omega, sigma2`` as one block: ``beta`` from its marginal
   posterior with ``u`` integrated out (flat prior; constant and aliased
   columns of X are dropped, see
   :func:`~recipe_compiler.runtime.samplers.single.fixed_design`), then every ``u_c``
   from its normal full conditional, batched over clusters; clusters without
   observed rows draw ``u_c ~ N(0, Omega)``;
2. ``Omega | u``: inverse-Wishart, prior ``IW(q + 1, 0.01 I)``;
3. ``sigma2 | beta, u``: inverse-gamma, prior ``IG(0.001, 0.001)``.

Drawing ``beta`` with ``u`` integrated out removes the strong posterior
correlation between the intercept and the mean of the random effects that makes
the plain ``beta | u``, ``u | beta`` sampler crawl; with one sweep per call
the chains then mix about as fast as ``Omega`` and ``sigma2`` do. The
marginal precision of ``beta`` comes from per-cluster sufficient statistics
(``Z_c'Z_c``, ``Z_c'X_c``, ``Z_c'y_c``: the :class:`Moments`, computed once
per call) by the Woodbury identity, and so does the residual sum of squares:
a call makes ``q + 1`` passes over the observed rows (the moments), one over
all rows (the predictions) and, for 2l.pmm, the donor search; a sweep costs
``O(G q^2 p + p^3)`` on top.

:func:`draw_2l_batch` updates a batch of chains in lockstep (the Gibbs loop's
sampler): every array gains a leading chain axis, each chain draws from its
own generator. :func:`draw_2l` is one chain's call.

Internally y is standardised (observed mean and sd), the fixed design is
centred through its cross-products and the columns of Z are scaled to unit
root-mean-square, so the weak priors above are on that scale and the
per-cluster solves are well conditioned; the state is kept in the original
units. Per-cluster algebra runs on ``(C, G, q, q)`` stacks: one batched
Cholesky factorisation, then triangular solves with explicit loops over ``q``
only (batched small-matrix ``solve``/``inv`` are slower at ``q <= 3``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...data.grouping import Grouping
from ...errors import SamplerError
from .common import CentredDesign, as_batch, per_chain, standard_normal, standardised
from .matching import match_donors_batch
from .registry import TargetBatch, register
from .single import Recovery, check_finite, cholesky

__all__ = ["TwoLevelBatchState", "TwoLevelState", "draw_2l", "draw_2l_batch"]

#: Inverse-Wishart prior of Omega on the standardised scale: IW(q + OMEGA_PRIOR_DF, S0 * I).
OMEGA_PRIOR_DF = 1
OMEGA_PRIOR_SCALE = 0.01
#: Inverse-gamma prior IG(a0, b0) of sigma2 on the standardised scale.
SIGMA2_PRIOR = 0.001


@dataclass
class TwoLevelState:
    """Warm-start state of one target's Bayesian linear mixed model in one chain.

    All in the original units of y, X and Z. :class:`TwoLevelBatchState` is the
    state of a batch of chains.

    Attributes
    ----------
    beta : ndarray, shape (p,)
        Fixed effects (zero for dropped columns).
    u : ndarray, shape (G, q)
        Random effects per cluster.
    omega : ndarray, shape (q, q)
        Random-effects covariance.
    sigma2 : float
        Residual variance.
    """

    beta: np.ndarray
    u: np.ndarray
    omega: np.ndarray
    sigma2: float


@dataclass
class TwoLevelBatchState:
    """:class:`TwoLevelState` of a batch of ``C`` chains (:func:`draw_2l_batch`).

    Attributes
    ----------
    beta : ndarray, shape (C, p)
    u : ndarray, shape (C, G, q)
    omega : ndarray, shape (C, q, q)
    sigma2 : ndarray, shape (C,)
    """

    beta: np.ndarray
    u: np.ndarray
    omega: np.ndarray
    sigma2: np.ndarray


@dataclass(frozen=True, eq=False)
class RandomDesign:
    """Random-effects design split into observed and missing rows, columns scaled.

    Attributes
    ----------
    z_obs, z_mis : ndarray, shape (n_obs, q) and (n_mis, q)
        ``Z / scale`` on the observed and on the missing rows.
    g_obs, g_mis : Grouping
        The clusters of those rows.
    scale : ndarray, shape (q,)
        Root-mean-square of Z's columns over the observed rows (1 if zero).
    """

    z_obs: np.ndarray
    z_mis: np.ndarray
    g_obs: Grouping
    g_mis: Grouping
    scale: np.ndarray


def random_design(Z: np.ndarray, grouping: Grouping, observed: np.ndarray,
                  name: str) -> RandomDesign:
    """Split and scale the random design; check it and the cluster codes.

    Raises
    ------
    SamplerError
        Shapes that do not match, cluster codes outside ``0 .. n_groups-1`` or
        a non-finite Z.
    """
    n = len(observed)
    groups, n_groups = grouping.codes, grouping.n
    if groups.shape != (n,) or Z.ndim != 2 or Z.shape[0] != n or Z.shape[1] < 1:
        raise SamplerError(f"imputing '{name}': groups must have shape ({n},) and Z "
                           f"({n}, q >= 1); got {groups.shape} and {Z.shape}")
    if groups.min() < 0 or groups.max() >= n_groups:
        raise SamplerError(f"imputing '{name}': cluster codes must lie in 0..{n_groups - 1}")
    z_obs = np.compress(observed, Z, axis=0)
    scale = np.sqrt(np.ones(len(z_obs)) @ z_obs**2 / len(z_obs))
    if not np.isfinite(scale).all():
        raise SamplerError(f"imputing '{name}': the random design Z is not finite")
    scale[scale == 0] = 1.0
    return RandomDesign(z_obs=z_obs / scale, z_mis=np.compress(~observed, Z, axis=0) / scale,
                        g_obs=grouping.subset(observed), g_mis=grouping.subset(~observed),
                        scale=scale)


@dataclass(frozen=True, eq=False)
class Moments:
    """Weighted sufficient statistics of the observed rows for the block update.

    With row weights ``W`` (inverse residual variances) and working response
    ``r``: ``xtx = X'WX`` (plus any prior precision), ``xtr = X'Wr``, and per
    cluster ``ztz = Z_c'W Z_c`` (G, q, q), ``ztx = Z_c'W X_c`` (G, q, d),
    ``ztr = Z_c'W r_c`` (G, q).
    """

    xtx: np.ndarray
    xtr: np.ndarray
    ztz: np.ndarray
    ztx: np.ndarray
    ztr: np.ndarray

    def scaled(self, factor: float | np.ndarray) -> Moments:
        """The statistics under weights multiplied by ``factor`` (one per chain in a batch)."""
        f = np.asarray(factor, dtype=float)

        def times(a: np.ndarray) -> np.ndarray:
            return a * f.reshape(f.shape + (1,) * (a.ndim - f.ndim))

        return Moments(xtx=times(self.xtx), xtr=times(self.xtr), ztz=times(self.ztz),
                       ztx=times(self.ztx), ztr=times(self.ztr))


def moments(xs: np.ndarray, rand: RandomDesign, response: np.ndarray,
            weights: np.ndarray | None = None, xtx: np.ndarray | None = None) -> Moments:
    """The :class:`Moments` of the observed rows.

    Parameters
    ----------
    xs : ndarray, shape (n_obs, d)
        Fixed design of the observed rows.
    rand : RandomDesign
    response : ndarray, shape (n_obs,)
        The (working) response ``r``.
    weights : ndarray, shape (n_obs,), optional
        Diagonal of ``W``, positive; unit weights when omitted.
    xtx : ndarray, shape (d, d), optional
        ``X'WX`` when the caller has it already.
    """
    z = rand.z_obs
    q = z.shape[1]
    zw, wr = (z, response) if weights is None else (z * weights[:, None], weights * response)
    blocks = rand.g_obs.crossprod(zw, np.hstack([z, xs, response[:, None]]))
    if xtx is None:
        xtx = (xs * (1.0 if weights is None else weights[:, None])).T @ xs
    return Moments(xtx=xtx, xtr=xs.T @ wr, ztz=blocks[:, :, :q], ztx=blocks[:, :, q:-1],
                   ztr=blocks[:, :, -1])


@dataclass(frozen=True, eq=False)
class Effects:
    """One draw of ``(beta, u)``, with the mean used by type-1 matching.

    Attributes
    ----------
    coef, u : ndarray
        The draw: coefficients of the centred fixed design (standardised y)
        and random effects (G, q); with a leading chain axis in a batch.
    coef_mean : ndarray
        Mean of the marginal posterior of ``beta`` given Omega and the weights.
    """

    coef: np.ndarray
    coef_mean: np.ndarray
    u: np.ndarray


def draw_effects(mom: Moments, omega_inv: np.ndarray,
                 rng: np.random.Generator | list[np.random.Generator], log: Recovery,
                 keep: np.ndarray | None = None) -> Effects:
    """Draw ``beta`` with ``u`` integrated out, then ``u | beta``, from :class:`Moments`.

    With ``P_c = Omega^-1 + Z_c'WZ_c``, the marginal posterior of ``beta`` is
    normal with precision ``X'WX - sum_c X_c'WZ_c P_c^-1 Z_c'WX_c`` and
    ``u_c | beta ~ N(P_c^-1 Z_c'W(r_c - X_c beta), P_c^-1)``; a cluster without
    rows has ``P_c = Omega^-1`` and draws from ``N(0, Omega)``.

    For a batch of chains, ``rng`` is a list of generators (one per chain, on
    the leading axis of every array) and ``keep`` ``(C, d)`` marks the
    coefficients that are not dropped (the others draw no noise).
    """
    chains = not isinstance(rng, np.random.Generator)
    chol_u = cholesky(mom.ztz + omega_inv[..., None, :, :], log, "cluster precision matrices",
                      chains=chains)
    solved_x = solve_upper(chol_u, solve_lower(chol_u, mom.ztx))
    solved_r = solve_upper(chol_u, solve_lower(chol_u, mom.ztr[..., None]))
    lead, (n_groups, q, d) = mom.ztx.shape[:-3], mom.ztx.shape[-3:]
    flat_t = np.swapaxes(mom.ztx.reshape((*lead, n_groups * q, d)), -1, -2)
    gram = mom.xtx - flat_t @ solved_x.reshape((*lead, n_groups * q, d))
    rhs = mom.xtr - (flat_t @ solved_r.reshape((*lead, n_groups * q, 1)))[..., 0]
    chol_b = cholesky(gram, log, "marginal precision of the fixed effects", chains=chains)
    z: np.ndarray
    noise: np.ndarray
    if isinstance(rng, np.random.Generator):
        z = np.asarray(rng.standard_normal(d))
        noise = np.asarray(rng.standard_normal(mom.ztr.shape))
    else:
        z = np.zeros((*lead, d))
        noise = np.empty(mom.ztr.shape)
        for c, r in enumerate(rng):
            k = slice(None) if keep is None else keep[c]
            z[c, k] = r.standard_normal(d if keep is None else int(keep[c].sum()))
            noise[c] = r.standard_normal(mom.ztr.shape[1:])
    half = np.linalg.solve(chol_b, rhs[..., None])
    both = np.linalg.solve(np.swapaxes(chol_b, -1, -2),
                           np.concatenate([half, half + z[..., None]], axis=-1))
    coef_mean, coef = both[..., 0], both[..., 1]
    u = (solved_r - solved_x @ coef[..., None, :, None])[..., 0]
    return Effects(coef=coef, coef_mean=coef_mean,
                   u=u + solve_upper(chol_u, noise[..., None])[..., 0])


def draw_2l(y: np.ndarray, observed: np.ndarray, X: np.ndarray, Z: np.ndarray,
            grouping: Grouping, rng: np.random.Generator,
            state: TwoLevelState | None = None, *, pmm: bool = True, donors: int = 5,
            name: str = "y", n_inner: int = 1) -> tuple[np.ndarray, TwoLevelState]:
    """One (or ``n_inner``) Gibbs update(s) of the mixed model, then imputations.

    One chain's call of :func:`draw_2l_batch` (a batch of one).

    Parameters
    ----------
    y : ndarray, shape (n,)
        Current completed values; entries at ``~observed`` are ignored.
    observed : ndarray of bool, shape (n,)
    X : ndarray, shape (n, p)
        Fixed design, including an intercept column.
    Z : ndarray, shape (n, q)
        Random design; column 0 is the random intercept (ones).
    grouping : Grouping
        The cluster of every row.
    rng : numpy.random.Generator
        Source of all randomness.
    state : TwoLevelState, optional
        State after the previous call (not modified); ``None`` starts from
        OLS and moment estimates of the variance components.
    pmm : bool
        ``True`` for 2l.pmm, ``False`` for 2l.norm.
    donors : int
        Donor pool size of 2l.pmm.
    name : str
        The target's name, for warnings and errors.
    n_inner : int
        Number of Gibbs sweeps before imputing (at least one).

    Returns
    -------
    imputations : ndarray, shape (n_missing,)
        New values for ``y[~observed]``, in that order.
    state : TwoLevelState
        The updated state.

    Raises
    ------
    SamplerError
        Fewer than two observed values, inconsistent shapes or state, no
        intercept column, or non-finite inputs.
    """
    batch, columns = as_batch(y, observed, X, Z, grouping, name, donors)
    random_design(Z, grouping, observed, name)  # checks Z and the cluster codes
    warm = None
    if state is not None:
        check_state(state.u, state.omega, grouping.n, Z.shape[1], name)
        warm = TwoLevelBatchState(beta=state.beta[None], u=state.u[None],
                                  omega=state.omega[None], sigma2=np.array([state.sigma2]))
    out, new = draw_2l_batch(batch, [rng], warm, pmm=pmm, n_inner=n_inner)
    return out[0], TwoLevelState(beta=columns.to_x(new.beta), u=new.u[0], omega=new.omega[0],
                                 sigma2=float(new.sigma2[0]))


def draw_2l_batch(t: TargetBatch, rngs: list[np.random.Generator],
                  state: TwoLevelBatchState | None = None, *, pmm: bool = True,
                  n_inner: int = 1) -> tuple[np.ndarray, TwoLevelBatchState]:
    """One (or ``n_inner``) Gibbs update(s) of the mixed model in each chain, then imputations.

    Parameters
    ----------
    t : TargetBatch
        The target in ``C`` chains (random slopes in ``z_obs``/``z_mis``, or none).
    rngs : list of numpy.random.Generator
        One per chain.
    state : TwoLevelBatchState, optional
        The batch's state after the previous call (not modified), ``None`` at the first.
    pmm : bool
        ``True`` for 2l.pmm, ``False`` for 2l.norm.
    n_inner : int
        Number of Gibbs sweeps before imputing (at least one).

    Returns
    -------
    imputations : ndarray, shape (C, n_missing)
    state : TwoLevelBatchState
        ``beta`` on the original (unshifted) columns.

    Raises
    ------
    SamplerError
        Non-finite observed values or predictors, or a state that does not fit.

    Notes
    -----
    2l.norm imputes ``X beta + Z u_c + N(0, sigma2)`` with the drawn values.
    2l.pmm matches as mice's type 1 for the fixed part: observed rows are
    predicted with the mean of the marginal posterior of ``beta`` (given the
    drawn Omega and sigma2, as ``lmer``'s fixed effects in miceadds' 2l.pmm),
    missing rows with the drawn ``beta``; both include the drawn ``u_c`` of
    their cluster, so observed and missing rows of one cluster share its
    random effects. (Predicting the observed rows with the shrunken BLUPs
    instead, as miceadds' ``match_sampled_pars = FALSE`` does, biased the
    slopes by about one between-imputation sd in simulations with random
    slopes and strong MAR.) Each missing row takes the observed y of one of its
    ``donors`` nearest observed rows.
    """
    log, y_center, y_scale, ys, design = standardised(t)
    y_obs = t.y_obs
    mom, z_scale = chain_moments(t.x_obs, t.z_obs, t.g_obs, design, ys, t.name)
    units = z_scale / y_scale
    outer = units[:, :, None] * units[:, None, :]
    if state is None:
        omega, sigma2 = initial_state(design, mom, t.g_obs.sizes, float(ys @ ys))
    else:
        check_state(state.u, state.omega, t.grouping.n, units.shape[1], t.name,
                    chains=t.chains)
        sigma2 = np.asarray(state.sigma2, dtype=float)
        if sigma2.shape != (t.chains,) or not (np.isfinite(sigma2).all() and np.all(sigma2 > 0)):
            raise SamplerError(f"imputing '{t.name}': the sampler state has residual variance "
                               f"{state.sigma2}")
        omega, sigma2 = state.omega * outer, sigma2 / y_scale**2
    effects, omega, sigma2 = _gibbs(mom, float(ys @ ys), len(ys), design.keep, omega, sigma2,
                                    max(n_inner, 1), rngs, log)
    u_rows = effects.u / z_scale[:, None, :]
    pred_mis = ((design.shifted(effects.coef)[:, None, :] @ t.x_mis)[:, 0]
                + random_part_batch(t.z_mis, u_rows, t.g_mis.codes))
    check_finite(pred_mis, t.name, "predictions of the missing rows")
    if pmm:
        pred_obs = ((design.shifted(effects.coef_mean)[:, None, :] @ t.x_obs)[:, 0]
                    + random_part_batch(t.z_obs, u_rows, t.g_obs.codes))
        out = y_obs[match_donors_batch(pred_obs, pred_mis, t.donors, rngs)]
    else:
        noise = standard_normal(rngs, (pred_mis.shape[1],))
        out = y_center + y_scale * (pred_mis + np.sqrt(sigma2)[:, None] * noise)
    beta = design.beta(effects.coef) * y_scale
    beta[:, 0] += y_center
    new_state = TwoLevelBatchState(beta=beta, u=effects.u / units[:, None, :],
                                   omega=omega / outer, sigma2=sigma2 * y_scale**2)
    log.warn()
    return out, new_state


def chain_moments(x: np.ndarray, z: np.ndarray | None, grouping: Grouping,
                  design: CentredDesign, response: np.ndarray,
                  name: str) -> tuple[Moments, np.ndarray]:
    """Unweighted :class:`Moments` (leading chain axis) of stored observed-row columns.

    ``x`` (C, p, n); ``z`` the random slopes (C, q - 1, n) or ``None``; ``response``
    (n,) shared by the chains or (C, n). Z is scaled to unit root-mean-square columns
    (the second result, (C, q)), X centred; per-cluster sums are one pass over the
    stored columns per random effect (``Grouping.segment_sums``), with no copy.

    Raises
    ------
    SamplerError
        A non-finite random design.
    """
    seg = grouping.segment_sums
    chains, p, n = x.shape
    q1 = 0 if z is None else z.shape[1]
    shape = (chains, grouping.n, q1 + 1)
    ztx, ztr, ztz = np.empty((*shape, p)), np.empty(shape), np.empty((*shape, q1 + 1))
    ztx[:, :, 0] = seg(x).transpose(0, 2, 1)
    ztr[:, :, 0] = seg(response)
    ztz[:, :, 0, 0] = grouping.sizes
    for a in range(q1):
        assert z is not None
        za = z[:, a]
        ztx[:, :, a + 1] = seg(x * za[:, None, :]).transpose(0, 2, 1)
        ztr[:, :, a + 1] = seg(za * response)
        ztz[:, :, a + 1, 0] = ztz[:, :, 0, a + 1] = ztx[:, :, a + 1, 0]
        for b in range(a, q1):
            ztz[:, :, a + 1, b + 1] = ztz[:, :, b + 1, a + 1] = seg(za * z[:, b])
    scale = np.sqrt(np.diagonal(ztz, axis1=2, axis2=3).sum(axis=1) / n)
    if not np.isfinite(scale).all():
        raise SamplerError(f"imputing '{name}': the random design Z is not finite")
    scale[scale == 0] = 1.0
    ztz /= scale[:, None, :, None] * scale[:, None, None, :]
    ztx /= scale[:, None, :, None]
    ztr /= scale[:, None, :]
    xtr = x @ response if response.ndim == 1 else (x @ response[:, :, None])[..., 0]
    return Moments(xtx=design.gram, xtr=design.centre(xtr), ztz=ztz,
                   ztx=design.centre(ztx), ztr=ztr), scale


def _gibbs(mom: Moments, yty: float, n: int, keep: np.ndarray, omega: np.ndarray,
           sigma2: np.ndarray, n_sweeps: int, rngs: list[np.random.Generator],
           log: Recovery) -> tuple[Effects, np.ndarray, np.ndarray]:
    """``n_sweeps`` sweeps ((beta, u), Omega, sigma2) per chain on the standardised scale.

    The residual sum of squares comes from the moments, not from another pass over the rows.
    """
    omega_inv = pd_inverse(omega, log, chains=True)
    for _ in range(n_sweeps):
        effects = draw_effects(mom.scaled(1 / sigma2), omega_inv, rngs, log, keep)
        omega, omega_inv = draw_omega(effects.u, rngs, log)
        b, u = effects.coef, effects.u
        fitted = (mom.ztx @ b[:, None, :, None])[..., 0]
        rss = (yty - 2 * np.sum(b * mom.xtr, axis=1)
               + (b[:, None, :] @ mom.xtx @ b[:, :, None])[:, 0, 0]
               - 2 * np.sum((u * (mom.ztr - fitted)).reshape(len(b), -1), axis=1)
               + np.sum((u[..., None, :] @ mom.ztz @ u[..., None])[..., 0, 0], axis=1))
        rss = np.maximum(rss, 1e-12 * yty)
        gamma = per_chain(rngs, lambda rng: rng.gamma(SIGMA2_PRIOR + n / 2))
        sigma2 = (SIGMA2_PRIOR + rss / 2) / gamma
    return effects, omega, sigma2


def random_part(z: np.ndarray, u: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Row-wise ``z[i] @ u[groups[i]]``: the random-effects part of the predictor."""
    out = z[:, 0] * u[groups, 0]
    for k in range(1, z.shape[1]):
        out += z[:, k] * u[groups, k]
    return out


def random_part_batch(z: np.ndarray | None, u: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """:func:`random_part` for a batch: per chain, ``u[c, g, 0] + sum_a z[c, a] * u[c, g,
    a + 1]`` at each row's cluster ``g`` (``z`` without the intercept column)."""
    out = np.take(u[:, :, 0], groups, axis=1)
    for a in range(0 if z is None else z.shape[1]):
        assert z is not None
        out += z[:, a] * np.take(u[:, :, a + 1], groups, axis=1)
    return out


def check_state(u: np.ndarray, omega: np.ndarray, n_groups: int, q: int, name: str,
                chains: int | None = None) -> None:
    """Raise :class:`SamplerError` if a state's ``u``/``omega`` do not fit G and q
    (with a leading axis of ``chains`` when given)."""
    lead = () if chains is None else (chains,)
    if u.shape != (*lead, n_groups, q) or omega.shape != (*lead, q, q) or \
            not (np.isfinite(u).all() and np.isfinite(omega).all()):
        raise SamplerError(f"imputing '{name}': the sampler state does not match "
                           f"{n_groups} clusters and {q} random effect(s), or is not finite")


def initial_state(design: CentredDesign, mom: Moments, sizes: np.ndarray,
                   yty: float) -> tuple[np.ndarray, np.ndarray]:
    """Start values of ``Omega`` and ``sigma2`` per chain on the standardised scale.

    ``sigma2`` is the pooled within-cluster variance of the OLS residuals and
    the random-effects variances all start at the between-cluster variance of
    the residual cluster means net of their sampling variance (ANOVA-type),
    both floored at 1% of the residual variance (and at 1e-6). All from the moments.
    """
    n = design.n
    coef = np.linalg.solve(design.gram, mom.xtr[..., None])[..., 0]
    rss = np.maximum(yty - np.sum(coef * mom.xtr, axis=1), 0.0)
    sums = mom.ztr[:, :, 0] - (mom.ztx[:, :, 0, :] @ coef[:, :, None])[..., 0]
    occupied = sizes > 0
    means = np.compress(occupied, sums, axis=1) / sizes[occupied]  # C order: exact per chain
    floor = np.maximum(0.01 * rss / n, 1e-6)
    within = rss - np.sum(sizes[occupied] * means**2, axis=1)
    sigma2 = np.maximum(within / max(n - int(occupied.sum()), 1), floor)
    between = np.var(means, axis=1) - sigma2 * float(np.mean(1 / sizes[occupied]))
    q = mom.ztz.shape[-1]
    return np.maximum(between, floor)[:, None, None] * np.eye(q), sigma2


def pd_inverse(omega: np.ndarray, log: Recovery, chains: bool = False) -> np.ndarray:
    """Inverse of covariance matrices ``(..., q, q)``, jittered first if not positive definite
    (each chain on its own with ``chains``)."""
    inv_chol = np.linalg.inv(cholesky(omega, log, "random-effects covariance", chains=chains))
    return np.swapaxes(inv_chol, -1, -2) @ inv_chol


def solve_lower(chol: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``L x = b`` for stacks ``L`` (..., q, q) and ``b`` (..., q, m)."""
    x = np.empty_like(b)
    for i in range(b.shape[-2]):
        dot = np.einsum("...k,...km->...m", chol[..., i, :i], x[..., :i, :])
        x[..., i, :] = (b[..., i, :] - dot) / chol[..., i, i, None]
    return x


def solve_upper(chol: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``L' x = b`` for stacks ``L`` (..., q, q) and ``b`` (..., q, m)."""
    x = np.empty_like(b)
    for i in reversed(range(b.shape[-2])):
        dot = np.einsum("...k,...km->...m", chol[..., i + 1:, i], x[..., i + 1:, :])
        x[..., i, :] = (b[..., i, :] - dot) / chol[..., i, i, None]
    return x


def draw_omega(u: np.ndarray, rng: np.random.Generator | list[np.random.Generator],
               log: Recovery) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``Omega | u`` from its inverse-Wishart full conditional.

    Posterior ``IW(q + OMEGA_PRIOR_DF + G, OMEGA_PRIOR_SCALE * I + u'u)``,
    sampled through the Bartlett decomposition of the Wishart precision. For a
    batch, ``u`` is ``(C, G, q)`` and ``rng`` a list with one generator per chain.

    Returns
    -------
    omega, omega_inv : ndarray, shape (q, q) or (C, q, q)
    """
    n_groups, q = u.shape[-2:]
    df = q + OMEGA_PRIOR_DF + n_groups
    scatter = OMEGA_PRIOR_SCALE * np.eye(q) + np.swapaxes(u, -1, -2) @ u
    chains = not isinstance(rng, np.random.Generator)
    chol_scatter = cholesky(scatter, log, "random-effects scatter matrix", chains=chains)
    lower, diagonal = np.tril_indices(q, -1), np.arange(q)
    bartlett = np.zeros((*u.shape[:-2], q, q))
    for c, r in enumerate([rng] if isinstance(rng, np.random.Generator) else rng):
        one = bartlett if isinstance(rng, np.random.Generator) else bartlett[c]
        one[diagonal, diagonal] = np.sqrt(r.chisquare(df - diagonal))
        one[lower] = r.standard_normal(q * (q - 1) // 2)
    # Omega^-1 = L^-T A A' L^-1 ~ Wishart(df, scatter^-1) with scatter = L L'.
    factor = np.linalg.solve(np.swapaxes(chol_scatter, -1, -2), bartlett)
    omega_inv = factor @ np.swapaxes(factor, -1, -2)
    inv_factor = np.linalg.inv(factor)
    return np.swapaxes(inv_factor, -1, -2) @ inv_factor, omega_inv


def _mixed_normal(t: TargetBatch, rngs: list[np.random.Generator], state: object | None,
                  pmm: bool) -> tuple[np.ndarray, TwoLevelBatchState]:
    if t.z_obs is None:
        raise SamplerError(f"imputing '{t.name}': a two-level sampler needs a random design")
    if state is not None and not isinstance(state, TwoLevelBatchState):
        raise SamplerError(f"imputing '{t.name}': the sampler state is not a "
                           "TwoLevelBatchState")
    return draw_2l_batch(t, rngs, state, pmm=pmm)


register("mixed_normal", batched=True)(lambda t, rngs, state: _mixed_normal(t, rngs, state,
                                                                             pmm=False))
register("mixed_normal_pmm", batched=True)(lambda t, rngs, state: _mixed_normal(t, rngs, state,
                                                                                 pmm=True))
