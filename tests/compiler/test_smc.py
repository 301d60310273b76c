"""``rc.compile(..., approach="smc")``: the sequential factorisation, draws, views, errors."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

import recipe_compiler as rc
from recipe_compiler.compiler.smc import term_degree
from recipe_compiler.datasets.simulate_ml import simulate_ml
from recipe_compiler.errors import DataError, FormulaError, OptionError, RecipeError
from recipe_compiler.export.r_jomo import plan_to_jomo
from recipe_compiler.model.parse import parse_formula


@pytest.fixture(scope="module")
def frame(make_frame: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    """y, x, v level-1 continuous, b level-1 0/1, z and w level-2, a an auxiliary.

    Incomplete: y, x, b, w, a; complete: v, z.
    """
    return make_frame(level1=("y", "x", "v", "a"), binary=("b",), level2=("z", "w"),
                      missing={"y": 0.2, "x": 0.2, "b": 0.2, "w": 0.3, "a": 0.1}, seed=5,
                      n_clusters=12, cluster_size=(5, 8))


def formulas(plan: rc.ModelPlan) -> dict[str, str]:
    return {m.dependent: m.formula(plan.cluster) for m in plan.models}


# ----------------------------------------------------------------------------- factorisation


def test_the_outcome_model_is_the_analysis_model_exactly(frame: pd.DataFrame) -> None:
    f = "y ~ x*z + cm(x) + cwc(v) + I(x ** 2) + (1 + x | g)"
    plan = rc.compile(f, frame, approach="smc")
    outcome = plan.models[0]
    spec = parse_formula(f)
    assert (outcome.dependent, outcome.role, outcome.family, outcome.level) == (
        "y", "outcome", "normal", 1)
    assert outcome.fixed == spec.terms and outcome.random == spec.random.slopes
    assert outcome.intercept and outcome.random_intercept


def test_sequential_factorisation_of_level1_level2_and_binary_predictors(
        frame: pd.DataFrame) -> None:
    plan = rc.compile("y ~ b + x*z + w + v + cm(x) + (1 + x | g)", frame, approach="smc")
    assert formulas(plan) == {
        "y": "y ~ 1 + b + x + z + w + v + cm(x) + x:z + (1 + x | g)",
        # continuous before binary: x is regressed on the later b, the complete v, the
        # level-2 variables and the cluster means used by the analysis model (cm(x) is x's own)
        "x": "x ~ 1 + b + v + w + z + (1 | g)",
        "b": "b ~ 1 + v + w + z + (1 | g)",
        # level 2: the other level-2 variables and the cluster means of complete level-1 ones
        "w": "w ~ 1 + z + cm(v)",
    }
    assert [m.role for m in plan.models] == ["outcome", "covariate", "covariate", "covariate"]
    assert plan.model("b").family == "logit" and plan.model("w").level == 2
    assert plan.targets == ["y", "x", "b", "w"]


def test_cluster_means_of_later_predictors_enter_where_the_analysis_uses_them(
        frame: pd.DataFrame) -> None:
    plan = rc.compile("y ~ x + b + v + cm(v) + cm(b) + (1 | g)", frame, approach="smc")
    assert formulas(plan)["x"] == "x ~ 1 + b + v + cm(b) + cm(v) + (1 | g)"


def test_auxiliaries_are_dependents_regressed_on_the_analysis_variables(
        frame: pd.DataFrame) -> None:
    plan = rc.compile("y ~ x + z + (1 | g)", frame, approach="smc", auxiliary=["a", "v"])
    models = formulas(plan)
    assert models["a"] == "a ~ 1 + y + x + z + v + (1 | g)"  # v: the later auxiliary
    assert models["v"] == "v ~ 1 + y + x + z + (1 | g)"  # complete, still modelled
    assert plan.model("a").role == "auxiliary" and plan.auxiliary == ("a", "v")
    assert plan.targets == ["a", "y", "x"]  # a is in no other model: drawn first
    # y's full conditional now includes the auxiliaries' models
    assert set(plan.explain("y")["model"]) >= {str(plan.model("a")), str(plan.model("v"))}


def test_a_level2_auxiliary_is_regressed_on_cluster_means(frame: pd.DataFrame) -> None:
    data = frame.assign(q=frame["z"] * 2 + 1)
    plan = rc.compile("y ~ x + w + (1 | g)", data, approach="smc", auxiliary=["q"])
    assert formulas(plan)["q"] == "q ~ 1 + w + cm(y) + cm(x)"


def test_an_auxiliary_in_the_formula_is_not_modelled_twice(frame: pd.DataFrame) -> None:
    plan = rc.compile("y ~ x + (1 | g)", frame, approach="smc", auxiliary=["x"])
    assert plan.auxiliary == () and [m.dependent for m in plan.models] == ["y", "x"]


def test_methods_override_the_family(frame: pd.DataFrame) -> None:
    plan = rc.compile("y ~ b + (1 | g)", frame, approach="smc", methods={"b": "normal"})
    assert plan.model("b").family == "normal"
    assert plan.draws["b"].how == "exact normal"
    assert plan.methods == (("b", "normal"),)


# ----------------------------------------------------------------------------- draws


@pytest.mark.parametrize(("formula", "variable", "how", "words"), [
    ("y ~ x + z + (1 + x | g)", "x", "exact normal", "linear"),
    ("y ~ x*z + (1 + x | g)", "x", "exact normal", "linear"),
    ("y ~ x + cm(x) + (1 | g)", "x", "exact normal", "one missing cell per cluster"),
    ("y ~ x + I(x ** 2) + (1 | g)", "x", "metropolis", "I(x ** 2)"),
    ("y ~ x + I(2 * x - 1) + (1 | g)", "x", "exact normal", "linear"),
    ("y ~ x + I(log(x + 10)) + (1 | g)", "x", "metropolis", "not linear"),
    ("y ~ x + x:cm(x) + (1 | g)", "x", "metropolis", "x:cm(x)"),
    ("y ~ x + b + (1 | g)", "b", "enumerate", "binary"),
    ("y ~ x + w + (1 | g)", "w", "exact normal per cluster", "per cluster"),
    ("y ~ b + w + (1 | g)", "w", "metropolis", "logit"),
    ("y ~ x + (1 | g)", "y", "exact normal", "linear"),
])
def test_each_variable_is_drawn_exactly_where_its_conditional_allows(
        frame: pd.DataFrame, formula: str, variable: str, how: str, words: str) -> None:
    draw = rc.compile(formula, frame, approach="smc").draws[variable]
    assert draw.how == how
    assert words in draw.reason


def test_term_degree_counts_the_factors_of_a_column() -> None:
    terms = {t.name: t for t in parse_formula(
        "y ~ x:z + x:cm(x) + I(x ** 2) + I(x * z) + I(exp(x)) + z + (1 | g)").terms}
    assert {n: term_degree(t, "x") for n, t in terms.items()} == {
        "x:z": 1, "x:cm(x)": 2, "I(x ** 2)": 2, "I(x * z)": 1, "I(exp(x))": None, "z": 0}


# ----------------------------------------------------------------------------- views


def test_str_prints_one_line_per_model_and_each_draw(frame: pd.DataFrame) -> None:
    plan = rc.compile("y ~ x*z + w + (1 + x | g)", frame, approach="smc")
    lines = str(plan).splitlines()
    assert lines[0] == "Model-based (SMC) imputation plan for: y ~ x*z + w + (1 + x | g)"
    factor_lines = [ln for ln in lines if ln.strip().startswith("p(")]
    assert len(factor_lines) == len(plan.models) == 3
    assert factor_lines[0].split()[:1] == ["p(y"]
    assert "y ~ 1 + x + z + w + x:z + (1 + x | g)" in factor_lines[0]
    assert any(ln.split()[:3] == ["x", "exact", "normal"] for ln in lines)
    assert any(ln.split()[:5] == ["w", "exact", "normal", "per", "cluster"] for ln in lines)


def test_explain_names_each_model_role_and_reason(frame: pd.DataFrame) -> None:
    plan = rc.compile("y ~ x*z + (1 + x | g)", frame, approach="smc")
    table = plan.explain("x")
    assert list(table.columns) == ["model", "family", "role", "term", "why"]
    roles = list(zip(table["model"], table["role"], table["term"], strict=True))
    outcome, cov = str(plan.model("y")), str(plan.model("x"))
    assert roles == [(outcome, "predictor", "x"), (outcome, "in term", "x:z"),
                     (outcome, "random slope", "x"), (cov, "dependent", "x")]
    assert "analysis model" in table["why"].iloc[0]
    assert "covariate model" in table["why"].iloc[-1]
    assert plan.explain("z")["role"].tolist() == ["predictor", "in term", "predictor"]


def test_plan_is_frozen_and_lists_variables(frame: pd.DataFrame) -> None:
    plan = rc.compile("y ~ x + z + (1 | g)", frame, approach="smc")
    assert isinstance(plan, rc.ModelPlan)
    assert plan.formula == "y ~ x + z + (1 | g)" and plan.cluster == "g"
    assert plan.variable("z").role == "covariate" and plan.variable("x").role == "target"
    with pytest.raises(AttributeError):
        plan.formula = "y ~ 1"  # type: ignore[misc]
    with pytest.raises(RecipeError, match="'q' is not a plan variable"):
        plan.variable("q")


def test_fcs_stays_the_default(frame: pd.DataFrame) -> None:
    assert isinstance(rc.compile("y ~ x + (1 | g)", frame), rc.Plan)


def test_fcs_summary_points_to_smc_for_random_slopes_and_interactions(
        frame: pd.DataFrame) -> None:
    advice = rc.compile("y ~ x*z + (1 + x | g)", frame).smc_advice
    assert "random slope of x" in advice and "interaction x:z" in advice
    assert 'approach="smc"' in advice and advice in str(rc.compile("y ~ x*z + (1 + x | g)",
                                                                     frame))
    assert rc.compile("y ~ x + z + (1 | g)", frame).smc_advice == ""


# ----------------------------------------------------------------------------- errors


def test_a_categorical_outcome_is_refused_with_a_pointer_to_fcs(frame: pd.DataFrame,
                                                                caret: Callable) -> None:
    with pytest.raises(FormulaError, match=r'outcome .b. is binary.*approach="fcs"') as err:
        rc.compile("b ~ x + (1 | g)", frame, approach="smc")
    caret(str(err.value), "b ~ x + (1 | g)", "b")


def _nominal(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with k (level 1, 3 categories, missing where x is) and h (level 2,
    3 categories, missing where w is)."""
    k = pd.Categorical(np.where(frame["v"] > 0.5, "hi", np.where(frame["v"] < -0.5, "lo",
                                                                  "mid")))
    h = pd.Categorical(np.array(["p", "q", "r"])[frame["g"].to_numpy() % 3])
    data = frame.assign(k=k, h=h)
    data.loc[frame["x"].isna(), "k"] = np.nan
    data.loc[frame["w"].isna(), "h"] = np.nan
    return data


