"""Beside the pipeline: `taskc fmt` gives a task file its canonical layout without touching its meaning.

The file is first read by the compiler's own loader (stage 1), so a file the
compiler would reject for its YAML gets the same diagnostics here. It is then
round-tripped through ruamel.yaml, which keeps comments, key order, quoting
and block-scalar styles, while re-indenting to one layout (mappings by two
spaces, sequence dashes two spaces under their key); trailing whitespace and
runs of blank lines are tidied. Lines are never re-wrapped (review diffs
should show meaning, not reflowed text): a flow collection the author spread
over several lines (`[a, b,` newline `c]`) is kept as written, only moved with
its key, because ruamel.yaml would join it into one line; comments after a
document end (`...`) are kept too. Every result is loaded again with the
compiler's loader and must give exactly the same data as the original, and
keep every comment of the original, or the file is left alone with an error:
formatting can never change what compiles, nor lose what the author wrote.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

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
    body, tail = _split_document_end(text)
    held, kept = _hold_multiline_nodes(body)
    formatted = _release_held_nodes(_round_trip(held, name), kept) + tail
    if _meaning(formatted, name) != ((), meaning):
        raise _FormatFailure(_error(name, 1, 1, "formatting would change what this file means; left unchanged "
                                                "(a bug in taskc fmt: please report it with the file)"))
    for tidy in _TIDY_STEPS:
        candidate = tidy(formatted)
        # a tidy step works on lines and cannot see block scalars, whose spaces and blank lines are
        # content; a step that would change the data is skipped for this file
        if candidate != formatted and _meaning(candidate, name) == ((), meaning):
            formatted = candidate
    lost = _lost_comments(text, formatted)
    if lost:
        line, comment = lost[0]
        more = f" (and {len(lost) - 1} more)" if len(lost) > 1 else ""
        raise _FormatFailure(_error(name, line, 1, f"formatting would lose the comment {comment!r}{more}; left "
                                                   "unchanged (a bug in taskc fmt: please report it with the file)"))
    return formatted


_DOCUMENT_END = re.compile(r"^\.\.\.[ \t]*(#.*)?$", re.M)


def _split_document_end(text: str) -> tuple[str, str]:
    """The document, and what follows its end marker `...` when that is only comments and blank lines
    (ruamel.yaml drops it): kept as it is, after the formatted document."""
    for marker in _DOCUMENT_END.finditer(text):
        rest = text[marker.end():]
        if all(not line.strip() or line.lstrip().startswith("#") for line in rest.split("\n")):
            tail = "\n".join(line.rstrip() for line in text[marker.start():].rstrip().split("\n"))
            return text[:marker.start()], tail + "\n"
    return text, ""


def _hold_multiline_nodes(text: str) -> tuple[str, dict[str, str]]:
    """Each outermost flow collection, and each plain or quoted scalar outside one, that spans several
    lines, replaced by a placeholder scalar (and the text it stands for): ruamel.yaml would join its lines
    into one. Block scalars (| and >) it keeps as they are."""
    spans: list[tuple[int, int]] = []
    stack: list[bool] = []  # per open collection: is it a flow one
    start: Any = None  # the mark where the open outermost flow collection began
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            begins, ends = _marks(event)
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                if event.flow_style and not any(stack):
                    start = begins
                stack.append(bool(event.flow_style))
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)) and stack:
                if stack.pop() and not any(stack) and ends.line > start.line:
                    spans.append((start.index, ends.index))
            elif (isinstance(event, yaml.ScalarEvent) and event.style in (None, "'", '"') and not any(stack)
                  and ends.line > begins.line):
                spans.append((begins.index, ends.index))
    except yaml.YAMLError:
        return text, {}  # the round trip reports it
    # one with an anchor or a tag stays with ruamel.yaml (an alias elsewhere must still find its anchor)
    spans = [(begin, end) for begin, end in spans if text[begin] not in "&!"]
    kept: dict[str, str] = {}
    for number, (begin, end) in enumerate(reversed(spans)):
        placeholder = f"taskc-fmt-held-{number}-end"  # no placeholder is the start of another
        if placeholder in text:
            return text, {}
        line_start = text.rfind("\n", 0, begin) + 1
        kept[placeholder] = text[line_start:begin] + "\0" + text[begin:end]  # its line's start: to re-indent it
        text = text[:begin] + placeholder + text[end:]
    return text, kept


def _marks(event: Any) -> tuple[Any, Any]:
    """Where a parser event begins and ends (the parser always sets both)."""
    return event.start_mark, event.end_mark


def _release_held_nodes(text: str, kept: dict[str, str]) -> str:
    """Put each held text back where its placeholder now is, its continuation lines moved by
    as many columns as its first line moved."""
    for placeholder, held in kept.items():
        before, _, block = held.partition("\0")
        at = text.find(placeholder)
        if at < 0:
            continue  # the meaning check reports the difference
        line_start = text.rfind("\n", 0, at) + 1
        shift = _indent(text[line_start:at]) - _indent(before)
        first, *rest = block.split("\n")
        moved = [first] + [_moved(line, shift) for line in rest]
        text = text[:at] + "\n".join(moved) + text[at + len(placeholder):]
    return text


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _moved(line: str, shift: int) -> str:
    if shift >= 0 or not line.strip():
        return " " * shift + line if line.strip() else line
    return line[min(-shift, _indent(line)):]


def _comments(text: str) -> dict[str, list[int]]:
    """Every comment of a YAML text, by its text, with the lines it is on: found between the text's tokens,
    so never inside a scalar."""
    found: dict[str, list[int]] = {}
    try:
        tokens = list(yaml.scan(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError:
        return found
    ends = [0] + [t.end_mark.index for t in tokens]
    starts = [t.start_mark.index for t in tokens] + [len(text)]
    for gap_start, gap_end in zip(ends, starts, strict=True):
        for match in re.finditer(r"#[^\n]*", text[gap_start:max(gap_start, gap_end)]):
            line = text.count("\n", 0, gap_start + match.start()) + 1
            found.setdefault(match.group().rstrip(), []).append(line)
    return found


def _lost_comments(original: str, formatted: str) -> list[tuple[int, str]]:
    """(line, text) of each comment of ``original`` that ``formatted`` does not have as many times."""
    after = _comments(formatted)
    return sorted((lines[len(after.get(comment, [])):][0], comment) for comment, lines in _comments(original).items()
                  if len(after.get(comment, [])) < len(lines))


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
