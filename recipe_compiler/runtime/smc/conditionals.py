"""Missing-value draws from their full conditionals.

The log full conditional of a missing cell is the sum of the log densities of
every model that contains it (given the current parameters, random effects
included). It is evaluated for all cells of a :class:`~.problem.Batch` at once:
on the cells' own rows, or, when the cell's value moves a cluster mean or is a
level-2 value, summed over its cluster's rows with ``np.bincount``, plus the
level-2 models at its cluster. Then, per variable:

* **exact normal** (every model normal and linear in the value): each model's
  residuals are linear in the value, so their values at ``v`` and ``v + h``
  give the normal's precision and mean exactly, and the draw is exact (no
  Metropolis step);
* **metropolis**: random-walk Metropolis-Hastings on the same log density,
  proposal sd per variable (tuned by the caller during burn-in);
* **enumerate**: the log density at both values of a binary variable (at
  every category of a categorical one), and an exact draw. For a level-2
  variable, the random effects of the level-1 normal models are integrated out
  of its conditional and drawn right after it, given the drawn value (a
  blocked draw of the cluster's value and effects): given its effects, a
  cluster's value is all but fixed, since they absorb its main effect, and the
  chain would hardly move (:func:`_collapsed`).

All chains of a batch are drawn at once (every array has a leading chain
axis); chain ``c`` draws from its own generator only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit

from ...data.grouping import Grouping
from ...errors import SamplerError
from ..gibbs import cluster_means
from ..samplers.common import per_chain, standard_normal
from ..samplers.normal_2l import TwoLevelBatchState
from .models import Params, log_density, predictor
from .outer import Outer
from .problem import Batch, SmcProblem, TargetInfo
from .terms import Frame, ModelDesign, reads

__all__ = ["Current", "draw_target", "proposal_scale"]


@dataclass
class Current:
    """The chains' current completed values, cluster means and parameters.

    ``values`` holds every column on the rows (level-2 columns repeated), shape
    (C, n); ``means`` their cluster means (for level-2 columns: their values,
    exactly), shape (C, G).
    """

    values: dict[str, np.ndarray]
    means: dict[str, np.ndarray]
    grouping: Grouping
    params: list[Params] = field(default_factory=list)
    outer: Outer | None = None

    @property
    def chains(self) -> int:
        """Number of chains ``C``."""
        return len(next(iter(self.means.values())))

    @property
    def frame(self) -> Frame:
        """The row frame."""
        return Frame(self.values, self.means, self.grouping.codes, self.grouping.n_rows,
                     self.chains, None if self.outer is None else self.outer.rows.codes)

    @property
    def cluster_frame(self) -> Frame:
        """The cluster frame."""
        return Frame(self.means, self.means, None, self.grouping.n, self.chains,
                     None if self.outer is None else self.outer.parent)

    @property
    def top_frame(self) -> Frame | None:
        """Three-level plans: the outer-cluster frame (every column's value in one inner
        cluster of each outer cluster: exact for the level-3 columns)."""
        if self.outer is None:
            return None
        top = _Taken(self.means, self.outer.first)
        return Frame(top, top, None, self.outer.n, self.chains)


class _Taken(Mapping[str, np.ndarray]):
    """A live view of per-cluster values ``(C, G)`` at some clusters: ``(C, k)`` on access."""

    def __init__(self, values: dict[str, np.ndarray], at: np.ndarray) -> None:
        self._values, self._at = values, at

    def __getitem__(self, key: str) -> np.ndarray:
        return self._values[key].take(self._at, axis=1)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def draw_target(problem: SmcProblem, current: Current, target: TargetInfo, scale: np.ndarray,
                rngs: list[np.random.Generator]) -> tuple[np.ndarray, int]:
    """Draw every missing cell of ``target`` in every chain, batch after batch, in place.

    Parameters
    ----------
    problem : SmcProblem
    current : Current
        Updated in place: the values (and cluster means) of ``target``.
    target : TargetInfo
    scale : ndarray, shape (C,)
        Proposal sd of a Metropolis-Hastings variable, per chain.
    rngs : list of numpy.random.Generator
        One per chain.

    Returns
    -------
    accepted : ndarray of int, shape (C,)
        Metropolis-Hastings moves accepted per chain (zeros for exact draws).
    proposed : int
        Moves proposed per chain (0 for exact draws).
    """
    accepted = np.zeros(len(rngs), dtype=int)
    proposed = 0
    for batch in target.batches:
        if not batch.cells.size:
            continue
        set_values = _setter(current, target, batch)
        now = _get(current, target, batch)
        size = now.shape[1]
        if target.how in ("exact normal", "exact normal per cluster"):
            set_values(_exact_normal(problem, current, target, batch, set_values, now, rngs))
            continue
        collapsed = target.how == "enumerate" and target.level == 2
        logf, effects = _conditional(problem, current, target, batch, collapsed)
        if target.how == "enumerate" and target.name not in problem.binary:
            set_values(_categorical(logf, set_values, now.shape,
                                    len(problem.categories[target.name]), rngs))
        elif target.how == "enumerate":
            lo, hi = problem.binary[target.name]
            set_values(np.full(now.shape, lo))
            f_lo = logf()
            set_values(np.full(now.shape, hi))
            f_hi = logf()
            u = _uniform(rngs, size)
            set_values(np.where(u < expit(f_hi - f_lo), hi, lo))
        for draw_effects in effects:
            draw_effects(rngs)
        if target.how == "metropolis":
            f_now = logf()
            proposal = now + scale[:, None] * standard_normal(rngs, (size,))
            set_values(proposal)
            f_new = logf()
            keep = np.log(_uniform(rngs, size)) < f_new - f_now
            set_values(np.where(keep, proposal, now))
            accepted += keep.sum(axis=1)
            proposed += size
    if target.level == 1 and any(b.summed for b in target.batches):
        current.means[target.name] = cluster_means(current.grouping, current.values[target.name])
    return accepted, proposed


def _uniform(rngs: list[np.random.Generator], size: int) -> np.ndarray:
    """Uniform draws ``(C, size)``; chain ``c``'s from ``rngs[c]``."""
    return per_chain(rngs, lambda rng: rng.random(size))


