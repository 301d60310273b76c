"""The plain JSON spec of a plan: exact round trips, hand edits, validation naming the entry."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from regenerate_golden import SECTIONS, book_plan

import recipe_compiler as rc
from recipe_compiler.export.spec_json import EDITED, FORMAT, VERSION

Spec = dict[str, Any]


@pytest.fixture(scope="module")
def plan_7105() -> rc.Plan:
    return book_plan("7.10.5")


@pytest.fixture
def spec(plan_7105: rc.Plan) -> Spec:
    return rc.plan_to_spec(plan_7105)


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_every_book_plan_round_trips_exactly_through_json(section: str, tmp_path: Path) -> None:
    plan = book_plan(section)
    spec = rc.plan_to_spec(plan)
    assert json.loads(json.dumps(spec)) == spec  # plain JSON values only
    assert rc.spec_to_plan(spec) == plan
    path = tmp_path / "plan.json"
    rc.save_plan(plan, path)
    assert rc.load_plan(path) == plan
    assert rc.load_plan(str(path)) == plan


def test_spec_layout(plan_7105: rc.Plan, spec: Spec) -> None:
    assert list(spec) == ["format", "version", "formula", "options", "cluster", "variables",
                          "methods", "predictors", "provenance", "derived", "visit_sequence"]
    assert (spec["format"], spec["version"]) == (FORMAT, VERSION)
    assert spec["cluster"] == "sch"
    assert spec["options"]["interactions"] == "all_pairwise"
    assert spec["variables"][1] == {"name": "lpo", "role": "target", "level": 1,
                                    "kind": "continuous", "n_missing": 204}
    assert spec["methods"]["den"] == "2lonly.pmm"
    assert spec["methods"]["cm(iqv)"] == "2l.groupmean"
    pm = plan_7105.predictor_matrix
    assert spec["predictors"]["lpo"] == {p: int(c) for p, c in pm.loc["lpo"].items() if c}
    assert spec["predictors"]["cm(iqv)"] == {"sch": -2, "iqv": 1}
    assert len(spec["provenance"]) == len(plan_7105.cells)
    excluded = [e for e in spec["provenance"] if e["code"] == 0]
    assert excluded and all(e["predictor"] not in spec["predictors"].get(e["target"], {})
                            for e in excluded)
    assert {"name": "cwc(iqv)", "op": "cwc", "parents": ["iqv", "cm(iqv)"],
            "detail": ""} in spec["derived"]
    assert spec["visit_sequence"] == plan_7105.visit_sequence


def test_a_changed_code_is_marked_edited_by_hand(spec: Spec) -> None:
    spec["predictors"]["lpo"]["iqv"] = 1
    plan = rc.spec_to_plan(spec)
    assert plan.predictor_matrix.loc["lpo", "iqv"] == 1
    row = plan.explain("lpo").loc["iqv"]
    assert row["step"] == EDITED
    assert "was code 3" in row["reason"]
    assert plan.explain("lpo").loc["sex", "step"] != EDITED


def test_a_removed_predictor_becomes_an_edited_code_0_cell(spec: Spec) -> None:
    del spec["predictors"]["lpo"]["den"]
    plan = rc.spec_to_plan(spec)
    assert plan.predictor_matrix.loc["lpo", "den"] == 0
    row = plan.explain("lpo").loc["den"]
    assert (row["code"], row["step"]) == (0, EDITED)
    assert "removed" in row["reason"]


def test_an_added_predictor_gets_a_provenance_cell(spec: Spec, plan_7105: rc.Plan) -> None:
    spec["predictors"]["lpo"]["cm(sex)"] = 1
    plan = rc.spec_to_plan(spec)
    assert plan.predictor_matrix.loc["lpo", "cm(sex)"] == 1
    assert plan.cells[-1] == rc.plan.Cell("lpo", "cm(sex)", 1, EDITED, "added to the predictors")
    assert len(plan.cells) == len(plan_7105.cells) + 1


def test_a_spec_without_provenance_loads_with_every_cell_edited(spec: Spec) -> None:
    del spec["provenance"]
    plan = rc.spec_to_plan(spec)
    assert {c.step for c in plan.cells} == {EDITED}
    assert plan.predictor_matrix.equals(book_plan("7.10.5").predictor_matrix)


def test_a_swapped_method_loads(spec: Spec) -> None:
    spec["methods"]["lpo"] = "2l.norm"
    assert rc.spec_to_plan(spec).methods["lpo"] == "2l.norm"


def test_a_hand_edited_file_loads(plan_7105: rc.Plan, tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    rc.save_plan(plan_7105, path)
    text = path.read_text().replace('"2lonly.pmm"', '"2lonly.norm"')
    path.write_text(text)
    assert rc.load_plan(path).methods["den"] == "2lonly.norm"


def _set(*keys: Any, value: Any) -> Callable[[Spec], None]:
    def edit(spec: Spec) -> None:
        target = spec
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value
    return edit


def _drop(key: str) -> Callable[[Spec], None]:
    return lambda spec: spec.pop(key)


INVALID = {
    "unknown predictor": (_set("predictors", "lpo", "iqx", value=1),
                          r"predictors\['lpo'\]\['iqx'\]: 'iqx' is not a variable.*'iqv'"),
    "unknown target": (_set("predictors", "lpx", value={"sch": -2}),
                       r"predictors: 'lpx' is not a variable.*did you mean 'lpo'"),
    "unknown method": (_set("methods", "lpo", value="2l.lmer"),
                       r"methods\['lpo'\]: '2l.lmer' is not a known method; valid methods: "
                       r"2l.pmm, 2l.norm"),
    "method of another level": (_set("methods", "den", value="2l.pmm"),
                                r"methods\['den'\].*level-2 target; choose one of 2lonly.pmm"),
    "method of an unknown variable": (_set("methods", "zzz", value="2l.pmm"),
                                      r"methods: 'zzz' is not a variable"),
    "derived method": (_set("methods", "cm(iqv)", value="passive"),
                       r"methods\['cm\(iqv\)'\].*choose one of 2l.groupmean"),
    "code out of range": (_set("predictors", "lpo", "iqv", value=5),
                          r"predictors\['lpo'\]\['iqv'\]: code 5 is not valid; valid codes: "
                          r"-2, 0, 1, 2, 3, 4"),
    "code -1": (_set("predictors", "lpo", "iqv", value=-1), r"code -1 is not valid"),
    "code as text": (_set("predictors", "lpo", "iqv", value="3"), r"code '3' is not valid"),
    "-2 not on the cluster": (_set("predictors", "lpo", "iqv", value=-2),
                              r"code -2 marks the cluster variable, which is 'sch'"),
    "self prediction": (_set("predictors", "lpo", "lpo", value=1),
                        r"predictors\['lpo'\]\['lpo'\]: a variable cannot predict itself"),
    "unknown derived parent": (_set("derived", 0, "parents", value=["iqx"]),
                               r"derived\[0\] \('cm\(iqv\)'\) parent: 'iqx' is not a variable"),
    "derived cycle": (_set("derived", 0, "parents", value=["cwc(iqv)"]),
                      r"cycle: cm\(iqv\) -> cwc\(iqv\) -> cm\(iqv\)"),
    "unknown derived op": (_set("derived", 0, "op", value="mean"),
                           r"derived\[0\] \('cm\(iqv\)'\): op 'mean' is not valid; choose one"),
    "derived predicts its ancestor": (
        _set("predictors", "iqv", "cwc(iqv):sex", value=1),
        r"predictors\['iqv'\]\['cwc\(iqv\):sex'\]: the derived variable 'cwc\(iqv\):sex' is "
        r"computed from 'iqv'"),
    "unknown visit": (_set("visit_sequence", 0, value="lpp"),
                      r"visit_sequence\[0\]: 'lpp' is not a variable.*'lpo'"),
    "unknown provenance": (_set("provenance", 0, "predictor", value="sxx"),
                           r"provenance\[0\] predictor: 'sxx' is not a variable"),
    "bad role": (_set("variables", 1, "role", value="outcome"),
                 r"variables\[1\] \('lpo'\): role 'outcome' is not valid"),
    "bad level": (_set("variables", 1, "level", value=3),
                  r"variables\[1\] \('lpo'\): level must be 1 or 2"),
    "bad option": (_set("options", "centering", value="grand"),
                   r"spec 'options': centering='grand' is not valid"),
    "missing format": (_drop("format"), r"'format' must be 'recipe_compiler.plan', got None"),
    "missing version": (_drop("version"), r"'version' is missing; this reader understands "
                                          r"version 1"),
    "wrong version": (_set("version", value=2), r"'version' 2 is not supported"),
    "missing key": (_drop("methods"), r"spec: the key 'methods' is missing"),
    "unknown key": (_set("method", value={}), r"unknown key 'method'"),
    "target without method": (lambda s: s["methods"].pop("sex"),
                              r"methods: target 'sex' has no method"),
    "cluster mean without cluster": (
        lambda s: (s.update(cluster=None), s["variables"][0].update(role="covariate")),
        r"derived\[0\] \('cm\(iqv\)'\): a cluster mean needs a cluster"),
    "target never visited": (_set("visit_sequence", value=["lpo", "iqv", "den"]),
                             r"the target 'sex' is never visited"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_an_invalid_spec_raises_a_plan_error_naming_the_entry(case: str, spec: Spec) -> None:
    edit, message = INVALID[case]
    bad = copy.deepcopy(spec)
    edit(bad)
    with pytest.raises(rc.PlanError, match=message):
        rc.spec_to_plan(bad)


def test_a_spec_that_is_no_object_or_no_json_raises(tmp_path: Path) -> None:
    with pytest.raises(rc.PlanError, match="must be a JSON object"):
        rc.spec_to_plan([])  # type: ignore[arg-type]
    path = tmp_path / "plan.json"
    path.write_text("{not json")
    with pytest.raises(rc.PlanError, match="is not valid JSON"):
        rc.load_plan(path)
