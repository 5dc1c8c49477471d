"""Diagnostics for CI: GitHub Actions workflow commands and SARIF 2.1.0 (`taskc check --format github|sarif`).

The text and JSON renderers live with the compiler (`compiler/diagnostics.py`); these two are for machines
that read a check's output: GitHub turns each `::error file=…,line=…::message` line of a step's output into
an annotation on the pull request's diff, and code-scanning tools read SARIF. Both name files relative to
the working directory (the repository root, in a workflow) with forward slashes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from taskc._version import __version__
from taskc.compiler.diagnostics import Diagnostic, Severity

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
REFERENCE = "spec/reference.md"  # where the diagnostic codes are listed


def shown_path(file: str) -> str:
    """A diagnostic's file as CI tools want it: relative to the working directory when inside it, POSIX style."""
    path = Path(file)
    if path.is_absolute():
        try:
            path = path.relative_to(Path.cwd())
        except ValueError:
            return path.as_posix()
    return PurePosixPath(*path.parts).as_posix() if path.parts else file


def _uri(file: str) -> str:
    """A relative URI reference, as SARIF wants a location (spaces and the like percent-encoded)."""
    return quote(shown_path(file), safe="/")


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _full_message(diagnostic: Diagnostic) -> str:
    return diagnostic.message + (f"\nhint: {diagnostic.hint}" if diagnostic.hint else "")


def render_github(diagnostics: Iterable[Diagnostic]) -> str:
    """One workflow command per diagnostic: `::error file=F,line=L,col=C,endLine=..,endColumn=..,title=CODE::msg`."""
    lines = []
    for d in diagnostics:
        command = "error" if d.severity is Severity.ERROR else "warning"
        span = d.span
        properties = {"file": shown_path(span.file), "line": str(span.line), "col": str(span.column)}
        if span.end_line:
            properties["endLine"] = str(span.end_line)
            if span.end_column and span.end_line == span.line:  # GitHub reads endColumn on one line only
                properties["endColumn"] = str(span.end_column)
        properties["title"] = f"taskc {d.code}"
        joined = ",".join(f"{key}={_escape_property(value)}" for key, value in properties.items())
        lines.append(f"::{command} {joined}::{_escape_data(_full_message(d))}\n")
    return "".join(lines)


def render_sarif(diagnostics: Iterable[Diagnostic], files: Iterable[str] = ()) -> str:
    """A SARIF 2.1.0 log with one run of taskc: a rule per diagnostic code, a result per diagnostic."""
    diagnostics = list(diagnostics)
    codes = sorted({d.code for d in diagnostics})
    rules = [{"id": code, "shortDescription": {"text": f"taskc diagnostic {code} (listed in {REFERENCE})"}}
             for code in codes]
    artifacts = sorted({_uri(f) for f in files} | {_uri(d.span.file) for d in diagnostics})
    results = []
    for d in diagnostics:
        span = d.span
        region: dict[str, int] = {"startLine": max(span.line, 1), "startColumn": max(span.column, 1)}
        if span.end_line and (span.end_line, span.end_column) > (span.line, span.column):
            region["endLine"] = span.end_line
            if span.end_column:
                region["endColumn"] = span.end_column
        results.append({
            "ruleId": d.code,
            "ruleIndex": codes.index(d.code),
            "level": "error" if d.severity is Severity.ERROR else "warning",
            "message": {"text": _full_message(d)},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": _uri(span.file)},
                "region": region,
            }}],
        })
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "taskc", "version": __version__, "semanticVersion": __version__,
                                "rules": rules}},
            "artifacts": [{"location": {"uri": uri}} for uri in artifacts],
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    }
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n"