def test_incomplete_nominal_predictors_get_multinomial_models(frame: pd.DataFrame) -> None:
    data = _nominal(frame)
    plan = rc.compile("y ~ x + C(k) + h + z + (1 | g)", data, approach="smc")
    assert formulas(plan) == {
        "y": "y ~ 1 + x + C(k) + h + z + (1 | g)",
        # categorical last in the sequence: x is regressed on k's dummies, k on the complete
        # ones only; the level-2 h on the level-2 z and the cluster means of complete ones
        "x": "x ~ 1 + C(k) + C(h) + z + (1 | g)",
        "k": "k ~ 1 + C(h) + z + (1 | g)",
        "h": "h ~ 1 + z",
    }
    assert plan.model("k").family == plan.model("h").family == "multinomial"
    assert plan.model("h").level == 2
    assert plan.draws["k"].how == plan.draws["h"].how == "enumerate"
    assert "evaluated at every category" in plan.draws["k"].reason
    assert "per cluster" in plan.draws["h"].reason
    # x predicts no categorical model, so it is still drawn exactly
    assert plan.draws["x"].how == "exact normal"
    text = str(plan)
    assert re.search(r"p\(k \| C\(h\), z, u\[1\]\) +covariate, multinomial, level 1", text)
    assert re.search(r"\n  h +enumerate +\d+ missing; categorical \(multinomial logit\): per "
                     "cluster", text)
    why = plan.explain("k")
    assert list(why["role"]) == ["predictor", "predictor", "dependent"]
    assert list(why["model"]) == [str(plan.model(v)) for v in ("y", "x", "k")]
    assert list(why["family"]) == ["normal", "normal", "multinomial"]
    # an auxiliary nominal column is a dependent like any other; it makes the continuous
    # variables it is regressed on Metropolis-Hastings draws, as a logit model does
    aux = rc.compile("y ~ x + (1 | g)", data, approach="smc", auxiliary=["k"])
    assert aux.model("k").family == "multinomial" and aux.draws["k"].how == "enumerate"
    assert "predicts the multinomial model(s) p(k | y, x, u[1])" in aux.draws["x"].reason


