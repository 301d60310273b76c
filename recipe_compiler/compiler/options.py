"""Compile options and the names of the imputation methods, validated.

The options select among the choices that FIMD section 7.10 leaves open (see
``RECIPES.md``): which interactions enter, how level-1 variables enter products,
whether random slopes become code 4, auxiliary variables, method overrides;
and what the data cannot say: which columns are categorical, which level a
column is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..errors import OptionError, one_of
from .methods import DERIVED_METHODS, LEVEL1_METHODS, LEVEL2_METHODS, METHODS, SINGLE_METHODS

INTERACTIONS = ("implied", "all_pairwise")
CENTERING = ("none", "cluster")
RANDOM_SLOPES = ("include", "means_only")

__all__ = ["CENTERING", "DERIVED_METHODS", "INTERACTIONS", "LEVEL1_METHODS", "LEVEL2_METHODS",
           "METHODS", "RANDOM_SLOPES", "SINGLE_METHODS", "Options", "make_options"]

_KEYS = ("interactions", "centering", "random_slopes", "auxiliary", "methods", "categorical",
         "levels")
#: ``C(x)`` / ``factor(x)`` around an auxiliary column: declared categorical.
_DECLARED = re.compile(r"^\s*(?:C|factor)\(\s*(?P<name>[^()]+?)\s*\)\s*$")


@dataclass(frozen=True)
class Options:
    """Validated compile options.

    Attributes
    ----------
    interactions : {"implied", "all_pairwise"}
        ``implied``: the images of the analysis model's interactions (Table 7.5);
        ``all_pairwise``: every two-way product (section 7.10.5's inclusive strategy).
    centering : {"none", "cluster"}
        ``cluster``: continuous level-1 variables enter products as ``cwc(x)``.
    random_slopes : {"include", "means_only"}
        ``include``: code 4 for random-slope variables; ``means_only``: code 3.
    auxiliary : tuple of str
        Columns used only for imputation (main effects, code 3 or 1).
    methods : tuple of (str, str)
        Method overrides, ``(column, method)``.
    categorical : tuple of str
        Columns declared categorical (as ``C(x)`` in the formula would), e.g. a
        numeric code or a column of strings; ``auxiliary=["C(x)"]`` declares ``x``.
    levels : tuple of (str, int)
        Declared levels ``(column, 1, 2 or 3)``, overriding inference; a column
        declared level 2 must be constant within every cluster, one declared
        level 3 (a model with two nested grouping factors) within every cluster
        of the outer factor.
    """

    interactions: str = "implied"
    centering: str = "none"
    random_slopes: str = "include"
    auxiliary: tuple[str, ...] = ()
    methods: tuple[tuple[str, str], ...] = field(default=())
    categorical: tuple[str, ...] = ()
    levels: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        for name, valid in (("interactions", INTERACTIONS), ("centering", CENTERING),
                            ("random_slopes", RANDOM_SLOPES)):
            if getattr(self, name) not in valid:
                raise one_of(name, getattr(self, name), valid)
        for column, method in self.methods:
            if method not in METHODS:
                raise one_of(f"methods[{column!r}]", method, METHODS)
        for column, level in self.levels:
            _level(column, level)

    @property
    def method_overrides(self) -> dict[str, str]:
        """The method overrides as a dict."""
        return dict(self.methods)

    @property
    def declared_levels(self) -> dict[str, int]:
        """The declared levels as a dict."""
        return dict(self.levels)

    def to_dict(self) -> dict[str, object]:
        """Plain dict (JSON-ready)."""
        return {"interactions": self.interactions, "centering": self.centering,
                "random_slopes": self.random_slopes, "auxiliary": list(self.auxiliary),
                "methods": dict(self.methods), "categorical": list(self.categorical),
                "levels": dict(self.levels)}


def make_options(**options: object) -> Options:
    """Build :class:`Options` from keyword arguments, rejecting unknown keys.

    Raises
    ------
    OptionError
        An unknown option name or value, or an unknown method.
    """
    unknown = [k for k in options if k not in _KEYS]
    if unknown:
        raise OptionError(f"unknown option {unknown[0]!r}; valid options: {', '.join(_KEYS)}")
    written = _names(options.get("auxiliary", ()), "auxiliary")
    matches = [_DECLARED.match(a) for a in written]
    declared = [m.group("name") for m in matches if m]
    aux = tuple(m.group("name") if m else a for a, m in zip(written, matches, strict=True))
    methods = options.get("methods") or {}
    if not isinstance(methods, Mapping):
        raise OptionError(f"methods must be a mapping {{column: method}}, got {methods!r}")
    levels = options.get("levels") or {}
    if not isinstance(levels, Mapping):
        raise OptionError(f"levels must be a mapping {{column: 1 or 2}}, got {levels!r}")
    categorical = _names(options.get("categorical", ()), "categorical")
    return Options(
        interactions=str(options.get("interactions", "implied")),
        centering=str(options.get("centering", "none")),
        random_slopes=str(options.get("random_slopes", "include")),
        auxiliary=aux,
        methods=tuple((str(k), str(v)) for k, v in methods.items()),
        categorical=tuple(dict.fromkeys([*categorical, *declared])),
        levels=tuple((str(k), _level(k, v)) for k, v in levels.items()),
    )


def _level(column: object, level: object) -> int:
    """A declared level: the integer 1, 2 or 3 (also written as a string by the CLI)."""
    if not isinstance(level, bool) and str(level).strip() in ("1", "2", "3"):
        return int(str(level).strip())
    raise OptionError(f"levels[{str(column)!r}]={level!r} is not valid; a column is level 1 "
                      "(varies within clusters) or 2 (one value per cluster), or in a "
                      "three-level model 3 (one value per cluster of the outer grouping factor)")


def _names(value: object, option: str) -> tuple[str, ...]:
    """A list of column names (one string is one name)."""
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, Iterable):
        raise OptionError(f"{option} must be a list of column names, got {value!r}")
    return tuple(str(a) for a in value)
