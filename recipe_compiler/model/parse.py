"""lme4-style formula text -> :class:`~recipe_compiler.spec.ModelSpec`, and design matrices.

The only module that imports formulaic. formulaic has no ``|``, so the random
parts ``( ... | g)`` are cut out first (keeping a map back to the original
character positions, so that errors point into the text the user wrote) and the
fixed part is handed to formulaic.
"""

from __future__ import annotations

import ast
import builtins
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from formulaic import Formula, model_matrix
from formulaic.errors import FormulaSyntaxError

from ..analysis.design import Design
from ..data.schema import categorical
from ..errors import DataError, FormulaError, render_span, suggest
from .spec import Factor, ModelSpec, RandomEffects, Term, find_spans

__all__ = ["build_design", "parse_formula"]

_CALL = re.compile(r"^(?P<fn>[A-Za-z_][\w.]*)\((?P<arg>.*)\)$", re.S)
_NAME = re.compile(r"^[A-Za-z_.][\w.]*$")
_AS_FACTOR = re.compile(r"(?<![\w.])as\.(?=factor\s*\()")
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

    def without(self, pattern: re.Pattern[str]) -> _Cut:
        """The text with every match of ``pattern`` removed, the rest keeping its origin."""
        keep = [True] * len(self.text)
        for m in pattern.finditer(self.text):
            keep[m.start():m.end()] = [False] * (m.end() - m.start())
        return _Cut("".join(c for c, k in zip(self.text, keep, strict=True) if k),
                    tuple(o for o, k in zip(self.origin, keep, strict=True) if k))


