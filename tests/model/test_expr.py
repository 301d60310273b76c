"""The safe expression language: what it accepts, how it evaluates, what it refuses and where.

Every accepted construct must give exactly numpy's result; every refused one a
FormulaError with a caret under the offending piece. The attacks of issue 10 go
through the public entry points (compile, impute, fit_lmm, Imputations.fit, load_plan,
the CLI) and must leave no file behind.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import recipe_compiler as rc
from recipe_compiler.cli import main
from recipe_compiler.errors import FormulaError
from recipe_compiler.export.plan_files import save_plan
from recipe_compiler.export.spec_json import plan_to_spec
from recipe_compiler.model.expr import (
    FUNCTIONS,
    MAX_DEPTH,
    MAX_LENGTH,
    Binary,
    Call,
    Col,
    Compare,
    Expr,
    Num,
    Unary,
    degree,
    evaluate,
    parse_expr,
    quote_name,
    rename,
    to_r,
    to_text,
)
from recipe_compiler.model.parse import parse_formula

Caret = Callable[..., None]

X = np.array([-2.5, -1.0, 0.0, 0.5, 1.0, 2.0, 3.5, 10.0])
Z = np.array([2.0, 0.0, -3.0, 0.5, 1.0, -1.0, 4.0, 0.25])
COLS = {"x": X, "z": Z, "read dis": X + Z}


def numpy_like(value: np.ndarray) -> np.ndarray:
    """numpy's value with infinities as NaN, the documented output of evaluate()."""
    out = np.array(np.broadcast_to(value, X.shape), dtype=float)
    out[np.isinf(out)] = np.nan
    return out


def compare(op: Callable[[np.ndarray, np.ndarray], np.ndarray], a: np.ndarray,
            b: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(a) | np.isnan(b), np.nan, op(a, b).astype(float))


# ----------------------------------------------------------------------------- evaluation

ALLOWED_CASES: list[tuple[str, Callable[[], np.ndarray]]] = [
    ("x + z", lambda: X + Z), ("x - z", lambda: X - Z), ("x * z", lambda: X * Z),
    ("x / z", lambda: X / Z), ("x ** 2", lambda: X ** 2), ("x ** z", lambda: X ** Z),
    ("x % 3", lambda: np.mod(X, 3.0)), ("x % z", lambda: np.mod(X, Z)),
    ("x // 2", lambda: np.floor_divide(X, 2.0)), ("x // z", lambda: np.floor_divide(X, Z)),
    ("-x", lambda: -X), ("+x", lambda: X), ("-x ** 2", lambda: -(X ** 2)),
    ("(x + 1) * (z - 2)", lambda: (X + 1) * (Z - 2)), ("2 * x + 0.5", lambda: 2 * X + 0.5),
    ("1e-3 * x", lambda: 1e-3 * X), ("x ** -1", lambda: X ** -1.0),
    ("x == 1", lambda: compare(np.equal, X, np.float64(1))),
    ("x != z", lambda: compare(np.not_equal, X, Z)), ("x < z", lambda: compare(np.less, X, Z)),
    ("x <= 0.5", lambda: compare(np.less_equal, X, np.float64(0.5))),
    ("x > z", lambda: compare(np.greater, X, Z)),
    ("x >= 0", lambda: compare(np.greater_equal, X, np.float64(0))),
    ("(x > 0) * x", lambda: compare(np.greater, X, np.float64(0)) * X),
    ("pow(x, 3)", lambda: np.power(X, 3.0)), ("np.minimum(x, z)", lambda: np.minimum(X, Z)),
    ("maximum(x, 0)", lambda: np.maximum(X, 0.0)), ("`read dis` / 2", lambda: (X + Z) / 2),
    ("3", lambda: np.full(X.shape, 3.0)), ("2 ** 3 - 1", lambda: np.full(X.shape, 7.0)),
    ("1 / 0 + x", lambda: np.full(X.shape, np.inf)),
    *[(f"{prefix}{fn}(x)", lambda fn=fn: getattr(np, fn)(X))
      for fn in FUNCTIONS if FUNCTIONS[fn] == 1 and fn != "abs"
      for prefix in ("", "np.", "numpy.")],
    ("abs(x)", lambda: np.abs(X)), ("np.abs(z)", lambda: np.abs(Z)),
]


