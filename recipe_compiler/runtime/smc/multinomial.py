"""Multinomial logit SMC models: Polya-Gamma updates category by category, in a batch of chains.

The model of a categorical variable with codes ``0 .. K-1`` (0 the reference) is

    log P(y = k) / P(y = 0) = eta_k = X beta_k (+ u_ck at level 1),   k = 1 .. K-1,

with, at level 1, one random intercept per non-reference category,
``u_ck ~ N(0, omega_k)``, independent across categories (the FCS sampler
:mod:`~recipe_compiler.runtime.samplers.multinomial_2l` correlates them; here
each category's block is then exactly the batched binary update of
:func:`~.logit.logit_block`, with no cross-category prior to carry). Given the
other categories, category ``k``'s likelihood is a binary logit in
``eta_k - c_k`` with the offset ``c_k = log(1 + sum_{j != k} exp(eta_j))``
(Holmes & Held 2006), so one sweep updates the categories in turn, each by
one Polya-Gamma block (``PG(1, eta_k - c_k)`` weights, then ``(beta_k, u_k)``
with ``u_k`` integrated out of ``beta_k``, then ``omega_k``), every step for all
chains at once; chain ``c`` draws from its own generator only.
"""

from __future__ import annotations

import numpy as np

from ...data.grouping import Grouping
from ..samplers.common import Recovery
from ..samplers.logit_2l import OMEGA_START, BinaryState
from .logit import logit_block
from .terms import Frame, ModelDesign

__all__ = ["category_offset", "start_states", "update_multinomial_batch"]


def category_offset(etas: list[np.ndarray], k: int) -> np.ndarray:
    """``c_k = log(1 + sum_{j != k} exp(eta_j))`` over the non-reference categories'
    linear predictors ``etas`` (``k`` indexes ``etas``), without overflow."""
    others = [e for j, e in enumerate(etas) if j != k]
    return np.logaddexp.reduce(np.stack([np.zeros_like(etas[k]), *others]), axis=0)


def start_states(chains: int, p: int, n_groups: int, q: int,
                 categories: int) -> tuple[BinaryState, ...]:
    """The cold start of a level-1 multinomial model: every category's effects at 0 and
    ``omega_k = OMEGA_START I``."""
    omega = OMEGA_START * np.broadcast_to(np.eye(q), (chains, q, q))
    return tuple(BinaryState(beta=np.zeros((chains, p)), u=np.zeros((chains, n_groups, q)),
                             omega=omega.copy()) for _ in range(categories - 1))


def _eta(x: np.ndarray, z: np.ndarray, codes: np.ndarray, state: BinaryState) -> np.ndarray:
    """``X beta + Z u`` of one category on the fit rows, shape (C, n)."""
    eta = np.einsum("cpn,cp->cn", x, state.beta)
    for a in range(z.shape[1]):
        eta += z[:, a] * state.u[:, :, a].take(codes, axis=1)
    return eta


def update_multinomial_batch(design: ModelDesign, frame: Frame, fit: np.ndarray,
                             grouping: Grouping, states: tuple[BinaryState, ...],
                             rngs: list[np.random.Generator]) -> tuple[BinaryState, ...]:
    """One Gibbs sweep of a level-1 multinomial logit model in ``C`` chains at once.

    Parameters
    ----------
    design : ModelDesign
        With ``n_categories = K``.
    frame : Frame
        The chains' row frame; the dependent holds category codes.
    fit : ndarray of int
        The rows to fit on; ``grouping`` is their grouping.
    grouping : Grouping
    states : tuple of BinaryState
        The previous draw of each non-reference category (leading chain axis).
    rngs : list of numpy.random.Generator
        One per chain; chain ``c`` draws category 1's weights, effects and
        ``omega``, then category 2's, ..., from ``rngs[c]`` only.

    Returns
    -------
    tuple of BinaryState
        The new draw of each non-reference category.
    """
    log = Recovery(design.dependent)
    x, z = design.X(frame, fit), design.Z(frame, fit)
    y = frame.values[design.dependent].take(fit, axis=1)
    codes = grouping.codes
    etas = [_eta(x, z, codes, s) for s in states]
    out = []
    for k, state in enumerate(states):
        new = logit_block(x, z, (y == k + 1).astype(float), grouping, state, rngs, log,
                          offset=category_offset(etas, k))
        etas[k] = _eta(x, z, codes, new)
        out.append(new)
    log.warn()
    return tuple(out)
