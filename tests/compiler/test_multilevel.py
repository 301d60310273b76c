"""Plans for three-level (nested) and crossed models: the ML rules of compiler/multilevel.py.

Small seeded synthetic data: pupils in classes in schools (class numbered 1..3 within each
school, so the class factor is ``school:class``), and raters crossed with items.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

import recipe_compiler as rc
from recipe_compiler.compiler import multilevel
from recipe_compiler.compiler.context import Context
from recipe_compiler.compiler.multilevel import level1_entries, upper_entries
from recipe_compiler.compiler.options import make_options
from recipe_compiler.data.schema import ColumnInfo, DataSchema
from recipe_compiler.errors import DataError, FormulaError, OptionError
from recipe_compiler.model.parse import parse_formula

F3 = "y ~ x + w + z + x:z + (1 + x | school/class)"
FX = "y ~ x + v + q + (1 + x | rater) + (1 | item)"


def three_level(seed: int = 3, schools: int = 8, classes: int = 3, pupils: int = 5
                ) -> pd.DataFrame:
    """y, x pupil level; w class level; z school level; a a complete pupil auxiliary.

    x and y miss at random rows, w in three whole classes, z in two whole schools.
    """
    rng = np.random.default_rng(seed)
    school = np.repeat(np.arange(1, schools + 1), classes * pupils)
    klass = np.tile(np.repeat(np.arange(1, classes + 1), pupils), schools)
    n = len(school)
    cid = (school - 1) * classes + klass - 1
    z = rng.normal(size=schools)[school - 1]
    w = rng.normal(size=schools * classes)[cid]
    x = rng.normal(size=n)
    d = pd.DataFrame({"school": school, "class": klass, "y": x + w + z + rng.normal(size=n),
                      "x": x, "w": w, "z": z, "a": rng.normal(size=n)})
    d.loc[rng.random(n) < 0.2, "x"] = np.nan
    d.loc[rng.random(n) < 0.2, "y"] = np.nan
    d.loc[np.isin(cid, [1, 7, 12]), "w"] = np.nan
    d.loc[np.isin(school, [2, 5]), "z"] = np.nan
    return d


def crossed(seed: int = 4, raters: int = 10, items: int = 8) -> pd.DataFrame:
    """y, x rating level (incomplete); v constant within raters, q within items (complete)."""
    rng = np.random.default_rng(seed)
    rater = np.repeat(np.arange(raters), items)
    item = np.tile(np.arange(items), raters)
    n = len(rater)
    v, q = rng.normal(size=raters)[rater], rng.normal(size=items)[item]
    x = rng.normal(size=n)
    d = pd.DataFrame({"rater": rater, "item": item, "y": x + v + q + rng.normal(size=n),
                      "x": x, "v": v, "q": q})
    d.loc[rng.random(n) < 0.2, "x"] = np.nan
    d.loc[rng.random(n) < 0.2, "y"] = np.nan
    return d


@pytest.fixture(scope="module")
def d3() -> pd.DataFrame:
    return three_level()


@pytest.fixture(scope="module")
def dx() -> pd.DataFrame:
    return crossed()


@pytest.fixture(scope="module")
def p3(d3: pd.DataFrame) -> rc.Plan:
    return rc.compile(F3, d3)


@pytest.fixture(scope="module")
def px(dx: pd.DataFrame) -> rc.Plan:
    return rc.compile(FX, dx)


def row(plan: rc.Plan, target: str) -> dict[str, int]:
    return dict(plan.predictors(target))


def steps(plan: rc.Plan, target: str) -> dict[str, str]:
    return plan.explain(target)["step"].to_dict()


# ----------------------------------------------------------------------------- layout


def test_nested_plan_has_both_groupings_innermost_first(p3: rc.Plan) -> None:
    assert p3.groupings == ("school:class", "school") and p3.nesting == "nested"
    assert p3.cluster == "school:class" and p3.several_groupings
    clusters = [(v.name, v.level) for v in p3.variables if v.role == "cluster"]
    assert clusters == [("school:class", 2), ("school", 3)]
    assert p3.names[:2] == ["school:class", "school"]


def test_targets_by_level_with_their_methods(p3: rc.Plan) -> None:
    assert p3.targets == ["y", "x", "w", "z"]
    assert [p3.variable(t).level for t in p3.targets] == [1, 1, 2, 3]
    assert p3.methods[p3.targets].tolist() == ["ml.pmm", "ml.pmm", "ml.norm", "3lonly.norm"]


def test_whole_number_columns_above_level_1_keep_pmm(p3: rc.Plan, d3: pd.DataFrame) -> None:
    """Class- and school-level numbers default to the normal model, except integer columns,
    whose imputations must stay whole (a norm method is refused for them at impute time)."""
    data = d3.assign(w=d3["w"].round().astype("Int64"))
    plan = rc.compile(p3.formula, data)
    assert plan.methods[["w", "z"]].tolist() == ["ml.pmm", "3lonly.norm"]


def test_cluster_means_are_explicit_derived_variables_per_grouping(p3: rc.Plan) -> None:
    d = p3.derived
    assert d["cm(x, school)"] == rc.plan.Derived("cm(x, school)", "cm", ("x",), "school")
    assert d["cm(x, school:class)"].detail == "school:class"
    assert d["cm(w, school)"].parents == ("w",)
    assert "cm(w, school:class)" not in d  # w is constant within classes
    levels = {n: p3.variable(n).level for n in d}
    assert levels == {"cm(x, school:class)": 2, "cm(x, school)": 3, "cm(w, school)": 3,
                      "x:z": 1, "cm(y, school:class)": 2, "cm(y, school)": 3, "y:z": 1}
    # each mean's own row: its grouping (-2) and its parent
    assert row(p3, "cm(x, school)") == {"school": -2, "x": 1}
    assert row(p3, "cm(w, school)") == {"school": -2, "w": 1}


def test_codes_are_only_minus2_0_1_2(p3: rc.Plan, px: rc.Plan) -> None:
    for plan in (p3, px):
        assert set(np.unique(plan.predictor_matrix.to_numpy())) <= {-2, 0, 1, 2}


# ----------------------------------------------------------------------------- rows


def test_level1_outcome_row(p3: rc.Plan) -> None:
    assert row(p3, "y") == {"school:class": -2, "school": -2, "x": 2, "w": 1, "z": 1,
                            "cm(x, school:class)": 1, "cm(x, school)": 1, "cm(w, school)": 1,
                            "x:z": 1}
    s = steps(p3, "y")
    assert s["school"] == "ML.1.0 grouping factor"
    assert s["cm(x, school)"] == "ML.1.1 level-1 variable + means"
    assert s["cm(w, school)"] == "ML.1.2 level-2 variable + mean"
    assert s["z"] == "ML.1.3 level-3 variable"
    assert s["x:z"] == "ML.1.6 cross-level (levels 1, 3) interaction"


def test_level1_covariate_row_uses_the_role_map(p3: rc.Plan) -> None:
    assert row(p3, "x") == {"school:class": -2, "school": -2, "y": 2, "w": 1, "z": 1,
                            "cm(w, school)": 1, "cm(y, school:class)": 1, "cm(y, school)": 1,
                            "y:z": 1}
    ex = p3.explain("x")
    assert ex.loc["y:z", "reason"] == "image of analysis term 'x:z' (role map x <-> y)"


def test_random_slope_on_the_inner_grouping_is_code_2_and_the_outer_one_is_explained(
        p3: rc.Plan) -> None:
    # (1 + x | school/class) has the slope over school:class and over school
    step = steps(p3, "y")["x"]
    assert "ML.1.4 random slope over 'school:class'" in step
    assert "ML.1.5 random slope over 'school': fixed effect + means" in step
    assert "not modelled in the imputation model" in p3.explain("y").loc["x", "reason"]


def test_a_slope_only_over_the_outer_grouping_is_fixed_effect_and_means(
        d3: pd.DataFrame) -> None:
    plan = rc.compile("y ~ x + (1 | school:class) + (1 + x | school)", d3)
    assert row(plan, "y")["x"] == 1
    assert steps(plan, "y")["x"] == ("ML.1.1 level-1 variable + means; ML.1.5 random slope "
                                     "over 'school': fixed effect + means")


def test_a_level2_slope_over_the_outer_grouping_is_fixed_effect_and_mean(
        d3: pd.DataFrame) -> None:
    plan = rc.compile("y ~ x + w + (1 | school:class) + (1 + w | school)", d3)
    assert row(plan, "y")["w"] == 1 and row(plan, "y")["cm(w, school)"] == 1
    assert steps(plan, "y")["w"] == ("ML.1.2 level-2 variable + mean; ML.1.5 random slope "
                                     "over 'school': fixed effect + means")


def test_level2_and_level3_targets_need_two_observed_clusters(d3: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"^column 'z' is a level-3 variable observed in only 1 "
                                        r"cluster of 'school'"):
        rc.compile(F3, d3.assign(z=d3["z"].where(d3["school"] == 1)))
    with pytest.raises(DataError, match=r"^column 'w' is a level-2 variable observed in only 1 "
                                        r"cluster of 'school:class'"):
        rc.compile(F3, d3.assign(w=d3["w"].where((d3["school"] == 1) & (d3["class"] == 1))),
                   levels={"w": 2})


def test_means_only_turns_code_2_into_1(d3: pd.DataFrame) -> None:
    plan = rc.compile(F3, d3, random_slopes="means_only")
    assert row(plan, "y")["x"] == 1 and row(plan, "x")["y"] == 1


def test_level2_target_row(p3: rc.Plan) -> None:
    assert row(p3, "w") == {"school": -2, "y": 1, "x": 1, "z": 1, "cm(x, school)": 1,
                            "cm(y, school)": 1}
    s = steps(p3, "w")
    assert s["x"] == "ML.2.1 aggregated level-1 variable"
    assert s["z"] == "ML.2.4 level-3 variable"
    assert s["school"] == "ML.2.0 grouping factor"


def test_level3_target_row(p3: rc.Plan) -> None:
    assert row(p3, "z") == {"y": 1, "x": 1, "w": 1}
    assert set(steps(p3, "z").values()) == {"ML.3.1 aggregated lower-level variable"}


def test_upper_rows_take_interactions_at_their_levels(d3: pd.DataFrame) -> None:
    data = d3.assign(v=d3["w"].fillna(0.0) * 2 + 1, s=d3["z"].fillna(0.0) - 1)
    plan = rc.compile("y ~ x*b2 + cm(x)*v + w + z + cm(x, school)*s + (1 | school/class)",
                      data.assign(b2=data["a"] > 0))
    w = row(plan, "w")
    # level-1 products aggregated (ML.2.2), products at level 2/3 (ML.2.5)
    assert {"y:C(b2)[T.True]", "x:C(b2)[T.True]", "cm(x, school:class):v",
            "cm(x, school):s", "cm(y, school):s"} <= set(w)
    s = steps(plan, "w")
    assert s["x:C(b2)[T.True]"] == "ML.2.2 aggregated level-1 interaction"
    assert s["cm(x, school:class):v"] == "ML.2.5 level-2 interaction"
    assert s["cm(x, school):s"] == "ML.2.5 level-3 interaction"
    z = row(plan, "z")
    assert {"x:C(b2)[T.True]", "cm(x, school:class):v", "s"} <= set(z)
    assert "cm(x, school):s" in z
    assert steps(plan, "z")["cm(x, school:class):v"] == "ML.3.2 aggregated lower-level interaction"
    assert steps(plan, "z")["cm(x, school):s"] == "ML.3.4 level-3 interaction"


def test_analysis_means_name_their_grouping(d3: pd.DataFrame) -> None:
    plan = rc.compile("y ~ x + cm(x) + cm(x, school) + (1 | school/class)", d3)
    assert {"cm(x, school:class)", "cm(x, school)"} <= set(plan.derived)
    assert "cm(x)" not in plan.derived


def test_centering_uses_the_innermost_grouping(d3: pd.DataFrame) -> None:
    plan = rc.compile("y ~ x*w + (1 | school/class)", d3, centering="cluster")
    d = plan.derived
    assert d["cwc(x, school:class)"].parents == ("x", "cm(x, school:class)")
    assert row(plan, "y")["cwc(x, school:class):w"] == 1


def test_auxiliaries_follow_the_rules_of_their_level(d3: pd.DataFrame) -> None:
    plan = rc.compile("y ~ x + w + (1 | school/class)", d3, auxiliary=["a"])
    y = row(plan, "y")
    assert y["a"] == y["cm(a, school:class)"] == y["cm(a, school)"] == 1
    assert steps(plan, "y")["a"] == "ML.1.8 auxiliary variable"
    assert row(plan, "w")["a"] == 1 and row(plan, "w")["cm(a, school)"] == 1
    assert steps(plan, "w")["a"] == "ML.2.6 auxiliary variable"


def test_all_pairwise_products(d3: pd.DataFrame) -> None:
    plan = rc.compile("y ~ x + w + z + (1 | school/class)", d3, interactions="all_pairwise")
    y = row(plan, "y")
    assert {"x:w", "x:z", "w:z", "cm(x, school:class):w", "cm(x, school):z"} <= set(y)
    assert steps(plan, "y")["w:z"] == "ML.1.7 all_pairwise"
    assert row(plan, "w")["cm(x, school):z"] == 1  # from the level-1 rows, at level 3
    assert "w:z" not in row(plan, "w")


def test_separate_terms_give_the_same_plan_as_the_slash(d3: pd.DataFrame) -> None:
    unique = d3.assign(**{"class": d3["school"] * 10 + d3["class"]})
    a = rc.compile("y ~ x + w + z + (1 + x | class) + (1 | school)", unique)
    assert a.groupings == ("class", "school") and a.nesting == "nested"
    b = rc.compile("y ~ x + w + z + (1 | school) + (1 + x | class)", unique)
    assert b.groupings == ("class", "school")
    assert a.predictor_matrix.equals(b.predictor_matrix)
    slash = rc.compile("y ~ x + w + z + (1 + x | school:class) + (1 | school)", d3)
    assert a.predictor_matrix.to_numpy().tolist() == slash.predictor_matrix.to_numpy().tolist()


# ----------------------------------------------------------------------------- crossed


def test_crossed_plan(px: rc.Plan) -> None:
    assert px.groupings == ("rater", "item") and px.nesting == "crossed"
    assert [(v.name, v.level) for v in px.variables if v.role == "cluster"] == [
        ("rater", 2), ("item", 2)]
    assert px.targets == ["y", "x"] and set(px.methods[px.targets]) == {"ml.pmm"}
    assert row(px, "y") == {"rater": -2, "item": -2, "x": 2, "v": 1, "q": 1,
                            "cm(x, rater)": 1, "cm(x, item)": 1}
    assert px.explain("y").loc["v", "reason"] == "constant within 'rater'"
    assert steps(px, "y")["q"] == "ML.1.3 cluster-level variable"


def test_crossed_slope_on_the_second_factor_is_fixed_effect_and_means(dx: pd.DataFrame) -> None:
    plan = rc.compile("y ~ x + (1 | rater) + (1 + x | item)", dx)
    assert row(plan, "y")["x"] == 1
    assert "ML.1.5 random slope over 'item'" in steps(plan, "y")["x"]


def test_crossed_incomplete_cluster_level_column_is_refused(dx: pd.DataFrame) -> None:
    data = dx.assign(v=dx["v"].where(dx["rater"] != 3))
    with pytest.raises(DataError, match=r"^column 'v' is constant within every cluster of "
                                        r"'rater' and has 8 missing values; in a model with "
                                        r"crossed grouping factors only level-1 columns"):
        rc.compile("y ~ x + v + (1 | rater) + (1 | item)", data)


# ----------------------------------------------------------------------------- methods


def test_method_overrides_are_checked_against_the_target_level(d3: pd.DataFrame) -> None:
    plan = rc.compile(F3, d3, methods={"y": "ml.norm", "w": "ml.norm", "z": "3lonly.norm"})
    assert plan.methods[["y", "x", "w", "z"]].tolist() == [
        "ml.norm", "ml.pmm", "ml.norm", "3lonly.norm"]
    with pytest.raises(OptionError, match=r"^methods\['x'\] \(a level-1 target\)='2l\.pmm' is "
                                          r"not valid; choose one of 'ml\.pmm', 'ml\.norm'"):
        rc.compile(F3, d3, methods={"x": "2l.pmm"})
    with pytest.raises(OptionError, match=r"^methods\['z'\] \(a level-3 target\)='ml\.pmm' is "
                                          r"not valid; choose one of '3lonly\.pmm', "):
        rc.compile(F3, d3, methods={"z": "ml.pmm"})


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("formula", "pattern", "snippet"), [
    ("y ~ x + z + (1 | school:class) + (1 + z | school)",
     r"^random slope of 'z' over 'school': 'z' is a level-3 variable, constant within every "
     r"cluster of 'school'", "z"),
    ("y ~ x + w + (1 + w | school/class)",
     r"^random slope of 'w' over 'school:class': 'w' is a level-2 variable, constant within "
     r"every cluster of 'school:class'", "w"),
    ("w ~ x + (1 | school/class)",
     r"^the outcome 'w' is constant within every cluster of 'school:class' \(a level-2 "
     r"variable\); a multilevel model needs a level-1 outcome", "w"),
    ("z ~ x + (1 | school/class)",
     r"^the outcome 'z' is constant within every cluster of 'school' \(a level-3 variable\)",
     "z"),
])
def test_bad_models_name_the_column_and_the_grouping(d3: pd.DataFrame, formula: str,
                                                     pattern: str, snippet: str) -> None:
    with pytest.raises(FormulaError) as exc:
        rc.compile(formula, d3)
    first, formula_line, caret_line = str(exc.value).splitlines()
    assert re.search(pattern, first), first
    start = caret_line.index("^")
    assert formula_line[start:start + len(snippet)] == snippet


def test_four_levels_are_refused(d3: pd.DataFrame) -> None:
    data = d3.assign(district=(d3["school"] - 1) // 3)
    with pytest.raises(FormulaError, match=r"^the grouping factors district:school:class, "
                                           r"district:school, district are nested 4 levels deep; "
                                           r"the imputation recipes cover three levels"):
        rc.compile("y ~ x + (1 | district/school/class)", data)


def test_a_crossed_slope_of_a_factor_constant_column_is_refused(dx: pd.DataFrame) -> None:
    with pytest.raises(FormulaError, match=r"^random slope of 'v' over 'rater': 'v' is constant "
                                           r"within every cluster of 'rater'"):
        rc.compile("y ~ x + v + (1 + v | rater) + (1 | item)", dx)


def test_nominal_targets_are_refused_naming_the_column(d3: pd.DataFrame) -> None:
    """Binary targets take ml.bin (tests/compiler/test_multilevel_binary.py); a nominal
    pupil-level column is refused, naming it."""
    data = d3.assign(k=np.select([d3["x"] > 0.5, d3["x"] > -0.5], ["hi", "mid"], "lo"))
    data.loc[d3["x"].isna(), "k"] = None
    with pytest.raises(DataError, match=r"^column 'k' is nominal \(3 categories\) and "
                                        r"incomplete at level 1; in a model with several "
                                        r"grouping factors .* code 'k' as a number"):
        rc.compile("y ~ C(k) + (1 | school/class)", data)
    complete = rc.compile("y ~ C(k) + (1 | school/class)", data.fillna({"k": "lo"}))
    assert "cm(C(k)[T.lo], school)" in row(complete, "y")


def test_smc_refuses_a_random_slope_over_the_outer_factor(d3: pd.DataFrame) -> None:
    """``(1 + x | school/class)`` implies a slope of x over school, which the model-based
    three-level sampler does not take yet."""
    with pytest.raises(FormulaError, match=r"random slope of 'x' over the outer grouping factor "
                                           r"'school'.*approach=\"fcs\""):
        rc.compile(F3, d3, approach="smc")


def test_a_declared_level3_column_is_checked(d3: pd.DataFrame) -> None:
    plan = rc.compile(F3, d3, levels={"z": 3})
    assert plan.variable("z").level == 3
    with pytest.raises(DataError, match="declared level 3"):
        rc.compile(F3, d3, levels={"w": 3})


# ----------------------------------------------------------------------------- the summary


def test_summary_shows_the_groupings_and_how_they_relate(p3: rc.Plan, px: rc.Plan) -> None:
    s3 = str(p3).splitlines()
    assert s3[1] == ("grouping factors (nested, innermost first): school:class (level 2), "
                     "school (level 3)")
    assert "  z            3lonly.norm    level 3, continuous, 30 missing" in s3
    assert any(line.startswith("  cm(x, school) ") and line.endswith("groupmean(x) within school")
               for line in s3)
    assert str(px).splitlines()[1] == "grouping factors (crossed): rater (level 2), item (level 2)"
    # (1 + x | school/class) puts a slope of x over school too: beyond approach="smc"
    assert "approach=\"smc\" covers two nested grouping factors with random slopes over the " \
        "innermost only" in str(p3)


def test_every_cited_rule_is_written_down(d3: pd.DataFrame, p3: rc.Plan, px: rc.Plan) -> None:
    doc = multilevel.__doc__ or ""
    plans = [p3, px, rc.compile("y ~ x*w + z + (1 | school/class)", d3, auxiliary=["a"],
                                interactions="all_pairwise")]
    cited = {m for p in plans for c in p.cells for m in re.findall(r"ML\.\d\.\d", c.step)}
    assert len(cited) >= 15
    for rule in cited:
        assert re.search(rf"^{re.escape(rule)} ", doc, re.M), rule


# ----------------------------------------------------------------------------- pure passes


def test_the_passes_on_a_hand_built_schema() -> None:
    """The rows depend only on the schema's levels, not on data."""
    spec = parse_formula("y ~ x + w + z + (1 | school/class)")
    cols = (ColumnInfo("y", 1, "continuous", 3, 10), ColumnInfo("x", 1, "continuous", 0, 13),
            ColumnInfo("w", 2, "continuous", 2, 11), ColumnInfo("z", 3, "continuous", 1, 12))
    schema = DataSchema("school:class", 13, 4, cols)
    ctx = Context(spec, schema, make_options(), ("school:class", "school"), "nested")
    assert ctx.targets == ("y", "w", "z")
    y = {e.predictor.name: e.code for e in level1_entries(ctx, "y")}
    assert y == {"x": 1, "cm(x, school:class)": 1, "cm(x, school)": 1, "w": 1,
                 "cm(w, school)": 1, "z": 1}
    w = {e.predictor.name: e.code for e in upper_entries(ctx, "w", [])}
    assert w == {"y": 1, "cm(y, school)": 1, "x": 1, "cm(x, school)": 1, "z": 1}
    z = {e.predictor.name: e.code for e in upper_entries(ctx, "z", [])}
    assert z == {"y": 1, "x": 1, "w": 1}
    assert multilevel.grouping_cells(ctx, "w")[0][0] == "school"
    assert multilevel.grouping_cells(ctx, "z") == []
    assert multilevel.multilevel_scope(ctx, "z") == "level3"


def test_two_level_plans_keep_one_grouping(brandsma: pd.DataFrame) -> None:
    """A two-level plan still has one grouping and the 2l methods (byte-for-byte equality with
    the previous compiler is checked by the book-matrix regression tests)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = rc.compile("lpo ~ iqv + ses + (1 + iqv | sch)", brandsma)
    assert plan.groupings == ("sch",) and plan.nesting == ""
    assert str(plan).splitlines()[1] == "cluster: sch"
    assert plan.methods["iqv"] == "2l.pmm"
