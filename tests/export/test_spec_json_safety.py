"""Findings 8 and 9 of issue 10, in the spec reader: hostile spec files raise a PlanError.

Each of these used to end in a traceback (UnicodeDecodeError, RecursionError, a
KeyError inside the Gibbs sampler) or in a silently wrong imputation; now
``load_plan`` and ``Plan.from_spec`` refuse them, naming the entry at fault.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from regenerate_golden import book_plan

import recipe_compiler as rc

Spec = dict[str, Any]


@pytest.fixture(scope="module")
def spec() -> Spec:
    """The 7.10.5 plan's spec: cm(iqv) is derived[0], cwc(iqv) derived[1] (checked here)."""
    s = rc.plan_to_spec(book_plan("7.10.5"))
    assert [(d["name"], d["op"], d["parents"]) for d in s["derived"][:3]] == [
        ("cm(iqv)", "cm", ["iqv"]), ("cwc(iqv)", "cwc", ["iqv", "cm(iqv)"]),
        ("cwc(iqv):sex", "product", ["cwc(iqv)", "sex"])]
    return s


# ------------------------------------------------------------------ the file


def test_a_latin1_spec_is_a_plan_error_saying_utf8(spec: Spec, tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    edited = {**spec, "formula": spec["formula"] + " # élève"}
    path.write_bytes(json.dumps(edited, ensure_ascii=False).encode("latin-1"))
    with pytest.raises(rc.PlanError, match=r"plan.json is not UTF-8 text \(byte \d+: invalid "
                                           r"continuation byte\); a plan spec is JSON in UTF-8"):
        rc.load_plan(path)


def test_a_byte_order_mark_is_accepted(spec: Spec, tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(spec).encode("utf-8"))
    assert rc.load_plan(path) == book_plan("7.10.5")


@pytest.mark.parametrize("text, message", [
    ("[" * 100_000 + "]" * 100_000, r"the JSON is nested too deeply to read"),
    ('{"format": ' + "[" * 50_000 + "]" * 50_000 + "}", r"the JSON is nested too deeply"),
    ('{"version": ' + "9" * 5000 + "}", r"is not valid JSON: .*digits"),
], ids=["nested list", "nested value", "5000-digit integer"])
def test_json_python_cannot_read_is_a_plan_error(text: str, message: str,
                                                 tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(text)
    with pytest.raises(rc.PlanError, match=message):
        rc.load_plan(path)


# ------------------------------------------------------------------ the entries


def _set(*keys: Any, value: Any) -> Callable[[Spec], None]:
    def edit(s: Spec) -> None:
        target = s
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value
    return edit


INVALID = {
    "visit the cluster": (
        lambda s: s["visit_sequence"].insert(0, "sch"),
        r"^visit_sequence\[0\]: 'sch' is the cluster variable, which is never imputed; only "
        r"targets and derived variables are visited$"),
    "visit a covariate": (
        lambda s: (s["variables"][3].update(role="covariate", n_missing=0),
                   s["methods"].pop("sex"), s["predictors"].pop("sex")),
        r"^visit_sequence\[\d+\]: 'sex' is a covariate, which is never imputed"),
    "cwc with one parent": (
        _set("derived", 1, "parents", value=["iqv"]),
        r"^derived\[1\] \('cwc\(iqv\)'\): op 'cwc' takes 2 parents \(the variable and its "
        r"cluster mean\), got 1: \['iqv'\]$"),
    "cwc of another mean": (
        _set("derived", 1, "parents", value=["lpo", "cm(iqv)"]),
        r"^derived\[1\] \('cwc\(iqv\)'\): the second parent 'cm\(iqv\)' must be the cluster "
        r"mean of 'lpo', a derived entry with op 'cm' and parents \['lpo'\]$"),
    "cm with two parents": (
        _set("derived", 0, "parents", value=["iqv", "lpo"]),
        r"^derived\[0\] \('cm\(iqv\)'\): op 'cm' takes 1 parents"),
    "product of one factor": (
        _set("derived", 2, "parents", value=["sex"]),
        r"^derived\[2\] \('cwc\(iqv\):sex'\): op 'product' takes at least 2 parents \(the "
        r"factors\), got 1"),
    "the cluster as a parent": (
        _set("derived", 2, "parents", value=["sch", "sex"]),
        r"^derived\[2\] \('cwc\(iqv\):sex'\) parent: 'sch' is the cluster variable"),
    "the cluster as a fixed effect": (
        _set("predictors", "lpo", "sch", value=1),
        r"^predictors\['lpo'\]\['sch'\]: code 1 is not valid for the cluster variable 'sch'; "
        r"it takes code -2 \(or 0: not used\)$"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_entries_the_sampler_cannot_run_are_plan_errors(case: str, spec: Spec,
                                                        tmp_path: Path) -> None:
    edit, message = INVALID[case]
    bad = copy.deepcopy(spec)
    edit(bad)
    with pytest.raises(rc.PlanError, match=message):
        rc.spec_to_plan(bad)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(rc.PlanError, match=message):
        rc.load_plan(path)


def test_the_cluster_may_be_left_out_of_a_row(spec: Spec) -> None:
    """Code 0 for the cluster is an edit, not an error (a single-level row)."""
    edited = copy.deepcopy(spec)
    del edited["predictors"]["den"]["sch"]
    assert rc.spec_to_plan(edited).predictor_matrix.loc["den", "sch"] == 0
