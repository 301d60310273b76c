"""Fitting the analysis model on every completed data set and pooling the fits."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .glmm import GLMMResult
from .lmm import LMMResult
from .lmm_multi_result import MultiLMMResult
from .pooling import average_components, pool


@dataclass(frozen=True, eq=False)
class MIFit:
    """The analysis model fitted on each of the m completed data sets.

    Attributes
    ----------
    formula : str
    fits : tuple of LMMResult, MultiLMMResult or GLMMResult
        One fit per imputation, in imputation order.
    """

    formula: str
    fits: tuple[LMMResult | MultiLMMResult | GLMMResult, ...]

    def pool(self, dfcom: float | None = None) -> pd.DataFrame:
        """Rubin's rules with Barnard-Rubin degrees of freedom.

        Parameters
        ----------
        dfcom : float, optional
            Complete-data degrees of freedom; by default as mice computes them
            for lmer and glmer fits (observations minus fixed effects minus
            covariance parameters, see :attr:`LMMResult.df_complete` and
            :attr:`GLMMResult.df_complete`).

        Returns
        -------
        pandas.DataFrame
            Columns ``term, estimate, std_error, statistic, df, p_value, riv,
            lambda, fmi`` (and ``ubar, b, t``).
        """
        df = self.fits[0].df_complete if dfcom is None else dfcom
        return pool([f.fixef for f in self.fits], [f.vcov for f in self.fits], dfcom=df)

    def variance_components(self) -> pd.Series:
        """Variance components averaged over imputations (``mitml::testEstimates``)."""
        return average_components([f.variance_components() for f in self.fits])
