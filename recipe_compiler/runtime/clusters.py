"""Cluster aggregation helpers: sizes, sums and means per cluster, and back to rows.

1-D sums go through :func:`numpy.bincount`; 2-D sums through one product with
a sparse ``(G, n)`` cluster-membership matrix, which beats a ``bincount`` per
column from a handful of columns on (the two-level samplers sum per-cluster
cross-products of many columns). There is no Python loop over rows, clusters
or columns. Cluster codes are ints in ``0 .. n_groups - 1``; clusters without
rows get sums and means of zero, never NaN.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csc_matrix


def group_sizes(groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Number of rows in each cluster.

    Parameters
    ----------
    groups : ndarray of int, shape (n,)
        Cluster codes in ``0 .. n_groups - 1``.
    n_groups : int
        Number of clusters ``G``.

    Returns
    -------
    ndarray of int, shape (G,)
    """
    return np.bincount(groups, minlength=n_groups)


def cluster_sums(x: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum of ``x`` over the rows of each cluster.

    Parameters
    ----------
    x : ndarray, shape (n,) or (n, k)
    groups : ndarray of int, shape (n,)
    n_groups : int

    Returns
    -------
    ndarray, shape (G,) or (G, k)
        Zero for clusters without rows.
    """
    if x.ndim == 1:
        return np.bincount(groups, weights=x, minlength=n_groups)
    n = len(groups)
    membership = csc_matrix((np.ones(n), groups, np.arange(n + 1)), shape=(n_groups, n))
    return np.asarray(membership @ x)


def cluster_means(x: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Mean of ``x`` over the rows of each cluster.

    Parameters
    ----------
    x : ndarray, shape (n,) or (n, k)
    groups : ndarray of int, shape (n,)
    n_groups : int

    Returns
    -------
    ndarray, shape (G,) or (G, k)
        Zero (not NaN) for clusters without rows.
    """
    sizes = group_sizes(groups, n_groups).astype(float)
    inverse = np.divide(1.0, sizes, out=np.zeros_like(sizes), where=sizes > 0)
    sums = cluster_sums(x, groups, n_groups)
    return sums * inverse if x.ndim == 1 else sums * inverse[:, None]


def disaggregate(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Spread cluster-level ``values`` (shape (G,) or (G, k)) back to the rows."""
    return values[groups]
