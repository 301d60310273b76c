"""Fit times of the multi-term LMM fitter against lme4: nested, crossed and large designs.

Run ``python benchmarks/lmm_multi_fit.py [--repeats 20] [--big-repeats 3]`` (package
installed, or ``PYTHONPATH=.`` from the repository root). It prints one table:

* the eight reference fits of ``tests/regression/data/lme4_multilevel.json`` (a
  three-level and a crossed design, ML and REML): the median wall time of our fit from
  the DataFrame (:func:`~recipe_compiler.analysis.design.build_design` for the fixed part,
  :func:`~recipe_compiler.analysis.lmm_multi.multi_design`, then
  :func:`~recipe_compiler.analysis.lmm_multi.fit_multi`, i.e. data to result as
  ``lmer`` does) and of ``fit_multi`` alone, lme4's recorded median (``lmer`` from the
  data frame, 20 fits) and the log-likelihood difference ours - lme4;
* the 100,000-row three-level design of :func:`three_level` (1,000 schools x 10
  classes x 10 pupils, ``y ~ x + w + z + (1 + x | school:class) + (1 | school)``), ML
  and REML, and the 50,000-row crossed design of :func:`crossed_large` (2,000 raters x
  500 items, ``y ~ x + (1 | rater) + (1 | item)``), ML, against lme4's recorded medians
  of 3 fits.

BLAS runs one thread (``OPENBLAS_NUM_THREADS=1`` unless set otherwise), as R's
reference BLAS does; on a busy 2-core machine multi-threaded OpenBLAS stalls (the
crossed design then takes several times longer). lme4's times were measured once on
this project's machine kind (2 cores) with R 4.2.2 and lme4 1.1-31, by the script in
the docstring of ``tests/regression/test_lme4_multilevel.py``; the large designs were
written for it with ``--write-csv DIR`` (``big.csv``, ``big_crossed.csv``).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _timing import median_seconds  # noqa: E402

from recipe_compiler.analysis.design import build_design  # noqa: E402
from recipe_compiler.analysis.lmm_multi import TermSpec, fit_multi, multi_design  # noqa: E402
from recipe_compiler.analysis.lmm_multi_result import MultiLMMResult  # noqa: E402

DATA = Path(__file__).parents[1] / "tests" / "regression" / "data"
SPECS: dict[str, tuple[str, list[TermSpec]]] = {
    "nested_intercepts": ("y ~ x + w + z + (1 | school)", [(["1"], "school/class")]),
    "nested_slope": ("y ~ x + w + z + (1 | school)",
                     [(["1", "x"], "school:class"), (["1"], "school")]),
    "crossed_intercepts": ("y ~ x + (1 | rater)", [(["1"], "rater"), (["1"], "item")]),
    "crossed_slope": ("y ~ x + (1 | rater)", [(["1", "x"], "rater"), (["1"], "item")]),
}


def three_level(seed: int = 20240615, schools: int = 1000, classes: int = 10,
                pupils: int = 10) -> pd.DataFrame:
    """Pupils in classes in schools: a random intercept and ``x`` slope per class
    (variances 1 and 0.25, covariance 0.2), a random intercept per school (0.8),
    residual variance 4; ``w`` a class and ``z`` a school covariate."""
    rng = np.random.default_rng(seed)
    n_class = schools * classes
    school = np.repeat(np.arange(schools), classes * pupils)
    klass = np.tile(np.repeat(np.arange(classes), pupils), schools)
    cid = school * classes + klass
    x = rng.normal(size=school.size) + 0.5 * rng.normal(size=n_class)[cid]
    w = rng.normal(size=n_class)[cid]
    z = rng.normal(size=schools)[school]
    u = rng.multivariate_normal([0.0, 0.0], [[1.0, 0.2], [0.2, 0.25]], n_class)
    y = (10 + 2 * x + 0.5 * w - z + rng.normal(0, np.sqrt(0.8), schools)[school]
         + u[cid, 0] + u[cid, 1] * x + rng.normal(0, 2, school.size))
    return pd.DataFrame({"school": school, "class": klass, "x": x, "w": w, "z": z, "y": y})


def crossed_large(seed: int = 20240616, raters: int = 2000, items: int = 500,
                  n: int = 50_000) -> pd.DataFrame:
    """``n`` ratings of random (rater, item) pairs: rater variance 1, item 0.25, residual 1."""
    rng = np.random.default_rng(seed)
    rater, item = rng.integers(0, raters, n), rng.integers(0, items, n)
    x = rng.normal(size=n)
    y = (1 + x + rng.normal(size=raters)[rater] + rng.normal(0, 0.5, items)[item]
         + rng.normal(size=n))
    return pd.DataFrame({"rater": rater, "item": item, "x": x, "y": y})


LARGE: dict[str, tuple[Callable[[], pd.DataFrame], str, list[TermSpec], tuple[bool, ...]]] = {
    "_three_level_100k": (three_level, *SPECS["nested_slope"], (False, True)),
    "_crossed_50k": (crossed_large, *SPECS["crossed_intercepts"], (False,)),
}


def from_frame(formula: str, specs: list[TermSpec], data: pd.DataFrame,
               reml: bool) -> Callable[[], MultiLMMResult]:
    """Our fit from the data frame: fixed design, random-effects terms, fit."""
    return lambda: fit_multi(multi_design(build_design(formula, data), data, specs), reml=reml)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed fits per model")
    parser.add_argument("--big-repeats", type=int, default=3, help="timed fits of large designs")
    parser.add_argument("--write-csv", type=Path, metavar="DIR",
                        help="write the large designs into DIR and stop")
    args = parser.parse_args()
    if args.write_csv:
        three_level().to_csv(args.write_csv / "big.csv", index=False)
        crossed_large().to_csv(args.write_csv / "big_crossed.csv", index=False)
        return
    reference = json.loads((DATA / "lme4_multilevel.json").read_text())
    rows = []
    for name, ref in reference.items():
        if name.startswith("_"):
            continue
        formula, specs = SPECS[name.rsplit("_", 1)[0]]
        data = pd.read_csv(DATA / f"lme4_multilevel_{ref['data']}.csv")
        reml = ref["reml"]
        design = multi_design(build_design(formula, data), data, specs)
        ours = median_seconds(from_frame(formula, specs, data, reml), args.repeats)
        rows.append({"model": name, "ours_ms": 1000 * ours,
                     "fit_multi_ms": 1000 * median_seconds(
                         lambda d=design, r=reml: fit_multi(d, reml=r), args.repeats),
                     "lme4_ms": ref["lme4_median_ms"],
                     "lme4/ours": ref["lme4_median_ms"] / (1000 * ours),
                     "dloglik_vs_lme4": fit_multi(design, reml=reml).loglik - ref["loglik"]})
    for key, (make, formula, specs, fits) in LARGE.items():
        data, ref = make(), reference[key]
        for reml in fits:
            kind = "reml" if reml else "ml"
            run = from_frame(formula, specs, data, reml)
            ours = median_seconds(run, args.big_repeats)
            lme4_ms = ref[f"lme4_median_ms_{kind}"]
            rows.append({"model": f"{key[1:]}_{kind}", "ours_ms": 1000 * ours,
                         "fit_multi_ms": np.nan, "lme4_ms": lme4_ms,
                         "lme4/ours": lme4_ms / (1000 * ours),
                         "dloglik_vs_lme4": run().loglik - ref[f"loglik_{kind}"]})
    table = pd.DataFrame(rows).set_index("model")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
