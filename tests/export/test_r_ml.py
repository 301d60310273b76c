"""The R export of plans with several grouping factors: miceadds' ``ml.lmer`` scripts.

Golden scripts of hand-built three-level and crossed plans (``ml_plans.py``);
what the script tells ``ml.lmer`` per target, read back from the text; the
refusal of the ``"mice"`` flavor; hostile names kept inert. With R: every script
parses without a ``system`` call, and one runs in mice with stand-ins for
miceadds' two methods (miceadds is not installed here) that record the
arguments mice hands them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ml_plans import GOLDEN, GOLDEN_DIR, crossed, render, three_level

import recipe_compiler as rc
from recipe_compiler.export.r_literal import r_string
from recipe_compiler.export.r_mice import _assign_names
from recipe_compiler.export.r_ml import ITER_RE, grouping_parts

needs_r = pytest.mark.skipif(shutil.which("Rscript") is None, reason="needs Rscript")
RunR = Callable[..., subprocess.CompletedProcess[str]]
#: Names that would be code if they left their literals (no ``:``, which joins groupings).
HOSTILE_SCHOOL = 'sch"\n`#\\é) system("touch pwned")'
HOSTILE_CLASS = "cl\r\n) system('x') #"


def hostile_plan() -> rc.Plan:
    return three_level(f"{HOSTILE_SCHOOL}:{HOSTILE_CLASS}", HOSTILE_SCHOOL)


def r_names_of(plan: rc.Plan) -> dict[str, str]:
    return _assign_names([*plan.names, *grouping_parts(plan)], plan.derived)


def _flat(script: str) -> str:
    return re.sub(r"\n  ", " ", script)


def _pred_rows(script: str) -> dict[str, dict[str, int]]:
    out = {}
    for m in re.finditer(r'^pred\["([^"]+)", (?:c\()?([^\]]*?)\)?\] <- (?:c\()?([^)\n]*)\)?$',
                         _flat(script), re.M):
        cols = re.findall(r'"([^"]+)"', m.group(2))
        out[m.group(1)] = dict(zip(cols, map(int, m.group(3).split(", ")), strict=True))
    return out


def _list(script: str, name: str) -> str:
    m = re.search(rf"^{name} <- (?:list|c)\((.*)\)$", _flat(script), re.M)
    assert m, name
    return m.group(1)


# ------------------------------------------------------------------ the text


@pytest.mark.parametrize("stem", sorted(GOLDEN))
def test_script_matches_the_golden_file(stem: str) -> None:
    expected = (GOLDEN_DIR / f"{stem}.R").read_text(encoding="utf-8")
    assert render(stem) == expected, (
        f"{stem}.R differs; if the change is intended, run `python tests/export/ml_plans.py` "
        "and review the diff")


def test_golden_directory_holds_exactly_the_golden_files() -> None:
    assert sorted(p.stem for p in GOLDEN_DIR.iterdir()) == sorted(GOLDEN)


@pytest.mark.parametrize("inner", ["school:class", "class"])
def test_each_target_gets_its_rows_groupings_level_slopes_and_model(inner: str) -> None:
    plan = three_level(inner)
    r = r_names_of(plan)
    script = rc.plan_to_r(plan)
    rows = _pred_rows(script)
    # ml.lmer reads code 1 only: the plan's codes 1 and 2 become 1, its -2 go to levels_id
    for t in ("y", "x", "w"):
        assert rows[t] == {r[p]: 1 for p, c in plan.predictors(t) if c in (1, 2)}, t
    # the school-level target: mice's 2lonly.pmm with the school as its cluster
    assert rows["z"] == {"school": -2, "y": 1, "x": 1, "w": 1}
    assert re.search(r'^meth\["z"\] <- "2lonly.pmm"$', script, re.M)
    assert re.search(r'^meth\[c\("y", "x", "w"\)\] <- "ml.lmer"$', script, re.M)
    ri = r[inner]
    assert _list(script, "levels_id") == (f'y = c("{ri}", "school"), x = c("{ri}", "school"), '
                                          'w = "school"')
    assert _list(script, "variables_levels") == f'y = "", x = "", w = "{ri}"'
    assert _list(script, "model") == 'y = "pmm", x = "continuous", w = "pmm"'
    assert _list(script, "random_slopes") == f'y = list({ri} = "x")'
    # cluster means are 2l.groupmean columns over their own grouping
    assert rows[f"cm_x_{ri}"] == {ri: -2, "x": 1} and rows["cm_y_school"] == {"school": -2, "y": 1}
    assert "aggregate_automatically = FALSE" in _flat(script)
    assert "iter_re" not in script


def test_the_interaction_is_built_in_r_and_ids_are_integers() -> None:
    script = rc.plan_to_r(three_level())
    assert 'd <- d[, c("school", "class", "y", "x", "w", "z")]' in script
    lines = script.splitlines()
    inter = lines.index("d$school_class <- as.integer(interaction(d$school, d$class, "
                        "drop = TRUE))")
    assert lines[inter + 1] == "d$school <- as.integer(factor(d$school))"


def test_crossed_targets_get_gibbs_sweeps_over_the_random_effects() -> None:
    script = rc.plan_to_r(crossed())
    assert _list(script, "levels_id") == 'y = c("rater", "item"), x = c("rater", "item")'
    assert _list(script, "iter_re") == f"y = {ITER_RE}, x = {ITER_RE}"
    assert "iter_re = iter_re" in _flat(script) and "random_slopes <-" not in script
    assert "# grouping factors (crossed): rater, item" in script


def test_mice_flavor_is_refused_naming_the_miceadds_flavor() -> None:
    with pytest.raises(rc.PlanError, match=r"mice has no imputation method for several grouping "
                                           r"factors \(this plan's are crossed: 'rater', "
                                           r"'item'\); export it with flavor=\"miceadds\""):
        rc.plan_to_r(crossed(), flavor="mice")


def test_a_level1_target_without_a_grouping_is_refused() -> None:
    spec = rc.plan_to_spec(three_level())
    del spec["predictors"]["x"]["school:class"], spec["predictors"]["x"]["school"]
    with pytest.raises(rc.PlanError, match=r"target 'x' \(ml.norm\): ml.lmer needs a grouping "
                                           r"factor of code -2 in the row of a level-1 target"):
        rc.plan_to_r(rc.spec_to_plan(spec))


def test_a_class_level_target_without_a_grouping_falls_back_to_2lonly() -> None:
    spec = rc.plan_to_spec(three_level())
    del spec["predictors"]["w"]["school"]
    script = rc.plan_to_r(rc.spec_to_plan(spec))
    assert re.search(r'^meth\[c\("w", "z"\)\] <- "2lonly.pmm"$', script, re.M)
    assert _pred_rows(script)["w"]["school_class"] == -2
    assert _list(script, "levels_id") == ('y = c("school_class", "school"), '
                                          'x = c("school_class", "school")')


def test_hostile_names_stay_in_literals_and_comments() -> None:
    script = rc.plan_to_r(hostile_plan())
    code = [re.sub(r'"(?:[^"\\]|\\.)*"', '""', line) for line in script.splitlines()
            if line and not line.startswith("#")]  # string literals blanked
    assert not [line for line in code if re.search(r"\bsystem\(|pwned\"", line)]
    assert f"d <- d[, c({r_string(HOSTILE_SCHOOL)}, {r_string(HOSTILE_CLASS)}, " in _flat(script)
    school, klass = (r_names_of(hostile_plan())[n] for n in (HOSTILE_SCHOOL, HOSTILE_CLASS))
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9._]*", school + klass)


# ------------------------------------------------------------------ with R


@needs_r
def test_r_parses_every_script_without_a_system_call(tmp_path: Path, rscript: RunR) -> None:
    """``parse()`` each golden and hostile script; ``system`` must not be a name in it.

    R code::

        for (f in files) { e <- parse(file = f); cat(basename(f), "system" %in% all.names(e),
                                                      length(e), "\\n") }
    """
    scripts = {p.name: p.read_text(encoding="utf-8") for p in sorted(GOLDEN_DIR.iterdir())}
    scripts["hostile.R"] = rc.plan_to_r(hostile_plan())
    for name, script in scripts.items():
        (tmp_path / name).write_text(script, encoding="utf-8")
    files = ", ".join(r_string((tmp_path / n).as_posix()) for n in scripts)
    out = rscript(f"for (f in c({files})) {{ e <- parse(file = f); cat(basename(f), "
                  "'system' %in% all.names(e), length(e), '\\n') }\n").stdout
    parsed = {line.split()[0]: line.split()[1:] for line in out.splitlines()}
    assert set(parsed) == set(scripts)
    for name, (has_system, n_expressions) in parsed.items():
        statements = [line for line in scripts[name].splitlines()
                      if line and not line.startswith(("#", " "))]
        assert (has_system, int(n_expressions)) == ("FALSE", len(statements)), name


#: Stand-ins for miceadds' methods: 2l.groupmean is the cluster mean; ml.lmer records the
#: settings mice hands it, checks them against the data and predictor matrix it finds where
#: miceadds finds them (mice's sampler frame), and draws from an lme4 fit with a random
#: intercept per levels_id entry (on one row per variables_levels cluster if set).
STAND_INS = r"""
calls <- list()
mice.impute.2l.groupmean <- function(y, ry, x, type, ...) {
  as.vector(ave(x[, type == 1], x[, type == -2]))
}
mice.impute.ml.lmer <- function(y, ry, x, type, levels_id, variables_levels = NULL,
                                random_slopes = NULL, aggregate_automatically = TRUE,
                                model = "continuous", iter_re = 0, ...) {
  for (n in 1:20) {
    e <- parent.frame(n)
    if (exists("newstate", envir = e, inherits = FALSE)) break
  }
  v <- get("newstate", envir = e)$dep
  data <- get("data", envir = e)
  type <- get("predictorMatrix", envir = e)[v, ]
  lev <- levels_id[[v]]; vl <- variables_levels[[v]]
  fixed <- names(type)[type == 1]
  stopifnot(!aggregate_automatically, all(lev %in% names(data)), all(fixed %in% colnames(x)),
            all(unlist(random_slopes[[v]]) %in% fixed), is.numeric(as.matrix(data[, lev])))
  calls[[length(calls) + 1]] <<- list(v = v, fixed = fixed, levels_id = lev,
    variables_levels = vl, random_slopes = random_slopes[[v]], model = model[[v]],
    iter_re = if (is.list(iter_re)) iter_re[[v]] else NULL)
  X <- x[, fixed, drop = FALSE]; ids <- data[, lev, drop = FALSE]; yy <- y; rr <- ry
  if (vl != "") {
    g <- data[, vl]; first <- !duplicated(g)
    X <- (rowsum(X, g) / as.vector(table(g)))[as.character(g[first]), , drop = FALSE]
    ids <- ids[first, , drop = FALSE]; yy <- y[first]; rr <- ry[first]
  }
  df <- data.frame(yy = yy, X, ids)
  f <- paste("yy ~", paste(c(colnames(X), paste0("(1 | ", lev, ")")), collapse = " + "))
  fit <- lme4::lmer(stats::as.formula(f), data = df[rr, ])
  imp <- predict(fit, newdata = df, allow.new.levels = TRUE) + rnorm(nrow(df), 0, sigma(fit))
  if (vl != "") imp <- imp[match(data[, vl], data[first, vl])]
  imp[!ry]
}
"""


def _three_level_data(seed: int = 5) -> pd.DataFrame:
    """12 schools x 4 classes x 6 pupils; y, x at level 1, w per class, z per school, with NAs."""
    rng = np.random.default_rng(seed)
    n_school, n_class, n_pupil = 12, 4, 6
    school = np.repeat(np.arange(n_school), n_class * n_pupil)
    klass = np.tile(np.repeat(np.arange(n_class), n_pupil), n_school)
    unit = school * n_class + klass
    z = rng.normal(size=n_school)[school]
    w = rng.normal(size=n_school * n_class)[unit]
    x = rng.normal(size=school.size) + w
    y = x + w + z + rng.normal(size=school.size)
    d = pd.DataFrame({"school": school + 100, "class": klass, "y": y, "x": x, "w": w, "z": z})
    for col in ("y", "x"):
        d.loc[rng.choice(len(d), 20, replace=False), col] = np.nan
    d.loc[np.isin(unit, rng.choice(n_school * n_class, 5, replace=False)), "w"] = np.nan
    d.loc[np.isin(school, [1, 2]), "z"] = np.nan
    return d


def test_three_level_script_runs_in_mice_with_stand_ins(
        tmp_path: Path, require_r: Callable[..., None], rscript: RunR) -> None:
    """mice runs the three-level script (m = 2, maxit = 3), calling ml.lmer as the plan says.

    R code: the stand-ins of ``STAND_INS`` (instead of ``library(miceadds)``), then the
    script, then::

        writeLines(jsonlite-free JSON of `calls`), write.csv(complete(imp, 1))
    """
    require_r("mice", "lme4")
    _three_level_data().to_csv(tmp_path / "data.csv", index=False)
    script = rc.plan_to_r(three_level(), m=2, maxit=3, seed=7).replace("library(miceadds)\n", "")
    report = r"""
