"""Plans with several grouping factors, built by hand (the compiler for them comes later).

``three_level()``: pupils in classes in schools, ``(1 + x | school:class) + (1 | school)``:
level-1 targets ``y`` (ml.pmm, a random slope of ``x`` over classes) and ``x``
(ml.norm), the class-level target ``w`` (ml.pmm, a random intercept over schools),
the school-level target ``z`` (3lonly.pmm); every level-1 variable's means at both
levels as derived variables, and a centred ``cwc(x, school:class)``.
``crossed()``: ratings in raters crossed with items, ``(1 | rater) + (1 | item)``:
level-1 targets ``y`` and ``x`` and the complete item-level covariate ``a``.

Their R scripts are kept in ``golden_ml/`` (``golden/`` holds the book's only);
rewrite them after a deliberate change with ``python tests/export/ml_plans.py``
and review the diff.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2])]  # this checkout's package first

from recipe_compiler import plan_to_r  # noqa: E402
from recipe_compiler.compiler.options import make_options  # noqa: E402
from recipe_compiler.plan import Cell, Derived, Plan, Variable  # noqa: E402


def _cm(x: str, g: str) -> Derived:
    return Derived(f"cm({x}, {g})", "cm", (x,), detail=g)


def _cells(rows: dict[str, dict[str, int]]) -> tuple[Cell, ...]:
    return tuple(Cell(t, p, code, "hand-built", "test plan")
                 for t, row in rows.items() for p, code in row.items())


def three_level(inner: str = "school:class", school: str = "school") -> Plan:
    """The nested plan; ``inner``: the innermost grouping's name (``"class"`` for unique ids),
    ``school`` the outer one's."""
    derived = (_cm("x", inner), _cm("x", school), _cm("y", inner), _cm("y", school),
               Derived(f"cwc(x, {inner})", "cwc", ("x", f"cm(x, {inner})")))
    variables = (Variable(inner, "cluster", 2, "cluster"),
                 Variable(school, "cluster", 3, "cluster"),
                 Variable("y", "target", 1, "numeric", 10),
                 Variable("x", "target", 1, "numeric", 12),
                 Variable("w", "target", 2, "numeric", 3),
                 Variable("z", "target", 3, "numeric", 2),
                 *(Variable(d.name, "derived", 1, "numeric") for d in derived))
    cx, cy, sx, sy = (f"cm({v}, {g})" for g in (inner, school) for v in "xy")
    rows = {
        "y": {inner: -2, school: -2, "x": 2, "w": 1, "z": 1, cx: 1, sx: 1},
        "x": {inner: -2, school: -2, "y": 1, "w": 1, "z": 1, cy: 1, sy: 1},
        "w": {school: -2, "y": 1, "x": 1, "z": 1, sy: 1, sx: 1},
        "z": {"y": 1, "x": 1, "w": 1},
        cx: {inner: -2, "x": 1}, sx: {school: -2, "x": 1},
        cy: {inner: -2, "y": 1}, sy: {school: -2, "y": 1},
    }
    methods = (("y", "ml.pmm"), ("x", "ml.norm"), ("w", "ml.pmm"), ("z", "3lonly.pmm"),
               *((d.name, d.method) for d in derived))
    visit = ("y", cy, sy, "x", cx, sx, f"cwc(x, {inner})", "w", "z")
    return Plan(formula=f"y ~ x + w + z + cm(x, {school}) + (1 + x | {inner}) + (1 | {school})",
                options=make_options(), cluster=inner, variables=variables,
                method_table=methods, cells=_cells(rows), derived_defs=derived, visit=visit,
                groupings=(inner, school), nesting="nested")


def crossed() -> Plan:
    """The crossed plan (raters x items)."""
    derived = (_cm("x", "rater"), _cm("x", "item"), _cm("y", "rater"), _cm("y", "item"))
    variables = (Variable("rater", "cluster", 2, "cluster"),
                 Variable("item", "cluster", 2, "cluster"),
                 Variable("y", "target", 1, "numeric", 8),
                 Variable("x", "target", 1, "numeric", 9),
                 Variable("a", "covariate", 2, "numeric"),
                 *(Variable(d.name, "derived", 1, "numeric") for d in derived))
    rows = {
        "y": {"rater": -2, "item": -2, "x": 1, "a": 1, "cm(x, rater)": 1, "cm(x, item)": 1},
        "x": {"rater": -2, "item": -2, "y": 1, "a": 1, "cm(y, rater)": 1, "cm(y, item)": 1},
        **{d.name: {d.detail: -2, d.parents[0]: 1} for d in derived},
    }
    methods = (("y", "ml.pmm"), ("x", "ml.norm"), *((d.name, d.method) for d in derived))
    visit = ("y", "cm(y, rater)", "cm(y, item)", "x", "cm(x, rater)", "cm(x, item)")
    return Plan(formula="y ~ x + a + (1 | rater) + (1 | item)", options=make_options(),
                cluster="rater", variables=variables, method_table=methods,
                cells=_cells(rows), derived_defs=derived, visit=visit,
                groupings=("rater", "item"), nesting="crossed")


GOLDEN_DIR = Path(__file__).resolve().parent / "golden_ml"
#: golden file stem -> the plan it is the script of
GOLDEN: dict[str, Callable[[], Plan]] = {
    "three_level_interaction": three_level,
    "three_level_unique_ids": lambda: three_level("class"),
    "crossed": crossed,
}


def render(stem: str) -> str:
    """The script that ``GOLDEN_DIR / f"{stem}.R"`` must hold."""
    return plan_to_r(GOLDEN[stem](), m=5, maxit=10, seed=2024)


if __name__ == "__main__":
    GOLDEN_DIR.mkdir(exist_ok=True)
    for stem in GOLDEN:
        (GOLDEN_DIR / f"{stem}.R").write_text(render(stem), encoding="utf-8")
        print(f"wrote {GOLDEN_DIR / stem}.R")