@pytest.mark.parametrize(("text", "expected"), ALLOWED_CASES, ids=[c[0] for c in ALLOWED_CASES])
def test_every_allowed_construct_evaluates_exactly_as_numpy(
        text: str, expected: Callable[[], np.ndarray]) -> None:
    with np.errstate(all="ignore"):
        want = numpy_like(expected())
    got = evaluate(parse_expr(text, COLS), COLS, len(X))
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.float64 and got.shape == X.shape


def test_round_is_numpy_round_half_to_even_like_r() -> None:
    v = {"v": np.array([0.5, 1.5, 2.5, -0.5, 2.4])}
    np.testing.assert_array_equal(evaluate(parse_expr("round(v)"), v, 5), [0, 2, 2, -0, 2])


def test_a_comparison_with_a_missing_value_is_missing() -> None:
    v = {"v": np.array([1.0, np.nan, 3.0])}
    np.testing.assert_array_equal(evaluate(parse_expr("v == 1"), v, 3), [1.0, np.nan, 0.0])


def test_evaluate_returns_a_new_array_and_emits_no_warning() -> None:
    with np.errstate(all="raise"):
        out = evaluate(parse_expr("x"), COLS, len(X))
        evaluate(parse_expr("log(z) / 0"), COLS, len(X))
    out[0] = 99.0
    assert X[0] == -2.5


def test_names_are_the_columns_in_order_of_first_appearance() -> None:
    e = parse_expr("log(z) + x * z - `read dis` ** x")
    assert e.names == ("z", "x", "read dis")
    assert parse_expr("2 ** 3").names == ()


def test_a_column_outside_the_allowed_set_is_refused_with_a_suggestion(caret: Caret) -> None:
    with pytest.raises(FormulaError, match=r"^'xx' in the expression 'x \+ xx' is not one of its "
                                           r"columns; did you mean 'x'\?") as exc:
        parse_expr("x + xx", ["x"])
    caret(str(exc.value), "x + xx", "xx")


def test_evaluating_without_the_values_of_a_column_names_it() -> None:
    with pytest.raises(FormulaError, match="no values for the column 'q'"):
        evaluate(parse_expr("q + 1"), COLS, len(X))


# ----------------------------------------------------------------------------- refused input

REFUSED: list[tuple[str, str, str]] = [
    # text, the piece the caret must underline, a fragment of the message
    ("x + 0*__import__('os').system('true')", "__import__('os').system", "calling"),
    ("np.save('f', x)", "np.save", "unknown function 'np.save'"),
    ("numpy.lib.npyio.save('f', x)", "numpy.lib.npyio.save", "unknown function"),
    ("x.__class__", "x.__class__", "may not start with '__'"),
    ("x._secret + 1", "x._secret", "may not start with '__' nor contain '._'"),
    ("__import__", "__import__", "may not start with '__'"),
    ("x[0]", "x[0]", "indexing"),
    ("(lambda: 1)()", "lambda: 1", "calling"),
    ("x + (lambda: 1)", "lambda: 1", "the lambda"),
    ("open('f')", "open", "unknown function 'open'"),
    ("x + 'a'", "'a'", "text 'a'"),
    ("x + b'a'", "b'a'", "text"),
    ("f'{x}' ", "f'{x}'", "the f-string"),
    ("True * x", "True", "the constant True"),
    ("None", "None", "the constant None"),
    ("2j * x", "2j", "the complex number"),
    ("log(x, base=2)", "base=2", "keyword argument 'base='"),
    ("log(*x)", "*x", "starred"),
    ("log(x, z)", "log(x, z)", "log() takes 1 argument, got 2"),
    ("pow(x)", "pow(x)", "pow() takes 2 arguments, got 1"),
    ("np.log", "np.log", "a function; call it"),
    ("foo(x)", "foo", "unknown function 'foo'"),
    ("x ^ 2", "x ^ 2", "'^' is not a power"),
    ("x and z", "x and z", "the logical operator"),
    ("not x", "not x", "the operator"),
    ("~x", "~x", "the operator"),
    ("x if z else 1", "x if z else 1", "the conditional"),
    ("[x for x in z]", "[x for x in z]", "the comprehension"),
    ("(y := 2)", "y := 2", "the assignment"),
    ("{x: 1}", "{x: 1}", "the dictionary"),
    ("(x, z)", "(x, z)", "the tuple"),
    ("x < z < 1", "x < z < 1", "chained comparison"),
    ("x in z", "x in z", "the comparison 'x in z'"),
    ("x is z", "x is z", "the comparison"),
    ("1e999 * x", "1e999", "too large"),
    ("x +", "+", "not a valid expression"),
    ("x) + (z", ")", "unmatched ')'"),
    ("`x", "`x", "unterminated backtick"),
    ("`` + x", "``", "empty name"),
    ("x # + 1", "#", "the comment '#'"),
    ("x, z", "x, z", "the tuple"),
    ("`a`b", "`a`", "must stand apart"),
    ("ｌｏｇ(x)", "ｌｏｇ", "unknown function 'ｌｏｇ'"),
    ("`log`(x)", "`log`", "calling"),
]


