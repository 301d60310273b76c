"""Parameter updates of the SMC models given the completed data, and their log densities.

Every model's parameters are drawn from their full conditional given the
current completed data, by the runtime's blocks:

* level-1 normal models: the two-level Gibbs block of
  :func:`~recipe_compiler.runtime.samplers.normal_2l.draw_2l` (``beta`` with
  ``u`` integrated out, then ``u``, ``Omega``, ``sigma2``), from cluster sums
  (:mod:`.normal`);
* level-1 logit models: the Polya-Gamma block of
  :func:`~recipe_compiler.runtime.samplers.logit_2l.draw_2l_bin` (:mod:`.logit`);
* multinomial logit models: that block per non-reference category given the
  others (:mod:`.multinomial`; at level 2 the logistic regression below, with
  the same offset);
* level-2 models (one row per cluster): Bayesian linear regression
  (``sigma2 | beta`` inverse-gamma, ``beta | sigma2`` normal, flat priors) or
  Polya-Gamma logistic regression
  (:func:`~recipe_compiler.runtime.samplers.logit_2l.sample_pg1`), on the
  centred design of :func:`~recipe_compiler.runtime.samplers.common.centred_design`.

Given the parameters (random effects included), rows are independent, so a
model's log density is a sum over rows: what the missing-value draws of
:mod:`.conditionals` add up.

Everything runs on a batch of ``C`` chains (a leading chain axis on every array),
every model updated for all chains at once (the level-1 models' first update,
their cold start, chain by chain). Chain ``c`` draws only from its own
generator, in an order that does not depend on the batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ...data.grouping import Grouping
from ..samplers.common import CentredDesign, centred_design, per_chain
from ..samplers.logit_2l import BinaryState, coef_prior, draw_2l_bin, sample_pg1
from ..samplers.normal_2l import TwoLevelBatchState, draw_2l
from ..samplers.single import Recovery, cholesky
from .logit import update_logit_batch
from .multinomial import category_offset, start_states, update_multinomial_batch
from .normal import Split, update_normal_batch
from .outer import Outer, draw_outer
from .terms import Frame, ModelDesign, design_columns, reads

__all__ = ["Params", "linear_predictor", "log_density", "predictor", "update_params"]


@dataclass(frozen=True, eq=False)
class Params:
    """One draw of a model's parameters in a batch of ``C`` chains, in the units of the data.

    Attributes
    ----------
    beta : ndarray, shape (C, p)
        Fixed effects.
    u : ndarray, shape (C, G, q) or None
        Random effects (level-1 models).
    sigma2 : ndarray, shape (C,)
        Residual variance (normal models; 1 for logit models).
    warm : TwoLevelBatchState, BinaryState or None
        The two-level block's state (leading chain axis), for its next update.
    categories : tuple of Params
        Multinomial models: the parameters of each non-reference category's
        linear predictor (then ``beta`` is theirs side by side, shape
        (C, (K-1) p), and ``u`` likewise); empty for the other models.
    v : ndarray, shape (C, S) or None
        Three-level plans: the random intercepts over the outer clusters
        (:mod:`.outer`), read through :attr:`Frame.outer <.terms.Frame.outer>`.
    tau : ndarray, shape (C,) or None
        Their variance.
    """

    beta: np.ndarray
    u: np.ndarray | None
    sigma2: np.ndarray
    warm: TwoLevelBatchState | BinaryState | None = None
    categories: tuple[Params, ...] = ()
    v: np.ndarray | None = None
    tau: np.ndarray | None = None


def update_params(design: ModelDesign, frame: Frame, cluster_frame: Frame,
                  binary: tuple[float, float] | None, grouping: Grouping,
                  previous: Params | None, rngs: list[np.random.Generator],
                  rows: np.ndarray | None = None, split: Split | None = None,
                  outer: Outer | None = None, top_frame: Frame | None = None) -> Params:
    """Draw the parameters of one model given the completed data, in every chain.

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
    rngs : list of numpy.random.Generator
        One per chain.
    rows : ndarray of bool, optional
        The rows (clusters, for a level-2 model) to fit on; all if ``None``.
    split : Split, optional
        A level-1 normal model's fixed and moving fit rows (its warm updates).
    outer : Outer, optional
        Three-level plans: the outer grouping factor (for a model with an outer
        random intercept, :func:`_with_outer`).
    top_frame : Frame, optional
        The current values on the outer clusters (for a level-3 model).
    """
    name = design.dependent
    if design.model.outer:
        assert outer is not None
        return _with_outer(design, frame, cluster_frame, grouping, previous, rngs, rows,
                           split, outer)
    if design.level == 3:
        assert top_frame is not None
        X, y = design.X(top_frame), top_frame.values[name]
        if rows is not None:
            X, y = X.take(np.flatnonzero(rows), axis=2), y.take(np.flatnonzero(rows), axis=1)
        return _regression(X, y, None if previous is None else previous.beta, rngs, name)
    if design.level == 2:
        X = design.X(cluster_frame)
        y = cluster_frame.values[name]
        if rows is not None:
            X, y = X.take(np.flatnonzero(rows), axis=2), y.take(np.flatnonzero(rows), axis=1)
        if design.n_categories:
            return _multinomial(X, y, design.n_categories, previous, rngs, name)
        beta = None if previous is None else previous.beta
        if binary is None:
            return _regression(X, y, beta, rngs, name)
        return _logistic(X, (y == binary[1]).astype(float), beta, rngs, name)
    fit = np.ones(frame.n, dtype=bool) if rows is None else rows
    if design.n_categories:
        fitted = np.flatnonzero(fit)
        per_category = start_states(len(rngs), len(design.fixed), grouping.n,
                                    len(design.random), design.n_categories) \
            if previous is None else tuple(p.warm for p in previous.categories
                                           if isinstance(p.warm, BinaryState))
        new_states = update_multinomial_batch(design, frame, fitted, grouping.subset(fitted),
                                              per_category, rngs)
        return _combined([Params(s.beta, s.u, np.ones(len(rngs)), s) for s in new_states])
    warm = None if previous is None else previous.warm
    if binary is None and isinstance(warm, TwoLevelBatchState):
        assert split is not None
        state = update_normal_batch(design, frame, split, warm, rngs)
        return Params(state.beta, state.u, state.sigma2, state)
    y = frame.values[name]
    if binary is not None and isinstance(warm, BinaryState):
        fitted = np.flatnonzero(fit)
        bstate = update_logit_batch(design, frame, fitted, grouping.subset(fitted),
                                    (y == binary[1]).astype(float), warm, rngs)
        return Params(bstate.beta, bstate.u, np.ones(len(rngs)), bstate)
    X, Z = design.X(frame), design.Z(frame)
    if binary is None:  # first sweep: each chain's cold start
        state = _cold_normal(y, fit, X, Z, grouping, rngs, name)
        return Params(state.beta, state.u, state.sigma2, state)
    ones = (y == binary[1]).astype(float)
    new = [draw_2l_bin(ones[c], fit, X[c].T, Z[c].T, grouping, rng, None, name=name)[1]
           for c, rng in enumerate(rngs)]
    bstate = BinaryState(beta=np.stack([b.beta for b in new]), u=np.stack([b.u for b in new]),
                         omega=np.stack([b.omega for b in new]))
    return Params(bstate.beta, bstate.u, np.ones(len(rngs)), bstate)


def _with_outer(design: ModelDesign, frame: Frame, cluster_frame: Frame, grouping: Grouping,
                previous: Params | None, rngs: list[np.random.Generator],
                rows: np.ndarray | None, split: Split | None, outer: Outer) -> Params:
    """A normal model (level 1 or 2) with a random intercept ``v`` over the outer clusters.

    The inner block given ``v`` (an offset constant within each inner cluster: the
    level-1 update of :mod:`.normal`, or :func:`_regression` over the clusters), then
    ``(beta_0, v)`` and ``tau`` by :func:`~.outer.draw_outer`. At the first sweep ``v``
    is 0 and ``tau`` the inner random-intercept variance (or the residual variance).
    """
    name = design.dependent
    chains = len(rngs)
    v = np.zeros((chains, outer.n)) if previous is None or previous.v is None else previous.v
    if design.level == 2:
        fit = np.arange(grouping.n) if rows is None else np.flatnonzero(rows)
        X = design.X(cluster_frame).take(fit, axis=2)
        y = cluster_frame.values[name].take(fit, axis=1) - v.take(outer.parent[fit], axis=1)
        inner = _regression(X, y, None if previous is None else previous.beta, rngs, name)
        units, codes, n = cluster_frame.values[name].take(fit, axis=1), outer.parent[fit], outer.n
    else:
        warm = None if previous is None else previous.warm
        if isinstance(warm, TwoLevelBatchState):
            assert split is not None
            state = update_normal_batch(design, frame, split, warm, rngs,
                                        offset=v.take(outer.parent, axis=1))
        else:
            fit_mask = np.ones(frame.n, dtype=bool) if rows is None else rows
            y = frame.values[name] - v.take(outer.rows.codes, axis=1)
            X, Z = design.X(frame), design.Z(frame)
            state = _cold_normal(y, fit_mask, X, Z, grouping, rngs, name)
        inner = Params(state.beta, state.u, state.sigma2, state)
        fit = np.arange(frame.n) if rows is None else np.flatnonzero(rows)
        units, codes, n = frame.values[name].take(fit, axis=1), outer.rows.codes[fit], outer.n
    eta = linear_predictor(design, inner, _plain(cluster_frame if design.level == 2 else frame),
                           fit)
    partial = units - eta + inner.beta[:, :1]
    tau = previous.tau if previous is not None and previous.tau is not None else (
        inner.warm.omega[:, 0, 0] if isinstance(inner.warm, TwoLevelBatchState)
        else inner.sigma2)
    intercept, v, tau = draw_outer(partial, Grouping(codes=codes, n=n), inner.sigma2, tau,
                                   rngs, name)
    beta = inner.beta.copy()
    beta[:, 0] = intercept
    warm_state = inner.warm
    if isinstance(warm_state, TwoLevelBatchState):
        warm_state = TwoLevelBatchState(beta=beta, u=warm_state.u, omega=warm_state.omega,
                                        sigma2=warm_state.sigma2)
    return Params(beta, inner.u, inner.sigma2, warm_state, v=v, tau=tau)


def _cold_normal(y: np.ndarray, fit: np.ndarray, X: np.ndarray, Z: np.ndarray,
                 grouping: Grouping, rngs: list[np.random.Generator],
                 name: str) -> TwoLevelBatchState:
    """A level-1 normal model's first update: :func:`draw_2l` from its cold start, chain by
    chain (``y`` (C, n), ``X`` (C, p, n), ``Z`` (C, q, n), ``fit`` the rows to fit on)."""
    states = [draw_2l(y[c], fit, X[c].T, Z[c].T, grouping, rng, None, pmm=False,
                      name=name)[1] for c, rng in enumerate(rngs)]
    return TwoLevelBatchState(beta=np.stack([s.beta for s in states]),
                              u=np.stack([s.u for s in states]),
                              omega=np.stack([s.omega for s in states]),
                              sigma2=np.array([s.sigma2 for s in states]))


def _plain(frame: Frame) -> Frame:
    """``frame`` without its outer codes (a linear predictor without ``v``)."""
    return dataclasses.replace(frame, outer=None)


def _level2_design(X: np.ndarray, log: Recovery) -> tuple[CentredDesign, np.ndarray]:
    """The centred design of a level-2 model (``X`` (C, p, G), intercept first) and its
    centred kept columns (intercept column kept at 1)."""
    design = centred_design(X, np.zeros(X.shape[:2]), log)
    xs = (X - design.center[:, :, None]) * design.keep[:, :, None]
    xs[:, 0] = 1.0
    return design, xs


def _coefficients(design: CentredDesign, precision: np.ndarray, rhs: np.ndarray,
                  scale: np.ndarray, rngs: list[np.random.Generator], log: Recovery,
                  what: str) -> np.ndarray:
    """One draw per chain of ``N(A^-1 rhs, scale^2 A^-1)`` on the centred columns,
    as coefficients of the original columns (zero for dropped ones)."""
    chol = cholesky(precision, log, what, chains=True)
    mean = np.linalg.solve(precision, rhs[:, :, None])[:, :, 0]
    noise = np.linalg.solve(np.swapaxes(chol, -1, -2), design.noise(rngs)[:, :, None])[:, :, 0]
    return design.beta(mean + scale[:, None] * noise)


def _regression(X: np.ndarray, y: np.ndarray, beta: np.ndarray | None,
                rngs: list[np.random.Generator], name: str) -> Params:
    """``sigma2 | beta`` (prior ``1/sigma2``), then ``beta | sigma2`` (flat prior), per chain;
    at the first sweep ``beta`` is the least-squares fit."""
    log = Recovery(name)
    design, _ = _level2_design(X, log)
    rhs = design.centre(np.einsum("cpn,cn->cp", X, y))
    if beta is None:
        beta = design.beta(np.linalg.solve(design.gram, rhs[:, :, None])[:, :, 0])
    resid = y - np.einsum("cpn,cp->cn", X, beta)
    chi2 = per_chain(rngs, lambda rng: rng.chisquare(y.shape[1]))
    sigma2 = np.einsum("cn,cn->c", resid, resid) / chi2
    coef = _coefficients(design, design.gram, rhs, np.sqrt(sigma2), rngs, log,
                         "cross-product matrix X'X")
    log.warn()
    return Params(coef, None, sigma2)


def _combined(categories: list[Params]) -> Params:
    """A multinomial model's parameters from its categories'."""
    u = None if categories[0].u is None else np.concatenate([p.u for p in categories
                                                             if p.u is not None], axis=2)
    return Params(np.concatenate([p.beta for p in categories], axis=1), u,
                  np.ones(len(categories[0].beta)), categories=tuple(categories))


def _multinomial(X: np.ndarray, y: np.ndarray, n_categories: int, previous: Params | None,
                 rngs: list[np.random.Generator], name: str) -> Params:
    """A level-2 multinomial logit: :func:`_logistic` per non-reference category given the
    others (offset ``log(1 + sum_{j != k} exp(eta_j))``), categories in turn."""
    betas: list[np.ndarray | None] = [None] * (n_categories - 1) if previous is None else [
        p.beta for p in previous.categories]
    etas = [np.zeros(y.shape) if b is None else np.einsum("cpn,cp->cn", X, b) for b in betas]
    out = []
    for k, beta in enumerate(betas):
        new = _logistic(X, (y == k + 1).astype(float), beta, rngs, name,
                        category_offset(etas, k))
        etas[k] = np.einsum("cpn,cp->cn", X, new.beta)
        out.append(new)
    return _combined(out)


def _logistic(X: np.ndarray, y: np.ndarray, beta: np.ndarray | None,
              rngs: list[np.random.Generator], name: str,
              offset: np.ndarray | None = None) -> Params:
    """Polya-Gamma Gibbs step of a logistic regression per chain, prior ``N(0, 5^2)`` per
    standardised coefficient (as the two-level logit block); ``offset`` ``(C, n)`` is
    subtracted from the linear predictor (see :func:`~.logit.logit_block`)."""
    log = Recovery(name)
    design, xs = _level2_design(X, log)
    eta = np.zeros(y.shape) if beta is None else np.einsum("cpn,cp->cn", X, beta)
    if offset is not None:
        eta = eta - offset
    w = np.stack([sample_pg1(eta[c], rng) for c, rng in enumerate(rngs)])
    precision = (xs * w[:, None, :]) @ np.swapaxes(xs, -1, -2) + coef_prior(design.scale)
    kappa = y - 0.5 if offset is None else y - 0.5 + w * offset
    coef = _coefficients(design, precision, np.einsum("cpn,cn->cp", xs, kappa),
                         np.ones(len(y)), rngs, log, "logistic precision matrix")
    log.warn()
    return Params(coef, None, np.ones(len(y)))


def linear_predictor(design: ModelDesign, params: Params, frame: Frame,
                     rows: np.ndarray | None = None) -> np.ndarray:
    """``X beta + Z u`` on ``rows`` (all rows if ``None``), shape (C, r); of a multinomial
    model, every non-reference category's, shape (K-1, C, r)."""
    return predictor(design, params, frame, rows, "")()


