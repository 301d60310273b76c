"""Known-truth simulation of issue 14: three-level and crossed designs, FCS against listwise.

Run: ``python benchmarks/ml_simulation.py [--reps 200] [--scenarios three_level,crossed]
[--methods listwise,fcs,fcs_norm,smc] [--mar auxiliary,outcome] [--m 5] [--maxit 10]
[--maxit-smc 200] [--n-jobs 2] [--out benchmarks/results/ml_simulation.md]
[--raw estimates.csv]``.

For every scenario of :mod:`recipe_compiler.datasets.simulate_ml` (pupils in classes in
schools with incomplete ``x``, ``w`` (class) and ``z`` (school) and a random slope at the
class level of ``x`` (``three_level``) or of a complete ``v``
(``three_level_complete_slope``); raters crossed with items with an incomplete ``x``;
MAR through the auxiliary ``a`` or, with ``--mar outcome``, through ``y``) and every
replication, the analysis model is fitted by REML on the complete data (``complete``,
before the deletion), on the complete cases (``listwise``), and on ``m`` imputations
from ``rc.impute`` with the compiled FCS recipe plus the auxiliary, with the default
methods (``fcs``: ``ml.pmm``, ``3lonly.pmm``) and with their normal-model versions
(``fcs_norm``: ``ml.norm``, ``3lonly.norm``), and the model-based imputation
(``smc``: ``approach="smc"`` with the auxiliary, ``--maxit-smc`` sweeps, nested
designs only; not run by default); fixed effects pooled by Rubin's rules,
variance components averaged over the imputations (``mitml::testEstimates``). Per
scenario, method and parameter it reports, over the R successful replications:

* truth and mean estimate;
* rel. bias vs truth: ``(mean(est) - truth) / |truth|``, Monte Carlo SE
  ``sd(est) / sqrt(R) / |truth|`` in parentheses;
* rel. bias vs complete-data fit: ``mean(est - est_complete) / |truth|`` (the
  replication's own complete-data estimate; the paired difference removes the sampling
  noise of the data set), MC SE ``sd(est - est_complete) / sqrt(R) / |truth|``;
* coverage of the 95% interval ``est +- t(0.975, df) se`` for fixed effects (pooled
  Barnard-Rubin df for MI, the complete-data df for single fits); MC SE
  ``sqrt(0.95 * 0.05 / R)``;
* seconds: mean wall time of one replication's impute + fit + pool (fit for single fits).

The goal of issue 14: |rel. bias| < 5% for the pooled fixed effects, < 10% for the
variance components. Every replication's seeds derive from ``--seed``, the scenario and
the replication number, so results do not depend on ``--n-jobs``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
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
from recipe_compiler.analysis.lmm_multi_result import MultiLMMResult  # noqa: E402
from recipe_compiler.analysis.mifit import MIFit  # noqa: E402
from recipe_compiler.datasets.simulate_ml import (  # noqa: E402
    MARS,
    ML_SCENARIOS,
    MLSimulated,
    simulate_ml,
)

METHODS = ("complete", "listwise", "fcs", "fcs_norm", "smc")
"""Every method the benchmark knows; ``complete`` (the fit before deletion) always runs."""

RESULTS = Path(__file__).parent / "results"
COLUMNS = ["scenario", "rep", "method", "kind", "term", "truth", "estimate", "std_error", "df",
           "complete", "seconds", "warnings", "error"]


@dataclass(frozen=True)
class Settings:
    """What one replication runs (picklable, sent to the workers)."""

    methods: tuple[str, ...] = ("listwise", "fcs", "fcs_norm")
    m: int = 5
    maxit: int = 10
    maxit_smc: int = 200
    seed: int = 20261130
    mar: str = "auxiliary"
    sizes: tuple[tuple[str, tuple[int, int, int]], ...] = ()
    """Per scenario ``(name, sizes)``; scenarios not listed use their defaults."""

    def sizes_of(self, scenario: str) -> tuple[int, int, int]:
        """The sizes a scenario is simulated with."""
        return dict(self.sizes).get(scenario, ML_SCENARIOS[scenario].sizes)


# ----------------------------------------------------------------------------- one replication


def replicate(scenario: str, rep: int, settings: Settings) -> pd.DataFrame:
    """Simulate one data set and fit it with every method of ``settings``.

    Returns
    -------
    pandas.DataFrame
        One row per method and parameter (:data:`COLUMNS`; ``kind`` is ``"fixed"`` or
        ``"variance"``, ``std_error`` and ``df`` are NaN for variance components).
        ``error`` is empty unless the method failed; then there is one row with NaN
        estimates and an empty ``term``.
    """
    root = np.random.SeedSequence([settings.seed, list(ML_SCENARIOS).index(scenario), rep])
    data_seed, imp_seed = root.spawn(2)
    sim = simulate_ml(scenario, data_seed, sizes=settings.sizes_of(scenario), mar=settings.mar)
    t0 = time.perf_counter()
    complete = _single(rc.fit_lmm(sim.formula, sim.complete, reml=True))
    reference = complete.set_index("term")["estimate"]
    frames = [_rows(sim, rep, "complete", complete, reference, time.perf_counter() - t0, 0, "")]
    for method in settings.methods:
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                est, error = estimate(sim, method, settings, imp_seed), ""
            except Exception as exc:  # a failing method is a result, not the end of the run
                est, error = pd.DataFrame(), f"{type(exc).__name__}: {exc}".splitlines()[0]
        frames.append(_rows(sim, rep, method, est, reference, time.perf_counter() - t0,
                            len(caught), error))
    return pd.concat(frames, ignore_index=True)


def estimate(sim: MLSimulated, method: str, settings: Settings,
             seed: np.random.SeedSequence) -> pd.DataFrame:
    """``kind, term, estimate, std_error, df`` of one method on one data set (REML)."""
    if method == "listwise":
        return _single(rc.fit_lmm(sim.formula, sim.data, reml=True))
    if method not in METHODS[2:]:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    if method == "smc":
        imp = rc.impute(sim.data, sim.formula, approach="smc", auxiliary=list(sim.auxiliary),
                        m=settings.m, maxit=settings.maxit_smc, seed=seed)
        return _pooled(imp.fit(sim.formula, reml=True))
    plan = rc.compile(sim.formula, sim.data, auxiliary=list(sim.auxiliary))
    if method == "fcs_norm":
        plan = rc.compile(sim.formula, sim.data, auxiliary=list(sim.auxiliary), methods={
            t: plan.methods[t].replace("pmm", "norm") for t in plan.targets})
    imp = rc.impute(sim.data, plan, m=settings.m, maxit=settings.maxit, seed=seed)
    return _pooled(imp.fit(sim.formula, reml=True))


def _pooled(fit: MIFit) -> pd.DataFrame:
    """Pooled fixed effects and averaged variance components of the imputations' fits."""
    fixed = fit.pool()[["term", "estimate", "std_error", "df"]].assign(kind="fixed")
    vc = fit.variance_components()
    return pd.concat([fixed, _variances(vc)], ignore_index=True)


