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
from enum import Enum


class TaskcError(Exception):
    """Root of every error taskc raises on purpose; carries diagnostics when it has them."""

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
        self.items.append(Diagnostic(span, Severity.ERROR, code, message, hint))

    def warning(self, span: Span, code: str, message: str, hint: str | None = None) -> None:
        self.items.append(Diagnostic(span, Severity.WARNING, code, message, hint))

    @property
    def has_errors(self) -> bool:
        return any(d.severity is Severity.ERROR for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        unique = {(d.span, d.code, d.message): d for d in self.items}
        return sorted(unique.values(), key=lambda d: (d.span.file, d.span.line, d.span.column, d.code))


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
    return f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}"
