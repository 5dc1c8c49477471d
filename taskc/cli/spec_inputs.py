"""Which task files a command's SPEC arguments name: files, directories (searched recursively), globs and `-`.

`taskc check .` checks every `*.task.yaml` / `*.task.yml` below the directory; a quoted glob
(`'examples/**/*.task.yaml'`, for shells or CI steps that do not expand it) is expanded here; `-` is the
standard input. A directory or glob that names no task file is a usage error, not a silent "checked 0 files";
a plain path that does not exist is passed on, so the compiler reports it with its diagnostic (E001).
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from .output import UsageError

TASK_FILE_SUFFIXES = (".task.yaml", ".task.yml")
STDIN = "-"
_SKIPPED_DIRECTORIES = {"node_modules", "__pycache__", "site-packages"}  # besides hidden ones (.git, .venv)


@dataclass(frozen=True)
class SpecInput:
    """One task file to compile: its path (where the files it names are found) and, for `-`, its text."""

    path: str
    text: str | None = None


def is_task_file(name: str) -> bool:
    return name.endswith(TASK_FILE_SUFFIXES)


def _has_magic(text: str) -> bool:
    return any(char in text for char in "*?[")


def task_files_under(directory: Path) -> list[str]:
    """Every task file below `directory`, sorted; hidden directories and virtual environments are skipped,
    and symbolic links to directories are not followed."""
    found: list[str] = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRECTORIES
                         and not (Path(root) / d / "pyvenv.cfg").exists())
        found.extend(os.path.join(root, name) for name in sorted(files) if is_task_file(name))
    return found


def expand_specs(arguments: list[str], stdin_text: str | None = None, stdin_name: str | None = None
                 ) -> list[SpecInput]:
    """The task files the arguments name, in order, each once. `stdin_text` is what `-` reads."""
    inputs: list[SpecInput] = []
    seen: set[str] = set()

    def add(path: str, text: str | None = None) -> None:
        key = os.path.normpath(path) if text is None else STDIN
        if key not in seen:
            seen.add(key)
            inputs.append(SpecInput(path, text))

    for argument in arguments:
        if argument == STDIN:
            if STDIN in seen:
                raise UsageError("'-' (standard input) can be named only once")
            add(stdin_name or "<stdin>", stdin_text if stdin_text is not None else "")
            continue
        path = Path(argument)
        if path.is_dir():
            found = task_files_under(path)
            if not found:
                raise UsageError(f"no task files (*.task.yaml, *.task.yml) under {argument}")
        elif _has_magic(argument) and not path.exists():
            found = sorted(glob.glob(argument, recursive=True))
            found = [f for f in found if Path(f).is_file()]
            if not found:
                raise UsageError(f"no file matches {argument}")
        else:
            found = [argument]
        for file in found:
            add(file)
    return inputs
