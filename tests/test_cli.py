"""The command line: subcommands in a subprocess, exit codes, errors without tracebacks.

The ``impute``/``analyze`` contract (arguments passed on, atomic output, interrupts)
is also checked in-process against ``FakeImputations`` so that it does not depend
on the sampler.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from test_plots import FakeImputations

import recipe_compiler as rc
from recipe_compiler import cli

FORMULA = "lpo ~ iqv + den + (1 | sch)"
ROOT = Path(__file__).resolve().parents[1]
needs_impute = pytest.mark.skipif(not hasattr(rc, "impute"), reason="rc.impute not available")


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m recipe_compiler.cli ARGS`` with the repository importable."""
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "recipe_compiler.cli", *args],
                          capture_output=True, text=True, timeout=120, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory: pytest.TempPathFactory, brandsma: pd.DataFrame) -> Path:
    path = tmp_path_factory.mktemp("data") / "brandsma.csv"
    brandsma.to_csv(path, index=False)
    return path


# ------------------------------------------------------------------ compile


def test_compile_prints_the_plan_and_writes_spec_and_r_script(
        data_csv: Path, brandsma: pd.DataFrame, tmp_path: Path) -> None:
    spec, script = tmp_path / "plan.json", tmp_path / "impute.R"
    done = run("compile", str(data_csv), FORMULA, "--spec", str(spec), "--r", str(script),
               "--flavor", "mice")
    assert done.returncode == 0, done.stderr
    plan = rc.compile(FORMULA, brandsma)
    assert done.stdout == f"{plan}\n"
    assert rc.load_plan(spec) == plan
    assert script.read_text() == rc.plan_to_r(plan, flavor="mice")


def test_compile_options_reach_the_compiler() -> None:
    formula = "lpo ~ iqv*sex + cm(iqv)*den + sex*den + (1 | sch)"
    done = run("compile", "--example", "brandsma", formula, "--interactions", "all_pairwise",
               "--centering", "cluster", "--auxiliary", "ses", "--method", "lpo=2l.norm")
    assert done.returncode == 0, done.stderr
    plan = rc.compile(formula, rc.datasets.load_brandsma(), interactions="all_pairwise",
                      centering="cluster", auxiliary=["ses"], methods={"lpo": "2l.norm"})
    assert done.stdout == f"{plan}\n"


def test_a_bad_formula_exits_2_with_the_caret_message_and_no_traceback(caret: Any) -> None:
    formula = "lpo ~ iqv + dem + (1 | sch)"
    done = run("compile", "--example", "brandsma", formula)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("recipe-compiler: error: column 'dem'")
    caret(done.stderr.rstrip("\n"), formula, "dem")


