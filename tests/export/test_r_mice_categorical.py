"""R export of the two-level categorical methods, which mice and miceadds do not have.

``2l.polyreg`` and ``2l.polr`` are written as mice's single-level ``polyreg`` and ``polr``
with the cluster means of their code-3/4 predictors as fixed predictors (and no cluster
column), with a comment saying what differs; ``2lonly.polr`` as miceadds' ``2lonly.function``
around ``polr`` (``2lonly.pmm`` in the mice flavour). The script runs in mice where R is there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import recipe_compiler as rc

FORMULA = "y ~ x + eth + lik + (1 | g)"


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 300
    d = pd.DataFrame({
        "g": rng.integers(0, 20, n), "y": rng.normal(size=n), "x": rng.normal(size=n),
        "eth": pd.Categorical(rng.choice(["a", "b", "c"], n)),
        "lik": pd.Categorical(rng.choice(["lo", "mid", "hi"], n), categories=["lo", "mid", "hi"],
                              ordered=True)})
    for col, share in (("eth", 0.2), ("lik", 0.2), ("x", 0.1)):
        d.loc[rng.random(n) < share, col] = np.nan
    return d


def _methods(script: str) -> dict[str, str]:
    return dict(re.findall(r'^meth\["(\w+)"\] <- "([^"]+)"$', script, re.M))


@pytest.mark.parametrize("flavor", ["mice", "miceadds"])
def test_two_level_categorical_methods_become_single_level_ones_with_a_note(
        data: pd.DataFrame, flavor: str) -> None:
    plan = rc.compile(FORMULA, data)
    assert plan.methods[["eth", "lik"]].tolist() == ["2l.polyreg", "2l.polr"]
    script = rc.plan_to_r(plan, flavor=flavor)
    methods = _methods(script)
    assert methods["eth"] == "polyreg" and methods["lik"] == "polr"
    assert "eth: 2l.polyreg -> polyreg (mice and miceadds have no two-level nominal" in script
    assert "lik: 2l.polr -> polr (mice and miceadds have no two-level ordinal" in script
    assert "d$lik <- as.ordered(d$lik)" in script and "d$eth <- as.factor(d$eth)" in script
    rows = {t: row for t, row in re.findall(r'^pred\["(\w+)", (.*?) <-', script, re.M | re.S)}
    for target in ("eth", "lik"):  # no cluster column, the cluster means as fixed effects
        assert '"g"' not in rows[target] and '"cm_x"' in rows[target]


def test_a_level2_ordinal_target_uses_miceadds_wrapper_around_polr() -> None:
    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(30), 6)
    level = pd.Categorical(rng.choice(["lo", "mid", "hi"], 30)[g],
                           categories=["lo", "mid", "hi"], ordered=True)
    d = pd.DataFrame({"g": g, "y": rng.normal(size=len(g)), "w": level})
    d.loc[np.isin(g, [1, 5, 9]), "w"] = np.nan
    plan = rc.compile("y ~ w + (1 | g)", d)
    assert plan.methods["w"] == "2lonly.polr"
    adds = rc.plan_to_r(plan, flavor="miceadds")
    assert _methods(adds)["w"] == "2lonly.function"
    assert 'imputationFunction = list(w = "polr")' in adds
    assert _methods(rc.plan_to_r(plan, flavor="mice"))["w"] == "2lonly.pmm"


def test_the_categorical_script_runs_in_mice(data: pd.DataFrame, tmp_path: Path,
                                             require_r: Callable[..., None],
                                             rscript: Callable[..., Any]) -> None:
    require_r("mice", "pan")
    csv = tmp_path / "d.csv"
    data.to_csv(csv, index=False, na_rep="NA")
    script = tmp_path / "impute.R"
    script.write_text(rc.plan_to_r(rc.compile(FORMULA, data), flavor="mice", m=1, maxit=2,
                                   seed=1))
    out = tmp_path / "completed.csv"
    rscript(f'd <- read.csv("{csv.as_posix()}"); '
            'd$lik <- factor(d$lik, levels = c("lo", "mid", "hi")); '
            f'source("{script.as_posix()}"); '
            f'write.csv(complete(imp, 1), "{out.as_posix()}", row.names = FALSE)', timeout=300)
    completed = pd.read_csv(out)
    assert not completed[["x", "eth", "lik"]].isna().any().any()
    assert set(completed["lik"]) <= {"lo", "mid", "hi"} and set(completed["eth"]) <= {"a", "b", "c"}
    observed = data["eth"].notna()
    assert (completed.loc[observed, "eth"] == data.loc[observed, "eth"].astype(str)).all()
