"""Defaults for command-line options from the project: `taskc.toml` or the `[tool.taskc]` table of pyproject.toml.

The file is found from the working directory upwards (the first directory that has one; a directory holding
`.git` is the last one looked at, so a repository's defaults never leak into another). An option given on
the command line always wins; a default applies only to the commands that have that option. Paths in the
file are relative to the file. Unknown keys and wrong types are usage errors with the file's line (exit 2).

    [tool.taskc]              # or the same keys at the top of taskc.toml
    prices = "prices.json"    # --prices of compile and diff
    concurrency = 16          # --concurrency of run; also rpm, tpm, max-cost, max-calls, base-url,
                              # request-timeout
    output = "build/runs"     # where `taskc run` puts run directories: OUTPUT/<task name> (default runs/)
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from .output import UsageError

CONFIG_FILE = "taskc.toml"
PYPROJECT = "pyproject.toml"


def _whole(minimum: int) -> Callable[[object], object]:
    def check(value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"expected a whole number of at least {minimum}")
        return value
    return check


def _positive_number(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError("expected a number more than 0")
    return float(value)


def _text(value: object) -> object:
    if not isinstance(value, str) or not value:
        raise ValueError("expected a non-empty string")
    return value


@dataclass(frozen=True)
class _Key:
    dest: str  # the argparse destination the key sets
    check: Callable[[object], object]
    path: bool = False  # relative to the config file


# key -> what it sets; the option of the same name says what it means (`taskc run --help`)
KEYS: dict[str, _Key] = {
    "prices": _Key("prices", _text, path=True),
    "concurrency": _Key("concurrency", _whole(1)),
    "rpm": _Key("rpm", _whole(1)),
    "tpm": _Key("tpm", _whole(1)),
    "max-cost": _Key("max_cost", _positive_number),
    "max-calls": _Key("max_calls", _whole(1)),
    "request-timeout": _Key("request_timeout", _positive_number),
    "base-url": _Key("base_url", _text),
    "output": _Key("runs_root", _text, path=True),
}
RUN_ROOT_COMMANDS = ("run",)  # the only command `output` applies to (compile's -o is a build directory)


@dataclass(frozen=True)
class Defaults:
    """The defaults of one config file; `source` is None when no file was found."""

    source: Path | None = None
    table: str = ""  # "[tool.taskc]" or "" for taskc.toml
    values: dict[str, Any] = field(default_factory=dict)  # argparse dest -> value

    def describe(self) -> str:
        if self.source is None:
            return "no taskc.toml or [tool.taskc] found; built-in defaults"
        where = f"{self.source} {self.table}".strip()
        settings = ", ".join(f"{key}={value}" for key, value in sorted(self.values.items())) or "nothing set"
        return f"defaults from {where}: {settings}"


def find_config(start: Path) -> tuple[Path, str] | None:
    """The config file that applies in `start`: (path, table), or None."""
    for directory in (start, *start.parents):
        own = directory / CONFIG_FILE
        if own.is_file():
            return own, ""
        pyproject = directory / PYPROJECT
        if pyproject.is_file() and re.search(r"^\s*\[\s*tool\s*\.\s*taskc\s*\]", _read(pyproject), flags=re.M):
            return pyproject, "[tool.taskc]"
        if (directory / ".git").exists():
            return None
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the taskc defaults: {getattr(exc, 'strerror', None) or exc}") from None


def _line_of(text: str, key: str, table: str) -> int:
    """The line that sets `key` (in `table`, when it is pyproject.toml): a TOML parser keeps no positions."""
    lines = text.splitlines()
    start = 0
    if table:
        start = next((i + 1 for i, line in enumerate(lines) if re.match(r"\s*\[\s*tool\s*\.\s*taskc\s*\]", line)), 0)
    pattern = re.compile(rf"""\s*["']?{re.escape(key)}["']?\s*=""")
    for number in range(start, len(lines)):
        if pattern.match(lines[number]):
            return number + 1
    return start or 1


def load_defaults(start: Path) -> Defaults:
    found = find_config(start)
    if found is None:
        return Defaults()
    path, table = found
    text = _read(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = re.search(r"at line (\d+), column (\d+)", str(exc))
        ending = (str(len(text.splitlines()) + (not text or text.endswith("\n"))), "1")  # "at end of document"
        line, column = (where.group(1), where.group(2)) if where else ending
        reason = re.sub(r"\s*\((at line \d+, column \d+|at end of document)\)", "", str(exc))
        raise UsageError(f"{path}:{line}:{column}: not valid TOML: {reason}") from None
    section = data.get("tool", {}).get("taskc", {}) if table else data
    if not isinstance(section, dict):
        raise UsageError(f"{path}:{_line_of(text, 'taskc', '')}:1: [tool.taskc] must be a table")
    values: dict[str, Any] = {}
    for key, raw in section.items():
        spec = KEYS.get(key)
        line = _line_of(text, key, table)
        if spec is None:
            guess = difflib.get_close_matches(key.replace("_", "-"), list(KEYS), n=1)
            hint = f"; did you mean '{guess[0]}'?" if guess else f" (known keys: {', '.join(KEYS)})"
            raise UsageError(f"{path}:{line}:1: unknown key '{key}' in the taskc defaults{hint}")
        try:
            value = spec.check(raw)
        except ValueError as exc:
            raise UsageError(f"{path}:{line}:1: {key}: {exc}, got {raw!r}") from None
        if spec.path:
            value = str(path.parent / str(value))
        values[spec.dest] = value
    return Defaults(path, table, values)


def applies_to(args: argparse.Namespace) -> bool:
    """Whether the command has an option that a defaults file can set (so the file is worth reading)."""
    return args.command in RUN_ROOT_COMMANDS or any(hasattr(args, key.dest) for key in KEYS.values())


def apply_defaults(args: argparse.Namespace, defaults: Defaults) -> argparse.Namespace:
    """Fill the options the command has and the command line left unset."""
    for dest, value in defaults.values.items():
        if dest == "runs_root":
            if args.command in RUN_ROOT_COMMANDS:
                args.runs_root = value
        elif hasattr(args, dest) and getattr(args, dest) is None:
            setattr(args, dest, value)
    return args
