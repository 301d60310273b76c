"""The package's shape, as the re-layout fixed it: checked on the source text.

No import cycle between the package's modules (imports inside functions count),
at most eight modules at the package root, no module over 600 lines, no
``eval``/``exec`` call, and method names spelled only in the method table and
the R exporter's mapping.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import networkx as nx

import recipe_compiler.compiler.methods as methods_module

PACKAGE = Path(methods_module.__file__).parents[1]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, tuple[Path, ast.Module]]:
    return {_module_name(p): (p, ast.parse(p.read_text(encoding="utf-8")))
            for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, tree: ast.Module, modules: set[str]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            candidates = [target] + [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        found |= {c for c in candidates if c in modules}
    found.discard(name)
    return found


def _graph() -> nx.DiGraph:
    sources = _sources()
    graph = nx.DiGraph()
    for name, (path, tree) in sources.items():
        graph.add_node(name)
        for target in _imports(name, path, tree, set(sources)):
            # a package's __init__ re-exporting its own submodules is not a dependency
            if not target.startswith(name + "."):
                graph.add_edge(name, target)
    return graph


def test_there_is_no_import_cycle_even_through_lazy_imports() -> None:
    graph = _graph()
    # importing a submodule runs its package's __init__: parents are implicit edges
    cycles = [c for c in nx.simple_cycles(graph)
              if not all(a.startswith(b + ".") or b.startswith(a + ".")
                         for a, b in zip(c, [*c[1:], c[0]], strict=True))]
    assert cycles == []


def test_the_plan_imports_neither_exporters_nor_plots_nor_runtime() -> None:
    graph = _graph()
    for plan in ("recipe_compiler.plan.fcs", "recipe_compiler.plan.smc"):
        assert not any(t.startswith(("recipe_compiler.export", "recipe_compiler.plots",
                                     "recipe_compiler.runtime", "recipe_compiler.cli"))
                       for t in nx.descendants(graph, plan)), plan


def test_at_most_eight_modules_at_the_root_and_none_over_600_lines() -> None:
    root = [p.name for p in PACKAGE.glob("*.py")]
    assert len(root) <= 8, root
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600}
    assert long == {}


def test_no_eval_or_exec_anywhere() -> None:
    calls = [f"{p.relative_to(PACKAGE)}:{node.lineno}"
             for p in PACKAGE.rglob("*.py")
             for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
             and node.func.id in ("eval", "exec", "compile", "__import__")]
    assert calls == []


def test_method_names_are_spelled_only_in_the_table_and_the_r_exporter() -> None:
    names = [m.name for m in methods_module.METHODS_TABLE]
    pattern = re.compile("|".join(rf"[\"']{re.escape(n)}[\"']" for n in names))
    allowed = {"compiler/methods.py", "export/r_mice.py"}
    spelled = set()
    for p in PACKAGE.rglob("*.py"):
        code = ast.parse(p.read_text(encoding="utf-8"))
        docstrings = {id(n.body[0].value) for n in ast.walk(code)
                      if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef))
                      and n.body and isinstance(n.body[0], ast.Expr)}
        for node in ast.walk(code):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and id(node) not in docstrings and pattern.search(repr(node.value))):
                spelled.add(str(p.relative_to(PACKAGE)))
    assert spelled <= allowed, sorted(spelled - allowed)
