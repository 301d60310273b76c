"""Known-truth simulation of issue 15: SMC against FCS and listwise deletion.

Run: ``python benchmarks/smc_simulation.py [--reps 200] [--scenarios slope,moderator]
[--methods listwise,fcs,smc] [--n-jobs 2] [--m 10] [--maxit-fcs 10] [--maxit-smc 20]
[--out benchmarks/results/smc_simulation.md] [--raw estimates.csv]``.

For every scenario of :mod:`recipe_compiler.datasets.simulate` (default 50 clusters of
20, MAR through the auxiliary ``a``) and every replication, the analysis model is fitted
on the complete data (``complete``, before the deletion), on the complete cases
(``listwise``), and pooled over ``m`` imputations from ``rc.impute`` with the compiled
FCS recipe plus the auxiliary (``fcs``) and with ``approach="smc"`` plus the auxiliary
(``smc``). Per scenario, method and fixed effect it reports, over the replications R:

* rel. bias vs truth: ``(mean(est) - truth) / truth``, with its Monte Carlo SE
  ``sd(est) / sqrt(R) / |truth|`` in parentheses;
* rel. bias vs complete-data fit: ``mean(est - est_complete) / truth`` (the
  replication's own complete-data estimate; the paired difference removes the
  sampling noise of the data set), MC SE ``sd(est - est_complete) / sqrt(R) / |truth|``;
* coverage of the 95% interval ``est +- t(0.975, df) se`` (pooled Barnard-Rubin df for
  MI, the complete-data df for single fits); MC SE ``sqrt(0.95 * 0.05 / R)``;
* seconds: mean wall time of one replication's impute + fit + pool (fit for single fits).

Replications run in a process pool (``--n-jobs``); each imputation runs its chains in
one process. Every replication's seeds derive from ``--seed``, the scenario and the
replication number, so results do not depend on ``--n-jobs``, and the data sets of a
scenario are the same in every run with the same ``--seed`` (whatever the methods or
``maxit``). ``--raw FILE`` also writes every estimate to a CSV for re-analysis.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    # replications are small (n = 1000): one BLAS thread each, the pool runs them in parallel
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _replications import error_summary, run_replications  # noqa: E402
from scipy import stats  # noqa: E402

import recipe_compiler as rc  # noqa: E402
from recipe_compiler.datasets.simulate import SCENARIOS, Simulated, simulate  # noqa: E402

METHODS = ("complete", "listwise", "fcs", "smc")
"""Every method the benchmark knows; ``complete`` (the fit before deletion) always runs."""

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Settings:
    """What one replication runs (picklable, sent to the workers)."""

    methods: tuple[str, ...] = ("listwise", "fcs", "smc")
    m: int = 10
    maxit_fcs: int = 10
    maxit_smc: int = 20
    seed: int = 20240615
    n_clusters: int = 50
    cluster_size: int = 20


# ----------------------------------------------------------------------------- one replication


def seeds(settings: Settings, scenario: str, rep: int) -> list[np.random.SeedSequence]:
    """Seeds of the data, the FCS and the SMC imputation of one replication."""
    root = np.random.SeedSequence([settings.seed, list(SCENARIOS).index(scenario), rep])
    return root.spawn(3)


def replicate(scenario: str, rep: int, settings: Settings) -> pd.DataFrame:
    """Simulate one data set and fit it with every method of ``settings``.

    Returns
    -------
    pandas.DataFrame
        One row per method and fixed effect: ``scenario, rep, method, term, truth,
        estimate, std_error, df, complete, seconds, warnings, error`` (``error`` is
        empty unless the method failed, then the estimates are NaN and ``term`` is empty).
    """
    data_seed, fcs_seed, smc_seed = seeds(settings, scenario, rep)
    sim = simulate(scenario, data_seed, n_clusters=settings.n_clusters,
                   cluster_size=settings.cluster_size)
    t0 = time.perf_counter()
    complete = rc.fit_lmm(sim.formula, sim.complete)
    frames = [_rows(sim, rep, "complete", _single(complete), complete.fixef,
                    time.perf_counter() - t0, 0, "")]
    for method in settings.methods:
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                est = _estimate(sim, method, settings, fcs_seed if method == "fcs" else smc_seed)
                error = ""
            except Exception as exc:  # a failing method is a result, not the end of the run
                est, error = pd.DataFrame(), f"{type(exc).__name__}: {exc}".splitlines()[0]
        seconds = time.perf_counter() - t0
        frames.append(_rows(sim, rep, method, est, complete.fixef, seconds, len(caught), error))
    return pd.concat(frames, ignore_index=True)


def _estimate(sim: Simulated, method: str, settings: Settings,
              seed: np.random.SeedSequence) -> pd.DataFrame:
    """``term, estimate, std_error, df`` of one method on one data set."""
    if method == "listwise":
        return _single(rc.fit_lmm(sim.formula, sim.data))
    if method not in ("fcs", "smc"):
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    maxit = settings.maxit_smc if method == "smc" else settings.maxit_fcs
    imp = rc.impute(sim.data, sim.formula, approach=method, auxiliary=list(sim.auxiliary),
                    m=settings.m, maxit=maxit, seed=seed)
    return imp.fit(sim.formula).pool()[["term", "estimate", "std_error", "df"]]


def _single(fit: rc.LMMResult) -> pd.DataFrame:
    return pd.DataFrame({"term": fit.fixef.index, "estimate": fit.fixef.to_numpy(),
                         "std_error": fit.se.to_numpy(), "df": float(fit.df_complete)})


def _rows(sim: Simulated, rep: int, method: str, est: pd.DataFrame, complete: pd.Series,
          seconds: float, n_warnings: int, error: str) -> pd.DataFrame:
    if error:
        est = pd.DataFrame({"term": [""], "estimate": [np.nan], "std_error": [np.nan],
                            "df": [np.nan]})
    out = est.assign(scenario=sim.scenario, rep=rep, method=method,
                     truth=est["term"].map(sim.truth), complete=est["term"].map(complete),
                     seconds=seconds, warnings=n_warnings, error=error)
    return out[["scenario", "rep", "method", "term", "truth", "estimate", "std_error", "df",
                "complete", "seconds", "warnings", "error"]]


# ----------------------------------------------------------------------------- many replications


def run(scenarios: Sequence[str], reps: int, settings: Settings, n_jobs: int = 1,
        progress: bool = True) -> pd.DataFrame:
    """Every replication of every scenario, in a process pool of ``n_jobs`` workers."""
    return run_replications(replicate, scenarios, reps, settings, n_jobs, progress)


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Relative bias (vs truth and vs the complete-data fit), coverage and seconds.

    Returns
    -------
    pandas.DataFrame
        One row per scenario, method and term: ``reps`` (successful replications),
        ``failed``, ``rel_bias``, ``rel_bias_mcse``, ``rel_bias_cd``,
        ``rel_bias_cd_mcse``, ``coverage``, ``seconds``, ``warnings`` (per replication).
    """
    ok = results[results["error"] == ""].copy()
    half = stats.t.ppf(0.975, ok["df"].clip(lower=1e-3)) * ok["std_error"]
    ok["covered"] = (ok["estimate"] - half <= ok["truth"]) & (ok["truth"] <= ok["estimate"] + half)
    ok["diff"] = ok["estimate"] - ok["complete"]
    keys = ["scenario", "method", "term"]
    g = ok.groupby(keys, sort=False)
    reps = g["estimate"].count()
    truth = g["truth"].first().abs()
    out = pd.DataFrame({
        "reps": reps,
        "rel_bias": (g["estimate"].mean() - g["truth"].first()) / truth,
        "rel_bias_mcse": g["estimate"].std() / np.sqrt(reps) / truth,
        "rel_bias_cd": g["diff"].mean() / truth,
        "rel_bias_cd_mcse": g["diff"].std() / np.sqrt(reps) / truth,
        "coverage": g["covered"].mean(),
        "seconds": g["seconds"].mean(),
        "warnings": g["warnings"].mean(),
    }).reset_index()
    failed = (results[results["error"] != ""].groupby(["scenario", "method"]).size()
              .rename("failed"))
    out = out.join(failed, on=["scenario", "method"]).fillna({"failed": 0})
    order = {m: k for k, m in enumerate(METHODS)}
    scen = {s: k for k, s in enumerate(SCENARIOS)}
    return out.sort_values(["scenario", "method"], key=lambda c: c.map(
        scen if c.name == "scenario" else order), kind="stable").reset_index(drop=True)