def _categorical(logf: Callable[[], np.ndarray], set_values: Callable[[np.ndarray], None],
                 shape: tuple[int, ...], n_categories: int,
                 rngs: list[np.random.Generator]) -> np.ndarray:
    """An exact draw of category codes ``0 .. K-1`` for the cells, from the log full
    conditional evaluated at every category (one uniform per cell)."""
    logs = np.empty((n_categories, *shape))
    for k in range(n_categories):
        set_values(np.full(shape, float(k)))
        logs[k] = logf()
    weights = np.exp(logs - logs.max(axis=0))
    cumulative = np.cumsum(weights, axis=0)
    share = _uniform(rngs, shape[1]) * cumulative[-1]
    return np.minimum((cumulative < share).sum(axis=0), n_categories - 1).astype(float)


def _exact_normal(problem: SmcProblem, current: Current, target: TargetInfo, batch: Batch,
                  set_values: Callable[[np.ndarray], None], now: np.ndarray,
                  rngs: list[np.random.Generator]) -> np.ndarray:
    """One exact draw from the normal full conditional of the cells (all models normal).

    Each model's residual ``r = y - X beta - Z u`` on its rows is linear in the
    cell's value ``v``: ``r = r0 + s (v - now)``, with ``r0`` at the current
    values and the slope ``s`` from a second evaluation at ``now + step``. The
    log conditional ``-sum r^2 / (2 sigma2)`` then has precision
    ``sum s^2 / sigma2`` and mean ``now - sum r0 s / sigma2 / precision``
    (sums over the cell's rows and models), exactly.
    """
    residuals, weights, folded = _residuals(problem, current, target, batch)
    before = residuals()
    set_values(now + target.step)
    after = residuals()
    precision = np.zeros(now.shape)
    shift = np.zeros(now.shape)
    for r0, r1, w, fold in zip(before, after, weights, folded, strict=True):
        slope = (r1 - r0) / target.step
        precision += fold(slope * slope * w)
        shift += fold(r0 * slope * w)
    if not (np.isfinite(precision).all() and (precision > 0).all()):
        raise SamplerError(f"imputing '{target.name}': its full conditional is not a proper "
                           "normal density (precision "
                           f"{float(np.min(precision)):.3g}); is a model degenerate?")
    return now - shift / precision + standard_normal(rngs, (now.shape[1],)) / np.sqrt(precision)


