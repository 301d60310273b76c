"""The result of a linear mixed model with several random-effects terms.

:class:`MultiLMMResult` has the names of :class:`~.lmm.LMMResult` where the two
agree (``fixef``, ``se``, ``vcov``, ``sigma2``, ``loglik``, ``df_complete``, ``varcorr``,
``variance_components()``, ``summary()``), so pooling takes either; what belongs to one
grouping factor (covariance matrix, number of levels, conditional modes) is in one
:class:`TermFit` per term.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .lmm_result import mitml_name, varcorr_pairs

__all__ = ["MultiLMMResult", "TermFit"]


@dataclass(frozen=True, eq=False)
class TermFit:
    """One fitted random-effects term ``(z_names | factor)``.

    Attributes
    ----------
    factor : str
        The grouping factor (``"school:class"`` for an interaction).
    z_names : tuple of str
    cov : pandas.DataFrame
        Covariance matrix of the term's random effects, ``sigma2 Lambda_k Lambda_k'``.
    ngroups : int
        Number of levels of the factor.
    random_effects : pandas.DataFrame
        Conditional modes (lme4's ``ranef``): one row per level (indexed by its label),
        one column per random effect.
    """

    factor: str
    z_names: tuple[str, ...]
    cov: pd.DataFrame
    ngroups: int
    random_effects: pd.DataFrame


@dataclass(frozen=True, eq=False)
class MultiLMMResult:
    """A fitted linear mixed model with one or more random-effects terms.

    Attributes
    ----------
    fixef, se, vcov
        Fixed effects, their standard errors and covariance matrix (lme4's,
        conditional on ``theta``), indexed by ``x_names``.
    terms : tuple of TermFit
        The random-effects terms in lme4's order: decreasing number of levels.
    sigma2 : float
        Residual variance.
    loglik : float
        Log-likelihood (ML) or minus half lme4's REML criterion (REML), as ``logLik``.
    nobs, n_dropped : int
        Rows used; rows left out by listwise deletion.
    reml, converged, boundary : bool
        REML fit; the optimiser converged; some diagonal element of ``theta`` is
        below :data:`~recipe_compiler.analysis.lmm_core.SINGULAR_TOL` (lme4's ``isSingular``).
    theta : numpy.ndarray
        lme4's ``theta``: per term, the lower triangle of ``Lambda_k`` column by column.
    x_names : tuple of str
    outcome : str
    df_complete : int
        ``nobs - (p + len(theta) + 1)``, as ``lme4:::df.residual.merMod``.
    nesting : tuple of str
        How the grouping factors relate in the data, one line per pair: "school:class
        (240) nested in school (60)", "rater (40) crossed with item (30)".
    """

    fixef: pd.Series
    se: pd.Series
    vcov: pd.DataFrame
    terms: tuple[TermFit, ...]
    sigma2: float
    loglik: float
    nobs: int
    n_dropped: int
    reml: bool
    converged: bool
    boundary: bool
    theta: np.ndarray
    x_names: tuple[str, ...]
    outcome: str
    df_complete: int
    nesting: tuple[str, ...] = ()

    @property
    def sigma(self) -> float:
        """Residual standard deviation (lme4's ``sigma``)."""
        return float(np.sqrt(self.sigma2))

    @property
    def reml_criterion(self) -> float | None:
        """lme4's ``REMLcrit``, ``-2 loglik`` of a REML fit; None for an ML fit."""
        return -2.0 * self.loglik if self.reml else None

    @property
    def deviance(self) -> float | None:
        """``-2 loglik`` of an ML fit (lme4's ``deviance``); None for a REML fit."""
        return None if self.reml else -2.0 * self.loglik

    @property
    def ngroups(self) -> pd.Series:
        """Number of levels of each grouping factor, as lme4's ``ngrps``."""
        return pd.Series({t.factor: t.ngroups for t in self.terms}, dtype=int)

    @property
    def varcorr(self) -> pd.DataFrame:
        """As lme4's ``as.data.frame(VarCorr(fit))``.

        Columns ``grp``, ``var1``, ``var2``, ``vcov``, ``sdcor``: per term, the variances
        in ``z_names`` order, then the covariances ``(i, j)``, ``i < j``, row by row
        (correlations in ``sdcor``); last the row ``grp = "Residual"``. A factor with
        several terms is named ``school``, ``school.1``, ... as lme4 names them.
        """
        parts = []
        seen: dict[str, int] = {}
        for t in self.terms:
            grp = t.factor if t.factor not in seen else f"{t.factor}.{seen[t.factor]}"
            seen[t.factor] = seen.get(t.factor, 0) + 1
            rows, cols = varcorr_pairs(len(t.z_names))
            cov = t.cov.to_numpy()
            sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
            with np.errstate(divide="ignore", invalid="ignore"):
                sdcor = np.where(rows == cols, sd[rows], cov[rows, cols] / (sd[rows] * sd[cols]))
            parts.append(pd.DataFrame({
                "grp": grp,
                "var1": pd.Series([t.z_names[i] for i in rows], dtype=object),
                "var2": pd.Series([t.z_names[j] if i != j else None
                                   for i, j in zip(rows, cols, strict=True)], dtype=object),
                "vcov": cov[rows, cols], "sdcor": sdcor}))
        parts.append(pd.DataFrame({"grp": ["Residual"], "var1": pd.Series([None], dtype=object),
                                   "var2": pd.Series([None], dtype=object),
                                   "vcov": [self.sigma2], "sdcor": [self.sigma]}))
        return pd.concat(parts, ignore_index=True)

    def variance_components(self) -> pd.Series:
        """Variance components named as ``mitml::testEstimates(extra.pars = TRUE)``.

        Per term ``Intercept~~Intercept|school``, ... (variances, then covariances in
        ``varcorr`` order), then ``Residual~~Residual``; with a single term also
        ``ICC|factor`` when it has a random intercept (mitml gives no ICC for several
        grouping factors).
        """
        vc = self.varcorr.iloc[:-1]
        a = [mitml_name(v) for v in vc["var1"]]
        b = [mitml_name(w) if pd.notna(w) else v for v, w in zip(a, vc["var2"], strict=True)]
        index = [f"{x}~~{y}|{g}" for x, y, g in zip(a, b, vc["grp"], strict=True)]
        values = [*vc["vcov"], self.sigma2]
        index.append("Residual~~Residual")
        if len(self.terms) == 1 and "(Intercept)" in self.terms[0].z_names:
            t = self.terms[0]
            k = t.z_names.index("(Intercept)")
            tau = float(t.cov.to_numpy()[k, k])
            values.append(tau / (tau + self.sigma2))
            index.append(f"ICC|{t.factor}")
        return pd.Series(values, index=index, dtype=float)

    def summary(self) -> str:
        """A printable summary in the layout of lme4's ``print(fit)``."""
        method = "REML" if self.reml else "maximum likelihood"
        criterion = "logLik (REML)" if self.reml else "logLik"
        lines = [
            f"Linear mixed model fit by {method}",
            f"Outcome: {self.outcome}",
            f"{criterion}: {self.loglik:.4f}   converged: {self.converged}"
            + ("   boundary (singular) fit" if self.boundary else ""),
            "",
            "Random effects:",
        ]
        vc = self.varcorr
        variances = vc[vc["var2"].isna()]
        gw = max(len(str(g)) for g in (*variances["grp"], "Groups"))
        nw = max(len(str(v)) for v in (*variances["var1"].dropna(), "Name"))
        lines.append(f" {'Groups':<{gw}} {'Name':<{nw}} {'Variance':>12} {'Std.Dev.':>10}")
        previous = None
        for _, row in variances.iterrows():
            grp = "" if row["grp"] == previous else row["grp"]
            previous = row["grp"]
            name = row["var1"] if row["var1"] is not None else ""
            lines.append(f" {grp:<{gw}} {name:<{nw}} {row['vcov']:>12.5g} {row['sdcor']:>10.5g}")
        for _, row in vc[vc["var2"].notna()].iterrows():
            lines.append(f" corr({row['var1']}, {row['var2']}) | {row['grp']} = {row['sdcor']:.3f}")
        groups = ", ".join(f"{t.factor}, {t.ngroups}" for t in self.terms)
        lines += [
            f"Number of obs: {self.nobs}, groups: {groups}"
            + (f" ({self.n_dropped} rows with missing values dropped)" if self.n_dropped else ""),
            *(f"Grouping: {line}" for line in self.nesting),
            "",
            "Fixed effects:",
        ]
        table = pd.DataFrame({"Estimate": self.fixef, "Std. Error": self.se,
                              "t value": self.fixef / self.se})
        lines.append(table.to_string(float_format=lambda v: f"{v:.5g}"))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()