def test_family_overrides_of_categorical_columns_are_checked(frame: pd.DataFrame) -> None:
    data = _nominal(frame)
    with pytest.raises(OptionError, match=r"methods\['k'\]='normal' needs a numeric column.*"
                                          "use 'multinomial'"):
        rc.compile("y ~ k + (1 | g)", data, approach="smc", methods={"k": "normal"})
    with pytest.raises(OptionError, match=r"methods\['b'\]='multinomial' needs a categorical "
                                          "column with three or more categories, but 'b' is "
                                          "binary; use 'logit'"):
        rc.compile("y ~ b + (1 | g)", data, approach="smc", methods={"b": "multinomial"})
    with pytest.raises(OptionError, match="but 'x' is continuous; use 'normal'"):
        rc.compile("y ~ x + (1 | g)", data, approach="smc", methods={"x": "multinomial"})
    plan = rc.compile("y ~ k + (1 | g)", data, approach="smc", methods={"k": "multinomial"})
    assert plan.methods == (("k", "multinomial"),)


def test_a_categorical_outcome_or_cluster_mean_is_refused(frame: pd.DataFrame,
                                                          caret: Callable) -> None:
    data = _nominal(frame)
    with pytest.raises(FormulaError, match=r"outcome 'k' is categorical; approach=\"smc\" needs "
                                           r'a continuous outcome.*approach="fcs"') as err:
        rc.compile("k ~ x + (1 | g)", data, approach="smc")
    caret(str(err.value), "k ~ x + (1 | g)", "k")
    with pytest.raises(FormulaError, match=r"'cm\(k\)': approach=\"smc\" takes cluster means of "
                                           r'numeric or binary columns only.*approach="fcs"'):
        rc.compile("y ~ k + cm(k) + (1 | g)", data, approach="smc")