def markdown(summary: pd.DataFrame, errors: pd.DataFrame | None = None) -> str:
    """The summary as a markdown table (MC standard errors in parentheses)."""
    lines = ["| scenario | method | term | rel. bias vs truth | rel. bias vs complete-data fit "
             "| coverage | seconds |", "|---|---|---|---|---|---|---|"]
    for r in summary.to_dict("records"):
        label = SCENARIOS[str(r["scenario"])].label
        cd = "" if r["method"] == "complete" else \
            f"{100 * r['rel_bias_cd']:+.1f}% ({100 * r['rel_bias_cd_mcse']:.1f})"
        note = f" ({int(r['failed'])} failed)" if r["failed"] else ""
        lines.append(f"| {label} | {r['method']}{note} | `{r['term']}` | "
                     f"{100 * r['rel_bias']:+.1f}% ({100 * r['rel_bias_mcse']:.1f}) | {cd} | "
                     f"{r['coverage']:.3f} | {r['seconds']:.2f} |")
    if errors is not None and len(errors):
        lines.append("")
        for e in errors.to_dict("records"):
            lines.append(f"- {e['scenario']} / {e['method']}: {e['count']} failures, "
                         f"e.g. `{e['error']}`")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated, from {', '.join(SCENARIOS)}")
    parser.add_argument("--methods", default="listwise,fcs,smc",
                        help="comma-separated, from listwise, fcs, smc")
    parser.add_argument("--n-jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--m", type=int, default=Settings.m)
    parser.add_argument("--maxit-fcs", type=int, default=Settings.maxit_fcs)
    parser.add_argument("--maxit-smc", type=int, default=Settings.maxit_smc)
    parser.add_argument("--seed", type=int, default=Settings.seed)
    parser.add_argument("--out", type=Path, default=RESULTS / "smc_simulation.md")
    parser.add_argument("--raw", type=Path, default=None,
                        help="also write every estimate to this CSV (about 8 kB per replication)")
    args = parser.parse_args(argv)
    scenarios = [s for s in args.scenarios.split(",") if s]
    methods = tuple(m for m in args.methods.split(",") if m)
    unknown = [s for s in scenarios if s not in SCENARIOS] + \
        [m for m in methods if m not in METHODS[1:]]
    if unknown:
        parser.error(f"unknown scenario or method: {', '.join(unknown)}")
    settings = Settings(methods=methods, m=args.m, maxit_fcs=args.maxit_fcs,
                        maxit_smc=args.maxit_smc, seed=args.seed)
    t0 = time.perf_counter()
    results = run(scenarios, args.reps, settings, n_jobs=args.n_jobs)
    wall = time.perf_counter() - t0
    command = "python benchmarks/smc_simulation.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    header = (f"`{command.strip()}`: {args.reps} replications per scenario, "
              f"{settings.n_clusters} clusters of {settings.cluster_size}, m = {settings.m}, "
              f"maxit {settings.maxit_fcs} (FCS) / {settings.maxit_smc} (SMC), "
              f"{args.n_jobs} worker(s), {wall / 60:.1f} min wall; python "
              f"{platform.python_version()}, numpy {np.__version__}, recipe_compiler "
              f"{rc.__version__}. Monte Carlo SEs in parentheses (percentage points); "
              f"coverage MC SE {np.sqrt(0.95 * 0.05 / args.reps):.3f}.")
    table = header + "\n\n" + markdown(summarise(results), error_summary(results)) + "\n"
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    print(f"wrote {args.out}", file=sys.stderr)
    if args.raw is not None:
        results.to_csv(args.raw, index=False)
        print(f"wrote {args.raw}", file=sys.stderr)


if __name__ == "__main__":
    main()
