"""Resolution of the files a task file names (pool, gold set, templates, lexicon files).

Every such path is relative to the task file's directory (the project) and must
stay inside it: absolute paths, ``..`` escapes and symlinks pointing out are
refused unless the user allows it explicitly, because task files arrive in pull
requests from people whose files CI should not read.
"""

from __future__ import annotations

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
