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
per call) by the Woodbury identity, so a sweep costs ``O(G q^2 p + p^3)``
plus one pass over the rows for the residual sum of squares.

Internally y is standardised (observed mean and sd) and the columns of Z are
scaled to unit root-mean-square, so the weak priors above are on that scale
and the per-cluster solves are well conditioned; the state is kept in the
original units. Per-cluster algebra runs on ``(G, q, q)`` stacks: one batched
Cholesky factorisation, then triangular solves with explicit loops over ``q``
only (batched small-matrix ``solve``/``inv`` are slower at ``q <= 3``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...data.grouping import Grouping
from ...errors import SamplerError
from .matching import match_donors
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

__all__ = ["TwoLevelState", "draw_2l"]

#: Inverse-Wishart prior of Omega on the standardised scale: IW(q + OMEGA_PRIOR_DF, S0 * I).
OMEGA_PRIOR_DF = 1
OMEGA_PRIOR_SCALE = 0.01
#: Inverse-gamma prior IG(a0, b0) of sigma2 on the standardised scale.
SIGMA2_PRIOR = 0.001


@dataclass
class TwoLevelState:
    """Warm-start state of one target's Bayesian linear mixed model in one chain.

    All in the original units of y, X and Z.

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

    def scaled(self, factor: float) -> Moments:
        """The statistics under weights multiplied by ``factor``."""
        return Moments(xtx=self.xtx * factor, xtr=self.xtr * factor, ztz=self.ztz * factor,
                       ztx=self.ztx * factor, ztr=self.ztr * factor)


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
        The draw: coefficients of the centred :class:`FixedDesign` (standardised y)
        and random effects (G, q).
    coef_mean : ndarray
        Mean of the marginal posterior of ``beta`` given Omega and the weights.
    """

    coef: np.ndarray
    coef_mean: np.ndarray
    u: np.ndarray


def draw_effects(mom: Moments, omega_inv: np.ndarray, rng: np.random.Generator,
                 log: Recovery) -> Effects:
    """Draw ``beta`` with ``u`` integrated out, then ``u | beta``, from :class:`Moments`.

    With ``P_c = Omega^-1 + Z_c'WZ_c``, the marginal posterior of ``beta`` is
    normal with precision ``X'WX - sum_c X_c'WZ_c P_c^-1 Z_c'WX_c`` and
    ``u_c | beta ~ N(P_c^-1 Z_c'W(r_c - X_c beta), P_c^-1)``; a cluster without
    rows has ``P_c = Omega^-1`` and draws from ``N(0, Omega)``.
    """
    chol_u = cholesky(mom.ztz + omega_inv, log, "cluster precision matrices")
    solved_x = _solve_upper(chol_u, _solve_lower(chol_u, mom.ztx))
    solved_r = _solve_upper(chol_u, _solve_lower(chol_u, mom.ztr))
    gram = mom.xtx - np.einsum("gqd,gqe->de", mom.ztx, solved_x)
    rhs = mom.xtr - np.einsum("gqd,gq->d", mom.ztx, solved_r)
    chol_b = cholesky(gram, log, "marginal precision of the fixed effects")
    coef_mean, coef = draw_coefficients(chol_b, rhs, 1.0, rng)
    noise = _solve_upper(chol_u, rng.standard_normal(mom.ztr.shape))
    return Effects(coef=coef, coef_mean=coef_mean,
                   u=solved_r - np.einsum("gqd,d->gq", solved_x, coef) + noise)


def draw_2l(y: np.ndarray, observed: np.ndarray, X: np.ndarray, Z: np.ndarray,
            grouping: Grouping, rng: np.random.Generator,
            state: TwoLevelState | None = None, *, pmm: bool = True, donors: int = 5,
            name: str = "y", n_inner: int = 1) -> tuple[np.ndarray, TwoLevelState]:
    """One (or ``n_inner``) Gibbs update(s) of the mixed model, then imputations.

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
    log = Recovery(name)
    y_obs = check_observed(y, observed, name)
    design = fixed_design(np.compress(observed, X, axis=0), log)
    rand = random_design(Z, grouping, observed, name)
    y_center, y_scale = float(y_obs.mean()), float(y_obs.std()) or 1.0
    ys = (y_obs - y_center) / y_scale
    units = rand.scale / y_scale
    if state is None:
        omega, sigma2 = _initial_state(design, ys, rand)
    else:
        check_state(state.u, state.omega, grouping.n, len(units), name)
        if not (np.isfinite(state.sigma2) and state.sigma2 > 0):
            raise SamplerError(f"imputing '{name}': the sampler state has residual variance "
                               f"{state.sigma2}")
        omega, sigma2 = state.omega * np.outer(units, units), state.sigma2 / y_scale**2
    effects, omega, sigma2 = _gibbs(design, ys, rand, omega, sigma2,
                                    max(n_inner, 1), rng, log)
    pred_mis = check_finite(design.rows(np.compress(~observed, X, axis=0)) @ effects.coef
                            + random_part(rand.z_mis, effects.u, rand.g_mis.codes), name,
                            "predictions of the missing rows")
    if pmm:
        pred_obs = (design.xs @ effects.coef_mean
                    + random_part(rand.z_obs, effects.u, rand.g_obs.codes))
        out = y_obs[match_donors(pred_obs, pred_mis, donors, rng)]
    else:
        out = y_center + y_scale * (pred_mis + np.sqrt(sigma2)
                                    * rng.standard_normal(len(pred_mis)))
    beta = design.beta(effects.coef) * y_scale
    beta[design.intercept] += y_center / design.intercept_value
    new_state = TwoLevelState(beta=beta, u=effects.u / units,
                              omega=omega / np.outer(units, units), sigma2=sigma2 * y_scale**2)
    log.warn()
    return out, new_state


def _gibbs(design: FixedDesign, ys: np.ndarray, rand: RandomDesign,
           omega: np.ndarray, sigma2: float, n_sweeps: int, rng: np.random.Generator,
           log: Recovery) -> tuple[Effects, np.ndarray, float]:
    """``n_sweeps`` sweeps ((beta, u), Omega, sigma2) on the standardised scale."""
    omega_inv = pd_inverse(omega, log)
    mom = moments(design.xs, rand, ys, xtx=design.gram)
    for _ in range(n_sweeps):
        effects = draw_effects(mom.scaled(1 / sigma2), omega_inv, rng, log)
        omega, omega_inv = draw_omega(effects.u, rng, log)
        resid = ys - design.xs @ effects.coef - random_part(rand.z_obs, effects.u, rand.g_obs.codes)
        sigma2 = (SIGMA2_PRIOR + resid @ resid / 2) / rng.gamma(SIGMA2_PRIOR + len(ys) / 2)
    return effects, omega, float(sigma2)


def random_part(z: np.ndarray, u: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Row-wise ``z[i] @ u[groups[i]]``: the random-effects part of the predictor."""
    out = z[:, 0] * u[groups, 0]
    for k in range(1, z.shape[1]):
        out += z[:, k] * u[groups, k]
    return out


def check_state(u: np.ndarray, omega: np.ndarray, n_groups: int, q: int, name: str) -> None:
    """Raise :class:`SamplerError` if a state's ``u``/``omega`` do not fit G and q."""
    if u.shape != (n_groups, q) or omega.shape != (q, q) or \
            not (np.isfinite(u).all() and np.isfinite(omega).all()):
        raise SamplerError(f"imputing '{name}': the sampler state does not match "
                           f"{n_groups} clusters and {q} random effect(s), or is not finite")


def _initial_state(design: FixedDesign, ys: np.ndarray,
                   rand: RandomDesign) -> tuple[np.ndarray, float]:
    """Start values of ``Omega`` and ``sigma2`` on the standardised scale.

    ``sigma2`` is the pooled within-cluster variance of the OLS residuals and
    the random-effects variances all start at the between-cluster variance of
    the residual cluster means net of their sampling variance (ANOVA-type),
    both floored at 1% of the residual variance (and at 1e-6).
    """
    coef = np.linalg.solve(design.gram, design.xs.T @ ys)
    resid = ys - design.xs @ coef
    sizes = rand.g_obs.sizes
    means = rand.g_obs.means(resid)
    occupied = sizes > 0
    floor = max(0.01 * float(resid @ resid) / len(resid), 1e-6)
    within = resid - rand.g_obs.expand(means)
    sigma2 = max(float(within @ within) / max(len(ys) - int(occupied.sum()), 1), floor)
    between = float(np.var(means[occupied])) - sigma2 * float(np.mean(1 / sizes[occupied]))
    return max(between, floor) * np.eye(len(rand.scale)), sigma2


def pd_inverse(omega: np.ndarray, log: Recovery) -> np.ndarray:
    """Inverse of a covariance matrix, jittered first if it is not positive definite."""
    chol = cholesky(omega, log, "random-effects covariance")
    inv_chol = np.linalg.inv(chol)
    return inv_chol.T @ inv_chol


def _solve_lower(chol: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``L x = b`` for a ``(G, q, q)`` stack ``L``; ``b`` is (G, q) or (G, q, m)."""
    x = np.empty_like(b)
    for i in range(b.shape[1]):
        dot = np.einsum("gk,gk...->g...", chol[:, i, :i], x[:, :i])
        x[:, i] = (b[:, i] - dot) / _trailing(chol[:, i, i], b)
    return x


def _solve_upper(chol: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``L' x = b`` for a ``(G, q, q)`` stack ``L``; ``b`` is (G, q) or (G, q, m)."""
    x = np.empty_like(b)
    for i in reversed(range(b.shape[1])):
        dot = np.einsum("gk,gk...->g...", chol[:, i + 1:, i], x[:, i + 1:])
        x[:, i] = (b[:, i] - dot) / _trailing(chol[:, i, i], b)
    return x


def _trailing(diagonal: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``diagonal`` (G,) shaped to broadcast against ``b[:, i]``."""
    return diagonal.reshape(diagonal.shape + (1,) * (b.ndim - 2))


def draw_omega(u: np.ndarray, rng: np.random.Generator,
               log: Recovery) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``Omega | u`` from its inverse-Wishart full conditional.

    Posterior ``IW(q + OMEGA_PRIOR_DF + G, OMEGA_PRIOR_SCALE * I + u'u)``,
    sampled through the Bartlett decomposition of the Wishart precision.

    Returns
    -------
    omega, omega_inv : ndarray, shape (q, q)
    """
    n_groups, q = u.shape
    df = q + OMEGA_PRIOR_DF + n_groups
    scatter = OMEGA_PRIOR_SCALE * np.eye(q) + u.T @ u
    chol_scatter = cholesky(scatter, log, "random-effects scatter matrix")
    bartlett = np.diag(np.sqrt(rng.chisquare(df - np.arange(q))))
    bartlett[np.tril_indices(q, -1)] = rng.standard_normal(q * (q - 1) // 2)
    # Omega^-1 = L^-T A A' L^-1 ~ Wishart(df, scatter^-1) with scatter = L L'.
    factor = np.linalg.solve(chol_scatter.T, bartlett)
    omega_inv = factor @ factor.T
    inv_factor = np.linalg.inv(factor)
    return inv_factor.T @ inv_factor, omega_inv


def _mixed_normal(t: Target, rng: np.random.Generator, state: object | None,
                  pmm: bool) -> tuple[np.ndarray, TwoLevelState]:
    if t.Z is None:
        raise SamplerError(f"imputing '{t.name}': a two-level sampler needs a random design")
    if state is not None and not isinstance(state, TwoLevelState):
        raise SamplerError(f"imputing '{t.name}': the sampler state is not a TwoLevelState")
    return draw_2l(t.y, t.observed, t.X, t.Z, t.grouping, rng, state, pmm=pmm,
                   donors=t.donors, name=t.name)


@register("mixed_normal")
def _mixed_normal_draw(t: Target, rng: np.random.Generator,
                       state: object | None) -> tuple[np.ndarray, TwoLevelState]:
    return _mixed_normal(t, rng, state, pmm=False)


@register("mixed_normal_pmm")
def _mixed_normal_pmm(t: Target, rng: np.random.Generator,
                      state: object | None) -> tuple[np.ndarray, TwoLevelState]:
    return _mixed_normal(t, rng, state, pmm=True)
