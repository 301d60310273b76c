"""Rubin's rules for estimates from multiply imputed data, as mice pools them.

:func:`pool` combines ``m`` complete-data estimates and their variances (Rubin
1987, ch. 3) with the Barnard-Rubin (1999) small-sample degrees of freedom, as
``mice::pool`` / ``mice::pool.scalar`` (mice 3.15) do; :func:`average_components`
averages variance components over the imputations, as
``mitml::testEstimates(extra.pars = TRUE)`` does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import DataError

__all__ = ["average_components", "barnard_rubin", "pool"]

POOL_COLUMNS = ("term", "estimate", "std_error", "statistic", "df", "p_value", "riv",
                "lambda", "fmi", "ubar", "b", "t")
"""Columns of the frame :func:`pool` returns."""

_LAMBDA_FLOOR = 1e-4
"""mice floors the proportion of variance due to missingness at this value in the
degrees of freedom (so that ``b = 0`` gives a large, finite ``df``)."""

_DF_FLOOR = 0.001
"""mice's ``summary.mipo`` refers the statistic to t on at least this many df."""


def barnard_rubin(m: int, b: np.ndarray, t: np.ndarray, dfcom: float = np.inf) -> np.ndarray:
    """Barnard-Rubin (1999) degrees of freedom, as ``mice:::barnard.rubin``.

    ``lambda = (1 + 1/m) b / t`` (floored at 1e-4), ``df_old = (m - 1) /
    lambda^2``; with ``dfcom`` infinite the result is ``df_old`` (Rubin's 1987
    df), else the harmonic combination with ``df_obs = (dfcom + 1) / (dfcom + 3)
    * dfcom * (1 - lambda)``: ``df_old df_obs / (df_old + df_obs)``.

    Parameters
    ----------
    m : int
        Number of imputations.
    b, t : array_like
        Between-imputation and total variances, one per parameter.
    dfcom : float, default inf
        Complete-data degrees of freedom.

    Returns
    -------
    numpy.ndarray
        Degrees of freedom, one per parameter.
    """
    lam = np.maximum((1.0 + 1.0 / m) * np.asarray(b, dtype=float) / np.asarray(t, dtype=float),
                     _LAMBDA_FLOOR)
    df_old = (m - 1) / lam**2
    if np.isinf(dfcom):
        return df_old
    df_obs = (dfcom + 1.0) / (dfcom + 3.0) * dfcom * (1.0 - lam)
    return df_old * df_obs / (df_old + df_obs)


def pool(estimates: object, variances: object, dfcom: float = np.inf, *,
         terms: Sequence[str] | None = None) -> pd.DataFrame:
    """Pool ``m`` complete-data analyses by Rubin's rules.

    Per parameter: ``qbar`` = mean of the estimates, ``ubar`` = mean of the
    variances, ``b`` = variance of the estimates (``m - 1`` denominator),
    ``t = ubar + (1 + 1/m) b``, ``riv = (1 + 1/m) b / ubar``, ``lambda = (1 +
    1/m) b / t``, ``df`` from :func:`barnard_rubin`, ``fmi = (riv + 2 / (df +
    3)) / (riv + 1)`` (mice 3.15), ``statistic = qbar / sqrt(t)`` and the
    two-sided ``p_value`` on ``max(df, 0.001)`` degrees of freedom, as
    ``summary(mice::pool(fit))`` (from the t survival function, so p-values
    below R's ``1 - pt()`` resolution of ~1e-16 are not rounded to 0).

    Parameters
    ----------
    estimates : array_like or sequence of pandas.Series or pandas.DataFrame
        ``m x k`` estimates (a 1-d array is ``m`` estimates of one parameter);
        Series (or DataFrame columns) name the parameters.
    variances : array_like or sequence of pandas.Series or pandas.DataFrame
        Their ``m x k`` variances or ``m x k x k`` covariance matrices (only
        the diagonals are used), e.g. ``[fit.vcov for fit in fits]``.
    dfcom : float, default inf
        Complete-data degrees of freedom (e.g. ``LMMResult.df_complete``);
        infinite gives Rubin's large-sample df.
    terms : sequence of str, optional
        Parameter names, instead of those ``estimates`` carries (or ``x1``,
        ``x2``, ... when it carries none).

    Returns
    -------
    pandas.DataFrame
        One row per parameter with the columns :data:`POOL_COLUMNS`.

    Raises
    ------
    DataError
        Fewer than 2 imputations, mismatched shapes or names, non-finite
        values, negative variances or ``dfcom <= 0``.
    """
    q, names = _estimates(estimates)
    u = _variances(variances, q.shape, names)
    m = q.shape[0]
    if not (dfcom > 0):
        raise DataError(f"dfcom must be positive (or inf), got {dfcom}")
    if terms is not None:
        if len(terms) != q.shape[1]:
            raise DataError(f"{len(terms)} terms given for {q.shape[1]} parameters")
        names = list(terms)
    qbar = q.mean(axis=0)
    ubar = u.mean(axis=0)
    b = q.var(axis=0, ddof=1)
    t = ubar + (1.0 + 1.0 / m) * b
    with np.errstate(divide="ignore", invalid="ignore"):  # zero variances give inf/nan
        df = barnard_rubin(m, b, t, dfcom)
        riv = (1.0 + 1.0 / m) * b / ubar
        lam = (1.0 + 1.0 / m) * b / t
        statistic = qbar / np.sqrt(t)
        fmi = (riv + 2.0 / (df + 3.0)) / (riv + 1.0)
    return pd.DataFrame({
        "term": names if names is not None else [f"x{j + 1}" for j in range(q.shape[1])],
        "estimate": qbar,
        "std_error": np.sqrt(t),
        "statistic": statistic,
        "df": df,
        "p_value": 2.0 * stats.t.sf(np.abs(statistic), np.maximum(df, _DF_FLOOR)),
        "riv": riv,
        "lambda": lam,
        "fmi": fmi,
        "ubar": ubar,
        "b": b,
        "t": t,
    }, columns=list(POOL_COLUMNS))


