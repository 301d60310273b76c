"""Missing-value draws from their full conditionals.

The log full conditional of a missing cell is the sum of the log densities of
every model that contains it (given the current parameters, random effects
included). It is evaluated for all cells of a :class:`~.problem.Batch` at once:
on the cells' own rows, or, when the cell's value moves a cluster mean or is a
level-2 value, summed over its cluster's rows with ``np.bincount``, plus the
level-2 models at its cluster. Then, per variable:

* **exact normal**: the log density is quadratic in the value; its values at
  ``v - h``, ``v`` and ``v + h`` give the precision and the mean, and the draw
  is exact (no Metropolis step);
* **metropolis**: random-walk Metropolis-Hastings on the same log density,
  proposal sd per variable (tuned by the caller during burn-in);
* **enumerate**: the log density at both values of a binary variable, and an
  exact draw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit

from ...data.grouping import Grouping
from ...errors import SamplerError
from .models import Params, linear_predictor, log_density
from .problem import Batch, SmcProblem, TargetInfo
from .terms import Frame

__all__ = ["Current", "draw_target", "proposal_scale"]


@dataclass
class Current:
    """The chain's current completed values, cluster means and parameters.

    ``values`` holds every column on the rows (level-2 columns repeated),
    ``means`` their cluster means (for level-2 columns: their values, exactly).
    """

    values: dict[str, np.ndarray]
    means: dict[str, np.ndarray]
    grouping: Grouping
    params: list[Params] = field(default_factory=list)

    @property
    def frame(self) -> Frame:
        """The row frame."""
        return Frame(self.values, self.means, self.grouping.codes, self.grouping.n_rows)

    @property
    def cluster_frame(self) -> Frame:
        """The cluster frame."""
        return Frame(self.means, self.means, None, self.grouping.n)


def draw_target(problem: SmcProblem, current: Current, target: TargetInfo, scale: float,
                rng: np.random.Generator) -> tuple[int, int]:
    """Draw every missing cell of ``target``, batch after batch, in place.

    Parameters
    ----------
    problem : SmcProblem
    current : Current
        Updated in place: the values (and cluster means) of ``target``.
    target : TargetInfo
    scale : float
        Proposal sd of a Metropolis-Hastings variable.
    rng : numpy.random.Generator

    Returns
    -------
    accepted, proposed : int
        Metropolis-Hastings counts (0, 0 for exact draws).
    """
    accepted = proposed = 0
    for batch in target.batches:
        if not batch.cells.size:
            continue
        logf = _conditional(problem, current, target, batch)
        set_values = _setter(problem, current, target, batch)
        now = _get(current, target, batch)
        if target.how == "enumerate":
            lo, hi = problem.binary[target.name]
            set_values(np.full(now.shape, lo))
            f_lo = logf()
            set_values(np.full(now.shape, hi))
            f_hi = logf()
            set_values(np.where(rng.random(now.shape) < expit(f_hi - f_lo), hi, lo))
        elif target.how == "metropolis":
            f_now = logf()
            proposal = now + scale * rng.standard_normal(now.shape)
            set_values(proposal)
            f_new = logf()
            keep = np.log(rng.random(now.shape)) < f_new - f_now
            set_values(np.where(keep, proposal, now))
            accepted += int(keep.sum())
            proposed += keep.size
        else:
            set_values(_exact_normal(logf, set_values, now, target, rng))
    if target.level == 1 and any(b.summed for b in target.batches):
        current.means[target.name] = current.grouping.means(current.values[target.name])
    return accepted, proposed


def _exact_normal(logf: Callable[[], np.ndarray], set_values: Callable[[np.ndarray], None],
                  now: np.ndarray, target: TargetInfo, rng: np.random.Generator) -> np.ndarray:
    """One exact draw from the normal whose log density ``logf`` is (a quadratic)."""
    precision, mean = _quadratic(logf, set_values, now, target.step)
    if not (np.isfinite(precision).all() and (precision > 0).all()):
        raise SamplerError(f"imputing '{target.name}': its full conditional is not a proper "
                           "normal density (precision "
                           f"{float(np.min(precision)):.3g}); is a model degenerate?")
    return mean + rng.standard_normal(now.shape) / np.sqrt(precision)


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


def proposal_scale(problem: SmcProblem, current: Current, target: TargetInfo) -> float:
    """A first Metropolis-Hastings proposal sd for ``target``: ``2.4 / sqrt(c)``.

    ``c`` is the median over the cells of the curvature of the log full
    conditional at the current values (the optimal random-walk scale for a
    normal conditional of precision ``c``; Gelman, Roberts & Gilks 1996); the
    variable's observed sd where no curvature is positive. The values are left
    unchanged.
    """
    curvatures = [np.zeros(0)]
    for batch in target.batches:
        if batch.cells.size:
            set_values = _setter(problem, current, target, batch)
            now = _get(current, target, batch)
            precision, _ = _quadratic(_conditional(problem, current, target, batch), set_values,
                                      now, target.step)
            set_values(now)
            curvatures.append(precision[np.isfinite(precision) & (precision > 0)])
    c = np.concatenate(curvatures)
    return float(2.4 / np.sqrt(np.median(c))) if c.size else target.step


def _get(current: Current, target: TargetInfo, batch: Batch) -> np.ndarray:
    """The current values of the batch's cells."""
    if target.level == 2:
        return current.means[target.name][batch.cells].copy()
    return current.values[target.name][batch.cells].copy()


