"""Design matrices of a linear mixed model, as plain arrays.

:func:`build_design` turns a formula and a DataFrame into a :class:`Design`
through the term evaluator (:mod:`recipe_compiler.model.terms`); the fitter in
:mod:`recipe_compiler.analysis.lmm` works on it. A model with several grouping
factors (``(1 | school/class)``, ``(1 | rater) + (1 | item)``) gets the innermost
term in ``Z`` and the others in :attr:`Design.more_terms`, for
:mod:`recipe_compiler.analysis.lmm_multi`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from itertools import product

import numpy as np
import pandas as pd

from ..data.grouping import Grouping
from ..data.levels import nesting_of
from ..data.schema import categorical, check_columns
from ..errors import DataError, FormulaError
from ..model.parse import parse_formula
from ..model.spec import Factor, ModelSpec, Term
from ..model.terms import Coded, FactorValues, factor_column, indicators, term_matrix

__all__ = ["Design", "RandomTerm", "build_design"]


@dataclass(frozen=True, eq=False)
class RandomTerm:
    """One random-effects term ``(z_names | grouping.name)``.

    Attributes
    ----------
    Z : ndarray, shape (n, q)
        The random-effects design of the term (intercept first when present).
    z_names : tuple of str
        Names of its columns (``"(Intercept)"``, ``"x"``).
    grouping : Grouping
        Level codes of the rows; ``grouping.name`` names the factor (``"school:class"``).
    """

    Z: np.ndarray
    z_names: tuple[str, ...]
    grouping: Grouping

    @property
    def factor(self) -> str:
        """Name of the grouping factor."""
        return self.grouping.name or ""


@dataclass(frozen=True, eq=False)
class Design:
    """Arrays of one two-level model on the rows that are complete for it.

    Attributes
    ----------
    y : ndarray, shape (n,)
        The outcome.
    X : ndarray, shape (n, p)
        Fixed-effects design; ``x_names`` names its columns, lme4-style
        (``"(Intercept)"``, ``"iqv"``, ``"iqv:ses"``, ``"cm(iqv)"``, ``"C(den)[T.2]"``).
    Z : ndarray, shape (n, q)
        Random-effects design (intercept first when present); ``z_names`` names it.
    groups : ndarray of int, shape (n,)
        Cluster codes ``0 .. n_groups - 1``; ``group_labels[code]`` is the label.
    outcome, cluster : str
        Names of the outcome and the grouping column.
    rows : pandas.Index
        Index labels of the rows used (after listwise deletion).
    n_dropped : int
        Rows left out because a model variable was missing.
    more_terms : tuple of RandomTerm
        With several grouping factors: the terms other than the innermost one
        (the one in ``Z``), on the same rows. Empty for a two-level model.
    """

    y: np.ndarray
    X: np.ndarray
    x_names: tuple[str, ...]
    Z: np.ndarray
    z_names: tuple[str, ...]
    groups: np.ndarray
    group_labels: np.ndarray
    outcome: str
    cluster: str
    rows: pd.Index
    n_dropped: int
    more_terms: tuple[RandomTerm, ...] = ()

    @property
    def n_groups(self) -> int:
        """Number of clusters with at least one row."""
        return len(self.group_labels)


def build_design(model: str | ModelSpec, data: pd.DataFrame, *,
                 several: bool = False) -> Design:
    """Fixed and random design matrices of a mixed model, on its complete rows.

    ``cm(x)`` is the mean of the observed ``x`` of each cluster, computed before
    rows with a missing model variable are left out (as the FIMD examples do);
    ``cwc(x)`` is ``x - cm(x)``; ``cm(x, g)`` / ``cwc(x, g)`` the same over the
    clusters of the grouping factor ``g``. Categorical factors use treatment contrasts with
    the levels found in the whole column (indicators where the model lacks the
    term's margin, see :func:`~recipe_compiler.model.terms.term_matrix`).

    Parameters
    ----------
    model : str or ModelSpec
        An lme4-style formula with a random part.
    data : pandas.DataFrame
    several : bool, default False
        Accept several grouping factors (for the multi-term fitter): the term
        of the factor with the most levels (the first on a tie) goes into ``Z``, the
        other terms into ``more_terms``. ``cm(x, g)`` / ``cwc(x, g)`` use the clusters
        of the factor ``g``; plain ``cm(x)`` / ``cwc(x)`` those of the innermost
        factor (:func:`~recipe_compiler.data.levels.nesting`: for nested factors the
        innermost, for crossed ones the first in the formula). The grouping columns
        must be complete.

    Returns
    -------
    Design

    Raises
    ------
    FormulaError
        No random part, or several grouping factors without ``several``.
    DataError
        A column not in the data, no complete row, a non-numeric column used as a
        number, an ``I()`` term that is not finite on a complete row, or (several
        grouping factors) a grouping column with missing values.
    """
    spec = parse_formula(model) if isinstance(model, str) else model
    if spec.random is None:
        raise FormulaError("a mixed model needs a random part such as (1 | cluster)",
                           spec.formula, (len(spec.formula), len(spec.formula) + 1))
    if len(spec.randoms) > 1 and not several:
        raise FormulaError("this fitter takes one grouping factor, the model has "
                           f"{len(spec.randoms)} ({', '.join(r.cluster for r in spec.randoms)}); "
                           "rc.fit_lmm fits linear mixed models with several", spec.formula,
                           spec.randoms[1].span)
    check_columns(spec, data)
    spec = _categorical_terms(spec, data)
    grouping_columns = spec.grouping_columns
    used = [c for c in spec.columns if c not in grouping_columns] + list(grouping_columns)
    observed = np.column_stack([data[c].notna().to_numpy() for c in used])
    complete = np.all(observed, axis=1)
    if not complete.any():
        raise DataError(f"no row is complete for the model variables {', '.join(used)}")
    # cluster means over every row with a cluster, then the complete rows of those (with
    # several grouping factors every row must have its clusters: Grouping refuses gaps)
    clustered = np.all(observed[:, len(used) - len(grouping_columns):], axis=1)
    single = len(spec.randoms) == 1
    frame = data if clustered.all() or not single else data.loc[clustered]
    by_name = {r.cluster: Grouping.from_columns(frame, r.factors) for r in spec.randoms}
    if not single:  # cm(x): the innermost factor as the data say (nested) or the first
        spec = spec.with_innermost(nesting_of(list(by_name.values())).innermost)
    groupings = [by_name[r.cluster] for r in spec.randoms]
    inner = int(np.argmax([g.n for g in groupings]))
    random = spec.randoms[inner]
    rows = complete[clustered] if single else complete
    values = _factor_values(spec, frame, by_name, rows)
    n = int(complete.sum())
    X, x_names = term_matrix(spec.terms, spec.intercept, values, n)
    Z, z_names = term_matrix(random.slopes, random.intercept, values, n)
    _check_finite(spec, X, x_names)
    codes, present = _compact(groupings[inner], rows)
    more = []
    for k, (r, g) in enumerate(zip(spec.randoms, groupings, strict=True)):
        if k != inner:
            z, names = term_matrix(r.slopes, r.intercept, values, n)
            g_codes, g_present = _compact(g, rows)
            more.append(RandomTerm(Z=z, z_names=names, grouping=Grouping(
                codes=g_codes, n=len(g_present), name=g.name,
                labels=tuple(np.asarray(g.labels, dtype=object)[g_present]))))
    return Design(
        y=data[spec.outcome].to_numpy(dtype=float, na_value=np.nan)[complete],
        X=X, x_names=x_names, Z=Z, z_names=z_names,
        groups=codes, group_labels=np.asarray(groupings[inner].labels)[present],
        outcome=spec.outcome, cluster=random.cluster, rows=data.index[complete],
        n_dropped=int((~complete).sum()), more_terms=tuple(more),
    )


def _compact(grouping: Grouping, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cluster codes of ``rows`` renumbered over the clusters that have such rows, and
    those clusters' codes in ``grouping``."""
    codes = grouping.codes[rows]
    seen = grouping.count(rows) > 0
    if seen.all():
        return codes, np.arange(grouping.n)
    return (np.cumsum(seen) - 1)[codes], np.flatnonzero(seen)


def _factor_values(spec: ModelSpec, frame: pd.DataFrame, groupings: dict[str, Grouping],
                   rows: np.ndarray) -> dict[str, FactorValues]:
    """Each factor's values on ``rows``, by factor name (``cm(iqv)``, ``C(den)``).

    ``groupings``: the grouping of each factor name; ``cm(x, g)`` uses ``g``'s, plain
    ``cm(x)`` that of ``spec.random``. Cluster means use every observed value of the
    cluster, not only ``rows``. Categorical factors are coded with the levels of the
    whole column.
    """
    numeric: dict[str, np.ndarray] = {}
    out: dict[str, FactorValues] = {}
    for t in (*spec.terms, *spec.slopes):
        for f in t.factors:
            if f.name in out:
                continue
            grouping = groupings[f.group or spec.random.cluster] if spec.random else None
            if f.kind == "cat":
                x = pd.Categorical(categorical(frame[f.column]).array)
                out[f.name] = Coded(np.asarray(x.codes)[rows], tuple(map(str, x.categories)))
                continue
            if f.level:  # cm / cwc of one indicator of a categorical column
                x = pd.Categorical(categorical(frame[f.column]).array)
                dummy = indicators(np.asarray(x.codes), [list(map(str, x.categories))
                                                         .index(f.level)])[:, 0]
                base = Factor(f.kind, f.column)
                out[f.name] = factor_column(base, {f.column: dummy}, grouping)[rows]
                continue
            for c in f.columns:
                if c not in numeric:
                    numeric[c] = _numeric(frame, c, f.name)
            out[f.name] = factor_column(f, numeric, grouping)[rows]
    return out


def _categorical_terms(spec: ModelSpec, data: pd.DataFrame) -> ModelSpec:
    """The model with every categorical column coded as the imputation model codes it.

    A column is categorical if it has a pandas ``category`` dtype or is written
    ``C(x)`` in the formula (the schema's rule; :meth:`Imputations.fit
    <recipe_compiler.imputations.Imputations.fit>` hands the plan's other
    categorical columns over as pandas categoricals). Bare, it becomes ``C(x)``;
    ``cm(x)`` / ``cwc(x)`` become the cluster proportions / deviations of its
    indicators, ``cm(C(x)[T.b])``, one term per level after the first.
    """
    slopes = spec.slopes
    typed = {c for c in spec.columns if c != spec.outcome
             and isinstance(data[c].dtype, pd.CategoricalDtype)}
    cats = set(spec.categorical) | typed
    if not typed and not any(f.kind in ("cm", "cwc") and f.column in cats
                             for t in (*spec.terms, *slopes) for f in t.factors):
        return spec

    def factor(f: Factor) -> list[Factor]:
        if f.column not in cats or f.kind not in ("var", "cm", "cwc"):
            return [f]
        if f.kind == "var":
            return [Factor("cat", f.column)]
        levels = categorical(data[f.column]).cat.categories[1:]
        return [Factor(f.kind, f.column, level=str(lv), group=f.group) for lv in levels]

    def expand(terms: tuple[Term, ...]) -> tuple[Term, ...]:
        out = [Term(fs) for t in terms for fs in product(*(factor(f) for f in t.factors))]
        return tuple(dict.fromkeys(out))

    randoms = [dataclasses.replace(r, slopes=expand(r.slopes)) for r in spec.randoms]
    return spec.replace(terms=expand(spec.terms), random=randoms[0] if randoms else None,
                        more_random=tuple(randoms[1:]))


def _numeric(frame: pd.DataFrame, column: str, factor: str) -> np.ndarray:
    try:
        return frame[column].to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError):
        raise DataError(f"column '{column}' (in {factor}) holds values that are not numbers; "
                        f"convert it to numbers, or write C({column}) to use it as "
                        "categorical") from None


def _check_finite(spec: ModelSpec, X: np.ndarray, names: tuple[str, ...]) -> None:
    """An ``I()`` term that is NaN or infinite on a complete row (``log`` of a non-positive
    value, a division by zero) leaves no usable design."""
    bad = ~np.isfinite(X)
    if bad.any():
        j = int(np.flatnonzero(bad.any(axis=0))[0])
        raise DataError(f"the design column '{names[j]}' of the formula is not finite (NaN or "
                        f"infinite) in {int(bad[:, j].sum())} of {len(X)} complete rows, e.g. "
                        "the log of a non-positive value or a division by zero; change the "
                        f"expression or the data (formula: {spec.formula})")