def predictor(design: ModelDesign, params: Params, frame: Frame, rows: np.ndarray | None,
              name: str) -> Callable[[], np.ndarray]:
    """``X beta + Z u`` on ``rows`` as a function of the current values of column ``name``.

    The columns that do not read ``name`` are summed once, here; the function
    adds the others at the current values (returns the same array if none reads it).
    Of a multinomial model, the function gives every non-reference category's,
    shape (K-1, C, r).
    """
    if params.categories:
        each = [predictor(design, p, frame, rows, name) for p in params.categories]
        return lambda: np.stack([eta() for eta in each])
    n = frame.n if rows is None else len(rows)
    codes = None if frame.codes is None else frame.codes if rows is None else frame.codes[rows]
    terms = [(col, params.beta[:, j:j + 1]) for j, col in enumerate(design.fixed)]
    if params.u is not None:
        assert codes is not None
        terms += [(col, params.u[:, :, k].take(codes, axis=1))
                  for k, col in enumerate(design.random)]
    if params.v is not None and frame.outer is not None:
        outer_codes = frame.outer if rows is None else frame.outer[rows]
        terms.append(((), params.v.take(outer_codes, axis=1)))
    still = [t for t in terms if not reads(t[0], name)]
    moving = [t for t in terms if reads(t[0], name)]
    base = np.zeros((frame.chains, n))
    for j, values in enumerate(design_columns(tuple(c for c, _ in still), frame, rows)
                               .transpose(1, 0, 2)):
        base += values * still[j][1]
    if not moving:
        return lambda: base
    columns = tuple(c for c, _ in moving)

    def eta() -> np.ndarray:
        out = base.copy()
        for j, values in enumerate(design_columns(columns, frame, rows).transpose(1, 0, 2)):
            out += values * moving[j][1]
        return out
    return eta


