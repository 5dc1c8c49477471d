"""One error tree: every error taskc raises on purpose is a TaskcError that carries its exit status.

The CLI returns `exc.exit_status`; these tests hold every class of the tree to a status of the documented
table, and keep the exceptions outside the tree to a short list of boundary kinds and internal signals.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest
from taskc.compiler.diagnostics import ExitStatus, TaskcError

import taskc

ROOT = Path(__file__).resolve().parents[2]
# Outside the tree on purpose (see TaskcError's docstring): the file-system boundary's OSError/ValueError
# kinds, and signals that a stage catches itself and never lets reach a command.
OUTSIDE_THE_TREE = {
    "taskc.compiler.paths.PathOutsideProject", "taskc.compiler.paths.UnsafeFileError",
    "taskc.compiler.paths.SymlinkRefused", "taskc.compiler.functions.UnsafePattern",
    "taskc.compiler.expr_parser.ExpressionSyntaxError", "taskc.compiler.expr_eval.ExpressionEvaluationError",
    "taskc.compiler.driver.PromptBudgetExceeded", "taskc.compiler.prompts.RenderBudgetExceeded",
    "taskc.compiler.formatting._FormatFailure", "taskc.compiler.rule_key._Unsupported",
    "taskc.runtime.schema_check._Unsupported", "taskc.runtime.provider.answers.AnswerProblem",
    "taskc.runtime.provider.transport.ResponseTooLarge",  # an openai.OpenAIError: the client's retry loop must see it
    "taskc.runtime.serving.StopServing",
    "taskc.runtime.model_process._ProcessLost",  # never leaves its module: the model is fitted here instead
}
OPTIONAL = ("taskc.runtime.transformer_student", "taskc.cli.cmd_lsp")


def _taskc_modules() -> list[str]:
    names = []
    for package in ("taskc.compiler", "taskc.runtime", "taskc.cli"):
        module = importlib.import_module(package)
        names += [f"{package}.{info.name}" for info in pkgutil.iter_modules(module.__path__)]
    return names


def _exception_classes() -> dict[str, type[BaseException]]:
    for name in _taskc_modules():
        try:
            importlib.import_module(name)
        except ImportError:
            assert name in OPTIONAL, name  # an optional extra (torch, pygls) that this machine lacks
    found: dict[str, type[BaseException]] = {}
    pending: list[type[BaseException]] = [Exception]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            pending.append(sub)
            if sub.__module__.startswith("taskc.") and not sub.__module__.startswith("taskc.tests"):
                found[f"{sub.__module__}.{sub.__qualname__}"] = sub
    return found


def test_every_error_taskc_defines_is_in_the_tree_or_on_the_short_list_outside_it() -> None:
    classes = _exception_classes()
    outside = {name for name, cls in classes.items() if not issubclass(cls, TaskcError)}
    assert outside <= OUTSIDE_THE_TREE, sorted(outside - OUTSIDE_THE_TREE)
    assert len([c for c in classes.values() if issubclass(c, TaskcError)]) >= 15


def test_every_class_of_the_tree_carries_a_documented_exit_status() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Exit statuses"):]
    documented = {int(n) for n in re.findall(r"(?:^|· )(\d+) ", section[:section.index("\n\n", 20)], re.M)}
    assert {s.value for s in ExitStatus} == documented
    for name, cls in _exception_classes().items():
        if issubclass(cls, TaskcError):
            assert isinstance(cls.exit_status, ExitStatus), name
            assert cls.exit_status not in (ExitStatus.OK, ExitStatus.INTERNAL, ExitStatus.INTERRUPTED), name


def test_the_stage_decides_the_status_not_the_command() -> None:
    from taskc.runtime.datafiles import DataFileError
    from taskc.runtime.export import ExportUsageError, ExportWriteError
    from taskc.runtime.llm_phases import ProviderFailure
    from taskc.runtime.run_lock import RunDirError

    from taskc.cli.output import UsageError

    assert DataFileError("x").exit_status is ExitStatus.INPUT_ERRORS
    assert ProviderFailure("x").exit_status is ExitStatus.RUNTIME_FAILURE
    assert UsageError("x").exit_status is ExitStatus.USAGE
    assert ExportUsageError("x").exit_status is ExitStatus.USAGE
    assert ExportWriteError("x").exit_status is ExitStatus.RUNTIME_FAILURE
    assert RunDirError("x").exit_status is ExitStatus.USAGE
    assert RunDirError("x", usage=False).exit_status is ExitStatus.RUNTIME_FAILURE
    assert taskc.TaskcError is TaskcError


@pytest.mark.parametrize("status", list(ExitStatus))
def test_the_cli_names_are_the_statuses(status: ExitStatus) -> None:
    from taskc.cli import output

    assert getattr(output, f"EXIT_{status.name}") == status.value
