"""Shared output helpers of the subcommands: diagnostics in text or JSON, colour only on a terminal."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TextIO

from taskc.compiler.diagnostics import Diagnostic, render_json, render_text, summary_line
from taskc.compiler.plan import PriceTable, parse_price_table


class UsageError(Exception):
    """A bad option value: `main` prints it as `taskc: error: ...` and exits 2."""


def use_color(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def print_diagnostics(diagnostics: list[Diagnostic], sources: dict[str, str], fmt: str,
                      stream: TextIO | None = None, summary: bool = True) -> None:
    stream = stream or sys.stderr
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
