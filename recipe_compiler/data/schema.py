"""What the data say about each model column: level, kind, missingness.

:func:`infer_schema` also performs the data checks that must happen before any
compilation: a clear :class:`~recipe_compiler.errors.DataError` for each kind
of bad input, naming the column and saying what would be valid.

It is the one place that decides, once per column, whether a column is
categorical (a pandas ``category`` or boolean dtype, ``C(x)`` in the formula,
or declared with the ``categorical`` option) and whether it is ordered (an
ordered pandas categorical), and which level it is (inferred, or declared with
the ``levels`` option); compile, impute, fit and export read that decision.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import pandas as pd

from ..errors import DataError, DataWarning, render_span, suggest
from ..model.spec import ModelSpec
from .grouping import Grouping, distinct_per_cluster
from .levels import Nesting, groupings_of

Kind = Literal["continuous", "binary", "categorical"]

#: A categorical predictor with more levels than this must be declared.
MAX_CATEGORIES = 50
#: A column that varies within at most this share of the clusters with two or more
#: observed values (so at least 20 of them for one) is nearly level 2: it stays
#: level 1, with a warning naming the clusters.
NEAR_LEVEL2_SHARE = 0.05
#: Clusters listed by name in a level message.
LISTED_CLUSTERS = 10


@dataclass(frozen=True)
class ColumnInfo:
    """Facts about one measured column.

    Attributes
    ----------
    name : str
    level : int
        2 if constant within every cluster (over its observed values), else 1;
        or as declared with the ``levels`` option.
    kind : {"continuous", "binary", "categorical"}
    n_missing, n_observed : int
    categories : tuple of str
        Levels of a categorical column (as strings; sorted, or in the order of a
        pandas categorical), else empty.
    ordered : bool
        An ordered categorical column (an ordered pandas categorical dtype).
    within : tuple of str
        With several grouping factors: the factors within whose clusters the column
        is constant, as its level says (nested, level ``l``: the ``l - 1`` innermost;
        crossed, level 2: each factor it is constant within). Else empty.
    """

    name: str
    level: int
    kind: Kind
    n_missing: int
    n_observed: int
    categories: tuple[str, ...] = ()
    ordered: bool = False
    within: tuple[str, ...] = ()


@dataclass(frozen=True)
class DataSchema:
    """Column facts for the columns a model uses."""

    cluster: str | None
    n_rows: int
    n_clusters: int
    columns: tuple[ColumnInfo, ...]

    @cached_property
    def _by_name(self) -> dict[str, ColumnInfo]:
        return {c.name: c for c in self.columns}

    def __getitem__(self, name: str) -> ColumnInfo:
        try:
            return self._by_name[name]
        except KeyError:
            raise DataError(f"column '{name}' is not part of the model; "
                            f"{suggest(name, self.names)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def names(self) -> tuple[str, ...]:
        """Column names in schema order."""
        return tuple(c.name for c in self.columns)


def check_frame(data: object) -> pd.DataFrame:
    """Check that ``data`` is a non-empty DataFrame with unique column names."""
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if data.shape[0] == 0:
        raise DataError("the data frame has no rows")
    if isinstance(data.columns, pd.MultiIndex):
        raise DataError("the data frame has hierarchical (MultiIndex) column names; flatten "
                        "them to single names first, e.g. data.columns = ['_'.join(map(str, c)) "
                        "for c in data.columns]")
    dup = data.columns[data.columns.duplicated()].unique()
    if len(dup):
        raise DataError("duplicate column names: " + ", ".join(repr(str(d)) for d in dup)
                        + "; rename them so that each column name is unique")
    return data


def require_columns(data: pd.DataFrame, names: Iterable[str], what: str = "column '{}'",
                    where: Callable[[str], str] | None = None) -> None:
    """Raise the one "not in the data" :class:`DataError` for the first absent column.

    Parameters
    ----------
    data : pandas.DataFrame
    names : iterable of str
    what : str
        How the message names a column, ``{}`` standing for its name:
        ``"auxiliary column '{}'"`` gives "auxiliary column 'x' is not in the data; did
        you mean ...?".
    where : callable, optional
        Text appended to the message for a name (e.g. the formula with a caret).
    """
    for name in names:
        if name not in data.columns:
            tail = where(name) if where else ""
            raise DataError(f"{what.format(name)} is not in the data; "
                            f"{suggest(name, map(str, data.columns))}{tail}")


def check_columns(spec: ModelSpec, data: pd.DataFrame) -> None:
    """Raise a :class:`DataError` with a caret if a column of the formula is not in ``data``.

    A grouping column is named "cluster variable" (one grouping column) or "grouping
    variable" (several), with the caret in the random part.
    """
    grouping = set(spec.grouping_columns)

    def caret(col: str) -> str:
        span = spec.span_of(col, "random") if col in grouping else spec.span_of(col)
        return f"\n{render_span(spec.formula, span)}" if span else ""

    require_columns(data, [c for c in spec.columns if c not in grouping],
                    "column '{}' of the formula", caret)
    what = "cluster variable" if len(grouping) == 1 else "grouping variable"
    require_columns(data, list(spec.grouping_columns), what + " '{}' of the formula", caret)


def infer_schema(data: pd.DataFrame, columns: Iterable[str], cluster: str | None,
                 categorical: Iterable[str] = (),
                 levels: Mapping[str, int] | None = None, *,
                 groupings: Nesting | None = None) -> DataSchema:
    """Infer level, kind and missingness of ``columns``.

    Parameters
    ----------
    data : pandas.DataFrame
    columns : iterable of str
        Measured columns of the model (not the grouping columns).
    cluster : str or None
        Grouping column; ``None`` for single-level data (every column level 1).
        With ``groupings``: its innermost factor (or ``None``).
    categorical : iterable of str
        Columns declared categorical (``C(x)`` in the formula, the ``categorical``
        option).
    levels : mapping of str -> int, optional
        Declared levels, overriding inference: 1 or 2; with a nested ``groupings`` of
        ``k`` factors up to ``k + 1``. A column declared level ``l >= 2`` must be
        constant within every cluster of the ``(l - 1)``-th factor from the inside
        (crossed: within every cluster of at least one factor).
    groupings : Nesting, optional
        Several grouping factors (:func:`recipe_compiler.data.levels.nesting`). Nested:
        a column is level 1 if it varies within the innermost clusters, else 2 if it
        varies within the clusters of the next factor, else 3, ... (observed values
        only). Crossed: level 1, or 2 if constant within the clusters of at least one
        factor. ``None``: the single grouping ``cluster``.

    Raises
    ------
    DataError
        Empty frame, duplicate names, bad grouping column (absent, with missing
        values, a single cluster), an all-missing column, infinite values, strings in
        a numeric column, too many categories, a declared level for a column that is
        not in ``columns``, without clusters or above the design's levels, a column
        declared level ``l`` that varies within a cluster of its factor (naming the
        clusters).

    Warns
    -----
    DataWarning
        A column that varies within only a few clusters of a factor (at most
        :data:`NEAR_LEVEL2_SHARE` of them): it keeps the lower level, and the warning
        names those clusters.
    """
    check_frame(data)
    declared = set(categorical)
    levels = dict(levels or {})
    names = tuple(dict.fromkeys(columns))
    if groupings is not None and cluster not in (None, groupings.innermost):
        raise ValueError(f"cluster {cluster!r} is not the innermost grouping factor "
                         f"{groupings.innermost!r}")
    factors = groupings.groupings if groupings is not None else (cluster,) if cluster else ()
    crossed = groupings is not None and groupings.kind == "crossed" and len(factors) > 1
    top = 2 if crossed else len(factors) + 1
    for column, level in levels.items():
        if column not in names:
            raise DataError(f"levels: '{column}' is not a measured column of the model; "
                            f"{suggest(column, names)}")
        if not factors and level != 1:
            raise DataError(f"levels: '{column}' is declared level {level}, but the model has "
                            "no clusters; add a random part such as (1 | cluster)")
        if factors and not 1 <= level <= top:
            design = "crossed" if crossed else f"{len(factors) + 1}-level"
            raise DataError(f"levels: '{column}' is declared level {level}, but the "
                            f"{design} design has levels 1 to {top} (grouping factors: "
                            f"{', '.join(factors)})")
    groups = (groupings_of(data, factors, min_clusters=2) if factors
              else (Grouping.single(len(data)),))
    infos = tuple(_column_info(data, c, groups, crossed, c in declared, levels.get(c))
                  for c in names)
    return DataSchema(cluster=factors[0] if factors else None, n_rows=len(data),
                      n_clusters=groups[0].n, columns=infos)


def _column_info(data: pd.DataFrame, name: str, groups: tuple[Grouping, ...], crossed: bool,
                 declared: bool, declared_level: int | None = None) -> ColumnInfo:
    require_columns(data, [name])
    x = data[name]
    observed = x.notna().to_numpy()
    n_obs = int(observed.sum())
    if n_obs == 0:
        raise DataError(f"column '{name}' is entirely missing; nothing can be imputed from it "
                        "(drop it from the formula)")
    is_cat = (declared or isinstance(x.dtype, pd.CategoricalDtype)
              or pd.api.types.is_bool_dtype(x.dtype))  # bool or nullable boolean
    if not is_cat and (pd.api.types.is_datetime64_any_dtype(x) or pd.api.types.is_complex_dtype(x)
                       or pd.api.types.is_timedelta64_dtype(x)):
        hint = "" if pd.api.types.is_complex_dtype(x) else " (e.g. days since a reference date)"
        raise DataError(f"column '{name}' has dtype {x.dtype}, which an imputation model cannot "
                        f"use as a number; convert it to real numbers first{hint}, or write "
                        f"C({name}) to use it as categorical")
    if not is_cat and not pd.api.types.is_numeric_dtype(x):
        converted = pd.to_numeric(x, errors="coerce")
        bad = x[converted.isna() & x.notna()]
        if len(bad):
            raise DataError(f"column '{name}' holds non-numeric values such as {bad.iloc[0]!r}; "
                            f"convert it to numbers, or write C({name}) to use it as categorical")
        is_cat = True
    if not is_cat and np.isinf(x.to_numpy(dtype=float)[observed]).any():
        raise DataError(f"column '{name}' holds infinite values; replace them by NaN (missing) "
                        "or finite numbers")
    level, within = _level(x, observed, groups, crossed, declared_level)
    categories: tuple[str, ...] = ()
    ordered = False
    if is_cat:
        cat = categorical(x).cat
        categories, ordered = tuple(str(c) for c in cat.categories), bool(cat.ordered)
        if len(categories) > MAX_CATEGORIES and not declared:
            raise DataError(f"column '{name}' has {len(categories)} categories (more than "
                            f"{MAX_CATEGORIES}); write C({name}) to declare it categorical "
                            "if that is intended")
    n_distinct = len(categories) if is_cat else int(pd.unique(x[observed]).size)
    kind: Kind = "binary" if n_distinct == 2 else "categorical" if is_cat else "continuous"
    return ColumnInfo(name=name, level=level, kind=kind, n_missing=len(x) - n_obs,
                      n_observed=n_obs, categories=categories, ordered=ordered,
                      within=within if len(groups) > 1 else ())


def _level(x: pd.Series, observed: np.ndarray, groups: tuple[Grouping, ...], crossed: bool,
           declared: int | None) -> tuple[int, tuple[str, ...]]:
    """The column's level, declared (checked) or inferred (see :func:`infer_schema`), and
    the grouping factors it is constant within (see :attr:`ColumnInfo.within`).

    One pass over the observed values per grouping factor (at most all of them), none
    over clusters. ``groups``: innermost first (nested), or the crossed factors.
    """
    if groups[0].name is None or declared == 1:
        return 1, ()
    if crossed:
        return _crossed_level(x, observed, groups, declared)
    names = tuple(g.name or "" for g in groups)
    level = 1
    for k, grouping in enumerate(groups):
        if declared is not None and declared > k + 2:
            continue  # constant within a coarser factor is constant within this one
        distinct = distinct_per_cluster(x, observed, grouping)
        varying = np.flatnonzero(distinct > 1)
        if declared is not None:
            if varying.size:
                raise _declared_error(x, declared, [(varying, distinct, grouping)], observed)
            return declared, names[:declared - 1]
        if varying.size:
            _warn_nearly(x, level, varying, distinct, observed, grouping)
            return level, names[:level - 1]
        level = k + 2
    return level, names


def _crossed_level(x: pd.Series, observed: np.ndarray, groups: tuple[Grouping, ...],
                   declared: int | None) -> tuple[int, tuple[str, ...]]:
    """Crossed factors: 2 if constant within the clusters of at least one factor, else 1."""
    found = []
    for grouping in groups:
        distinct = distinct_per_cluster(x, observed, grouping)
        found.append((np.flatnonzero(distinct > 1), distinct, grouping))
    within = tuple(g.name or "" for v, _, g in found if v.size == 0)
    if within:
        return 2, within
    if declared == 2:
        raise _declared_error(x, 2, found, observed)
    return 1, ()


def _declared_error(x: pd.Series, declared: int,
                    found: list[tuple[np.ndarray, np.ndarray, Grouping]],
                    observed: np.ndarray) -> DataError:
    """A column declared level ``declared`` varies within the clusters ``found``."""
    where = " and ".join(describe_clusters(v, d, observed, g) for v, d, g in found)
    return DataError(f"column '{x.name}' is declared level {declared} (levels={{'{x.name}': "
                     f"{declared}}}), but it varies within {where}; a level-{declared} column "
                     "takes one value per cluster: correct those values, or drop the "
                     f"declaration to impute it as a level-{declared - 1} column")


def _warn_nearly(x: pd.Series, level: int, varying: np.ndarray, distinct: np.ndarray,
                 observed: np.ndarray, grouping: Grouping) -> None:
    """Warn about a column that varies within only a few clusters of ``grouping``."""
    multi = int(np.sum(grouping.count(observed) > 1))
    if varying.size <= NEAR_LEVEL2_SHARE * multi:
        where = describe_clusters(varying, distinct, observed, grouping)
        warnings.warn(f"column '{x.name}' varies within only {where}; it is imputed and "
                      f"used as a level-{level} column. If it is a level-{level + 1} variable "
                      f"(one value per cluster of '{grouping.name}'), correct those values and "
                      f"declare it with levels={{'{x.name}': {level + 1}}} (which checks it)",
                      DataWarning, stacklevel=6)


def describe_clusters(varying: np.ndarray, distinct: np.ndarray, observed: np.ndarray,
                      grouping: Grouping) -> str:
    """``"2 of 100 clusters of 'sch': 7 (2 values in 25 rows), ..."`` for a message.

    Parameters
    ----------
    varying : ndarray of int
        The clusters to list (codes), e.g. where a column takes several values.
    distinct : ndarray of int, shape (G,)
        Distinct values per cluster (:func:`distinct_per_cluster`).
    observed : ndarray of bool
        The rows counted.
    grouping : Grouping
    """
    rows = grouping.count(observed)
    listed = ", ".join(f"{grouping.labels[c]} ({distinct[c]} values in {rows[c]} rows)"
                       for c in varying[:LISTED_CLUSTERS])
    more = f", and {varying.size - LISTED_CLUSTERS} more" if varying.size > LISTED_CLUSTERS else ""
    return f"{varying.size} of {grouping.n} clusters of '{grouping.name}': {listed}{more}"


def categorical(x: pd.Series) -> pd.Series:
    """``x`` as a pandas Categorical; whole-number floats become integer labels."""
    if isinstance(x.dtype, pd.CategoricalDtype):
        return x
    if pd.api.types.is_float_dtype(x) and np.all(np.mod(x.dropna(), 1) == 0):
        x = x.astype("Int64")
    return x.astype("category")
