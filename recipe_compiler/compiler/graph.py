"""The derived-variable DAG and the visit sequence; the only importer of networkx."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import networkx as nx

from ..errors import PlanError


def derived_graph(parents: Mapping[str, Sequence[str]]) -> nx.DiGraph:
    """Directed graph parent -> child of the derived variables.

    Raises
    ------
    PlanError
        If the graph has a cycle; the message names the variables on it.
    """
    g = nx.DiGraph()
    for child, ps in parents.items():
        g.add_node(child)
        for p in ps:
            g.add_edge(p, child)
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return g
    names = " -> ".join([str(e[0]) for e in cycle] + [str(cycle[0][0])])
    raise PlanError(f"the derived variables form a cycle: {names}; a derived variable cannot "
                    "depend on itself")


def ancestors(parents: Mapping[str, Sequence[str]], name: str) -> set[str]:
    """Every variable that ``name`` is computed from, directly or not."""
    g = derived_graph(parents)
    return set(nx.ancestors(g, name)) if name in g else set()


def visit_sequence(targets: Sequence[str], parents: Mapping[str, Sequence[str]],
                   order: Sequence[str]) -> tuple[str, ...]:
    """Each target followed by its derived descendants, parents first.

    Parameters
    ----------
    targets : sequence of str
        Imputed variables in visit order.
    parents : mapping
        Derived variable -> the variables it is computed from.
    order : sequence of str
        Tie-break order of the derived variables (their order in the plan).
    """
    g = derived_graph(parents)
    rank = {name: i for i, name in enumerate(order)}
    seq: list[str] = []
    for t in targets:
        seq.append(t)
        if t not in g:
            continue
        below = g.subgraph(nx.descendants(g, t))
        seq.extend(nx.lexicographical_topological_sort(below, key=lambda n: rank.get(n, -1)))
    return tuple(seq)


def initial_order(parents: Mapping[str, Sequence[str]], order: Sequence[str]) -> tuple[str, ...]:
    """All derived variables in an order that computes parents first."""
    g = derived_graph(parents)
    rank = {name: i for i, name in enumerate(order)}
    return tuple(n for n in nx.lexicographical_topological_sort(g, key=lambda n: rank.get(n, -1))
                 if n in parents)
