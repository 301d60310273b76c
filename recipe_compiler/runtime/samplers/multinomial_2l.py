"""Two-level multinomial logit imputation (``2l.polyreg``) by Polya-Gamma Gibbs sampling.

The imputation model of a nominal target with observed categories ``0 .. L-1``
(category 0 the reference) is the multinomial logit mixed model

    log P(y = k) / P(y = 0) = X beta_k + Z_c u_ck,   k = 1 .. L-1,
    u_c = (u_c1, ..., u_c,L-1) ~ N(0, Sigma),

one random intercept (and one random slope per column of Z after the first)
per non-reference category, correlated across categories through ``Sigma``.

Why Polya-Gamma augmentation (Holmes & Held 2006; Polson, Scott & Windle 2013)
rather than jomo's latent normals: given the other categories, category ``k``'s
likelihood is a binary logit in ``psi = eta_k - C_k`` with the offset
``C_k = log(1 + sum_{j != k} exp(eta_j))``, so with ``w ~ PG(1, psi)`` each
category's update is exactly the Gaussian block update of
:mod:`~recipe_compiler.runtime.samplers.logit_2l` (same exact PG draws, ``beta_k``
with the random effects integrated out, then ``u_ck`` batched over clusters).
There is no truncated multivariate normal to draw, no latent covariance to
constrain for identification (a multinomial probit's), the model is the
multinomial logit of mice's ``polyreg`` and of the analysis, and with two
categories it is ``2l.bin`` exactly. The price: the categories are updated in
turn (each augmentation is conditional on the others' linear predictors), so a
sweep costs about ``L - 1`` binary updates; everything inside a category's
update is vectorised over rows and clusters, and the design, its centring and
the imputation step are shared.

One sweep (one call, warm-started from a :class:`MultinomialState`):

1. for each category ``k``: ``w ~ PG(1, eta_k - C_k)``; the prior of ``u_ck`` is
   its conditional normal given the other categories' ``u_c`` (precision block
   ``P_kk`` of ``P = Sigma^-1``, mean ``-P_kk^-1 P_k,-k u_c,-k``); ``(beta_k, u_k)``
   are drawn as in ``2l.bin`` with working response ``(y_k - 1/2) / w + C_k``
   less that prior mean (prior ``N(0, 5^2)`` per coefficient on the
   standardised predictors);
2. ``Sigma | u``: inverse-Wishart over all ``(L-1) q`` random effects.

Missing rows draw their category from the softmax of ``X beta + Z u_c``.
Categories that are never observed are never imputed (their coefficients
would not be identified), as in :func:`~.single.draw_polyreg`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix

from ...data.grouping import Grouping
from ...errors import SamplerError
from .logit_2l import COEF_PRIOR_SD, OMEGA_START, sample_pg1
from .normal_2l import (
    Moments,
    RandomDesign,
    check_state,
    draw_effects,
    draw_omega,
    pd_inverse,
    random_design,
    random_part,
)
from .ordinal import observed_categories
from .registry import Target, register
from .single import (
    Recovery,
    check_finite,
    fit_multinomial,
    fixed_design,
)

__all__ = ["MultinomialState", "draw_2l_polyreg"]

#: Linear predictors are capped here inside ``exp`` (``exp(700) ~ 1e304``, so a sum of
#: up to 10^4 of them stays finite); beyond it a category's probability is 1 in double
#: precision anyway.
EXP_CAP = 700.0


@dataclass
class MultinomialState:
    """Warm-start state of one nominal target's multinomial logit mixed model in one chain.

    Attributes
    ----------
    beta : ndarray, shape (p, L - 1)
        Fixed effects of each non-reference category on the columns of X.
    u : ndarray, shape (G, (L - 1) * q)
        Random effects per cluster, category-major (category ``k``'s ``q``
        effects in columns ``(k-1) q .. k q - 1``), in the units of Z.
    omega : ndarray, shape ((L - 1) q, (L - 1) q)
        Their covariance ``Sigma``.
    """

    beta: np.ndarray
    u: np.ndarray
    omega: np.ndarray


def draw_2l_polyreg(y: np.ndarray, observed: np.ndarray, X: np.ndarray, Z: np.ndarray,
                    grouping: Grouping, rng: np.random.Generator, n_categories: int,
                    state: MultinomialState | None = None, *, name: str = "y",
                    n_inner: int = 1) -> tuple[np.ndarray, MultinomialState | None]:
    """One (or ``n_inner``) Gibbs sweep(s) of the multinomial logit mixed model, then imputations.

    Parameters
    ----------
    y : ndarray, shape (n,)
        Current completed category codes ``0 .. n_categories - 1``; entries at
        ``~observed`` are ignored.
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
    state : MultinomialState, optional
        State after the previous call (not modified); ``None`` starts from the
        single-level multinomial fit, ``u = 0`` and ``Sigma = I`` (scaled Z).
    name : str
        The target's name, for warnings and errors.
    n_inner : int
        Number of sweeps before imputing.

    Returns
    -------
    imputations : ndarray, shape (n_missing,)
        Category codes for ``y[~observed]``, in the dtype of ``y``.
    state : MultinomialState or None
        The updated state (``None`` when only one category is observed).

    Raises
    ------
    SamplerError
        Observed values that are not codes, inconsistent shapes or state,
        non-finite inputs.
    """
    log = Recovery(name)
    levels, codes, constant = observed_categories(y, observed, n_categories, name, log)
    if constant is not None:
        log.warn()
        return constant, None
    n_mis = len(y) - len(codes)
    m = len(levels) - 1
    x_obs = np.compress(observed, X, axis=0)
    design = fixed_design(x_obs, log)
    rand = random_design(Z, grouping, observed, name)
    q = rand.scale.size
    scale = np.tile(rand.scale, m)  # of every random effect, category-major
    if state is None:
        coef, _ = fit_multinomial(design.xs, codes, m + 1, np.ones(len(codes)), log)
        eta = design.xs @ coef
        u = np.zeros((grouping.n, m * q))
        omega = OMEGA_START * np.eye(m * q)
    else:
        _check(state, X.shape[1], grouping.n, m, q, name)
        u = state.u * scale
        omega = state.omega * np.outer(scale, scale)
        eta = x_obs @ state.beta + _random_parts(rand.z_obs, u, rand.g_obs.codes, m)
    precision = pd_inverse(omega, log)
    kappa = (codes[:, None] == np.arange(1, m + 1)) - 0.5  # y_k - 1/2 of each category
    prior = np.diag(np.concatenate([[1.0], design.scale**2])) / COEF_PRIOR_SD**2
    g_obs = rand.g_obs
    members = csr_matrix((np.ones(len(codes)), np.argsort(g_obs.codes, kind="stable"),
                          np.concatenate([[0], np.cumsum(g_obs.sizes)])),
                         shape=(grouping.n, len(codes)))
    rhs = np.hstack([rand.z_obs, design.xs, np.zeros((len(codes), 1))])
    exp_eta = np.exp(np.minimum(eta, EXP_CAP))
    coefs = np.empty((design.xs.shape[1], m))
    for _ in range(max(n_inner, 1)):
        for k in range(m):
            eta[:, k], coefs[:, k] = _update_category(
                k, eta[:, k], exp_eta, kappa[:, k], u, precision, design.xs, prior, rand,
                members, rhs, rng, log)
            exp_eta[:, k] = np.exp(np.minimum(eta[:, k], EXP_CAP))
        omega, precision = draw_omega(u, rng, log)
    eta_mis = (design.rows(np.compress(~observed, X, axis=0)) @ coefs
               + _random_parts(rand.z_mis, u, rand.g_mis.codes, m))
    eta_mis = check_finite(eta_mis, name, "linear predictors of the missing rows")
    # softmax weights with the reference's 0, shifted by the row maximum; the category is
    # the first whose cumulative weight exceeds a uniform share of the total
    top = np.maximum(eta_mis.max(axis=1, initial=0.0), 0.0)[:, None]
    cumulative = np.cumsum(np.exp(np.hstack([-top, eta_mis - top])), axis=1)
    drawn = (cumulative < rng.random((n_mis, 1)) * cumulative[:, -1:]).sum(axis=1)
    out = levels[np.minimum(drawn, m)].astype(y.dtype)
    beta = np.column_stack([design.beta(coefs[:, k]) for k in range(m)])
    new_state = MultinomialState(beta=beta, u=u / scale, omega=omega / np.outer(scale, scale))
    log.warn()
    return out, new_state


def _update_category(k: int, eta_k: np.ndarray, exp_eta: np.ndarray, kappa: np.ndarray,
                     u: np.ndarray, precision: np.ndarray, xs: np.ndarray, prior: np.ndarray,
                     rand: RandomDesign, members: csr_matrix, rhs: np.ndarray,
                     rng: np.random.Generator, log: Recovery) -> tuple[np.ndarray, np.ndarray]:
    """Draw category ``k``'s ``(beta_k, u_k)`` given the others; ``u`` is updated in place.

    ``exp_eta`` holds ``exp`` of every category's current linear predictor, ``kappa``
    the indicator of category ``k`` less 1/2.
    Returns the new linear predictor of category ``k`` on the observed rows and
    its coefficients on the centred design.
    """
    q = rand.scale.size
    block = slice(k * q, (k + 1) * q)
    others = np.ones(u.shape[1], dtype=bool)
    others[block] = False
    # C_k = log(1 + sum_{j != k} exp(eta_j)), the reference category's exp(0) = 1 included;
    # a sum of positive terms, so no cancellation
    total = np.ones(len(kappa))
    for j in range(exp_eta.shape[1]):
        if j != k:
            total += exp_eta[:, j]
    offset = np.log(total)
    w = sample_pg1(eta_k - offset, rng)
    p_kk = precision[block, block]
    # conditional prior mean of u_ck given the other categories' effects
    mean = -u[:, others] @ np.linalg.solve(p_kk, precision[block][:, others]).T
    codes = rand.g_obs.codes
    rhs[:, -1] = kappa / w + offset - random_part(rand.z_obs, mean, codes)
    effects = draw_effects(_moments(members, xs, rand.z_obs, rhs, w, prior), p_kk, rng, log)
    u[:, block] = mean + effects.u
    return xs @ effects.coef + random_part(rand.z_obs, u[:, block], codes), effects.coef


def _moments(members: csr_matrix, xs: np.ndarray, z: np.ndarray, rhs: np.ndarray,
             w: np.ndarray, prior: np.ndarray) -> Moments:
    """:func:`~.normal_2l.moments` with weights ``w`` and prior precision ``prior`` on the
    coefficients; ``rhs`` is ``[z, xs, response]``. The per-cluster sums go through one
    cluster-membership matrix built once per call, not once per category."""
    n, q = z.shape
    weighted = rhs * w[:, None]  # w [z, xs, r]
    products = weighted if q == 1 and np.all(z == 1) else (  # a random intercept: z = 1
        z[:, :, None] * weighted[:, None, :]).reshape(n, -1)
    blocks = (members @ products).reshape(members.shape[0], q, -1)
    wx = weighted[:, q:-1]
    return Moments(xtx=wx.T @ xs + prior, xtr=wx.T @ rhs[:, -1], ztz=blocks[:, :, :q],
                   ztx=blocks[:, :, q:-1], ztr=blocks[:, :, -1])


def _random_parts(z: np.ndarray, u: np.ndarray, codes: np.ndarray, m: int) -> np.ndarray:
    """Row-wise random parts of ``m`` categories, shape (n, m): ``z[i] @ u[codes[i], block k]``."""
    n, q = z.shape
    if q == 1:
        return z * u[codes]
    return np.einsum("nq,nmq->nm", z, u[codes].reshape(n, m, q))


def _check(state: MultinomialState, p: int, n_groups: int, m: int, q: int, name: str) -> None:
    check_state(state.u, state.omega, n_groups, m * q, name)
    if state.beta.shape != (p, m) or not np.isfinite(state.beta).all():
        raise SamplerError(f"imputing '{name}': the sampler state has fixed effects of shape "
                           f"{state.beta.shape} for {p} columns of X and {m} categories")


@register("mixed_multinomial")
def _mixed_multinomial(t: Target, rng: np.random.Generator,
                       state: object | None) -> tuple[np.ndarray, MultinomialState | None]:
    if t.Z is None:
        raise SamplerError(f"imputing '{t.name}': a two-level sampler needs a random design")
    if state is not None and not isinstance(state, MultinomialState):
        raise SamplerError(f"imputing '{t.name}': the sampler state is not a MultinomialState")
    return draw_2l_polyreg(t.y, t.observed, t.X, t.Z, t.grouping, rng, t.n_categories, state,
                           name=t.name)
