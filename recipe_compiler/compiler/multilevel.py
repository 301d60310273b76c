"""Recipes for models with several grouping factors: three-level (nested) and crossed.

FIMD Tables 7.5 and 7.6 generalised; each rule below is cited by its id in the
``step`` of :meth:`Plan.explain <recipe_compiler.plan.fcs.Plan.explain>`, with
the book's step it generalises in brackets.

Notation. Nested factors: ``g2`` the innermost (``school:class``, or ``class``
in ``(1 | class) + (1 | school)``), ``g3`` the one it is nested in
(``school``). A column is level 1 (varies within ``g2`` clusters), level 2
(constant within ``g2``, not within ``g3``) or level 3 (constant within
``g3``). Crossed factors ``f1, f2, ...`` in formula order: a column is level 1,
or level 2 if it is constant within some factor. ``cm(x, g)`` is the mean of
``x`` over the clusters of ``g``, an explicit derived variable; these plans use
only the codes -2 (a random intercept over that grouping factor), 0, 1 (fixed
effect) and 2 (fixed effect and random slope over the target's first -2
grouping). ``y`` is the analysis model's outcome and ``t`` the target; the
*image* of an analysis term is the term with ``t`` and ``y`` swapped (the role
map of Table 7.5, section 7.10.7).

Level-1 targets (``ml.pmm`` / ``ml.norm``, nested and crossed):

ML.1.0 grouping factors. Code -2 on every grouping factor. Serves the analysis
    model's random intercepts ``(1 | g)`` at every level. [7.5.1]
ML.1.1 level-1 variable + its means at every level. Every other level-1
    variable ``x``, code 1, with ``cm(x, g)`` for every grouping factor ``g``.
    Serves the term ``x``: the within-cluster regression and the between
    regressions at each level (means at one level only would force the
    contextual effect at the other to zero). [7.5.3-4]
ML.1.2 level-2 variable + its level-3 mean (nested). Every level-2 variable
    ``w``, code 1, with ``cm(w, g3)``. Serves ``w`` and its contextual effect
    between schools. [7.5.6]
ML.1.3 cluster-level variable. Every level-3 variable (nested) and every
    variable constant within a crossed factor, code 1. Serves ``z``. [7.5.6]
ML.1.4 random slope. The image of every level-1 random-slope variable of the
    first grouping factor (``g2``; crossed: ``f1``), code 2
    (``random_slopes="means_only"``: 1); its means enter by ML.1.1. Serves
    ``(1 + x | g2)``. [7.10.6]
ML.1.5 random slope over an outer grouping factor. A random slope over any
    other factor (``(1 + x | g3)``, also implied by ``(1 + x | school/class)``;
    ``x`` may be level 1 or 2) is not modelled in the imputation model: its
    image enters as a fixed effect with its means (ML.1.1, ML.1.2), and
    ``explain()`` says so. Serves ``(1 + x | g3)`` approximately.
ML.1.6 interaction. The image of every analysis term that is not a main effect
    (products, ``I(...)``), code 1, its cluster means over the factors as
    written (``cm(x, school)``); ``centering="cluster"`` writes continuous
    level-1 factors of a product as ``cwc(x, g2)``. The step names the levels
    of its factors (level-1, level-k, cross-level). Serves that term.
    [7.5.5, 7.5.7, 7.5.8]
ML.1.7 all pairwise. With ``interactions="all_pairwise"``: every product of
    two other level-1 variables, of a level-1 and a higher-level variable, of
    two higher-level variables, and of ``cm(x, g)`` with every variable
    constant within ``g``. [7.10.5]
ML.1.8 auxiliary variable. By ML.1.1-1.3 for its level; no interactions.
    [7.5.9]
ML.1.9 excluded. Every term containing the target, code 0. [7.5.10]

Level-2 targets (nested only; ``ml.pmm`` / ``ml.norm`` on one row per ``g2``
cluster, predictors aggregated to their means over the ``g2`` cluster):

ML.2.0 grouping factor. Code -2 on ``g3`` only (one unit per ``g2`` cluster).
    Serves ``(1 | g3)``. [7.6.1]
ML.2.1 aggregated level-1 variable. Every level-1 variable ``x``, code 1 (its
    ``g2`` mean), with ``cm(x, g3)``. Serves ``x`` through the class-level part
    of the joint model. [7.6.3]
ML.2.2 aggregated level-1 interaction. The products of level-1 factors that the
    level-1 targets' rows use (the analysis model's without level-1 targets),
    code 1 (their ``g2`` means). [7.6.4]
ML.2.3 level-2 variable + its level-3 mean. Every other level-2 variable,
    code 1, with ``cm(w, g3)``. Serves ``w``. [7.6.5]
ML.2.4 level-3 variable. Every level-3 variable, code 1. Serves ``z``. [7.6.5]
ML.2.5 interaction at level 2/3. Products of the analysis model and of the
    level-1 rows whose factors are all at level 2 or 3 (``cm(x, g2):z``);
    ``all_pairwise``: every product of two other level-2/3 variables. [7.6.6]
ML.2.6 auxiliary variable. By ML.2.1, 2.3, 2.4 for its level. [7.6.7]
ML.2.7 excluded. Every term containing the target, code 0. [7.6.8]

Level-3 targets (nested; ``3lonly.pmm`` / ``3lonly.norm`` on one row per
``g3`` cluster, predictors aggregated to their ``g3`` means):

ML.3.0 no grouping factor: one unit per ``g3`` cluster. [7.6.1]
ML.3.1 aggregated lower-level variable. Every level-1 and level-2 variable,
    code 1 (its ``g3`` mean). [7.6.3]
ML.3.2 aggregated lower-level interaction. The products of the lower rows (the
    analysis model's without level-1 targets) whose factors are all level 1 or
    all level 2, code 1 (their ``g3`` means). [7.6.4]
ML.3.3 level-3 variable. Every other level-3 variable, code 1. [7.6.5]
ML.3.4 level-3 interaction. Products whose factors are all level 3;
    ``all_pairwise``: every product of two other level-3 variables. [7.6.6]
ML.3.5 auxiliary variable. By ML.3.1, 3.3 for its level. [7.6.7]
ML.3.6 excluded. Every term containing the target, code 0. [7.6.8]

Crossed factors impute level-1 targets only (ML.1.*): a column constant within
a crossed factor has no single cluster level to be imputed at, so it must be
complete (:func:`check_multilevel` says which). Categorical targets: a binary
column at level 1 or 2 takes ``ml.bin`` (the logistic model with the same rows),
a binary or nominal column at level 3 ``3lonly.polyreg``; nominal and ordinal
columns at levels 1 and 2, and ordinal ones at level 3, are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations

from ..errors import DataError, FormulaError
from ..model.spec import Factor, Term, term
from .context import Context, Entry
from .level1 import merge, used_products
from .methods import METHODS_TABLE, Scope, default_method, target_kind

__all__ = ["check_multilevel", "grouping_cells", "multilevel_rows", "multilevel_scope"]

Add = Callable[[Term, int, str, str], None]


def multilevel_rows(ctx: Context) -> dict[str, list[Entry]]:
    """The entries of every target of a plan with several grouping factors (rules ML.*).

    Level-1 targets first; their products feed the level-2 and level-3 rows.
    """
    rows = {t: level1_entries(ctx, t) for t in ctx.targets if ctx.level(t) == 1}
    products = used_products(ctx, rows)
    for t in ctx.targets:
        if t not in rows:
            rows[t] = upper_entries(ctx, t, products)
    return rows


def multilevel_scope(ctx: Context, target: str) -> Scope:
    """The method scope of a target: ``level3`` at level 3, else ``multilevel``."""
    return "level3" if ctx.level(target) == 3 else "multilevel"


def grouping_cells(ctx: Context, target: str) -> list[tuple[str, str, str]]:
    """The -2 groupings of a target's model: ``(grouping, step, reason)`` (ML.1.0, ML.2.0)."""
    level = ctx.level(target)
    if level == 1:
        return [(g, "ML.1.0 grouping factor", "random intercept over every grouping factor")
                for g in ctx.groupings]
    return [(g, "ML.2.0 grouping factor", f"random intercept over '{g}' (one unit per "
             f"cluster of '{ctx.groupings[0]}')")
            for g in ctx.groupings if ctx.grouping_level(g) > level]