@pytest.mark.parametrize(("text", "snippet", "fragment"), REFUSED, ids=[r[0] for r in REFUSED])
def test_every_forbidden_construct_is_a_formula_error_under_its_caret(
        text: str, snippet: str, fragment: str, caret: Caret) -> None:
    with pytest.raises(FormulaError) as exc:
        parse_expr(text, ["x", "z", "a", "y"])
    message = str(exc.value)
    assert fragment in message.splitlines()[0]
    assert "allowed: column names" in message and "log, exp, sqrt" in message
    caret(message, text, snippet)


def test_the_length_and_nesting_caps() -> None:
    with pytest.raises(FormulaError, match=f"at most {MAX_LENGTH} are allowed"):
        parse_expr("x + " * 600 + "x")
    deep = "-" * (MAX_DEPTH + 5) + "x"
    with pytest.raises(FormulaError, match=f"nested more than {MAX_DEPTH} levels deep"):
        parse_expr(deep)
    with pytest.raises(FormulaError):
        parse_expr("(" * 300 + "x" + ")" * 300)  # Python's own limit, mapped
    assert parse_expr("-" * (MAX_DEPTH - 2) + "x").names == ("x",)


def test_an_error_inside_I_points_into_the_formula(caret: Caret) -> None:
    formula = "y ~ x + I(log(x) +\n foo(z)) + (1 | g)"  # over two lines
    with pytest.raises(FormulaError, match=r"^unknown function 'foo' in I\(log\(x\) \+") as exc:
        parse_formula(formula)
    assert exc.value.span == (formula.index("foo"), formula.index("foo") + 3)
    flat = "y ~ x + I(x ** 2 + np.save('f', x)) + (1 | g)"
    with pytest.raises(FormulaError, match=r"unknown function 'np\.save'") as exc:
        parse_formula(flat)
    caret(str(exc.value), flat, "np.save")


# ----------------------------------------------------------------------------- names in backticks


def test_backticks_quote_any_name_and_escape_backtick_and_backslash() -> None:
    e = parse_expr(r"`read dis` + `2nd wave` * `a\`b\\c` - `if`")
    assert e.names == ("read dis", "2nd wave", "a`b\\c", "if")
    assert to_text(e) == r"`read dis` + `2nd wave` * `a\`b\\c` - `if`"
    assert parse_expr("read.dis + x_1").names == ("read.dis", "x_1")


@pytest.mark.parametrize(("name", "written"), [
    ("iqv", "iqv"), ("read.dis", "read.dis"), ("read dis", "`read dis`"), ("2x", "`2x`"),
    ("if", "`if`"), ("np.x", "`np.x`"), ("__x", "`__x`"), ("x._y", "`x._y`"),
    ("ﬁle", "`ﬁle`"), ("a`b", r"`a\`b`"), ("", "``")])
