"""taskc: compile a domain expert's rationales into training data, a classifier and feedback.

The public API, for scripts that would rather not shell out to the command:

    import taskc
    result = taskc.compile_task("examples/keto.task.yaml")   # the compiler's façade
    if result.ok:
        compiled = result.compiled                          # the compiled task: the one contract

`taskc.compiler`, `taskc.runtime` and `taskc.spec` are the top-level folders `compiler/`, `runtime/` and
`spec/`; the command line lives in `taskc.cli`. Names are imported on first use, so `import taskc` stays
cheap (the `predict` command's start-up depends on it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskc._version import __version__

__all__ = ["__version__", "compile_task", "CompileResult", "CompiledTask", "TaskcError"]

if TYPE_CHECKING:
    from taskc.compiler.diagnostics import TaskcError
    from taskc.compiler.driver import CompiledTask, CompileResult, compile_task

_LAZY = {
    "compile_task": "taskc.compiler.driver",
    "CompileResult": "taskc.compiler.driver",
    "CompiledTask": "taskc.compiler.driver",
    "TaskcError": "taskc.compiler.diagnostics",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'taskc' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