# ----------------------------------------------------------------------------- level 1


def level1_entries(ctx: Context, target: str) -> list[Entry]:
    """Entries of a level-1 target (ML.1.1-ML.1.9)."""
    y = ctx.spec.outcome
    swap = f"{target} <-> {y}" if target != y else "identity"
    entries: list[Entry] = []
    add = _adder(ctx, target, entries, "ML.1.9 excluded: involves the target")
    for x in ctx.measured:
        if x == target or x in ctx.auxiliary:
            continue
        _main_effect(ctx, x, 1, add, "")
    inner, outer = _slope_images(ctx, target)
    code = 2 if ctx.options.random_slopes == "include" else 1
    for x, g in inner:
        add(term(Factor("var", x)), code, f"ML.1.4 random slope over '{g}'",
            f"random slope in the analysis model (role map {swap})")
    for x, g in outer:
        add(term(Factor("var", x)), 1, f"ML.1.5 random slope over '{g}': fixed effect + means",
            f"random slope over the outer grouping factor '{g}' in the analysis model (role map "
            f"{swap}); not modelled in the imputation model, which keeps its fixed effect and "
            "means")
    for analysis_term in ctx.spec.terms:
        if analysis_term.degree == 1 and analysis_term.factors[0].kind in ("var", "cm", "cwc",
                                                                          "cat"):
            continue
        image = ctx.center(ctx.swap(analysis_term, target, y))
        add(image, 1, f"ML.1.6 {_levels_kind(ctx, image)} interaction",
            f"image of analysis term '{analysis_term.name}' (role map {swap})")
    if ctx.options.interactions == "all_pairwise":
        for t in _pairwise(ctx, target):
            image = ctx.center(t)
            add(image, 1, "ML.1.7 all_pairwise", f"all_pairwise: {_levels_kind(ctx, t)} product")
    for x in sorted(ctx.auxiliary, key=ctx.measured.index):
        if x != target:
            _main_effect(ctx, x, 1, add, "ML.1.8 auxiliary variable")
    return merge(entries)


