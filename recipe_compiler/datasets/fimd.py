"""The worked examples of FIMD section 7.10, as data: one :class:`BookExample` each.

Each example names the brandsma columns the book uses, the analysis model in
this package's syntax, the compile options that reproduce the book's
hand-written predictor matrix, and the book's ``m``, ``maxit`` and seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..errors import RecipeError


@dataclass(frozen=True)
class BookExample:
    """One example of FIMD section 7.10.

    Attributes
    ----------
    section : str
        ``"7.10.1"`` .. ``"7.10.7"``.
    columns : tuple of str
        brandsma columns the book imputes.
    formula : str
        The model the imputation plan is compiled from.
    analysis : str
        The model fitted on the completed data (``C(den)`` where the book
        analyses ``den`` as a factor while imputing it as a number).
    options : dict
        Compile options (see ``RECIPES.md``).
    m, maxit, seed : int
        As in the book.
    centre : tuple of str
        Columns the book grand-mean centres before imputing.
    restore : bool
        Whether the book adds the means back before the analysis (7.10.6).
    """

    section: str
    columns: tuple[str, ...]
    formula: str
    analysis: str
    m: int
    maxit: int
    seed: int
    options: dict[str, object] = field(default_factory=dict)
    centre: tuple[str, ...] = ()
    restore: bool = False

    def data(self, brandsma: pd.DataFrame) -> pd.DataFrame:
        """The book's data for this example: its columns, centred where the book centres."""
        d = brandsma[list(self.columns)].copy()
        for c in self.centre:
            d[c] = d[c] - d[c].mean()
        return d

    def for_analysis(self, completed: pd.DataFrame, brandsma: pd.DataFrame) -> pd.DataFrame:
        """A completed data set prepared as the book does before fitting."""
        if not self.restore:
            return completed
        out = completed.copy()
        for c in self.centre:
            out[c] = out[c] + brandsma[c].mean()
        return out


F7107 = ("lpo ~ iqv*ses + cm(iqv)*cm(ses) + iqv*cm(iqv) + iqv*cm(ses) + ses*cm(iqv) "
         "+ ses*cm(ses) + (1 + ses + iqv | sch)")

FIMD_7_10: tuple[BookExample, ...] = (
    BookExample("7.10.1", ("sch", "lpo"), "lpo ~ 1 + (1 | sch)", "lpo ~ 1 + (1 | sch)",
                m=10, maxit=1, seed=152),
    BookExample("7.10.2", ("sch", "lpo", "iqv"), "lpo ~ iqv + (1 | sch)",
                "lpo ~ iqv + (1 | sch)", m=10, maxit=5, seed=919),
    BookExample("7.10.3", ("sch", "lpo", "iqv"), "lpo ~ iqv + cm(iqv) + (1 | sch)",
                "lpo ~ iqv + cm(iqv) + (1 | sch)", m=10, maxit=5, seed=919),
    BookExample("7.10.4", ("sch", "lpo", "iqv", "den"), "lpo ~ iqv + den + (1 | sch)",
                "lpo ~ 1 + iqv + C(den) + (1 | sch)", m=10, maxit=5, seed=418),
    BookExample("7.10.5", ("sch", "lpo", "iqv", "sex", "den"),
                "lpo ~ iqv*sex + cm(iqv)*den + sex*den + (1 | sch)",
                "lpo ~ 1 + iqv*sex + cm(iqv)*C(den) + sex*C(den) + (1 | sch)",
                m=10, maxit=5, seed=188,
                options={"interactions": "all_pairwise", "centering": "cluster"}),
    BookExample("7.10.6", ("sch", "lpo", "iqv"), "lpo ~ iqv + cm(iqv) + (1 + iqv | sch)",
                "lpo ~ iqv + cm(iqv) + (1 + iqv | sch)", m=10, maxit=20, seed=441,
                centre=("lpo",), restore=True),
    BookExample("7.10.7", ("sch", "lpo", "iqv", "ses"), F7107, F7107, m=10, maxit=10, seed=211,
                options={"interactions": "implied", "centering": "none",
                         "random_slopes": "means_only"},
                centre=("lpo",)),
)


def fimd_example(section: str) -> BookExample:
    """The example of FIMD section ``section`` (e.g. ``"7.10.5"``)."""
    for ex in FIMD_7_10:
        if ex.section == section:
            return ex
    raise RecipeError(f"no FIMD example {section!r}; valid: "
                      + ", ".join(e.section for e in FIMD_7_10))
