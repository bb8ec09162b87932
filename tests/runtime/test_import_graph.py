"""No import circle: no module imports (at the top or inside a function) one that imports it back; runtime/ first."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "edge_agent"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The package's modules `path` imports anywhere in its body (lazy imports in functions count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        found |= {name for name in names if name in known}
    return found


def import_graph(folder: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same folder tree it imports."""
    paths = {module_name(path): path for path in folder.rglob("*.py")}
    known = set(paths)
    return {name: imports_of(path, known) - {name} for name, path in paths.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle found by a depth-first walk, each as the path that closes it."""
    found, done = [], set()

    def walk(node: str, path: list[str]) -> None:
        if node in path:
            found.append([*path[path.index(node):], node])
            return
        if node in done:
            return
        for target in sorted(graph.get(node, ())):
            walk(target, [*path, node])
        done.add(node)

    for start in sorted(graph):
        walk(start, [])
    return found


def test_the_walk_finds_a_circle_and_only_a_circle() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_runtime_has_no_import_circle() -> None:
    graph = import_graph(PACKAGE / "runtime")
    assert {"edge_agent.runtime.torch_kernels", "edge_agent.runtime.onnx_backend"} <= graph["edge_agent.runtime.select"]
    assert circles(graph) == []


def test_no_module_of_the_package_imports_one_that_imports_it_back() -> None:
    assert circles(import_graph(PACKAGE)) == []