def _residuals(problem: SmcProblem, current: Current, target: TargetInfo, batch: Batch
               ) -> tuple[Callable[[], list[np.ndarray]], list[np.ndarray],
                          list[Callable[[np.ndarray], np.ndarray]]]:
    """A function giving the residuals ``(C, r)`` of every model that contains the
    target, on the batch's rows (level-1 models) or clusters (level-2 models); each
    model's ``1 / sigma2`` ``(C, 1)``; and how its rows add up to the cells."""
    frame, cluster_frame = current.frame, current.cluster_frame
    fold = _fold(current.chains, batch)
    parts = [(problem.designs[k], frame, batch.rows, k) for k in target.row_models]
    parts += [(problem.designs[k], cluster_frame, batch.clusters, k)
              for k in target.cluster_models]
    folded = [fold] * len(target.row_models)
    if batch.cluster_slot is None:
        folded += [_same] * len(target.cluster_models)
    else:  # a level-3 batch: the level-2 models summed over each cell's clusters
        folded += [_fold_slots(current.chains, batch.cluster_slot, len(batch.cells))] * len(
            target.cluster_models)
        top_frame = current.top_frame
        assert top_frame is not None
        parts += [(problem.designs[k], top_frame, batch.cells, k) for k in target.top_models]
        folded += [_same] * len(target.top_models)
    etas = [predictor(d, current.params[k], f, rows, target.name) for d, f, rows, k in parts]
    weights = [1 / current.params[k].sigma2[:, None] for *_, k in parts]

    def residuals() -> list[np.ndarray]:
        return [f.values[d.dependent].take(rows, axis=1) - eta()
                for (d, f, rows, _), eta in zip(parts, etas, strict=True)]
    return residuals, weights, folded


def _same(a: np.ndarray) -> np.ndarray:
    return a


def _fold(chains: int, batch: Batch) -> Callable[[np.ndarray], np.ndarray]:
    """How values ``(C, r)`` on a batch's rows add up to its cells ``(C, k)``: per chain,
    one ``np.bincount`` over chain-offset slots, in row order (a chain's sums do not
    depend on the others); the identity where the rows are the cells."""
    if not batch.summed:
        return _same
    return _fold_slots(chains, batch.slot, len(batch.cells))


def _fold_slots(chains: int, slot: np.ndarray, size: int
                ) -> Callable[[np.ndarray], np.ndarray]:
    """How values ``(C, r)`` add up to ``size`` cells, value ``i`` to cell ``slot[i]``."""
    slots = (slot + size * np.arange(chains)[:, None]).ravel()

    def fold(a: np.ndarray) -> np.ndarray:
        return np.bincount(slots, a.ravel(), minlength=chains * size).reshape(chains, size)
    return fold