def average_components(components: Sequence[pd.Series]) -> pd.Series:
    """Average variance components over imputations (mitml ``extra.pars`` style).

    Parameters
    ----------
    components : sequence of pandas.Series
        One Series per imputation with the same index, e.g.
        ``[fit.variance_components() for fit in fits]``.

    Returns
    -------
    pandas.Series
        The element-wise mean, in the order of the first Series.

    Raises
    ------
    DataError
        No Series, or Series with different indexes.
    """
    if len(components) == 0:
        raise DataError("average_components needs at least one Series of components")
    index = components[0].index
    for k, s in enumerate(components[1:], start=2):
        if not s.index.equals(index):
            raise DataError(f"components {k} are named {list(s.index)}, "
                            f"but components 1 are named {list(index)}")
    values = np.column_stack([np.asarray(s, dtype=float) for s in components])
    return pd.Series(values.mean(axis=1), index=index, name="estimate")


def _estimates(estimates: object) -> tuple[np.ndarray, list[str] | None]:
    """The ``m x k`` estimates and their names (None when unnamed)."""
    names: list[str] | None = None
    if isinstance(estimates, pd.DataFrame):
        names = [str(c) for c in estimates.columns]
        q = estimates.to_numpy(dtype=float)
    elif isinstance(estimates, Sequence) and estimates and all(
            isinstance(s, pd.Series) for s in estimates):
        names = [str(i) for i in estimates[0].index]
        for k, s in enumerate(estimates[1:], start=2):
            if [str(i) for i in s.index] != names:
                raise DataError(f"estimates {k} are named {list(s.index)}, "
                                f"but estimates 1 are named {names}")
        q = np.vstack([s.to_numpy(dtype=float) for s in estimates])
    else:
        q = np.asarray(estimates, dtype=float)
        q = q[:, None] if q.ndim == 1 else q
    if q.ndim != 2:
        raise DataError(f"estimates must be m x k (m imputations, k parameters), got shape "
                        f"{q.shape}")
    if q.shape[0] < 2:
        raise DataError(f"pooling needs at least m = 2 imputations, got m = {q.shape[0]}: "
                        "the between-imputation variance is undefined")
    if not np.isfinite(q).all():
        raise DataError("estimates have NaN or infinite values; all must be finite")
    return q, names


def _variances(variances: object, shape: tuple[int, ...],
               names: list[str] | None) -> np.ndarray:
    """The ``m x k`` variances from variances or covariance matrices."""
    if isinstance(variances, Sequence) and variances and all(
            isinstance(v, pd.Series | pd.DataFrame) for v in variances):
        if names is not None:
            for k, v in enumerate(variances, start=1):
                if [str(i) for i in v.index] != names:
                    raise DataError(f"variances {k} are named {list(v.index)}, "
                                    f"but the estimates are named {names}")
        u = np.stack([v.to_numpy(dtype=float) for v in variances])
    else:
        u = np.asarray(variances, dtype=float)
        u = u[:, None] if u.ndim == 1 else u
    m, k = shape
    if u.shape == (m, k, k):
        u = np.diagonal(u, axis1=1, axis2=2)
    elif u.shape != (m, k):
        raise DataError(f"variances have shape {u.shape}; with {m} imputations of {k} "
                        f"parameters they must be {m} x {k} (variances) or {m} x {k} x {k} "
                        "(covariance matrices)")
    if not np.isfinite(u).all():
        raise DataError("variances have NaN or infinite values; all must be finite")
    if (u < 0).any():
        raise DataError("variances must be >= 0; got negative values (standard errors "
                        "must be squared, covariance matrices must have a non-negative "
                        "diagonal)")
    return u