def _main_effect(ctx: Context, x: str, above: int, add: Add, auxiliary: str) -> None:
    """``x`` (code 1) and its means over the grouping factors above level ``above``."""
    level = ctx.level(x)
    means = [g for g in ctx.groupings if ctx.grouping_level(g) > above
             and not (ctx.nesting == "crossed" and level > 1) and not ctx.constant_within(x, g)]
    which = " + ".join(f"cm({x}, {g})" for g in means)
    if above == 1:
        step = {1: "ML.1.1 level-1 variable + means", 2: "ML.1.2 level-2 variable + mean",
                3: "ML.1.3 level-3 variable"}[level]
        if ctx.nesting == "crossed" and level > 1:
            within = " and ".join(f"'{g}'" for g in ctx.schema[x].within)
            step, reason = "ML.1.3 cluster-level variable", f"constant within {within}"
        else:
            reason = f"level-{level} variable" + (f", with {which}" if which else "")
    elif above == 2:
        step = {1: "ML.2.1 aggregated level-1 variable", 2: "ML.2.3 level-2 variable + mean",
                3: "ML.2.4 level-3 variable"}[level]
        reason = (f"level-{level} variable" + (", aggregated to its class mean" if level == 1
                                               else "") + (f", with {which}" if which else ""))
    else:
        step = ("ML.3.1 aggregated lower-level variable" if level < 3
                else "ML.3.3 level-3 variable")
        reason = f"level-{level} variable" + (", aggregated to its mean" if level < 3 else "")
    if auxiliary:
        step, reason = auxiliary, f"auxiliary {reason}"
    add(term(Factor("var", x)), 1, step, reason)
    for g in means:
        add(term(Factor("cm", x, group=g)), 1, step, f"mean of {x} over '{g}'"
            + ("" if not auxiliary else " (auxiliary)"))


