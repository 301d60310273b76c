"""Figures of a plan and of imputations: predictor matrix, trace lines, densities.

matplotlib is an optional dependency (``pip install "recipe_compiler[plot]"``),
imported only when a figure is drawn. Figures are built on the Agg canvas
without pyplot, so drawing never changes the user's backend or global state:
save them with ``fig.savefig("trace.png")`` (or display them in a notebook).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd

from .errors import RecipeError
from .plan import CODES, ModelPlan, Plan

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["MissingDependencyError", "plot_density", "plot_predictor_matrix", "plot_trace",
           "require_matplotlib"]

#: Colours of the predictor-matrix codes (0 is left white).
CODE_COLORS = {-2: "#9e9e9e", 0: "#ffffff", 1: "#9ecae1", 2: "#fdae6b", 3: "#4292c6",
               4: "#d94801"}
OBSERVED, IMPUTED = "#1f5fa8", "#c0392b"


class MissingDependencyError(RecipeError):
    """An optional dependency (here: matplotlib) is not installed."""


class ImputationsLike(Protocol):
    """What the trace and density plots read from an imputation result."""

    @property
    def plan(self) -> Plan | ModelPlan: ...

    @property
    def m(self) -> int: ...

    @property
    def chain_mean(self) -> pd.DataFrame: ...

    @property
    def chain_var(self) -> pd.DataFrame: ...

    @property
    def missing(self) -> pd.DataFrame: ...

    def complete(self, k: int = 1) -> pd.DataFrame: ...


def require_matplotlib() -> None:
    """Raise :class:`MissingDependencyError` (saying what to install) without matplotlib."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            "plotting needs matplotlib, which is not installed; install it with "
            "pip install \"recipe_compiler[plot]\"") from exc


