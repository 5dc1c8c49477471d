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
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..compiler import ExitStatus, TaskcError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS embeddings (
    key TEXT PRIMARY KEY,
    vector BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS journal (
    name TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    updated REAL NOT NULL
);
"""


_SQLITE_FULL, _SQLITE_READONLY = 13, 8  # SQLite's result codes (sqlite3 names them from Python 3.11 on)


class CacheError(TaskcError):
    """The cache database cannot be read or written (damaged, locked by another run, or unwritable)."""

    exit_status = ExitStatus.RUNTIME_FAILURE


@contextmanager
def _database(path: Path) -> Iterator[None]:
    """Turn SQLite's errors into one clear message that names the file and the way out."""
    try:
        yield
    except sqlite3.Error as exc:
        # Python 3.11+ gives the extended code (SQLITE_READONLY_DIRECTORY is 1544): its low byte is the
        # primary code; the message tells on 3.10. A read-only directory without a cache file yet gives
        # no READONLY at all but SQLITE_CANTOPEN ("unable to open database file"): ask the file system.
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        if primary == _SQLITE_FULL or "disk is full" in str(exc):
            raise CacheError(f"cannot write {path}: the disk is full ({exc}); free some space and run the same "
                             "command again (the answers cached so far are kept)") from None
        cannot_open = primary == 14 or "unable to open" in str(exc)  # 14: SQLITE_CANTOPEN
        unwritable = (path.exists() and not os.access(path, os.W_OK)) or (
            path.parent.is_dir() and not os.access(path.parent, os.W_OK))  # the file, or its -wal and -shm
        if primary == _SQLITE_READONLY or "readonly" in str(exc) or (cannot_open and unwritable):
            raise CacheError(f"cannot write {path}: it or its directory is read-only ({exc}); make the run "
                             "directory writable or choose another one with -o") from None
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
        self._checkpointer = _Checkpointer(self.path)

    # -- responses

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock, _database(self.path):
            row = self._db.execute("SELECT record FROM responses WHERE key = ?", (key,)).fetchone()
            return None if row is None else json.loads(row[0])  # inside: a damaged record is a CacheError

    def put(self, key: str, record: dict[str, Any]) -> None:
        text = json.dumps(record, sort_keys=True, ensure_ascii=False)
        with self._lock, _database(self.path):
            self._db.execute("INSERT OR REPLACE INTO responses (key, record, created) VALUES (?, ?, ?)",
                             (key, text, time.time()))
            self._checkpointer.wrote()

    def __contains__(self, key: object) -> bool:
        with self._lock, _database(self.path):
            return self._db.execute("SELECT 1 FROM responses WHERE key = ?", (key,)).fetchone() is not None

    # -- embeddings (key: a hash of model and text; vector: float32 bytes)

    def vectors(self, keys: list[str]) -> dict[str, bytes]:
        """The cached vectors among ``keys``."""
        found: dict[str, bytes] = {}
        with self._lock, _database(self.path):
            for start in range(0, len(keys), 500):  # SQLite's limit on bound parameters
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for key, vector in self._db.execute(
                        f"SELECT key, vector FROM embeddings WHERE key IN ({marks})", chunk):
                    found[key] = bytes(vector)
        return found

    def put_vectors(self, items: list[tuple[str, bytes]]) -> None:
        """Store one request's vectors in one transaction: a killed run keeps every batch it finished."""
        now = time.time()
        with self._lock, _database(self.path):
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR REPLACE INTO embeddings (key, vector, created) VALUES (?, ?, ?)",
                                     [(key, vector, now) for key, vector in items])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._checkpointer.wrote()

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
            self._checkpointer.wrote()

    def journal_names(self, prefix: str = "") -> list[str]:
        with self._lock, _database(self.path):
            rows = self._db.execute("SELECT name FROM journal ORDER BY name").fetchall()
        return [row[0] for row in rows if row[0].startswith(prefix)]

    def close(self) -> None:
        self._checkpointer.stop()
        with self._lock, _database(self.path):
            self._db.close()  # the last connection to close checkpoints what is left

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Checkpointer:
    """Copies the write-ahead log into the database from a thread of its own, with its own connection.

    SQLite checkpoints (copies the log into the database, with an fsync of each) inside whichever
    commit takes the log past 1000 pages: at a few hundred answers a second that stalls the event
    loop, and every call in flight, for 15-20 ms every few hundred answers. This thread runs a
    passive checkpoint every hundred writes or so; SQLite releases the interpreter lock meanwhile,
    so the copying and most of the syncing overlap the calls, and the checkpoint SQLite still makes
    in a commit finds little left to copy (measured: the worst commit of 2,000 falls from ~18 ms to
    ~4 ms, and the log stays under 5 MiB). A failed checkpoint is simply left to the next one.
    """

    _WRITES_PER_CHECKPOINT = 100
    _INTERVAL = 1.0

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writes = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def wrote(self) -> None:
        self._writes += 1
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="taskc-cache-checkpoint", daemon=True)
            self._thread.start()
        elif self._writes % self._WRITES_PER_CHECKPOINT == 0:
            self._wake.set()

    def stop(self) -> None:
        if self._thread is not None:
            self._stopping = True
            self._wake.set()
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        try:
            db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
        except sqlite3.Error:
            return  # the cache's own connection reports what is wrong with the file
        try:
            checkpointed = 0
            while not self._stopping:
                self._wake.wait(self._INTERVAL)
                self._wake.clear()
                if self._stopping or self._writes == checkpointed:
                    continue
                checkpointed = self._writes
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    pass  # e.g. a full disk: the log keeps the answers, the writer reports the error
        finally:
            db.close()
