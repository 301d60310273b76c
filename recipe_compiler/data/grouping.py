"""Cluster membership of the rows, and aggregation over clusters.

:class:`Grouping` owns the integer cluster codes of one grouping factor and
everything computed from them (sizes, sums, means, per-cluster
cross-products, whether a column is constant within the clusters). It is what
the package passes around instead of a ``(groups, n_groups)`` pair; a second
grouping factor (classes in schools, crossed raters and items) is a second
:class:`Grouping`.

1-D sums go through :meth:`Grouping.segment_sums`; 2-D sums and per-cluster
cross-products through one product with a sparse cluster-membership matrix,
which beats a ``bincount`` per column from a handful of columns on. Sums of
stacks of rows (:meth:`Grouping.segment_sums`, the samplers' hot path) are one
``numpy.add.reduceat`` over contiguous segments when the rows are sorted by
cluster (as the runtime arranges them), else a ``bincount`` per stacked row.
There is no Python loop over rows or clusters. Clusters without rows get sums
and means of zero, never NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from scipy.sparse import csc_matrix

from ..errors import DataError, suggest


@dataclass(frozen=True, eq=False)
class Grouping:
    """Integer cluster codes ``0 .. n - 1`` of every row.

    Attributes
    ----------
    codes : ndarray of int, shape (n_rows,)
    n : int
        Number of clusters.
    name : str or None
        The grouping column (``None``: single-level data, one cluster).
    labels : tuple
        The cluster labels in code order (empty for single-level data).
    """

    codes: np.ndarray
    n: int
    name: str | None = None
    labels: tuple[object, ...] = ()

    @classmethod
    def single(cls, n_rows: int) -> Grouping:
        """Every row in one cluster (single-level data)."""
        return cls(codes=np.zeros(n_rows, dtype=np.intp), n=1)

    @classmethod
    def from_column(cls, data: pd.DataFrame, column: str, *, min_clusters: int = 2) -> Grouping:
        """Codes of a complete grouping column, clusters in sorted label order.

        ``column`` may also name a compound grouping factor ``"school:class"`` that is
        not itself a column: each part separated by ``:`` must be a column, and the
        clusters are the distinct combinations (see :meth:`from_columns`).

        Raises
        ------
        DataError
            The column (or a part of a compound factor) is not in the data or has
            missing values (naming the rows), or there are fewer than
            ``min_clusters`` clusters.
        """
        if column not in data.columns and ":" in column:
            parts = tuple(column.split(":"))
            absent = [p for p in parts if p not in data.columns]
            if not absent:
                return cls.from_columns(data, parts, min_clusters=min_clusters)
            raise DataError(f"cluster variable '{absent[0]}' (of the grouping factor "
                            f"'{column}') is not in the data; "
                            f"{suggest(absent[0], map(str, data.columns))}")
        if column not in data.columns:
            raise DataError(f"cluster variable '{column}' is not in the data; "
                            f"{suggest(column, map(str, data.columns))}")
        g = data[column]
        check_complete(g)
        codes, labels = pd.factorize(g, sort=True)
        _check_count(column, len(labels), min_clusters)
        return cls(codes=np.asarray(codes, dtype=np.intp), n=len(labels), name=column,
                   labels=tuple(labels))

    @classmethod
    def from_columns(cls, data: pd.DataFrame, columns: tuple[str, ...], *,
                     min_clusters: int = 1) -> Grouping:
        """The grouping by the interaction of ``columns`` (``school:class``).

        Clusters are the distinct combinations present in the data, in sorted order
        (by the first column's sorted labels, then the second's, ...); each is labelled
        by its labels joined by ``:``, and the grouping is named ``":".join(columns)``.
        One column gives :meth:`from_column`.

        Raises
        ------
        DataError
            As :meth:`from_column`, for each column.
        """
        parts = [cls.from_column(data, c, min_clusters=1) for c in columns]
        if len(parts) == 1:
            _check_count(columns[0], parts[0].n, min_clusters)
            return parts[0]
        shape = [g.n for g in parts]
        levels, codes = np.unique(np.ravel_multi_index([g.codes for g in parts], shape),
                                  return_inverse=True)
        name = ":".join(columns)
        _check_count(name, len(levels), min_clusters)
        at = np.unravel_index(levels, shape)
        label = pd.Series(np.asarray(parts[0].labels, dtype=object)[at[0]]).astype(str)
        for g, idx in zip(parts[1:], at[1:], strict=True):
            label = label + ":" + pd.Series(np.asarray(g.labels, dtype=object)[idx]).astype(str)
        return cls(codes=codes.reshape(-1).astype(np.intp), n=len(levels), name=name,
                   labels=tuple(label))

    @property
    def n_rows(self) -> int:
        """Number of rows."""
        return len(self.codes)

    @cached_property
    def sizes(self) -> np.ndarray:
        """Number of rows in each cluster, shape (n,)."""
        return np.bincount(self.codes, minlength=self.n)

    @cached_property
    def segments(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(clusters with rows, position of their first row)`` if the codes are sorted
        (non-decreasing), else ``None``."""
        codes = self.codes
        if np.any(codes[1:] < codes[:-1]):
            return None
        nonempty = np.flatnonzero(self.sizes)
        return nonempty, (np.cumsum(self.sizes) - self.sizes)[nonempty]

    def segment_sums(self, a: np.ndarray) -> np.ndarray:
        """Sums over each cluster's rows along the last axis: ``(..., n_rows) -> (..., n)``.

        Each stacked row is summed on its own, so the sums of one row do not
        depend on the others (a batch of chains gives each chain's sums exactly).
        """
        out = np.zeros((*a.shape[:-1], self.n))
        segments = self.segments
        if segments is None:
            flat, sums = a.reshape(-1, a.shape[-1]), out.reshape(-1, self.n)
            for k in range(flat.shape[0]):
                sums[k] = np.bincount(self.codes, weights=flat[k], minlength=self.n)
        elif len(segments[1]):
            nonempty, starts = segments
            if len(nonempty) == self.n:
                np.add.reduceat(a, starts, axis=-1, out=out)
            else:
                out[..., nonempty] = np.add.reduceat(a, starts, axis=-1)
        return out

    def count(self, rows: np.ndarray) -> np.ndarray:
        """Number of selected rows (boolean mask) in each cluster, shape (n,)."""
        return np.bincount(self.codes[rows], minlength=self.n)

    def sums(self, x: np.ndarray) -> np.ndarray:
        """Sum of ``x`` (shape (n_rows,) or (n_rows, k)) over each cluster's rows."""
        if x.ndim == 1:
            return self.segment_sums(x)
        return self.crossprod(np.ones((self.n_rows, 1)), x)[:, 0, :]

    def means(self, x: np.ndarray) -> np.ndarray:
        """Mean of ``x`` over each cluster's rows; zero (not NaN) for empty clusters."""
        sizes = self.sizes.astype(float)
        inverse = np.divide(1.0, sizes, out=np.zeros_like(sizes), where=sizes > 0)
        sums = self.sums(x)
        return sums * inverse if x.ndim == 1 else sums * inverse[:, None]

    def observed_means(self, x: np.ndarray) -> np.ndarray:
        """Mean of the non-NaN values of ``x`` (1-D) per cluster; NaN where none is observed."""
        seen = ~np.isnan(x)
        sums = np.bincount(self.codes[seen], weights=x[seen], minlength=self.n)
        counts = self.count(seen)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, sums / counts, np.nan)

    def expand(self, per_cluster: np.ndarray) -> np.ndarray:
        """Per-cluster values (shape (n, ...)) broadcast to the rows."""
        return per_cluster[self.codes]

    def crossprod(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Per-cluster cross-products ``A_c' B_c``, shape (n, qa, qb).

        One sparse product: the ``(n * qa, n_rows)`` matrix holding ``a[i, j]`` in
        row ``codes[i] * qa + j`` times ``b``; no ``(n_rows, qa, qb)`` temporary.
        Weighted cross-products ``A_c' W_c B_c`` follow by passing ``W a``.
        Zero matrices for clusters without rows.
        """
        n_rows, qa = a.shape
        rows = (self.codes[:, None] * qa + np.arange(qa)).ravel()
        spread = csc_matrix((a.ravel(), rows, np.arange(0, n_rows * qa + 1, qa)),
                            shape=(self.n * qa, n_rows))
        return np.asarray(spread @ b).reshape(self.n, qa, b.shape[1])

    def subset(self, rows: np.ndarray) -> Grouping:
        """The grouping of the selected rows (a boolean mask or indices); same clusters."""
        return Grouping(codes=self.codes[rows], n=self.n, name=self.name, labels=self.labels)

    def constant_within(self, x: pd.Series | np.ndarray, observed: np.ndarray) -> bool:
        """True if ``x`` takes one value within every cluster (over its observed values)."""
        return bool(np.all(distinct_per_cluster(x, observed, self) <= 1))


#: Row index labels listed in the message about a grouping column with missing values.
LISTED_ROWS = 5


def check_complete(column: pd.Series) -> None:
    """Raise a :class:`DataError` if a grouping column has missing values.

    The message names the column, the number of rows with a missing value and the
    index labels of the first :data:`LISTED_ROWS` of them; no row is ever dropped.
    """
    missing = column.isna().to_numpy()
    n_missing = int(missing.sum())
    if n_missing:
        rows = ", ".join(map(repr, column.index[missing][:LISTED_ROWS].tolist()))
        more = ", ..." if n_missing > LISTED_ROWS else ""
        raise DataError(f"cluster variable '{column.name}' has {n_missing} missing values; it "
                        "must be complete (drop those rows or give them a cluster): rows with "
                        f"index labels {rows}{more}")


def _check_count(name: str, n: int, min_clusters: int) -> None:
    if n < min_clusters:
        raise DataError(f"cluster variable '{name}' has a single cluster; a two-level model "
                        "needs at least 2 clusters (drop the random part for single-level "
                        "data)")


def distinct_per_cluster(x: pd.Series | np.ndarray, observed: np.ndarray,
                         grouping: Grouping) -> np.ndarray:
    """Number of distinct observed values of ``x`` in each cluster, shape (G,)."""
    values = pd.factorize(x)[0][observed]
    width = int(values.max(initial=0)) + 1
    pairs = np.sort(grouping.codes[observed].astype(np.int64) * width + values)
    first = np.ones(len(pairs), dtype=bool)  # the first row of each (cluster, value) pair
    np.not_equal(pairs[1:], pairs[:-1], out=first[1:])
    return np.bincount(pairs[first] // width, minlength=grouping.n)
