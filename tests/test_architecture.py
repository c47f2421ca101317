"""The package graph of engine_service points one way: no import cycle between its parts.

Every ``import`` statement counts, including those under ``if TYPE_CHECKING:`` and
those inside functions: a cycle hidden in a function is still a cycle in the design.
A *part* is a sub-package (``runtime``, ``parallel``, ``models``, ...) or a top-level
module (``jobs``, ``errors``, ``cli``, ...). The graph is read from the source with
``ast``, so the test needs no import of torch and sees code that never runs here.
"""

from __future__ import annotations

import ast
import collections
import pathlib

from tests.conftest import REPO

PACKAGE = REPO / "engine_service"


def _part_of(module: str) -> str | None:
    """The part of ``engine_service`` that ``module`` (dotted, absolute) belongs to."""
    parts = module.split(".")
    if parts[0] != "engine_service" or len(parts) < 2:
        return None
    return parts[1]


def _module_name(path: pathlib.Path) -> str:
    name = ".".join(path.relative_to(REPO).with_suffix("").parts)
    return name.removesuffix(".__init__")


def _resolve(node: ast.ImportFrom, importer: str, is_package: bool) -> str | None:
    if not node.level:
        return node.module
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def import_graph() -> dict[str, set[str]]:
    """part -> the other parts it imports, from every import statement in the package."""
    graph: dict[str, set[str]] = collections.defaultdict(set)
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = _module_name(path)
        source = _part_of(importer)
        if source is None:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                module = _resolve(node, importer, path.name == "__init__.py")
                if module == "engine_service":
                    targets = [f"engine_service.{alias.name}" for alias in node.names]
                elif module:
                    targets = [module]
            for target in targets:
                part = _part_of(target)
                if part is not None and part != source:
                    graph[source].add(part)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_the_checker_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None


def test_no_import_cycle_between_parts():
    graph = import_graph()
    assert "runtime" in graph, "the import graph was not read"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle between engine_service parts: " + " -> ".join(cycle)


def test_bottom_floor_imports_nothing_above_it():
    """The shared messages and errors are the bottom floor: they import no part that runs anything."""
    graph = import_graph()
    for floor in ("jobs", "errors"):
        assert graph.get(floor, set()) <= {"cache"}, f"{floor} imports {sorted(graph[floor])}"


def test_parallel_is_plans_and_transport_only():
    assert "runtime" not in import_graph().get("parallel", set())
