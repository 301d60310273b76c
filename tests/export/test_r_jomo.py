"""The jomo.lmer export of model-based plans: what it writes, refuses and (with R) runs."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import recipe_compiler as rc
from recipe_compiler.datasets.simulate import simulate
from recipe_compiler.export.r_jomo import plan_to_jomo
from recipe_compiler.plan.smc import ModelPlan


def smc_plan(formula: str, data: pd.DataFrame, **options: object) -> ModelPlan:
    plan = rc.compile(formula, data, approach="smc", **options)
    assert isinstance(plan, ModelPlan)
    return plan


def scenario_plan(name: str) -> ModelPlan:
    sim = simulate(name, seed=1)
    return smc_plan(sim.formula, sim.data, auxiliary=list(sim.auxiliary))


def flat(script: str) -> str:
    """The script with continuation lines joined to their first line."""
    return re.sub(r"\n {2,}", " ", script)


def call(script: str) -> str:
    m = re.search(r"^imp <- jomo\.lmer\((.*)\)$", flat(script), re.M)
    assert m, script
    return m.group(1)


def levels(script: str) -> dict[str, int]:
    m = re.search(r"^level <- c\((.*)\)$", flat(script), re.M)
    assert m, script
    return {k: int(v) for k, v in re.findall(r"([\w.]+) = (\d)", m.group(1))}


def test_random_slope_with_cross_level_interaction() -> None:
    script = plan_to_jomo(scenario_plan("slope"), nburn=200, nbetween=50, nimp=4, seed=7)
    assert call(script) == ("y ~ x + z + x:z + (1 + x | g), data = d, level = level, "
                            "nburn = 200, nbetween = 50, nimp = 4")
    # the auxiliary goes into the data (jomo's joint covariate model)
    assert 'd <- d[, c("g", "y", "x", "z", "a")]' in script
    assert levels(script) == {"g": 2, "y": 1, "x": 1, "z": 2, "a": 1}
    assert "set.seed(7)" in script
    assert "fits <- with(implist, lmer(y ~ x + z + x:z + (1 + x | clus), REML = FALSE))" in \
        flat(script)
    assert "auxiliary columns (a)" in flat(script).replace("\n# ", " ")


def test_binary_covariate_is_a_factor_and_powers_use_r_syntax() -> None:
    script = plan_to_jomo(scenario_plan("binary"))
    assert 'd[["b"]] <- factor(d[["b"]])' in script
    assert call(script).startswith("y ~ x + b + (1 | g),")
    assert call(plan_to_jomo(scenario_plan("quadratic"))).startswith("y ~ x + I(x^2) + (1 | g),")
    assert "set.seed" not in plan_to_jomo(scenario_plan("binary"))


def test_level2_moderator_and_no_analysis() -> None:
    script = plan_to_jomo(scenario_plan("moderator"), analyse=False)
    assert call(script).startswith("y ~ x + w + x:w + (1 + x | g),")
    assert levels(script)["w"] == 2
    assert "fits <-" not in script and "library(mitml)" not in script


def test_terms_of_complete_columns_are_computed_before_the_call(brandsma: pd.DataFrame) -> None:
    plan = smc_plan("lpo ~ iqv + cm(min) + cwc(min) + I(np.log(min + 1)) + I(pow(iqv, 3))"
                    " + (1 + cwc(min) | sch)", brandsma)
    script = plan_to_jomo(plan)
    assert 'd[["cm_min"]] <- ave(d[["min"]], d[["sch"]])' in script
    assert 'd[["cwc_min"]] <- d[["min"]] - ave(d[["min"]], d[["sch"]])' in script
    assert 'd[["I_np.log_min_1"]] <- log(d[["min"]] + 1)' in script
    assert call(script).startswith(
        "lpo ~ iqv + cm_min + cwc_min + I_np.log_min_1 + I(iqv^3) + (1 + cwc_min | sch),")
    # the source column min is not passed: jomo would take it for an auxiliary
    assert levels(script) == {"sch": 2, "lpo": 1, "iqv": 1, "cm_min": 2, "cwc_min": 1,
                              "I_np.log_min_1": 1}


def test_categorical_predictor_becomes_a_factor() -> None:
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(20), 10)
    d = pd.DataFrame({"g": g, "x": rng.normal(size=200), "k": rng.integers(0, 3, size=200)})
    d["y"] = d["x"] + d["k"] + rng.normal(size=200)
    d.loc[::7, "x"] = np.nan
    script = plan_to_jomo(smc_plan("y ~ x + C(k) + (1 | g)", d))
    assert 'd[["k"]] <- factor(d[["k"]])' in script
    assert call(script).startswith("y ~ x + k + (1 | g),")


def test_incomplete_nominal_covariates_are_factors_jomo_imputes() -> None:
    """jomo.lmer imputes an incomplete factor with any number of categories (latent
    normals); the plan's multinomial models export as factors at their level."""
    plan = scenario_plan("nominal")
    assert plan.model("k").family == "multinomial"
    script = plan_to_jomo(plan)
    assert 'd[["k"]] <- factor(d[["k"]])' in script
    assert call(script).startswith("y ~ x + k + (1 | g),")
    level2 = plan_to_jomo(scenario_plan("nominal_level2"))
    assert 'd[["w"]] <- factor(d[["w"]])' in level2
    assert levels(level2) == {"g": 2, "y": 1, "x": 1, "z": 2, "w": 2, "a": 1}