def test_quote_name_writes_bare_only_what_parses_back_to_the_name(name: str,
                                                                  written: str) -> None:
    assert quote_name(name) == written
    if name:
        assert parse_expr(written).names == (name,)


def test_backtick_names_round_trip_through_a_formula() -> None:
    spec = parse_formula("`read score` ~ `iq verbal` + I(`iq verbal` ** 2) + cm(`iq verbal`) "
                         "+ C(`den type`) + (1 + `iq verbal` | `school id`)")
    assert spec.outcome == "read score" and spec.cluster == "school id"
    assert spec.columns == ("read score", "iq verbal", "den type")
    names = [t.name for t in spec.terms]
    assert names == ["iq verbal", "I(`iq verbal` ** 2)", "cm(`iq verbal`)", "C(`den type`)"]
    again = parse_formula("`read score` ~ " + " + ".join(
        quote_name(t.factors[0].column) if t.factors[0].kind == "var" else t.name
        for t in spec.terms) + " + (1 + `iq verbal` | `school id`)")
    assert again.terms == spec.terms and again.random == spec.random


# ----------------------------------------------------------------------------- degree


@pytest.mark.parametrize(("text", "expected"), [
    ("3", 0), ("z", 0), ("log(z) * z", 0), ("x", 1), ("2 * x + z", 1), ("x * z", 1),
    ("x / 2", 1), ("-x", 1), ("x - x", 1), ("x ** 2", 2), ("x * x * z", 2), ("(x + 1) ** 3", 3),
    ("pow(x, 2)", 2), ("x ** (1 + 1)", 2), ("x ** 0", 0), ("(x * z) ** 2 + x", 2),
    ("log(x)", None), ("1 / x", None), ("x ** 0.5", None), ("x ** -1", None), ("x ** z", None),
    ("2 ** x", None), ("x > 0", None), ("abs(x)", None), ("x % 2", None), ("x // 2", None),
    ("(x > 0) * z", None), ("z ** z", 0)])
def test_degree_is_the_polynomial_degree_in_one_column(text: str, expected: int | None) -> None:
    assert degree(parse_expr(text), "x") == expected


# ----------------------------------------------------------------------------- text forms


def exprs(max_leaves: int = 12) -> st.SearchStrategy[Expr]:
    """Random expression trees over the columns x, z and `read dis`."""
    leaves = st.one_of(
        st.sampled_from([Col("x"), Col("z"), Col("read dis"), Col("a.b")]),
        st.integers(0, 10 ** 6).map(Num),
        st.floats(0, 1e6, allow_nan=False, allow_infinity=False).filter(
            lambda v: math.copysign(1.0, v) > 0).map(Num))

    def extend(inner: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
        return st.one_of(
            st.builds(Unary, st.sampled_from(["-", "+"]), inner),
            st.builds(Binary, st.sampled_from(["+", "-", "*", "/", "**", "%", "//"]), inner,
                      inner),
            st.builds(Compare, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), inner,
                      inner),
            st.builds(lambda f, p, a: Call(f, (a,), p),
                      st.sampled_from([f for f, k in FUNCTIONS.items() if k == 1]),
                      st.sampled_from(["", "np.", "numpy."]), inner),
            st.builds(lambda f, a, b: Call(f, (a, b)), st.sampled_from(["pow", "minimum",
                                                                       "maximum"]), inner,
                      inner))

    return st.recursive(leaves, extend, max_leaves=max_leaves)


@settings(max_examples=300, deadline=None)
@given(exprs())
def test_to_text_round_trips(e: Expr) -> None:
    text = to_text(e)
    assert parse_expr(text) == e
    assert to_text(parse_expr(text)) == text


