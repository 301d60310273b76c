"""Table 7.5: the predictors of a level-1 target.

A pure pass: :func:`level1_row` maps a :class:`~.context.Context` and a target
to the row's entries, each carrying the recipe step and the reason.
"""

from __future__ import annotations

from itertools import combinations

from ..model.spec import Factor, Term, term
from .context import Context, Entry

RANDOM_SLOPE = "7.10.6 random slope"


def level1_row(ctx: Context, target: str) -> list[Entry]:
    """Entries of the imputation model of a level-1 target (FIMD Table 7.5).

    Parameters
    ----------
    ctx : Context
    target : str
        A level-1 column.

    Returns
    -------
    list of Entry
        Kept entries (code != 0) and, with code 0 and step ``7.5.10``, the terms
        excluded because they involve the target.
    """
    y = ctx.spec.outcome
    swap = f"{target} <-> {y}" if target != y else "identity"
    entries: list[Entry] = []

    def add(t: Term, code: int, step: str, reason: str) -> None:
        for piece in ctx.expand(t):
            keep = target not in piece.columns
            entries.append(Entry(piece, code if keep else 0,
                                 step if keep else "7.5.10 excluded: involves the target",
                                 reason if keep else f"{reason}; contains '{target}'"))

    for x in ctx.level1:
        if x != target:
            add(term(Factor("var", x)), 3, "7.5.3-4 level-1 variable + cluster mean",
                "other level-1 variable")
    for x in _slope_images(ctx, target):
        code = 4 if ctx.options.random_slopes == "include" else 3
        add(term(Factor("var", x)), code, RANDOM_SLOPE,
            f"random slope in the analysis model (role map {swap})")
    for x in ctx.level2:
        add(term(Factor("var", x)), 1, "7.5.6 level-2 predictor", "level-2 variable")
    for analysis_term in ctx.spec.terms:
        if _covered_by_main_effects(analysis_term):
            continue
        image = ctx.center(ctx.swap(analysis_term, target, y))
        add(image, 1, ctx.interaction_step(image),
            f"image of analysis term '{analysis_term.name}' (role map {swap})")
    if ctx.options.interactions == "all_pairwise":
        for t in _pairwise(ctx, target):
            image = ctx.center(t)
            add(image, 1, ctx.interaction_step(image), "all_pairwise: " + _pair_kind(ctx, t))
    for x in sorted(ctx.auxiliary, key=ctx.measured.index):
        add(term(Factor("var", x)), 3 if ctx.level(x) == 1 else 1, "7.5.9 auxiliary variable",
            "auxiliary variable")
    return merge(entries)


def _covered_by_main_effects(t: Term) -> bool:
    """A single ``x``, ``cm(x)``, ``cwc(x)`` or ``C(x)``: covered by steps 3, 4 and 6."""
    return t.degree == 1 and t.factors[0].kind in ("var", "cm", "cwc", "cat")


def _slope_images(ctx: Context, target: str) -> list[str]:
    """Images under the role map of the level-1 random-slope variables."""
    if ctx.spec.random is None:
        return []
    out = []
    for t in ctx.spec.random.slopes:
        f = t.factors[0]
        if t.degree == 1 and f.kind in ("var", "cwc", "cat") and ctx.level(f.column) == 1:
            image = ctx.swap(term(Factor("var", f.column)), target, ctx.spec.outcome)
            out.append(image.factors[0].column)
    return [x for x in dict.fromkeys(out) if x != target]


def _pairwise(ctx: Context, target: str) -> list[Term]:
    """Every two-way product of the ``all_pairwise`` policy (section 7.10.5)."""
    l1 = [x for x in ctx.level1 if x != target]
    l2 = list(ctx.level2)
    out = [term(Factor("var", a), Factor("var", b)) for a, b in combinations(l1, 2)]
    out += [term(Factor("var", a), Factor("var", b)) for a in l1 for b in l2]
    out += [term(Factor("var", a), Factor("var", b)) for a, b in combinations(l2, 2)]
    out += [term(Factor("cm", a), Factor("var", b)) for a in l1 for b in l2]
    return out


def _pair_kind(ctx: Context, t: Term) -> str:
    levels = sorted(ctx.factor_level(f) for f in t.factors)
    return {(1, 1): "level-1 x level-1", (1, 2): "level-1 x level-2"}.get(
        (levels[0], levels[1]), "level-2 x level-2")


def used_products(ctx: Context, rows: dict[str, list[Entry]]) -> list[Term]:
    """The products the level-1 rows use (else the analysis model's, centred as the
    options say), each once: the interactions whose means the upper-level rows take."""
    products = [e.predictor for es in rows.values() for e in es
                if e.code and e.predictor.degree > 1]
    if not products:
        products = [ctx.center(t) for t in ctx.spec.terms if t.degree > 1]
    return list(dict.fromkeys(products))


def merge(entries: list[Entry]) -> list[Entry]:
    """One entry per predictor: the highest code, every step and reason joined.

    An exclusion (code 0) wins over any inclusion of the same term.
    """
    out: dict[Term, Entry] = {}
    for e in entries:
        old = out.get(e.predictor)
        if old is None:
            out[e.predictor] = e
            continue
        code = 0 if 0 in (old.code, e.code) else max(old.code, e.code)
        steps = old.step if e.step in old.step.split("; ") else f"{old.step}; {e.step}"
        reasons = old.reason if e.reason in old.reason.split("; ") else f"{old.reason}; {e.reason}"
        out[e.predictor] = Entry(old.predictor, code, steps, reasons)
    return list(out.values())
