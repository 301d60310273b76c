"""lme4-style formula text -> :class:`~recipe_compiler.model.spec.ModelSpec`.

The only module that imports formulaic. formulaic has no ``|``, so the random
parts ``( ... | g)`` are cut out first (keeping a map back to the original
character positions, so that errors point into the text the user wrote) and the
fixed part is handed to formulaic. ``I(...)`` arguments are parsed by the safe
expression language of :mod:`.expr`, from the text the user wrote. Column names
that are not plain names are written in backticks, as in R: ```` `read dis` ````.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from formulaic import Formula
from formulaic.errors import FormulaSyntaxError

from ..errors import FormulaError
from .expr import parse_expr, read_quoted, to_text
from .spec import Factor, ModelSpec, RandomEffects, Term, find_spans, innermost_written

__all__ = ["parse_formula"]

_CALL = re.compile(r"^(?P<fn>[A-Za-z_][\w.]*)\((?P<arg>.*)\)$", re.S)
_NAME = re.compile(r"^[A-Za-z_.][\w.]*$")
_AS_FACTOR = re.compile(r"(?<![\w.])as\.(?=factor\s*\()")
_NESTED_CATEGORICAL = re.compile(
    r"(?<![\w.])(?:cm|cwc)\s*\(\s*(?:as\.)?(?:C|factor)\s*\((?P<arg>[^()]*)\)\s*(?:,[^()]*)?\)")
_CENTRING_CALL = re.compile(r"(?<![\w.])(?:cm|cwc)\s*\(")
_FORMULAIC_SPAN = re.compile("\u29db(?:\x1b\\[[0-9;]*m)?(?P<body>.*?)(?:\x1b\\[0m)?\u29da", re.S)


@dataclass(frozen=True)
class _Cut:
    """The fixed part of a formula and the position in the original of each character."""

    text: str
    origin: tuple[int, ...]

    def span(self, start: int, end: int) -> tuple[int, int]:
        if not self.origin:
            return (0, 1)
        start = min(max(start, 0), len(self.origin) - 1)
        end = min(max(end, start + 1), len(self.origin))
        return (self.origin[start], self.origin[end - 1] + 1)

    def find(self, text: str) -> tuple[int, int] | None:
        """Span in the original formula of ``text``, ignoring whitespace (formulaic
        re-spaces expressions: ``foo( x )`` comes back as ``foo(x)``)."""
        chars = [re.escape(c) for c in text if not c.isspace()]
        if not chars:
            return None
        edge = r"(?<![\w.])" if re.match(r"[\w.]", text.strip()) else ""
        tail = r"(?![\w.])" if re.search(r"[\w.]$", text.strip()) else ""
        m = re.search(edge + r"\s*".join(chars) + tail, self.text)
        return self.span(m.start(), m.end()) if m else None

    def escape_groups(self) -> _Cut:
        """The text with the ``g`` of each ``cm(x, g)`` / ``cwc(x, g)`` written ``_g``, so
        that formulaic reads a Python keyword such as ``class`` as a name (a name in
        backticks loses them; other quoted names stay). :func:`_factor` drops the ``_``.
        The ``_`` keeps the origin of the name's first character."""
        masked = _mask(self.text)
        edits: list[tuple[int, int, str, tuple[int, ...]]] = []
        for m in _CENTRING_CALL.finditer(masked):
            commas, close = _arguments(masked, m.end() - 1)
            if len(commas) != 1 or close < 0:
                continue
            piece = self.text[commas[0] + 1:close]
            lo = commas[0] + 1 + len(piece) - len(piece.lstrip())
            hi = commas[0] + 1 + len(piece.rstrip())
            name = _column_name(piece)
            if name is not None and _NAME.match(name):
                first = lo + int(self.text[lo] == "`")
                at = self.origin[first:first + len(name)]
                edits.append((lo, hi, "_" + name, (at[0], *at)))
            elif all(_NAME.match(part) for part in piece.strip().split(":")):  # school:class
                at = self.origin[lo:hi]
                edits.append((lo, hi, f"`{piece.strip()}`", (at[0], *at, at[-1])))
        text, origin = list(self.text), list(self.origin)
        for lo, hi, new, new_origin in reversed(edits):
            text[lo:hi], origin[lo:hi] = list(new), list(new_origin)
        return _Cut("".join(text), tuple(origin))

    def without(self, pattern: re.Pattern[str]) -> _Cut:
        """The text with every match of ``pattern`` removed, the rest keeping its origin."""
        keep = [True] * len(self.text)
        for m in pattern.finditer(self.text):
            keep[m.start():m.end()] = [False] * (m.end() - m.start())
        return _Cut("".join(c for c, k in zip(self.text, keep, strict=True) if k),
                    tuple(o for o, k in zip(self.origin, keep, strict=True) if k))


