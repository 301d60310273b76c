"""The result of a two-level linear mixed model fit (:mod:`.lmm`), laid out as lme4's.

Its lme4 layouts (``VarCorr`` table, mitml names, ``print`` tables) are free functions
of a random-effects covariance matrix, shared with :class:`.glmm.GLMMResult`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["LMMResult", "fixed_effects_lines", "mitml_name", "random_effects_lines",
           "varcorr_frame", "varcorr_pairs", "variance_component_series"]


@dataclass(frozen=True, eq=False)
class LMMResult:
    """A fitted two-level linear mixed model.

    Attributes
    ----------
    fixef, se : pandas.Series
        Fixed effects and their standard errors, indexed by ``x_names``; the
        standard errors are those of lme4, conditional on ``theta``:
        ``sqrt(diag(sigma2 * (X' V^-1 X)^-1))`` with ``V`` the marginal
        covariance of ``y`` divided by ``sigma2``.
    vcov : pandas.DataFrame
        The covariance matrix of ``fixef``.
    cov_re : pandas.DataFrame
        The ``q x q`` covariance matrix of the random effects,
        ``sigma2 * Lambda Lambda'``, indexed by ``z_names``.
    sigma2 : float
        Residual variance: ``pwrss / n`` (ML) or ``pwrss / (n - p)`` (REML).
    loglik : float
        The log-likelihood (ML) or the REML criterion as lme4's ``logLik``.
    nobs, ngroups, n_dropped : int
        Rows used, clusters, rows left out by listwise deletion.
    reml, converged, boundary : bool
        REML fit; the optimiser reported convergence; some diagonal element of
        ``theta`` is below :data:`.lmm_core.SINGULAR_TOL` (a variance at 0 or a singular
        random-effects covariance matrix, lme4's ``isSingular``).
    theta : numpy.ndarray
        lme4's ``theta``: the lower triangle of ``Lambda``, column by column.
    x_names, z_names : tuple of str
        Names of the fixed and random effects.
    outcome, cluster : str
        Outcome and grouping column.
    df_complete : int
        Complete-data degrees of freedom, as ``mice::pool`` obtains them for an
        lmer fit (``broom.mixed::glance`` -> ``lme4:::df.residual.merMod``):
        ``nobs - (p + q (q + 1) / 2 + 1)``, i.e. the observations minus the
        fixed effects, the ``theta`` parameters and the residual variance.
    random_effects : pandas.DataFrame
        Conditional modes of the random effects (lme4's ``ranef``), one row per
        cluster (indexed by its label), one column per random effect.
    """

    fixef: pd.Series
    se: pd.Series
    vcov: pd.DataFrame
    cov_re: pd.DataFrame
    sigma2: float
    loglik: float
    nobs: int
    ngroups: int
    n_dropped: int
    reml: bool
    converged: bool
    boundary: bool
    theta: np.ndarray
    x_names: tuple[str, ...]
    z_names: tuple[str, ...]
    outcome: str
    cluster: str
    df_complete: int
    random_effects: pd.DataFrame

    @property
    def varcorr(self) -> pd.DataFrame:
        """As lme4's ``as.data.frame(VarCorr(fit))``.

        Columns ``grp``, ``var1``, ``var2``, ``vcov``, ``sdcor``: the variances
        of the cluster in ``z_names`` order, then the covariances ``(i, j)``,
        ``i < j``, row by row (with correlations in ``sdcor``), then ``grp =
        "Residual"`` with ``var1``/``var2`` ``None``.
        """
        return varcorr_frame(self.cov_re.to_numpy(), self.z_names, self.cluster,
                             residual=self.sigma2)

    def variance_components(self) -> pd.Series:
        """Variance components named as ``mitml::testEstimates(extra.pars = TRUE)``.

        Returns
        -------
        pandas.Series
            ``Intercept~~Intercept|sch``, ``iqv~~iqv|sch``, ... (the variances),
            then ``Intercept~~iqv|sch``, ... (the covariances, in ``varcorr``
            order), then ``Residual~~Residual`` and, when the model has a random
            intercept, ``ICC|sch`` = intercept variance / (intercept variance +
            residual variance). ``(Intercept)`` is written ``Intercept``.
        """
        return variance_component_series(self.cov_re.to_numpy(), self.z_names, self.cluster,
                                         residual=self.sigma2)

    def summary(self) -> str:
        """A printable summary in the layout of lme4's ``print(fit)``."""
        method = "REML" if self.reml else "maximum likelihood"
        criterion = "logLik (REML)" if self.reml else "logLik"
        lines = [
            f"Linear mixed model fit by {method}",
            f"Outcome: {self.outcome}   Cluster: {self.cluster}",
            f"{criterion}: {self.loglik:.4f}   converged: {self.converged}"
            + ("   boundary (singular) fit" if self.boundary else ""),
            "",
            "Random effects:",
        ]
        lines += random_effects_lines(self.cov_re.to_numpy(), self.z_names, self.cluster,
                                      residual=self.sigma2)
        lines.append(f"Number of obs: {self.nobs}, groups: {self.cluster}, {self.ngroups}"
                     + (f" ({self.n_dropped} rows with missing values dropped)"
                        if self.n_dropped else ""))
        lines += fixed_effects_lines(self.fixef, self.se, "t value")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def mitml_name(name: str) -> str:
    """A random effect's name as mitml writes it in variance components: ``Intercept``
    for lme4's ``(Intercept)``, other names unchanged."""
    return "Intercept" if name == "(Intercept)" else name


def varcorr_pairs(q: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the elements of a ``q x q`` covariance matrix in lme4's
    ``VarCorr`` order: the variances, then the covariances ``(i, j)``, ``i < j``, row by
    row."""
    upper = np.triu_indices(q, 1)
    diag = np.arange(q)
    return np.concatenate([diag, upper[0]]), np.concatenate([diag, upper[1]])


def varcorr_frame(cov: np.ndarray, z_names: tuple[str, ...], cluster: str, *,
                  residual: float | None = None) -> pd.DataFrame:
    """lme4's ``as.data.frame(VarCorr(fit))`` of one random-effects covariance matrix.

    Parameters
    ----------
    cov : numpy.ndarray
        The ``q x q`` covariance matrix of the random effects.
    z_names : tuple of str
        Their names, in the order of ``cov``.
    cluster : str
        The grouping factor, written in column ``grp``.
    residual : float, optional
        The residual variance; when given, a last row ``grp = "Residual"`` with
        ``var1``/``var2`` ``None`` (a glmer fit has none).

    Returns
    -------
    pandas.DataFrame
        Columns ``grp``, ``var1``, ``var2``, ``vcov``, ``sdcor``: the variances in
        ``z_names`` order, then the covariances ``(i, j)``, ``i < j``, row by row
        (with correlations in ``sdcor``), then the residual row if any.
    """
    rows, cols = varcorr_pairs(len(z_names))
    sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    vcov = cov[rows, cols]
    with np.errstate(divide="ignore", invalid="ignore"):
        sdcor = np.where(rows == cols, sd[rows], vcov / (sd[rows] * sd[cols]))
    frame = pd.DataFrame({
        "grp": [cluster] * len(rows),
        "var1": pd.Series([z_names[i] for i in rows], dtype=object),
        "var2": pd.Series([None] * len(z_names) + [z_names[j] for j in cols[len(z_names):]],
                          dtype=object),
        "vcov": vcov,
        "sdcor": sdcor,
    })
    if residual is None:
        return frame
    last = pd.DataFrame({"grp": ["Residual"], "var1": pd.Series([None], dtype=object),
                         "var2": pd.Series([None], dtype=object), "vcov": [residual],
                         "sdcor": [np.sqrt(residual)]})
    return pd.concat([frame, last], ignore_index=True)

def variance_component_series(cov: np.ndarray, z_names: tuple[str, ...], cluster: str, *,
                              residual: float | None = None) -> pd.Series:
    """Variance components named as ``mitml::testEstimates(extra.pars = TRUE)``.

    Parameters
    ----------
    cov, z_names, cluster
        As :func:`varcorr_frame`.
    residual : float, optional
        The residual variance: adds ``Residual~~Residual`` and, when ``z_names``
        holds ``(Intercept)``, ``ICC|cluster`` = intercept variance / (intercept
        variance + residual variance). A glmer fit has neither.

    Returns
    -------
    pandas.Series
        ``Intercept~~Intercept|sch``, ... (the variances), then the covariances in
        ``varcorr`` order, then the residual entries if any. ``(Intercept)`` is
        written ``Intercept``.
    """
    names = [mitml_name(n) for n in z_names]
    rows, cols = varcorr_pairs(len(names))
    index = [f"{names[i]}~~{names[j]}|{cluster}" for i, j in zip(rows, cols, strict=True)]
    values = list(cov[rows, cols])
    if residual is not None:
        values.append(residual)
        index.append("Residual~~Residual")
        if "(Intercept)" in z_names:
            k = z_names.index("(Intercept)")
            values.append(cov[k, k] / (cov[k, k] + residual))
            index.append(f"ICC|{cluster}")
    return pd.Series(values, index=index, dtype=float)


def random_effects_lines(cov: np.ndarray, z_names: tuple[str, ...], cluster: str, *,
                         residual: float | None = None) -> list[str]:
    """The random-effects table of lme4's ``print(fit)``, one string per line.

    A header, one line per variance (and the residual one if ``residual`` is
    given), then one ``corr(a, b) = r`` line per covariance; arguments as
    :func:`varcorr_frame`.
    """
    vc = varcorr_frame(cov, z_names, cluster)
    q = len(z_names)
    width = max(len(n) for n in (*z_names, "Name"))
    lines = [f" {'Groups':<10} {'Name':<{width}} {'Variance':>12} {'Std.Dev.':>10}"]
    for k, name in enumerate(z_names):
        grp = cluster if k == 0 else ""
        lines.append(f" {grp:<10} {name:<{width}} {vc['vcov'].iloc[k]:>12.5g} "
                     f"{vc['sdcor'].iloc[k]:>10.5g}")
    if residual is not None:
        lines.append(f" {'Residual':<10} {'':<{width}} {residual:>12.5g} "
                     f"{np.sqrt(residual):>10.5g}")
    for _, row in vc.iloc[q:].iterrows():
        lines.append(f" corr({row['var1']}, {row['var2']}) = {row['sdcor']:.3f}")
    return lines


def fixed_effects_lines(fixef: pd.Series, se: pd.Series, statistic: str) -> list[str]:
    """The fixed-effects table of lme4's ``print(fit)``: a blank line, a title, the table.

    ``statistic`` names the column of ``fixef / se``: ``"t value"`` (lmer) or
    ``"z value"`` (glmer).
    """
    table = pd.DataFrame({"Estimate": fixef, "Std. Error": se, statistic: fixef / se})
    return ["", "Fixed effects:", table.to_string(float_format=lambda v: f"{v:.5g}")]
