"""Table 7.6: the predictors of a level-2 target.

A pure pass. The ``2lonly`` methods aggregate level-1 predictors (code 1) to
their cluster means, so a level-1 column or product with code 1 here stands for
its cluster mean.
"""

from __future__ import annotations

from itertools import combinations

from ..model.spec import Factor, Term, term
from .context import Context, Entry
from .level1 import merge


def level2_row(ctx: Context, target: str, level1_products: list[Term]) -> list[Entry]:
    """Entries of the imputation model of a level-2 target (FIMD Table 7.6).

    Parameters
    ----------
    ctx : Context
    target : str
        A level-2 column.
    level1_products : list of Term
        The products that the level-1 targets' rows use (all their factors
        level-1 or all level-2); their cluster means enter here.
    """
    entries: list[Entry] = []

    def add(t: Term, step: str, reason: str) -> None:
        for piece in ctx.expand(t):
            if target in piece.columns:
                entries.append(Entry(piece, 0, "7.6.8 excluded: involves the target",
                                     f"{reason}; contains '{target}'"))
            else:
                entries.append(Entry(piece, 1, step, reason))

    for x in ctx.level1:
        add(term(Factor("var", x)), "7.6.3 cluster mean of level-1 variable",
            "level-1 variable, aggregated to its cluster mean")
    for t in level1_products:
        if ctx.term_level(t) == 1 and all(ctx.factor_level(f) == 1 for f in t.factors):
            add(t, "7.6.4 cluster mean of level-1 interaction",
                "level-1 interaction used by the level-1 targets")
    for x in ctx.level2:
        if x != target:
            add(term(Factor("var", x)), "7.6.5 level-2 predictor", "other level-2 variable")
    level2_products = [t for t in (*level1_products, *ctx.spec.terms)
                       if t.degree > 1 and all(ctx.factor_level(f) == 2 for f in t.factors)]
    if ctx.options.interactions == "all_pairwise":
        level2_products += [term(Factor("var", a), Factor("var", b))
                            for a, b in combinations(ctx.level2, 2)]
    for t in level2_products:
        add(t, "7.6.6 level-2 interaction", "interaction of level-2 variables")
    for x in sorted(ctx.auxiliary, key=ctx.measured.index):
        add(term(Factor("var", x)), "7.6.7 auxiliary variable", "auxiliary variable")
    return merge(entries)
