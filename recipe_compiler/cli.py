"""The ``recipe-compiler`` command line: ``compile``, ``impute`` and ``analyze``.

::

    recipe-compiler compile --example brandsma "lpo ~ iqv + den + (1 | sch)" --r impute.R
    recipe-compiler impute data.csv "lpo ~ iqv + den + (1 | sch)" --m 5 --seed 1 --out imp.csv
    recipe-compiler impute data.csv --plan plan.json --out imp.parquet --plots figures
    recipe-compiler analyze --example brandsma "lpo ~ iqv + (1 | sch)" --m 5 --seed 1

Exit codes: 0 success; 2 bad input (a formula, option, data or plan error, an
unreadable file, bad arguments), with the message on stderr; 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

import recipe_compiler as rc

from .errors import DataError, OptionError, RecipeError
from .export.r_mice import FLAVORS
from .plots import plot_density, plot_predictor_matrix, plot_trace, require_matplotlib

if TYPE_CHECKING:
    from .imputations import Imputations

__all__ = ["main"]

PROG = "recipe-compiler"
EXAMPLES: dict[str, Callable[[], pd.DataFrame]] = {"brandsma": rc.datasets.load_brandsma}
DATA_SUFFIXES = (".csv", ".parquet")


def main(argv: list[str] | None = None) -> int:
    """Run the command line.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after the program name; ``sys.argv[1:]`` by default.

    Returns
    -------
    int
        The exit code: 0 success, 2 bad input, 130 interrupted.
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage or --help
        return exc.code if isinstance(exc.code, int) else 2
    try:
        command: Callable[[argparse.Namespace], None] = args.command
        command(args)
        sys.stdout.flush()  # a closed pipe surfaces here, not at interpreter exit
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (RecipeError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    return 0


# ------------------------------------------------------------------ commands


def _compile(args: argparse.Namespace) -> None:
    data, formula = _inputs(args)
    assert isinstance(formula, str)  # compile has no --plan
    plan = rc.compile(formula, data, **_compile_options(args))
    print(plan)
    if args.spec:
        plan.to_json(args.spec)
        print(f"wrote the plan spec to {args.spec}", file=sys.stderr)
    if args.r:
        Path(args.r).write_text(plan.to_r(flavor=args.flavor), encoding="utf-8")
        print(f"wrote the R script ({args.flavor}) to {args.r}", file=sys.stderr)


def _impute(args: argparse.Namespace) -> None:
    out = Path(args.out)
    if out.suffix.lower() not in DATA_SUFFIXES:
        raise OptionError(f"--out {args.out!r}: the output must be a .csv or .parquet file")
    if not out.parent.is_dir():
        raise OptionError(f"--out {args.out!r}: the folder {str(out.parent)!r} does not exist")
    if out.suffix.lower() == ".parquet":
        _require_parquet()
    if args.plots:
        require_matplotlib()
        if args.maxit < 1:
            raise OptionError("--plots needs iterations to draw trace lines; use --maxit >= 1")
    imp = _run_imputation(args)
    long = imp.complete("long", include=False)
    _write_atomic(long, out)
    print(f"wrote {len(long)} rows ({imp.m} completed data sets, columns .imp, .id and the "
          f"data) to {out}")
    if args.plots:
        folder = Path(args.plots)
        folder.mkdir(parents=True, exist_ok=True)
        for name, fig in (("trace", plot_trace(imp)), ("density", plot_density(imp)),
                          ("predictor_matrix", plot_predictor_matrix(imp.plan))):
            fig.savefig(folder / f"{name}.png")
        print(f"wrote trace.png, density.png and predictor_matrix.png to {folder}")


def _analyze(args: argparse.Namespace) -> None:
    imp = _run_imputation(args)
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


def _run_imputation(args: argparse.Namespace) -> Imputations:
    """``rc.impute`` with the data, model, chain and compile options of ``args``."""
    data, model = _inputs(args)
    return rc.impute(data, model, m=args.m, maxit=args.maxit, seed=args.seed,
                     n_jobs=args.jobs, progress=not args.quiet, **_compile_options(args))


# ------------------------------------------------------------------ input, output


def _inputs(args: argparse.Namespace) -> tuple[pd.DataFrame, str | rc.Plan]:
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


def _write_atomic(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` (CSV or Parquet by suffix) to a temporary file, then rename it.

    On any error or interrupt the temporary file is removed and ``path`` is not
    touched, so a partial output never exists.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if path.suffix.lower() == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def _compile_options(args: argparse.Namespace) -> dict[str, Any]:
    """The compile options given on the command line (only those given)."""
    options: dict[str, Any] = {}
    for name in ("interactions", "centering", "random_slopes", "auxiliary"):
        if getattr(args, name, None) is not None:
            options[name] = getattr(args, name)
    if getattr(args, "method", None):
        methods = {}
        for item in args.method:
            column, sep, method = item.partition("=")
            if not sep or not column or not method:
                raise OptionError(f"--method {item!r} must be COLUMN=METHOD, e.g. lpo=2l.norm")
            methods[column] = method
        options["methods"] = methods
    return options


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
    group.add_argument("--interactions", help="implied (default) or all_pairwise")
    group.add_argument("--centering", help="none (default) or cluster")
    group.add_argument("--random-slopes", dest="random_slopes",
                       help="include (default) or means_only")
    group.add_argument("--auxiliary", nargs="+", metavar="COLUMN",
                       help="columns used only to impute")
    group.add_argument("--method", nargs="+", action="extend", metavar="COLUMN=METHOD",
                       help="method overrides, e.g. lpo=2l.norm")

    chains = argparse.ArgumentParser(add_help=False)
    group = chains.add_argument_group("imputation")
    group.add_argument("--m", type=int, default=5, help="number of imputations (default 5)")
    group.add_argument("--maxit", type=int, default=10, help="iterations (default 10)")
    group.add_argument("--seed", type=int, help="random seed (for reproducible results)")
    group.add_argument("--jobs", type=int, default=1, help="processes for the chains")
    group.add_argument("--quiet", action="store_true", help="no progress bar")

    sub = commands.add_parser(
        "compile", parents=[data, options], help="print the imputation plan of a model",
        usage=f"{PROG} compile (DATA | --example NAME) FORMULA [options]")
    sub.add_argument("--spec", metavar="FILE", help="write the plan as a JSON spec")
    sub.add_argument("--r", metavar="FILE", help="write an R script that runs the plan in mice")
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
    sub.add_argument("--reml", action="store_true", help="fit by REML (default: ML)")
    sub.set_defaults(command=_analyze)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
