"""Support: the user's cache directory, for tables the compiler would otherwise rebuild in every process.

What is kept here is derived from taskc's own code and the Python it runs on (the expression grammar's
parse tables, the character classes `re` has in this Python's Unicode database), never from a task file,
so a stale or damaged entry can only cost the time to rebuild it: every reader checks what it reads and
rebuilds on any doubt. ``$XDG_CACHE_HOME/taskc`` or ``~/.cache/taskc``, private to the user;
``TASKC_NO_CACHE=1`` turns it off.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .paths import write_atomic


def cache_directory() -> Path | None:
    """The directory, made if need be; None where it cannot be (no home, read-only, not the user's own, or
    TASKC_NO_CACHE set): callers then build what they need in memory."""
    if os.environ.get("TASKC_NO_CACHE"):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    directory = Path(base) / "taskc"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        mine = not hasattr(os, "getuid") or directory.stat().st_uid == os.getuid()  # never read another's
    except OSError:
        return None
    if not mine or not directory.is_dir() or not os.access(directory, os.W_OK):
        return None
    return directory


def read_json(name: str, key: str) -> Any:
    """The value stored under ``name`` if it was stored with this ``key``; None otherwise (or unreadable)."""
    directory = cache_directory()
    if directory is None:
        return None
    try:
        stored = json.loads((directory / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("key") != key:
        return None
    return stored.get("value")


def write_json(name: str, key: str, value: Any) -> None:
    """Store ``value`` under ``name`` (atomically: a reader sees the old file or the new one); failures are
    ignored, the cache is only a shortcut."""
    directory = cache_directory()
    if directory is None:
        return
    try:
        write_atomic(directory / name, json.dumps({"key": key, "value": value}).encode("utf-8"))
    except OSError:
        pass