def _single(fit: rc.LMMResult | MultiLMMResult) -> pd.DataFrame:
    fixed = pd.DataFrame({"kind": "fixed", "term": fit.fixef.index,
                          "estimate": fit.fixef.to_numpy(), "std_error": fit.se.to_numpy(),
                          "df": float(fit.df_complete)})
    return pd.concat([fixed, _variances(fit.variance_components())], ignore_index=True)


def _variances(vc: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"kind": "variance", "term": vc.index, "estimate": vc.to_numpy(),
                         "std_error": np.nan, "df": np.nan})


def _rows(sim: MLSimulated, rep: int, method: str, est: pd.DataFrame, reference: pd.Series,
          seconds: float, n_warnings: int, error: str) -> pd.DataFrame:
    if error:
        est = pd.DataFrame({"kind": [""], "term": [""], "estimate": [np.nan],
                            "std_error": [np.nan], "df": [np.nan]})
    truth = sim.truth
    est = est[est["term"].isin(list(truth)) | (est["term"] == "")]  # no ICCs
    out = est.assign(scenario=sim.scenario, rep=rep, method=method,
                     truth=est["term"].map(truth), complete=est["term"].map(reference),
                     seconds=seconds, warnings=n_warnings, error=error)
    return out[COLUMNS]


# ----------------------------------------------------------------------------- many replications


