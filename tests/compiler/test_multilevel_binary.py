"""Binary targets in plans with several grouping factors: ml.bin at levels 1 and 2,
3lonly.polyreg at the outermost level; nominal and ordinal targets below it refused.

Small seeded synthetic data: pupils in classes in schools (class numbered within its
school, so the class factor is ``school:class``), and raters crossed with items.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import recipe_compiler as rc
from recipe_compiler.errors import DataError, OptionError, PlanError


def three_level(seed: int = 2, schools: int = 12, classes: int = 3, pupils: int = 6
                ) -> pd.DataFrame:
    """y, x at the pupil level, k a binary pupil column (labels no/yes), w a binary class
    column (lo/hi), s a nominal school column (p/q/r), z a 0/1 float school column; each
    incomplete (k at random rows, w in three classes, s and z in two schools)."""
    rng = np.random.default_rng(seed)
    school = np.repeat(np.arange(schools), classes * pupils)
    klass = np.tile(np.repeat(np.arange(classes), pupils), schools)
    cid = school * classes + klass
    n = len(school)
    x = rng.normal(size=n)
    k = rng.random(n) < 0.5
    d = pd.DataFrame({"school": school, "class": klass, "x": x,
                      "y": x + k + rng.normal(size=schools)[school] + rng.normal(size=n),
                      "k": np.where(k, "yes", "no"),
                      "w": np.where(rng.random(schools * classes) < 0.5, "hi", "lo")[cid],
                      "s": np.array(["p", "q", "r"])[rng.integers(0, 3, schools)][school],
                      "z": (rng.random(schools) < 0.5).astype(float)[school]})
    d.loc[rng.random(n) < 0.25, "k"] = None
    d.loc[np.isin(cid, [1, 7, 20]), "w"] = None
    d.loc[np.isin(school, [3, 8]), ["s", "z"]] = None
    return d


F = "y ~ C(k) + x + C(w) + C(s) + (1 | school/class)"


@pytest.fixture(scope="module")
def d3() -> pd.DataFrame:
    return three_level()


@pytest.fixture(scope="module")
def plan(d3: pd.DataFrame) -> rc.Plan:
    return rc.compile(F, d3)


def test_binary_targets_get_ml_bin_and_school_categoricals_3lonly_polyreg(
        plan: rc.Plan, d3: pd.DataFrame) -> None:
    methods = dict(plan.method_table)
    assert (methods["k"], methods["w"], methods["s"]) == ("ml.bin", "ml.bin", "3lonly.polyreg")
    row = dict(plan.predictors("w"))
    assert row["school"] == -2 and "school:class" not in row  # one unit per class
    assert dict(plan.predictors("k"))["school:class"] == -2
    assert "school" not in dict(plan.predictors("s"))
    # a 0/1 float column is a number: 3lonly.norm by default, 3lonly.polyreg on request
    numeric = rc.compile("y ~ x + z + (1 | school/class)", d3)
    assert dict(numeric.method_table)["z"] == "3lonly.norm"
    chosen = rc.compile("y ~ x + z + (1 | school/class)", d3, methods={"z": "3lonly.polyreg"})
    assert dict(chosen.method_table)["z"] == "3lonly.polyreg"


def test_ml_bin_is_refused_for_a_school_level_target(d3: pd.DataFrame) -> None:
    with pytest.raises(OptionError, match=r"ml\.bin.*3lonly\.polyreg"):
        rc.compile(F, d3, methods={"s": "ml.bin"})


def test_nominal_targets_below_the_school_level_are_refused(d3: pd.DataFrame) -> None:
    pupils = d3.assign(k=np.where(d3["k"].isna(), None,
                                  np.array(["a", "b", "c"])[np.arange(len(d3)) % 3]))
    with pytest.raises(DataError, match=r"^column 'k' is nominal \(3 categories\) and "
                                        r"incomplete at level 1;"):
        rc.compile(F, pupils)
    cid = d3["school"] * 3 + d3["class"]
    classes = d3.assign(w=np.where(d3["w"].isna(), None, np.array(["a", "b", "c"])[cid % 3]))
    with pytest.raises(DataError, match=r"^column 'w' is nominal \(3 categories\) and "
                                        r"incomplete at level 2;.*code 'w' as a number"):
        rc.compile(F, classes)


def test_ordinal_targets_at_the_school_level_are_refused(d3: pd.DataFrame) -> None:
    data = d3.assign(s=pd.Categorical(d3["s"], categories=["p", "q", "r"], ordered=True))
    with pytest.raises(DataError, match=r"^column 's' is ordinal \(3 categories\) and "
                                        r"incomplete at the outermost level;"):
        rc.compile(F, data)


def test_crossed_binary_targets_get_ml_bin() -> None:
    rng = np.random.default_rng(4)
    rater, item = np.repeat(np.arange(10), 8), np.tile(np.arange(8), 10)
    x = rng.normal(size=80)
    d = pd.DataFrame({"rater": rater, "item": item, "x": x, "y": x + rng.normal(size=80),
                      "b": np.where(rng.random(80) < 0.5, "u", "v")})
    d.loc[rng.random(80) < 0.2, "b"] = None
    plan = rc.compile("y ~ C(b) + x + (1 | rater) + (1 | item)", d)
    assert dict(plan.method_table)["b"] == "ml.bin"
    assert {p for p, c in plan.predictors("b") if c == -2} == {"rater", "item"}
    out = rc.impute(d, plan, m=2, maxit=2, seed=1).complete(2)
    assert set(out["b"]) == {"u", "v"}


def test_imputations_are_labels_and_class_values_constant_within_classes(
        plan: rc.Plan, d3: pd.DataFrame) -> None:
    """The class-level target w is imputed on one unit per class (its observed label
    where observed), so every class keeps one value; the school-level nominal s one per
    school; pupils' k only its two labels; observed cells unchanged."""
    imp = rc.impute(d3, plan, m=2, maxit=3, seed=3)
    for k in (1, 2):
        out = imp.complete(k)
        assert set(out["k"]) == {"no", "yes"} and set(out["w"]) == {"lo", "hi"}
        assert set(out["s"]) <= {"p", "q", "r"}
        assert out.groupby(["school", "class"])["w"].nunique().max() == 1
        assert out.groupby("school")["s"].nunique().max() == 1
        for c in ("k", "w", "s"):
            seen = d3[c].notna()
            assert (out.loc[seen, c] == d3.loc[seen, c]).all()


