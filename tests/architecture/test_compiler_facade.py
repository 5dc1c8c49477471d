"""The runtime imports the compiler only through its façade (`taskc.compiler`), so the contract between the
two is the façade's `__all__`: no runtime module reaches into a compiler module, and every name it takes is one
the façade declares."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import taskc.compiler

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "runtime"


def _compiler_imports(path: Path, source: str | None = None) -> list[tuple[int, str, list[str]]]:
    """Every import of the compiler in one runtime file: (line, module as written, names taken)."""
    depth = len(path.relative_to(RUNTIME).parts)  # runtime/x.py: `..compiler`; runtime/pkg/x.py: `...compiler`
    text = path.read_text(encoding="utf-8") if source is None else source
    found = []
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names
                      if alias.name == "taskc.compiler" or alias.name.startswith("taskc.compiler.")]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            absolute = node.level == 0 and (module == "taskc.compiler" or module.startswith("taskc.compiler."))
            relative = node.level == depth + 1 and (module == "compiler" or module.startswith("compiler."))
            if absolute or relative:
                found.append((node.lineno, "." * node.level + module, [alias.name for alias in node.names]))
    return found


def test_the_walk_sees_every_runtime_module_and_their_compiler_imports() -> None:
    files = sorted(RUNTIME.rglob("*.py"))
    assert len(files) > 20 and RUNTIME / "pipeline.py" in files
    assert sum(len(_compiler_imports(path)) for path in files) > 20  # the runtime does use the compiler


def test_the_walk_catches_every_way_past_the_facade() -> None:
    source = ("from taskc.compiler.plan import GenerationJob\nfrom ..compiler.ir import TaskIR\n"
              "import taskc.compiler.driver\nfrom taskc.compiler import CompiledTask\n"
              "def late():\n    from ..compiler.call_plan import LLMCall\n")
    found = _compiler_imports(RUNTIME / "probe.py", source)
    assert sorted(module for _, module, _ in found) == sorted([
        "taskc.compiler.plan", "..compiler.ir", "taskc.compiler.driver", "taskc.compiler", "..compiler.call_plan"])
    nested = _compiler_imports(RUNTIME / "report" / "probe.py", "from ...compiler.ir import TaskIR\n")
    assert nested == [(1, "...compiler.ir", ["TaskIR"])]


def test_the_runtime_imports_the_compiler_only_through_its_facade() -> None:
    exported = set(taskc.compiler.__all__)
    past, undeclared = [], []
    for path in sorted(RUNTIME.rglob("*.py")):
        for line, module, names in _compiler_imports(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            if module.lstrip(".") not in ("compiler", "taskc.compiler") or not names:
                past.append(f"{where}: {module}")
            undeclared += [f"{where}: {name}" for name in names if name not in exported]
    assert past == [], "runtime modules import compiler modules past the façade"
    assert undeclared == [], "runtime modules take names the façade does not declare"


def test_the_facade_declares_only_names_it_has() -> None:
    assert sorted(set(taskc.compiler.__all__)) == sorted(taskc.compiler.__all__)
    missing = [name for name in taskc.compiler.__all__ if not hasattr(taskc.compiler, name)]
    assert missing == []


def test_importing_the_facade_loads_neither_the_runtime_nor_heavy_libraries() -> None:
    code = ("import sys, taskc.compiler; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('numpy', 'sklearn', 'openai', 'httpx', 'torch', 'transformers', 'rich') "
            "or m.startswith(('taskc.runtime', 'taskc.cli', 'taskc.compiler.semantic_diff'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_a_name_the_facade_loads_on_first_use_is_there() -> None:
    from taskc.compiler import entity_changes
    from taskc.compiler.semantic_diff import entity_changes as defined

    assert entity_changes is defined