@pytest.mark.parametrize(("text", "r"), [
    ("np.log(x) + x ** 2", "log(x) + x ^ 2"), ("x ** -1", "x ^ (-1)"), ("(-x) ** 2", "(-x) ^ 2"),
    ("-x ** 2", "-x ^ 2"), ("a * b % c", "(a * b) %% c"), ("a % b * c", "a %% b * c"),
    ("a // b", "a %/% b"), ("a ** b ** c", "a ^ b ^ c"), ("(a ** b) ** c", "(a ^ b) ^ c"),
    ("a - (b - c)", "a - (b - c)"), ("x > 2", "as.numeric(x > 2)"),
    ("(a < b) == c", "as.numeric(as.numeric(a < b) == c)"), ("np.ceil(x / 3)", "ceiling(x / 3)"),
    ("minimum(x, 2) + maximum(x, 0.5)", "pmin(x, 2) + pmax(x, 0.5)"),
    ("pow(x + 1, 2)", "(x + 1) ^ 2"), ("`read dis` * 1e-3", "R(read dis) * 0.001")])
def test_to_r_writes_r_syntax_with_r_precedence(text: str, r: str) -> None:
    assert to_r(parse_expr(text), lambda n: n if n.isidentifier() else f"R({n})") == r


def test_rename_replaces_columns_in_the_tree_not_in_the_text() -> None:
    e = rename(parse_expr("log(x) + `x y` * x"), {"x": "x y", "x y": "x"})
    assert to_text(e) == "log(`x y`) + x * `x y`"


@pytest.mark.skipif(shutil.which("Rscript") is None, reason="R is not installed")
@settings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(exprs(8), min_size=60, max_size=60))
def test_r_computes_what_we_compute(batch: list[Expr]) -> None:
    """R evaluates to_r() of 60 random trees on the same columns (skipped without R):

    ``x <- c(...); z <- c(...); `read dis` <- ...; `a.b` <- ...; print(<expr>)``.
    Infinities count as NaN, as evaluate() returns them; R's NA and NaN are both NaN.
    """
    cols = {"x": X, "z": Z, "read dis": X + Z, "a.b": X * Z}
    lines = [f"`{k}` <- c({', '.join(repr(float(v)) for v in vals)})"
             for k, vals in cols.items()]
    lines += [f"cat(sprintf('%.17g', suppressWarnings({to_r(e, lambda n: f'`{n}`')})), '\\n')"
              for e in batch]
    out = subprocess.run(["Rscript", "-e", "\n".join(lines)], capture_output=True, text=True,
                         check=True, timeout=120).stdout.splitlines()
    for e, line in zip(batch, out, strict=True):
        r = np.array([float(v) if v not in ("NA", "NaN", "Inf", "-Inf") else np.nan
                      for v in line.split()])
        r = np.broadcast_to(r, X.shape)
        np.testing.assert_allclose(evaluate(e, cols, len(X)), r, rtol=1e-12, atol=0,
                                   err_msg=to_r(e, str))


# ----------------------------------------------------------------------------- property


TOKENS = ["x", "z", "`read dis`", "np.", "numpy.", "log", "exp", "sqrt", "pow", "minimum",
          "(", ")", "+", "-", "*", "/", "**", "%", "//", "==", "<", ">=", ",", "1", "0", "2.5",
          "1e308", "1e-320", "'a'", "[", "]", "__import__", ".", " ", "`", "lambda", ":", "if",
          "else", "not", "and", "@", "~", "^", "=", "os", "system", "save", "_", "\n", "#", "{",
          "}", "j", "\\", "\x00", "é", "True"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.lists(st.sampled_from(TOKENS), max_size=25).map("".join),
                 st.text(max_size=40)))
def test_random_text_evaluates_to_a_finite_or_nan_column_or_is_a_formula_error(
        text: str) -> None:
    try:
        e = parse_expr(text, COLS)
    except FormulaError:
        return
    out = evaluate(e, COLS, len(X))
    assert out.dtype == np.float64 and out.shape == X.shape
    assert not np.isinf(out).any()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=15).map("".join))
