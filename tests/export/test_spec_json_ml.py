"""The JSON spec of plans with several grouping factors: round trips and validation.

Three-level (``school:class`` in ``school``, or unique class ids) and crossed
(rater x item) plans built by hand in ``ml_plans.py``: they round-trip through
``plan_to_spec``/``spec_to_plan`` and through files; a two-level spec keeps its
old layout; every entry that breaks the rules of several grouping factors is a
PlanError naming it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ml_plans import crossed, three_level
from regenerate_golden import book_plan

import recipe_compiler as rc

Spec = dict[str, Any]
PLANS: dict[str, Callable[[], rc.Plan]] = {
    "three_level": three_level, "unique_class_ids": lambda: three_level("class"),
    "crossed": crossed}


@pytest.mark.parametrize("name", sorted(PLANS))
def test_plans_round_trip_through_specs_and_files(name: str, tmp_path: Path) -> None:
    plan = PLANS[name]()
    spec = json.loads(json.dumps(rc.plan_to_spec(plan)))
    assert rc.spec_to_plan(spec) == plan
    rc.save_plan(plan, tmp_path / "plan.json")
    loaded = rc.load_plan(tmp_path / "plan.json")
    assert loaded == plan and isinstance(loaded, rc.Plan)
    assert (loaded.groupings, loaded.nesting) == (plan.groupings, plan.nesting)
    assert loaded.several_groupings and loaded.cluster == plan.groupings[0]


def test_spec_layout_of_a_three_level_plan() -> None:
    spec = rc.plan_to_spec(three_level())
    assert list(spec)[4:7] == ["cluster", "groupings", "nesting"]
    assert (spec["cluster"], spec["groupings"], spec["nesting"]) == (
        "school:class", ["school:class", "school"], "nested")
    assert spec["version"] == 1
    assert {"name": "cm(x, school)", "op": "cm", "parents": ["x"],
            "detail": "school"} in spec["derived"]
    assert spec["methods"]["z"] == "3lonly.pmm"


def test_a_two_level_spec_has_no_grouping_keys() -> None:
    spec = rc.plan_to_spec(book_plan("7.10.5"))
    assert "groupings" not in spec and "nesting" not in spec
    assert rc.spec_to_plan(spec).groupings == ("sch",)


@pytest.fixture(scope="module")
def spec() -> Spec:
    """The three-level spec; variables[0] is school:class, [1] school, [4] w, [5] z."""
    s = rc.plan_to_spec(three_level())
    assert [v["name"] for v in s["variables"][:6]] == ["school:class", "school", "y", "x", "w",
                                                       "z"]
    return s


@pytest.fixture(scope="module")
def crossed_spec() -> Spec:
    return rc.plan_to_spec(crossed())


def _set(*keys: Any, value: Any) -> Callable[[Spec], None]:
    def edit(s: Spec) -> None:
        target = s
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value
    return edit


def _swap_groupings(s: Spec) -> None:
    s["groupings"].reverse()


INVALID: dict[str, tuple[Callable[[Spec], None], str]] = {
    "groupings out of order": (
        _swap_groupings,
        r"^spec 'groupings' \['school', 'school:class'\] must be the variables with role "
        r"'cluster', in the order they are listed: \['school:class', 'school'\]"),
    "grouping not a cluster variable": (
        _set("groupings", value=["school:class", "w"]),
        r"^spec 'groupings' .* must be the variables with role 'cluster'"),
    "groupings not a list": (_set("groupings", value="school:class"),
                             r"^spec: 'groupings' must be a list"),
    "cluster not the first grouping": (
        _set("cluster", value="school"),
        r"^spec 'cluster' 'school' must be the first grouping factor, 'school:class'"),
    "unknown nesting": (_set("nesting", value="partial"),
                        r"^spec 'nesting' 'partial' is not valid for 2 grouping factor\(s\); "
                        r"choose one of 'nested', 'crossed'"),
    "nesting missing": (lambda s: s.pop("nesting"), r"^spec: the key 'nesting' is missing"),
    "grouping at the wrong level": (
        _set("variables", 1, "level", value=2),
        r"^variables\[1\] \('school'\): the grouping factor number 2 of a nested design has "
        r"level 3, got 2"),
    "level 4": (_set("variables", 2, "level", value=4),
                r"^variables\[2\] \('y'\): level must be 1 to 3, got 4"),
    "cm over no grouping": (
        _set("derived", 1, "detail", value="district"),
        r"^derived\[1\] \('cm\(x, school\)'\): detail 'district' must be the grouping factor "
        r"the mean is taken over, one of 'school:class', 'school'"),
    "two-level method on a level-1 target": (
        _set("methods", "y", value="2l.pmm"),
        r"^methods\['y'\]: '2l.pmm' is not valid for this level-1 target of a nested design; "
        r"choose one of ml.pmm, ml.norm"),
    "level-3 method on a class-level target": (
        _set("methods", "w", value="3lonly.pmm"),
        r"^methods\['w'\]: '3lonly.pmm' is not valid for this level-2 target.*ml.pmm, ml.norm"),
    "multilevel method on a school-level target": (
        _set("methods", "z", value="ml.pmm"),
        r"^methods\['z'\]: 'ml.pmm' is not valid for this level-3 target of a nested design; "
        r"choose one of 3lonly.pmm, 3lonly.norm"),
    "code 3": (_set("predictors", "y", "w", value=3),
               r"^predictors\['y'\]\['w'\]: code 3 is not valid; valid codes: -2, 0, 1, 2 "
               r"\(codes 3 and 4 have no meaning with several grouping factors"),
    "-2 on a measured column": (
        _set("predictors", "y", "w", value=-2),
        r"^predictors\['y'\]\['w'\]: code -2 marks a grouping factor, one of 'school:class', "
        r"'school'"),
    "code 1 on a grouping": (
        _set("predictors", "y", "school", value=1),
        r"^predictors\['y'\]\['school'\]: code 1 is not valid for a grouping factor 'school'; "
        r"it takes code -2"),
    "random slope of a class-level target": (
        _set("predictors", "w", "x", value=2),
        r"^predictors\['w'\]\['x'\]: code 2 \(a random slope\) is valid for level-1 targets "
        r"only; 'w' has level 2"),
    "random slope without a grouping": (
        lambda s: (s["predictors"]["y"].pop("school:class"), s["predictors"]["y"].pop("school")),
        r"^predictors\['y'\]\['x'\]: code 2 puts a random slope on the target's first grouping "
        r"factor of code -2, and 'y' has none"),
    "derived from a grouping": (
        _set("derived", 0, "parents", value=["school"]),
        r"^derived\[0\] \('cm\(x, school:class\)'\) parent: 'school' is a grouping factor"),
    "visit a grouping": (
        lambda s: s["visit_sequence"].insert(0, "school"),
        r"^visit_sequence\[0\]: 'school' is a grouping factor, which is never imputed"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_an_invalid_three_level_spec_names_the_entry(case: str, spec: Spec) -> None:
    edit, message = INVALID[case]
    bad = copy.deepcopy(spec)
    edit(bad)
    with pytest.raises(rc.PlanError, match=message):
        rc.spec_to_plan(bad)


@pytest.mark.parametrize("edit, message", [
    (_set("methods", "a", value="ml.pmm"),
     r"^methods\['a'\]: 'a' has role 'covariate' and is not imputed"),
    (lambda s: (s["variables"][4].update(role="target"), s["methods"].update(a="ml.pmm"),
                s["visit_sequence"].append("a")),
     r"^methods\['a'\]: 'ml.pmm' is not valid for this level-2 target of a crossed design \(a "
     r"column constant within a crossed grouping factor must be complete; such plans impute "
     r"level-1 targets only\); choose one of none"),
    (_set("variables", 1, "level", value=3),
     r"^variables\[1\] \('item'\): the grouping factor number 2 of a crossed design has level "
     r"2, got 3"),
    (_set("variables", 4, "level", value=3),
     r"^variables\[4\] \('a'\): level 3 is above the top level 2 of the grouping factors"),
], ids=["covariate method", "crossed level-2 target", "crossed grouping level",
        "crossed level 3"])
def test_an_invalid_crossed_spec_names_the_entry(edit: Callable[[Spec], None], message: str,
                                                 crossed_spec: Spec) -> None:
    bad = copy.deepcopy(crossed_spec)
    edit(bad)
    with pytest.raises(rc.PlanError, match=message):
        rc.spec_to_plan(bad)


def test_a_one_grouping_spec_may_state_its_grouping() -> None:
    """``groupings: [cluster]`` with empty nesting is a two-level plan; a nesting is not."""
    spec = rc.plan_to_spec(book_plan("7.10.5"))
    assert rc.spec_to_plan({**spec, "groupings": ["sch"], "nesting": ""}) == book_plan("7.10.5")
    with pytest.raises(rc.PlanError, match=r"'nesting' 'nested' is not valid for 1 grouping "
                                           r"factor\(s\); choose one of ''"):
        rc.spec_to_plan({**spec, "groupings": ["sch"], "nesting": "nested"})


def test_a_spec_written_before_several_groupings_still_loads(tmp_path: Path) -> None:
    """Specs written before these plans (no grouping keys) load unchanged."""
    plan = book_plan("7.10.7")
    path = tmp_path / "old.json"
    path.write_text(json.dumps(rc.plan_to_spec(plan)))
    assert rc.load_plan(path) == plan