def _figure(width: float, height: float) -> Figure:
    """A new Figure of ``width`` x ``height`` inches on its own Agg canvas."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_trace(imp: ImputationsLike) -> Figure:
    """Trace lines: the mean and SD of the imputed values of each target per iteration.

    One row of two panels per target (mean, SD), one line per chain, as mice's
    ``plot(imp)``. Chains that mix well overlap without trends.

    Parameters
    ----------
    imp : Imputations
        Reads ``plan.targets``, ``chain_mean`` and ``chain_var`` (index
        ``(variable, iteration)``, one column per chain).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    RecipeError
        If there are no iterations to plot (``maxit=0``).
    MissingDependencyError
        If matplotlib is not installed.
    """
    means, variances = imp.chain_mean, imp.chain_var
    targets = [t for t in imp.plan.targets if t in means.index.get_level_values(0)]
    if not targets:
        raise RecipeError("there are no iterations to plot; impute with maxit >= 1")
    fig = _figure(9.0, 0.6 + 2.0 * len(targets))
    from matplotlib.ticker import MaxNLocator

    axes = fig.subplots(len(targets), 2, squeeze=False, sharex=True)
    for (ax_mean, ax_sd), t in zip(axes, targets, strict=True):
        mean = means.loc[t]
        sd = variances.loc[t].clip(lower=0) ** 0.5
        for chain in mean.columns:
            ax_mean.plot(mean.index, mean[chain], lw=1)
            ax_sd.plot(sd.index, sd[chain], lw=1)
        ax_mean.set_title(f"mean {t}", fontsize="small")
        ax_sd.set_title(f"sd {t}", fontsize="small")
    for ax in axes[-1]:
        ax.set_xlabel("iteration")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f"{imp.m} chains", fontsize="medium")
    return fig


def plot_density(imp: ImputationsLike) -> Figure:
    """Densities of the observed (blue, thick) and imputed (red, one per imputation) values.

    Continuous targets get kernel density estimates (``scipy.stats.gaussian_kde``;
    a histogram when the values are too few or constant); binary and
    categorical ones side-by-side bars of the category proportions (imputations
    pooled). Imputations unlike the observed data are worth a second look,
    though under MAR they may differ.

    Parameters
    ----------
    imp : Imputations
        Reads ``plan``, ``m``, ``missing`` and ``complete(k)``.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    MissingDependencyError
        If matplotlib is not installed.
    """
    missing = imp.missing
    targets = list(missing.columns)
    if not targets:
        raise RecipeError("there is nothing to plot: no column was imputed")
    completed = [imp.complete(k) for k in range(1, imp.m + 1)]
    ncols = min(3, len(targets))
    nrows = -(-len(targets) // ncols)
    fig = _figure(3.6 * ncols, 0.4 + 2.8 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, t in zip(axes, targets, strict=False):
        mask = missing[t].to_numpy(dtype=bool)
        observed = completed[0][t].to_numpy()[~mask]
        imputed = [c[t].to_numpy()[mask] for c in completed]
        categorical = imp.plan.variable(t).kind in ("binary", "categorical")
        if categorical or not pd.api.types.is_numeric_dtype(completed[0][t]):
            _proportions(ax, observed, imputed)
        else:
            _densities(ax, observed.astype(float), [v.astype(float) for v in imputed])
        ax.set_title(f"{t} ({int(mask.sum())} imputed)", fontsize="small")
    for ax in axes[len(targets):]:
        ax.set_visible(False)
    fig.suptitle("observed (blue) and imputed (red)", fontsize="medium")
    return fig


def _densities(ax: Axes, observed: np.ndarray, imputed: list[np.ndarray]) -> None:
    values = np.concatenate([observed, *imputed])
    lo, hi = float(values.min()), float(values.max())
    pad = 0.1 * (hi - lo) or 0.5
    grid = np.linspace(lo - pad, hi + pad, 200)
    for v in imputed:
        _density(ax, v, grid, color=IMPUTED, lw=0.8)
    _density(ax, observed, grid, color=OBSERVED, lw=2.0)
    ax.set_ylabel("density")


def _density(ax: Axes, values: np.ndarray, grid: np.ndarray, *, color: str,
             lw: float) -> None:
    """A KDE of ``values`` on ``grid``; a step histogram when a KDE is not defined."""
    from scipy.stats import gaussian_kde

    if len(values) >= 2 and np.ptp(values) > 0:
        try:
            ax.plot(grid, gaussian_kde(values)(grid), color=color, lw=lw)
            return
        except np.linalg.LinAlgError:
            pass
    if len(values):
        ax.hist(values, bins=np.linspace(grid[0], grid[-1], 30).tolist(), density=True,
                histtype="step", color=color, lw=lw)


def _proportions(ax: Axes, observed: np.ndarray, imputed: list[np.ndarray]) -> None:
    """Side-by-side bars of the category proportions, observed and imputed (pooled)."""
    pooled = pd.Series(np.concatenate(imputed))
    seen = pd.Series(observed)
    try:
        categories = sorted({*seen.dropna(), *pooled.dropna()})
    except TypeError:  # labels of mixed types
        categories = sorted({*seen.dropna(), *pooled.dropna()}, key=str)
    x = np.arange(len(categories))
    for offset, values, color in ((-0.2, seen, OBSERVED), (0.2, pooled, IMPUTED)):
        share = values.value_counts(normalize=True)
        ax.bar(x + offset, [share.get(c, 0.0) for c in categories], width=0.4, color=color)
    ax.set_xticks(x, [f"{c:g}" if isinstance(c, float) else str(c) for c in categories])
    ax.set_ylabel("proportion")


def plot_predictor_matrix(plan: Plan) -> Figure:
    """Heatmap of the predictor matrix: target rows, used predictor columns, codes in the cells.

    Like ggmice's ``plot_pred``: one colour per code (``-2`` cluster, ``1``
    fixed, ``2`` fixed + random, ``3`` + cluster mean, ``4`` + cluster mean and
    random slope), with the code written in the cell.

    Parameters
    ----------
    plan : Plan

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    RecipeError
        If the plan imputes nothing.
    MissingDependencyError
        If matplotlib is not installed.
    """
    if not plan.targets:
        raise RecipeError("the plan has no targets, so its predictor matrix is empty")
    pm = plan.predictor_matrix.loc[plan.targets]
    pm = pm.loc[:, (pm != 0).any(axis=0)]
    codes = sorted(CODES)
    index = np.searchsorted(codes, pm.to_numpy())
    label = max(len(c) for c in pm.columns)  # the rotated column labels take height
    fig = _figure(2.0 + 0.42 * pm.shape[1], 1.8 + 0.42 * pm.shape[0] + 0.085 * label)
    ax = fig.subplots()
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    ax.imshow(index, cmap=ListedColormap([CODE_COLORS[c] for c in codes]), vmin=-0.5,
              vmax=len(codes) - 0.5, aspect="auto")
    for (i, j), code in np.ndenumerate(pm.to_numpy()):
        if code:
            ax.text(j, i, str(code), ha="center", va="center", fontsize="small",
                    color="white" if code in (3, 4) else "black")
    ax.set_xticks(range(pm.shape[1]), list(pm.columns), rotation=90)
    ax.set_yticks(range(pm.shape[0]), list(pm.index))
    ax.set_xticks(np.arange(pm.shape[1] + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(pm.shape[0] + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="#d0d0d0", lw=0.5)
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel("predictor")
    ax.set_ylabel("target")
    used = [c for c in codes if c and (pm == c).any().any()]
    fig.legend(handles=[Patch(facecolor=CODE_COLORS[c], edgecolor="#808080",
                              label=f"{c}: {CODES[c]}") for c in used],
               loc="outside lower center", ncols=2, fontsize="small", frameon=False)
    return fig
