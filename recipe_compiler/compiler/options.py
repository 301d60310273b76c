"""Compile options and the names of the imputation methods, validated.

The options select among the choices that FIMD section 7.10 leaves open (see
``RECIPES.md``): which interactions enter, how level-1 variables enter products,
whether random slopes become code 4, auxiliary variables, method overrides.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..errors import OptionError, one_of
from .methods import DERIVED_METHODS, LEVEL1_METHODS, LEVEL2_METHODS, METHODS, SINGLE_METHODS

INTERACTIONS = ("implied", "all_pairwise")
CENTERING = ("none", "cluster")
RANDOM_SLOPES = ("include", "means_only")

__all__ = ["CENTERING", "DERIVED_METHODS", "INTERACTIONS", "LEVEL1_METHODS", "LEVEL2_METHODS",
           "METHODS", "RANDOM_SLOPES", "SINGLE_METHODS", "Options", "make_options"]

_KEYS = ("interactions", "centering", "random_slopes", "auxiliary", "methods")


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
    """

    interactions: str = "implied"
    centering: str = "none"
    random_slopes: str = "include"
    auxiliary: tuple[str, ...] = ()
    methods: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        for name, valid in (("interactions", INTERACTIONS), ("centering", CENTERING),
                            ("random_slopes", RANDOM_SLOPES)):
            if getattr(self, name) not in valid:
                raise one_of(name, getattr(self, name), valid)
        for column, method in self.methods:
            if method not in METHODS:
                raise one_of(f"methods[{column!r}]", method, METHODS)

    @property
    def method_overrides(self) -> dict[str, str]:
        """The method overrides as a dict."""
        return dict(self.methods)

    def to_dict(self) -> dict[str, object]:
        """Plain dict (JSON-ready)."""
        return {"interactions": self.interactions, "centering": self.centering,
                "random_slopes": self.random_slopes, "auxiliary": list(self.auxiliary),
                "methods": dict(self.methods)}


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
    aux = options.get("auxiliary", ())
    if isinstance(aux, str):
        aux = (aux,)
    if not isinstance(aux, Iterable):
        raise OptionError(f"auxiliary must be a list of column names, got {aux!r}")
    methods = options.get("methods") or {}
    if not isinstance(methods, Mapping):
        raise OptionError(f"methods must be a mapping {{column: method}}, got {methods!r}")
    return Options(
        interactions=str(options.get("interactions", "implied")),
        centering=str(options.get("centering", "none")),
        random_slopes=str(options.get("random_slopes", "include")),
        auxiliary=tuple(str(a) for a in aux),
        methods=tuple((str(k), str(v)) for k, v in methods.items()),
    )
