"""Category encode and decode: the one mapping between labels and the runtime's codes.

The runtime holds a categorical column as float codes ``0 .. K-1`` (NaN where
missing) in the order of :func:`~recipe_compiler.data.schema.categorical`'s
categories (sorted labels, or the order of a pandas categorical); imputed codes
are written back as the column's own labels and dtype; and the analysis sees
every column the plan treats as categorical as a pandas categorical, so that it
is dummy-coded there as it was in the imputation model.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from .schema import categorical

__all__ = ["as_categories", "decode", "encode"]


def encode(x: pd.Series) -> tuple[np.ndarray, tuple[str, ...]]:
    """Float codes of a categorical column (NaN where missing) and its labels in code order."""
    cat = categorical(x)
    codes = cat.cat.codes.to_numpy().astype(float)
    codes[codes < 0] = np.nan
    return codes, tuple(str(c) for c in cat.cat.categories)


def decode(column: pd.Series, values: np.ndarray, coded: bool) -> pd.Series:
    """``column`` with its missing cells set to ``values``, in the column's own dtype.

    Parameters
    ----------
    column : pandas.Series
        The incomplete column.
    values : ndarray
        One imputed value per missing cell, in row order: category codes (of
        :func:`encode`) if ``coded``, else the values themselves (0/1 for a
        boolean column).
    coded : bool
    """
    miss = np.flatnonzero(column.isna().to_numpy())
    out = column.copy()
    if not coded:
        bool_like = pd.api.types.is_bool_dtype(column.dtype)
        out.iloc[miss] = values.astype(bool) if bool_like else values  # 0/1 of a 0/1 method
        return out
    labels = categorical(column).cat.categories[values.astype(np.intp)]
    if pd.api.types.is_bool_dtype(column.dtype):  # bool or nullable boolean
        out.iloc[miss] = labels.to_numpy(dtype=bool)
    elif pd.api.types.is_numeric_dtype(column) and not isinstance(column.dtype,
                                                                  pd.CategoricalDtype):
        out.iloc[miss] = labels.to_numpy(dtype=float)
    else:
        out.iloc[miss] = labels
    return out


def as_categories(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """``frame`` with ``columns`` as pandas categoricals (in :func:`encode`'s level order).

    Boolean columns are left as they are: as a number they are the 0/1 indicator
    of ``True``, the same model as their dummy coding. Other columns are
    unchanged; ``frame`` is not modified.
    """
    todo = [c for c in columns if c in frame.columns
            and not isinstance(frame[c].dtype, pd.CategoricalDtype)
            and not pd.api.types.is_bool_dtype(frame[c].dtype)]
    if not todo:
        return frame
    return frame.assign(**{c: categorical(frame[c]) for c in todo})