@lru_cache(maxsize=256)
def parse_formula(formula: str) -> ModelSpec:
    """Parse an lme4-style two-level formula.

    Parameters
    ----------
    formula : str
        ``y ~ fixed + (random | g)``. Fixed terms use ``+ - * : 1 0``, ``I(...)``,
        ``C(x)`` / ``factor(x)`` (categorical), ``cm(x)`` (cluster mean of ``x``
        over ``g``) and ``cwc(x)`` (``x`` centred within cluster). At most one
        grouping factor; the random part may be omitted (single-level model).

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
    tilde = _top_level(formula, "~")
    if not tilde:
        raise FormulaError("the formula has no '~'; expected 'outcome ~ terms'", formula,
                           (0, len(formula)))
    if len(tilde) > 1:
        raise FormulaError("the formula has more than one '~'", formula, (tilde[1], tilde[1] + 1))
    outcome = _outcome(formula, tilde[0])
    if not formula[tilde[0] + 1:].strip():
        raise FormulaError("the formula has no terms right of '~'; write 'outcome ~ 1' for an "
                           "intercept-only model", formula, (tilde[0], tilde[0] + 1))
    randoms, cut = _cut_random(formula, tilde[0])
    random = _random_effects(formula, randoms)
    intercept, terms = _fixed_terms(formula, cut)
    _check_roles(formula, outcome, terms, random, cut)
    names = [outcome, *(c for t in terms for c in t.columns)]
    if random:
        names += [c for t in random.slopes for c in t.columns] + [random.cluster]
    return ModelSpec(formula=formula, outcome=outcome, intercept=intercept, terms=terms,
                     random=random, spans=find_spans(formula, dict.fromkeys(names)))


def _top_level(text: str, char: str) -> list[int]:
    """Positions of ``char`` outside parentheses."""
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
    name = lhs.strip()
    start = len(lhs) - len(lhs.lstrip())
    if not name:
        raise FormulaError("the formula has no outcome left of '~'", formula, (tilde, tilde + 1))
    if not _NAME.match(name):
        raise FormulaError("the outcome must be a single column name (transform it in the data "
                           "first)", formula, (start, start + len(name)))
    return name


def _matching(text: str, open_at: int) -> int:
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    raise FormulaError("unbalanced parenthesis", text, (open_at, open_at + 1))


def _cut_random(formula: str, tilde: int) -> tuple[list[tuple[int, int]], _Cut]:
    """Find ``( ... | g)`` groups right of ``~`` and cut them (and their '+') out."""
    groups: list[tuple[int, int]] = []
    i = tilde + 1
    while i < len(formula):
        if formula[i] == "(":
            close = _matching(formula, i)
            if "|" in formula[i:close]:
                groups.append((i, close + 1))
            i = close + 1
        else:
            if formula[i] == ")":
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


def _random_effects(formula: str, groups: list[tuple[int, int]]) -> RandomEffects | None:
    if not groups:
        return None
    if len(groups) > 1:
        start, end = groups[1]
        raise FormulaError("only one random-effects group is supported yet; write all random "
                           "terms of one cluster in a single group, e.g. (1 + x | g); crossed or "
                           "several grouping factors are not supported", formula, (start, end))
    start, end = groups[0]
    inner = formula[start + 1:end - 1]
    bar = inner.index("|")
    if inner[bar:bar + 2] == "||":
        raise FormulaError("uncorrelated random effects '||' are not supported yet; use '|'",
                           formula, (start + 1 + bar, start + 3 + bar))
    rhs = inner[bar + 1:]
    cluster = rhs.strip()
    rstart = start + 1 + bar + 1 + (len(rhs) - len(rhs.lstrip()))
    if not _NAME.match(cluster):
        raise FormulaError("the grouping factor must be a single column name; nested (a/b) or "
                           "interacted (a:b) grouping factors are not supported yet", formula,
                           (rstart, rstart + len(cluster)))
    lhs = _Cut(inner[:bar], tuple(range(start + 1, start + 1 + bar)))
    intercept, slopes = _fixed_terms(formula, lhs)
    for t in slopes:
        for f in t.factors:
            if cluster in f.columns:
                raise FormulaError(f"the cluster variable '{cluster}' cannot have a random slope "
                                   "over itself", formula, lhs.find(f.name))
    return RandomEffects(cluster=cluster, intercept=intercept, slopes=slopes, span=(start, end))


def _check_roles(formula: str, outcome: str, terms: tuple[Term, ...],
                 random: RandomEffects | None, cut: _Cut) -> None:
    """Reject a column in two roles, and cluster means in a model without clusters."""
    cluster = random.cluster if random else None
    if outcome == cluster:
        start = formula.index(outcome)
        raise FormulaError(f"the outcome '{outcome}' is also the cluster variable", formula,
                           (start, start + len(outcome)))
    for t in (*terms, *(random.slopes if random else ())):
        if outcome in t.columns:
            raise FormulaError(f"the outcome '{outcome}' also appears right of '~' (in "
                               f"'{t.name}'); a model cannot predict its outcome from itself",
                               formula, _find_after(formula, outcome))
    for t in terms:
        for f in t.factors:
            if cluster in f.columns:
                raise FormulaError(f"the cluster variable '{cluster}' cannot be a fixed term; "
                                   "its effect is the random intercept of "
                                   f"(1 | {cluster})", formula, cut.find(f.name))
            if f.kind in ("cm", "cwc") and random is None:
                raise FormulaError(f"{f.name} needs clusters: add a random part such as "
                                   "(1 | cluster), or drop the cluster mean", formula,
                                   cut.find(f.name))


def _find_after(formula: str, name: str) -> tuple[int, int] | None:
    """Span of ``name`` in ``formula`` right of the '~'."""
    tilde = _top_level(formula, "~")[0]
    spans = find_spans(formula[tilde:], [name])
    return (tilde + spans[0][1], tilde + spans[0][2]) if spans else None


def _fixed_terms(formula: str, cut: _Cut) -> tuple[bool, tuple[Term, ...]]:
    cut = cut.without(_AS_FACTOR)  # R's as.factor(x) is factor(x); `as` is a Python keyword
    text = cut.text if cut.text.strip() else "1"
    try:
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
        terms.append(Term(tuple(_factor(str(f.expr), formula, cut) for f in t.factors)))
    return intercept, tuple(terms)


def _formulaic_error(exc: FormulaSyntaxError, formula: str, cut: _Cut) -> FormulaError:
    """Re-raise formulaic's error with its marked span mapped into the user's formula."""
    message, _, context = str(exc).partition("\n\n")
    m = _FORMULAIC_SPAN.search(context)
    span = cut.span(m.start(), m.start() + len(m.group("body"))) if m else (0, len(formula))
    return FormulaError(message.strip(), formula, span)


def _factor(expr: str, formula: str, cut: _Cut) -> Factor:
    expr = expr.strip()
    span = cut.find(expr) or cut.span(0, len(cut.text))
    if _NAME.match(expr):
        return Factor("var", expr)
    m = _CALL.match(expr)
    if m is None:
        raise FormulaError(f"cannot use '{expr}' as a term", formula, span)
    fn, arg = m.group("fn"), m.group("arg").strip()
    if fn == "I":
        return Factor("expr", arg, columns=_expr_columns(arg, formula, span))
    kinds = {"cm": "cm", "cwc": "cwc", "C": "cat", "factor": "cat"}
    if fn not in kinds:
        raise FormulaError(f"unknown function '{fn}'; valid: cm(x), cwc(x), C(x), factor(x), "
                           "I(expression)", formula, span)
    if not _NAME.match(arg):
        raise FormulaError(f"{fn}() takes a single column name, got '{arg}'", formula, span)
    return Factor(kinds[fn], arg)  # type: ignore[arg-type]


def _expr_columns(expr: str, formula: str, span: tuple[int, int]) -> tuple[str, ...]:
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        raise FormulaError(f"I({expr}) is not a valid expression", formula, span) from None
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call)
              and isinstance(n.func, ast.Name)}
    unknown = sorted(c for c in called if not hasattr(builtins, c))
    if unknown:
        raise FormulaError(f"unknown function '{unknown[0]}' in I({expr}); I() evaluates a "
                           "Python expression with numpy as np: write e.g. "
                           f"np.{unknown[0]}(...) for a numpy function", formula, span)
    modules = {n.value.id for n in ast.walk(tree) if isinstance(n, ast.Attribute)
               and isinstance(n.value, ast.Name) and n.value.id == "np"}
    names = [n.id for n in sorted((n for n in ast.walk(tree) if isinstance(n, ast.Name)),
                                  key=lambda n: n.col_offset)
             if n.id not in called and n.id not in modules]
    if not names:
        raise FormulaError(f"I({expr}) uses no column", formula, span)
    return tuple(dict.fromkeys(names))


# ----------------------------------------------------------------------------- design matrices


def build_design(model: str | ModelSpec, data: pd.DataFrame) -> Design:
    """Fixed and random design matrices of a two-level model, on its complete rows.

    ``cm(x)`` is the mean of the observed ``x`` of each cluster, computed before
    rows with a missing model variable are left out (as the FIMD examples do);
    ``cwc(x)`` is ``x - cm(x)``. Categorical factors use treatment contrasts with
    the levels found in the whole column.

    Parameters
    ----------
    model : str or ModelSpec
        An lme4-style formula with one random-effects group.
    data : pandas.DataFrame

    Returns
    -------
    Design
    """
    spec = parse_formula(model) if isinstance(model, str) else model
    if spec.random is None:
        raise FormulaError("a mixed model needs a random part such as (1 | cluster)",
                           spec.formula, (len(spec.formula), len(spec.formula) + 1))
    check_columns(spec, data)
    cluster = spec.random.cluster
    used = [c for c in spec.columns if c != cluster] + [cluster]
    complete = data[used].notna().all(axis=1).to_numpy()
    if not complete.any():
        raise DataError(f"no row is complete for the model variables {', '.join(used)}")
    sub = _design_columns(spec, data, complete)
    n = int(complete.sum())
    X, x_names = _matrix(spec.terms, spec.intercept, sub, n)
    Z, z_names = _matrix(spec.random.slopes, spec.random.intercept, sub, n)
    codes, labels = pd.factorize(data[cluster].to_numpy()[complete], sort=True)
    return Design(
        y=data[spec.outcome].to_numpy(dtype=float, na_value=np.nan)[complete],
        X=X, x_names=x_names, Z=Z, z_names=z_names,
        groups=np.asarray(codes, dtype=np.intp), group_labels=np.asarray(labels),
        outcome=spec.outcome, cluster=cluster, rows=data.index[complete],
        n_dropped=int((~complete).sum()),
    )


def check_columns(spec: ModelSpec, data: pd.DataFrame) -> None:
    """Raise a :class:`DataError` with a caret if a formula column is not in ``data``."""
    cols = [*spec.columns, *([spec.cluster] if spec.cluster else [])]
    for col in cols:
        if col not in data.columns:
            what = "cluster variable" if col == spec.cluster else "column"
            span = spec.span_of(col, "random") if col == spec.cluster else spec.span_of(col)
            where = f"\n{render_span(spec.formula, span)}" if span else ""
            raise DataError(f"{what} '{col}' of the formula is not in the data; "
                            f"{suggest(col, map(str, data.columns))}{where}")


Columns = dict[str, "np.ndarray | pd.Categorical"]


def _design_columns(spec: ModelSpec, data: pd.DataFrame, rows: np.ndarray) -> Columns:
    """The factors' values on ``rows``, named as the factors (``cm(iqv)``, ``C(den)``).

    Cluster means use every observed value of the cluster, not only ``rows``.
    Categorical factors are pandas Categoricals with the levels of the whole column.
    """
    assert spec.cluster is not None
    codes, n_groups = _codes(data[spec.cluster])
    out: Columns = {}
    slopes = spec.random.slopes if spec.random else ()
    for t in (*spec.terms, *slopes):
        for f in t.factors:
            if f.name in out:
                continue
            if f.kind == "expr":
                env = {c: data[c].to_numpy(dtype=float) for c in f.columns}
                value = eval(compile(f.column, "<I()>", "eval"), {"np": np}, env)
                out[f.name] = np.broadcast_to(np.asarray(value, dtype=float), len(data))[rows]
                continue
            if f.kind == "cat":
                out[f.name] = pd.Categorical(categorical(data[f.column]).array)[rows]
                continue
            x = data[f.column].to_numpy(dtype=float, na_value=np.nan)
            if f.kind == "var":
                out[f.name] = x[rows]
                continue
            seen = ~np.isnan(x)
            sums = np.bincount(codes[seen], weights=x[seen], minlength=n_groups)
            counts = np.bincount(codes[seen], minlength=n_groups)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = (sums / counts)[codes]
            out[f.name] = (mean if f.kind == "cm" else x - mean)[rows]
    return out


def _codes(x: pd.Series) -> tuple[np.ndarray, int]:
    codes, labels = pd.factorize(x, sort=True)
    return np.asarray(codes, dtype=np.intp), len(labels)


def _matrix(terms: tuple[Term, ...], intercept: bool, frame: Columns,
            n: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """Model matrix of ``terms``: numpy products, treatment contrasts for categoricals.

    A categorical factor is coded by treatment contrasts (``C(x)[T.level]``)
    when the term without it is also in the model (or is the intercept), else by
    one indicator per level (``C(x)[level]``), as R and formulaic do. Terms with
    more than one categorical factor are left to formulaic.
    """
    if any(sum(f.kind == "cat" for f in t.factors) > 1 for t in terms):
        return _formulaic_matrix(terms, intercept, frame)
    present = {t.key for t in terms}
    columns: list[np.ndarray] = [np.ones(n)] if intercept else []
    names: list[str] = ["(Intercept)"] if intercept else []
    for t in terms:
        block, labels = np.ones((n, 1)), [""]
        for f in t.factors:
            if f.kind == "cat":
                margin = t.key - {f}
                reduced = (not margin and intercept) or (margin and margin in present)
                values = frame[f.name]
                assert isinstance(values, pd.Categorical)
                cols, flabels = _dummies(values, f.name, bool(reduced))
            else:
                cols, flabels = np.asarray(frame[f.name], dtype=float)[:, None], [f.name]
            block = (block[:, :, None] * cols[:, None, :]).reshape(n, -1)
            labels = [f"{a}:{b}" if a else b for a in labels for b in flabels]
        columns.extend(block.T)
        names.extend(labels)
    X = np.column_stack(columns) if columns else np.empty((n, 0))
    return X, tuple(names)


def _dummies(x: pd.Categorical, name: str, reduced: bool) -> tuple[np.ndarray, list[str]]:
    levels = list(x.categories)
    codes = np.asarray(x.codes)
    keep = levels[1:] if reduced else levels
    first = 1 if reduced else 0
    cols = (codes[:, None] == np.arange(first, len(levels))[None, :]).astype(float)
    cols[codes < 0] = np.nan
    prefix = "T." if reduced else ""
    return cols, [f"{name}[{prefix}{lv}]" for lv in keep]


def _formulaic_matrix(terms: tuple[Term, ...], intercept: bool,
                      frame: Columns) -> tuple[np.ndarray, tuple[str, ...]]:
    parts = ["1" if intercept else "0"]
    parts += [":".join(f"`{f.name}`" for f in t.factors) for t in terms]
    mm = model_matrix(" + ".join(parts), pd.DataFrame(frame), output="pandas",
                      na_action="ignore")
    names = tuple("(Intercept)" if c == "Intercept" else c.replace("`", "")
                  for c in mm.columns)
    return np.asarray(mm, dtype=float), names