dump <- function(v) if (is.list(v)) paste0("{", paste0('"', names(v), '": ',
  sapply(v, dump), collapse = ", "), "}") else if (is.null(v)) "null" else
  paste0("[", paste0('"', v, '"', collapse = ", "), "]")
writeLines(paste0("[", paste(sapply(calls, dump), collapse = ",\n"), "]"), "calls.json")
write.csv(complete(imp, 1), "completed.csv", row.names = FALSE)
"""
    rscript(f'setwd({r_string(tmp_path.as_posix())})\nd <- read.csv("data.csv")\n'
            + STAND_INS + script + report, timeout=300)
    calls = json.loads((tmp_path / "calls.json").read_text())
    plan = three_level()
    r = r_names_of(plan)
    seen = {c["v"][0]: c for c in calls}
    assert set(seen) == {"y", "x", "w"}  # z is mice's 2lonly.pmm
    assert len(calls) == 3 * 2 * 3  # three ml.lmer targets, m = 2, maxit = 3
    for t, c in seen.items():
        row = plan.predictors(t)
        assert c["fixed"] == [r[p] for p, code in row if code in (1, 2)], t
        assert c["levels_id"] == [r[g] for g in plan.groupings if (g, -2) in row], t
        assert c["variables_levels"] == ["" if t != "w" else "school_class"], t
        assert c["model"] == ["continuous" if t == "x" else "pmm"], t
    assert seen["y"]["random_slopes"] == {"school_class": ["x"]}
    done = pd.read_csv(tmp_path / "completed.csv")
    assert not done.isna().any().any()
    # derived columns as the plan defines them; the class- and school-level targets constant
    assert np.allclose(done["cm_x_school"], done.groupby("school")["x"].transform("mean"))
    assert np.allclose(done["cwc_x_school_class"], done["x"] - done["cm_x_school_class"])
    assert (done.groupby("school_class")["w"].nunique() == 1).all()
    assert (done.groupby("school")["z"].nunique() == 1).all()