def _slope_images(ctx: Context, target: str) -> tuple[list[tuple[str, str]],
                                                       list[tuple[str, str]]]:
    """Images under the role map of the random-slope variables: ``(x, grouping)`` pairs
    over the first grouping factor, and over the others (:func:`check_multilevel` has
    made sure that each varies within the clusters of its grouping factor)."""
    inner: list[tuple[str, str]] = []
    outer: list[tuple[str, str]] = []
    for r in ctx.spec.randoms:
        group = ctx.group_of(r.cluster)
        for t in r.slopes:
            f = t.factors[0]
            if t.degree == 1 and f.kind in ("var", "cwc", "cat"):
                image = ctx.swap(term(Factor("var", f.column)), target, ctx.spec.outcome)
                x = image.factors[0].column
                if x != target:
                    (inner if group == ctx.groupings[0] else outer).append((x, group))
    return list(dict.fromkeys(inner)), list(dict.fromkeys(outer))


def _pairwise(ctx: Context, target: str) -> list[Term]:
    """Every product of the ``all_pairwise`` policy (ML.1.7)."""
    l1 = [x for x in ctx.level1 if x != target]
    hi = [x for x in ctx.measured if ctx.level(x) > 1 and x not in ctx.auxiliary]
    v = [Factor("var", x) for x in l1]
    h = [Factor("var", x) for x in hi]
    out = [term(a, b) for a, b in combinations(v, 2)]
    out += [term(a, b) for a in v for b in h]
    out += [term(a, b) for a, b in combinations(h, 2)]
    out += [term(Factor("cm", a, group=g), Factor("var", b)) for a in l1 for g in ctx.groupings
            for b in hi if ctx.constant_within(b, g)]
    return out


def _levels_kind(ctx: Context, t: Term) -> str:
    """``level-1``, ``level-3`` or ``cross-level (levels 1, 3)`` for a term's factors."""
    levels = sorted({ctx.factor_level(f) for f in t.factors})
    if len(levels) == 1:
        return f"level-{levels[0]}"
    return f"cross-level (levels {', '.join(map(str, levels))})"


# ----------------------------------------------------------------------------- levels 2, 3


def upper_entries(ctx: Context, target: str, products: list[Term]) -> list[Entry]:
    """Entries of a level-2 (ML.2.*) or level-3 (ML.3.*) target of a nested plan.

    Parameters
    ----------
    ctx : Context
    target : str
    products : list of Term
        The products the level-1 rows use (the analysis model's products without
        level-1 targets); the analysis model's products at level 2/3 enter too.
    """
    level = ctx.level(target)
    rule = f"ML.{level}"
    excluded = f"{rule}.{7 if level == 2 else 6} excluded: involves the target"
    entries: list[Entry] = []
    add = _adder(ctx, target, entries, excluded)
    for x in ctx.measured:
        if x != target and x not in ctx.auxiliary:
            _main_effect(ctx, x, level, add, "")
    used = set(products)
    for t in dict.fromkeys([*products, *ctx.spec.terms]):
        levels = sorted({ctx.factor_level(f) for f in t.factors})
        if t.degree < 2 or (levels == [1] and t not in used):
            continue
        if level == 2 and levels == [1]:
            add(t, 1, "ML.2.2 aggregated level-1 interaction",
                "level-1 interaction used by the level-1 targets, aggregated to its class mean")
        elif level == 3 and len(levels) == 1 and levels[0] < 3:
            add(t, 1, "ML.3.2 aggregated lower-level interaction",
                f"level-{levels[0]} interaction used by the rows below, aggregated to its mean")
        elif levels[0] >= level:
            at = "/".join(map(str, levels))
            add(t, 1, f"{rule}.{5 if level == 2 else 4} level-{at} interaction",
                f"interaction at level {at}")
    if ctx.options.interactions == "all_pairwise":
        same = [Factor("var", x) for x in ctx.measured
                if ctx.level(x) >= level and x not in ctx.auxiliary and x != target]
        for a, b in combinations(same, 2):
            add(term(a, b), 1, f"{rule}.{5 if level == 2 else 4} all_pairwise",
                "all_pairwise: product of two cluster-level variables")
    aux = f"{rule}.{6 if level == 2 else 5} auxiliary variable"
    for x in sorted(ctx.auxiliary, key=ctx.measured.index):
        if x != target:
            _main_effect(ctx, x, level, add, aux)
    return merge(entries)