def _setter(problem: SmcProblem, current: Current, target: TargetInfo,
            batch: Batch) -> Callable[[np.ndarray], None]:
    """A function that sets the batch's cells (and the cluster means they move)."""
    name = target.name
    values = current.values[name]
    means = current.means[name]
    codes = current.grouping.codes
    if target.level == 2:
        def set_level2(new: np.ndarray) -> None:
            means[batch.cells] = new
            values[batch.rows] = means[codes[batch.rows]]
        return set_level2
    if not batch.summed:
        def set_cells(new: np.ndarray) -> None:
            values[batch.cells] = new
        return set_cells
    inverse_size = 1.0 / current.grouping.sizes[batch.clusters]

    def set_coupled(new: np.ndarray) -> None:
        # one cell per cluster: move each cluster mean by the cell's change
        means[batch.clusters] += (new - values[batch.cells]) * inverse_size
        values[batch.cells] = new
    return set_coupled


def _conditional(problem: SmcProblem, current: Current, target: TargetInfo,
                 batch: Batch) -> Callable[[], np.ndarray]:
    """A function giving the log full conditional of each cell at the current values.

    The linear predictors of the models in which the variable is only the
    dependent do not change with its value: they are computed once per batch.
    """
    frame, cluster_frame = current.frame, current.cluster_frame
    designs, params, binary = problem.designs, current.params, problem.binary
    n_clusters = current.grouping.n
    row_codes = current.grouping.codes[batch.rows] if batch.summed else None
    fixed = {k: linear_predictor(designs[k], params[k], frame, batch.rows)
             for k in target.row_models if target.name not in designs[k].predictors}
    fixed.update({-1 - k: linear_predictor(designs[k], params[k], cluster_frame, batch.clusters)
                  for k in target.cluster_models
                  if target.name not in designs[k].predictors})

    def logf() -> np.ndarray:
        total = np.zeros(batch.cells.shape)
        for k in target.row_models:
            d = designs[k]
            ld = log_density(d, params[k], frame, binary.get(d.dependent), batch.rows,
                             fixed.get(k))
            if row_codes is not None:
                ld = np.bincount(row_codes, ld, minlength=n_clusters)[batch.clusters]
            total += ld
        for k in target.cluster_models:
            d = designs[k]
            total += log_density(d, params[k], cluster_frame, binary.get(d.dependent),
                                 batch.clusters, fixed.get(-1 - k))
        return total
    return logf
