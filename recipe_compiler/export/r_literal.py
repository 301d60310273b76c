"""The one writer of user text into R code: string literals, quoted names, comments.

Every user string that :mod:`~recipe_compiler.export.r_mice` puts in a script
(variable names, category labels, formula text, passive expressions, the
cluster name) goes through one of these three functions, so the script always
parses and no text can leave its literal or its comment.

* :func:`r_string` writes an R string literal in plain ASCII: ``\\`` and ``"``
  are escaped, newline, tab and carriage return become ``\\n``, ``\\t``,
  ``\\r``, and every other control character and every non-ASCII character
  becomes ``\\u{XXXX}`` (``\\U{XXXXXXXX}`` above U+FFFF). The script therefore
  reads the same in any locale (R marks such strings as UTF-8).
* :func:`r_name` writes a name: bare when it is syntactic, else in backticks
  with ``\\`` and the backtick escaped and control characters as ``\\n``,
  ``\\t``, ``\\r`` or ``\\xHH``. R accepts no ``\\u`` escapes inside backticks,
  so other non-ASCII characters stay verbatim (UTF-8).
* :func:`r_comment` writes text as comment lines: each line of the text is its
  own ``#`` line, and characters that are not printable (controls, line and
  paragraph separators) are shown as escapes, so nothing ends a comment early.

R strings cannot hold the NUL character, and a lone surrogate is no character
at all; both raise :class:`~recipe_compiler.errors.PlanError`.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence

from ..errors import PlanError

__all__ = ["R_RESERVED", "is_syntactic", "load_lines", "names_table", "pred_row", "r_comment",
           "r_name", "r_string", "r_strings"]

#: R's reserved words, which cannot be bare names (nor can ``...``, ``..1``, ``..2``, ...).
R_RESERVED = frozenset({
    "if", "else", "repeat", "while", "function", "for", "next", "break", "in", "TRUE",
    "FALSE", "NULL", "Inf", "NaN", "NA", "NA_integer_", "NA_real_", "NA_complex_",
    "NA_character_"})
_SYNTACTIC = re.compile(r"(?:[A-Za-z]|\.(?![0-9]))[A-Za-z0-9._]*|\.")
_DOTS = re.compile(r"\.\.(?:\.|[0-9]+)")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def is_syntactic(name: str) -> bool:
    """Whether ``name`` is an R name usable without backticks (ASCII letters, digits, ``._``).

    >>> is_syntactic("cwc_iqv.sex"), is_syntactic("2nd wave"), is_syntactic("if")
    (True, False, False)
    """
    return (_SYNTACTIC.fullmatch(name) is not None and name not in R_RESERVED
            and _DOTS.fullmatch(name) is None)


def r_string(text: str) -> str:
    """``text`` as an R string literal, in ASCII (see the module docstring).

    >>> print(r_string('a "b"\\nc\\\\ é'))
    "a \\"b\\"\\nc\\\\ \\u{00e9}"

    Raises
    ------
    PlanError
        If ``text`` holds a NUL character or a lone surrogate.
    """
    _check(text)
    out = []
    for ch in text:
        code = ord(ch)
        if ch in '\\"':
            out.append("\\" + ch)
        elif ch in _NAMED:
            out.append(_NAMED[ch])
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif code <= 0xFFFF:
            out.append(f"\\u{{{code:04x}}}")
        else:
            out.append(f"\\U{{{code:08x}}}")
    return '"' + "".join(out) + '"'


def r_name(name: str) -> str:
    """``name`` as an R name: bare if syntactic, else backtick-quoted.

    >>> r_name("cm_iqv"), r_name("read dis"), r_name("a`b")
    ('cm_iqv', '`read dis`', '`a\\\\`b`')

    Raises
    ------
    PlanError
        If ``name`` is empty or holds a NUL character or a lone surrogate.
    """
    _check(name)
    if not name:
        raise PlanError("an R name cannot be empty; give the variable a name")
    if is_syntactic(name):
        return name
    out = []
    for ch in name:
        if ch in "\\`":
            out.append("\\" + ch)
        elif ch in _NAMED:
            out.append(_NAMED[ch])
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "`" + "".join(out) + "`"


def r_comment(text: str, first: str = "# ", rest: str | None = None,
              width: int | None = None) -> list[str]:
    """``text`` as R comment lines, one (or more, when wrapped) per line of the text.

    Parameters
    ----------
    text : str
        Any text; each of its lines (``str.splitlines``) starts a comment line,
        and characters that are not printable are shown as ``\\xHH``,
        ``\\uHHHH`` or ``\\UHHHHHHHH``.
    first, rest : str
        Prefix of the first comment line and of every further one (default:
        ``first``); both must start with ``#``.
    width : int, optional
        Wrap the words of each line at this width (long words are not broken).

    Returns
    -------
    list of str
        Comment lines without newline characters; at least one.

    >>> r_comment("y ~ x\\n+ z", "# formula: ", "#   ")
    ['# formula: y ~ x', '#   + z']
    """
    rest = first if rest is None else rest
    if not (first.startswith("#") and rest.startswith("#")):
        raise ValueError(f"comment prefixes must start with '#', got {first!r}, {rest!r}")
    lines = [_visible(line) for line in text.splitlines()] or [""]
    out: list[str] = []
    for line in lines:
        prefix = rest if out else first
        if width is None:
            out.append(prefix + line)
        else:
            out += textwrap.wrap(line, width, initial_indent=prefix, subsequent_indent=rest,
                                 break_long_words=False, break_on_hyphens=False) or [prefix]
    return [line.rstrip() for line in out]


def _visible(line: str) -> str:
    """``line`` with every character that is not printable shown as a Python-style escape."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in line)


