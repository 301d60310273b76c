"""The expression tree of :mod:`recipe_compiler.model.expr`, and what is computed from it.

Immutable nodes (:class:`Num`, :class:`Col`, :class:`Unary`, :class:`Binary`,
:class:`Compare`, :class:`Call`), their numpy evaluation, their degree as a
polynomial in a column, renaming of columns, and the two text forms: canonical
Python-style text (:func:`to_text`, which :func:`~recipe_compiler.model.expr.parse_expr`
reads back to an equal tree) and R code (:func:`to_r`). Import these from
:mod:`recipe_compiler.model.expr`; this module knows no parsing.
"""

from __future__ import annotations

import ast
import keyword
import math
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..errors import FormulaError, suggest

__all__ = ["FUNCTIONS", "PREFIXES", "Binary", "BinaryOp", "Call", "Col", "Compare", "CompareOp",
           "Expr", "Num", "Unary", "UnaryOp", "degree", "evaluate", "is_number", "quote_name",
           "rename", "to_r", "to_text", "walk"]

_Ufunc = Callable[..., np.ndarray]
_UNARY: dict[str, _Ufunc] = {
    "log": np.log, "exp": np.exp, "sqrt": np.sqrt, "abs": np.abs, "log1p": np.log1p,
    "expm1": np.expm1, "log2": np.log2, "log10": np.log10, "sin": np.sin, "cos": np.cos,
    "tan": np.tan, "tanh": np.tanh, "floor": np.floor, "ceil": np.ceil, "round": np.round,
    "sign": np.sign}
_BINARY: dict[str, _Ufunc] = {"pow": np.power, "minimum": np.minimum, "maximum": np.maximum}
#: The functions an expression may call, by number of arguments.
FUNCTIONS: dict[str, int] = {**dict.fromkeys(_UNARY, 1), **dict.fromkeys(_BINARY, 2)}
#: How a call may be prefixed (besides bare): ``np.log``, ``numpy.log``.
PREFIXES = ("np.", "numpy.")
_R_FUNCTIONS = {"ceil": "ceiling", "minimum": "pmin", "maximum": "pmax"}

BinaryOp = Literal["+", "-", "*", "/", "**", "%", "//"]
CompareOp = Literal["==", "!=", "<", "<=", ">", ">="]
UnaryOp = Literal["-", "+"]
#: Python's ast operator classes of each operator.
AST_BINARY: dict[type, BinaryOp] = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/",
                                    ast.Pow: "**", ast.Mod: "%", ast.FloorDiv: "//"}
AST_COMPARE: dict[type, CompareOp] = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<",
                                      ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
AST_UNARY: dict[type, UnaryOp] = {ast.USub: "-", ast.UAdd: "+"}
_NUMPY_BINARY: dict[str, _Ufunc] = {
    "+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide, "**": np.power,
    "%": np.mod, "//": np.floor_divide}
_NUMPY_COMPARE: dict[str, _Ufunc] = {
    "==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal, ">": np.greater,
    ">=": np.greater_equal}


# ----------------------------------------------------------------------------- the tree


class Expr:
    """Base class of the expression nodes (frozen dataclasses; equal trees compare equal)."""

    __slots__ = ()

    @property
    def children(self) -> tuple[Expr, ...]:
        """The operands, left to right."""
        return ()

    @property
    def names(self) -> tuple[str, ...]:
        """The columns the expression uses, in order of first appearance."""
        return tuple(dict.fromkeys(n.name for n in walk(self) if isinstance(n, Col)))

    def __str__(self) -> str:
        return to_text(self)


@dataclass(frozen=True)
class Num(Expr):
    """A finite non-negative number (a minus sign is a :class:`Unary`)."""

    value: int | float

    def __post_init__(self) -> None:
        if not is_number(self.value):
            raise ValueError(f"Num takes a finite non-negative int or float, got {self.value!r}")


