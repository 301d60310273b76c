"""The one safe expression language: ``I(...)`` terms and expression-derived variables.

An expression is parsed with :mod:`ast` into a small immutable tree (:class:`Num`,
:class:`Col`, :class:`Unary`, :class:`Binary`, :class:`Compare`, :class:`Call`) and
evaluated by walking that tree with numpy. It is never evaluated as Python: no
``eval``, no ``exec``, no attribute or item access, no Python function is ever
called, so neither a formula nor a plan spec can run code. What an expression may
contain, and nothing else:

* **column names**: Python-style names (``iqv``, ``x_1``), R-style dotted names
  (``read.dis``), or any text in backticks (```` `read dis` ````, ```` `2nd wave` ````;
  inside, ``\\``` is a backtick and ``\\\\`` a backslash). Where the caller names the
  allowed columns (a term's own columns, a derived variable's parents), only those;
* **numbers**: integer and decimal literals (``2``, ``0.5``, ``1e-3``), no booleans,
  strings, complex numbers or ``None``;
* **operators**: ``+ - * / ** % //``, unary ``-`` and ``+``, parentheses, and the
  comparisons ``== != < <= > >=`` (1.0 where true, 0.0 where false; not chained);
* **functions**, bare or as ``np.f`` / ``numpy.f``: ``log exp sqrt abs log1p expm1
  log2 log10 sin cos tan tanh floor ceil round sign`` (one argument, numpy's ufunc
  of that name; ``round`` is numpy's round-half-to-even, as R's) and ``pow minimum
  maximum`` (two arguments, elementwise).

Anything else (strings, attribute access, indexing, lambdas, keyword arguments,
comprehensions, ``and``/``or``, ``^``, names starting with ``__``, more than
:data:`MAX_LENGTH` characters or :data:`MAX_DEPTH` levels of nesting) is a
:class:`~recipe_compiler.errors.FormulaError` that names the offending piece, shows
where it is, and lists what is allowed.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Iterable
from functools import lru_cache

from ..errors import FormulaError, suggest
from .expr_tree import (
    AST_BINARY,
    AST_COMPARE,
    AST_UNARY,
    FUNCTIONS,
    PREFIXES,
    Binary,
    Call,
    Col,
    Compare,
    Expr,
    Num,
    Unary,
    degree,
    evaluate,
    is_number,
    quote_name,
    rename,
    to_r,
    to_text,
    walk,
)

__all__ = ["FUNCTIONS", "MAX_DEPTH", "MAX_LENGTH", "Binary", "Call", "Col", "Compare", "Expr",
           "Num", "Unary", "degree", "evaluate", "parse_expr", "quote_name", "read_quoted",
           "rename", "to_r", "to_text", "walk"]

#: Longest expression text accepted, in characters.
MAX_LENGTH = 2000
#: Deepest nesting of operators and calls accepted.
MAX_DEPTH = 100

ALLOWED = ("allowed: column names (in backticks if not plain names), numbers, + - * / ** % //, "
           "unary -, parentheses, comparisons == != < <= > >= (1 if true, else 0) and the "
           f"functions {', '.join(FUNCTIONS)} (bare or as np.log, ...)")


# ----------------------------------------------------------------------------- parsing


def parse_expr(text: str, allowed: Iterable[str] | None = None, *, label: str | None = None,
               formula: str | None = None, offset: int = 0) -> Expr:
    """Parse and validate an expression.

    Parameters
    ----------
    text : str
        The expression, e.g. ``"iqv ** 2"``, ``"np.log(`read dis`)"``, ``"den == 2"``.
    allowed : iterable of str, optional
        The column names it may use; ``None``: any name is a column.
    label : str, optional
        How messages call the expression (default ``the expression 'text'``), e.g.
        ``I(x ** 2)``.
    formula, offset : optional
        The text to show under errors and where ``text`` starts in it (the formula
        holding an ``I()`` term), so that the caret points into the formula.

    Returns
    -------
    Expr

    Raises
    ------
    FormulaError
        Naming the offending piece, with a caret under it and what is allowed.
    """
    if not isinstance(text, str):
        raise FormulaError(f"an expression must be text, got {type(text).__name__}")
    return _parse(text, None if allowed is None else frozenset(allowed), label, formula, offset)


@lru_cache(maxsize=1024)
def _parse(text: str, allowed: frozenset[str] | None, label: str | None, formula: str | None,
           offset: int) -> Expr:
    return _Parser(text, allowed, label, formula, offset).parse()


class _Parser:
    """One parse: the text with backtick names replaced, and error reporting."""

    def __init__(self, text: str, allowed: frozenset[str] | None, label: str | None,
                 formula: str | None, offset: int) -> None:
        self.text = text
        self.allowed = allowed
        self.label = label or f"the expression {text[:80]!r}" + "..." * (len(text) > 80)
        self.formula = formula
        self.offset = offset
        self.quoted: dict[str, str] = {}

    def fail(self, message: str, span: tuple[int, int] | None = None) -> FormulaError:
        shown = self.text if self.formula is None else self.formula
        if span is not None:
            span = (span[0] + self.offset, span[1] + self.offset)
        return FormulaError(f"{message}; {ALLOWED}", shown, span)

    def parse(self) -> Expr:
        if len(self.text) > MAX_LENGTH:
            raise self.fail(f"{self.label} is {len(self.text)} characters long; at most "
                            f"{MAX_LENGTH} are allowed", (MAX_LENGTH, len(self.text)))
        if not self.text.strip():
            raise self.fail(f"{self.label} is empty", (0, len(self.text)))
        source = self._replace_backticks()
        if "#" in source:
            at = source.index("#")
            raise self.fail(f"the comment '#' in {self.label} is not allowed", (at, at + 1))
        # one line, without its leading blanks, so that Python reads it as an expression
        self._lead = len(source) - len(source.lstrip())
        self._source = re.sub(r"[\r\n]", " ", source[self._lead:])
        try:
            with warnings.catch_warnings():  # Python's hints on odd literals are not ours
                warnings.simplefilter("ignore")
                tree = ast.parse(self._source, mode="eval")
        except SyntaxError as exc:
            raise self.fail(f"{self.label} is not a valid expression ({exc.msg})",
                            self._syntax_span(exc)) from None
        except (ValueError, MemoryError, RecursionError) as exc:  # NUL bytes, deep nesting
            raise self.fail(f"{self.label} cannot be parsed ({type(exc).__name__}: {exc})",
                            (0, len(self.text))) from None
        return self._convert(tree.body, 1)

    def _replace_backticks(self) -> str:
        """The text with each `quoted name` replaced by a placeholder name of equal length."""
        text, out, i, k = self.text, [], 0, 0
        while i < len(text):
            if text[i] != "`":
                out.append(text[i])
                i += 1
                continue
            quoted = read_quoted(text, i)
            if quoted is None:
                raise self.fail(f"unterminated backtick in {self.label}", (i, len(text)))
            end, name = quoted
            if not name:
                raise self.fail(f"empty name `` in {self.label}", (i, end))
            for at in (i - 1, end):
                if 0 <= at < len(text) and (text[at].isalnum() or text[at] in "_.`"):
                    raise self.fail(f"a backtick-quoted name in {self.label} must stand "
                                    "apart from other names and numbers", (i, end))
            while True:
                k += 1
                holder = _placeholder(k, end - i)
                if holder not in text:
                    break
            self.quoted[holder] = name
            out.append(holder)
            i = end
        return "".join(out)

    def _syntax_span(self, exc: SyntaxError) -> tuple[int, int]:
        """Where a syntax error is (its offsets count characters, 1-based; 0: at the end)."""
        last = max(len(self.text) - 1, 0)
        if not exc.offset or exc.lineno != 1:
            return (last, last + 1)
        start = min(self._lead + exc.offset - 1, last)
        width = exc.end_offset - exc.offset if exc.end_lineno == 1 and exc.end_offset else 1
        return (start, min(start + max(width, 1), len(self.text)))

    def _char(self, col: int) -> int:
        """Offset in the text of an ast column (UTF-8 bytes into the one-line source)."""
        prefix = self._source.encode("utf-8", "surrogatepass")[:max(col, 0)]
        return min(self._lead + len(prefix.decode("utf-8", "ignore")), len(self.text))

    def _span(self, node: ast.AST) -> tuple[int, int]:
        start = self._char(getattr(node, "col_offset", 0))
        end = self._char(getattr(node, "end_col_offset", None) or 0)
        return (start, max(end, start + 1))

    def _src(self, node: ast.AST) -> str:
        start, end = self._span(node)
        return self.text[start:end]

    def _convert(self, node: ast.expr, depth: int) -> Expr:
        if depth > MAX_DEPTH:
            raise self.fail(f"{self.label} is nested more than {MAX_DEPTH} levels deep",
                            self._span(node))
        if isinstance(node, ast.Constant):
            return self._number(node)
        if isinstance(node, (ast.Name, ast.Attribute)):
            return self._column(node)
        if isinstance(node, ast.UnaryOp) and type(node.op) in AST_UNARY:
            return Unary(AST_UNARY[type(node.op)], self._convert(node.operand, depth + 1))
        if isinstance(node, ast.BinOp) and type(node.op) in AST_BINARY:
            return Binary(AST_BINARY[type(node.op)], self._convert(node.left, depth + 1),
                          self._convert(node.right, depth + 1))
        if isinstance(node, ast.Compare):
            return self._compare(node, depth)
        if isinstance(node, ast.Call):
            return self._call(node, depth)
        what, hint = _DESCRIPTIONS.get(type(node).__name__, ("the construct", ""))
        raise self.fail(f"{what} '{self._src(node)}' in {self.label} is not allowed{hint}",
                        self._span(node))

    def _number(self, node: ast.Constant) -> Num:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            what = ("text" if isinstance(value, (str, bytes)) else
                    "the complex number" if isinstance(value, complex) else "the constant")
            raise self.fail(f"{what} {self._src(node)} in {self.label} is not allowed; an "
                            "expression computes with numbers and columns only",
                            self._span(node))
        if not is_number(value):
            raise self.fail(f"the number {self._src(node)} in {self.label} is too large",
                            self._span(node))
        return Num(value)

    def _column(self, node: ast.Name | ast.Attribute) -> Col:
        span = self._span(node)
        name = _dotted(node)
        if name is None:
            raise self.fail(f"attribute access '{self._src(node)}' in {self.label} is not "
                            "allowed", span)
        root, _, rest = name.partition(".")
        if name in self.quoted:
            name = self.quoted[name]
        elif root in ("np", "numpy") and rest:
            known = rest in FUNCTIONS
            raise self.fail(f"'{name}' in {self.label} is " + (
                f"a function; call it, as in {name}(x)" if known else "not an allowed function"
                " (numpy is not reachable from an expression; only the functions listed are)"),
                span)
        else:
            written = re.sub(r"\s+", "", self._src(node))
            parts = name.split(".")
            if any(p.startswith("_") for p in parts[1:]) or name.startswith("__"):
                raise self.fail(f"'{written}' in {self.label} is not allowed: a name may not "
                                "start with '__' nor contain '._' (quote a column of that name "
                                "with backticks)", span)
            if written != name:
                raise self.fail(f"the name '{written}' in {self.label} is not written plainly "
                                "(compatibility characters or spaces); quote it with backticks",
                                span)
        if self.allowed is not None and name not in self.allowed:
            raise self.fail(f"'{name}' in {self.label} is not one of its columns; "
                            f"{suggest(name, sorted(self.allowed))}", span)
        return Col(name)

    def _compare(self, node: ast.Compare, depth: int) -> Compare:
        if len(node.ops) > 1:
            raise self.fail(f"the chained comparison '{self._src(node)}' in {self.label} is not "
                            "allowed; write one comparison per pair, e.g. (a < b) * (b < c)",
                            self._span(node))
        op = type(node.ops[0])
        if op not in AST_COMPARE:
            raise self.fail(f"the comparison '{self._src(node)}' in {self.label} is not "
                            "allowed ('in', 'is' and 'not in' compare Python objects)",
                            self._span(node))
        return Compare(AST_COMPARE[op], self._convert(node.left, depth + 1),
                       self._convert(node.comparators[0], depth + 1))

    def _call(self, node: ast.Call, depth: int) -> Call:
        func = node.func
        name = _dotted(func) if isinstance(func, (ast.Name, ast.Attribute)) else None
        if name is None or name in self.quoted:
            raise self.fail(f"calling '{self._src(func)}' in {self.label} is not allowed; only "
                            "the functions listed can be called", self._span(func))
        prefix = next((p for p in PREFIXES if name.startswith(p)), "")
        fn = name[len(prefix):]
        written = re.sub(r"\s+", "", self._src(func))
        if fn not in FUNCTIONS or written != name:
            raise self.fail(f"unknown function '{written}' in {self.label}", self._span(func))
        for kw in node.keywords:
            shown = f"{kw.arg}=" if kw.arg else "**"
            raise self.fail(f"the keyword argument '{shown}' of {name}() in {self.label} is not "
                            "allowed", self._span(kw))
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self.fail(f"the starred argument '{self._src(arg)}' in {self.label} is "
                                "not allowed", self._span(arg))
        if len(node.args) != FUNCTIONS[fn]:
            n = FUNCTIONS[fn]
            raise self.fail(f"{name}() takes {n} argument{'s' * (n > 1)}, got {len(node.args)} "
                            f"in {self.label}", self._span(node))
        return Call(fn, tuple(self._convert(a, depth + 1) for a in node.args), prefix)


def read_quoted(text: str, start: int) -> tuple[int, str] | None:
    """The backtick-quoted name opening at ``text[start]``: where it ends (after the closing
    backtick) and the name (``\\x`` is ``x``); ``None`` if it is not closed."""
    i, name = start + 1, []
    while i < len(text) and text[i] != "`":
        if text[i] == "\\" and i + 1 < len(text):
            i += 1
        name.append(text[i])
        i += 1
    return (i + 1, "".join(name)) if i < len(text) else None


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` of a chain of attribute accesses on a name, else ``None``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


_COMPREHENSION = ("the comprehension", "")
_DESCRIPTIONS = {
    "BoolOp": ("the logical operator", " (multiply comparisons instead: (a > 0) * (b > 0))"),
    "UnaryOp": ("the operator", " (for a negation write 1 - (comparison))"),
    "BinOp": ("the bitwise operator", " ('^' is not a power: write x ** 2)"),
    "Lambda": ("the lambda", ""), "IfExp": ("the conditional", " (write (x > 0) * x instead)"),
    "Dict": ("the dictionary", ""), "Set": ("the set", ""), "List": ("the list", ""),
    "Tuple": ("the tuple", ""), "ListComp": _COMPREHENSION, "SetComp": _COMPREHENSION,
    "DictComp": _COMPREHENSION, "GeneratorExp": _COMPREHENSION, "Await": ("await", ""),
    "Yield": ("yield", ""), "YieldFrom": ("yield", ""), "JoinedStr": ("the f-string", ""),
    "Subscript": ("indexing", ""), "Starred": ("the starred expression", ""),
    "NamedExpr": ("the assignment", ""), "Slice": ("slicing", "")}


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _placeholder(k: int, length: int) -> str:
    """A Python name of ``length`` characters (at least 3) standing for the k-th quoted name."""
    body = ""
    while k:
        k, r = divmod(k, len(_LETTERS))
        body = _LETTERS[r] + body
    holder = f"_{body}"
    if len(holder) > length:
        raise FormulaError("too many backtick-quoted names in one expression")
    return holder.ljust(length, "_")
