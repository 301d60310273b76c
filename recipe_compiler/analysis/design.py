"""Design matrices of a two-level linear mixed model, as plain arrays.

:func:`build_design` turns a formula and a DataFrame into a :class:`Design`
through the term evaluator (:mod:`recipe_compiler.model.terms`); the fitter in
:mod:`recipe_compiler.analysis.lmm` works on it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from itertools import product

import numpy as np
import pandas as pd

from ..data.grouping import Grouping
from ..data.schema import categorical, check_columns
from ..errors import DataError, FormulaError
from ..model.parse import parse_formula
from ..model.spec import Factor, ModelSpec, Term
from ..model.terms import Coded, FactorValues, factor_column, indicators, term_matrix

__all__ = ["Design", "build_design"]


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

    @property
    def n_groups(self) -> int:
        """Number of clusters with at least one row."""
        return len(self.group_labels)


def build_design(model: str | ModelSpec, data: pd.DataFrame) -> Design:
    """Fixed and random design matrices of a two-level model, on its complete rows.

    ``cm(x)`` is the mean of the observed ``x`` of each cluster, computed before
    rows with a missing model variable are left out (as the FIMD examples do);
    ``cwc(x)`` is ``x - cm(x)``. Categorical factors use treatment contrasts with
    the levels found in the whole column (indicators where the model lacks the
    term's margin, see :func:`~recipe_compiler.model.terms.term_matrix`).

    Parameters
    ----------
    model : str or ModelSpec
        An lme4-style formula with one random-effects group.
    data : pandas.DataFrame

    Returns
    -------
    Design

    Raises
    ------
    FormulaError
        No random part.
    DataError
        A column not in the data, no complete row, a non-numeric column used as a
        number, or an ``I()`` term that is not finite on a complete row.
    """
    spec = parse_formula(model) if isinstance(model, str) else model
    if spec.random is None:
        raise FormulaError("a mixed model needs a random part such as (1 | cluster)",
                           spec.formula, (len(spec.formula), len(spec.formula) + 1))
    check_columns(spec, data)
    spec = _categorical_terms(spec, data)
    random = spec.random
    assert random is not None
    cluster = random.cluster
    used = [c for c in spec.columns if c != cluster] + [cluster]
    observed = np.column_stack([data[c].notna().to_numpy() for c in used])
    complete = np.all(observed, axis=1)
    if not complete.any():
        raise DataError(f"no row is complete for the model variables {', '.join(used)}")
    # cluster means over every row with a cluster, then the complete rows of those
    clustered = observed[:, -1]
    frame = data if clustered.all() else data.loc[clustered]
    grouping = Grouping.from_column(frame, cluster, min_clusters=1)
    rows = complete[clustered]
    values = _factor_values(spec, frame, grouping, rows)
    n = int(complete.sum())
    X, x_names = term_matrix(spec.terms, spec.intercept, values, n)
    Z, z_names = term_matrix(random.slopes, random.intercept, values, n)
    _check_finite(spec, X, x_names)
    codes, present = _compact(grouping, rows)
    return Design(
        y=data[spec.outcome].to_numpy(dtype=float, na_value=np.nan)[complete],
        X=X, x_names=x_names, Z=Z, z_names=z_names,
        groups=codes, group_labels=np.asarray(grouping.labels)[present],
        outcome=spec.outcome, cluster=cluster, rows=data.index[complete],
        n_dropped=int((~complete).sum()),
    )


def _compact(grouping: Grouping, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cluster codes of ``rows`` renumbered over the clusters that have such rows, and
    those clusters' codes in ``grouping``."""
    codes = grouping.codes[rows]
    seen = grouping.count(rows) > 0
    if seen.all():
        return codes, np.arange(grouping.n)
    return (np.cumsum(seen) - 1)[codes], np.flatnonzero(seen)


def _factor_values(spec: ModelSpec, frame: pd.DataFrame, grouping: Grouping,
                   rows: np.ndarray) -> dict[str, FactorValues]:
    """Each factor's values on ``rows``, by factor name (``cm(iqv)``, ``C(den)``).

    Cluster means use every observed value of the cluster, not only ``rows``.
    Categorical factors are coded with the levels of the whole column.
    """
    numeric: dict[str, np.ndarray] = {}
    out: dict[str, FactorValues] = {}
    slopes = spec.random.slopes if spec.random else ()
    for t in (*spec.terms, *slopes):
        for f in t.factors:
            if f.name in out:
                continue
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
    slopes = spec.random.slopes if spec.random else ()
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
        return [Factor(f.kind, f.column, level=str(lv)) for lv in levels]

    def expand(terms: tuple[Term, ...]) -> tuple[Term, ...]:
        out = [Term(fs) for t in terms for fs in product(*(factor(f) for f in t.factors))]
        return tuple(dict.fromkeys(out))

    random = spec.random and dataclasses.replace(spec.random, slopes=expand(slopes))
    return spec.replace(terms=expand(spec.terms), random=random)


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