def is_number(v: object) -> bool:
    """Whether ``v`` is a finite non-negative int or float (not a bool, not -0.0)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(v) and math.copysign(1.0, v) > 0
    except OverflowError:  # an int beyond the float range
        return False


@dataclass(frozen=True)
class Col(Expr):
    """A column, by name."""

    name: str


@dataclass(frozen=True)
class Unary(Expr):
    """``-operand`` or ``+operand``."""

    op: UnaryOp
    operand: Expr

    @property
    def children(self) -> tuple[Expr, ...]:
        return (self.operand,)


@dataclass(frozen=True)
class Binary(Expr):
    """``left op right`` for ``op`` in ``+ - * / ** % //``."""

    op: BinaryOp
    left: Expr
    right: Expr

    @property
    def children(self) -> tuple[Expr, ...]:
        return (self.left, self.right)


@dataclass(frozen=True)
class Compare(Expr):
    """``left op right`` for ``op`` in ``== != < <= > >=``: 1.0 where true, 0.0 where false."""

    op: CompareOp
    left: Expr
    right: Expr

    @property
    def children(self) -> tuple[Expr, ...]:
        return (self.left, self.right)


@dataclass(frozen=True)
class Call(Expr):
    """``fn(args)`` for a function of :data:`FUNCTIONS`.

    ``prefix`` (``""``, ``"np."`` or ``"numpy."``) is how the call was spelled; it is
    kept for display and does not take part in equality.
    """

    fn: str
    args: tuple[Expr, ...]
    prefix: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if FUNCTIONS.get(self.fn) != len(self.args) or self.prefix not in ("", *PREFIXES):
            raise ValueError(f"{self.prefix}{self.fn}() with {len(self.args)} arguments is not "
                             "an allowed function call")

    @property
    def children(self) -> tuple[Expr, ...]:
        return self.args


def walk(expr: Expr) -> Iterator[Expr]:
    """Every node of ``expr``, parents before children, operands left to right."""
    yield expr
    for child in expr.children:
        yield from walk(child)


# ----------------------------------------------------------------------------- evaluation


