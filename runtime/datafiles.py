"""The run's data files: reading the pool and the gold set (JSONL) before anything else runs; writing outputs.

Both files are written by people, so every problem is reported the way the
compiler reports a bad task file: ``file:line: message``, all problems of a file
at once (up to a limit), never a traceback. Each line is one JSON object with the
task's input fields (checked with the compiler's own `value_problem`, so a value
the compiler accepts in a worked example is accepted here too; a broken length
limit only warns, since real data is not bound by them) and, in a gold
file, a ``label`` naming one of the task's classes. Keys that are not fields are
ignored, so a pool may carry ids or sources. Lines end at a line feed only and
hold at most MAX_LINE_BYTES; a data file must be a regular file (never a device,
a FIFO or anything under /proc). Every file a run writes goes through
`write_text_atomic`, so an interrupted run never leaves half a file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from taskc.compiler import (
    InputField,
    TaskcError,
    TaskIR,
    counted,
    did_you_mean,
    open_regular_file,
    value_problem,
    write_atomic,
)

try:  # a JSON parser in C, ~3x the standard library's speed: `taskc predict` reads millions of lines
    from orjson import JSONDecodeError as _FastJSONError
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - orjson is a dependency; the standard library gives the same answers
    _fast_loads = None  # type: ignore[assignment]

MAX_REPORTED_PROBLEMS = 20
MAX_LINE_BYTES = 1 << 20  # one line of a pool or gold file: one JSON object, at most 1 MiB


class DataFileError(TaskcError):
    """A pool or gold file that cannot be used; the message lists each problem as file:line: text."""


@dataclass(frozen=True)
class DataFile:
    """The usable lines of a file, and warnings about lines kept despite breaking a length limit."""

    records: tuple[DataRecord, ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class DataRecord:
    """One line of a pool or gold file: the input values, the label (gold only) and where it came from."""

    values: dict[str, Any]
    label: str | None
    line: int


def read_pool(path: Path, task: TaskIR, display: str | None = None, limit: int | None = None) -> DataFile:
    """The pool's inputs (labels in the file, if any, are ignored: the pool is unlabeled by definition)."""
    return _read_records(path, task.fields, task.class_names, labeled=False, display=display or str(path),
                         limit=limit)


def read_gold(path: Path, task: TaskIR, display: str | None = None) -> DataFile:
    """The gold set: inputs plus a `label` that must name one of the task's classes."""
    return _read_records(path, task.fields, task.class_names, labeled=True, display=display or str(path))


def _read_records(path: Path, fields: Sequence[InputField], classes: Sequence[str], *, labeled: bool,
                  display: str, limit: int | None = None) -> DataFile:
    """The file's records, parsing no further than ``limit`` records (pool.limit on a huge pool).

    Lines end at a line feed only (a JSON string may hold U+2028 or U+0085 raw, where `str.splitlines`
    would cut it), are read one at a time, and each is at most MAX_LINE_BYTES: a longer one is a problem of its
    own line, skipped without being held in memory."""
    try:
        stream = open_regular_file(path)
    except OSError as exc:
        raise _unreadable(display, exc) from None
    records: list[DataRecord] = []
    problems: list[str] = []
    warnings: list[str] = []
    with stream:
        for number, raw in _bounded_lines(stream, display):
            if limit is not None and len(records) >= limit:
                break
            if raw is None:
                problems.append(f"{display}:{number}: line is longer than {MAX_LINE_BYTES:,} bytes (1 MiB), "
                                "the limit for one JSON object")
                continue
            if not raw.strip():
                continue  # blank lines (a trailing newline, a separator) carry nothing
            record, line_problems, line_warnings = _parse_line(raw, number, fields, classes, labeled)
            problems.extend(f"{display}:{number}:{problem}" for problem in line_problems)
            warnings.extend(f"{display}:{number}: {warning}" for warning in line_warnings)
            if record is not None:
                records.append(record)
    if problems:
        shown = problems[:MAX_REPORTED_PROBLEMS]
        more = len(problems) - len(shown)
        if more:
            shown.append(f"{display}: ... and {counted(more, 'more problem')}")
        raise DataFileError("\n".join(shown))
    if not records:
        raise DataFileError(f"{display}: no examples (expected one JSON object per line)")
    return DataFile(tuple(records), tuple(warnings))


