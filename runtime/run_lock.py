"""Runtime stage guard: one `taskc run` at a time in a run directory, and no links where the run writes.

Before the pipeline starts, `taskc run` checks that the run directory is a real
directory (not a symbolic link, and, for a relative path, under no linked
directory) holding no links (the cache, the model and every output are written
inside it, and a planted link would carry those writes elsewhere), then takes
an exclusive, non-blocking `flock` on ``RUN_DIR/.lock``. A second run on the
same directory would pay most calls twice; it is refused, naming the process
that holds the lock. The kernel releases the lock when its holder exits, even
on SIGKILL, so a lock file left by a killed run never blocks: the PID and start
time written into it are only there to be shown.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from taskc.compiler import ExitStatus, TaskcError, first_link_inside

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not serialised there
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"


class RunDirError(TaskcError):
    """The run directory cannot be used; ``usage`` tells a usage error (exit 2) from a runtime one (exit 4)."""

    def __init__(self, message: str, usage: bool = True) -> None:
        super().__init__(message)
        self.usage = usage
        self.exit_status = ExitStatus.USAGE if usage else ExitStatus.RUNTIME_FAILURE


def check_run_dir(run_dir: Path) -> None:
    """Raise RunDirError when ``run_dir`` is, lies under (relative path) or holds a symbolic link."""
    parts = run_dir.parts
    prefixes = [Path(*parts[:i]) for i in range(1, len(parts) + 1)] if not run_dir.is_absolute() else [run_dir]
    for prefix in prefixes:
        if prefix.is_symlink():
            what = "RUN_DIR is a symbolic link" if prefix == run_dir else f"{prefix} (in RUN_DIR) is a symbolic link"
            raise RunDirError(f"{what}: {run_dir}; taskc writes only into a real directory (remove the link, or "
                              "choose another directory with -o)")
    link = first_link_inside(run_dir) if run_dir.is_dir() else None
    if link is not None:
        raise RunDirError(f"RUN_DIR contains a symbolic link: {link}; taskc does not write through links "
                          "(remove it, or choose another directory with -o)")


@contextlib.contextmanager
def run_dir_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's lock for the block; RunDirError if another process holds it."""
    lock_path = run_dir / LOCK_FILE
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
                             | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as exc:
        raise RunDirError(_cannot_lock(lock_path, exc), usage=exc.errno == errno.ELOOP) from None
    try:
        if fcntl is not None:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunDirError(f"RUN_DIR {run_dir} is in use by another taskc run ({_holder(descriptor)}); "
                                  "wait for it to finish, or choose another directory with -o") from None
        os.ftruncate(descriptor, 0)
        record = {"pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.write(descriptor, (json.dumps(record) + "\n").encode("utf-8"))
        yield
    finally:
        os.close(descriptor)  # releases the flock; the file stays (unlinking it would let two runs lock)


def _holder(descriptor: int) -> str:
    """Who holds the lock, from what it wrote into the file (informative only)."""
    try:
        record = json.loads(os.pread(descriptor, 512, 0).decode("utf-8"))
        return f"process {int(record['pid'])}, started {str(record['started'])[:40]}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not written its PID yet"


def _cannot_lock(lock_path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return f"RUN_DIR contains a symbolic link: {lock_path}; taskc does not write through links"
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"cannot write {exc.filename or lock_path}: {reason}; the run directory is read-only: make it "
                "writable or choose another directory with -o")
    return f"cannot write {exc.filename or lock_path}: {reason}"


__all__ = ["LOCK_FILE", "RunDirError", "check_run_dir", "run_dir_lock"]
