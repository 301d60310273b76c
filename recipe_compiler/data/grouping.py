"""Cluster aggregation helpers: sizes, sums, means and cross-products per cluster.

1-D sums go through :func:`numpy.bincount`; 2-D sums and per-cluster
cross-products through one product with a sparse cluster-membership matrix,
which beats a ``bincount`` per column from a handful of columns on (the
two-level samplers need cross-products of many columns). There is no Python
loop over rows, clusters or columns. Cluster codes are ints in
``0 .. n_groups - 1``; clusters without rows get sums and means of zero, never
NaN.
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
    return cluster_crossprod(np.ones((len(groups), 1)), x, groups, n_groups)[:, 0, :]


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


def cluster_crossprod(a: np.ndarray, b: np.ndarray, groups: np.ndarray,
                      n_groups: int) -> np.ndarray:
    """Per-cluster cross-products ``A_c' B_c``.

    One sparse product: the ``(G * qa, n)`` matrix holding ``a[i, j]`` in row
    ``groups[i] * qa + j`` times ``b``; no ``(n, qa, qb)`` temporary.

    Parameters
    ----------
    a : ndarray, shape (n, qa)
        Weighted cross-products ``A_c' W_c B_c`` follow by passing ``W a``.
    b : ndarray, shape (n, qb)
    groups : ndarray of int, shape (n,)
    n_groups : int

    Returns
    -------
    ndarray, shape (G, qa, qb)
        Zero matrices for clusters without rows.
    """
    n, qa = a.shape
    rows = (groups[:, None] * qa + np.arange(qa)).ravel()
    spread = csc_matrix((a.ravel(), rows, np.arange(0, n * qa + 1, qa)),
                        shape=(n_groups * qa, n))
    return np.asarray(spread @ b).reshape(n_groups, qa, b.shape[1])
