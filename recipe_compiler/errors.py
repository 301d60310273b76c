"""Errors of recipe_compiler and the rendering of a formula span with a caret.

Every error derives from :class:`RecipeError`, itself a :class:`ValueError`, so
callers may catch either.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Iterable


class RecipeError(ValueError):
    """Base class of every error raised by recipe_compiler."""


class FormulaError(RecipeError):
    """A formula that cannot be parsed or is not supported.

    The message shows the formula with a caret line under the offending span.
    """

    def __init__(self, message: str, formula: str | None = None,
                 span: tuple[int, int] | None = None) -> None:
        self.formula = formula
        self.span = span
        text = message
        if formula is not None:
            text = f"{message}\n{render_span(formula, span)}"
        super().__init__(text)


class DataError(RecipeError):
    """The data do not fit the model: a missing column, a bad dtype, ..."""


class OptionError(RecipeError):
    """An unknown option, option value or method name."""


class PlanError(RecipeError):
    """An invalid plan or plan specification (e.g. a hand-edited JSON spec)."""


class SamplerError(RecipeError):
    """A sampler could not produce imputations."""


class SamplerWarning(UserWarning):
    """A sampler met a numerical problem and recovered (ridge, jitter, dropped column)."""


class DataWarning(UserWarning):
    """The data look unlike what they are used as (e.g. a nearly cluster-constant column)."""


def render_span(formula: str, span: tuple[int, int] | None) -> str:
    r"""Return ``formula`` with a line of carets under ``span`` (start, end).

    ``span`` indexes ``formula``. A formula written over several lines shows the line
    that holds the start of the span, labelled with its number, with the carets under
    it (up to the end of that line); without a span it shows every line. Tabs before
    the span are repeated in the caret line, so the carets stay under the span.

    >>> print(render_span("y ~ a + b", (4, 5)))
        y ~ a + b
            ^
    >>> print(render_span("y ~ a +\n  b + (1 | g)", (10, 11)))
        line 2:   b + (1 | g)
                  ^
    """
    lines = formula.splitlines(keepends=True) or [""]
    texts = [(line.splitlines() or [""])[0] for line in lines]
    if span is None:
        return "\n".join(f"    {text}" for text in texts)
    start, end = span
    start = max(0, min(start, len(formula)))
    ends = list(itertools.accumulate(len(line) for line in lines))
    k = next((i for i, e in enumerate(ends) if start < e), len(lines) - 1)
    text = texts[k]
    column = min(start - (ends[k] - len(lines[k])), len(text))
    width = max(1, min(end - start, len(text) - column))
    label = f"line {k + 1}: " if len(lines) > 1 else ""
    pad = "".join("\t" if c == "\t" else " " for c in label + text[:column])
    return f"    {label}{text}\n    {pad}{'^' * width}"


def suggest(name: str, candidates: Iterable[str]) -> str:
    """A ``did you mean ...?`` hint listing close names, or the valid names if few."""
    pool = [str(c) for c in candidates]
    close = difflib.get_close_matches(name, pool, n=3, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    if len(pool) <= 20:
        return "valid names: " + ", ".join(repr(c) for c in pool)
    return f"{len(pool)} columns available"


def one_of(option: str, value: object, valid: Iterable[str]) -> OptionError:
    """An :class:`OptionError` saying ``option=value`` is not one of ``valid``."""
    choices = ", ".join(repr(v) for v in valid)
    return OptionError(f"{option}={value!r} is not valid; choose one of {choices}")
