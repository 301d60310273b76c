"""Seconds per update of the categorical two-level samplers against ``2l.bin``.

Run ``python benchmarks/categorical_samplers.py [--repeats 7]``. On one simulated
level-1 target (n rows in G clusters, p fixed columns including the intercept, a
random intercept, 20% missing) it times one warm-started call (one Gibbs sweep
and the imputations) of ``2l.bin`` (two categories), ``2l.polyreg`` at K = 3, 4
and 6 categories and ``2l.polr`` at K = 4. Every sampler runs ``--calls`` calls
per repeat, one call of each in turn so that machine load hits them alike; the
table gives the median over repeats of the process CPU seconds per call (CPU time,
not wall time: on a shared machine other processes inflate wall times unevenly)
and the ratio to ``2l.bin``. The issue's goal: ``2l.polyreg`` at K = 4 below 3x
``2l.bin``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np

from recipe_compiler.data.grouping import Grouping
from recipe_compiler.runtime.samplers.logit_2l import draw_2l_bin
from recipe_compiler.runtime.samplers.multinomial_2l import draw_2l_polyreg
from recipe_compiler.runtime.samplers.ordinal import draw_2l_polr

Step = Callable[[object], object]


def problem(n: int, n_groups: int, p: int, n_categories: int, seed: int) -> dict:
    """A multinomial-logit target with cluster effects; y codes 0..K-1."""
    rng = np.random.default_rng(seed)
    groups = np.sort(rng.integers(0, n_groups, n))
    X = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    eta = X @ rng.normal(scale=0.3, size=(p, n_categories)) + rng.normal(
        size=(n_groups, n_categories))[groups]
    prob = np.exp(eta - eta.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    y = (prob.cumsum(axis=1) < rng.random(n)[:, None]).sum(axis=1).astype(float)
    return {"y": y, "observed": rng.random(n) < 0.8, "X": X, "Z": np.ones((n, 1)),
            "grouping": Grouping(groups, n_groups)}


def steppers(args: argparse.Namespace) -> dict[str, Step]:
    """One warm-started sampler call per entry: ``state -> new state``."""
    rng = np.random.default_rng(1)
    out: dict[str, Step] = {}
    d2 = problem(args.n, args.groups, args.p, 2, 0)
    out["2l.bin"] = lambda s, d=d2: draw_2l_bin(d["y"], d["observed"], d["X"], d["Z"],
                                                d["grouping"], rng, s)[1]
    for k in (3, 4, 6):
        dk = problem(args.n, args.groups, args.p, k, k)
        out[f"2l.polyreg K={k}"] = (
            lambda s, d=dk, k=k: draw_2l_polyreg(d["y"], d["observed"], d["X"], d["Z"],
                                                 d["grouping"], rng, k, s)[1])
    d4 = problem(args.n, args.groups, args.p, 4, 4)
    out["2l.polr K=4"] = lambda s, d=d4: draw_2l_polr(d["y"], d["observed"], d["X"], d["Z"],
                                                      d["grouping"], rng, 4, s)[1]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=4000, help="rows")
    parser.add_argument("--groups", type=int, default=200, help="clusters")
    parser.add_argument("--p", type=int, default=8, help="fixed columns with the intercept")
    parser.add_argument("--calls", type=int, default=50, help="calls per repeat")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    steps = steppers(args)
    states: dict[str, object] = {name: step(None) for name, step in steps.items()}  # warm-up
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.repeats):
        spent = dict.fromkeys(steps, 0.0)
        for _ in range(args.calls):  # round robin: one call of each sampler in turn
            for name, step in steps.items():
                start = time.process_time()
                states[name] = step(states[name])
                spent[name] += time.process_time() - start
        for name in steps:
            times[name].append(spent[name] / args.calls)
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}; "
          f"n={args.n}, G={args.groups}, p={args.p}, 20% missing, median of {args.repeats} "
          f"x {args.calls} calls")
    print("| sampler | CPU ms per update | / 2l.bin |")
    print("|---|---|---|")
    base = statistics.median(times["2l.bin"])
    for name, ts in times.items():
        ms = statistics.median(ts)
        print(f"| {name} | {1e3 * ms:.2f} | {ms / base:.2f} |")


if __name__ == "__main__":
    main()
