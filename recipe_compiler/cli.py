"""The ``recipe-compiler`` command line: ``compile``, ``impute`` and ``analyze``.

::

    recipe-compiler compile --example brandsma "lpo ~ iqv + den + (1 | sch)" --r impute.R
    recipe-compiler impute data.csv "lpo ~ iqv + den + (1 | sch)" --m 5 --seed 1 --out imp.csv
    recipe-compiler impute data.csv --plan plan.json --out imp.parquet --plots figures
    recipe-compiler analyze --example brandsma "lpo ~ iqv + (1 | sch)" --m 5 --seed 1

``analyze`` fits the analysis model by REML, as lme4's ``lmer`` and ``imp.fit`` do;
``--ml`` fits it by maximum likelihood (as the book does).

Exit codes: 0 success; 2 bad input (a formula, option, data or plan error, an
unreadable file, bad arguments, an output that would overwrite an input), with
the message on stderr and no traceback; 130 interrupted (Ctrl-C, SIGINT); 143
terminated (SIGTERM, handled like Ctrl-C: the worker processes are stopped).

Outputs are written atomically (a temporary file in the same folder, then a
rename), so an error or interrupt leaves an existing output as it was; a
replaced file keeps its permissions, a new one gets ``0o666 & ~umask``. An
output that is a symbolic link keeps the link: its target is replaced.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import signal
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import pandas as pd

import recipe_compiler as rc

from .errors import DataError, OptionError, RecipeError
from .export.plan_files import save_plan
from .export.r_jomo import plan_to_jomo
from .export.r_mice import FLAVORS, plan_to_r
from .plots import plot_density, plot_predictor_matrix, plot_trace, require_matplotlib

if TYPE_CHECKING:
    from .imputations import Imputations

__all__ = ["main"]

PROG = "recipe-compiler"
EXAMPLES: dict[str, Callable[[], pd.DataFrame]] = {"brandsma": rc.datasets.load_brandsma}
DATA_SUFFIXES = (".csv", ".parquet")
#: Columns that the long output of ``impute --out`` adds in front of the data.
LONG_COLUMNS = (".imp", ".id")
PLOTS = ("trace", "density", "predictor_matrix")


def main(argv: list[str] | None = None) -> int:
    """Run the command line.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after the program name; ``sys.argv[1:]`` by default.

    Returns
    -------
    int
        The exit code: 0 success, 2 bad input, 130 interrupted, 143 terminated.
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage or --help
        return exc.code if isinstance(exc.code, int) else 2
    try:
        with _sigterm_as_interrupt():
            command: Callable[[argparse.Namespace], None] = args.command
            command(args)
            sys.stdout.flush()  # a closed pipe surfaces here, not at interpreter exit
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        print(f"{PROG}: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return 128 + signal.SIGTERM if terminated else 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (RecipeError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that it takes the path of Ctrl-C."""


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While the context runs, SIGTERM raises :class:`Terminated` in this process.

    The interrupt path then stops the worker processes and removes temporary
    files. Workers forked meanwhile inherit the handler; in them it restores the
    default action and signals again, so that a terminated worker still dies.
    Outside the main thread (where no handler can be set) nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pid = os.getpid()

    def handler(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != pid:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ------------------------------------------------------------------ commands


def _compile(args: argparse.Namespace) -> None:
    for option in ("spec", "r"):
        if getattr(args, option):
            _check_output_file(f"--{option}", getattr(args, option))
    data, formula = _inputs(args)
    assert isinstance(formula, str)  # compile has no --plan
    _check_distinct(args, [(f"--{o}", getattr(args, o)) for o in ("spec", "r")
                           if getattr(args, o)])
    plan = rc.compile(formula, data, **_compile_options(args))
    script = ""  # made before any write: it may fail
    if args.r:
        script = (plan_to_jomo(plan) if isinstance(plan, rc.ModelPlan)
                  else plan_to_r(plan, flavor=args.flavor))
    print(plan)
    if args.spec:
        _write_atomic(args.spec, functools.partial(save_plan, plan))
        print(f"wrote the plan spec to {args.spec}", file=sys.stderr)
    if args.r:
        _write_atomic(args.r, lambda tmp: Path(tmp).write_text(script, encoding="utf-8"))
        print(f"wrote the R script ({args.flavor}) to {args.r}", file=sys.stderr)


def _impute(args: argparse.Namespace) -> None:
    out = Path(args.out)
    if out.suffix.lower() not in DATA_SUFFIXES:
        raise OptionError(f"--out {args.out!r}: the output must be a .csv or .parquet file")
    _check_output_file("--out", args.out)
    if out.suffix.lower() == ".parquet":
        _require_parquet()
    outputs = [("--out", args.out)]
    if args.plots:
        require_matplotlib()
        if args.maxit is not None and args.maxit < 1:
            raise OptionError("--plots needs iterations to draw trace lines; use --maxit >= 1")
        if os.path.exists(args.plots) and not os.path.isdir(args.plots):
            raise OptionError(f"--plots {args.plots!r} is a file; give a folder (it is created "
                              "if missing)")
        outputs += [("--plots", args.plots),
                     *(("--plots", os.path.join(args.plots, f"{n}.png")) for n in PLOTS)]
    data, model = _inputs(args)
    _check_distinct(args, outputs)
    taken = [c for c in LONG_COLUMNS if c in data.columns]
    if taken:
        raise DataError(f"the data have a column {taken[0]!r}, and the long output of --out "
                        f"adds the columns {' and '.join(LONG_COLUMNS)} in front of the data; "
                        "rename that column first")
    imp = _run_imputation(args, data, model)
    long = imp.complete("long", include=False)
    _write_atomic(out, lambda tmp: _write_frame(long, tmp, out.suffix.lower()))
    print(f"wrote {len(long)} rows ({imp.m} completed data sets, columns .imp, .id and the "
          f"data) to {out}")
    if args.plots:
        folder = Path(args.plots)
        folder.mkdir(parents=True, exist_ok=True)
        matrix = plot_predictor_matrix(imp.plan) if isinstance(imp.plan, rc.Plan) else None
        written = []  # a model-based (SMC) plan has no predictor matrix
        for name, fig in zip(PLOTS, (plot_trace(imp), plot_density(imp), matrix), strict=True):
            if fig is not None:
                _write_atomic(folder / f"{name}.png", functools.partial(fig.savefig, format="png"))
                written.append(f"{name}.png")
        print(f"wrote {', '.join(written[:-1])} and {written[-1]} to {folder}")


def _analyze(args: argparse.Namespace) -> None:
    imp = _run_imputation(args, *_inputs(args))
    formula = args.analysis or imp.plan.formula
    fit = imp.fit(formula, reml=args.reml)
    print(f"Analysis model: {formula}  ({imp.m} imputations, "
          f"{'REML' if args.reml else 'ML'})")
    print()
    print("Pooled fixed effects (Rubin's rules):")
    pooled = fit.pool()
    print(pooled.to_string(index=not isinstance(pooled.index, pd.RangeIndex)))
    print()
    print("Pooled variance components:")
    print(fit.variance_components().to_string())


def _run_imputation(args: argparse.Namespace, data: pd.DataFrame,
                    model: str | rc.Plan | rc.ModelPlan) -> Imputations:
    """``rc.impute`` of ``data`` and ``model`` with the chain and compile options of ``args``."""
    return rc.impute(data, model, m=args.m, maxit=args.maxit, seed=args.seed,
                     n_jobs=args.jobs, progress=not args.quiet, **_compile_options(args))


# ------------------------------------------------------------------ input, output


def _inputs(args: argparse.Namespace) -> tuple[pd.DataFrame, str | rc.Plan | rc.ModelPlan]:
    """The data and the model (formula text, or the plan of ``--plan``) of the arguments."""
    plan_path = getattr(args, "plan", None)
    wanted = ["DATA"] if args.example is None else []
    if plan_path is None:
        wanted.append("FORMULA")
    if len(args.inputs) != len(wanted):
        replaced = [o for o, v in (("--example", args.example), ("--plan", plan_path)) if v]
        context = f"with {' and '.join(replaced)}, " if replaced else ""
        got = ", ".join(repr(a) for a in args.inputs) or "none"
        raise OptionError(f"{context}expected {' and '.join(wanted) or 'no positional argument'}"
                          f"; got {len(args.inputs)}: {got}")
    data = EXAMPLES[args.example]() if args.example else _read_data(args.inputs[0])
    return data, args.inputs[-1] if plan_path is None else rc.load_plan(plan_path)


def _read_data(path: str) -> pd.DataFrame:
    suffix = Path(path).suffix.lower()
    if suffix not in DATA_SUFFIXES:
        raise DataError(f"DATA {path!r} must be a .csv or .parquet file (or use --example "
                        "brandsma)")
    if suffix == ".parquet":
        _require_parquet()
    try:
        return pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the data file {path!r}: {exc}") from exc


def _require_parquet() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError as exc:
        raise OptionError("Parquet files need pyarrow, which is not installed; install it "
                          "with pip install \"recipe_compiler[parquet]\"") from exc


def _check_output_file(option: str, path: str) -> None:
    """An output file's folder must exist and the path must not be a folder."""
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise OptionError(f"{option} {path!r}: the folder {folder!r} does not exist")
    if os.path.isdir(path):
        raise OptionError(f"{option} {path!r} is a folder; give a file name")


def _check_distinct(args: argparse.Namespace, outputs: list[tuple[str, str]]) -> None:
    """No output may be an input (DATA, ``--plan``) or another output, also through links.

    Call after :func:`_inputs`, which has checked the positional arguments.
    """
    files = [("input DATA", args.inputs[0])] if args.example is None else []
    if getattr(args, "plan", None):
        files.append(("input --plan", args.plan))
    for option, path in outputs:
        for what, other in files:
            if _same_file(path, other):
                raise OptionError(f"{option} {path!r} is the same file as the {what} "
                                  f"{other!r}; writing it would destroy that file, so choose "
                                  "another name")
        files.append((f"output {option}", path))


def _same_file(a: str, b: str) -> bool:
    """Whether paths ``a`` and ``b`` name one file: equal resolved paths, or one inode."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def _write_frame(frame: pd.DataFrame, path: str, suffix: str) -> None:
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)


def _write_atomic(path: str | Path, write: Callable[[str], object]) -> None:
    """Make ``path`` by ``write(temporary path)`` in the same folder and a rename.

    On any error or interrupt the temporary file is removed and ``path`` is not
    touched, so a partial output never exists. A symbolic link at ``path`` is
    kept and its target replaced. The file gets the permissions of the file it
    replaces, or else ``0o666 & ~umask``, as a file that ``open`` creates.
    """
    target = Path(os.path.realpath(path))
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _mode_of(target))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def _mode_of(path: Path) -> int:
    """The permission bits of the existing file ``path``, else those of a new file."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _compile_options(args: argparse.Namespace) -> dict[str, Any]:
    """The compile options given on the command line (only those given)."""
    options: dict[str, Any] = {}
    for name in ("approach", "interactions", "centering", "random_slopes", "auxiliary",
                 "categorical"):
        if getattr(args, name, None) is not None:
            options[name] = getattr(args, name)
    if getattr(args, "level", None):
        options["levels"] = _column_values(args.level, "level", "schavg=2")
    if getattr(args, "method", None):
        options["methods"] = _column_values(args.method, "method", "lpo=2l.norm")
    return options


def _column_values(items: list[str], flag: str, example: str) -> dict[str, str]:
    """The ``COLUMN=VALUE`` items of the repeated option ``--flag``, by column."""
    values = {}
    for item in items:
        column, sep, value = item.partition("=")
        if not sep or not column or not value:
            raise OptionError(f"--{flag} {item!r} must be COLUMN={flag.upper()}, e.g. {example}")
        values[column] = value
    return values


# ------------------------------------------------------------------ parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Compile a mixed model into its multilevel imputation model "
        "(FIMD section 7.10), impute, analyze and pool.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {rc.__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    data = argparse.ArgumentParser(add_help=False)
    data.add_argument("--example", choices=sorted(EXAMPLES),
                      help="use a bundled data set instead of DATA")
    data.add_argument("inputs", nargs="*", metavar="DATA FORMULA",
                      help="the data (.csv or .parquet) and the analysis model, lme4 style: "
                      "'lpo ~ iqv + den + (1 | sch)'")

    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("compile options")
    group.add_argument("--approach", choices=("fcs", "smc"),
                       help="fcs: the FIMD recipes (default); smc: model-based imputation whose "
                       "outcome model is the analysis model")
    group.add_argument("--interactions", help="implied (default) or all_pairwise")
    group.add_argument("--centering", help="none (default) or cluster")
    group.add_argument("--random-slopes", dest="random_slopes",
                       help="include (default) or means_only")
    group.add_argument("--auxiliary", nargs="+", metavar="COLUMN",
                       help="columns used only to impute")
    group.add_argument("--method", nargs="+", action="extend", metavar="COLUMN=METHOD",
                       help="method overrides, e.g. lpo=2l.norm")
    group.add_argument("--categorical", nargs="+", action="extend", metavar="COLUMN",
                       help="columns to treat as categorical (as C(COLUMN) in the formula)")
    group.add_argument("--level", nargs="+", action="extend", metavar="COLUMN=LEVEL",
                       help="declared levels (1 or 2) overriding inference, e.g. schavg=2")

    chains = argparse.ArgumentParser(add_help=False)
    group = chains.add_argument_group("imputation")
    group.add_argument("--m", type=int, default=5, help="number of imputations (default 5)")
    group.add_argument("--maxit", type=int,
                       help="iterations (default 10 with --approach fcs, 50 with smc)")
    group.add_argument("--seed", type=int, help="random seed (for reproducible results)")
    group.add_argument("--jobs", type=int, default=1, help="processes for the chains")
    group.add_argument("--quiet", action="store_true", help="no progress bar")

    sub = commands.add_parser(
        "compile", parents=[data, options], help="print the imputation plan of a model",
        usage=f"{PROG} compile (DATA | --example NAME) FORMULA [options]")
    sub.add_argument("--spec", metavar="FILE", help="write the plan as a JSON spec")
    sub.add_argument("--r", metavar="FILE", help="write an R script that runs the plan in mice "
                     "(with --approach smc: in jomo, jomo.lmer)")
    sub.add_argument("--flavor", choices=FLAVORS, default="miceadds",
                     help="R methods: miceadds (the book's, default) or mice only")
    sub.set_defaults(command=_compile)

    sub = commands.add_parser(
        "impute", parents=[data, options, chains], help="impute and write the completed data",
        usage=f"{PROG} impute (DATA | --example NAME) (FORMULA | --plan SPEC) --out FILE "
        "[options]")
    sub.add_argument("--plan", metavar="SPEC", help="a plan spec (JSON) instead of FORMULA")
    sub.add_argument("--out", required=True, metavar="FILE",
                     help="completed data in long format (.csv or .parquet)")
    sub.add_argument("--plots", metavar="DIR",
                     help="write trace.png, density.png and predictor_matrix.png to DIR")
    sub.set_defaults(command=_impute)

    sub = commands.add_parser(
        "analyze", parents=[data, options, chains],
        help="impute, fit the mixed model on each data set and pool",
        usage=f"{PROG} analyze (DATA | --example NAME) FORMULA [options]")
    sub.add_argument("--analysis", metavar="FORMULA",
                     help="the model to fit, if not FORMULA (e.g. with cm() terms)")
    how = sub.add_mutually_exclusive_group()
    how.add_argument("--reml", dest="reml", action="store_true", default=True,
                     help="fit by restricted maximum likelihood (the default, as lme4's lmer)")
    how.add_argument("--ml", dest="reml", action="store_false",
                     help="fit by maximum likelihood (as the book; to compare fixed effects)")
    sub.set_defaults(command=_analyze)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