def run(scenarios: Sequence[str], reps: int, settings: Settings, n_jobs: int = 1,
        progress: bool = True) -> pd.DataFrame:
    """Every replication of every scenario, in a process pool of ``n_jobs`` workers."""
    return run_replications(replicate, scenarios, reps, settings, n_jobs, progress)


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean estimate, relative bias (vs truth and vs the complete-data fit), coverage.

    Returns
    -------
    pandas.DataFrame
        One row per scenario, method and parameter: ``kind, truth, mean, reps, failed,
        rel_bias, rel_bias_mcse, rel_bias_cd, rel_bias_cd_mcse, coverage`` (NaN for
        variance components), ``seconds``, ``warnings`` (per replication).
    """
    ok = results[results["error"] == ""].copy()
    half = stats.t.ppf(0.975, ok["df"].clip(lower=1e-3)) * ok["std_error"]
    ok["covered"] = ((ok["estimate"] - half <= ok["truth"])
                     & (ok["truth"] <= ok["estimate"] + half)).where(ok["kind"] == "fixed")
    ok["diff"] = ok["estimate"] - ok["complete"]
    g = ok.groupby(["scenario", "method", "term"], sort=False)
    reps = g["estimate"].count()
    truth = g["truth"].first()
    out = pd.DataFrame({
        "kind": g["kind"].first(), "truth": truth, "mean": g["estimate"].mean(), "reps": reps,
        "rel_bias": (g["estimate"].mean() - truth) / truth.abs(),
        "rel_bias_mcse": g["estimate"].std() / np.sqrt(reps) / truth.abs(),
        "rel_bias_cd": g["diff"].mean() / truth.abs(),
        "rel_bias_cd_mcse": g["diff"].std() / np.sqrt(reps) / truth.abs(),
        "coverage": g["covered"].mean(),
        "seconds": g["seconds"].mean(),
        "warnings": g["warnings"].mean(),
    }).reset_index()
    failed = (results[results["error"] != ""].groupby(["scenario", "method"]).size()
              .rename("failed"))
    out = out.join(failed, on=["scenario", "method"]).fillna({"failed": 0})
    rank = {(s.name, t): k for k, (s, t) in enumerate(
        (s, t) for s in ML_SCENARIOS.values() for t in [*s.fixed, *s.variances])}
    order = [(rank[(s, t)], METHODS.index(m))
             for s, t, m in zip(out["scenario"], out["term"], out["method"], strict=True)]
    return out.iloc[sorted(range(len(out)), key=order.__getitem__)].reset_index(drop=True)


def markdown(summary: pd.DataFrame, errors: pd.DataFrame | None = None) -> str:
    """The summary as markdown, one table per scenario (MC standard errors in parentheses)."""
    lines: list[str] = []
    for scenario, part in summary.groupby("scenario", sort=False):
        lines += ["", f"**{ML_SCENARIOS[str(scenario)].label}** "
                  f"(`{ML_SCENARIOS[str(scenario)].formula}`)", "",
                  "| parameter | truth | method | mean | rel. bias vs truth "
                  "| rel. bias vs complete-data fit | coverage | seconds |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in part.to_dict("records"):
            cd = "" if r["method"] == "complete" else \
                f"{100 * r['rel_bias_cd']:+.1f}% ({100 * r['rel_bias_cd_mcse']:.1f})"
            cover = "" if np.isnan(r["coverage"]) else f"{r['coverage']:.3f}"
            note = f" ({int(r['failed'])} failed)" if r["failed"] else ""
            lines.append(f"| `{r['term']}` | {r['truth']:.3g} | {r['method']}{note} | "
                         f"{r['mean']:.4f} | {100 * r['rel_bias']:+.1f}% "
                         f"({100 * r['rel_bias_mcse']:.1f}) | {cd} | {cover} | "
                         f"{r['seconds']:.2f} |")
    if errors is not None and len(errors):
        lines.append("")
        for e in errors.to_dict("records"):
            lines.append(f"- {e['scenario']} / {e['method']}: {e['count']} failures, "
                         f"e.g. `{e['error']}`")
    return "\n".join(lines[1:])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--scenarios", default=",".join(ML_SCENARIOS),
                        help=f"comma-separated, from {', '.join(ML_SCENARIOS)}")
    parser.add_argument("--methods", default=",".join(Settings.methods),
                        help="comma-separated, from listwise, fcs, fcs_norm, smc")
    parser.add_argument("--mar", default=Settings.mar,
                        help=f"comma-separated, from {', '.join(MARS)}: one table each")
    parser.add_argument("--n-jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--m", type=int, default=Settings.m)
    parser.add_argument("--maxit", type=int, default=Settings.maxit)
    parser.add_argument("--maxit-smc", type=int, default=Settings.maxit_smc,
                        help="sweeps of the smc method (half of them burn-in)")
    parser.add_argument("--seed", type=int, default=Settings.seed)
    parser.add_argument("--out", type=Path, default=RESULTS / "ml_simulation.md")
    parser.add_argument("--raw", type=Path, default=None,
                        help="also write every estimate to this CSV")
    args = parser.parse_args(argv)
    scenarios = [s for s in args.scenarios.split(",") if s]
    methods = tuple(m for m in args.methods.split(",") if m)
    unknown = [s for s in scenarios if s not in ML_SCENARIOS] + \
        [m for m in methods if m not in METHODS[1:]]
    if unknown:
        parser.error(f"unknown scenario or method: {', '.join(unknown)}")
    mars = [m for m in args.mar.split(",") if m]
    if not mars or any(m not in MARS for m in mars):
        parser.error(f"--mar must list some of {', '.join(MARS)}")
    settings = [Settings(methods=methods, m=args.m, maxit=args.maxit, maxit_smc=args.maxit_smc,
                         seed=args.seed, mar=mar) for mar in mars]
    t0 = time.perf_counter()
    results = [run(scenarios, args.reps, s, n_jobs=args.n_jobs) for s in settings]
    wall = time.perf_counter() - t0
    command = "python benchmarks/ml_simulation.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    sizes = "; ".join(
        f"{s}: " + " x ".join(f"{v} {n}" for v, n in zip(
            settings[0].sizes_of(s), ML_SCENARIOS[s].size_names, strict=True))
        for s in scenarios)
    smc_maxit = f" (smc: {args.maxit_smc})" if "smc" in methods else ""
    text = (f"`{command.strip()}`: {args.reps} replications per scenario ({sizes}), "
            f"m = {args.m}, maxit = {args.maxit}{smc_maxit}, REML fits, {args.n_jobs} worker(s), "
            f"{wall / 60:.1f} min wall; python {platform.python_version()}, numpy "
            f"{np.__version__}, recipe_compiler {rc.__version__}. Monte Carlo SEs in "
            f"parentheses (percentage points); coverage (fixed effects) MC SE "
            f"{np.sqrt(0.95 * 0.05 / args.reps):.3f}. Goal: |rel. bias| < 5% for fixed "
            "effects, < 10% for variance components. The data sets of a replication are the "
            "same whatever the missingness driver.\n")
    for mar, res in zip(mars, results, strict=True):
        driver = "the auxiliary `a`" if mar == "auxiliary" else "the outcome `y`"
        text += (f"\n## MAR through {driver}\n\n"
                 + markdown(summarise(res), error_summary(res)) + "\n")
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}", file=sys.stderr)
    if args.raw is not None:
        pd.concat([r.assign(mar=mar) for mar, r in zip(mars, results, strict=True)],
                  ignore_index=True).to_csv(args.raw, index=False)
        print(f"wrote {args.raw}", file=sys.stderr)


if __name__ == "__main__":
    main()