def test_random_text_inside_I_is_a_term_or_a_formula_error(text: str) -> None:
    try:
        spec = parse_formula(f"y ~ I({text}) + (1 | g)")
    except FormulaError:
        return
    (f,) = spec.terms[0].factors
    assert parse_expr(f.column, f.columns).names == f.columns


# ----------------------------------------------------------------------------- attacks

ATTACKS = [
    "I(x + 0*__import__('os').system('touch {marker}'))",
    "I(np.save('{marker}', x))",
    "I(x.__class__.__bases__[0].__subclasses__())",
    "I(x[0])",
    "I((lambda: __import__('os').system('touch {marker}'))())",
    "I(open('{marker}', 'w').write('x') + x)",
    "I(np.lib.npyio.save('{marker}', x))",
    "I(getattr(np, 'save')('{marker}', x))",
]


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "pwned"


@pytest.fixture
def data(make_frame: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    return make_frame(seed=3, missing={"y": 0.2, "x": 0.2})


@pytest.mark.parametrize("attack", ATTACKS)
def test_attacks_in_a_formula_run_nothing(attack: str, marker: Path, data: pd.DataFrame,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(marker.parent)
    formula = f"y ~ x + {attack.format(marker=marker)} + (1 | g)"
    imp = rc.impute(data, "y ~ x + (1 | g)", m=1, maxit=1, seed=1)
    calls = [lambda: rc.compile(formula, data), lambda: rc.impute(data, formula, m=1, maxit=1),
             lambda: rc.fit_lmm(formula, data), lambda: imp.fit(formula),
             lambda: rc.parse_formula(formula)]
    for call in calls:
        with pytest.raises(FormulaError):
            call()
    assert not marker.exists() and list(marker.parent.iterdir()) == []


HOSTILE_DETAILS = [
    "x ** 2 + 0*__import__('os').system('touch {marker}')",
    "np.save('{marker}', x)",
    "x.__class__",
    "x[0]",
    "(lambda: 1)()",
    "x + z",  # a column that is not a parent
]


@pytest.mark.parametrize("detail", HOSTILE_DETAILS)
def test_a_spec_with_a_hostile_detail_is_refused_on_load_and_runs_nothing(
        detail: str, marker: Path, data: pd.DataFrame, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    plan = rc.compile("y ~ x + I(x ** 2) + (1 | g)", data)
    spec = plan_to_spec(plan)
    (entry,) = [d for d in spec["derived"] if d["name"] == "I(x ** 2)"]
    entry["detail"] = detail.format(marker=marker)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(spec))
    csv = tmp_path / "data.csv"
    data.to_csv(csv, index=False)
    with pytest.raises(rc.PlanError, match=r"^derived\[\d+\] \('I\(x \*\* 2\)'\): "):
        rc.load_plan(path)
    assert main(["impute", str(csv), "--plan", str(path), "--m", "1", "--maxit", "1",
                 "--out", str(tmp_path / "out.csv"), "--quiet"]) == 2
    # a plan edited in memory, bypassing the loader: refused when computed
    (d,) = [d for d in plan.derived_defs if d.name == "I(x ** 2)"]
    hostile = dataclasses.replace(d, detail=detail.format(marker=marker))
    edited = dataclasses.replace(plan, derived_defs=tuple(
        hostile if x is d else x for x in plan.derived_defs))
    with pytest.raises(FormulaError):
        rc.impute(data, edited, m=1, maxit=1, seed=1)
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "plan.json"]


def test_a_saved_and_loaded_plan_keeps_its_expressions(data: pd.DataFrame,
                                                       tmp_path: Path) -> None:
    plan = rc.compile("y ~ x + I(np.log(x ** 2 + 1)) + (1 | g)", data)
    save_plan(plan, tmp_path / "plan.json")
    assert rc.load_plan(tmp_path / "plan.json") == plan


def test_the_package_never_calls_eval_or_exec() -> None:
    root = Path(rc.__file__).parent
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if "eval(" in p.read_text(encoding="utf-8")
                 or "exec(" in p.read_text(encoding="utf-8")]
    assert offenders == []