def _quadratic(logf: Callable[[], np.ndarray], set_values: Callable[[np.ndarray], None],
               now: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Precision and mean of the quadratic through ``logf`` at ``now - h, now, now + h``.

    Leaves the cells at ``now - h``.
    """
    f0 = logf()
    set_values(now + h)
    f_up = logf()
    set_values(now - h)
    f_down = logf()
    precision = (2 * f0 - f_up - f_down) / h**2
    with np.errstate(divide="ignore", invalid="ignore"):
        return precision, now + (f_up - f_down) / (2 * h * precision)


def proposal_scale(problem: SmcProblem, current: Current, target: TargetInfo) -> np.ndarray:
    """A first Metropolis-Hastings proposal sd for ``target`` per chain: ``2.4 / sqrt(c)``.

    ``c`` is the median over the chain's cells of the curvature of the log full
    conditional at the current values (the optimal random-walk scale for a
    normal conditional of precision ``c``; Gelman, Roberts & Gilks 1996); the
    variable's observed sd where no curvature is positive. The values are left
    unchanged.
    """
    curvatures = [np.zeros((current.chains, 0))]
    for batch in target.batches:
        if batch.cells.size:
            set_values = _setter(current, target, batch)
            now = _get(current, target, batch)
            precision, _ = _quadratic(_conditional(problem, current, target, batch)[0],
                                      set_values, now, target.step)
            set_values(now)
            curvatures.append(precision)
    c = np.concatenate(curvatures, axis=1)
    out = np.full(len(c), target.step)
    for k, chain in enumerate(c):
        good = chain[np.isfinite(chain) & (chain > 0)]
        if good.size:
            out[k] = 2.4 / np.sqrt(np.median(good))
    return out


def _get(current: Current, target: TargetInfo, batch: Batch) -> np.ndarray:
    """The current values ``(C, k)`` of the batch's cells."""
    if target.level == 3 and current.outer is not None:
        return current.means[target.name].take(current.outer.first[batch.cells], axis=1)
    if target.level == 2:
        return current.means[target.name].take(batch.cells, axis=1)
    return current.values[target.name].take(batch.cells, axis=1)


def _setter(current: Current, target: TargetInfo,
            batch: Batch) -> Callable[[np.ndarray], None]:
    """A function that sets the batch's cells (and the cluster means they move)."""
    name = target.name
    values = current.values[name]
    means = current.means[name]
    if batch.cluster_slot is not None:
        cluster_slot = batch.cluster_slot

        def set_level3(new: np.ndarray) -> None:
            means[:, batch.clusters] = new.take(cluster_slot, axis=1)
            values[:, batch.rows] = new.take(batch.slot, axis=1)
        return set_level3
    if target.level == 2:
        row_clusters = current.grouping.codes[batch.rows]

        def set_level2(new: np.ndarray) -> None:
            means[:, batch.cells] = new
            values[:, batch.rows] = means.take(row_clusters, axis=1)
        return set_level2
    if not batch.summed:
        def set_cells(new: np.ndarray) -> None:
            values[:, batch.cells] = new
        return set_cells
    inverse_size = 1.0 / current.grouping.sizes[batch.clusters]

    def set_coupled(new: np.ndarray) -> None:
        # one cell per cluster: move each cluster mean by the cell's change
        means[:, batch.clusters] += (new - values.take(batch.cells, axis=1)) * inverse_size
        values[:, batch.cells] = new
    return set_coupled


def _conditional(problem: SmcProblem, current: Current, target: TargetInfo, batch: Batch,
                 collapsed: bool = False
                 ) -> tuple[Callable[[], np.ndarray], list[Callable[[list], None]]]:
    """A function giving the log full conditional ``(C, k)`` of each cell at the current values.

    The linear predictors' columns that do not read the variable are summed
    once per batch (:func:`~.models.predictor`). With ``collapsed`` (a summed
    batch), the random effects of the level-1 normal models are integrated out
    (:func:`_collapsed`); then the second value holds, per such model, the
    function that draws the batch's clusters' effects given the cells' values.
    """
    frame, cluster_frame = current.frame, current.cluster_frame
    designs, params, binary = problem.designs, current.params, problem.binary
    fold = _fold(current.chains, batch)
    marginal = [k for k in target.row_models if collapsed and not designs[k].n_categories
                and designs[k].dependent not in binary and params[k].u is not None]
    integrated = [_collapsed(designs[k], params[k], frame, batch, fold, target.name)
                  for k in marginal]
    parts = [(designs[k], frame, batch.rows, k, fold) for k in target.row_models
             if k not in marginal]
    parts += [(designs[k], cluster_frame, batch.clusters, k, _same)
              for k in target.cluster_models]
    etas = [predictor(d, params[k], f, rows, target.name) for d, f, rows, k, _ in parts]

    def logf() -> np.ndarray:
        total = np.zeros((current.chains, len(batch.cells)))
        for (d, f, rows, k, add), eta in zip(parts, etas, strict=True):
            total += add(log_density(d, params[k], f, binary.get(d.dependent), rows, eta()))
        for log_marginal, _ in integrated:
            total += log_marginal()
        return total
    return logf, [draw for _, draw in integrated]


def _collapsed(design: ModelDesign, params: Params, frame: Frame, batch: Batch,
               fold: Callable[[np.ndarray], np.ndarray], name: str
               ) -> tuple[Callable[[], np.ndarray], Callable[[list], None]]:
    """A level-1 normal model's log density over each cluster of a summed batch with its
    random effects integrated out, and the draw of those effects given the values.

    With ``r = y - X beta`` on a cluster's rows, ``r ~ N(Z u, sigma2 I)`` and ``u ~ N(0,
    Omega)``: the log marginal is ``-(r'r / sigma2 - b' P^-1 b + log|P|) / 2`` up to
    a constant, with ``P = Omega^-1 + Z'Z / sigma2`` and ``b = Z'r / sigma2``, and
    ``u | r ~ N(P^-1 b, P^-1)``. Everything per chain and cluster at once.
    """
    fixed = predictor(design, dataclasses.replace(params, u=None), frame, batch.rows, name)
    y = frame.values[design.dependent].take(batch.rows, axis=1)
    assert isinstance(params.warm, TwoLevelBatchState) and params.u is not None
    omega_inv = np.linalg.inv(params.warm.omega)[:, None]  # (C, 1, q, q)
    weight = 1 / params.sigma2[:, None]
    u = params.u
    q = u.shape[2]

    def cross(z: np.ndarray) -> np.ndarray:
        return np.stack([np.stack([fold(z[:, a] * z[:, c]) for c in range(q)], axis=-1)
                         for a in range(q)], axis=-2)
    # Z and Z'Z once per batch unless Z reads the variable (they do not move with it)
    z_still = None if any(reads(col, name) for col in design.random) else design.Z(
        frame, batch.rows)
    ztz_still = None if z_still is None else cross(z_still)

    def moments() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = y - fixed()
        z = design.Z(frame, batch.rows) if z_still is None else z_still
        ztz = cross(z) if ztz_still is None else ztz_still
        ztr = np.stack([fold(z[:, a] * r) for a in range(q)], axis=-1) * weight[..., None]
        return omega_inv + ztz * weight[..., None, None], ztr, fold(r * r) * weight

    def log_marginal() -> np.ndarray:
        precision, b, rr = moments()
        chol = np.linalg.cholesky(precision)
        half = np.linalg.solve(chol, b[..., None])[..., 0]
        log_det = np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)
        return -0.5 * (rr - (half * half).sum(axis=-1)) - log_det

    def draw(rngs: list) -> None:
        precision, b, _ = moments()
        chol = np.linalg.cholesky(precision)
        noise = standard_normal(rngs, (len(batch.clusters), q))
        half = np.linalg.solve(chol, b[..., None]) + noise[..., None]
        u[:, batch.clusters] = np.linalg.solve(np.swapaxes(chol, -1, -2), half)[..., 0]
    return log_marginal, draw
