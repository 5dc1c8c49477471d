"""Runtime stage: the on-disk response cache and run journal.

Every successful, schema-valid LLM answer is stored here under the plan's cache
key (a hash of everything that affects the call), so a call is never paid for
twice: a rerun, a resumed run and the Batch API path all read through it. The
same SQLite file holds a small journal (named JSON records such as submitted
batch ids) that lets long-running remote work resume. SQLite in WAL mode with
one transaction per write makes every write atomic; a process killed at any
point leaves either the old or the new record, never a torn one (a power
loss may lose the last answers, which are then simply asked again).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..compiler.diagnostics import TaskcError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS journal (
    name TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    updated REAL NOT NULL
);
"""


class CacheError(TaskcError):
    """The cache database cannot be read or written (damaged, locked by another run, or unwritable)."""


@contextmanager
def _database(path: Path) -> Iterator[None]:
    """Turn SQLite's errors into one clear message that names the file and the way out."""
    try:
        yield
    except sqlite3.Error as exc:
        raise CacheError(f"{path} is damaged or locked: {exc}; delete it to start over "
                         "(answers will be asked again)") from None
    except ValueError as exc:  # a record that is not JSON: the file was changed by something else
        raise CacheError(f"{path} is damaged: {exc}; delete it to start over "
                         "(answers will be asked again)") from None


class ResponseCache:
    """Content-addressed store of LLM responses (key -> JSON record) plus a named journal."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by the event loop and batch/fine-tune helpers; the lock
        # serialises use because sqlite3 connections are not safe for concurrent use.
        self._lock = threading.Lock()
        with _database(self.path):
            self._db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None,
                                       check_same_thread=False)
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                # NORMAL in WAL mode: a committed write survives a killed process (the risk we design for)
                # without an fsync per answer, which would cap the run at the disk's sync rate.
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(_SCHEMA)
            except sqlite3.Error:
                self._db.close()
                raise

    # -- responses

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock, _database(self.path):
            row = self._db.execute("SELECT record FROM responses WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, record: dict[str, Any]) -> None:
        text = json.dumps(record, sort_keys=True, ensure_ascii=False)
        with self._lock, _database(self.path):
            self._db.execute("INSERT OR REPLACE INTO responses (key, record, created) VALUES (?, ?, ?)",
                             (key, text, time.time()))

    def __contains__(self, key: object) -> bool:
        with self._lock, _database(self.path):
            return self._db.execute("SELECT 1 FROM responses WHERE key = ?", (key,)).fetchone() is not None

    def keys(self) -> set[str]:
        with self._lock, _database(self.path):
            return {row[0] for row in self._db.execute("SELECT key FROM responses")}

    def __len__(self) -> int:
        with self._lock, _database(self.path):
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    # -- journal

    def journal_get(self, name: str) -> Any:
        with self._lock, _database(self.path):
            row = self._db.execute("SELECT record FROM journal WHERE name = ?", (name,)).fetchone()
        return None if row is None else json.loads(row[0])

    def journal_put(self, name: str, record: Any) -> None:
        text = json.dumps(record, sort_keys=True, ensure_ascii=False)
        with self._lock, _database(self.path):
            self._db.execute("INSERT OR REPLACE INTO journal (name, record, updated) VALUES (?, ?, ?)",
                             (name, text, time.time()))

    def journal_names(self, prefix: str = "") -> list[str]:
        with self._lock, _database(self.path):
            rows = self._db.execute("SELECT name FROM journal ORDER BY name").fetchall()
        return [row[0] for row in rows if row[0].startswith(prefix)]

    def close(self) -> None:
        with self._lock, _database(self.path):
            self._db.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
