"""Shared output helpers of the subcommands: diagnostics in text or JSON, colour only on a terminal."""

from __future__ import annotations

import os
import sys
from typing import TextIO

from taskc.compiler.diagnostics import Diagnostic, render_json, render_text, summary_line


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