@dataclass(frozen=True)
class _Groups:
    """The grouping factors of a model (their columns), innermost (``spec.random``) first,
    for resolving the ``g`` of ``cm(x, g)``."""

    factors: tuple[tuple[str, ...], ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(":".join(f) for f in self.factors)

    def resolve(self, g: str) -> str | None:
        """The factor ``g`` names, ``""`` for the innermost; ``None`` if none or ambiguous.

        ``g`` is a factor name (``school:class``) or a column of a factor: the factor
        with the fewest columns that has it (``class`` in ``(1 | school/class)`` is
        ``school:class``). The innermost factor is ``""`` (the canonical ``cm(x)``) when
        the formula alone makes it innermost: its columns include every other factor's
        columns. Otherwise the data decide which factor is innermost, and
        :meth:`~recipe_compiler.model.spec.ModelSpec.with_innermost` canonicalises.
        """
        names = self.names
        if g not in names:
            having = [f for f in self.factors if g in f]
            fewest = [f for f in having if len(f) == min(map(len, having))]
            if len(fewest) != 1:
                return None
            g = ":".join(fewest[0])
        return "" if g == names[0] and innermost_written(self.factors) else g


@lru_cache(maxsize=256)
def parse_formula(formula: str) -> ModelSpec:
    """Parse an lme4-style mixed-model formula.

    Parameters
    ----------
    formula : str
        ``y ~ fixed + (random | g)``. Fixed terms use ``+ - * : 1 0``, ``I(...)``
        (an expression of :mod:`recipe_compiler.model.expr`), ``C(x)`` / ``factor(x)``
        (categorical), ``cm(x)`` (cluster mean of ``x`` over ``g``) and ``cwc(x)``
        (``x`` centred within cluster); with several grouping factors ``cm(x, g)`` /
        ``cwc(x, g)`` average over the clusters of the factor ``g`` (a factor name such
        as ``school``, or a column of one: ``class`` in ``(1 | school/class)`` is the
        factor ``school:class``; plain ``cm(x)`` is the innermost factor). One or more
        random-effects groups ``(1 + x | g)``; a grouping factor is a column, an
        interaction ``a:b`` or a nesting ``a/b`` (``(1 | a/b)`` is ``(1 | a) + (1 |
        a:b)``); crossed factors are separate groups, ``(1 | rater) + (1 | item)``. The
        random part may be omitted (single-level model). Names that are not plain
        names go in backticks: ```` `read dis` ````.

    Returns
    -------
    ModelSpec

    Raises
    ------
    FormulaError
        With the formula and a caret under the offending span.
    """
    if not isinstance(formula, str) or not formula.strip():
        raise FormulaError("the formula is empty; expected 'outcome ~ terms + (1 | cluster)'")
    masked = _mask(formula)
    tilde = _top_level(masked, "~")
    if not tilde:
        raise FormulaError("the formula has no '~'; expected 'outcome ~ terms'", formula,
                           (0, len(formula)))
    if len(tilde) > 1:
        raise FormulaError("the formula has more than one '~'", formula, (tilde[1], tilde[1] + 1))
    outcome = _outcome(formula, tilde[0])
    if not formula[tilde[0] + 1:].strip():
        raise FormulaError("the formula has no terms right of '~'; write 'outcome ~ 1' for an "
                           "intercept-only model", formula, (tilde[0], tilde[0] + 1))
    groups, cut = _cut_random(formula, masked, tilde[0])
    randoms = _random_effects(formula, masked, groups)
    intercept, terms = _fixed_terms(formula, cut, _Groups(tuple(r.factors for r in randoms)))
    _check_roles(formula, masked, outcome, terms, randoms, cut)
    names = [outcome, *(c for t in terms for c in t.columns)]
    for r in randoms:
        names += [c for t in r.slopes for c in t.columns] + list(r.factors)
    return ModelSpec(formula=formula, outcome=outcome, intercept=intercept, terms=terms,
                     random=randoms[0] if randoms else None,
                     spans=find_spans(formula, dict.fromkeys(names)),
                     nested_categorical=_nested_categorical(formula, masked),
                     more_random=randoms[1:])


def _mask(formula: str) -> str:
    """``formula`` with the inside of each backtick-quoted name blanked (same length), so
    that scans for parentheses, ``~`` and ``|`` do not look into names."""
    out, i = list(formula), 0
    while i < len(formula):
        if formula[i] == "`":
            quoted = read_quoted(formula, i)
            if quoted is None:
                raise FormulaError("unterminated backtick: a quoted name needs a closing `",
                                   formula, (i, len(formula)))
            end = quoted[0]
            out[i + 1:end - 1] = "_" * (end - i - 2)
            i = end
        else:
            i += 1
    return "".join(out)


def _column_name(text: str) -> str | None:
    """The column ``text`` names: a plain name or one backtick-quoted name; else ``None``."""
    text = text.strip()
    if _NAME.match(text):
        return text
    quoted = read_quoted(text, 0) if text.startswith("`") else None
    if quoted is not None and quoted[0] == len(text) and quoted[1]:
        return quoted[1]
    return None


def _top_level(text: str, char: str) -> list[int]:
    """Positions of ``char`` outside parentheses (in masked text)."""
    depth, out = 0, []
    for i, c in enumerate(text):
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == char and depth == 0:
            out.append(i)
    return out


def _outcome(formula: str, tilde: int) -> str:
    lhs = formula[:tilde]
    written = lhs.strip()
    start = len(lhs) - len(lhs.lstrip())
    if not written:
        raise FormulaError("the formula has no outcome left of '~'", formula, (tilde, tilde + 1))
    name = _column_name(written)
    if name is None:
        raise FormulaError("the outcome must be a single column name (transform it in the data "
                           "first; write a name with spaces or symbols in backticks, `like "
                           "this`)", formula, (start, start + len(written)))
    return name


def _matching(masked: str, open_at: int, formula: str) -> int:
    depth = 0
    for i in range(open_at, len(masked)):
        depth += {"(": 1, ")": -1}.get(masked[i], 0)
        if depth == 0:
            return i
    raise FormulaError("unbalanced parenthesis", formula, (open_at, open_at + 1))


def _cut_random(formula: str, masked: str,
                tilde: int) -> tuple[list[tuple[int, int]], _Cut]:
    """Find ``( ... | g)`` groups right of ``~`` and cut them (and their '+') out."""
    groups: list[tuple[int, int]] = []
    i = tilde + 1
    while i < len(masked):
        if masked[i] == "(":
            close = _matching(masked, i, formula)
            if "|" in masked[i:close]:
                groups.append((i, close + 1))
            i = close + 1
        else:
            if masked[i] == ")":
                raise FormulaError("unbalanced parenthesis", formula, (i, i + 1))
            i += 1
    keep = [True] * len(formula)
    for start, end in groups:
        for k in range(start, end):
            keep[k] = False
        j = start - 1
        while j > tilde and formula[j].isspace():
            j -= 1
        if j > tilde and formula[j] == "+":
            keep[j] = False
        elif j <= tilde:  # first term after '~': drop the '+' that follows instead
            k = end
            while k < len(formula) and formula[k].isspace():
                k += 1
            if k < len(formula) and formula[k] == "+":
                keep[k] = False
        else:
            raise FormulaError("a random-effects group must be added with '+'", formula,
                               (start, end))
    origin = tuple(i for i in range(tilde + 1, len(formula)) if keep[i])
    text = "".join(formula[i] for i in origin)
    if not text.strip():
        text, origin = "1", (tilde,)
    return groups, _Cut(text, origin)


def _random_effects(formula: str, masked: str,
                    groups: list[tuple[int, int]]) -> tuple[RandomEffects, ...]:
    """One term per grouping factor of each group; ``(1 | a/b)`` is ``(1 | a:b) + (1 | a)``.

    The innermost term comes first: terms with more grouping columns (``a:b``) before
    terms with fewer, otherwise in formula order.
    """
    parts: list[tuple[int, int, _Cut, tuple[str, ...]]] = []
    for start, end in groups:
        inner = formula[start + 1:end - 1]
        bar = masked[start + 1:end - 1].index("|")
        if inner[bar:bar + 2] == "||":
            raise FormulaError("uncorrelated random effects '||' are not supported yet; write "
                               "them as separate groups, e.g. (1 | g) + (0 + x | g)",
                               formula, (start + 1 + bar, start + 3 + bar))
        lhs = _Cut(inner[:bar], tuple(range(start + 1, start + 1 + bar)))
        for factors in reversed(_grouping_factors(formula, masked, start + 2 + bar, end - 1)):
            parts.append((start, end, lhs, factors))
    parts.sort(key=lambda part: -len(part[3]))
    context = _Groups(tuple(dict.fromkeys(part[3] for part in parts)))
    out: list[RandomEffects] = []
    for start, end, lhs, factors in parts:
        intercept, slopes = _fixed_terms(formula, lhs, context)
        for t in slopes:
            for f in t.factors:
                hit = next((c for c in factors if c in f.columns), None)
                if hit is not None:
                    raise FormulaError(f"the cluster variable '{hit}' cannot have a random "
                                       "slope over itself", formula, lhs.find(f.name))
        out.append(RandomEffects(cluster=":".join(factors), intercept=intercept,
                                 slopes=slopes, span=(start, end), factors=factors))
    return tuple(out)


def _grouping_factors(formula: str, masked: str, lo: int, hi: int) -> list[tuple[str, ...]]:
    """The grouping factors right of ``|`` in ``formula[lo:hi]``: ``a`` -> ``[(a,)]``,
    ``a:b`` -> ``[(a, b)]``, ``a/b`` -> ``[(a,), (a, b)]`` (outermost first)."""
    out: list[tuple[str, ...]] = []
    part_lo = lo
    for part_hi in [*(i for i in range(lo, hi) if masked[i] == "/"), hi]:
        names: list[str] = []
        piece_lo = part_lo
        for piece_hi in [*(i for i in range(part_lo, part_hi) if masked[i] == ":"), part_hi]:
            piece = formula[piece_lo:piece_hi]
            name = _column_name(piece)
            if name is None:
                written = piece.strip() or piece
                at = piece_lo + (len(piece) - len(piece.lstrip()) if piece.strip() else 0)
                raise FormulaError("a grouping factor must be a column name, an interaction "
                                   "a:b or a nesting a/b of column names (e.g. (1 | school/"
                                   "class)); write other names in backticks", formula,
                                   (at, at + max(len(written.strip()), 1)))
            names.append(name)
            piece_lo = piece_hi + 1
        out.append((*(out[-1] if out else ()), *names))
        part_lo = part_hi + 1
    return out


def _check_roles(formula: str, masked: str, outcome: str, terms: tuple[Term, ...],
                 randoms: tuple[RandomEffects, ...], cut: _Cut) -> None:
    """Reject a column in two roles, and cluster means in a model without clusters."""
    grouping = {c for r in randoms for c in r.factors}
    if outcome in grouping:
        start = formula.index(outcome)
        raise FormulaError(f"the outcome '{outcome}' is also the cluster variable", formula,
                           (start, start + len(outcome)))
    for t in (*terms, *(s for r in randoms for s in r.slopes)):
        if outcome in t.columns:
            raise FormulaError(f"the outcome '{outcome}' also appears right of '~' (in "
                               f"'{t.name}'); a model cannot predict its outcome from itself",
                               formula, _find_after(formula, masked, outcome))
    for t in terms:
        for f in t.factors:
            hit = next((c for c in f.columns if c in grouping), None)
            if hit is not None:
                raise FormulaError(f"the cluster variable '{hit}' cannot be a fixed term; "
                                   "its effect is the random intercept of "
                                   f"(1 | {hit})", formula, cut.find(f.name))
            if f.kind in ("cm", "cwc") and not randoms:
                raise FormulaError(f"{f.name} needs clusters: add a random part such as "
                                   "(1 | cluster), or drop the cluster mean", formula,
                                   cut.find(f.name))


def _find_after(formula: str, masked: str, name: str) -> tuple[int, int] | None:
    """Span of ``name`` in ``formula`` right of the '~'."""
    tilde = _top_level(masked, "~")[0]
    spans = find_spans(formula[tilde:], [name])
    return (tilde + spans[0][1], tilde + spans[0][2]) if spans else None


def _fixed_terms(formula: str, cut: _Cut,
                 groups: _Groups = _Groups()) -> tuple[bool, tuple[Term, ...]]:
    cut = cut.without(_AS_FACTOR)  # R's as.factor(x) is factor(x); `as` is a Python keyword
    cut = cut.escape_groups()
    text = cut.text if cut.text.strip() else "1"
    try:
        with warnings.catch_warnings():  # Python's hints on odd literals inside I()
            warnings.simplefilter("ignore", SyntaxWarning)
            parsed = Formula(text)
    except FormulaSyntaxError as exc:
        raise _formulaic_error(exc, formula, cut) from None
    except Exception as exc:  # formulaic raises a few other types on odd input
        raise FormulaError(f"could not parse the formula: {exc}", formula,
                           cut.span(0, len(cut.text))) from None
    intercept = False
    terms: list[Term] = []
    for t in parsed:
        if not t.factors or all(str(f.expr) == "1" for f in t.factors):
            intercept = True
            continue
        terms.append(Term(tuple(_factor(f, formula, cut, groups) for f in t.factors)))
    return intercept, tuple(dict.fromkeys(terms))  # cm(x) and cm(x, inner) are one term


def _formulaic_error(exc: FormulaSyntaxError, formula: str, cut: _Cut) -> FormulaError:
    """Re-raise formulaic's error with its marked span mapped into the user's formula."""
    message, _, context = str(exc).partition("\n\n")
    m = _FORMULAIC_SPAN.search(context)
    span = cut.span(m.start(), m.start() + len(m.group("body"))) if m else (0, len(formula))
    return FormulaError(message.strip(), formula, span)


def _factor(factor: Any, formula: str, cut: _Cut, groups: _Groups) -> Factor:
    """Our factor of one formulaic factor (its text and its token's place in the cut)."""
    expr = str(factor.expr).strip()
    source = _source(factor, cut)
    span = cut.find(expr) or cut.span(0, len(cut.text))
    if source is not None and cut.text[source[0]] == "`":
        quoted = read_quoted(cut.text, source[0])
        if quoted is not None and quoted[1]:
            return Factor("var", quoted[1])
    if _NAME.match(expr):
        return Factor("var", expr)
    m = _CALL.match(expr)
    if m is None:
        raise FormulaError(f"cannot use '{expr}' as a term", formula, span)
    fn, arg = m.group("fn"), m.group("arg").strip()
    if fn == "I":
        return _expression(arg, formula, cut, source, span)
    kinds = {"cm": "cm", "cwc": "cwc", "C": "cat", "factor": "cat"}
    if fn not in kinds:
        raise FormulaError(f"unknown function '{fn}'; valid: cm(x), cwc(x), C(x), factor(x), "
                           "I(expression)", formula, span)
    commas = _top_level(_mask(arg), ",") if fn in ("cm", "cwc") else []
    group = ""
    if len(commas) == 1:
        written = arg[commas[0] + 1:].strip()
        group = _group(fn, arg[:commas[0]].strip(), written[1:] if written[:1] == "_" else
                       written, formula, _group_span(cut, source) or span, groups)
        arg = arg[:commas[0]].strip()
    column = _column_name(arg) if len(commas) <= 1 else None
    inner = _CALL.match(arg) if column is None and fn in ("cm", "cwc") else None
    if inner is not None and inner.group("fn") in ("C", "factor"):  # cm(C(x)): proportions
        column = _column_name(inner.group("arg"))
    if column is None:
        takes = "a column name and optionally a grouping factor, cm(x, g)," if commas else \
            "a single column name,"
        raise FormulaError(f"{fn}() takes {takes} got '{m.group('arg').strip()}'", formula,
                           span)
    return Factor(kinds[fn], column, group=group)  # type: ignore[arg-type]


def _group(fn: str, x: str, text: str, formula: str, span: tuple[int, int],
           groups: _Groups) -> str:
    """The resolved grouping factor ``g`` of ``cm(x, g)`` (``span``: where ``g`` stands)."""
    g = _column_name(text)
    if g is None:
        raise FormulaError(f"the grouping factor of {fn}({x}, ...) must be the name of a "
                           "grouping factor or of one of its columns", formula, span)
    if not groups.factors:
        raise FormulaError(f"{fn}({x}, {g}) averages over the clusters of '{g}', but the model "
                           f"has no random part; add one such as (1 | {g})", formula, span)
    resolved = groups.resolve(g)
    if resolved is None:
        several = [n for n, f in zip(groups.names, groups.factors, strict=True) if g in f]
        if several:
            raise FormulaError(f"'{g}' in {fn}({x}, {g}) is a column of several grouping "
                               f"factors ({', '.join(several)}); name one of them, e.g. "
                               f"{fn}({x}, {several[0]})", formula, span)
        columns = (c for f in groups.factors for c in f)
        valid = [*groups.names, *(c for c in columns if groups.resolve(c) is not None)]
        raise FormulaError(f"'{g}' in {fn}({x}, {g}) is not a grouping factor of the model; "
                           f"valid: {', '.join(dict.fromkeys(valid))}", formula, span)
    return resolved


def _group_span(cut: _Cut, source: tuple[int, int] | None) -> tuple[int, int] | None:
    """Where the ``g`` of the call ``cm(x, g)`` at ``source`` stands in the formula."""
    if source is None:
        return None
    written = _mask(cut.text[source[0]:source[1]])
    commas, close = _arguments(written, written.find("("))
    if len(commas) != 1 or close < 0:
        return None
    piece = written[commas[0] + 1:close]
    lo = source[0] + commas[0] + 1 + len(piece) - len(piece.lstrip())
    return cut.span(lo, source[0] + commas[0] + 1 + len(piece.rstrip()))


def _arguments(masked: str, open_at: int) -> tuple[list[int], int]:
    """The positions of the commas between the arguments of the call whose ``(`` is at
    ``open_at`` in masked text, and of its ``)`` (-1 if unbalanced)."""
    depth = 0
    commas: list[int] = []
    for i in range(open_at, len(masked)):
        depth += {"(": 1, ")": -1}.get(masked[i], 0)
        if depth == 0:
            return commas, i
        if masked[i] == "," and depth == 1:
            commas.append(i)
    return commas, -1


def _nested_categorical(formula: str, masked: str) -> tuple[str, ...]:
    """Columns written ``cm(C(x))`` or ``cwc(factor(x))``: declared categorical."""
    names = (_column_name(formula[m.start("arg"):m.end("arg")])
             for m in _NESTED_CATEGORICAL.finditer(masked))
    return tuple(dict.fromkeys(n for n in names if n is not None))


def _source(factor: Any, cut: _Cut) -> tuple[int, int] | None:
    """Where formulaic's token of ``factor`` starts and ends in the cut text, if it knows."""
    token = getattr(factor, "token", None)
    start, end = getattr(token, "source_start", None), getattr(token, "source_end", None)
    if start is None or end is None or not 0 <= start <= end < len(cut.text):
        return None
    return (start, end + 1)


def _expression(arg: str, formula: str, cut: _Cut, source: tuple[int, int] | None,
                span: tuple[int, int]) -> Factor:
    """The ``I(arg)`` factor: its expression parsed from the text the user wrote."""
    offset, text = 0, arg
    if source is not None:
        written = cut.text[source[0]:source[1]]
        m = re.fullmatch(r"I\s*\((?P<arg>.*)\)\s*", written, re.S)
        if m is not None:
            lo, hi = source[0] + m.start("arg"), source[0] + m.end("arg")
            o_lo, o_hi = cut.origin[lo], cut.origin[hi - 1] + 1 if hi > lo else cut.origin[lo]
            offset, text = o_lo, formula[o_lo:o_hi]
            span = cut.span(*source)
    label = f"I({text.strip()})"
    expr = parse_expr(text, label=label, formula=formula, offset=offset)
    if not expr.names:
        raise FormulaError(f"{label} uses no column", formula, span)
    return Factor("expr", to_text(expr), columns=expr.names)
