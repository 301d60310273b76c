"""The result of a two-level linear mixed model fit (:mod:`.lmm`), laid out as lme4's."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["LMMResult"]


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
        ``theta`` is below :data:`.lmm.SINGULAR_TOL` (a variance at 0 or a singular
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
        z = self.z_names
        rows, cols = _varcorr_pairs(len(z))
        cov = self.cov_re.to_numpy()
        sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        vcov = cov[rows, cols]
        with np.errstate(divide="ignore", invalid="ignore"):
            sdcor = np.where(rows == cols, sd[rows], vcov / (sd[rows] * sd[cols]))
        return pd.DataFrame({
            "grp": [self.cluster] * len(rows) + ["Residual"],
            "var1": pd.Series([z[i] for i in rows] + [None], dtype=object),
            "var2": pd.Series([None] * len(z) + [z[j] for j in cols[len(z):]] + [None],
                              dtype=object),
            "vcov": [*vcov, self.sigma2],
            "sdcor": [*sdcor, np.sqrt(self.sigma2)],
        })

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
        names = [_mitml_name(n) for n in self.z_names]
        rows, cols = _varcorr_pairs(len(names))
        cov = self.cov_re.to_numpy()
        index = [f"{names[i]}~~{names[j]}|{self.cluster}" for i, j in zip(rows, cols, strict=True)]
        values = [*cov[rows, cols], self.sigma2]
        index.append("Residual~~Residual")
        if "(Intercept)" in self.z_names:
            k = self.z_names.index("(Intercept)")
            values.append(cov[k, k] / (cov[k, k] + self.sigma2))
            index.append(f"ICC|{self.cluster}")
        return pd.Series(values, index=index, dtype=float)

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
        vc = self.varcorr
        sd = np.sqrt(np.clip(np.diag(self.cov_re.to_numpy()), 0.0, None))
        width = max(len(n) for n in (*self.z_names, "Name"))
        lines.append(f" {'Groups':<10} {'Name':<{width}} {'Variance':>12} {'Std.Dev.':>10}")
        for k, name in enumerate(self.z_names):
            grp = self.cluster if k == 0 else ""
            lines.append(f" {grp:<10} {name:<{width}} {vc['vcov'].iloc[k]:>12.5g} {sd[k]:>10.5g}")
        lines.append(f" {'Residual':<10} {'':<{width}} {self.sigma2:>12.5g} "
                     f"{np.sqrt(self.sigma2):>10.5g}")
        corr = vc.iloc[len(self.z_names):-1]
        for _, row in corr.iterrows():
            lines.append(f" corr({row['var1']}, {row['var2']}) = {row['sdcor']:.3f}")
        lines += [
            f"Number of obs: {self.nobs}, groups: {self.cluster}, {self.ngroups}"
            + (f" ({self.n_dropped} rows with missing values dropped)" if self.n_dropped else ""),
            "",
            "Fixed effects:",
        ]
        table = pd.DataFrame({"Estimate": self.fixef, "Std. Error": self.se,
                              "t value": self.fixef / self.se})
        lines.append(table.to_string(float_format=lambda v: f"{v:.5g}"))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _mitml_name(name: str) -> str:
    return "Intercept" if name == "(Intercept)" else name


def _varcorr_pairs(q: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of lme4's VarCorr order: variances, then ``i < j`` row-wise."""
    upper = np.triu_indices(q, 1)
    diag = np.arange(q)
    return np.concatenate([diag, upper[0]]), np.concatenate([diag, upper[1]])
