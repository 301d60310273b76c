"""Figures: predictor matrix, trace lines and densities render to PNGs of the expected size.

``FakeImputations`` stands in for the result of ``rc.impute`` (same attributes, random
draws from the observed values) so that the figures and the CLI can be tested
without running the sampler; ``test_cli.py`` uses it too.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import recipe_compiler as rc
from recipe_compiler import plots

matplotlib = pytest.importorskip("matplotlib")
from matplotlib.image import imread  # noqa: E402


@dataclass
class FakeFit:
    """The two tables ``MIFit`` reports."""

    formula: str
    reml: bool

    def pool(self) -> pd.DataFrame:
        return pd.DataFrame({"estimate": [40.0, 2.5], "std.error": [0.3, 0.05]},
                            index=pd.Index(["(Intercept)", "iqv"], name="term"))

    def variance_components(self) -> pd.Series:
        return pd.Series({"Intercept~~Intercept|sch": 18.0, "Residual~~Residual": 63.0})


@dataclass
class FakeImputations:
    """``rc.impute``'s result without the sampler: imputations drawn from the observed values."""

    plan: rc.Plan
    data: pd.DataFrame
    m: int = 3
    maxit: int = 4
    seed: int = 0
    imputed: list[dict[str, np.ndarray]] = field(init=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        self.imputed = [{t: rng.choice(self.data[t].dropna().to_numpy(),
                                       int(self.data[t].isna().sum()))
                         for t in self.plan.targets} for _ in range(self.m)]

    @property
    def missing(self) -> pd.DataFrame:
        return self.data[self.plan.targets].isna()

    def complete(self, k: Any = 1, include: bool = False) -> pd.DataFrame:
        if k == "long":
            frames = []
            for j in range(0 if include else 1, self.m + 1):
                frame = self.complete(j)
                frame.insert(0, ".id", self.data.index.to_numpy())
                frame.insert(0, ".imp", j)
                frames.append(frame)
            return pd.concat(frames, ignore_index=True)
        out = self.data.copy()
        if k:
            for t, values in self.imputed[k - 1].items():
                out.loc[out[t].isna(), t] = values
        return out

    def _stat(self, rng: np.random.Generator, scale: float) -> pd.DataFrame:
        index = pd.MultiIndex.from_product([self.plan.targets, range(1, self.maxit + 1)],
                                           names=["variable", "iteration"])
        return pd.DataFrame(scale + rng.normal(size=(len(index), self.m)), index=index,
                            columns=pd.Index(range(1, self.m + 1), name="chain"))

    @property
    def chain_mean(self) -> pd.DataFrame:
        return self._stat(np.random.default_rng(1), 0.0)

    @property
    def chain_var(self) -> pd.DataFrame:
        return self._stat(np.random.default_rng(2), 4.0)

    def fit(self, formula: str, reml: bool = False) -> FakeFit:
        return FakeFit(formula, reml)


@pytest.fixture(scope="module")
def plan(brandsma: pd.DataFrame) -> rc.Plan:
    return rc.compile("lpo ~ iqv*sex + cm(iqv)*den + sex*den + (1 | sch)", brandsma,
                      interactions="all_pairwise", centering="cluster")


@pytest.fixture(scope="module")
def fake(plan: rc.Plan, brandsma: pd.DataFrame) -> FakeImputations:
    return FakeImputations(plan, brandsma)


def _check_png(fig: Any, path: Path) -> np.ndarray:
    """Save ``fig`` and check the PNG is a non-blank image of the figure's pixel size."""
    fig.savefig(path)
    image = imread(path)
    width, height = fig.get_size_inches() * fig.dpi
    assert abs(image.shape[0] - height) < 1 and abs(image.shape[1] - width) < 1
    assert image[..., :3].std() > 0.01  # not a blank canvas
    return image


def test_predictor_matrix_heatmap(plan: rc.Plan, tmp_path: Path) -> None:
    fig = plots.plot_predictor_matrix(plan)
    _check_png(fig, tmp_path / "pm.png")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == plan.targets
    columns = [t.get_text() for t in ax.get_xticklabels()]
    assert columns[:5] == ["sch", "lpo", "iqv", "sex", "den"] and "cm(iqv)" not in columns
    written = [t.get_text() for t in ax.texts]
    pm = plan.predictor_matrix.loc[plan.targets]
    assert len(written) == int((pm != 0).to_numpy().sum())
    assert written.count("3") == int((pm == 3).to_numpy().sum())


def test_predictor_matrix_of_the_smallest_plan(brandsma: pd.DataFrame, tmp_path: Path) -> None:
    fig = plots.plot_predictor_matrix(rc.compile("lpo ~ 1 + (1 | sch)", brandsma))
    _check_png(fig, tmp_path / "pm.png")
    assert [t.get_text() for t in fig.axes[0].texts] == ["-2"]


def test_trace_plot_has_a_mean_and_sd_panel_per_target_and_a_line_per_chain(
        fake: FakeImputations, tmp_path: Path) -> None:
    fig = plots.plot_trace(fake)
    _check_png(fig, tmp_path / "trace.png")
    assert len(fig.axes) == 2 * len(fake.plan.targets)
    assert all(len(ax.lines) == fake.m for ax in fig.axes)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["mean lpo", "sd lpo"]
    sd = fig.axes[1].lines[0].get_ydata()
    assert np.allclose(sd, np.sqrt(fake.chain_var.loc["lpo"][1].clip(lower=0)))


def test_density_plot_draws_observed_and_each_imputation(fake: FakeImputations,
                                                         tmp_path: Path) -> None:
    fig = plots.plot_density(fake)
    _check_png(fig, tmp_path / "density.png")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title().split(" ")[0] for ax in visible] == fake.plan.targets
    lpo, sex = visible[0], visible[2]
    assert len(lpo.lines) == fake.m + 1  # a KDE per imputation and the observed one
    assert len(sex.patches) == 4  # binary: observed and imputed bars of 0 and 1


def test_a_plot_of_no_iterations_says_so(fake: FakeImputations) -> None:
    empty = FakeImputations(fake.plan, fake.data, maxit=0)
    with pytest.raises(rc.RecipeError, match="no iterations to plot"):
        plots.plot_trace(empty)


def test_missing_matplotlib_raises_a_recipe_error_saying_what_to_install(
        plan: rc.Plan, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(plots.MissingDependencyError, match=r"recipe_compiler\[plot\]"):
        plots.plot_predictor_matrix(plan)
    assert issubclass(plots.MissingDependencyError, rc.RecipeError)


@pytest.mark.skipif(not hasattr(rc, "impute"), reason="rc.impute is not available yet")
def test_figures_of_a_real_imputation(brandsma: pd.DataFrame, tmp_path: Path) -> None:
    imp = rc.impute(brandsma, "lpo ~ iqv + den + (1 | sch)", m=2, maxit=2, seed=1)
    _check_png(imp.plot_trace(), tmp_path / "trace.png")
    _check_png(imp.plot_density(), tmp_path / "density.png")