def evaluate(expr: Expr, columns: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """Evaluate ``expr`` with numpy on columns of length ``n``.

    Parameters
    ----------
    expr : Expr
    columns : mapping of str -> ndarray
        The values of (at least) the columns ``expr.names``, each of length ``n``.
    n : int
        Number of rows; a constant expression is broadcast to it.

    Returns
    -------
    ndarray of float, shape (n,)
        A new array. Where numpy gives an infinity (``x / 0``, ``exp(1000)``) the value
        is NaN, as is an invalid operation (``log(-1)``); no warning is emitted.
    """
    out = np.empty(n)
    with np.errstate(all="ignore"):
        out[...] = _value(expr, columns)
    out[np.isinf(out)] = np.nan
    return out


def _value(e: Expr, columns: Mapping[str, np.ndarray]) -> np.ndarray | np.float64:
    if isinstance(e, Num):
        return np.float64(e.value)
    if isinstance(e, Col):
        if e.name not in columns:
            raise FormulaError(f"no values for the column '{e.name}' of the expression "
                               f"'{to_text(e)}'; {suggest(e.name, columns)}")
        return np.asarray(columns[e.name], dtype=float)
    if isinstance(e, Unary):
        value = _value(e.operand, columns)
        return np.negative(value) if e.op == "-" else value
    if isinstance(e, Binary):
        return _NUMPY_BINARY[e.op](_value(e.left, columns), _value(e.right, columns))
    if isinstance(e, Compare):
        left, right = _value(e.left, columns), _value(e.right, columns)
        result: np.ndarray = _NUMPY_COMPARE[e.op](left, right).astype(float)
        return np.where(np.isnan(left) | np.isnan(right), np.nan, result)
    assert isinstance(e, Call)
    table = _UNARY if len(e.args) == 1 else _BINARY
    return table[e.fn](*(_value(a, columns) for a in e.args))


# ----------------------------------------------------------------------------- analysis


def degree(expr: Expr, name: str) -> int | None:
    """Degree of ``expr`` as a polynomial in the column ``name``, other columns held fixed.

    Returns
    -------
    int or None
        0 if ``expr`` does not depend on ``name``, 1 if it is linear in it (``2 * x + z``,
        ``x * z``, ``x / 2``), 2 for ``x ** 2`` or ``x * x``, ...; ``None`` if it is not a
        polynomial in it (``log(x)``, ``1 / x``, ``x ** 0.5``, ``x > 0``, ``x ** z``).
    """
    if isinstance(expr, Num):
        return 0
    if isinstance(expr, Col):
        return int(expr.name == name)
    if isinstance(expr, Unary):
        return degree(expr.operand, name)
    degrees = [degree(c, name) for c in expr.children]
    if any(d is None for d in degrees):
        return None
    ds = [d for d in degrees if d is not None]
    if isinstance(expr, Binary) and expr.op in ("+", "-"):
        return max(ds)
    if isinstance(expr, Binary) and expr.op == "*":
        return sum(ds)
    if isinstance(expr, Binary) and expr.op == "/":
        return ds[0] if ds[1] == 0 else None
    if (isinstance(expr, Binary) and expr.op == "**") or (
            isinstance(expr, Call) and expr.fn == "pow"):
        return _power_degree(ds[0], ds[1], expr.children[1])
    return 0 if not any(ds) else None


def _power_degree(base: int, exponent_degree: int, exponent: Expr) -> int | None:
    """Degree of ``b ** e``: ``b``'s degree times ``e`` if ``e`` is a constant whole number."""
    if exponent_degree:
        return None
    if base == 0:
        return 0
    if exponent.names:
        return None
    k = float(evaluate(exponent, {}, 1)[0])
    return int(base * k) if k >= 0 and k.is_integer() else None


def rename(expr: Expr, mapping: Mapping[str, str]) -> Expr:
    """``expr`` with every column ``c`` in ``mapping`` replaced by ``mapping[c]``."""
    if isinstance(expr, Col):
        return Col(mapping.get(expr.name, expr.name))
    if isinstance(expr, Num):
        return expr
    if isinstance(expr, Unary):
        return Unary(expr.op, rename(expr.operand, mapping))
    if isinstance(expr, Binary):
        return Binary(expr.op, rename(expr.left, mapping), rename(expr.right, mapping))
    if isinstance(expr, Compare):
        return Compare(expr.op, rename(expr.left, mapping), rename(expr.right, mapping))
    assert isinstance(expr, Call)
    return Call(expr.fn, tuple(rename(a, mapping) for a in expr.args), expr.prefix)


# ----------------------------------------------------------------------------- writing


_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def quote_name(name: str) -> str:
    """``name`` as an expression writes it: bare if it parses as that one column, else
    in backticks (with ``\\`` and the backtick escaped).

    >>> quote_name("iqv"), quote_name("read.dis"), quote_name("read dis")
    ('iqv', 'read.dis', '`read dis`')
    """
    if _PLAIN.fullmatch(name) and not keyword.iskeyword(name):
        return name
    parts = name.split(".")
    bare = (all(p.isidentifier() and not keyword.iskeyword(p) for p in parts)
            and not name.startswith("__") and not any(p.startswith("_") for p in parts[1:])
            and not (len(parts) > 1 and parts[0] in ("np", "numpy"))
            and unicodedata.normalize("NFKC", name) == name)
    if bare:
        return name
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def to_text(expr: Expr) -> str:
    """Canonical Python-style text of ``expr``, as :func:`ast.unparse` spaces it.

    ``parse_expr(to_text(e)) == e`` for every tree ``e``; names that are not plain
    are written in backticks.

    >>> to_text(parse_expr("np.log( x)+x**2"))
    'np.log(x) + x ** 2'
    """
    quoted: dict[str, str] = {}
    text = ast.unparse(_to_ast(expr, quoted))
    for holder, name in quoted.items():
        text = text.replace(holder, name)
    return text


def _to_ast(e: Expr, quoted: dict[str, str]) -> ast.expr:
    if isinstance(e, Num):
        return ast.Constant(e.value)
    if isinstance(e, Col):
        written = quote_name(e.name)
        if written != e.name:
            holder = f"\x00{len(quoted)}\x00"
            quoted[holder] = written
            written = holder
        return ast.Name(written)
    if isinstance(e, Unary):
        op = ast.USub() if e.op == "-" else ast.UAdd()
        return ast.UnaryOp(op, _to_ast(e.operand, quoted))
    if isinstance(e, Binary):
        binop = {v: k for k, v in AST_BINARY.items()}[e.op]()
        return ast.BinOp(_to_ast(e.left, quoted), binop, _to_ast(e.right, quoted))
    if isinstance(e, Compare):
        cmpop = {v: k for k, v in AST_COMPARE.items()}[e.op]()
        return ast.Compare(_to_ast(e.left, quoted), [cmpop], [_to_ast(e.right, quoted)])
    assert isinstance(e, Call)
    return ast.Call(ast.Name(e.prefix + e.fn), [_to_ast(a, quoted) for a in e.args], [])


# R precedences (?Syntax): ^ > unary minus > %% %/% > * / > + - > comparison.
_R_PRECEDENCE = {"**": 90, "unary": 80, "%": 70, "//": 70, "*": 60, "/": 60, "+": 50, "-": 50}
_R_OPERATOR = {"**": "^", "%": "%%", "//": "%/%"}


def to_r(expr: Expr, name: Callable[[str], str]) -> str:
    """``expr`` in R syntax.

    ``np.log`` -> ``log``, ``**`` -> ``^``, ``%`` -> ``%%``, ``//`` -> ``%/%``, ``ceil``
    -> ``ceiling``, ``minimum``/``maximum`` -> ``pmin``/``pmax``, ``pow(a, b)`` -> ``a ^ b``,
    a comparison ``a < b`` -> ``as.numeric(a < b)``; parentheses where R's precedences
    need them (R's ``%%`` binds tighter than ``*``).

    Parameters
    ----------
    expr : Expr
    name : callable
        Writes a column name as R code (the exporter's R name, quoted as needed).

    Returns
    -------
    str

    >>> to_r(parse_expr("np.log(x) + x ** 2 % 3"), str)
    'log(x) + x ^ 2 %% 3'
    """
    return _r(expr, name)[0]


def _r(e: Expr, name: Callable[[str], str]) -> tuple[str, int]:
    """R text of ``e`` and its precedence (100: an atom)."""
    if isinstance(e, Num):
        return repr(e.value), 100
    if isinstance(e, Col):
        return name(e.name), 100
    if isinstance(e, Unary):
        inner, prec = _r(e.operand, name)
        return e.op + (f"({inner})" if prec < _R_PRECEDENCE["unary"] else inner), 80
    if isinstance(e, Compare):
        left, right = (_r(c, name)[0] for c in e.children)
        return f"as.numeric({left} {e.op} {right})", 100
    if isinstance(e, Call) and e.fn != "pow":
        args = ", ".join(_r(a, name)[0] for a in e.args)
        return f"{_R_FUNCTIONS.get(e.fn, e.fn)}({args})", 100
    assert isinstance(e, (Binary, Call))
    op = "**" if isinstance(e, Call) else e.op
    prec = _R_PRECEDENCE[op]
    (left, lp), (right, rp) = (_r(c, name) for c in e.children)
    right_assoc = op == "**"
    if lp < prec or (right_assoc and lp == prec):
        left = f"({left})"
    if rp < prec or (not right_assoc and rp == prec):
        right = f"({right})"
    return f"{left} {_R_OPERATOR.get(op, op)} {right}", prec
