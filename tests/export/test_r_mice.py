"""The R export: golden scripts, R names, what each flavor writes, and (with R) a real run."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from regenerate_golden import GOLDEN, GOLDEN_DIR, book_plan, render

import recipe_compiler as rc
from recipe_compiler.export import r_names

MICE_METHODS = {"2l.pan", "2l.norm", "2l.bin", "2lonly.pmm", "2lonly.norm", "pmm", "norm",
                "logreg", "polyreg"}
R_NAME = re.compile(r"^(?:[A-Za-z]|\.(?![0-9]))[A-Za-z0-9._]*$")
#: The ``rscript`` fixture of ``conftest.py``.
RunR = Callable[..., subprocess.CompletedProcess[str]]


@pytest.mark.parametrize("stem", sorted(GOLDEN))
def test_script_matches_the_golden_file(stem: str) -> None:
    expected = (GOLDEN_DIR / f"{stem}.R").read_text(encoding="utf-8")
    assert render(stem) == expected, (
        f"{stem}.R differs; if the change is intended, run "
        "`python tests/export/regenerate_golden.py` and review the diff")


def _rows(script: str) -> dict[str, dict[str, int]]:
    """The ``pred["t", c(...)] <- c(...)`` assignments of a script, as {row: {col: code}}."""
    flat = re.sub(r"\n  ", " ", script)
    out = {}
    for m in re.finditer(r'^pred\["([^"]+)", (?:c\()?([^\]]*?)\)?\] <- (?:c\()?([^)\n]*)\)?$',
                         flat, re.M):
        cols = re.findall(r'"([^"]+)"', m.group(2))
        codes = [int(c) for c in m.group(3).split(", ")]
        out[m.group(1)] = dict(zip(cols, codes, strict=True))
    return out


def _methods(script: str) -> dict[str, str]:
    flat = re.sub(r"\n  ", " ", script)
    out = {}
    for m in re.finditer(r'^meth\[(?:c\()?([^\]]*?)\)?\] <- "([^"]+)"$', flat, re.M):
        for col in re.findall(r'"([^"]+)"', m.group(1)):
            out[col] = m.group(2)
    return out


@pytest.mark.parametrize("section", ["7.10.4", "7.10.5", "7.10.6", "7.10.7"])
def test_miceadds_script_holds_the_plans_matrix_methods_and_visits(section: str) -> None:
    plan = book_plan(section)
    script = rc.plan_to_r(plan)
    r = r_names(plan)
    pm = plan.predictor_matrix
    expected = {r[t]: {r[p]: int(c) for p, c in pm.loc[t].items() if c}
                for t in pm.index if (pm.loc[t] != 0).any()}
    assert _rows(script) == expected
    methods = plan.methods
    expected_methods = {r[t]: methods[t] for t in plan.targets}
    for name, d in plan.derived.items():
        expected_methods[r[name]] = d.method if d.op == "cm" else _passive(d.expression, r)
    assert _methods(script) == expected_methods
    visit = re.search(r"^visit <- c\((.*?)\)$", re.sub(r"\n  ", " ", script), re.M)
    assert visit and re.findall(r'"([^"]+)"', visit.group(1)) == [r[v] for v in plan.visit]
    assert "library(miceadds)" in script
    assert "imp <- mice(d, pred = pred, meth = meth, visit = visit, m = 5, maxit = 10," in script


def _passive(expression: str, r: dict[str, str]) -> str:
    """A plan expression in R names (measured names are their own R names here)."""
    for name in sorted(r, key=len, reverse=True):
        expression = expression.replace(name, r[name])
    return expression


def test_r_names_are_valid_distinct_and_readable() -> None:
    plan = book_plan("7.10.5")
    r = r_names(plan)
    assert list(r) == plan.names
    assert r["cm(iqv)"] == "cm_iqv" and r["cwc(iqv)"] == "cwc_iqv"
    assert r["cwc(iqv):sex"] == "cwc_iqv.sex" and r["cwc(lpo):cwc(iqv)"] == "cwc_lpo.cwc_iqv"
    assert all(R_NAME.match(v) for v in r.values())
    assert len(set(r.values())) == len(r)
    assert "#   cwc_iqv.sex      cwc(iqv):sex" in rc.plan_to_r(plan)


def test_r_names_of_dummies_and_expressions(brandsma: pd.DataFrame) -> None:
    plan = rc.compile("lpo ~ iqv + C(den) + I(iqv**2) + (1 | sch)", brandsma)
    r = r_names(plan)
    assert (r["C(den)[T.2]"], r["I(iqv ** 2)"]) == ("den_2", "I_iqv_2")
    script = rc.plan_to_r(plan)
    assert 'meth["den_2"] <- "~ I(as.integer(den == 2))"' in script
    assert 'meth["I_iqv_2"] <- "~ I(iqv ^ 2)"' in script


def test_r_names_avoid_clashes_and_reserved_words() -> None:
    spec = rc.plan_to_spec(book_plan("7.10.2"))
    for name in ("cm_iqv", "if", "2nd wave"):
        spec["variables"].append({"name": name, "role": "covariate", "level": 1,
                                  "kind": "continuous", "n_missing": 0})
    spec["derived"].append({"name": "cm(iqv)", "op": "cm", "parents": ["iqv"], "detail": ""})
    spec["variables"].append({"name": "cm(iqv)", "role": "derived", "level": 2,
                              "kind": "derived", "n_missing": 0})
    spec["methods"]["cm(iqv)"] = "2l.groupmean"
    plan = rc.spec_to_plan(spec)
    r = r_names(plan)
    assert (r["cm_iqv"], r["cm(iqv)"], r["if"], r["2nd wave"]) == (
        "cm_iqv", "cm_iqv_2", "if.", "X2nd_wave")
    script = rc.plan_to_r(plan)
    assert 'd <- d[, c("sch", "lpo", "iqv", "cm_iqv", "if", "2nd wave")]' in script
    assert 'names(d) <- c("sch", "lpo", "iqv", "cm_iqv", "if.", "X2nd_wave")' in script


def test_mice_flavor_uses_only_mice_methods() -> None:
    plan = book_plan("7.10.5")
    script = rc.plan_to_r(plan, flavor="mice")
    assert "miceadds" not in script.replace("miceadds' 2l.groupmean", "")
    methods = _methods(script)
    assert {m for m in methods.values() if not m.startswith("~")} <= MICE_METHODS
    assert (methods["lpo"], methods["iqv"], methods["sex"], methods["den"]) == (
        "2l.pan", "2l.pan", "2l.bin", "2lonly.pmm")
    assert methods["cm_iqv"] == "~ I(ave(iqv, sch))"
    assert "2l.pan (needs the R package pan; it reads codes 3 and 4" in script.replace(
        "\n#     ", " ")
    # 2l.bin has no codes 3/4: sex gets lpo and iqv with code 1 plus their cluster means
    row = _rows(script)["sex"]
    assert (row["lpo"], row["iqv"], row["cm_lpo"], row["cm_iqv"]) == (1, 1, 1, 1)
    assert "cm_iqv" not in _rows(script)  # passive: no predictor row


def test_mice_flavor_adds_cluster_means_the_plan_lacks(brandsma: pd.DataFrame) -> None:
    plan = rc.compile("lpo ~ iqv + sex + (1 + iqv | sch)", brandsma)
    assert not plan.derived
    script = rc.plan_to_r(plan, flavor="mice")
    assert "d <- data.frame(d, cm_lpo = NA, cm_iqv = NA)" in script
    assert "#   cm_iqv  cm(iqv) (cluster mean of iqv, for 2l.bin)" in script
    assert _rows(script)["sex"] == {"sch": -2, "lpo": 1, "iqv": 2, "cm_lpo": 1, "cm_iqv": 1}
    assert 'visit <- c("lpo", "cm_lpo", "iqv", "cm_iqv", "sex")' in script
    assert "cm_iqv" not in rc.plan_to_r(plan, flavor="miceadds")


def test_mice_flavor_uses_2l_norm_when_the_row_has_only_code_2() -> None:
    script = rc.plan_to_r(book_plan("7.10.1"), flavor="mice")
    assert _methods(script) == {"lpo": "2l.norm"}
    assert "visit" not in script.split("library(mice)")[1]


def test_derived_variables_of_complete_columns_are_visited_first(brandsma: pd.DataFrame
                                                                 ) -> None:
    plan = rc.compile("lpo ~ iqv + C(min)*pup + (1 | sch)", brandsma)
    assert set(plan.derived) == {"C(min)[T.1]", "C(min)[T.1]:pup"}
    assert not set(plan.derived) & set(plan.visit)
    script = rc.plan_to_r(plan, flavor="mice")
    assert 'visit <- c("min_1", "min_1.pup", "lpo", "iqv")' in script


def test_methods_without_a_direct_counterpart(brandsma: pd.DataFrame) -> None:
    plan = rc.compile("lpo ~ iqv + C(den) + (1 | sch)", brandsma,
                      methods={"iqv": "2l.norm"})
    assert plan.methods["den"] == "2lonly.polyreg"
    adds = rc.plan_to_r(plan)
    assert _methods(adds)["den"] == "2lonly.function"
    assert _methods(adds)["iqv"] == "2l.continuous"
    assert ('imputationFunction = list(den = "polyreg"), cluster_var = list(den = "sch")'
            in adds.replace("\n  ", " "))
    assert _methods(rc.plan_to_r(plan, flavor="mice"))["den"] == "2lonly.pmm"


def test_single_level_plan_converts_factor_targets(brandsma: pd.DataFrame) -> None:
    plan = rc.compile("lpo ~ iqv + C(den)", brandsma)
    script = rc.plan_to_r(plan, flavor="miceadds")
    assert _methods(script)["den"] == "polyreg"
    assert "d$den <- as.factor(d$den)" in script
    assert "library(miceadds)" not in script


def test_arguments_end_up_in_the_script() -> None:
    script = rc.plan_to_r(book_plan("7.10.2"), m=3, maxit=7, seed=42, data_name="brandsma")
    assert "brandsma <- brandsma[, c(\"sch\", \"lpo\", \"iqv\")]" in script
    assert "imp <- mice(brandsma, pred = pred, meth = meth, visit = visit, m = 3, maxit = 7," \
        in script
    assert "seed = 42" in script
    assert "seed" not in rc.plan_to_r(book_plan("7.10.2")).split("imp <- mice")[1]
    assert all(len(line) <= 80 for line in script.splitlines()[2:])


@pytest.mark.parametrize("kwargs, message", [
    ({"flavor": "R"}, r"flavor='R' is not valid; choose one of 'miceadds', 'mice'"),
    ({"m": 0}, r"m must be a positive integer"),
    ({"maxit": 2.5}, r"maxit must be a positive integer"),
    ({"seed": "1"}, r"seed must be an integer or None"),
    ({"data_name": "my data"}, r"data_name='my data' is not a valid R name"),
])
def test_bad_arguments_raise_option_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(rc.OptionError, match=message):
        rc.plan_to_r(book_plan("7.10.2"), **kwargs)  # type: ignore[arg-type]


def test_mice_script_runs_in_r(brandsma: pd.DataFrame, tmp_path: Path,
                               require_r: Callable[..., None], rscript: RunR) -> None:
    require_r("mice", "pan", "lme4")
    plan = book_plan("7.10.5")
    data = tmp_path / "brandsma.csv"
    brandsma.to_csv(data, index=False, na_rep="NA")
    script = tmp_path / "impute.R"
    script.write_text(rc.plan_to_r(plan, flavor="mice", m=2, maxit=2, seed=1))
    out = tmp_path / "completed.csv"
    run = (f'd <- read.csv("{data.as_posix()}"); source("{script.as_posix()}"); '
           f'write.csv(complete(imp, 2), "{out.as_posix()}", row.names = FALSE)')
    done = rscript(run, timeout=300)
    assert "does not run" not in done.stderr  # 2l.bin's glmer ran (and imputed sex)
    completed = pd.read_csv(out)
    assert not completed.isna().any().any()
    assert set(completed["sex"]) <= {0, 1}
    observed = brandsma["lpo"].notna()
    assert np.allclose(completed.loc[observed, "lpo"], brandsma.loc[observed, "lpo"])
    means = completed.groupby("sch")["iqv"].transform("mean")
    assert np.allclose(completed["cm_iqv"], means)
    assert np.allclose(completed["cwc_iqv.sex"], (completed["iqv"] - means) * completed["sex"])
    assert np.allclose(completed["cwc_lpo.cwc_iqv"], completed["cwc_lpo"] * completed["cwc_iqv"])


def test_golden_files_are_the_only_files_in_the_golden_directory() -> None:
    assert sorted(p.stem for p in GOLDEN_DIR.iterdir()) == sorted(GOLDEN)