def _check(text: str) -> None:
    if "\x00" in text:
        raise PlanError(f"{text!r} holds a NUL character, which R strings and names cannot "
                        "hold; rename the variable or recode the value")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise PlanError(f"{text!r} holds a lone surrogate, which is no character; rename the "
                        "variable or recode the value") from None


# ------------------------------------------------------------ script layout

WIDTH = 80


def make_name(name: str) -> str:
    """``name`` made a syntactic R name, in the manner of R's ``make.names``."""
    if is_syntactic(name):
        return name
    out = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9._]", "_", name)).strip("_") or "X"
    if out not in R_RESERVED and not is_syntactic(out):
        out = "X" + out
    return out + "." if out in R_RESERVED else out


def r_vec(items: Sequence[str], head: str = "", tail: str = "", *, bare: bool = False,
         single: bool = False) -> list[str]:
    """Tokens of ``head c(items) tail``; the wrapper breaks lines between tokens only.

    ``bare`` leaves out ``c()`` (for argument lists); ``single`` too when there
    is one item (``meth["den"]`` rather than ``meth[c("den")]``).
    """
    open_, close = ("", "") if bare or (single and len(items) == 1) else ("c(", ")")
    if not items:
        return [f"{head}{open_}{close}{tail}"]
    tokens = [f"{x}, " for x in items[:-1]] + [f"{items[-1]}{close}{tail}"]
    tokens[0] = f"{head}{open_}{tokens[0]}"
    return tokens


def r_wrap(*groups: Sequence[str]) -> str:
    """Join token groups, breaking lines at 80 columns between tokens only.

    Continuation lines are indented by two spaces. A group that does not fit on
    the current line but fits on a line of its own starts a new line.
    """
    lines = [""]
    for group in groups:
        whole = "".join(group).rstrip()
        if lines[-1].strip() and len(lines[-1]) + len(whole) > WIDTH >= len(whole) + 2:
            lines.append("  ")
        for tok in group:
            if lines[-1].strip() and len(lines[-1]) + len(tok.rstrip()) > WIDTH:
                lines.append("  ")
            lines[-1] += tok
    return "\n".join(line.rstrip() for line in lines)


def r_strings(items: Sequence[str]) -> list[str]:
    """Each item as an R string literal (:func:`r_string`)."""
    return [r_string(x) for x in items]


def pred_row(target: str, row: Sequence[tuple[str, int]]) -> str:
    """``pred["target", c(...)] <- c(...)``: the non-zero cells of a row, in R names."""
    cols = r_vec(r_strings([p for p, _ in row]), f"pred[{r_string(target)}, ", "] <- ",
                 single=True)
    return r_wrap(cols, r_vec([str(c) for _, c in row], single=True))


def load_lines(columns: Sequence[str], r_columns: Sequence[str], d: str) -> list[str]:
    """The script lines that select the measured ``columns`` of ``d`` and give them R names."""
    out = [f"# Load your data as `{d}` first: a data.frame with the measured columns",
           *r_comment(", ".join(columns) + " (missing values as NA),", "#   ", width=WIDTH),
           f"# e.g. {d} <- read.csv(\"data.csv\").",
           r_wrap(r_vec(r_strings(columns), f"{d} <- {d}[, ", "]"))]
    if list(r_columns) != list(columns):
        out.append(r_wrap(r_vec(r_strings(r_columns), f"names({d}) <- ")))
    return out


def names_table(names: dict[str, str], notes: dict[str, str]) -> list[str]:
    """Comment lines listing each plan name's R name (with a note for some of them)."""
    width = max([len("R name"), *(len(v) for v in names.values())])
    out = ["# R names of the plan variables:", f"#   {'R name':<{width}}  plan name"]
    for name, rname in names.items():
        what = f" ({notes[name]})" if name in notes else ""
        out += r_comment(f"{rname:<{width}}  {name}{what}", "#   ")
    return out