@pytest.fixture(scope="module")
def three_level() -> pd.DataFrame:
    """Pupils in classes in schools (simulate_ml's three_level, small): incomplete x (level
    1), w (class), z (school); complete y and the auxiliary a."""
    return simulate_ml("three_level", 3, sizes=(8, 3, 5)).data


THREE = "y ~ x + w + z + (1 + x | school:class) + (1 | school)"


def test_three_level_plan_adds_school_intercepts_and_levels(three_level: pd.DataFrame) -> None:
    plan = rc.compile(THREE, three_level, approach="smc", auxiliary=["a"])
    assert plan.groupings == ("school:class", "school") and plan.outer == "school"
    assert plan.cluster == "school:class"
    assert formulas(plan) == {
        "y": "y ~ 1 + x + w + z + (1 + x | school:class) + (1 | school)",
        "x": "x ~ 1 + w + z + (1 | school:class) + (1 | school)",
        "w": "w ~ 1 + z + (1 | school)",
        "z": "z ~ 1",
        "a": "a ~ 1 + y + x + w + z + (1 | school:class) + (1 | school)"}
    assert [m.level for m in plan.models] == [1, 1, 2, 3, 1]
    assert {v.name: v.level for v in plan.variables} == {
        "school:class": 2, "school": 3, "y": 1, "x": 1, "w": 2, "z": 3, "a": 1}
    assert [(d.variable, d.how) for d in plan.draw_table] == [
        ("x", "exact normal"), ("w", "exact normal per cluster"),
        ("z", "exact normal per cluster")]
    assert "level-3" in plan.draws["z"].reason
    text = str(plan)
    assert "groupings (nested, innermost first): school:class, school" in text
    assert "p(x | w, z, u[1], v[1 | school])" in text
    why = plan.explain("school")
    assert list(why["role"]) == ["random intercept"] * 4
    assert set(why["term"]) == {"(1 | school)"}
    # (1 | school/class) is the same model
    same = rc.compile("y ~ x + w + z + (1 | school/class)", three_level, approach="smc")
    assert same.groupings == ("school:class", "school")