def _adder(ctx: Context, target: str, entries: list[Entry], excluded: str) -> Add:
    """``add(term, code, step)`` appending the dummy-coded pieces of a term to ``entries``,
    those containing the target with code 0 and the step ``excluded``."""
    def add(t: Term, code: int, step: str, reason: str) -> None:
        for piece in ctx.expand(t):
            keep = target not in piece.columns
            entries.append(Entry(piece, code if keep else 0, step if keep else excluded,
                                 reason if keep else f"{reason}; contains '{target}'"))
    return add


# ----------------------------------------------------------------------------- checks


def check_multilevel(ctx: Context) -> None:
    """Refuse what the ML rules do not cover, naming the column and the grouping factor.

    Raises
    ------
    FormulaError
        A nested model with more than three levels; an outcome above level 1; a
        random slope of a variable constant within the clusters of its grouping
        factor.
    DataError
        An incomplete nominal or ordinal column below the outermost level, or an
        ordinal one at it; an incomplete column constant within a crossed factor.
    """
    spec = ctx.spec
    if ctx.nesting == "nested" and len(ctx.groupings) > 2:
        raise FormulaError(f"the grouping factors {', '.join(ctx.groupings)} are nested "
                           f"{len(ctx.groupings) + 1} levels deep; the imputation recipes "
                           "cover three levels (two nested grouping factors)", spec.formula,
                           spec.random.span if spec.random else None)
    y = spec.outcome
    if ctx.level(y) > 1:
        g = [g for g in ctx.groupings if ctx.constant_within(y, g)][-1]
        raise FormulaError(f"the outcome '{y}' is constant within every cluster of '{g}' (a "
                           f"level-{ctx.level(y)} variable); a multilevel model needs a level-1 "
                           "outcome", spec.formula, spec.span_of(y))
    for r in spec.randoms:
        group = ctx.group_of(r.cluster)
        for t in r.slopes:
            if _constant(ctx, t, group):
                span = spec.span_of(t.name, "random") or spec.span_of(t.columns[0], "random")
                where = (f"a level-{ctx.term_level(t)} variable, " if ctx.nesting == "nested"
                         else "")
                raise FormulaError(f"random slope of '{t.name}' over '{group}': '{t.name}' is "
                                   f"{where}constant within every cluster of '{group}', so its "
                                   "slope cannot vary between those clusters; random slopes "
                                   f"over '{group}' need variables that vary within its "
                                   "clusters", spec.formula, span)
    for c in ctx.targets:
        info = ctx.schema[c]
        kind = target_kind(c in ctx.categorical or bool(info.categories), len(info.categories),
                           info.ordered)
        scope = multilevel_scope(ctx, c)
        if kind in ("nominal", "ordinal") and not any(kind in m.default_for
                                                      for m in METHODS_TABLE if m.scope == scope):
            where = "the outermost level" if scope == "level3" else f"level {ctx.level(c)}"
            covered = ("binary columns at levels 1 and 2 (ml.bin), binary and nominal ones at "
                       "the outermost level of a nested design (3lonly.polyreg)")
            raise DataError(f"column '{c}' is {kind} ({len(info.categories)} categories) and "
                            f"incomplete at {where}; in a model with several grouping factors "
                            f"the imputation models cover {covered}: code '{c}' as a number "
                            f"(imputed by {default_method('multilevel', 'numeric')}), or "
                            "impute with a two-level model (one grouping factor, "
                            "approach=\"fcs\")")
        if ctx.nesting == "crossed" and info.level > 1:
            within = ", ".join(f"'{g}'" for g in ctx.schema[c].within)
            raise DataError(f"column '{c}' is constant within every cluster of {within} and has "
                            f"{info.n_missing} missing values; in a model with crossed grouping "
                            "factors only level-1 columns can be imputed: complete it, or drop "
                            "it from the model")


def _constant(ctx: Context, t: Term, group: str) -> bool:
    """Every factor of ``t`` is constant within the clusters of ``group``."""
    for f in t.factors:
        if f.kind == "cm" and ctx.nesting == "nested":
            if ctx.factor_level(f) < ctx.grouping_level(group):
                return False
        elif f.kind == "cm" and ctx.group_of(f.group) == group:
            continue
        elif f.kind == "cwc" or not all(ctx.constant_within(c, group) for c in f.columns):
            return False
    return True