def log_density(design: ModelDesign, params: Params, frame: Frame,
                binary: tuple[float, float] | None, rows: np.ndarray | None = None,
                eta: np.ndarray | None = None) -> np.ndarray:
    """Log density ``(C, r)`` of the dependent variable on ``rows``, up to a constant per row.

    ``eta`` is the linear predictor on ``rows`` when the caller has it (of a
    multinomial model, every category's, (K-1, C, r)). NaN (an ``I()`` term
    undefined at a proposed value) becomes ``-inf``.
    """
    if eta is None:
        eta = linear_predictor(design, params, frame, rows)
    y = frame.values[design.dependent]
    y = y if rows is None else y.take(rows, axis=1)
    if params.categories:  # eta_y - log(1 + sum_k exp(eta_k)), eta_0 = 0
        chosen = np.zeros(y.shape)
        for k, e in enumerate(eta):
            chosen = np.where(y == k + 1, e, chosen)
        out = chosen - np.logaddexp.reduce(np.concatenate([np.zeros((1, *y.shape)), eta]),
                                           axis=0)
    elif binary is None:
        out = -0.5 * (y - eta) ** 2 / params.sigma2[:, None]
    else:
        out = np.where(y == binary[1], eta, 0.0) - np.logaddexp(0.0, eta)
    return np.where(np.isnan(out), -np.inf, out)
