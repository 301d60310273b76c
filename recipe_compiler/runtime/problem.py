"""The runtime's view of a plan and its data: arrays, masks and cluster codes.

A :class:`Problem` is built once per :func:`recipe_compiler.impute` call and
shared (read-only) by every chain; it is picklable, so chains can run in other
processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..compiler.graph import initial_order, visit_sequence
from ..compiler.methods import method
from ..data.codec import encode
from ..data.grouping import Grouping
from ..errors import DataError, suggest
from ..plan import Plan


@dataclass(frozen=True, eq=False)
class Problem:
    """Arrays of the measured plan variables, ready for the Gibbs loop.

    Attributes
    ----------
    plan : Plan
    columns : dict of str -> ndarray
        Measured plan variables as float arrays (categorical ones as codes
        0..K-1); NaN where missing.
    observed : dict of str -> ndarray of bool
        Per target, where it is observed.
    grouping : Grouping
        The cluster of every row (one cluster for single-level data).
    categories : dict of str -> tuple of str
        Labels of the categorical columns, in code order.
    methods : dict of str -> str
        Method of each target.
    predictors : dict of str -> tuple of (str, int)
        Per target, its predictors other than the cluster, with their codes.
    derived_order : tuple of str
        Every derived variable, parents first (for the initial fill).
    descendants : dict of str -> tuple of str
        Per plan variable, the derived variables computed from it, parents first:
        what is recomputed after each update of it.
    """

    plan: Plan
    columns: dict[str, np.ndarray]
    observed: dict[str, np.ndarray]
    grouping: Grouping
    categories: dict[str, tuple[str, ...]]
    methods: dict[str, str]
    predictors: dict[str, tuple[tuple[str, int], ...]]
    derived_order: tuple[str, ...] = ()
    descendants: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of rows."""
        return self.grouping.n_rows


def make_problem(plan: Plan, data: pd.DataFrame) -> Problem:
    """Check ``data`` against ``plan`` and convert the plan's columns to arrays.

    Raises
    ------
    DataError
        A plan column missing from the data, or a target with fewer than two
        observed values.
    """
    measured = [v for v in plan.variables if v.role in ("target", "covariate")]
    for v in measured:
        if v.name not in data.columns:
            raise DataError(f"the plan uses column '{v.name}', which is not in the data; "
                            f"{suggest(v.name, map(str, data.columns))}")
        if v.role == "covariate" and data[v.name].isna().any():
            raise DataError(f"the plan uses '{v.name}' as a complete covariate, but it has "
                            f"{int(data[v.name].isna().sum())} missing values in these data; "
                            "compile the plan again on these data so that it is imputed")
    grouping = (Grouping.from_column(data, plan.cluster) if plan.cluster is not None
                else Grouping.single(len(data)))
    columns: dict[str, np.ndarray] = {}
    categories: dict[str, tuple[str, ...]] = {}
    coded = categorical_columns(plan) | {t for t, m in plan.method_table if method(m).codes}
    for v in measured:
        x = data[v.name]
        if v.name in coded or not pd.api.types.is_numeric_dtype(x):
            columns[v.name], categories[v.name] = encode(x)
        else:
            columns[v.name] = x.to_numpy(dtype=float, na_value=np.nan)
    for d in plan.derived_defs:
        if d.op == "dummy" and d.detail not in categories.get(d.parents[0], ())[1:]:
            levels = ", ".join(repr(c) for c in categories.get(d.parents[0], ()))
            raise DataError(f"the plan's dummy column '{d.name}' needs the level {d.detail!r} of "
                            f"'{d.parents[0]}' (not as its first level), but the data have "
                            f"the levels {levels}; compile the plan again on these data")
    methods = dict(plan.method_table)
    observed = {}
    for t in plan.targets:
        obs = ~np.isnan(columns[t])
        if obs.sum() < 2:
            raise DataError(f"target '{t}' has {int(obs.sum())} observed value(s); at least 2 "
                            "are needed to impute it (drop it or supply more data)")
        if method(methods[t]).scope == "level2":
            seen = grouping.count(obs) > 0
            if seen.sum() < 2:
                raise DataError(f"level-2 target '{t}' is observed in {int(seen.sum())} "
                                "cluster(s); at least 2 are needed to impute it")
            if not grouping.constant_within(data[t], obs):
                raise DataError(f"the plan imputes '{t}' as a level-2 variable ({methods[t]}), "
                                f"but it varies within a cluster of '{plan.cluster}' in these "
                                "data; compile the plan again on these data")
        observed[t] = obs
    predictors = {t: tuple((p, c) for p, c in plan.predictors(t) if c != -2)
                  for t in plan.targets}
    parents = {d.name: d.parents for d in plan.derived_defs}
    return Problem(plan=plan, columns=columns, observed=observed, grouping=grouping,
                   categories=categories, methods=methods,
                   predictors=predictors, derived_order=initial_order(parents, list(parents)),
                   descendants=derived_descendants(plan))


def categorical_columns(plan: Plan) -> frozenset[str]:
    """The measured columns the plan treats as categorical (the schema's decision).

    Those with dummy columns, those with three or more categories, and those
    declared with the ``categorical`` option: the runtime holds them as codes,
    and :meth:`~recipe_compiler.imputations.Imputations.fit` dummy-codes them.
    """
    dummy_parents = {d.parents[0] for d in plan.derived_defs if d.op == "dummy"}
    typed = {v.name for v in plan.variables if v.role in ("target", "covariate")
             and v.kind == "categorical"}
    return frozenset(dummy_parents | typed | set(plan.options.categorical))


def derived_descendants(plan: Plan) -> dict[str, tuple[str, ...]]:
    """Per plan variable, the derived variables computed from it, in a parents-first order."""
    parents = {d.name: d.parents for d in plan.derived_defs}
    sources = {p for ps in parents.values() for p in ps}
    return {name: visit_sequence([name], parents, list(parents))[1:] for name in sources}