def _bounded_lines(stream: BinaryIO, display: str) -> Iterator[tuple[int, str | None]]:
    """(line number, line without its terminator) for each line up to a line feed; None for a line over
    MAX_LINE_BYTES, whose rest is skipped in chunks. A line that is not UTF-8 raises DataFileError."""
    number = 0
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):
                raw = stream.readline(1 << 16)
            yield number, None
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataFileError(f"{display}:{number}: not UTF-8 text (byte {raw[exc.start]:#04x})") from None
        line = line.removesuffix("\n").removesuffix("\r")  # the terminator is not part of the JSON text
        yield number, line.removeprefix("\ufeff") if number == 1 else line


def _parse_line(raw: str, number: int, fields: Sequence[InputField], classes: Sequence[str],
                labeled: bool) -> tuple[DataRecord | None, list[str], list[str]]:
    """One line's record, its problems (each 'column: message' or ' message') and its warnings."""
    value, problem = _loads(raw)
    if problem is not None:
        return None, [problem], []
    return _check_object(value, number, fields, classes, labeled)


_BEYOND_64_BITS = float(1 << 63)  # orjson reads an integer beyond 64 bits as a float, where json keeps it exact
# json refuses an integer of more digits than int() takes, anywhere in the line; orjson reads it as a float
_LONGEST_FAST_LINE = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 4300


def _loads(raw: str) -> tuple[Any, str | None]:
    """`_loads_standard`'s answer as the readers see it, mostly from orjson (~3x faster: `taskc predict`
    reads millions of lines).

    A line is a JSON object, and a reader looks at its top-level values only. orjson answers an object
    line with the value json gives, except that it reads an integer beyond 64 bits as a float: a line with
    such a float among its top-level values is read again by json; deeper in a value it cannot matter (a
    number inside a list is wrong for every field type, whichever type it has). A line long enough to hold
    an integer json refuses is read by json, and so is every line orjson refuses or that is not an object
    (lone surrogates, NaN, overflowing numbers, bad syntax): json decides and words the problem. Tests hold
    both readings to each other."""
    if _fast_loads is not None and len(raw) <= _LONGEST_FAST_LINE:
        try:
            value = _fast_loads(raw)  # orjson refuses lone surrogates: no check needed
        except _FastJSONError:
            pass
        else:
            if type(value) is dict and (float not in map(type, value.values()) or not any(
                    type(v) is float and abs(v) >= _BEYOND_64_BITS for v in value.values())):
                return value, None
    return _loads_standard(raw)


