"""Speed of a three-level imputation of 100,000 rows (issue 14: under 30 s on 2 cores).

Run: ``python benchmarks/ml_scale.py [--sizes 1000 10 10] [--n-jobs 1 2] [--m 5]
[--maxit 10] [--repeats 1] [--out FILE]``.

The data are :func:`recipe_compiler.datasets.simulate_ml.simulate_ml` ``"three_level"``
at ``--sizes`` (schools, classes per school, pupils per class; default 1,000 x 10 x 10 =
100,000 rows): ``y ~ x + w + z + (1 + x | school:class) + (1 | school)`` with the
pupil-level ``x`` (about 34% missing), the class-level ``w`` (about 24% of the classes)
and the school-level ``z`` (about 23% of the schools) incomplete, MAR through the
auxiliary ``a``. For each ``--n-jobs`` it times, ``--repeats`` times (the table shows the
fastest, the machine is shared): ``rc.compile`` (with ``auxiliary=["a"]``),
``rc.impute`` of the compiled plan (``m`` chains of ``maxit`` iterations, ``n_jobs``
processes), and ``imp.fit(formula).pool()`` plus ``variance_components()`` (REML); wall
seconds and the CPU seconds of this process and its workers. BLAS runs one thread unless
``OMP_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` say otherwise.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import ParamSpec, TypeVar  # noqa: E402

import numpy as np  # noqa: E402
from scale import cpu_seconds  # noqa: E402

import recipe_compiler as rc  # noqa: E402
from recipe_compiler.datasets.simulate_ml import simulate_ml  # noqa: E402

P = ParamSpec("P")
T = TypeVar("T")


def timed(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> tuple[T, float, float]:
    """``(result, wall seconds, CPU seconds of this process and its children)``."""
    c0, t0 = cpu_seconds(), time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0, cpu_seconds() - c0


def run(sizes: tuple[int, int, int], n_jobs: int, m: int, maxit: int,
        seed: int) -> dict[str, float]:
    """One timing of compile, impute and fit + pool."""
    sim = simulate_ml("three_level", seed, sizes=sizes)
    plan, compile_s, _ = timed(rc.compile, sim.formula, sim.data, auxiliary=list(sim.auxiliary))
    imp, impute_s, impute_cpu = timed(rc.impute, sim.data, plan, m=m, maxit=maxit, seed=seed,
                                      n_jobs=n_jobs)

    def analyse() -> None:
        fit = imp.fit(sim.formula)
        fit.pool()
        fit.variance_components()

    _, fit_s, fit_cpu = timed(analyse)
    return {"rows": len(sim.data), "compile": compile_s, "impute": impute_s,
            "impute_cpu": impute_cpu, "fit": fit_s, "fit_cpu": fit_cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs=3, default=[1000, 10, 10],
                        metavar=("SCHOOLS", "CLASSES", "PUPILS"))
    parser.add_argument("--n-jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--m", type=int, default=5)
    parser.add_argument("--maxit", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args()
    sizes = (args.sizes[0], args.sizes[1], args.sizes[2])
    lines = [f"three-level imputation, {sizes[0]:,} schools x {sizes[1]} classes x {sizes[2]} "
             f"pupils, m = {args.m}, maxit = {args.maxit}; fastest of {args.repeats}; "
             f"{os.cpu_count()} CPUs, python {platform.python_version()}, numpy "
             f"{np.__version__}, recipe_compiler {rc.__version__}", "",
             "| rows | n_jobs | compile s | impute s (wall) | impute CPU s | fit + pool s "
             "(wall) | fit + pool CPU s | total s |", "|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for n_jobs in args.n_jobs:
        runs = [run(sizes, n_jobs, args.m, args.maxit, args.seed) for _ in range(args.repeats)]
        r = {k: min(x[k] for x in runs) for k in runs[0]}
        line = (f"| {int(r['rows']):,} | {n_jobs} | {r['compile']:.2f} | {r['impute']:.1f} | "
                f"{r['impute_cpu']:.1f} | {r['fit']:.1f} | {r['fit_cpu']:.1f} | "
                f"{r['compile'] + r['impute'] + r['fit']:.1f} |")
        lines.append(line)
        print(line, flush=True)
    if args.out is not None:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
