"""Findings 4, 8 and 9 of issue 10: the command line never destroys its input.

* An output (``--out``, ``--spec``, ``--r``, the files of ``--plots``) that is an
  input (DATA, ``--plan``) or another output, by name, symbolic or hard link, exits 2
  before any work, and every file stays byte for byte as it was.
* Outputs are atomic and keep the permissions of the file they replace, or get
  ``0o666 & ~umask``.
* Bad inputs exit 2 with one line on stderr, never a traceback; data with ``.imp``
  or ``.id`` columns fail before the imputation.
* SIGTERM exits 143 after stopping the worker processes, leaving no output.
* ``rc.impute(..., seed=True)`` is an OptionError.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from test_plots import FakeImputations

import recipe_compiler as rc
from recipe_compiler import cli

FORMULA = "lpo ~ iqv + (1 | sch)"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def folder(tmp_path: Path, brandsma: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder holding d.csv (brandsma's columns sch, lpo, iqv) and its plan.json."""
    monkeypatch.chdir(tmp_path)
    data = brandsma[["sch", "lpo", "iqv"]]
    data.to_csv(tmp_path / "d.csv", index=False)
    rc.save_plan(rc.compile(FORMULA, data), tmp_path / "plan.json")
    return tmp_path


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (links as their target's bytes), by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def no_imputation(monkeypatch: pytest.MonkeyPatch) -> None:
    """``rc.impute`` fails the test: the command must stop before imputing."""
    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("rc.impute ran")
    monkeypatch.setattr(rc, "impute", never)


@pytest.fixture
def fake_impute(monkeypatch: pytest.MonkeyPatch) -> None:
    """``rc.impute`` returns imputations at once (the sampler is not under test here)."""
    def fake(data: pd.DataFrame, model: Any, **kwargs: Any) -> FakeImputations:
        plan = model if isinstance(model, rc.Plan) else rc.compile(model, data)
        return FakeImputations(plan, data, m=kwargs["m"], maxit=kwargs["maxit"])
    monkeypatch.setattr(rc, "impute", fake)


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The message of the single ``recipe-compiler: error: ...`` line on stderr."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("recipe-compiler: error: "), err
    return err[len("recipe-compiler: error: "):-1]


# ------------------------------------------------------------------ finding 4: outputs


def _link(kind: str, target: str, link: str) -> None:
    (os.symlink if kind == "symlink" else os.link)(target, link)


SAME = "; writing it would destroy that file, so choose another name"
COLLISIONS: dict[str, tuple[list[str], list[tuple[str, str, str]], str]] = {
    # case: (arguments, links to make (kind, target, link), the message)
    "--out is DATA": (
        ["impute", "d.csv", FORMULA, "--out", "d.csv"], [],
        "--out 'd.csv' is the same file as the input DATA 'd.csv'"),
    "--out is DATA by another path": (
        ["impute", "d.csv", FORMULA, "--out", "./sub/../d.csv"], [],
        "--out './sub/../d.csv' is the same file as the input DATA 'd.csv'"),
    "--out is a symlink to DATA": (
        ["impute", "d.csv", FORMULA, "--out", "link.csv"], [("symlink", "d.csv", "link.csv")],
        "--out 'link.csv' is the same file as the input DATA 'd.csv'"),
    "--out is a hard link to DATA": (
        ["impute", "d.csv", FORMULA, "--out", "hard.csv"], [("hard", "d.csv", "hard.csv")],
        "--out 'hard.csv' is the same file as the input DATA 'd.csv'"),
    "DATA is a symlink to --out": (
        ["impute", "link.csv", FORMULA, "--out", "d.csv"], [("symlink", "d.csv", "link.csv")],
        "--out 'd.csv' is the same file as the input DATA 'link.csv'"),
    "--spec is DATA": (
        ["compile", "d.csv", FORMULA, "--spec", "d.csv"], [],
        "--spec 'd.csv' is the same file as the input DATA 'd.csv'"),
    "--r is a symlink to DATA": (
        ["compile", "d.csv", FORMULA, "--r", "script.R"], [("symlink", "d.csv", "script.R")],
        "--r 'script.R' is the same file as the input DATA 'd.csv'"),
    "--r is --spec": (
        ["compile", "d.csv", FORMULA, "--spec", "plan.json", "--r", "plan.json"], [],
        "--r 'plan.json' is the same file as the output --spec 'plan.json'"),
    "--out is --plan": (
        ["impute", "d.csv", "--plan", "p.csv", "--out", "p.csv"],
        [("hard", "plan.json", "p.csv")],
        "--out 'p.csv' is the same file as the input --plan 'p.csv'"),
    "a --plots file is --plan": (
        ["impute", "d.csv", "--plan", "sub/trace.png", "--out", "o.csv", "--plots", "sub"],
        [("symlink", "../plan.json", "sub/trace.png")],
        "--plots 'sub/trace.png' is the same file as the input --plan 'sub/trace.png'"),
}


@pytest.mark.parametrize("case", sorted(COLLISIONS))
def test_an_output_that_is_an_input_exits_2_and_touches_nothing(
        case: str, folder: Path, no_imputation: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    args, links, message = COLLISIONS[case]
    (folder / "sub").mkdir()
    for kind, target, link in links:
        _link(kind, target, link)
    before = snapshot(folder)
    assert cli.main(args) == 2
    assert one_line_error(capsys) == message + SAME
    assert snapshot(folder) == before


def test_a_replaced_file_keeps_its_permissions_and_a_new_one_honours_the_umask(
        folder: Path, fake_impute: None) -> None:
    old = os.umask(0o027)
    try:
        (folder / "old.csv").write_text("old\n")
        os.chmod(folder / "old.csv", 0o604)
        assert cli.main(["impute", "d.csv", FORMULA, "--quiet", "--out", "new.csv"]) == 0
        assert cli.main(["impute", "d.csv", FORMULA, "--quiet", "--out", "old.csv"]) == 0
        assert cli.main(["compile", "d.csv", FORMULA, "--spec", "s.json", "--r", "s.R"]) == 0
    finally:
        os.umask(old)

    def mode(name: str) -> int:
        return stat.S_IMODE((folder / name).stat().st_mode)

    assert (mode("new.csv"), mode("old.csv"), mode("s.json"), mode("s.R")) == (
        0o640, 0o604, 0o640, 0o640)
    assert pd.read_csv(folder / "old.csv").columns[:2].tolist() == [".imp", ".id"]


def test_an_output_symlink_is_kept_and_its_target_replaced(folder: Path) -> None:
    os.symlink("real.R", folder / "link.R")
    assert cli.main(["compile", "d.csv", FORMULA, "--r", "link.R"]) == 0
    assert (folder / "link.R").is_symlink()
    assert (folder / "real.R").read_text() == rc.plan_to_r(rc.load_plan(folder / "plan.json"))


def test_a_failed_spec_write_leaves_the_old_spec_and_no_temporary_file(
        folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def partial(plan: rc.Plan, path: str) -> None:
        Path(path).write_text('{"format": ')
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "save_plan", partial)
    before = snapshot(folder)
    assert cli.main(["compile", "d.csv", FORMULA, "--spec", "plan.json"]) == 130
    assert snapshot(folder) == before


def test_an_r_script_that_cannot_be_written_leaves_no_spec_either(
        folder: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(plan: rc.Plan, **kwargs: Any) -> str:
        raise rc.PlanError("'a\\x00' holds a NUL character")

    monkeypatch.setattr(cli, "plan_to_r", refuse)
    before = snapshot(folder)
    assert cli.main(["compile", "d.csv", FORMULA, "--spec", "new.json", "--r", "new.R"]) == 2
    assert one_line_error(capsys) == "'a\\x00' holds a NUL character"
    assert snapshot(folder) == before


@pytest.mark.parametrize("args, message", [
    (["compile", "d.csv", FORMULA, "--spec", "."], "--spec '.' is a folder; give a file name"),
    (["compile", "d.csv", FORMULA, "--r", "nowhere/x.R"],
     "--r 'nowhere/x.R': the folder 'nowhere' does not exist"),
    (["impute", "d.csv", FORMULA, "--out", "o.csv", "--plots", "d.csv"],
     "--plots 'd.csv' is a file; give a folder (it is created if missing)"),
])
def test_output_paths_that_cannot_be_written_exit_2_first(
        args: list[str], message: str, folder: Path, no_imputation: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(folder)
    assert cli.main(args) == 2
    assert one_line_error(capsys) == message
    assert snapshot(folder) == before


# ------------------------------------------------------------------ finding 8: bad input


def _spec_edit(edit: Callable[[dict[str, Any]], object]) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        spec = json.loads((folder / "plan.json").read_text())
        edit(spec)
        (folder / "plan.json").write_text(json.dumps(spec))
    return write


BAD_INPUT: dict[str, tuple[Callable[[Path], None], list[str], str]] = {
    "a Latin-1 spec": (
        lambda f: (f / "plan.json").write_bytes(
            (f / "plan.json").read_text().replace(FORMULA, FORMULA + " é").encode("latin-1")),
        ["--plan", "plan.json"],
        r"plan.json is not UTF-8 text \(byte \d+: invalid continuation byte\)"),
    "a deeply nested spec": (
        lambda f: (f / "plan.json").write_text("[" * 100_000 + "]" * 100_000),
        ["--plan", "plan.json"], r"plan.json: the JSON is nested too deeply to read"),
    "a visit of the cluster": (
        _spec_edit(lambda s: s["visit_sequence"].append("sch")),
        ["--plan", "plan.json"], r"visit_sequence\[2\]: 'sch' is the cluster variable"),
    "a cwc with one parent": (
        _spec_edit(lambda s: (
            s["variables"].append({"name": "cwc(iqv)", "role": "derived", "level": 1,
                                   "kind": "derived"}),
            s["derived"].append({"name": "cwc(iqv)", "op": "cwc", "parents": ["iqv"]}))),
        ["--plan", "plan.json"],
        r"derived\[0\] \('cwc\(iqv\)'\): op 'cwc' takes 2 parents"),
    "a .imp column": (
        lambda f: pd.read_csv(f / "d.csv").assign(**{".imp": 1}).to_csv(f / "d.csv",
                                                                           index=False),
        [FORMULA],
        r"the data have a column '\.imp', and the long output of --out adds the columns "
        r"\.imp and \.id in front of the data; rename that column first"),
    "a .id column": (
        lambda f: pd.read_csv(f / "d.csv").assign(**{".id": 1}).to_csv(f / "d.csv",
                                                                          index=False),
        ["--plan", "plan.json"], r"the data have a column '\.id'"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_exits_2_with_one_line_before_imputing(
        case: str, folder: Path, no_imputation: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    prepare, model, message = BAD_INPUT[case]
    prepare(folder)
    before = snapshot(folder)
    assert cli.main(["impute", "d.csv", *model, "--out", "o.csv", "--quiet"]) == 2
    assert re.search(message, one_line_error(capsys))
    assert snapshot(folder) == before


def test_a_column_name_that_is_no_formula_name_exits_2_and_works_in_backticks(
        folder: Path, fake_impute: None, capsys: pytest.CaptureFixture[str],
        caret: Callable[..., None]) -> None:
    pd.read_csv(folder / "d.csv").rename(columns={"iqv": "iq v"}).to_csv(folder / "d.csv",
                                                                         index=False)
    formula = "lpo ~ iq v + (1 | sch)"
    assert cli.main(["impute", "d.csv", formula, "--out", "o.csv", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("recipe-compiler: error: ") and "Traceback" not in err
    caret(err.rstrip("\n"), formula, "iq v")
    assert not (folder / "o.csv").exists()
    assert cli.main(["impute", "d.csv", "lpo ~ `iq v` + (1 | sch)", "--out", "o.csv",
                     "--quiet"]) == 0
    assert "iq v" in pd.read_csv(folder / "o.csv").columns


# ------------------------------------------------------------------ finding 9: SIGTERM, seed


def test_sigterm_in_process_takes_the_interrupt_path(
        folder: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def terminated(*args: Any, **kwargs: Any) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
        raise AssertionError("SIGTERM was not handled")

    monkeypatch.setattr(rc, "impute", terminated)
    handler = signal.getsignal(signal.SIGTERM)
    before = snapshot(folder)
    assert cli.main(["impute", "d.csv", FORMULA, "--out", "d2.csv"]) == 143
    assert capsys.readouterr().err == "recipe-compiler: terminated\n"
    assert snapshot(folder) == before
    assert signal.getsignal(signal.SIGTERM) is handler  # restored


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists() or len(os.sched_getaffinity(0)) < 2,
                    reason="needs /proc and 2 CPUs (for 2 worker processes)")
def test_sigterm_stops_the_workers_and_leaves_no_output(folder: Path) -> None:
    """A real ``impute --jobs 2``: SIGTERM once both workers run; they must be gone too."""
    err = (folder / "stderr.txt").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "recipe_compiler.cli", "impute", "d.csv", FORMULA, "--m", "2",
         "--maxit", "100000", "--jobs", "2", "--out", "o.csv", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "PYTHONPATH": str(ROOT)})
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
            workers = _children(proc.pid)
        assert len(workers) == 2, "the workers did not start"
        time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 143
        deadline = time.monotonic() + 5  # a stopped worker may take a moment to be reaped
        while any(Path(f"/proc/{w}").exists() for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [w for w in workers if Path(f"/proc/{w}").exists()] == []
    finally:
        for pid in [proc.pid, *workers]:  # whatever the outcome: kill what this test started
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=30)
        err.close()
    assert (folder / "stderr.txt").read_text() == "recipe-compiler: terminated\n"
    assert sorted(p.name for p in folder.iterdir()) == ["d.csv", "plan.json", "stderr.txt"]


@pytest.mark.parametrize("seed", [True, False])
def test_a_bool_seed_is_an_option_error(seed: bool, brandsma: pd.DataFrame) -> None:
    with pytest.raises(rc.OptionError, match=f"seed={seed} is not valid; use a non-negative "
                                             "integer, a numpy.random.SeedSequence or None"):
        rc.impute(brandsma, FORMULA, m=1, maxit=0, seed=seed)
