"""Shared output helpers of the subcommands: diagnostics in text or JSON, colour only on a terminal."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TextIO

from taskc.compiler import PriceTable, parse_price_table
from taskc.compiler.diagnostics import (
    Diagnostic,
    ExitStatus,
    Severity,
    TaskcError,
    render_json,
    render_text,
    summary_line,
)

# Exit statuses, part of the interface (see `taskc --help`): ExitStatus's, under the names the commands use;
# `taskc diff` and `fmt --check` answer with 1. A TaskcError carries the status it ends a command with.
EXIT_OK, EXIT_INPUT_ERRORS, EXIT_USAGE = ExitStatus.OK, ExitStatus.INPUT_ERRORS, ExitStatus.USAGE
EXIT_CRITERION_FAILED, EXIT_RUNTIME_FAILURE = ExitStatus.CRITERION_FAILED, ExitStatus.RUNTIME_FAILURE
EXIT_INTERNAL, EXIT_INTERRUPTED = ExitStatus.INTERNAL, ExitStatus.INTERRUPTED


def json_failure(message: str, status: int) -> None:
    """A command with --format json that has no result: an "error" event on stderr (after any progress
    events) and an {"error", "exit_status"} document on stdout, where the result would have been."""
    print(json.dumps({"event": "error", "message": message, "exit_status": status}), file=sys.stderr, flush=True)
    sys.stdout.write(json.dumps({"error": message, "exit_status": status}, indent=2) + "\n")


def errors_only(diagnostics: list[Diagnostic], quiet: bool) -> list[Diagnostic]:
    """What --quiet leaves of the diagnostics: the errors."""
    return [d for d in diagnostics if not quiet or d.severity is Severity.ERROR]


class UsageError(TaskcError):
    """A bad option value: `main` prints it as `taskc: error: ...` and exits 2."""

    exit_status = ExitStatus.USAGE


def use_color(stream: TextIO) -> bool:
    """Colour on a terminal; NO_COLOR (any non-empty value, no-color.org) turns it off everywhere and wins over
    FORCE_COLOR, which turns it on where the output is not a terminal (a CI log, a pipe into `less -R`)."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR", "") not in ("", "0", "false"):
        return True
    return stream.isatty() and os.environ.get("TERM") != "dumb"


def print_diagnostics(diagnostics: list[Diagnostic], sources: dict[str, str], fmt: str,
                      summary: bool = True) -> None:
    """Diagnostics as text on stderr (with a summary line) or as JSON on stdout."""
    stream = sys.stderr
    if fmt == "json":
        sys.stdout.write(render_json(diagnostics))
        return
    stream.write(render_text(diagnostics, sources, color=use_color(stream)))
    if summary and diagnostics:
        stream.write(summary_line(diagnostics) + "\n")


def add_format_argument(parser: object) -> None:
    parser.add_argument("--format", choices=("text", "json"), default="text",  # type: ignore[attr-defined]
                        help="diagnostics as compiler-style text (default) or as a JSON array on stdout")


def add_prices_argument(parser: object) -> None:
    parser.add_argument("--prices", metavar="FILE",  # type: ignore[attr-defined]
                        help='JSON price table {"model": {"input": USD per 1M, "output": USD per 1M}}')


def load_prices(path: str | None) -> PriceTable | None:
    """The --prices table, or UsageError saying why it cannot be read."""
    if not path:
        return None
    try:
        return parse_price_table(json.loads(Path(path).read_text(encoding="utf-8")))
    except OSError as exc:
        reason = exc.strerror or str(exc)
    except json.JSONDecodeError as exc:
        reason = f"not JSON: {exc.msg} at line {exc.lineno}"
    except ValueError as exc:
        reason = str(exc)
    raise UsageError(f"cannot read price table {path}: {reason}")
