"""Linear mixed models with several random-effects terms: nested and crossed factors.

``y = X beta + sum_k Z_k b_k + e`` with one term ``(z_names | factor)`` per grouping
factor: nested designs such as ``(1 | school) + (1 | school:class)`` or ``(1 + x |
school:class) + (1 | school)``, crossed ones such as ``(1 | rater) + (1 | item)``. Fitted
by lme4's profiled deviance (REML by default, or ML), factored as
:mod:`.lmm_multi_deviance` describes, and minimised by the optimiser of :mod:`.lmm_core`
(bounded truncated Newton with the analytic gradient, restarts from spurious optima),
with ``X`` and ``y`` in the working units of :mod:`.lmm_units` as the two-level fitter
has them. The terms are ordered as lme4 orders them, by decreasing number of levels.

Entry points: :func:`fit_formula` fits an lme4 formula (``rc.fit_lmm`` hands it a formula
with several grouping factors); :func:`fit_arrays` fits ``y``, ``X`` and ``(Z_k, codes_k)``
pairs; :func:`random_terms` builds the terms from a DataFrame and :func:`multi_design` joins
them to the fixed part that :func:`~recipe_compiler.analysis.design.build_design` made;
:func:`fit_multi` fits the resulting :class:`MultiDesign`. The result is a
:class:`~.lmm_multi_result.MultiLMMResult`; it says which factors are nested in which and
which are crossed, as the data have them (:func:`nesting`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.grouping import Grouping
from ..data.levels import nested_in
from ..errors import DataError, suggest
from ..model.parse import parse_formula
from ..model.spec import ModelSpec
from . import lmm
from .design import Design, RandomTerm, build_design
from .lmm import LMMResult
from .lmm_core import (
    SINGULAR_TOL,
    check_design,
    check_rank,
    has_converged,
    lambda_matrix,
    optimise,
)
from .lmm_multi_deviance import Layout, build_layout, modes, profile
from .lmm_multi_result import MultiLMMResult, TermFit
from .lmm_units import WorkingUnits, working_arrays

__all__ = ["MultiDesign", "RandomTerm", "TermSpec", "fit_arrays", "fit_formula", "fit_lmm",
           "fit_multi", "formula_design", "multi_design", "nesting", "random_terms"]

TermSpec = tuple[Sequence[str], str | Sequence[str]]
"""``(effects, grouping)``: random-effect columns (``"1"`` for the intercept) and the
grouping factor, a column name, an interaction ``"a:b"`` (or the tuple ``("a", "b")``)
or a nesting ``"a/b"``, which stands for the two terms ``a`` and ``a:b``."""


@dataclass(frozen=True, eq=False)
class MultiDesign:
    """Arrays of a model with several random-effects terms, on its complete rows.

    Attributes
    ----------
    y, X, x_names, outcome, rows, n_dropped
        As in :class:`~recipe_compiler.analysis.design.Design`.
    terms : tuple of RandomTerm
        One or more random-effects terms, in any order (the fit orders them by
        decreasing number of levels, as lme4 does).
    """

    y: np.ndarray
    X: np.ndarray
    x_names: tuple[str, ...]
    terms: tuple[RandomTerm, ...]
    outcome: str
    rows: pd.Index
    n_dropped: int


# ----------------------------------------------------------------------------- building terms


def formula_design(model: str | ModelSpec, data: pd.DataFrame) -> MultiDesign:
    """The :class:`MultiDesign` of an lme4 formula with one or more grouping factors.

    Parameters
    ----------
    model : str or ModelSpec
        ``y ~ x + (1 + x | school/class)``, ``y ~ x + (1 | rater) + (1 | item)``, ...
        ``cm(x, g)`` uses the factor ``g``; plain ``cm(x)`` the innermost (nested) or the
        first written (crossed) factor.
    data : pandas.DataFrame
        Rows with a missing model variable are left out; grouping columns must be
        complete.

    Returns
    -------
    MultiDesign

    Raises
    ------
    FormulaError
        A formula that cannot be parsed or has no random part.
    DataError
        As :func:`~recipe_compiler.analysis.design.build_design`; a grouping column
        with missing values is named with the number of missing values.
    """
    d = build_design(model, data, several=True)
    inner = RandomTerm(Z=d.Z, z_names=d.z_names, grouping=Grouping(
        codes=d.groups, n=d.n_groups, name=d.cluster, labels=tuple(d.group_labels)))
    return MultiDesign(y=d.y, X=d.X, x_names=d.x_names, terms=(inner, *d.more_terms),
                       outcome=d.outcome, rows=d.rows, n_dropped=d.n_dropped)


def fit_lmm(formula: str, data: pd.DataFrame, *,
            reml: bool = True) -> LMMResult | MultiLMMResult:
    """Fit an lme4-style mixed model with one or several grouping factors (``rc.fit_lmm``).

    Parameters
    ----------
    formula : str
        ``y ~ x + cm(x) + (1 + x | g)``; with several grouping factors, nested
        ``(1 | school/class)`` or crossed ``(1 | rater) + (1 | item)``.
    data : pandas.DataFrame
        Rows with a missing model variable are left out.
    reml : bool, default True
        Restricted maximum likelihood (lme4's ``lmer`` default); ``False`` for maximum
        likelihood (to compare models that differ in their fixed effects).

    Returns
    -------
    LMMResult or MultiLMMResult
        :class:`~recipe_compiler.analysis.lmm.LMMResult` (from
        :func:`recipe_compiler.analysis.lmm.fit_lmm`) for one grouping factor, else
        a ``MultiLMMResult`` whose summary says which factors are nested and which
        crossed in ``data``.

    Raises
    ------
    FormulaError
        A formula that cannot be parsed or is not a mixed model.
    DataError
        A formula column missing from ``data``, a grouping column with missing
        values (several grouping factors), or data the model cannot be fitted to.
    """
    spec = parse_formula(formula) if isinstance(formula, str) else formula
    if len(spec.randoms) > 1:
        return fit_formula(spec, data, reml=reml)
    return lmm.fit_lmm(formula, data, reml=reml)


def fit_formula(model: str | ModelSpec, data: pd.DataFrame, *,
                reml: bool = True) -> MultiLMMResult:
    """Fit an lme4 formula with several grouping factors: :func:`formula_design`, then
    :func:`fit_multi` (see both for parameters and errors)."""
    return fit_multi(formula_design(model, data), reml=reml)


def nesting(terms: Sequence[RandomTerm]) -> tuple[str, ...]:
    """How each pair of grouping factors relates in the data, for display.

    For factors ``a`` and ``b`` with ``a`` having at least as many levels: "a (n_a)
    nested in b (n_b)" when every level of ``a`` lies within one level of ``b``, else
    "a (n_a) crossed with b (n_b)" (fully or partially crossed). Terms of the same
    factor (``(1 | g) + (0 + x | g)``) are not compared.
    """
    ordered = sorted(terms, key=lambda t: -t.grouping.n)
    out = []
    for i, a in enumerate(ordered):
        for b in ordered[i + 1:]:
            if a.factor == b.factor:
                continue
            how = "nested in" if nested_in(a.grouping, b.grouping) else "crossed with"
            out.append(f"{a.factor} ({a.grouping.n}) {how} {b.factor} ({b.grouping.n})")
    return tuple(dict.fromkeys(out))


def random_terms(data: pd.DataFrame, specs: Sequence[TermSpec]) -> tuple[RandomTerm, ...]:
    """Random-effects terms from the columns of ``data``.

    Parameters
    ----------
    data : pandas.DataFrame
        The rows the model is fitted to.
    specs : sequence of (effects, grouping)
        See :data:`TermSpec`; e.g. ``[(["1", "x"], "school:class"), (["1"], "school")]``,
        or ``[(["1"], "school/class")]`` for ``(1 | school) + (1 | school:class)``.

    Returns
    -------
    tuple of RandomTerm

    Raises
    ------
    DataError
        A column not in ``data``, a grouping column with missing values, a
        random-effect column that is not numeric or has missing values, or a term
        without effects.
    """
    terms = []
    for effects, grouping in specs:
        z, names = _effects(data, effects)
        for columns in _factors(grouping):
            terms.append(RandomTerm(Z=z, z_names=names,
                                    grouping=Grouping.from_columns(data, columns)))
    if not terms:
        raise DataError("no random-effects term given; a mixed model needs at least one, "
                        "e.g. (['1'], 'school')")
    return tuple(terms)


def multi_design(fixed: Design, data: pd.DataFrame, specs: Sequence[TermSpec]) -> MultiDesign:
    """The fixed part of ``fixed`` with the random-effects terms of ``specs``.

    Parameters
    ----------
    fixed : Design
        From :func:`~recipe_compiler.analysis.design.build_design` on ``data``; its
        outcome, fixed effects and rows are used (its own random part is not).
    data : pandas.DataFrame
        The data ``fixed`` was built from (with a unique index).
    specs : sequence of (effects, grouping)
        See :func:`random_terms`.

    Returns
    -------
    MultiDesign
    """
    if not data.index.is_unique:
        raise DataError("the data index has duplicate labels, so the rows of the fixed design "
                        "cannot be found; use data.reset_index(drop=True)")
    at = data.index.get_indexer(fixed.rows)
    if (at < 0).any():
        raise DataError("the fixed design has rows that are not in the data; build it from the "
                        "same DataFrame")
    return MultiDesign(y=fixed.y, X=fixed.X, x_names=fixed.x_names,
                       terms=random_terms(data.iloc[at], specs), outcome=fixed.outcome,
                       rows=fixed.rows, n_dropped=fixed.n_dropped)


def _factors(grouping: str | Sequence[str]) -> list[tuple[str, ...]]:
    """``"a/b:c"`` -> ``[("a",), ("a", "b", "c")]``; ``("a", "b")`` -> ``[("a", "b")]``."""
    if not isinstance(grouping, str):
        return [tuple(grouping)]
    out: list[tuple[str, ...]] = []
    for part in grouping.split("/"):
        out.append((*(out[-1] if out else ()), *(c.strip() for c in part.split(":"))))
    return out


def _effects(data: pd.DataFrame, effects: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """The random-effects design of one term: ``"1"`` is the intercept, put first."""
    if isinstance(effects, str):
        effects = [effects]
    intercept = "1" in effects
    columns = [c for c in effects if c != "1"]
    if not intercept and not columns:
        raise DataError("a random-effects term has no effect; give '1' for a random intercept "
                        "and/or column names for random slopes")
    cols = [np.ones(len(data))] if intercept else []
    for c in columns:
        if c not in data.columns:
            raise DataError(f"random-effect column '{c}' is not in the data; "
                            f"{suggest(c, map(str, data.columns))}")
        if not pd.api.types.is_numeric_dtype(data[c]) or pd.api.types.is_bool_dtype(data[c]):
            raise DataError(f"random-effect column '{c}' has dtype {data[c].dtype}; a random "
                            "slope needs a numeric column (code a categorical one as 0/1 columns)")
        x = data[c].to_numpy(dtype=float, na_value=np.nan)
        bad = int((~np.isfinite(x)).sum())
        if bad:
            raise DataError(f"random-effect column '{c}' has {bad} missing or infinite values in "
                            "the rows of the model; drop or impute those rows")
        cols.append(x)
    names = (("(Intercept)",) if intercept else ()) + tuple(columns)
    return np.column_stack(cols), names


# ----------------------------------------------------------------------------- fitting


def fit_arrays(y: np.ndarray, X: np.ndarray, blocks: Sequence[tuple[np.ndarray, np.ndarray]], *,
               reml: bool = True, x_names: Sequence[str] | None = None) -> MultiLMMResult:
    """Fit a mixed model given as arrays.

    Parameters
    ----------
    y : ndarray, shape (n,)
    X : ndarray, shape (n, p)
    blocks : sequence of (Z_k, codes_k)
        One pair per random-effects term: its design ``(n, q_k)`` (or ``(n,)``) and the
        level of each row (any labels; sorted levels). Terms are named ``g1``, ``g2``,
        ... in the order given, their effects ``z1``, ``z2``, ...
    reml : bool, default True
        REML (lme4's default) or, with ``False``, ML.
    x_names : sequence of str, optional
        Names of the columns of ``X`` (default ``x1``, ``x2``, ...).

    Returns
    -------
    MultiLMMResult
    """
    n = len(y)
    terms = []
    for k, (z, codes) in enumerate(blocks, start=1):
        z = np.asarray(z, dtype=float)
        z = z[:, None] if z.ndim == 1 else z
        frame = pd.DataFrame({f"g{k}": np.asarray(codes)})
        if len(frame) != n:
            raise DataError(f"the codes of term {k} have {len(frame)} values for {n} rows")
        terms.append(RandomTerm(Z=z, z_names=tuple(f"z{j + 1}" for j in range(z.shape[1])),
                                grouping=Grouping.from_column(frame, f"g{k}", min_clusters=1)))
    X = np.asarray(X, dtype=float)
    names = tuple(x_names) if x_names is not None else tuple(
        f"x{j + 1}" for j in range(X.shape[1] if X.ndim == 2 else 0))
    return fit_multi(MultiDesign(y=np.asarray(y, dtype=float), X=X, x_names=names,
                                 terms=tuple(terms), outcome="y", rows=pd.RangeIndex(n),
                                 n_dropped=0), reml=reml)


def fit_multi(design: MultiDesign, *, reml: bool = True) -> MultiLMMResult:
    """Fit a linear mixed model with several random-effects terms.

    Minimises lme4's profiled deviance (ML or REML) over ``theta`` with the optimiser
    the two-level fitter uses (:func:`~recipe_compiler.analysis.lmm_core.optimise`); the
    terms are ordered as lme4 orders them (decreasing number of levels, stable), and so
    are ``theta``, ``terms`` and ``varcorr`` of the result.

    Parameters
    ----------
    design : MultiDesign
    reml : bool, default True
        Restricted maximum likelihood (lme4's ``lmer`` default); ``False`` for maximum
        likelihood (to compare models that differ in their fixed effects).

    Returns
    -------
    MultiLMMResult
        A fit on the boundary of the parameter space is returned with ``boundary=True``.

    Raises
    ------
    DataError
        As :func:`~recipe_compiler.analysis.lmm.fit_design`, for any term: empty or
        non-finite arrays, mismatched shapes, a factor with fewer than two levels, no
        more observations than fixed effects or than the random effects of a term, a
        rank-deficient fixed design or term design; or a model without a maximum.
    """
    if not design.terms:
        raise DataError("no random-effects term; a mixed model needs at least one")
    for term in design.terms:
        check_design(_as_design(design, term))
    order = sorted(range(len(design.terms)), key=lambda k: -design.terms[k].grouping.n)
    terms = tuple(design.terms[k] for k in order)
    units, X, y = working_arrays(_as_design(design, design.terms[0]))
    lay = build_layout(y, X, [t.Z for t in terms], [t.grouping.codes for t in terms],
                       [t.grouping.n for t in terms])
    p = lay.p
    check_rank(lay.wtw[:p, :p], design.X, design.x_names, "fixed-effects design X",
               shift=units.x_shift)
    for t, ztz in zip(terms, lay.ztz, strict=True):
        check_rank(ztz, t.Z, t.z_names, f"random-effects design of the term for '{t.factor}'")
    try:
        res = optimise(lay, reml, profile)
        return _result(design, terms, lay, units, res.x, reml, converged=has_converged(res))
    except np.linalg.LinAlgError as exc:
        raise DataError(f"the model of '{design.outcome}' cannot be fitted: {exc} in the profiled "
                        "deviance, i.e. the likelihood has no maximum; this happens when "
                        f"'{design.outcome}' is an exact function of the fixed and random effects "
                        "(no residual variance)") from exc


def _as_design(design: MultiDesign, term: RandomTerm) -> Design:
    """One term with the fixed part, as the two-level fitter's checks take it."""
    return Design(y=design.y, X=design.X, x_names=design.x_names, Z=term.Z, z_names=term.z_names,
                  groups=term.grouping.codes, group_labels=np.asarray(term.grouping.labels),
                  outcome=design.outcome, cluster=term.factor, rows=design.rows,
                  n_dropped=design.n_dropped)


def _result(design: MultiDesign, terms: tuple[RandomTerm, ...], lay: Layout,
            units: WorkingUnits, theta_scaled: np.ndarray, reml: bool,
            converged: bool) -> MultiLMMResult:
    prof = profile(theta_scaled, lay, reml)
    n, p = lay.nobs, lay.p
    rows, cols = lay.tri
    lam = lambda_matrix(theta_scaled, lay) / np.concatenate(lay.scale)[:, None]
    theta = lam[lay.tri]
    sigma2 = prof.pwrss / (n - p if reml else n)
    # back from the working units to those of the design
    beta, vcov = units.fixef(prof.beta, sigma2 * np.linalg.inv(prof.schur[:p, :p]))
    sigma2 *= units.y_scale ** 2
    start = np.concatenate([[0], np.cumsum(lay.sizes)])
    fits = []
    for k, (t, b) in enumerate(zip(terms, modes(prof, lay), strict=True)):
        lam_k = lam[start[k]:start[k + 1], start[k]:start[k + 1]]
        zn = pd.Index(t.z_names)
        fits.append(TermFit(
            factor=t.factor, z_names=t.z_names, ngroups=t.grouping.n,
            cov=pd.DataFrame(sigma2 * lam_k @ lam_k.T, index=zn, columns=zn),
            random_effects=pd.DataFrame(units.y_scale * b,
                                        index=pd.Index(t.grouping.labels, name=t.factor),
                                        columns=zn)))
    xn = pd.Index(design.x_names)
    return MultiLMMResult(
        fixef=pd.Series(beta, index=xn, name="estimate"),
        se=pd.Series(np.sqrt(np.diag(vcov)), index=xn, name="std_error"),
        vcov=pd.DataFrame(vcov, index=xn, columns=xn),
        terms=tuple(fits),
        sigma2=sigma2,
        loglik=-0.5 * (prof.deviance + units.deviance_offset(n, reml)),
        nobs=n,
        n_dropped=design.n_dropped,
        reml=reml,
        converged=converged,
        boundary=bool((theta[rows == cols] < SINGULAR_TOL).any()),
        nesting=nesting(terms),
        theta=theta,
        x_names=design.x_names,
        outcome=design.outcome,
        df_complete=n - (p + theta.size + 1),
    )
