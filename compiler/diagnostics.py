"""Diagnostics: the one error currency of every compiler stage.

Each stage reports problems as `Diagnostic` records that carry a `Span` into the
task file, instead of raising on the first problem; the driver collects them all
and renders them like a C compiler does (``file:line:col: error[CODE]: message``
followed by the source line and a caret). Library errors (PyYAML, jsonschema,
Lark, Jinja2) are converted into diagnostics at the boundary of the stage that
calls the library, so no library exception ever reaches the user.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum, IntEnum

from .wording import counted


class ExitStatus(IntEnum):
    """The exit statuses of the `taskc` command, part of its interface (README "Exit statuses")."""

    OK = 0
    INPUT_ERRORS = 1  # errors in a task file or its data (`taskc diff`, `fmt --check`: "it changed")
    USAGE = 2  # a bad option or argument, a missing optional dependency
    CRITERION_FAILED = 3  # `taskc run`: the pass criterion failed
    RUNTIME_FAILURE = 4  # the provider, the disk, a training that could not run
    INTERNAL = 70  # a bug in taskc
    INTERRUPTED = 130  # Ctrl-C


class TaskcError(Exception):
    """Root of every error taskc raises on purpose; carries diagnostics when it has them.

    Each class says with which status a command that it ends exits (`exit_status`), and the CLI reads it
    from the exception. Subclasses live with the stage that raises them (DataFileError in
    runtime/datafiles.py, ProviderFailure in runtime/llm_phases.py, UsageError in taskc/cli/output.py, ...).
    Outside the tree on purpose: the file-system boundary's OSError/ValueError kinds (compiler/paths.py),
    which each stage turns into a diagnostic or a TaskcError, and internal signals that never leave their
    module (an expression's evaluation error, StopServing)."""

    exit_status: ExitStatus = ExitStatus.INPUT_ERRORS

    def __init__(self, message: str, diagnostics: tuple[Diagnostic, ...] = ()) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Span:
    """A region of a source file; lines and columns are 1-based, `end_*` is exclusive."""

    file: str
    line: int
    column: int
    end_line: int = 0
    end_column: int = 0


@dataclass(frozen=True)
class Diagnostic:
    span: Span
    severity: Severity
    code: str
    message: str
    hint: str | None = None

    def to_json(self) -> dict[str, object]:
        record: dict[str, object] = {
            "file": self.span.file,
            "line": self.span.line,
            "column": self.span.column,
            "end_line": self.span.end_line or self.span.line,
            "end_column": self.span.end_column or self.span.column + 1,
            "severity": self.severity.value,
            "code": self.code,
            "message": self.message,
        }
        if self.hint:
            record["hint"] = self.hint
        return record


@dataclass
class DiagnosticBag:
    """Collects the diagnostics of one compilation, in the order the stages report them."""

    items: list[Diagnostic] = field(default_factory=list)

    def error(self, span: Span, code: str, message: str, hint: str | None = None) -> None:
        self.items.append(Diagnostic(span, _checked(code, Severity.ERROR), code, message, hint))

    def warning(self, span: Span, code: str, message: str, hint: str | None = None) -> None:
        self.items.append(Diagnostic(span, _checked(code, Severity.WARNING), code, message, hint))

    @property
    def has_errors(self) -> bool:
        return any(d.severity is Severity.ERROR for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        unique = {(d.span, d.code, d.message): d for d in self.items}
        return sorted(unique.values(), key=lambda d: (d.span.file, d.span.line, d.span.column, d.code))


@dataclass(frozen=True)
class Code:
    """One diagnostic code of the catalogue: what the language reference's table says of it."""

    code: str
    severity: Severity
    meaning: str


INTERNAL_ERROR = "E000"  # a bug in taskc itself, reported as a diagnostic so no input ever gives a traceback

# The catalogue of every code the compiler reports. spec/reference.md's table is generated from it:
#     python -c 'import taskc.compiler.diagnostics as d; d.update_reference_file("spec/reference.md")'
# Tests hold the two to each other, hold every code the compiler's source can emit to this table, and keep
# one broken spec per code (tests/broken/).
CODES: dict[str, Code] = {c.code: c for c in (
    Code(INTERNAL_ERROR, Severity.ERROR, "An internal compiler error: a bug in taskc, never in the task file."),
    Code("E001", Severity.ERROR,
         "The file cannot be read, is not UTF-8, or is not valid YAML."),
    Code("E002", Severity.ERROR,
         'A safety limit: size, nesting depth, alias expansion ("billion laughs"), or a YAML tag such as '
         "`!!python/object`."),
    Code("E003", Severity.ERROR,
         "A key appears twice in one mapping."),
    Code("E010", Severity.ERROR,
         'Unknown key (with "did you mean").'),
    Code("E011", Severity.ERROR,
         "A required key is missing."),
    Code("E012", Severity.ERROR,
         "A value has the wrong type or is out of range."),
    Code("E020", Severity.ERROR,
         "Syntax error in an expression, located inside it."),
    Code("E021", Severity.ERROR,
         "Unknown input field or metric."),
    Code("E022", Severity.ERROR,
         "Unknown lexicon."),
    Code("E023", Severity.ERROR,
         "Unknown function."),
    Code("E024", Severity.ERROR,
         "Unknown class (in `class:`, a worked example, or compared with `label`/indexing a metric)."),
    Code("E025", Severity.ERROR,
         "Type error."),
    Code("E026", Severity.ERROR,
         "Wrong number of arguments."),
    Code("E027", Severity.ERROR,
         "A name used outside the context it belongs to (`label` in a rule, a field in the criterion...)."),
    Code("E028", Severity.ERROR,
         "A regular expression in `matches` that is invalid, needs backtracking (back-reference, look-around, "
         "…), is too large to match in bounded linear time, or has a shape that backtracks exponentially in "
         "other engines."),
    Code("E029", Severity.ERROR,
         "A string compared with an enum field is not one of its values."),
    Code("E030", Severity.ERROR,
         "Duplicate rationale or constraint id."),
    Code("E031", Severity.ERROR,
         "An input field named like a reserved word or function."),
    Code("E032", Severity.ERROR,
         "A worked example does not fit the input fields."),
    Code("E033", Severity.ERROR,
         "A file named by the task does not exist or cannot be read."),
    Code("E034", Severity.ERROR,
         "A path leaves the task file's directory."),
    Code("E035", Severity.ERROR,
         "A prompt template has a syntax error or lacks the `system`/`user` blocks."),
    Code("E036", Severity.ERROR,
         "A prompt template failed while rendering (undefined name, sandbox refusal)."),
    Code("E037", Severity.ERROR,
         "`finetune.provider: transformers` without `base_model` (the Hugging Face model id or local directory"
         " to fine-tune)."),
    Code("E038", Severity.ERROR,
         "The task file asks for more work than the budget allows, checked before the work: planned LLM calls "
         "(10,000) or generated examples (200,000), a rendered prompt (512 KiB) or all of them (32 MiB), or an"
         " expression's steps on one input (2,000,000: a lambda costs its body once per item, per lexicon "
         "word). Whoever runs taskc raises a cap with `TASKC_LIMIT_<NAME>` (see SECURITY.md)."),
    Code("W101", Severity.WARNING,
         "No rationale argues for a class."),
    Code("W102", Severity.WARNING,
         "A rationale has no rule, so it cannot label data or be measured."),
    Code("W103", Severity.WARNING,
         "A lexicon is never used."),
    Code("W104", Severity.WARNING,
         "A rule does not hold on its own worked example."),
    Code("W105", Severity.WARNING,
         "Every generation count is 0."),
    Code("W106", Severity.WARNING,
         "`values` given for a field that is not an `enum`."),
    Code("W107", Severity.WARNING,
         "Words of a lexicon occur in a field (in a sample of the pool and gold files) that no rule tests "
         "against that lexicon: e.g. every rule reads `ingredients`, while menu entries hold the same words in"
         " `dish`."),
    Code("W108", Severity.WARNING,
         "`finetune.provider: openai`: OpenAI's fine-tuning platform is winding down (closed to new users; "
         "last new jobs in early January 2027); the hint names the students that train anywhere."),
)}


def _checked(code: str, severity: Severity) -> Severity:
    known = CODES.get(code)
    if known is None or known.severity is not severity:
        raise ValueError(f"diagnostic code {code} is not a{'n' if severity is Severity.ERROR else ''} "
                         f"{severity.value} of the catalogue (compiler/diagnostics.py CODES)")
    return severity


CODE_TABLE_HEADER = "| code | severity | meaning |\n|---|---|---|\n"


def code_table() -> str:
    """The reference's table of codes (Markdown), E000 aside: the reference explains it in prose."""
    return CODE_TABLE_HEADER + "".join(f"| `{c.code}` | {c.severity.value} | {c.meaning} |\n"
                                       for c in CODES.values() if c.code != INTERNAL_ERROR)


def update_reference(text: str) -> str:
    """``text`` (the reference) with its table of codes replaced by `code_table()`."""
    start = text.index(CODE_TABLE_HEADER)
    end = start + len(CODE_TABLE_HEADER)
    while text.startswith("| `", end):
        end = text.index("\n", end) + 1
    return text[:start] + code_table() + text[end:]


def update_reference_file(path: str) -> None:
    """Rewrite the table of codes in the reference file at ``path`` (after editing CODES)."""
    from pathlib import Path

    target = Path(path)
    target.write_text(update_reference(target.read_text(encoding="utf-8")), encoding="utf-8")


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A "did you mean" hint for a misspelt name, or None when nothing is close."""
    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None


def render_text(diagnostics: Iterable[Diagnostic], sources: dict[str, str], color: bool = False) -> str:
    """Render diagnostics the way compilers do: location, severity, code, source line and caret."""
    lines_of = {file: text.splitlines() for file, text in sources.items()}  # split each file once, not per error
    return "".join(_render_one(d, lines_of.get(d.span.file, []), color) for d in diagnostics)


def _render_one(diag: Diagnostic, lines: list[str], color: bool) -> str:
    span = diag.span
    severity = diag.severity.value
    if color:
        tint = "\033[1;31m" if diag.severity is Severity.ERROR else "\033[1;33m"
        severity = f"{tint}{severity}\033[0m"
    out = [f"{span.file}:{span.line}:{span.column}: {severity}[{diag.code}]: {diag.message}\n"]
    if 1 <= span.line <= len(lines):
        text = lines[span.line - 1].expandtabs(1)
        if len(text) > 200:
            text = text[:200] + "…"
        width = 1
        if span.end_line == span.line and span.end_column > span.column:
            width = span.end_column - span.column
        width = max(1, min(width, max(1, len(text) - span.column + 1)))
        gutter = f"{span.line:>5} | "
        out.append(f"{gutter}{text}\n")
        out.append(" " * (len(gutter) - 2) + "| " + " " * (span.column - 1) + "^" + "~" * (width - 1) + "\n")
    if diag.hint:
        out.append(f"      = hint: {diag.hint}\n")
    return "".join(out)


def render_json(diagnostics: Iterable[Diagnostic]) -> str:
    """A JSON array of diagnostic objects, one per line so that it also greps well."""
    records = [json.dumps(d.to_json(), sort_keys=True) for d in diagnostics]
    if not records:
        return "[]\n"
    return "[\n  " + ",\n  ".join(records) + "\n]\n"


def summary_line(diagnostics: list[Diagnostic]) -> str:
    errors = sum(d.severity is Severity.ERROR for d in diagnostics)
    warnings = len(diagnostics) - errors
    return f"{counted(errors, 'error')}, {counted(warnings, 'warning')}"

