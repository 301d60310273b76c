"""The derived-variable DAG: cycle detection, ancestors, visit sequence, initial order."""

from __future__ import annotations

import pytest

from recipe_compiler.compiler.graph import ancestors, derived_graph, initial_order, visit_sequence
from recipe_compiler.errors import PlanError

# section 7.10.5 in miniature: cwc needs the cluster mean, the product needs both deviations
PARENTS = {
    "cm(a)": ("a",),
    "cwc(a)": ("a", "cm(a)"),
    "cm(b)": ("b",),
    "cwc(b)": ("b", "cm(b)"),
    "cwc(a):cwc(b)": ("cwc(a)", "cwc(b)"),
    "a:w": ("a", "w"),
}
ORDER = list(PARENTS)


def test_graph_has_an_edge_from_each_parent_to_its_child() -> None:
    g = derived_graph(PARENTS)
    assert set(g.predecessors("cwc(a)")) == {"a", "cm(a)"}
    assert g.number_of_edges() == sum(len(ps) for ps in PARENTS.values())


def test_a_cycle_is_named_in_the_error() -> None:
    with pytest.raises(PlanError, match=r"the derived variables form a cycle: "
                                        r"(p -> q -> p|q -> p -> q)"):
        derived_graph({"p": ("q",), "q": ("p",)})


def test_a_self_loop_is_a_cycle() -> None:
    with pytest.raises(PlanError, match="cannot depend on itself"):
        derived_graph({"p": ("p",)})


def test_ancestors_follow_the_parents_transitively() -> None:
    assert ancestors(PARENTS, "cwc(a):cwc(b)") == {"a", "b", "cm(a)", "cm(b)", "cwc(a)", "cwc(b)"}
    assert ancestors(PARENTS, "cm(a)") == {"a"}
    assert ancestors(PARENTS, "not-there") == set()


def test_each_target_is_followed_by_its_descendants_parents_first() -> None:
    seq = visit_sequence(["a", "b", "w"], PARENTS, ORDER)
    assert seq == ("a", "cm(a)", "cwc(a)", "cwc(a):cwc(b)", "a:w",
                   "b", "cm(b)", "cwc(b)", "cwc(a):cwc(b)",
                   "w", "a:w")


def test_a_derived_variable_of_two_targets_appears_after_each() -> None:
    seq = visit_sequence(["a", "b"], PARENTS, ORDER)
    assert seq.count("cwc(a):cwc(b)") == 2


def test_a_target_without_derived_variables_stands_alone() -> None:
    assert visit_sequence(["z"], PARENTS, ORDER) == ("z",)


def test_tie_break_follows_the_given_order() -> None:
    parents = {"p": ("a",), "q": ("a",)}
    assert visit_sequence(["a"], parents, ["q", "p"]) == ("a", "q", "p")
    assert visit_sequence(["a"], parents, ["p", "q"]) == ("a", "p", "q")


def test_initial_order_lists_each_derived_variable_once_parents_first() -> None:
    order = initial_order(PARENTS, ORDER)
    assert sorted(order) == sorted(PARENTS)
    for i, name in enumerate(order):
        assert all(p not in order[i:] for p in PARENTS[name])