def _loads_standard(raw: str) -> tuple[Any, str | None]:
    """The JSON value of one line, or a problem ('column: message' or ' message') instead of an exception:
    besides bad syntax, Python's json raises ValueError for an integer of more digits than int() takes
    (3.11+) and RecursionError for deep nesting, and accepts a lone surrogate escape ("\\ud800") that
    no UTF-8 writer can write out later. The definition of a line's value; `_loads` is its fast path."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        return None, f"{exc.colno}: invalid JSON: {exc.msg}"
    except ValueError:
        return None, f" invalid JSON: a number with more than {_max_digits()} digits"
    except RecursionError:
        return None, " invalid JSON: nested too deeply"
    if _may_hold_surrogate(raw) and _holds_lone_surrogate(value):  # the walk only for lines that may
        return None, " invalid JSON: a string holds a lone surrogate escape (such as \\ud800), which is not text"
    return value, None


def _max_digits() -> int:
    return sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 4300


_SURROGATE = re.compile(r"[\ud800-\udfff]")
# a surrogate reaches a decoded value only through a \uD8xx..\uDFxx escape (or raw, from text not read as UTF-8)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _may_hold_surrogate(raw: str) -> bool:
    """Cheap first look (two C-level scans, a regex only when they find something)."""
    return bool(("\\u" in raw and _SURROGATE_ESCAPE.search(raw)) or (not raw.isascii() and _SURROGATE.search(raw)))


def _holds_lone_surrogate(value: Any) -> bool:
    """Whether a string (or a key) anywhere in ``value`` holds a surrogate code point: json decodes a valid
    pair into one character, so any left is a lone half. Iterative: the value may nest deeply."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _check_object(value: Any, number: int, fields: Sequence[InputField], classes: Sequence[str],
                  labeled: bool) -> tuple[DataRecord | None, list[str], list[str]]:
    if not isinstance(value, dict):
        return None, [f" expected a JSON object with fields {', '.join(f.name for f in fields)}, "
                      f"got {_json_kind(value)}"], []
    problems: list[str] = []
    warnings: list[str] = []
    values: dict[str, Any] = {}
    for field in fields:
        if field.name not in value or value[field.name] is None:
            if not field.optional:
                problems.append(f" missing field '{field.name}'{_did_you_mean(field.name, value)}")
            continue
        # a wrong type makes the line unusable; a length limit broken by real data (a recipe with 30
        # ingredients) must not throw away a whole gold set, so it is kept and reported
        field_value = value[field.name]
        length_problem = value_problem(field, field_value)
        if length_problem:  # a wrong type, or only a length limit broken?
            problem = value_problem(_without_length_limits(field), field_value)
            if problem:
                problems.append(f" {problem}")
                continue
            warnings.append(f"{length_problem} (kept)")
        values[field.name] = field_value
    label: str | None = None
    if labeled:
        raw_label = value.get("label")
        if raw_label is None:
            problems.append(f" missing 'label' (one of {', '.join(classes)})")
        elif not isinstance(raw_label, str):
            problems.append(f" label must be a string (one of {', '.join(classes)}), got {_json_kind(raw_label)}")
        elif raw_label not in classes:
            close = did_you_mean(raw_label, classes)
            hint = f"; {close}" if close else ""
            problems.append(f" label {json.dumps(raw_label)} is not a class of the task "
                            f"({', '.join(classes)}){hint}")
        else:
            label = raw_label
    if problems:
        return None, problems, warnings
    return DataRecord(values=values, label=label, line=number), [], warnings


def check_labelled_object(value: Any, number: int, task: TaskIR) -> tuple[DataRecord | None, list[str]]:
    """One parsed line of a labelled file (a gold set, the expert's answers): its record or its problems."""
    record, problems, _ = _check_object(value, number, task.fields, task.class_names, labeled=True)
    return record, problems


def _unreadable(display: str, exc: OSError) -> DataFileError:
    if isinstance(exc, FileNotFoundError):
        return DataFileError(f"{display}: file not found")
    if isinstance(exc, IsADirectoryError):
        return DataFileError(f"{display}: is a directory, not a JSONL file")
    return DataFileError(f"{display}: cannot read: {exc.strerror or exc}")