@pytest.mark.parametrize("args, message", [
    (["compile", "missing.csv", FORMULA], "cannot read the data file 'missing.csv'"),
    (["compile", "data.txt", FORMULA], "must be a .csv or .parquet file"),
    (["compile", FORMULA], "expected DATA and FORMULA; got 1"),
    (["compile", "--example", "brandsma", FORMULA, "--interactions", "some"],
     "interactions='some' is not valid"),
    (["compile", "--example", "brandsma", FORMULA, "--method", "lpo"], "must be COLUMN=METHOD"),
    (["compile", "--example", "brandsma", FORMULA, "--method", "lpo=pmm"],
     "methods['lpo'] (a level-1 target)='pmm' is not valid"),
    (["impute", "--example", "brandsma", FORMULA, "--out", "out.xlsx"],
     "must be a .csv or .parquet file"),
    (["impute", "--example", "brandsma", "--plan", "missing.json", "--out", "out.csv"],
     "missing.json"),
    (["impute", "--example", "brandsma", "--plan", "bad.json", "--out", "out.csv"],
     "bad.json is not valid JSON"),
    (["analyze", "--example", "brandsma", "--plan", "bad.json"], "unrecognized arguments"),
    (["compile", "--example", "mtcars", FORMULA], "invalid choice: 'mtcars'"),
    (["impute", "--example", "brandsma", FORMULA], "the following arguments are required: --out"),
    (["impute", "--example", "brandsma", FORMULA, "--m", "two", "--out", "out.csv"],
     "invalid int value: 'two'"),
    (["impute", "--example", "brandsma", FORMULA, "--out", "nowhere/out.csv"],
     "the folder 'nowhere' does not exist"),
    (["impute", "--example", "brandsma", FORMULA, "--out", "out.csv", "--maxit", "0",
      "--plots", "figures"], "--plots needs iterations"),
    ([], "the following arguments are required: COMMAND"),
])
def test_bad_input_exits_2_with_a_message(args: list[str], message: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.json").write_text("{")
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert [p.name for p in tmp_path.iterdir()] == ["bad.json"]


def test_output_piped_into_a_reader_that_stops_early_exits_0() -> None:
    """`recipe-compiler compile ... | head -1` must not end in a broken-pipe error."""
    proc = subprocess.Popen([sys.executable, "-m", "recipe_compiler.cli", "compile",
                             "--example", "brandsma", "lpo ~ iqv*sex + den + (1 | sch)"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the plan is printed
    assert proc.wait(timeout=60) == 0
    assert "Traceback" not in proc.stderr.read()


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["impute", "--help"]) == 0
    shown = capsys.readouterr().out
    assert "--plan SPEC" in shown and "--out FILE" in shown


# ------------------------------------------------------------------ impute, analyze (real)


@needs_impute
def test_impute_writes_the_long_completed_data(data_csv: Path, brandsma: pd.DataFrame,
                                               tmp_path: Path) -> None:
    out = tmp_path / "imp.parquet"
    done = run("impute", str(data_csv), FORMULA, "--m", "2", "--maxit", "2", "--seed", "7",
               "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    long = pd.read_parquet(out)
    assert list(long.columns) == [".imp", ".id", *brandsma.columns]
    assert len(long) == 2 * len(brandsma)
    assert sorted(long[".imp"].unique()) == [1, 2]
    assert not long[["lpo", "iqv", "den"]].isna().any().any()
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left


@needs_impute
def test_impute_from_a_plan_spec_with_plots(data_csv: Path, tmp_path: Path) -> None:
    spec = tmp_path / "plan.json"
    rc.save_plan(rc.compile(FORMULA, pd.read_csv(data_csv)), spec)
    out, figures = tmp_path / "imp.csv", tmp_path / "figures"
    done = run("impute", str(data_csv), "--plan", str(spec), "--m", "2", "--maxit", "2",
               "--seed", "7", "--out", str(out), "--plots", str(figures), "--quiet")
    assert done.returncode == 0, done.stderr
    assert pd.read_csv(out).shape == (2 * 4106, 16)
    assert sorted(p.name for p in figures.iterdir()) == ["density.png", "predictor_matrix.png",
                                                         "trace.png"]


@needs_impute
def test_analyze_prints_pooled_estimates_and_variance_components() -> None:
    done = run("analyze", "--example", "brandsma", FORMULA, "--m", "2", "--maxit", "2",
               "--seed", "7", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "Pooled fixed effects" in done.stdout and "iqv" in done.stdout
    assert "Pooled variance components" in done.stdout


# ------------------------------------------------------------------ the contract, in-process


class Recorder:
    """A stand-in for ``rc.impute`` that records its arguments and returns a fake."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.error = error

    def __call__(self, data: pd.DataFrame, model: Any, **kwargs: Any) -> FakeImputations:
        self.calls.append({"model": model, **kwargs})
        if self.error is not None:
            raise self.error
        plan = model if isinstance(model, rc.Plan) else rc.compile(
            model, data, **{k: v for k, v in kwargs.items()
                            if k not in ("m", "maxit", "seed", "n_jobs", "progress")})
        return FakeImputations(plan, data, m=kwargs["m"], maxit=kwargs["maxit"])


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    fake = Recorder()
    monkeypatch.setattr(rc, "impute", fake, raising=False)
    return fake


def test_impute_passes_its_options_on(recorder: Recorder, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "imp.csv"
    code = cli.main(["impute", "--example", "brandsma", FORMULA, "--m", "3", "--maxit", "4",
                     "--seed", "11", "--jobs", "2", "--centering", "cluster", "--out", str(out)])
    assert code == 0
    assert recorder.calls == [{"model": FORMULA, "m": 3, "maxit": 4, "seed": 11, "n_jobs": 2,
                               "progress": True, "centering": "cluster"}]
    assert len(pd.read_csv(out)) == 3 * 4106
    assert f"to {out}" in capsys.readouterr().out


def test_impute_with_a_plan_passes_the_plan(recorder: Recorder, tmp_path: Path) -> None:
    plan = rc.compile(FORMULA, rc.datasets.load_brandsma())
    spec = tmp_path / "plan.json"
    rc.save_plan(plan, spec)
    code = cli.main(["impute", "--example", "brandsma", "--plan", str(spec), "--quiet",
                     "--out", str(tmp_path / "imp.parquet")])
    assert code == 0
    assert recorder.calls[0]["model"] == plan and recorder.calls[0]["progress"] is False
    assert len(pd.read_parquet(tmp_path / "imp.parquet")) == 5 * 4106


@pytest.mark.parametrize("error, code", [(KeyboardInterrupt(), 130),
                                         (rc.SamplerError("no convergence"), 2)])
def test_a_failed_imputation_leaves_no_output(error: BaseException, code: int,
                                              monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    monkeypatch.setattr(rc, "impute", Recorder(error), raising=False)
    assert cli.main(["impute", "--example", "brandsma", FORMULA,
                     "--out", str(tmp_path / "imp.csv")]) == code
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("error, code", [(KeyboardInterrupt(), 130), (OSError("disk full"), 2)])
def test_an_interrupted_write_removes_the_temporary_file(
        error: BaseException, code: int, recorder: Recorder, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def partial_write(self: pd.DataFrame, path: str, **kwargs: Any) -> None:
        Path(path).write_text(".imp,.id\n1,")
        raise error

    monkeypatch.setattr(pd.DataFrame, "to_csv", partial_write)
    out = tmp_path / "imp.csv"
    assert cli.main(["impute", "--example", "brandsma", FORMULA, "--out", str(out)]) == code
    assert list(tmp_path.iterdir()) == []
    assert "Traceback" not in capsys.readouterr().err


def test_an_existing_output_is_replaced_only_when_the_new_one_is_complete(
        recorder: Recorder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    out = tmp_path / "imp.csv"
    out.write_text("old\n")
    monkeypatch.setattr(rc, "impute", Recorder(KeyboardInterrupt()), raising=False)
    assert cli.main(["impute", "--example", "brandsma", FORMULA, "--out", str(out)]) == 130
    assert out.read_text() == "old\n"
    monkeypatch.setattr(rc, "impute", recorder)
    assert cli.main(["impute", "--example", "brandsma", FORMULA, "--out", str(out)]) == 0
    assert pd.read_csv(out).columns[:2].tolist() == [".imp", ".id"]


def test_analyze_fits_the_analysis_formula(recorder: Recorder,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    analysis = "lpo ~ iqv + cm(iqv) + (1 | sch)"
    code = cli.main(["analyze", "--example", "brandsma", FORMULA, "--analysis", analysis,
                     "--reml", "--m", "2", "--maxit", "1"])
    assert code == 0
    shown = capsys.readouterr().out
    assert f"Analysis model: {analysis}  (2 imputations, REML)" in shown
    assert "Pooled fixed effects (Rubin's rules):" in shown and "(Intercept)" in shown
    assert "Residual~~Residual" in shown


@pytest.mark.parametrize(("flags", "reml", "shown"), [
    ([], True, "REML"), (["--reml"], True, "REML"), (["--ml"], False, "ML")])
def test_analyze_fits_by_reml_unless_told_ml(flags: list[str], reml: bool, shown: str,
                                             recorder: Recorder, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """REML by default, as lme4's ``lmer`` and ``imp.fit``; ``--ml`` for maximum likelihood."""
    asked: list[bool] = []
    fit = FakeImputations.fit

    def spy(self: FakeImputations, formula: str, reml: bool = False) -> Any:
        asked.append(reml)
        return fit(self, formula, reml=reml)

    monkeypatch.setattr(FakeImputations, "fit", spy)
    code = cli.main(["analyze", "--example", "brandsma", FORMULA, "--m", "2", "--maxit", "1",
                     *flags])
    assert code == 0 and asked == [reml]
    assert f"(2 imputations, {shown})" in capsys.readouterr().out


def test_analyze_refuses_both_ml_and_reml(recorder: Recorder,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["analyze", "--example", "brandsma", FORMULA, "--ml", "--reml"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
    assert recorder.calls == []
