"""Properties of every compiled plan, on random formulas over random two-level data.

The strategy draws a synthetic frame (level-1 continuous and 0/1 columns, level-2
continuous and 0/1 columns, random missingness), a formula over it (main effects,
cluster means, two-way products, random slopes, some 0/1 columns written as
``C(x)``, the random part anywhere) and options from their valid values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import networkx as nx
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import recipe_compiler as rc
from recipe_compiler.compiler.graph import ancestors, derived_graph
from recipe_compiler.compiler.options import CENTERING, INTERACTIONS, RANDOM_SLOPES
from recipe_compiler.model.spec import Factor

SETTINGS = settings(max_examples=75, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Case:
    """One drawn compile problem: frame parameters, formula, options, categorical columns."""

    frame: dict[str, Any]
    formula: str
    options: dict[str, Any]
    categorical: frozenset[str]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    level1 = ["y", *[f"x{i}" for i in range(draw(st.integers(1, 3)))]]
    binary = [f"b{i}" for i in range(draw(st.integers(0, 2)))]
    level2 = [f"z{i}" for i in range(draw(st.integers(0, 2)))]
    level2_binary = [f"w{i}" for i in range(draw(st.integers(0, 1)))]
    columns = [*level1, *binary, *level2, *level2_binary]
    frame = {"seed": draw(st.integers(0, 2**16)), "n_clusters": draw(st.integers(3, 7)),
             "cluster_size": (2, 5), "level1": level1, "binary": binary, "level2": level2,
             "level2_binary": level2_binary,
             "missing": {c: draw(st.sampled_from([0.0, 0.1, 0.3])) for c in columns}}
    cats = frozenset(draw(st.lists(st.sampled_from([*binary, *level2_binary]), unique=True))
                     if binary or level2_binary else [])

    def ref(c: str) -> str:
        return f"C({c})" if c in cats else c

    others = columns[1:]
    within = [*level1[1:], *binary]
    mains = draw(st.lists(st.sampled_from(others), unique=True))
    means = draw(st.lists(st.sampled_from(within), unique=True, max_size=2))
    pool = [ref(c) for c in others] + [f"cm({c})" for c in within]
    pairs = draw(st.lists(st.tuples(st.sampled_from(pool), st.sampled_from(pool))
                          .filter(lambda p: p[0] != p[1]), max_size=3))
    slopes = draw(st.lists(st.sampled_from(within), unique=True, max_size=2))
    fixed = [ref(c) for c in mains] + [f"cm({c})" for c in means] + [f"{a}:{b}" for a, b in pairs]
    random_part = "(" + " + ".join(["1", *slopes]) + " | g)"
    at = draw(st.integers(0, len(fixed)))
    terms = [*fixed[:at], random_part, *fixed[at:]]
    used = {c for c in others if any(c in t for t in fixed) or c in slopes}
    options: dict[str, Any] = {
        "interactions": draw(st.sampled_from(INTERACTIONS)),
        "centering": draw(st.sampled_from(CENTERING)),
        "random_slopes": draw(st.sampled_from(RANDOM_SLOPES)),
        "auxiliary": draw(st.lists(st.sampled_from(others), unique=True, max_size=2)
                          .map(lambda a: [c for c in a if c not in used and c not in cats])),
    }
    formula = "y ~ " + " + ".join(terms)
    return Case(frame, formula, options, frozenset(c for c in cats if f"C({c})" in formula))


@dataclass(frozen=True)
class Compiled:
    case: Case
    data: pd.DataFrame
    plan: rc.Plan

    @property
    def parents(self) -> dict[str, tuple[str, ...]]:
        return {n: d.parents for n, d in self.plan.derived.items()}


def compiled(case: Case, make_frame: Callable[..., pd.DataFrame]) -> Compiled:
    data = make_frame(**case.frame)
    return Compiled(case, data, rc.compile(case.formula, data, **case.options))


def kept(plan: rc.Plan, target: str) -> list[tuple[str, int]]:
    return [(p, c) for p, c in plan.predictors(target) if c != -2]


# ----------------------------------------------------------------------------- properties


@SETTINGS
@given(case=cases())
def test_no_target_row_holds_a_term_of_its_own_target(
        case: Case, make_frame: Callable[..., pd.DataFrame]) -> None:
    c = compiled(case, make_frame)
    for t in c.plan.targets:
        for p, _ in kept(c.plan, t):
            assert p != t
            assert t not in ancestors(c.parents, p), (case.formula, t, p)


@SETTINGS
@given(case=cases())
def test_the_derived_graph_is_acyclic(case: Case,
                                      make_frame: Callable[..., pd.DataFrame]) -> None:
    c = compiled(case, make_frame)
    assert nx.is_directed_acyclic_graph(derived_graph(c.parents))


@SETTINGS
@given(case=cases())
def test_implied_rows_hold_the_image_of_every_analysis_interaction(
        case: Case, make_frame: Callable[..., pd.DataFrame]) -> None:
    c = compiled(case, make_frame)
    plan = c.plan
    spec = rc.parse_formula(case.formula)
    products = [t for t in spec.terms if t.degree > 1]
    for target in plan.targets:
        if plan.variable(target).level != 1:
            continue
        row = {frozenset(p.split(":")): code for p, code in kept(plan, target)}
        for t in products:
            image = frozenset(_image(f, target, plan, case) for f in t.factors)
            assert row.get(image) == 1, (case.formula, case.options, target, t.name, image)


def _image(f: Factor, target: str, plan: rc.Plan, case: Case) -> str:
    """Name of a product factor in ``target``'s row: role map, centering, dummy coding."""
    column = {target: "y", "y": target}.get(f.column, f.column)
    kind = "var" if f.kind == "cat" else f.kind
    info = plan.variable(column)
    if (kind == "var" and case.options["centering"] == "cluster" and info.level == 1
            and info.kind == "continuous" and column not in case.categorical):
        kind = "cwc"
    base = f"C({column})[T.1]" if column in case.categorical else column
    return base if kind == "var" else f"{kind}({base})"