@contextlib.contextmanager
def input_lines(name: str) -> Iterator[Iterator[str]]:
    """The lines of an input file read as a stream (``-``: standard input), UTF-8 (a BOM is allowed).

    For `taskc predict`: nothing is read ahead, so a file of any size costs one line of memory. A file
    that cannot be opened, or a line that is not UTF-8 or longer than MAX_LINE_BYTES, raises
    DataFileError naming file and line (each line is decoded on its own, so the line number is exact)."""
    display = "<stdin>" if name == "-" else name
    if name == "-":
        stream: BinaryIO = sys.stdin.buffer
    else:
        try:
            stream = open(name, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise _unreadable(display, exc) from None
    try:
        yield _decoded(stream, display)
    finally:
        if name != "-":
            stream.close()


def _decoded(stream: BinaryIO, display: str) -> Iterator[str]:
    for number, line in _bounded_lines(stream, display):
        if line is None:  # a stream cannot be skipped past safely: stop, as for a line that is not UTF-8
            raise DataFileError(f"{display}:{number}: line is longer than {MAX_LINE_BYTES:,} bytes (1 MiB), "
                                "the limit for one JSON object")
        yield line


def parse_input_line(raw: str, number: int, task: TaskIR) -> tuple[dict[str, Any] | None, list[str], Any]:
    """One line of an unlabelled input file (`taskc predict`): its field values or its problems (each
    ':column: message' or ' message', to follow ``file:line``), and the line's own "id" (a string or
    a whole number, else None) so answers can be joined back. Other keys are ignored."""
    value, problem = _loads(raw)
    if problem is not None:
        return None, [problem], None
    values = _plain_values(value, task.fields)  # the usual line, checked without building messages
    if values is not None:
        problems: list[str] = []
    else:
        record, problems, _ = _check_object(value, number, task.fields, (), labeled=False)
        values = record.values if record is not None else None
    given_id = value.get("id") if isinstance(value, dict) else None
    if isinstance(given_id, bool) or not isinstance(given_id, str | int):
        given_id = None
    return values, problems, given_id


_is_string = str.__instancecheck__


def _plain_check(field: InputField) -> Callable[[Any], bool] | None:
    """A predicate true exactly when `value_problem(field, value)` is None, for a text field (None for
    other types: they take the general check). A test holds the two to each other."""
    low = field.min_length if field.min_length is not None else 0
    high = field.max_length if field.max_length is not None else sys.maxsize
    if field.type == "string":
        return lambda value: type(value) is str and low <= len(value) <= high
    if field.type == "enum":
        allowed = frozenset(field.values)
        return lambda value: type(value) is str and value in allowed and low <= len(value) <= high
    if field.type == "list[string]":
        return lambda value: type(value) is list and low <= len(value) <= high and all(map(_is_string, value))
    return None


_PLAIN_CHECKS: dict[int, tuple[Sequence[InputField], tuple[tuple[str, bool, Callable[[Any], bool]], ...]]] = {}


def _plain_checks(fields: Sequence[InputField]) -> tuple[tuple[str, bool, Callable[[Any], bool]], ...]:
    known = _PLAIN_CHECKS.get(id(fields))
    if known is None or known[0] is not fields:
        checks = []
        for field in fields:
            check = _plain_check(field)
            if check is None:
                def check(value: Any, field: InputField = field) -> bool:
                    return value_problem(field, value) is None
            checks.append((field.name, field.optional, check))
        known = _PLAIN_CHECKS[id(fields)] = (fields, tuple(checks))
    return known[1]


def _plain_values(value: Any, fields: Sequence[InputField]) -> dict[str, Any] | None:
    """The field values of a line that `_check_object` would accept without a problem or a warning, or
    None for any other line (which `_check_object` then words)."""
    if type(value) is not dict:
        return None
    values: dict[str, Any] = {}
    for name, optional, check in _plain_checks(fields):
        field_value = value.get(name)
        if field_value is None:
            if not optional:
                return None
        elif check(field_value):
            values[name] = field_value
        else:
            return None
    return values


_UNBOUNDED: dict[int, tuple[InputField, InputField]] = {}


def _without_length_limits(field: InputField) -> InputField:
    """The field with its length limits lifted, made once per field object (hashing an InputField per
    line cost more than checking the value: `taskc predict` reads millions of lines)."""
    known = _UNBOUNDED.get(id(field))
    if known is None or known[0] is not field:
        known = _UNBOUNDED[id(field)] = (field, dataclasses.replace(field, min_length=None, max_length=None))
    return known[1]


def _did_you_mean(name: str, value: dict[str, Any]) -> str:
    close = difflib.get_close_matches(name, [str(k) for k in value], n=1)
    return f" (found '{close[0]}'; did you mean '{name}'?)" if close else ""


def _json_kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number",
            type(None): "null"}.get(type(value), type(value).__name__)


def write_text_atomic(path: Path, text: str) -> None:
    """Write a text file atomically (see `taskc.compiler.paths.write_atomic`)."""
    write_atomic(path, text.encode("utf-8"))


__all__ = ["DataFile", "DataFileError", "DataRecord", "check_labelled_object", "input_lines", "parse_input_line",
           "read_gold", "read_pool", "write_text_atomic"]
