"""Rewrite the golden R scripts of ``tests/export/golden`` (run after a deliberate change).

    python tests/export/regenerate_golden.py

``test_r_mice.py`` compares ``rc.plan_to_r(Plan)`` with these files character for
character; review the diff of the rewritten files before committing them.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOLDEN_DIR = HERE / "golden"
sys.path[:0] = [str(HERE.parents[1]), str(HERE.parent / "regression")]

from test_book_matrices import DATA_COLUMNS, SECTIONS  # noqa: E402

import recipe_compiler as rc  # noqa: E402

#: golden file stem -> (FIMD section, flavor, seed of the book's mice() call)
GOLDEN = {
    "section_7.10.5_miceadds": ("7.10.5", "miceadds", 188),
    "section_7.10.7_miceadds": ("7.10.7", "miceadds", 211),
    "section_7.10.5_mice": ("7.10.5", "mice", 188),
}


def book_plan(section: str) -> rc.Plan:
    """The plan of a FIMD 7.10 section, compiled from the book's formula and options."""
    formula, options, *_ = SECTIONS[section]
    return rc.compile(formula, rc.datasets.load_brandsma()[DATA_COLUMNS[section]], **options)


def render(stem: str) -> str:
    """The R script that ``GOLDEN_DIR / f"{stem}.R"`` must hold (m = maxit = 10, as the book)."""
    section, flavor, seed = GOLDEN[stem]
    return rc.plan_to_r(book_plan(section), flavor=flavor, m=10, maxit=10, seed=seed)


def main() -> None:
    """Write every golden file."""
    for stem in GOLDEN:
        path = GOLDEN_DIR / f"{stem}.R"
        path.write_text(render(stem), encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
