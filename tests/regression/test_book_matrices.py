"""The seven predictor matrices of FIMD section 7.10, compiled from the formula alone.

The book matrices are transcribed from the seed text (section 7.10, van Buuren,
*Flexible Imputation of Missing Data*, 2nd ed.) and the R scripts in
``shared/reference/R`` that ran them, e.g. for 7.10.5::

    pred["lpo", c("iqv", "sex", "iqd.sex", "sex.den", "iqd.den",
                  "den", "iqm.den", "sxm.den")] <- c(3, 3, 1, 1, 1, 1, 1, 1)

Book names are mapped to this project's canonical names explicitly.
"""

from __future__ import annotations

import pandas as pd
import pytest

import recipe_compiler as rc

BOOK_NAMES = {
    "iqm": "cm(iqv)", "lpm": "cm(lpo)", "sxm": "cm(sex)", "sem": "cm(ses)",
    "iqd": "cwc(iqv)", "lpd": "cwc(lpo)",
    "iqd.sex": "cwc(iqv):sex", "lpd.sex": "cwc(lpo):sex", "iqd.lpd": "cwc(lpo):cwc(iqv)",
    "iqd.den": "cwc(iqv):den", "sex.den": "sex:den", "lpd.den": "cwc(lpo):den",
    "iqm.den": "cm(iqv):den", "sxm.den": "cm(sex):den", "lpm.den": "cm(lpo):den",
    "iqv.ses": "iqv:ses", "ses.lpo": "lpo:ses", "iqv.lpo": "lpo:iqv",
    "iqv.iqm": "iqv:cm(iqv)", "ses.sem": "ses:cm(ses)", "lpo.lpm": "lpo:cm(lpo)",
    "iqv.sem": "iqv:cm(ses)", "iqv.lpm": "cm(lpo):iqv", "ses.iqm": "cm(iqv):ses",
    "ses.lpm": "cm(lpo):ses", "lpo.iqm": "lpo:cm(iqv)", "lpo.sem": "lpo:cm(ses)",
    "iqm.sem": "cm(iqv):cm(ses)", "lpm.sem": "cm(lpo):cm(ses)", "iqm.lpm": "cm(lpo):cm(iqv)",
}

F7107 = ("lpo ~ iqv*ses + cm(iqv)*cm(ses) + iqv*cm(iqv) + iqv*cm(ses) + ses*cm(iqv) "
         "+ ses*cm(ses) + (1 + ses + iqv | sch)")

# section: (formula, options, {target: {book predictor: code}}, methods, book derived names)
SECTIONS = {
    "7.10.1": ("lpo ~ 1 + (1 | sch)", {}, {"lpo": {"sch": -2}}, {"lpo": "2l.pmm"}, []),
    "7.10.2": ("lpo ~ iqv + (1 | sch)", {},
               {"lpo": {"sch": -2, "iqv": 3}, "iqv": {"sch": -2, "lpo": 3}},
               {"lpo": "2l.pmm", "iqv": "2l.pmm"}, []),
    "7.10.3": ("lpo ~ iqv + cm(iqv) + (1 | sch)", {},
               {"lpo": {"sch": -2, "iqv": 3}, "iqv": {"sch": -2, "lpo": 3}},
               {"lpo": "2l.pmm", "iqv": "2l.pmm"}, []),
    "7.10.4": ("lpo ~ iqv + den + (1 | sch)", {},
               {"lpo": {"sch": -2, "iqv": 3, "den": 1}, "iqv": {"sch": -2, "lpo": 3, "den": 1},
                "den": {"sch": -2, "lpo": 1, "iqv": 1}},
               {"lpo": "2l.pmm", "iqv": "2l.pmm", "den": "2lonly.pmm"}, []),
    "7.10.5": ("lpo ~ iqv*sex + cm(iqv)*den + sex*den + (1 | sch)",
               {"interactions": "all_pairwise", "centering": "cluster"},
               {"lpo": dict(zip(["sch", "iqv", "sex", "iqd.sex", "sex.den", "iqd.den", "den",
                                 "iqm.den", "sxm.den"], [-2, 3, 3, 1, 1, 1, 1, 1, 1], strict=True)),
                "iqv": dict(zip(["sch", "lpo", "sex", "lpd.sex", "sex.den", "lpd.den", "den",
                                 "lpm.den", "sxm.den"], [-2, 3, 3, 1, 1, 1, 1, 1, 1], strict=True)),
                "sex": dict(zip(["sch", "lpo", "iqv", "iqd.lpd", "lpd.den", "iqd.den", "den",
                                 "iqm.den", "lpm.den"], [-2, 3, 3, 1, 1, 1, 1, 1, 1], strict=True)),
                "den": dict(zip(["sch", "lpo", "iqv", "sex", "iqd.sex", "lpd.sex", "iqd.lpd"],
                                [-2, 1, 1, 1, 1, 1, 1], strict=True))},
               {"lpo": "2l.pmm", "iqv": "2l.pmm", "sex": "2l.pmm", "den": "2lonly.pmm"},
               ["lpm", "iqm", "sxm", "iqd", "lpd", "iqd.sex", "lpd.sex", "iqd.lpd", "iqd.den",
                "sex.den", "lpd.den", "iqm.den", "sxm.den", "lpm.den"]),
    "7.10.6": ("lpo ~ iqv + cm(iqv) + (1 + iqv | sch)", {},
               {"lpo": {"sch": -2, "iqv": 4}, "iqv": {"sch": -2, "lpo": 4}},
               {"lpo": "2l.pmm", "iqv": "2l.pmm"}, []),
    "7.10.7": (F7107, {"interactions": "implied", "centering": "none",
                       "random_slopes": "means_only"},
               # the book's transposed matrix: columns lpo, iqv, ses
               {t: {p: c for p, c in zip(
                   ["sch", "lpo", "iqv", "ses", "iqv.ses", "ses.lpo", "iqv.lpo", "iqv.iqm",
                    "ses.sem", "lpo.lpm", "iqv.sem", "iqv.lpm", "ses.iqm", "ses.lpm", "lpo.iqm",
                    "lpo.sem", "iqm.sem", "lpm.sem", "iqm.lpm"], col, strict=True) if c}
                for t, col in zip(["lpo", "iqv", "ses"], zip(
                    [-2, -2, -2], [0, 3, 3], [3, 0, 3], [3, 3, 0], [1, 0, 0], [0, 1, 0],
                    [0, 0, 1], [1, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 0], [0, 0, 1],
                    [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0], [0, 1, 0],
                    [0, 0, 1], strict=True), strict=True)},
               {"lpo": "2l.pmm", "iqv": "2l.pmm", "ses": "2l.pmm"},
               ["iqv.ses", "ses.lpo", "iqv.lpo", "lpm", "iqm", "sem", "iqv.iqm", "ses.sem",
                "lpo.lpm", "iqv.sem", "iqv.lpm", "ses.iqm", "ses.lpm", "lpo.iqm", "lpo.sem",
                "iqm.sem", "lpm.sem", "iqm.lpm"]),
}

