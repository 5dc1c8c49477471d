"""Beside the pipeline: `taskc fmt` gives a task file its canonical layout without touching its meaning.

The file is first read by the compiler's own loader (stage 1), so a file the
compiler would reject for its YAML gets the same diagnostics here. It is then
round-tripped through ruamel.yaml, which keeps comments, key order, quoting
and block-scalar styles, while re-indenting to one layout (mappings by two
spaces, sequence dashes two spaces under their key); trailing whitespace and
runs of blank lines are tidied. Lines are never re-wrapped (review diffs
should show meaning, not reflowed text). Every result is loaded again with the
compiler's loader and must give exactly the same data as the original, or the
file is left alone with an error: formatting can never change what compiles.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .diagnostics import Diagnostic, DiagnosticBag, Span
from .loader import parse_task_text, read_task_text

MAPPING_INDENT = 2
SEQUENCE_INDENT = 4  # where an item's content starts, counted from its key's column
SEQUENCE_DASH_OFFSET = 2  # where the dash sits, counted from its key's column
NEVER_WRAP = 1 << 16
_MAX_PASSES = 3


@dataclass(frozen=True)
class FormatResult:
    name: str  # the file as the user named it
    original: str
    formatted: str | None  # None when the file could not be formatted (see diagnostics)
    diagnostics: tuple[Diagnostic, ...] = ()

    @property
    def ok(self) -> bool:
        return self.formatted is not None

    @property
    def changed(self) -> bool:
        return self.formatted is not None and self.formatted != self.original


def format_file(path: Path, display_name: str | None = None) -> FormatResult:
    name = display_name or str(path)
    bag = DiagnosticBag()
    text = read_task_text(path, name, bag)  # parsed (once) by format_text
    if text is None:
        return FormatResult(name, "", None, tuple(bag.sorted()))
    return format_text(text, name)


def format_text(text: str, name: str) -> FormatResult:
    """The canonical layout of a task file's text, or diagnostics saying why there is none."""
    problems, meaning = _meaning(text, name)
    if problems:
        return FormatResult(name, text, None, problems)
    current = text.replace("\r\n", "\n")
    for _ in range(_MAX_PASSES):  # formatting a formatted file must change nothing; reach that fixpoint
        try:
            formatted = _one_pass(current, meaning, name)
        except _FormatFailure as failure:
            return FormatResult(name, text, None, (failure.diagnostic,))
        if formatted == current:
            return FormatResult(name, text, formatted)
        current = formatted
    return FormatResult(name, text, None, (_error(
        name, 1, 1, "the layout of this file does not settle after formatting; left unchanged "
                    "(a bug in taskc fmt: please report it with the file)"),))


class _FormatFailure(Exception):
    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


def _meaning(text: str, name: str) -> tuple[tuple[Diagnostic, ...], Any]:
    """The data the compiler reads from ``text``, or the errors that stop it from reading it."""
    bag = DiagnosticBag()
    doc = parse_task_text(text, name, bag)
    if bag.has_errors:
        return tuple(bag.sorted()), None
    return (), doc.data


def _one_pass(text: str, meaning: Any, name: str) -> str:
    formatted = _round_trip(text, name)
    if _meaning(formatted, name) != ((), meaning):
        raise _FormatFailure(_error(name, 1, 1, "formatting would change what this file means; left unchanged "
                                                "(a bug in taskc fmt: please report it with the file)"))
    for tidy in _TIDY_STEPS:
        candidate = tidy(formatted)
        # a tidy step works on lines and cannot see block scalars, whose spaces and blank lines are
        # content; a step that would change the data is skipped for this file
        if candidate != formatted and _meaning(candidate, name) == ((), meaning):
            formatted = candidate
    return formatted


def _round_trip(text: str, name: str) -> str:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.indent(mapping=MAPPING_INDENT, sequence=SEQUENCE_INDENT, offset=SEQUENCE_DASH_OFFSET)
    yaml.width = NEVER_WRAP
    try:
        data = yaml.load(text)
        out = io.StringIO()
        yaml.dump(data, out)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise _FormatFailure(_error(name, line, column, f"YAML error: {exc.problem or exc.context}")) from None
    except YAMLError as exc:
        raise _FormatFailure(_error(name, 1, 1, f"YAML error: {_first_line(exc)}")) from None
    except Exception as exc:  # ruamel.yaml raises plain exceptions for some inputs; never a traceback
        raise _FormatFailure(_error(name, 1, 1, f"cannot format: {type(exc).__name__}: {_first_line(exc)}")) \
            from None
    return out.getvalue()


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _strip_trailing_whitespace(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.split("\n"))


def _collapse_blank_lines(text: str) -> str:
    return re.sub(r"\n{3,}", "\n\n", text)


def _trim_file_ends(text: str) -> str:
    return text.strip("\n") + "\n" if text.strip() else text


_TIDY_STEPS: tuple[Callable[[str], str], ...] = (_strip_trailing_whitespace, _collapse_blank_lines, _trim_file_ends)


def _error(name: str, line: int, column: int, message: str) -> Diagnostic:
    bag = DiagnosticBag()
    bag.error(Span(name, line, column), "E001", message)
    return bag.items[0]


__all__ = ["FormatResult", "format_file", "format_text"]
