"""The command line with ``--approach smc``: the model-based plan, its jomo script, its run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import recipe_compiler as rc
from recipe_compiler import cli
from recipe_compiler.export.r_jomo import plan_to_jomo

FORMULA = "lpo ~ iqv + (1 + iqv | sch)"


@pytest.fixture
def data_csv(tmp_path: Path, brandsma: pd.DataFrame) -> Path:
    path = tmp_path / "d.csv"
    brandsma[["sch", "lpo", "iqv"]].to_csv(path, index=False)
    return path


def test_compile_with_approach_smc_prints_the_model_and_writes_the_jomo_script(
        data_csv: Path, tmp_path: Path, brandsma: pd.DataFrame,
        capsys: pytest.CaptureFixture[str]) -> None:
    script, spec = tmp_path / "jomo.R", tmp_path / "plan.json"
    assert cli.main(["compile", str(data_csv), FORMULA, "--approach", "smc", "--r", str(script),
                     "--spec", str(spec)]) == 0
    plan = rc.compile(FORMULA, brandsma[["sch", "lpo", "iqv"]], approach="smc")
    assert isinstance(plan, rc.ModelPlan)
    assert capsys.readouterr().out == f"{plan}\n"
    assert script.read_text() == plan_to_jomo(plan)
    assert rc.load_plan(spec) == plan


def test_an_fcs_plan_with_an_incomplete_random_slope_points_to_smc(
        data_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["compile", str(data_csv), FORMULA]) == 0
    assert 'approach="smc" is the unbiased alternative' in capsys.readouterr().out


def test_impute_defaults_to_50_iterations_with_smc_and_10_with_fcs(
        brandsma: pd.DataFrame) -> None:
    d = brandsma[["sch", "lpo", "iqv"]]
    assert rc.impute(d, FORMULA, m=1, seed=1, approach="smc").maxit == 50
    assert rc.impute(d, FORMULA, m=1, seed=1).maxit == 10
    assert rc.impute(d, FORMULA, m=1, maxit=3, seed=1, approach="smc").maxit == 3
