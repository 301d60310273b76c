"""The result of :func:`recipe_compiler.impute`: m completed data sets and chain statistics."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np
import pandas as pd

from .analysis.diagnostics import rhat
from .analysis.glmm import check_family, fit_glmm
from .analysis.lmm_multi import fit_lmm
from .analysis.mifit import MIFit
from .analysis.pooling import pool
from .data.codec import as_categories, decode
from .errors import DataError, OptionError, RecipeError
from .plan import ModelPlan, Plan
from .runtime.gibbs import ChainResult
from .runtime.problem import categorical_columns

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True, eq=False)
class Imputations:
    """m imputations of a data set under a :class:`~recipe_compiler.plan.Plan`.

    Attributes
    ----------
    plan : Plan or ModelPlan
        The FCS plan, or the model-based plan of ``approach="smc"``.
    data : pandas.DataFrame
        The incomplete data as given: a copy taken at construction, so a later
        edit of the caller's frame reaches neither :meth:`complete` nor :meth:`fit`.
    chains : tuple of ChainResult
        Per chain, the imputed values and the per-iteration statistics.
    maxit : int
    coded : frozenset of str
        Targets imputed as category codes (mapped back to their labels).
    """

    plan: Plan | ModelPlan
    data: pd.DataFrame
    chains: tuple[ChainResult, ...]
    maxit: int
    coded: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", self.data.copy())

    @property
    def m(self) -> int:
        """Number of imputations (chains)."""
        return len(self.chains)

    @property
    def missing(self) -> pd.DataFrame:
        """Boolean frame (data index, one column per target): True where imputed."""
        return self.data[self.plan.targets].isna()

    @overload
    def complete(self, k: int = 1) -> pd.DataFrame: ...

    @overload
    def complete(self, k: Literal["long"], include: bool = False) -> pd.DataFrame: ...

    def complete(self, k: int | str = 1, include: bool = False) -> pd.DataFrame:
        """A completed data set, or all of them stacked.

        Parameters
        ----------
        k : int or "long"
            ``1..m``: the k-th completed data set, shaped like the input (same
            index, columns and dtypes; derived variables are not added);
            ``0``: the original data. ``"long"``: all of them stacked with
            columns ``.imp`` (imputation number) and ``.id`` (the row's index
            label) first, as mice's ``complete(imp, "long")``.
        include : bool
            With ``"long"``: include the original data as ``.imp == 0``.
        """
        if k == "long":
            taken = [c for c in (".imp", ".id") if c in self.data.columns]
            if taken:
                raise DataError(f"the data already have the column(s) {', '.join(taken)}, which "
                                "the long format adds; rename them to use complete('long'), "
                                "or stack complete(1) ... complete(m) yourself")
            ks = range(0 if include else 1, self.m + 1)
            frames = []
            for j in ks:
                frame = self.complete(j)
                frame.insert(0, ".id", self.data.index.to_numpy())
                frame.insert(0, ".imp", j)
                frames.append(frame.reset_index(drop=True))
            return pd.concat(frames, ignore_index=True)
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 0 <= k <= self.m:
            raise RecipeError(f"k={k!r} is not valid; use 0 (original data), 1..{self.m}, "
                              "or 'long'")
        out = self.data.copy()
        if k == 0:
            return out
        imputed = self.chains[k - 1].imputed
        for t in self.plan.targets:
            out[t] = decode(self.data[t], imputed[t], t in self.coded)
        return out

    def __iter__(self) -> Iterator[pd.DataFrame]:
        """The completed data sets 1..m."""
        return (self.complete(k) for k in range(1, self.m + 1))

    @property
    def chain_mean(self) -> pd.DataFrame:
        """Mean of the imputed cells: index (variable, iteration), one column per chain."""
        return self._chain_stat("mean")

    @property
    def chain_var(self) -> pd.DataFrame:
        """Variance of the imputed cells: index (variable, iteration), one column per chain."""
        return self._chain_stat("var")

    def _chain_stat(self, which: str) -> pd.DataFrame:
        targets = self.plan.targets
        stacked = np.stack([getattr(c, which) for c in self.chains], axis=-1)  # it, var, chain
        index = pd.MultiIndex.from_product([targets, range(1, self.maxit + 1)],
                                           names=["variable", "iteration"])
        values = stacked.transpose(1, 0, 2).reshape(len(targets) * self.maxit, self.m)
        return pd.DataFrame(values, index=index,
                            columns=pd.Index(range(1, self.m + 1), name="chain"))

    def rhat(self) -> pd.Series:
        """Rank-normalised split R-hat of each target's chain mean (Vehtari et al. 2021)."""
        means = self.chain_mean
        return pd.Series({t: rhat(means.loc[t].to_numpy()) for t in self.plan.targets},
                         name="rhat")

    def acceptance(self) -> pd.Series:
        """Metropolis-Hastings acceptance rate after burn-in, averaged over the chains.

        One entry per variable that ``approach="smc"`` updates by
        Metropolis-Hastings; empty if there is none (and for FCS imputations).
        """
        rates = pd.DataFrame([getattr(c, "acceptance", {}) for c in self.chains], dtype=float)
        return rates.mean().rename("acceptance")

    def fit(self, formula: str, *, reml: bool | None = None, family: str = "gaussian",
            executor: Executor | None = None) -> MIFit:
        """Fit a mixed model on each completed data set.

        One grouping factor, or several (nested ``(1 | school/class)``, crossed
        ``(1 | rater) + (1 | item)``; Gaussian only), as
        :func:`~recipe_compiler.analysis.lmm_multi.fit_lmm` dispatches.
        ``cm()`` and ``cwc()`` in ``formula`` are computed on each completed data set.
        A column the plan treats as categorical (dummy-coded in the imputation
        model) is dummy-coded in the analysis too, written bare or as ``C(x)``.

        Parameters
        ----------
        formula : str
        reml : bool, optional
            REML (lme4's default, and the default here) or ML for
            ``family="gaussian"``; a logistic model is always fitted by ML
            (``reml=True`` is refused). Compare models that differ in their fixed
            effects with ``reml=False``.
        family : {"gaussian", "binomial"}, default "gaussian"
            A linear mixed model (:func:`~recipe_compiler.analysis.lmm.fit_lmm`) or a
            logistic one by the Laplace approximation, as lme4's ``glmer``
            (:func:`~recipe_compiler.analysis.glmm.fit_glmm`).
        executor : concurrent.futures.Executor, optional
            Fits the m data sets there (e.g. ``client.get_executor()`` of Dask)
            instead of one after the other in this process.

        Returns
        -------
        MIFit
            ``.pool()`` for Rubin's rules, ``.variance_components()``.
        """
        check_family(family)
        if family == "gaussian":
            fitter: Callable[[pd.DataFrame], Any] = partial(fit_lmm, formula,
                                                            reml=reml is not False)
        elif reml:
            raise OptionError(f"reml=True is not valid with family={family!r}: a logistic "
                              "mixed model is fitted by maximum likelihood; use reml=False")
        else:
            fitter = partial(fit_glmm, formula, family=family)
        frames = self._analysis_frames()
        fits = map(fitter, frames) if executor is None else executor.map(fitter, list(frames))
        return MIFit(formula, tuple(fits))

    def _analysis_frames(self) -> Iterator[pd.DataFrame]:
        """The completed data sets, the plan's categorical columns as pandas categoricals."""
        columns = categorical_columns(self.plan) if isinstance(self.plan, Plan) else ()
        return (as_categories(d, columns) for d in self)

    def analyze(self, func: Callable[[pd.DataFrame], tuple[Sequence[float], Any]],
                dfcom: float = np.inf) -> pd.DataFrame:
        """Apply ``func`` to each completed data set and pool with Rubin's rules.

        Parameters
        ----------
        func : callable
            ``func(frame) -> (estimates, covariance)``: a vector (a Series keeps
            its names) and its covariance matrix (or a vector of variances).
        dfcom : float
            Complete-data degrees of freedom (default: infinite).
        """
        results = [func(d) for d in self]
        return pool([r[0] for r in results], [r[1] for r in results], dfcom=dfcom)

    def plot_trace(self) -> Figure:
        """Chain means and SDs of every target against iteration (mice's ``plot(imp)``)."""
        from .plots import plot_trace

        return plot_trace(self)

    def plot_density(self) -> Figure:
        """Observed and imputed densities of every target."""
        from .plots import plot_density

        return plot_density(self)

    def __repr__(self) -> str:
        return (f"<Imputations m={self.m} maxit={self.maxit} targets={self.plan.targets} "
                f"rows={len(self.data)}>")