def test_the_jomo_export_of_a_three_level_plan_is_refused(three_level: pd.DataFrame) -> None:
    plan = rc.compile(THREE, three_level, approach="smc")
    with pytest.raises(rc.PlanError, match=r"jomo.lmer, which fits two-level models"):
        plan_to_jomo(plan)


def test_random_slopes_over_the_outer_factor_are_refused(three_level: pd.DataFrame) -> None:
    formula = "y ~ x + w + z + (1 + x | school:class) + (1 + x | school)"
    with pytest.raises(FormulaError, match=r"random slope of 'x' over the outer grouping "
                                           r"factor 'school'.*approach=\"fcs\"") as err:
        rc.compile(formula, three_level, approach="smc")
    assert "(1 + x | school)" in str(err.value)


def test_crossed_and_three_grouping_factors_are_refused(three_level: pd.DataFrame) -> None:
    crossed = three_level.assign(rater=np.arange(len(three_level)) % 4)
    with pytest.raises(FormulaError, match=r"crossed in these data.*nested factors only.*"
                                           r'approach="fcs" \(the default\), which handles '
                                           r"crossed factors"):
        rc.compile("y ~ x + (1 | school:class) + (1 | rater)", crossed, approach="smc")
    with pytest.raises(FormulaError, match=r"3 grouping factors.*at most two nested"):
        rc.compile("y ~ x + (1 | school:class) + (1 | school) + (1 | rater)", crossed,
                   approach="smc")
    with pytest.raises(FormulaError, match=r"two random-effects terms over the same grouping "
                                           r"factor 'school'"):
        rc.compile("y ~ x + (1 | school) + (0 + x | school)", crossed, approach="smc")


def test_three_level_scope_is_refused_by_column_or_term(three_level: pd.DataFrame) -> None:
    data = three_level.assign(b=(three_level["x"] > 0).astype(float))
    data.loc[data.index[:5], "b"] = np.nan
    with pytest.raises(OptionError, match=r"'b' has a logit model; .* two grouping factors "
                                          r"takes continuous"):
        rc.compile("y ~ b + (1 | school:class) + (1 | school)", data, approach="smc")
    with pytest.raises(FormulaError, match=r"'cm\(x\)': .* two grouping factors"):
        rc.compile("y ~ x + cm(x) + (1 | school:class) + (1 | school)", data, approach="smc")
    with pytest.raises(FormulaError, match=r"'x' enters a term that is not linear"):
        rc.compile("y ~ x + I(x**2) + (1 | school:class) + (1 | school)", data,
                   approach="smc")


def test_single_level_models_and_models_without_intercept_are_refused(
        frame: pd.DataFrame) -> None:
    with pytest.raises(FormulaError, match=r'random part.*approach="fcs"'):
        rc.compile("y ~ x", frame, approach="smc")
    plan = rc.compile("y ~ 0 + x + (1 | g)", frame, approach="smc")  # inspectable, but
    with pytest.raises(rc.PlanError, match=r"the model of 'y' .* has no intercept"):
        rc.impute(frame, plan, m=1, maxit=1)  # the sampler needs the intercept


@pytest.mark.parametrize(("options", "error", "message"), [
    ({"approach": "jomo"}, OptionError, "approach='jomo' is not valid; choose one of 'fcs', "
                                        "'smc'"),
    ({"approach": "smc", "centering": "cluster"}, OptionError,
     "option 'centering' configures the FCS recipes"),
    ({"approach": "smc", "colour": 1}, OptionError, "unknown option 'colour'"),
    ({"approach": "smc", "methods": {"x": "2l.pmm"}}, OptionError,
     r"methods\['x'\]='2l.pmm' is not valid with approach=\"smc\""),
    ({"approach": "smc", "methods": {"x": "logit"}}, OptionError, "needs a binary column"),
    ({"approach": "smc", "methods": {"z": "normal"}}, OptionError, "'z' has no model"),
    ({"approach": "smc", "auxiliary": ["nope"]}, DataError, "auxiliary column 'nope'"),
    ({"approach": "smc", "auxiliary": ["g"]}, OptionError, "is the cluster variable"),
])
def test_bad_options_name_the_option(frame: pd.DataFrame, options: dict, error: type,
                                     message: str) -> None:
    with pytest.raises(error, match=message):
        rc.compile("y ~ x + z + (1 | g)", frame, **options)