DATA_COLUMNS = {"7.10.1": ["sch", "lpo"], "7.10.2": ["sch", "lpo", "iqv"],
                "7.10.3": ["sch", "lpo", "iqv"], "7.10.4": ["sch", "lpo", "iqv", "den"],
                "7.10.5": ["sch", "lpo", "iqv", "sex", "den"],
                "7.10.6": ["sch", "lpo", "iqv"], "7.10.7": ["sch", "lpo", "iqv", "ses"]}


def ours(name: str) -> str:
    return BOOK_NAMES.get(name, name)


@pytest.fixture(scope="module")
def brandsma() -> pd.DataFrame:
    return rc.datasets.load_brandsma()


@pytest.fixture(scope="module", params=sorted(SECTIONS))
def compiled(request: pytest.FixtureRequest, brandsma: pd.DataFrame) -> tuple[str, rc.Plan]:
    section = request.param
    formula, options, *_ = SECTIONS[section]
    return section, rc.compile(formula, brandsma[DATA_COLUMNS[section]], **options)


def test_every_target_row_matches_the_book_cell_for_cell(compiled: tuple[str, rc.Plan]) -> None:
    section, plan = compiled
    book = SECTIONS[section][2]
    assert plan.targets == list(book)
    pm = plan.predictor_matrix
    for target, cells in book.items():
        expected = {ours(p): c for p, c in cells.items()}
        row = pm.loc[target]
        got = {p: int(c) for p, c in row.items() if c != 0}
        assert got == expected, f"{section} row {target}"


def test_methods_match_the_book(compiled: tuple[str, rc.Plan]) -> None:
    section, plan = compiled
    methods = plan.methods
    for target, method in SECTIONS[section][3].items():
        assert methods[target] == method
    for name, d in plan.derived.items():
        assert methods[name] == ("2l.groupmean" if d.op == "cm" else "passive")


def test_derived_variables_are_the_books(compiled: tuple[str, rc.Plan]) -> None:
    section, plan = compiled
    assert set(plan.derived) == {ours(n) for n in SECTIONS[section][4]}


def test_visit_sequence_follows_each_target_with_its_descendants_parents_first(
        compiled: tuple[str, rc.Plan]) -> None:
    _, plan = compiled
    seq = plan.visit_sequence
    parents = {n: d.parents for n, d in plan.derived.items()}

    def descendants(v: str) -> set[str]:
        out = {n for n, ps in parents.items() if v in ps}
        for n in list(out):
            out |= descendants(n)
        return out

    starts = [i for i, v in enumerate(seq) if v in plan.targets]
    assert [seq[i] for i in starts] == plan.targets
    for i, j in zip(starts, [*starts[1:], len(seq)], strict=True):
        block = seq[i + 1:j]
        assert set(block) == descendants(seq[i]) and len(block) == len(set(block))
        for k, v in enumerate(block):
            assert all(p not in block[k:] for p in parents[v])


def test_section_7_10_5_visit_sequence_has_the_books_length(brandsma: pd.DataFrame) -> None:
    formula, options, *_ = SECTIONS["7.10.5"]
    plan = rc.compile(formula, brandsma, **options)
    assert len(plan.visit_sequence) == 27  # the book's `visit` vector has 27 entries
    formula, options, *_ = SECTIONS["7.10.7"]
    assert len(rc.compile(formula, brandsma, **options).visit_sequence) == 33


def test_random_slopes_include_gives_code_4_to_the_slope_images(brandsma: pd.DataFrame) -> None:
    plan = rc.compile(F7107, brandsma)
    pm = plan.predictor_matrix
    assert pm.loc["lpo", ["iqv", "ses"]].tolist() == [4, 4]
    assert pm.loc["iqv", ["lpo", "ses"]].tolist() == [4, 4]
    assert pm.loc["ses", ["lpo", "iqv"]].tolist() == [4, 4]
