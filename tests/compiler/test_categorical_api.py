"""One decision per column, through the public API and the command line.

The friction items of issue 12: a category column used bare is categorical in the
analysis too; a string auxiliary can be declared categorical; a column's level can
be declared (and is checked); ``categorical=[...]`` / ``--categorical`` and
``levels={...}`` / ``--level`` reach the compiler. Plus the categorical predictors
of the recipes: dummies, ``cm(C(x))`` as cluster proportions, products.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import recipe_compiler as rc
from recipe_compiler import cli
from recipe_compiler.errors import DataError, DataWarning, OptionError


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    """40 clusters of 8: y, x level 1; Sex (category Boy/Girl) and eth (strings, 3 levels)
    level 1; den (category with labels 1..3), FedState (strings) and schavg level 2;
    schavg takes a second value in one row of cluster 7."""
    rng = np.random.default_rng(12)
    g = np.repeat(np.arange(1, 41), 8)
    n = len(g)
    den = rng.integers(1, 4, 40)[g - 1]
    state = np.array(["BY", "HE", "NW", "SN"])[rng.integers(0, 4, 40)][g - 1]
    schavg = rng.normal(size=40)[g - 1]
    schavg[np.flatnonzero(g == 7)[0]] += 1.0
    x = rng.normal(size=n) + rng.normal(size=40)[g - 1]
    girl = rng.random(n) < 0.5
    eth = np.array(["a", "b", "c"])[rng.integers(0, 3, n)]
    y = 1 + 0.5 * x + 0.8 * girl + 0.3 * den + rng.normal(size=40)[g - 1] + rng.normal(size=n)
    frame = pd.DataFrame({
        "g": g, "y": y, "x": np.where(rng.random(n) < 0.15, np.nan, x),
        "Sex": pd.Categorical(np.where(girl, "Girl", "Boy")),
        "den": pd.Categorical(den), "FedState": state, "schavg": schavg,
        "eth": np.where(rng.random(n) < 0.2, None, eth)})
    frame.loc[rng.random(n) < 0.1, "Sex"] = np.nan
    return frame


# ----------------------------------------------------------------------------- (i) fit agrees


def test_a_bare_category_column_is_dummy_coded_by_imp_fit_and_fit_lmm(
        data: pd.DataFrame) -> None:
    imp = rc.impute(data, "y ~ x + Sex + den + (1 | g)", m=2, maxit=2, seed=1)
    plan_dummies = [d.name for d in imp.plan.derived_defs if d.op == "dummy"]
    assert plan_dummies == ["C(Sex)[T.Girl]", "C(den)[T.2]", "C(den)[T.3]"]
    terms = imp.fit("y ~ x + Sex + den + (1 | g)").pool()["term"].tolist()
    assert terms == ["(Intercept)", "x", *plan_dummies]  # the plan's columns, same names
    single = rc.fit_lmm("y ~ x + Sex + den + (1 | g)", data)
    assert list(single.fixef.index) == terms
    # numeric labels: three levels as two dummies, not one number
    explicit = rc.fit_lmm("y ~ x + C(Sex) + C(den) + (1 | g)", data)
    np.testing.assert_allclose(single.fixef.to_numpy(), explicit.fixef.to_numpy())


def test_a_column_declared_categorical_is_dummy_coded_in_the_analysis(
        data: pd.DataFrame) -> None:
    numeric = data.assign(den=data["den"].astype(float))
    imp = rc.impute(numeric, "y ~ x + den + (1 | g)", m=2, maxit=1, seed=2,
                    categorical=["den"])
    assert imp.plan.options.categorical == ("den",)
    assert imp.complete(1)["den"].dtype == float  # completed data keep their dtype
    terms = imp.fit("y ~ x + den + (1 | g)").pool()["term"].tolist()
    assert terms == ["(Intercept)", "x", "C(den)[T.2]", "C(den)[T.3]"]


def test_cluster_proportions_of_a_categorical_column_in_the_analysis(
        data: pd.DataFrame) -> None:
    fit = rc.fit_lmm("y ~ x + cm(C(Sex)) + (1 | g)", data)
    assert list(fit.fixef.index) == ["(Intercept)", "x", "cm(C(Sex)[T.Girl])"]
    share = (data["Sex"] == "Girl").where(data["Sex"].notna()).groupby(data["g"]).mean()
    # the model's complete rows: those with Sex observed (its proportions use them all)
    by_hand = data.assign(p=data["g"].map(share))[data["Sex"].notna()]
    reference = rc.fit_lmm("y ~ x + p + (1 | g)", by_hand)
    np.testing.assert_allclose(fit.fixef.to_numpy(), reference.fixef.to_numpy(), rtol=1e-8)


# ----------------------------------------------------------------------------- (ii) auxiliary


def test_a_string_auxiliary_declared_categorical_enters_as_dummies(data: pd.DataFrame) -> None:
    plan = rc.compile("y ~ x + (1 | g)", data, auxiliary=["C(FedState)"])
    assert plan.options.auxiliary == ("FedState",)
    assert plan.options.categorical == ("FedState",)
    assert plan.predictors("x")[-3:] == [("C(FedState)[T.HE]", 1), ("C(FedState)[T.NW]", 1),
                                         ("C(FedState)[T.SN]", 1)]
    with pytest.raises(DataError, match="column 'FedState' holds non-numeric values such as "
                                        r"'[A-Z]+'.*write C\(FedState\)"):
        rc.compile("y ~ x + (1 | g)", data, auxiliary=["FedState"])


# ----------------------------------------------------------------------------- (iii) levels


def test_a_declared_level_2_column_that_varies_is_reported_with_its_clusters(
        data: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"column 'schavg' is declared level 2 \(levels="
                                        r"\{'schavg': 2\}\), but it varies within 1 of 40 "
                                        r"clusters of 'g': 7 \(2 values in 8 rows\)"):
        rc.compile("y ~ x + schavg + (1 | g)", data, levels={"schavg": 2})


def test_a_nearly_level_2_column_is_level_1_with_a_warning(data: pd.DataFrame) -> None:
    with pytest.warns(DataWarning, match="column 'schavg' varies within only 1 of 40 clusters "
                                         r"of 'g': 7 \(2 values in 8 rows\)"):
        plan = rc.compile("y ~ x + schavg + (1 | g)", data)
    assert plan.variable("schavg").level == 1


def test_a_declared_level_makes_2lonly_methods_valid(data: pd.DataFrame) -> None:
    fixed = data.copy()
    fixed.loc[fixed["g"] == 7, "schavg"] = fixed.loc[fixed["g"] == 7, "schavg"].iloc[-1]
    fixed.loc[fixed["g"].isin([3, 9]), "schavg"] = np.nan
    plan = rc.compile("y ~ x + schavg + (1 | g)", fixed, levels={"schavg": 2},
                      methods={"schavg": "2lonly.norm"})
    assert plan.methods["schavg"] == "2lonly.norm" and plan.variable("schavg").level == 2
    declared_1 = rc.compile("y ~ x + schavg + (1 | g)", fixed, levels={"schavg": 1})
    assert declared_1.methods["schavg"] == "2l.pmm"


# ----------------------------------------------------------------------------- (iv) categorical


def test_categorical_must_name_a_model_column(data: pd.DataFrame) -> None:
    with pytest.raises(OptionError, match="categorical: 'dem' is not a column of the formula "
                                          "or an auxiliary column; did you mean 'den'"):
        rc.compile("y ~ x + den + (1 | g)", data, categorical=["dem"])


def test_nominal_and_ordinal_targets_get_their_methods_and_predictor_roles(
        data: pd.DataFrame) -> None:
    ordered = data.assign(lik=pd.Categorical(data["eth"], categories=["c", "a", "b"],
                                             ordered=True))
    plan = rc.compile("y ~ x + eth + lik + (1 | g)", ordered, categorical=["eth"])
    assert plan.methods[["eth", "lik"]].tolist() == ["2l.polyreg", "2l.polr"]
    # as predictors: dummies with their cluster proportions (code 3), reference first level
    assert ("C(lik)[T.a]", 3) in plan.predictors("x")
    assert ("C(eth)[T.b]", 3) in plan.predictors("lik")


def test_products_and_cluster_proportions_of_categorical_predictors(data: pd.DataFrame) -> None:
    incomplete = data.assign(y=data["y"].where(data.index % 9 > 0))
    plan = rc.compile("y ~ x*C(eth) + cm(C(eth)) + (1 | g)", incomplete)
    derived = plan.derived
    assert derived["x:C(eth)[T.c]"].parents == ("x", "C(eth)[T.c]")
    assert ("x:C(eth)[T.c]", 1) in plan.predictors("y")  # the analysis model's product
    # cm(C(eth)) is a main effect: code 3, the dummy and its cluster proportion
    assert ("C(eth)[T.b]", 3) in plan.predictors("y")
    assert plan.methods["eth"] == "2l.polyreg"
    imp = rc.impute(incomplete, plan, m=2, maxit=2, seed=3)
    assert set(imp.complete(1)["eth"].dropna()) == {"a", "b", "c"}
    assert imp.complete(1)["eth"].notna().all()


# ----------------------------------------------------------------------------- command line


def test_cli_categorical_and_level_flags(data: pd.DataFrame, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "d.csv"
    data.to_csv(csv, index=False)  # a CSV keeps no dtype: den is a number again
    code = cli.main(["analyze", str(csv), "y ~ x + den + (1 | g)", "--categorical", "den",
                     "--m", "2", "--maxit", "1", "--seed", "1", "--quiet"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "C(den)[T.2]" in out.out and "C(den)[T.3]" in out.out
    code = cli.main(["compile", str(csv), "y ~ x + schavg + (1 | g)", "--level", "schavg=2"])
    err = capsys.readouterr().err
    assert code == 2
    assert "column 'schavg' is declared level 2" in err and "7 (2 values in 8 rows)" in err
    code = cli.main(["compile", str(csv), "y ~ x + (1 | g)", "--auxiliary", "C(FedState)"])
    assert code == 0 and "C(FedState)[T.HE]" in capsys.readouterr().out
    code = cli.main(["compile", str(csv), "y ~ x + schavg + (1 | g)", "--level", "schavg"])
    assert code == 2 and "--level 'schavg' must be COLUMN=LEVEL" in capsys.readouterr().err


def test_no_warning_for_clean_level_2_columns(data: pd.DataFrame) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        plan = rc.compile("y ~ x + den + (1 | g)", data)
    assert plan.variable("den").level == 2
