"""What the data say about each model column: level, kind, missingness.

:func:`infer_schema` also performs the data checks that must happen before any
compilation: a clear :class:`~recipe_compiler.errors.DataError` for each kind
of bad input, naming the column and saying what would be valid.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import pandas as pd

from ..errors import DataError, suggest
from .grouping import Grouping

Kind = Literal["continuous", "binary", "categorical"]

#: A categorical predictor with more levels than this must be declared.
MAX_CATEGORIES = 50


@dataclass(frozen=True)
class ColumnInfo:
    """Facts about one measured column.

    Attributes
    ----------
    name : str
    level : int
        2 if constant within every cluster (over its observed values), else 1.
    kind : {"continuous", "binary", "categorical"}
    n_missing, n_observed : int
    categories : tuple of str
        Sorted levels of a categorical column (as strings), else empty.
    """

    name: str
    level: int
    kind: Kind
    n_missing: int
    n_observed: int
    categories: tuple[str, ...] = ()


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


def infer_schema(data: pd.DataFrame, columns: Iterable[str], cluster: str | None,
                 categorical: Iterable[str] = ()) -> DataSchema:
    """Infer level, kind and missingness of ``columns``.

    Parameters
    ----------
    data : pandas.DataFrame
    columns : iterable of str
        Measured columns of the model (not the cluster).
    cluster : str or None
        Grouping column; ``None`` for single-level data (every column level 1).
    categorical : iterable of str
        Columns declared categorical (``C(x)`` in the formula).

    Raises
    ------
    DataError
        Empty frame, duplicate names, bad cluster column, an all-missing column,
        infinite values, strings in a numeric column, too many categories.
    """
    check_frame(data)
    declared = set(categorical)
    grouping = (Grouping.from_column(data, cluster) if cluster is not None
                else Grouping.single(len(data)))
    infos = tuple(_column_info(data, c, grouping, c in declared) for c in dict.fromkeys(columns))
    return DataSchema(cluster=cluster, n_rows=len(data), n_clusters=grouping.n, columns=infos)


def _column_info(data: pd.DataFrame, name: str, grouping: Grouping,
                 declared: bool) -> ColumnInfo:
    if name not in data.columns:
        raise DataError(f"column '{name}' is not in the data; "
                        f"{suggest(name, map(str, data.columns))}")
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
    level = grouping.level(x, observed)
    categories: tuple[str, ...] = ()
    if is_cat:
        categories = tuple(str(c) for c in categorical(x).cat.categories)
        if len(categories) > MAX_CATEGORIES and not declared:
            raise DataError(f"column '{name}' has {len(categories)} categories (more than "
                            f"{MAX_CATEGORIES}); write C({name}) to declare it categorical "
                            "if that is intended")
    n_distinct = len(categories) if is_cat else int(pd.unique(x[observed]).size)
    kind: Kind = "binary" if n_distinct == 2 else "categorical" if is_cat else "continuous"
    return ColumnInfo(name=name, level=level, kind=kind, n_missing=len(x) - n_obs,
                      n_observed=n_obs, categories=categories)


def categorical(x: pd.Series) -> pd.Series:
    """``x`` as a pandas Categorical; whole-number floats become integer labels."""
    if isinstance(x.dtype, pd.CategoricalDtype):
        return x
    if pd.api.types.is_float_dtype(x) and np.all(np.mod(x.dropna(), 1) == 0):
        x = x.astype("Int64")
    return x.astype("category")