@SETTINGS
@given(case=cases())
def test_compiling_twice_gives_equal_plans(case: Case,
                                           make_frame: Callable[..., pd.DataFrame]) -> None:
    c = compiled(case, make_frame)
    again = rc.compile(case.formula, c.data.copy(), **case.options)
    assert again == c.plan and hash(again) == hash(c.plan)


@SETTINGS
@given(case=cases())
def test_every_derived_variable_feeds_some_target_row(
        case: Case, make_frame: Callable[..., pd.DataFrame]) -> None:
    c = compiled(case, make_frame)
    reached: set[str] = set()
    for t in c.plan.targets:
        for p, _ in kept(c.plan, t):
            reached |= {p} | ancestors(c.parents, p)
    assert set(c.plan.derived) <= reached


@SETTINGS
@given(case=cases())
def test_visit_sequence_is_each_target_then_its_descendants_parents_first(
        case: Case, make_frame: Callable[..., pd.DataFrame]) -> None:
    c = compiled(case, make_frame)
    seq, targets = c.plan.visit_sequence, c.plan.targets
    starts = [i for i, v in enumerate(seq) if v in targets]
    assert [seq[i] for i in starts] == targets
    assert starts[:1] in ([], [0])
    g = derived_graph(c.parents)
    ends = [*starts[1:], len(seq)] if starts else []
    for i, j in zip(starts, ends, strict=True):
        block = seq[i + 1:j]
        below = nx.descendants(g, seq[i]) if seq[i] in g else set()
        assert set(block) == below and len(block) == len(below)
        for k, v in enumerate(block):
            assert not set(c.parents[v]) & set(block[k + 1:]), (v, block)


@SETTINGS
@given(case=cases())
def test_codes_follow_the_options(case: Case, make_frame: Callable[..., pd.DataFrame]) -> None:
    plan = compiled(case, make_frame).plan
    pm = plan.predictor_matrix.loc[plan.targets]
    assert set(pm.to_numpy().ravel()) <= {-2, 0, 1, 3, 4}
    assert (pm["g"] == -2).all()
    if case.options["random_slopes"] == "means_only":
        assert not (pm == 4).any().any()
    for t in plan.targets:
        if plan.variable(t).level == 2:
            assert set(pm.loc[t]) <= {-2, 0, 1}
