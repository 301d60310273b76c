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
from .grouping import Grouping

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
    """

    name: str
    level: int
    kind: Kind
    n_missing: int
    n_observed: int
    categories: tuple[str, ...] = ()
    ordered: bool = False


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
    """Raise a :class:`DataError` with a caret if a column of the formula is not in ``data``."""
    def caret(col: str) -> str:
        span = spec.span_of(col, "random") if col == spec.cluster else spec.span_of(col)
        return f"\n{render_span(spec.formula, span)}" if span else ""

    require_columns(data, [c for c in spec.columns if c != spec.cluster],
                    "column '{}' of the formula", caret)
    if spec.cluster is not None:
        require_columns(data, [spec.cluster], "cluster variable '{}' of the formula", caret)


def infer_schema(data: pd.DataFrame, columns: Iterable[str], cluster: str | None,
                 categorical: Iterable[str] = (),
                 levels: Mapping[str, int] | None = None) -> DataSchema:
    """Infer level, kind and missingness of ``columns``.

    Parameters
    ----------
    data : pandas.DataFrame
    columns : iterable of str
        Measured columns of the model (not the cluster).
    cluster : str or None
        Grouping column; ``None`` for single-level data (every column level 1).
    categorical : iterable of str
        Columns declared categorical (``C(x)`` in the formula, the ``categorical``
        option).
    levels : mapping of str -> int, optional
        Declared levels (1 or 2), overriding inference. A column declared level 2
        must be constant within every cluster.

    Raises
    ------
    DataError
        Empty frame, duplicate names, bad cluster column, an all-missing column,
        infinite values, strings in a numeric column, too many categories, a
        declared level for a column that is not in ``columns`` or without clusters,
        a column declared level 2 that varies within a cluster (naming the clusters).

    Warns
    -----
    DataWarning
        A column that varies within only a few clusters (at most
        :data:`NEAR_LEVEL2_SHARE` of them): it is level 1, and the warning names
        those clusters.
    """
    check_frame(data)
    declared = set(categorical)
    levels = dict(levels or {})
    names = tuple(dict.fromkeys(columns))
    for column, level in levels.items():
        if column not in names:
            raise DataError(f"levels: '{column}' is not a measured column of the model; "
                            f"{suggest(column, names)}")
        if cluster is None and level != 1:
            raise DataError(f"levels: '{column}' is declared level {level}, but the model has "
                            "no clusters; add a random part such as (1 | cluster)")
    grouping = (Grouping.from_column(data, cluster) if cluster is not None
                else Grouping.single(len(data)))
    infos = tuple(_column_info(data, c, grouping, c in declared, levels.get(c)) for c in names)
    return DataSchema(cluster=cluster, n_rows=len(data), n_clusters=grouping.n, columns=infos)


def _column_info(data: pd.DataFrame, name: str, grouping: Grouping,
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
    level = _level(x, observed, grouping, declared_level)
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
                      n_observed=n_obs, categories=categories, ordered=ordered)


def _level(x: pd.Series, observed: np.ndarray, grouping: Grouping,
           declared: int | None) -> int:
    """The column's level: declared (checked), else 2 if constant within every cluster."""
    if grouping.name is None:
        return 1
    if declared == 1:
        return 1
    distinct = distinct_per_cluster(x, observed, grouping)
    varying = np.flatnonzero(distinct > 1)
    if declared == 2 and varying.size:
        raise DataError(f"column '{x.name}' is declared level 2 (levels={{'{x.name}': 2}}), but "
                        f"it varies within {_clusters(varying, distinct, observed, grouping)}; "
                        "a level-2 column takes one value per cluster: correct those values, "
                        "or drop the declaration to impute it as a level-1 column")
    if varying.size == 0:
        return 2
    multi = int(np.sum(grouping.count(observed) > 1))
    if varying.size <= NEAR_LEVEL2_SHARE * multi:
        warnings.warn(f"column '{x.name}' varies within only "
                      f"{_clusters(varying, distinct, observed, grouping)}; it is imputed and "
                      "used as a level-1 column. If it is a cluster-level "
                      "variable, correct those values and declare it with "
                      f"levels={{'{x.name}': 2}} (which checks it)", DataWarning, stacklevel=5)
    return 1


def distinct_per_cluster(x: pd.Series, observed: np.ndarray, grouping: Grouping) -> np.ndarray:
    """Number of distinct observed values of ``x`` in each cluster, shape (G,)."""
    values = pd.factorize(x)[0][observed]
    width = int(values.max(initial=0)) + 1
    pairs = np.sort(grouping.codes[observed].astype(np.int64) * width + values)
    first = np.ones(len(pairs), dtype=bool)  # the first row of each (cluster, value) pair
    np.not_equal(pairs[1:], pairs[:-1], out=first[1:])
    return np.bincount(pairs[first] // width, minlength=grouping.n)


def _clusters(varying: np.ndarray, distinct: np.ndarray, observed: np.ndarray,
              grouping: Grouping) -> str:
    """``"2 of 100 clusters of 'sch': 7 (2 values in 25 rows), ..."`` for a message."""
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
