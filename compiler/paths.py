"""The file-system boundary: resolving the files a task file names, and writing outputs atomically.

Every such path is relative to the task file's directory (the project) and must
stay inside it: absolute paths, ``..`` escapes and symlinks pointing out are
refused unless the user allows it explicitly, because task files arrive in pull
requests from people whose files CI should not read.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath


class PathOutsideProject(ValueError):
    pass


def resolve_project_path(project_dir: Path, relative: str, allow_outside: bool = False) -> Path:
    """The absolute path of ``relative``; raise PathOutsideProject when it leaves the project."""
    if "\0" in relative:
        raise PathOutsideProject("path contains a NUL byte")
    candidate = Path(relative)
    if candidate.is_absolute() and not allow_outside:
        raise PathOutsideProject(f"'{relative}' is absolute; paths are relative to the task file")
    if ".." in PurePosixPath(relative.replace("\\", "/")).parts and not allow_outside:
        raise PathOutsideProject(f"'{relative}' leaves the task file's directory")
    target = (project_dir / candidate).resolve()
    root = project_dir.resolve()
    if not allow_outside and target != root and root not in target.parents:
        raise PathOutsideProject(f"'{relative}' resolves outside the task file's directory (symlink?)")
    return target


def write_atomic(path: Path, data: bytes, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` in one step (temp file, fsync, rename).

    On any failure (disk full, read-only directory) the temporary file is removed
    and the old file, if any, is left as it was: a reader never sees half a file.
    ``mode`` sets the permissions before the rename, so the file never has others.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
