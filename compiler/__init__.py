"""The taskc compiler: task file → diagnostics, IR and deterministic compiled outputs.

Stages, one module each: `loader` (YAML with positions and limits) → `structure`
(JSON Schema) → `lowering` (the IR in `ir`, expressions parsed by `expr_parser`)
→ `passes` (names, types via `expr_check`, warnings) → emitters (`prompts`,
`plan`). `driver.compile_task` runs them all; `semantic_diff`/`diff_render` and
`formatting` serve `taskc diff` and `taskc fmt`.
"""

from .diagnostics import Diagnostic, Severity, Span, TaskcError
from .driver import CompiledTask, CompileResult, compile_task, dump_ir, write_outputs

__all__ = ["CompileResult", "CompiledTask", "Diagnostic", "Severity", "Span", "TaskcError", "compile_task",
           "dump_ir", "write_outputs"]
