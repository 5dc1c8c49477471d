"""The import graph of taskc: arrows only go cli → runtime → compiler, and the runtime has no import cycle.

The modules are read with `ast`, never imported, so every import counts: at the top, inside a function
(a lazy import is still an arrow) and under `if TYPE_CHECKING:` (a type-only arrow is one too; the
messages mark those "(type-only)"). Relative imports are resolved against the module's package.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"taskc": ROOT / "taskc", "taskc.compiler": ROOT / "compiler", "taskc.runtime": ROOT / "runtime",
            "taskc.spec": ROOT / "spec"}  # as pyproject.toml's package-dir maps them

# Known cycles, each broken here at one edge (importer, imported). The list may only shrink: the test fails
# when an edge is gone, so that its line is deleted with it.
ALLOWED_CYCLE_EDGES: set[tuple[str, str]] = set()  # emptied: the analyses' records moved to analysis_records.py

Edges = dict[tuple[str, str], bool]  # (importer, imported) -> type-only (every import of it under TYPE_CHECKING)


def _modules() -> dict[str, Path]:
    modules = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            name = ".".join((package, *parts[:-1])) if parts[-1] == "__init__" else ".".join((package, *parts))
            if "tests" not in parts and ".venv" not in parts:
                modules[name] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(name: str, path: Path, modules: dict[str, Path]) -> Edges:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def known(target: str) -> str | None:  # the module itself, or the package that holds the name
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    edges: Edges = {}

    def add(target: str | None, type_only: bool) -> None:
        if target is not None and target != name:
            edges[(name, target)] = edges.get((name, target), True) and type_only

    def visit(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, type_only)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(known(alias.name), type_only)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            for alias in node.names:
                add(known(f"{base}.{alias.name}") if f"{base}.{alias.name}" in modules else known(base), type_only)
        for child in ast.iter_child_nodes(node):
            visit(child, type_only)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return edges


def _graph() -> Edges:
    modules = _modules()
    edges: Edges = {}
    for name, path in modules.items():
        edges |= _imports(name, path, modules)
    return edges


def _show(edge: tuple[str, str], edges: Edges) -> str:
    return f"{edge[0]} -> {edge[1]}" + (" (type-only)" if edges[edge] else "")


def _cycles(nodes: set[str], edges: Edges) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    successors: dict[str, list[str]] = {node: [] for node in nodes}
    for source, target in edges:
        successors[source].append(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in successors[node]:
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while (member := stack.pop()) != node:
                component.append(member)
            components.append(sorted([node, *component]))

    for node in sorted(nodes):
        if node not in index:
            connect(node)
    return [c for c in components if len(c) > 1]


def test_the_graph_sees_relative_lazy_and_type_only_imports() -> None:
    edges = _graph()
    assert edges[("taskc.runtime.pipeline", "taskc.runtime.result")] is False  # from .result import ...
    assert edges[("taskc.runtime.outputs", "taskc.runtime.report")] is False  # inside write_outputs
    assert edges[("taskc.runtime.result", "taskc.runtime.report.findings")] is True  # under TYPE_CHECKING
    assert edges[("taskc.runtime.report.markdown", "taskc.runtime.result")] is False  # from ..result import ...
    assert ("taskc.cli.cmd_run", "taskc.runtime.report") in edges  # absolute, inside run()


def test_the_compiler_imports_neither_the_runtime_nor_the_cli() -> None:
    edges = _graph()
    wrong = [_show(e, edges) for e in edges if e[0].startswith("taskc.compiler")
             and e[1].startswith(("taskc.runtime", "taskc.cli"))]
    assert wrong == []


def test_the_runtime_does_not_import_the_cli() -> None:
    edges = _graph()
    assert [_show(e, edges) for e in edges if e[0].startswith("taskc.runtime") and e[1].startswith("taskc.cli")] == []


def test_no_import_cycle_in_the_runtime_but_the_known_ones() -> None:
    edges = _graph()
    runtime = {e: type_only for e, type_only in edges.items()
               if e[0].startswith("taskc.runtime.") and e[1].startswith("taskc.runtime.")}
    assert sorted(ALLOWED_CYCLE_EDGES - set(runtime)) == []  # fixed: delete its line from the allowlist
    kept = {e: t for e, t in runtime.items() if e not in ALLOWED_CYCLE_EDGES}
    nodes = {module for edge in runtime for module in edge}
    cycles = [[_show(e, kept) for e in sorted(kept) if e[0] in c and e[1] in c] for c in _cycles(nodes, kept)]
    assert cycles == []


def test_the_layers_read_nothing_of_the_root_package_but_its_version() -> None:
    """`taskc` (the public API) sits above every layer; of it, the compiler and the runtime read the
    version only, from the leaf module that holds it."""
    edges = _graph()
    wrong = [_show(e, edges) for e in edges if e[0].startswith(("taskc.compiler", "taskc.runtime", "taskc.spec"))
             and (e[1] == "taskc" or (e[1].startswith("taskc.") and e[1].split(".")[1] not in
                                      ("compiler", "runtime", "spec", "_version")))]
    assert wrong == []


def test_no_import_cycle_anywhere() -> None:
    edges = _graph()
    nodes = {module for edge in edges for module in edge}
    assert [[_show(e, edges) for e in sorted(edges) if e[0] in c and e[1] in c] for c in _cycles(nodes, edges)] == []


def test_every_package_of_the_tree_is_in_the_wheel() -> None:
    """pyproject.toml lists the packages by hand (the top-level folders are mapped onto `taskc.*`): a new
    subpackage missing from the list would be missing from every installed wheel, though an editable
    install works."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    packages = {name for name, path in _modules().items() if path.name == "__init__.py"}
    assert packages == listed