def test_r_script_writes_ml_lmer_binary_and_2lonly_function(plan: rc.Plan) -> None:
    script = rc.plan_to_r(plan, flavor="miceadds")
    assert 'meth[c("k", "w")] <- "ml.lmer"' in script
    assert 'model <- list(k = "binary", w = "binary")' in script
    assert 'meth["s"] <- "2lonly.function"' in script
    assert 'imputationFunction = list(s = "polyreg")' in script
    assert 'cluster_var = list(s = "school")' in script
    assert 'variables_levels <- c(k = "", w = "school_class")' in script
    assert "d$k <- as.factor(d$k)" in script and "d$s <- as.factor(d$s)" in script
    assert "glmer (logistic)" in script


def test_spec_accepts_the_new_methods_at_their_levels(plan: rc.Plan) -> None:
    spec = rc.plan_to_spec(plan)
    assert rc.spec_to_plan(spec) == plan
    bad = {**spec, "methods": {**spec["methods"], "s": "ml.bin"}}
    with pytest.raises(PlanError, match=r"methods\['s'\]: 'ml\.bin' is not valid for this "
                                        r"level-3 target.*3lonly\.polyreg"):
        rc.spec_to_plan(bad)
    bad = {**spec, "methods": {**spec["methods"], "w": "3lonly.polyreg"}}
    with pytest.raises(PlanError, match=r"'3lonly\.polyreg' is not valid for this level-2 "
                                        r"target.*ml\.bin"):
        rc.spec_to_plan(bad)


def test_a_class_level_binary_target_without_a_grouping_falls_back_to_2lonly_logreg(
        plan: rc.Plan) -> None:
    spec = rc.plan_to_spec(plan)
    del spec["predictors"]["w"]["school"]
    script = rc.plan_to_r(rc.spec_to_plan(spec))
    assert 'meth[c("w", "s")] <- "2lonly.function"' in script
    assert 'imputationFunction = list(w = "logreg", s = "polyreg")' in script
    assert 'cluster_var = list(w = "school_class", s = "school")' in script
    assert 'model <- list(k = "binary")' in script
