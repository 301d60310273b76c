"""The Polya-Gamma update of a level-1 logit SMC model in a batch of chains.

The block of :func:`~recipe_compiler.runtime.samplers.logit_2l.draw_2l_bin_batch`
(``omega_i ~ PG(1, eta_i)``, then ``(beta, u) | omega`` with ``u`` integrated out
of ``beta``, then ``Omega``; prior ``N(0, 5^2)`` per standardised coefficient)
for chains whose dependent variable differs by chain (an incomplete binary
covariate is imputed in each chain), without imputations. The weighted cluster
moments are held entry by entry with the chains and clusters last and drawn
from by :func:`~.normal.draw_block_effects`.

:func:`logit_block` is the same step on given designs with an offset in the
linear predictor: the update of one category of a multinomial logit given the
others (:mod:`.multinomial`).
"""

from __future__ import annotations

import numpy as np

from ...data.grouping import Grouping
from ..samplers.common import Recovery, centred_design
from ..samplers.logit_2l import BinaryState, coef_prior, sample_pg1
from ..samplers.normal_2l import draw_omega, pd_inverse
from .normal import Blocks, draw_block_effects
from .terms import Frame, ModelDesign

__all__ = ["logit_block", "update_logit_batch"]


def update_logit_batch(design: ModelDesign, frame: Frame, fit: np.ndarray, grouping: Grouping,
                       ones: np.ndarray, state: BinaryState, rngs: list[np.random.Generator]
                       ) -> BinaryState:
    """One warm Polya-Gamma Gibbs update of a level-1 logit model in ``C`` chains at once.

    Parameters
    ----------
    design : ModelDesign
    frame : Frame
        The chains' row frame.
    fit : ndarray of int
        The rows to fit on; ``grouping`` is their grouping.
    grouping : Grouping
    ones : ndarray, shape (C, n)
        Per chain, 1 where the dependent takes its second value, on all rows.
    state : BinaryState
        The chains' previous draw (leading chain axis, original units).
    rngs : list of numpy.random.Generator
        One per chain; chain ``c`` draws its weights, then its effects, then its
        ``Omega``, from ``rngs[c]`` only.
    """
    log = Recovery(design.dependent)
    out = logit_block(design.X(frame, fit), design.Z(frame, fit), ones.take(fit, axis=1),
                      grouping, state, rngs, log)
    log.warn()
    return out


def logit_block(x: np.ndarray, z: np.ndarray, y: np.ndarray, grouping: Grouping,
                state: BinaryState, rngs: list[np.random.Generator], log: Recovery,
                offset: np.ndarray | None = None) -> BinaryState:
    """The Polya-Gamma update of :func:`update_logit_batch` on given designs.

    Parameters
    ----------
    x, z : ndarray, shapes (C, p, n) and (C, q, n)
        Fixed and random designs on the fit rows, intercepts first.
    y : ndarray, shape (C, n)
        1 where the dependent takes its second value (its category), else 0.
    grouping : Grouping
        The clusters of the ``n`` rows.
    state : BinaryState
    rngs : list of numpy.random.Generator
    log : Recovery
        Collects recoveries (not warned here).
    offset : ndarray, shape (C, n), optional
        ``c`` in ``logit P(y = 1) = X beta + Z u - c``: with ``w ~ PG(1, eta - c)``
        the likelihood is Gaussian in ``eta`` with working response ``kappa / w + c``,
        so ``kappa = y - 1/2`` becomes ``kappa + w c`` in the moments.
    """
    chains, p, n = x.shape
    q = z.shape[1]
    codes = grouping.codes
    eta = x[:, 0] * state.beta[:, :1]
    for j in range(1, p):
        eta += x[:, j] * state.beta[:, j:j + 1]
    for k in range(q):
        eta += z[:, k] * state.u[:, :, k].take(codes, axis=1)
    if offset is not None:
        eta -= offset
    w = np.stack([sample_pg1(eta[c], rng) for c, rng in enumerate(rngs)])
    shift = x.mean(axis=2)
    shift[:, 0] = 0.0
    centred = centred_design(x - shift[:, :, None], shift, log)
    xs = (x - (shift + centred.center)[:, :, None]) * centred.keep[:, :, None]
    xs[:, 0] = 1.0
    z_scale = np.sqrt((z * z).sum(axis=2) / n)
    z_scale[:, 0] = 1.0
    z_scale[z_scale == 0] = 1.0
    zs = z / z_scale[:, :, None]
    kappa = y - 0.5 if offset is None else y - 0.5 + w * offset
    zw = zs * w[:, None, :]
    products = [zs[:, a] * kappa for a in range(q)]
    products += [zw[:, a] * xs[:, j] for a in range(q) for j in range(p)]
    products += [zw[:, a] * zs[:, b] for a in range(q) for b in range(q)]
    sums = grouping.segment_sums(np.stack(products))  # (K, C, G)
    blocks = Blocks(ztr=sums[:q], ztx=sums[q:q + q * p].reshape(q, p, chains, -1),
                    ztz=sums[q + q * p:].reshape(q, q, chains, -1),
                    xtx=(xs * w[:, None, :]) @ np.swapaxes(xs, 1, 2) + coef_prior(centred.scale),
                    xtr=(xs @ kappa[:, :, None])[..., 0], yty=np.zeros(chains),
                    design=centred, z_scale=z_scale, y_center=np.zeros(chains),
                    y_scale=np.ones(chains))
    outer = z_scale[:, :, None] * z_scale[:, None, :]
    omega_inv = pd_inverse(state.omega * outer, log, chains=True)
    coef, u = draw_block_effects(blocks, np.ones(chains), omega_inv, rngs, log)
    u_rows = np.ascontiguousarray(u.transpose(1, 2, 0))
    omega, _ = draw_omega(u_rows, rngs, log)
    return BinaryState(beta=centred.beta(coef), u=u_rows / z_scale[:, None, :],
                       omega=omega / outer)
