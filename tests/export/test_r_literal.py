"""Finding 3 of issue 10: user text reaches an R script only as escaped literals or comments.

The escaping is checked in Python against a small decoder of R string literals
and backtick names written here from R's documentation (``?Quotes``), with
hypothesis over arbitrary text. Where ``Rscript`` exists, R itself decodes the
literals, parses every golden script and scripts of hostile plans (labels and
names with quotes, backslashes, newlines, ``#``, backticks, non-ASCII text, a
formula with a code line), and runs one such script in mice.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from regenerate_golden import GOLDEN_DIR, book_plan

import recipe_compiler as rc
from recipe_compiler.export import r_names
from recipe_compiler.export.r_literal import is_syntactic, r_comment, r_name, r_string

needs_r = pytest.mark.skipif(shutil.which("Rscript") is None, reason="needs Rscript")
#: The ``rscript`` fixture of ``conftest.py``.
RunR = Callable[..., subprocess.CompletedProcess[str]]

#: Any text R can hold: no NUL, no lone surrogate.
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
               max_size=40)

HOSTILE = [
    'girl', '"; system("touch pwned"); z <- "', "a\nb", "back\\slash", "é ü ß", "tab\there",
    "quote's", "`tick`", "# not a comment", "cr\rlf", "\u2028sep", "emoji \U0001f600",
    "\x01\x1f\x7f\x85", "trailing\\", "",
]

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "`": "`", "'": "'",
            "0": "\0", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
_ESCAPE = re.compile(r"\\(?:u\{([0-9a-fA-F]{1,4})\}|U\{([0-9a-fA-F]{1,8})\}|x([0-9a-fA-F]{1,2})"
                     r"|(.))", re.S)


def r_decode(literal: str) -> str:
    """The value of an R string literal (``"..."``) or backtick name, as R reads it."""
    quote = literal[0]
    assert quote in '"`' and literal[-1] == quote and len(literal) >= 2
    body = literal[1:-1]
    assert re.search(rf"(?<!\\)(?:\\\\)*{quote}", body) is None, "an unescaped closing quote"

    def one(m: re.Match[str]) -> str:
        code = m.group(1) or m.group(2) or m.group(3)
        if code is not None:
            return chr(int(code, 16))
        assert m.group(4) in _ESCAPES, f"R knows no escape \\{m.group(4)}"
        return _ESCAPES[m.group(4)]

    return _ESCAPE.sub(one, body)


# ------------------------------------------------------------------ the writer, in Python


@given(TEXT)
def test_r_string_round_trips_any_text_in_ascii(text: str) -> None:
    literal = r_string(text)
    assert literal.isascii() and "\n" not in literal and "\r" not in literal
    assert r_decode(literal) == text


@given(TEXT.filter(bool))
def test_r_name_round_trips_any_name(text: str) -> None:
    name = r_name(text)
    assert "\n" not in name and "\r" not in name
    assert name == text if is_syntactic(text) else name.startswith("`")
    assert (r_decode(name) if name.startswith("`") else name) == text


@given(TEXT, st.sampled_from(["# ", "#   "]))
def test_r_comment_keeps_every_line_a_comment(text: str, prefix: str) -> None:
    lines = r_comment(text, prefix)
    assert len(lines) == max(1, len(text.splitlines()))
    for line in lines:
        assert line.startswith("#")
        assert line.splitlines() == [line]  # no line break of any kind inside
    if all(ch.isprintable() for ch in text.replace("\n", "")):
        assert lines == [(prefix + line).rstrip() for line in text.splitlines() or [""]]


def test_examples_of_each_writer() -> None:
    assert r_string('say "hi"\n') == '"say \\"hi\\"\\n"'
    assert r_string("é\U0001f600") == '"\\u{00e9}\\U{0001f600}"'
    assert r_string("\x01") == '"\\u{0001}"'
    names = ("cwc_iqv.sex", "read dis", "2nd", "if", ".5", "...", "..2", "é", "a`b\\\n")
    assert [r_name(n) for n in names] == [
        "cwc_iqv.sex", "`read dis`", "`2nd`", "`if`", "`.5`", "`...`", "`..2`", "`é`",
        "`a\\`b\\\\\\n`"]
    assert r_comment("y ~ x +\n  z\r\nw\x0bv", "#   ") == ["#   y ~ x +", "#     z", "#   w",
                                                          "#   v"]
    assert r_comment("a\x1bb\u00a0c") == ["# a\\x1bb\\xa0c"]
    assert r_comment("one two three", "# x: ", "#    ", width=12) == [
        "# x: one two", "#    three"]


@pytest.mark.parametrize("call, message", [
    (lambda: r_string("a\x00b"), r"'a\\x00b' holds a NUL character"),
    (lambda: r_name("a\x00"), r"holds a NUL character, which R strings and names cannot hold"),
    (lambda: r_string("\ud800"), r"holds a lone surrogate"),
    (lambda: r_name(""), r"an R name cannot be empty"),
])
def test_text_r_cannot_hold_raises_a_plan_error(call: object, message: str) -> None:
    with pytest.raises(rc.PlanError, match=message):
        call()  # type: ignore[operator]


def test_comment_prefixes_must_start_a_comment() -> None:
    with pytest.raises(ValueError, match="must start with '#'"):
        r_comment("x", "  ")


# ------------------------------------------------------------------ hostile plans


def labelled_data() -> pd.DataFrame:
    """brandsma's sch, lpo, iqv and a string column ``grp`` with every HOSTILE label.

    ``"!base"`` sorts first, so it is the reference category and every hostile
    label gets a dummy.
    """
    d = rc.datasets.load_brandsma()[["sch", "lpo", "iqv"]].copy()
    labels = np.array(["!base", *(h for h in HOSTILE if h)])
    d["grp"] = labels[np.arange(len(d)) % len(labels)]
    return d


def label_plan() -> rc.Plan:
    return rc.compile("lpo ~ iqv + C(grp) + (1 | sch)", labelled_data())


def renamed_plan() -> rc.Plan:
    """The 7.10.5 plan with hostile cluster and covariate names and a formula with code lines."""
    spec = rc.plan_to_spec(book_plan("7.10.5"))
    spec["formula"] = 'lpo ~ iqv\nsystem("touch pwned") # \r\n+ sex\u2028x <- 1 + (1 | sch)'
    text = json.dumps(spec)
    for old, new in (("sch", 'sch"\n`#\\é'), ("den", "den\r\n) system('x')")):
        text = text.replace(json.dumps(old), json.dumps(new))
    return rc.spec_to_plan(json.loads(text))


def _method_literals(script: str) -> dict[str, str]:
    """``meth["name"] <- "method"`` lines of a script, decoded: {R name: method string}."""
    out = {}
    for m in re.finditer(r'^meth\[("(?:[^"\\]|\\.)*")\] <- ("(?:[^"\\]|\\.)*")$', script, re.M):
        out[r_decode(m.group(1))] = r_decode(m.group(2))
    return out


@pytest.mark.parametrize("flavor", ["miceadds", "mice"])
def test_category_labels_reach_the_passive_methods_exactly(flavor: str) -> None:
    plan = label_plan()
    names = r_names(plan)
    methods = _method_literals(rc.plan_to_r(plan, flavor=flavor))
    dummies = [d for d in plan.derived_defs if d.op == "dummy"]
    assert len(dummies) == len(HOSTILE) - 1
    for d in dummies:
        inner = re.fullmatch(r'~ I\(as\.integer\(grp == ("(?:[^"\\]|\\.)*")\)\)',
                             methods[names[d.name]])
        assert inner is not None, methods[names[d.name]]
        assert r_decode(inner.group(1)) == d.detail


@pytest.mark.parametrize("flavor", ["miceadds", "mice"])
def test_names_and_formula_lines_never_become_code(flavor: str) -> None:
    script = rc.plan_to_r(renamed_plan(), flavor=flavor)
    code = [re.sub(r'"(?:[^"\\]|\\.)*"', '""', line) for line in script.splitlines()
            if line and not line.startswith("#")]  # string literals blanked
    assert not [line for line in code if re.search(r"\bsystem\(|x <- 1", line)]
    assert "#   system(\"touch pwned\") #" in script.splitlines()
    assert 'd <- d[, c("sch\\"\\n`#\\\\\\u{00e9}", "lpo", "iqv", "sex", ' in script


def test_an_expression_is_written_in_r_by_the_expression_language() -> None:
    """``np.log`` -> ``log``, ``%`` -> ``%%``, a backtick name -> its syntactic R name."""
    data = rc.datasets.load_brandsma()[["sch", "lpo", "iqv"]].rename(
        columns={"iqv": 'read "dis"'})
    plan = rc.compile('lpo ~ `read "dis"` + I(np.log(`read "dis"` + 10) % 3) + (1 | sch)', data)
    names = r_names(plan)
    (expr,) = [d for d in plan.derived_defs if d.op == "expr" and 'read "dis"' in d.parents]
    assert names['read "dis"'] == "read_dis"
    assert _method_literals(rc.plan_to_r(plan, flavor="mice"))[names[expr.name]] == \
        "~ I(log(read_dis + 10) %% 3)"


# ------------------------------------------------------------------ with R


@needs_r
def test_r_reads_the_literals_as_python_wrote_them(rscript: RunR) -> None:
    """R decodes every literal back to the text.

    R code (one pair of lines per text; ``cat`` prints the code points)::

        x <- "<r_string(text)>"; cat(utf8ToInt(x), "\\n")
        l <- list(`<r_name(text)>` = 1); cat(utf8ToInt(names(l)), "\\n")
    """
    rng = np.random.default_rng(3)
    pool = [chr(c) for c in (*range(1, 0x80), 0x85, 0xA0, 0xE9, 0x2028, 0x1F600)]
    texts = [h for h in HOSTILE if h] + ["".join(rng.choice(pool, size=rng.integers(1, 12)))
                                         for _ in range(200)]
    lines = []
    for text in texts:
        lines += [f"x <- {r_string(text)}; cat(utf8ToInt(x), '\\n')",
                  f"l <- list({r_name(text)} = 1); cat(utf8ToInt(names(l)), '\\n')"]
    out = rscript("\n".join(lines) + "\n").stdout.splitlines()
    decoded = ["".join(chr(int(c)) for c in line.split()) for line in out]
    assert decoded == [t for text in texts for t in (text, text)]


@needs_r
def test_r_parses_every_golden_and_hostile_script_without_a_system_call(
        tmp_path: Path, rscript: RunR) -> None:
    """``parse()`` each script; no call of ``system`` (nor any injected name) may appear.

    R code::

        for (f in files) { e <- parse(file = f); cat(basename(f), "system" %in% all.names(e),
                                                      length(e), "\\n") }
    """
    scripts = {p.name: p.read_text(encoding="utf-8") for p in sorted(GOLDEN_DIR.iterdir())}
    for flavor in ("miceadds", "mice"):
        scripts[f"labels_{flavor}.R"] = rc.plan_to_r(label_plan(), flavor=flavor)
        scripts[f"renamed_{flavor}.R"] = rc.plan_to_r(renamed_plan(), flavor=flavor)
    for name, script in scripts.items():
        (tmp_path / name).write_text(script, encoding="utf-8")
    files = ", ".join(r_string((tmp_path / n).as_posix()) for n in scripts)
    out = rscript(f"for (f in c({files})) {{ e <- parse(file = f); cat(basename(f), "
                  "'system' %in% all.names(e), length(e), '\\n') }\n").stdout
    parsed = {line.split()[0]: line.split()[1:] for line in out.splitlines()}
    assert set(parsed) == set(scripts)
    for name, (has_system, n_expressions) in parsed.items():
        assert has_system == "FALSE", name
        # one expression per statement line: what starts at column 0 and is no comment
        statements = [line for line in scripts[name].splitlines()
                      if line and not line.startswith(("#", " "))]
        assert int(n_expressions) == len(statements), name


def test_a_script_with_string_labels_runs_in_mice(tmp_path: Path, require_r: Callable[..., None],
                                                  rscript: RunR) -> None:
    """mice computes each dummy of a hostile label as ``grp == label``.

    R code::

        d <- read.csv(data, encoding = "UTF-8", stringsAsFactors = FALSE)
        source(script)
        write.csv(complete(imp, 1), out, row.names = FALSE, fileEncoding = "UTF-8")
    """
    require_r("mice", "pan")
    data = labelled_data()
    data = data[data["grp"].map(str.isprintable)]  # read.csv folds \r and friends
    plan = rc.compile("lpo ~ iqv + C(grp) + (1 | sch)", data)
    csv, script, out = tmp_path / "d.csv", tmp_path / "impute.R", tmp_path / "completed.csv"
    data.to_csv(csv, index=False, na_rep="NA", encoding="utf-8")
    script.write_text(rc.plan_to_r(plan, flavor="mice", m=1, maxit=1, seed=1), encoding="utf-8")
    rscript(f"d <- read.csv({r_string(csv.as_posix())}, encoding = 'UTF-8', "
            "stringsAsFactors = FALSE)\n"
            f"source({r_string(script.as_posix())}, encoding = 'UTF-8')\n"
            f"write.csv(complete(imp, 1), {r_string(out.as_posix())}, row.names = FALSE, "
            "fileEncoding = 'UTF-8')\n")
    completed = pd.read_csv(out, keep_default_na=False, na_values=["NA"], encoding="utf-8")
    names = r_names(plan)
    dummies = [d for d in plan.derived_defs if d.op == "dummy"]
    assert len(dummies) == data["grp"].nunique() - 1
    for d in dummies:
        expected = (data["grp"] == d.detail).astype(int).to_numpy()
        assert expected.sum() > 0
        np.testing.assert_array_equal(completed[names[d.name]].to_numpy(), expected)