@pytest.mark.parametrize("formula, message", [
    ("lpo ~ iqv + cm(iqv) + (1 + iqv | sch)",
     r"term 'cm\(iqv\)': jomo.lmer cannot express cm\(iqv\) of the incomplete column 'iqv'"),
    ("lpo ~ iqv + cwc(iqv) + (1 | sch)", r"term 'cwc\(iqv\)'.*incomplete column 'iqv'"),
    ("lpo ~ iqv + I(np.log(iqv + 10)) + (1 | sch)",
     r"term 'I\(np.log\(iqv \+ 10\)\)': jomo.lmer takes I\(\) terms of incomplete columns "
     r"only as integer powers"),
    ("lpo ~ iqv + I(iqv**0.5) + (1 | sch)", r"term 'I\(iqv \*\* 0.5\)'"),
    ("lpo ~ iqv + I(iqv**2) + (1 + I(iqv**2) | sch)",
     r"random slope 'I\(iqv \*\* 2\)': jomo.lmer takes random slopes on columns only"),
    ("lpo ~ den + (1 | sch)", r"no level-1 predictor"),
    ("lpo ~ 0 + iqv + (1 | sch)", r"no intercept \(0 \+ \.\.\.\); jomo.lmer always fits one"),
    ("lpo ~ iqv + (0 + iqv | sch)", r"random part has no intercept"),
])
def test_models_out_of_reach_raise_plan_errors_naming_the_term(
        brandsma: pd.DataFrame, formula: str, message: str) -> None:
    with pytest.raises(rc.PlanError, match=message) as info:
        plan_to_jomo(smc_plan(formula, brandsma))
    assert 'approach="smc"' in str(info.value) or "level-1 columns" in str(info.value)


def test_non_syntactic_names_and_edited_outcome_family_are_refused(
        brandsma: pd.DataFrame) -> None:
    d = brandsma[["sch", "lpo", "iqv"]].rename(columns={"iqv": "iq v"})
    with pytest.raises(rc.PlanError, match=r"column 'iq v' is not a syntactic R name"):
        plan_to_jomo(smc_plan("lpo ~ `iq v` + (1 | sch)", d))
    plan = smc_plan("lpo ~ iqv + (1 | sch)", brandsma)
    models = tuple(dataclasses.replace(m, family="logit") if m.role == "outcome" else m
                   for m in plan.models)
    with pytest.raises(rc.PlanError, match=r"the outcome 'lpo'.*continuous level-1 outcome"):
        plan_to_jomo(dataclasses.replace(plan, models=models))


@pytest.mark.parametrize("kwargs, message", [
    ({"nimp": 1}, r"nimp must be an integer >= 2, got 1"),
    ({"nburn": 0}, r"nburn must be an integer >= 1"),
    ({"nbetween": 2.5}, r"nbetween must be an integer >= 1"),
    ({"seed": "1"}, r"seed must be an integer or None"),
    ({"data_name": "my data"}, r"data_name='my data' is not a valid R name"),
])
def test_bad_arguments_raise_option_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(rc.OptionError, match=message):
        plan_to_jomo(scenario_plan("slope"), **kwargs)  # type: ignore[arg-type]


