"""The model-based plan's JSON spec: round trip, ``rc.load_plan`` dispatch, validation."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import recipe_compiler as rc
from recipe_compiler.datasets.simulate_ml import simulate_ml
from recipe_compiler.errors import PlanError
from recipe_compiler.export.plan_files import save_plan
from recipe_compiler.export.smc_json import model_plan_to_spec, spec_to_model_plan

FORMULA = "y ~ x*z + b + w + cm(x) + I(x ** 2) + (1 + x | g)"


@pytest.fixture(scope="module")
def frame(make_frame: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    return make_frame(level1=("y", "x", "a"), binary=("b",), level2=("z", "w"),
                      missing={"y": 0.15, "x": 0.15, "b": 0.1, "w": 0.25, "a": 0.1}, seed=4,
                      n_clusters=10, cluster_size=(5, 8))


@pytest.fixture(scope="module")
def plan(frame: pd.DataFrame) -> rc.ModelPlan:
    out = rc.compile(FORMULA, frame, approach="smc", auxiliary=["a"], methods={"b": "logit"})
    assert isinstance(out, rc.ModelPlan)
    return out


def test_round_trip_is_exact_and_plain_json(plan: rc.ModelPlan) -> None:
    spec = model_plan_to_spec(plan)
    assert json.loads(json.dumps(spec)) == spec
    assert spec_to_model_plan(spec) == plan
    assert spec["models"][0]["formula"] == (
        "y ~ 1 + x + z + b + w + cm(x) + I(x ** 2) + x:z + (1 + x | g)")
    assert spec_to_model_plan(spec) == plan


def test_load_plan_returns_a_model_plan_that_runs_as_the_original(
        plan: rc.ModelPlan, frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "smc.json"
    save_plan(plan, path)
    loaded = rc.load_plan(path)
    assert isinstance(loaded, rc.ModelPlan) and loaded == plan
    a = rc.impute(frame, plan, m=1, maxit=2, seed=3)
    b = rc.impute(frame, loaded, m=1, maxit=2, seed=3)
    assert a.complete(1).equals(b.complete(1))


def test_save_plan_still_writes_fcs_plans(frame: pd.DataFrame, tmp_path: Path) -> None:
    fcs = rc.compile("y ~ x + (1 | g)", frame)
    save_plan(fcs, tmp_path / "fcs.json")
    assert rc.load_plan(tmp_path / "fcs.json") == fcs


def edited(plan: rc.ModelPlan, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    spec = copy.deepcopy(model_plan_to_spec(plan))
    change(spec)
    return spec


def _set(path: tuple[Any, ...], value: object) -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        node = spec
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


@pytest.mark.parametrize(("change", "message"), [
    (_set(("version",), 2), "'version' 2 is not supported"),
    (_set(("colour",), 1), "unknown key 'colour'"),
    (_set(("models", 1, "family"), "probit"), r"models\[1\] \('x'\): family 'probit'"),
    (_set(("models", 1, "formula"), "x ~ 1 + I(__import__('os').system('echo hi')) + (1 | g)"),
     r"models\[1\] \('x'\): the formula .* does not parse"),
    (_set(("models", 1, "formula"), "x ~ 1 + q + (1 | g)"), "uses 'q', which is not a plan "
                                                             "variable"),
    (_set(("models", 1, "formula"), "y ~ 1 + (1 | g)"), "must have the dependent 'x'"),
    (_set(("draws", 2, "how"), "exact normal"), r"draws\[2\] \('x'\): 'exact normal' does "
                                                "not fit the models, which call for "
                                                "'metropolis'"),
    (_set(("draws", 3, "how"), "metropolis"), "call for 'enumerate'"),
    (lambda s: s["draws"].pop(1), "'y' must have exactly one draw entry"),
    (lambda s: s["models"].pop(2), "'b' has no model of its own"),
    (_set(("variables", 2, "role"), "derived"), "a model-based plan has the roles"),
])
def test_a_bad_spec_names_the_entry(plan: rc.ModelPlan, change: Callable[[dict[str, Any]], None],
                                    message: str) -> None:
    with pytest.raises(PlanError, match=message):
        spec_to_model_plan(edited(plan, change))


def test_the_draws_are_in_sweep_order(plan: rc.ModelPlan) -> None:
    # the auxiliary is in no model but its own: drawn first, right after its parameters
    assert plan.targets == ["a", "y", "x", "b", "w"]


def test_a_metropolis_draw_may_replace_an_exact_one(plan: rc.ModelPlan) -> None:
    spec = edited(plan, _set(("draws", 1, "how"), "metropolis"))
    assert spec_to_model_plan(spec).draws["y"].how == "metropolis"


def test_nominal_covariates_round_trip_and_run(frame: pd.DataFrame, tmp_path: Path) -> None:
    """Multinomial models at level 1 (k) and level 2 (h) and an auxiliary nominal (c): the
    spec keeps their family, the loaded plan imputes as the original."""
    labels = np.array(["p", "q", "r"])
    g = frame["g"].to_numpy()
    rows = np.arange(len(g))
    data = frame.assign(k=pd.Categorical(labels[rows % 3]), h=pd.Categorical(labels[g % 3]),
                        c=pd.Categorical(labels[(rows // 2) % 3]))
    data.loc[frame["x"].isna() & (rows >= 3), "k"] = np.nan
    data.loc[frame["w"].isna() & (g > 3), "h"] = np.nan
    data.loc[rows % 7 == 6, "c"] = np.nan
    nominal = rc.compile("y ~ x + C(k) + h + (1 | g)", data, approach="smc", auxiliary=["c"])
    assert isinstance(nominal, rc.ModelPlan)
    spec = model_plan_to_spec(nominal)
    assert json.loads(json.dumps(spec)) == spec
    assert {m["dependent"]: m["family"] for m in spec["models"]} == {
        "y": "normal", "x": "normal", "k": "multinomial", "h": "multinomial",
        "c": "multinomial"}
    assert {d["variable"]: d["how"] for d in spec["draws"]}["h"] == "enumerate"
    assert spec_to_model_plan(spec) == nominal
    save_plan(nominal, tmp_path / "nominal.json")
    loaded = rc.load_plan(tmp_path / "nominal.json")
    a = rc.impute(data, nominal, m=1, maxit=2, seed=3)
    b = rc.impute(data, loaded, m=1, maxit=2, seed=3)
    assert a.complete(1).equals(b.complete(1))
    assert set(a.complete(1)["c"]) == set(labels)
    with pytest.raises(PlanError, match=r"draws\[\d\] \('k'\): 'exact normal' does not fit the "
                                        "models, which call for 'enumerate'"):
        spec_to_model_plan(edited(nominal, lambda s: [d.update(how="exact normal")
                                                      for d in s["draws"]
                                                      if d["variable"] == "k"]))


def test_three_level_plans_round_trip_and_run(tmp_path: Path) -> None:
    data = simulate_ml("three_level", 2, sizes=(6, 3, 4)).data
    plan = rc.compile("y ~ x + w + z + (1 + x | school:class) + (1 | school)", data,
                      approach="smc", auxiliary=["a"])
    spec = model_plan_to_spec(plan)
    assert spec["groupings"] == ["school:class", "school"]
    assert {m["dependent"]: m["formula"] for m in spec["models"]}["w"] == \
        "w ~ 1 + z + (1 | school)"
    assert "groupings" not in model_plan_to_spec(rc.compile(
        "y ~ x + (1 | school)", data, approach="smc"))  # two-level specs are unchanged
    assert spec_to_model_plan(json.loads(json.dumps(spec))) == plan
    path = tmp_path / "plan.json"
    save_plan(plan, path)
    loaded = rc.load_plan(path)
    a = rc.impute(data, loaded, m=1, maxit=3, seed=5).complete(1)
    b = rc.impute(data, plan, m=1, maxit=3, seed=5).complete(1)
    pd.testing.assert_frame_equal(a, b)
    for change, message in (
            (lambda s: s.update(groupings=["school"]), "must list the two nested"),
            (lambda s: s.update(groupings=["school", "school:class"]), "the first must be"),
            (lambda s: s["models"][2].update(formula="w ~ 1 + z + (1 | class)"),
             r"may add only the outer random intercept '\(1 \| school\)'"),
            (lambda s: s["models"][3].update(formula="z ~ 1 + (1 | school)"),
             "may add only the outer random intercept of a three-level plan")):
        bad = copy.deepcopy(spec)
        change(bad)
        with pytest.raises(PlanError, match=message):
            spec_to_model_plan(bad)
