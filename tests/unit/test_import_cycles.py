"""No import cycles in the product packages, counting imports inside functions too.

Every ``.py`` file of ``model_wrappers``, ``adaptvis_tasks`` and ``yaml_tasks`` is parsed with
``ast``; every ``import`` / ``from ... import`` anywhere in it (module level, functions, ``if
TYPE_CHECKING`` blocks excepted -- they never run) becomes an edge to the suite module it names.
``from package import name`` is an edge to ``package.name`` when that is a module, else to
``package``. Edges go to the named module only, not to its parent packages (Python runs a parent
``__init__`` first, but a parent that imports its submodules would otherwise always "cycle").
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("model_wrappers", "adaptvis_tasks", "yaml_tasks")


def _module_files() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """Suite modules ``module`` imports anywhere in ``tree`` (TYPE_CHECKING blocks excepted)."""
    found: set[str] = set()

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = resolve(alias.name)
                if target:
                    found.add(target)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = module.split(".") if is_package else module.split(".")[:-1]
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            for alias in node.names:
                target = resolve(f"{base}.{alias.name}") if f"{base}.{alias.name}" in known else resolve(base)
                if target:
                    found.add(target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(module)
    return found


def import_graph() -> dict[str, set[str]]:
    """Suite module -> the suite modules it imports (anywhere in its source)."""
    files = _module_files()
    known = set(files)
    return {
        module: _imports(ast.parse(path.read_text(encoding="utf-8")), module, path.name == "__init__.py", known)
        for module, path in files.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or ``None``."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_product_packages_have_no_import_cycle_even_through_function_level_imports():
    graph = import_graph()
    assert len(graph) > 50  # every module was found
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checker_sees_function_level_imports_and_reports_a_cycle():
    known = {"pkg.a", "pkg.b", "pkg"}
    a = ast.parse("def f():\n    from pkg.b import thing\n")
    b = ast.parse("from pkg import a\n")
    graph = {
        "pkg.a": _imports(a, "pkg.a", False, known),
        "pkg.b": _imports(b, "pkg.b", False, known),
    }
    assert graph == {"pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]
    typing_only = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import X\n")
    assert _imports(typing_only, "pkg.b", False, known) == set()


def test_errors_is_a_leaf():
    assert import_graph()["model_wrappers.errors"] == set()