def test_formula_text_cannot_leave_its_comment(brandsma: pd.DataFrame) -> None:
    plan = smc_plan("lpo ~ iqv + (1 | sch)", brandsma)
    script = plan_to_jomo(dataclasses.replace(plan, formula="lpo ~ iqv\nsystem('x') #"))
    assert "\nsystem(" not in script
    assert "#   lpo ~ iqv" in script


def _r_has(*packages: str) -> bool:
    if shutil.which("Rscript") is None:
        return False
    check = "; ".join(f"library({p})" for p in packages)
    done = subprocess.run(["Rscript", "-e", check], capture_output=True, timeout=120)
    return done.returncode == 0


@pytest.mark.skipif(shutil.which("Rscript") is None, reason="needs Rscript")
def test_every_scenario_script_parses_in_r(tmp_path: Path) -> None:
    paths = []
    for name in ("slope", "moderator", "binary", "quadratic", "nominal", "nominal_level2"):
        path = tmp_path / f"{name}.R"
        path.write_text(plan_to_jomo(scenario_plan(name), seed=1))
        paths.append(path.as_posix())
    code = "; ".join(f'invisible(parse(file = "{p}"))' for p in paths)
    done = subprocess.run(["Rscript", "-e", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
@pytest.mark.skipif(not _r_has("jomo", "lme4", "mitml"),
                    reason="needs Rscript with the R packages jomo, lme4 and mitml")
def test_script_runs_jomo_on_brandsma(brandsma: pd.DataFrame, tmp_path: Path) -> None:
    """A short jomo run of section 7.10.6's model (reference: iqv 2.535, SE 0.062).

    With 100 burn-in iterations from jomo's start (the complete-case lmer fit) and a
    fraction of missing information below 0.05, the pooled ``iqv`` lands within one
    reference SE of the long run's; the imputations keep the observed values.
    """
    d = brandsma[["sch", "lpo", "iqv"]].copy()
    d["lpo"] -= d["lpo"].mean()
    data = tmp_path / "d.csv"
    d.to_csv(data, index=False, na_rep="NA")
    script = tmp_path / "jomo.R"
    script.write_text(plan_to_jomo(smc_plan("lpo ~ iqv + (1 + iqv | sch)", d), nburn=100,
                                   nbetween=20, nimp=2, seed=441))
    out, est = tmp_path / "imp.csv", tmp_path / "est.csv"
    run = (f'd <- read.csv("{data.as_posix()}"); '
           f'invisible(capture.output(source("{script.as_posix()}"))); '
           f'write.csv(imp[imp$Imputation == 1, ], "{out.as_posix()}", row.names = FALSE); '
           f'write.csv(testEstimates(fits)$estimates, "{est.as_posix()}")')
    done = subprocess.run(["Rscript", "-e", run], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    completed = pd.read_csv(out)
    assert len(completed) == len(d) and not completed[["lpo", "iqv"]].isna().any().any()
    observed = d["iqv"].notna().to_numpy()
    assert np.allclose(completed["iqv"].to_numpy()[observed], d["iqv"].to_numpy()[observed])
    pooled = pd.read_csv(est, index_col=0)
    assert abs(pooled.loc["iqv", "Estimate"] - 2.535) < 0.062


@pytest.mark.slow
@pytest.mark.skipif(not _r_has("jomo", "lme4", "mitml"),
                    reason="needs Rscript with the R packages jomo, lme4 and mitml")
def test_script_imputes_an_incomplete_nominal_covariate_with_jomo(tmp_path: Path) -> None:
    """A short jomo run of scenario (f): the incomplete 3-category ``k`` is imputed with
    its labels and the observed values are kept."""
    sim = simulate("nominal", seed=1)
    data = tmp_path / "d.csv"
    sim.data.to_csv(data, index=False, na_rep="NA")
    script = tmp_path / "jomo.R"
    script.write_text(plan_to_jomo(scenario_plan("nominal"), nburn=50, nbetween=10, nimp=2,
                                   seed=2, analyse=False))
    out = tmp_path / "imp.csv"
    run = (f'd <- read.csv("{data.as_posix()}"); source("{script.as_posix()}"); '
           f'write.csv(imp[imp$Imputation == 1, ], "{out.as_posix()}", row.names = FALSE)')
    done = subprocess.run(["Rscript", "-e", run], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    completed = pd.read_csv(out)
    assert set(completed["k"]) == {"a", "b", "c"}
    seen = sim.data["k"].notna().to_numpy()
    assert (completed["k"].to_numpy()[seen] == sim.data["k"].to_numpy()[seen]).all()
