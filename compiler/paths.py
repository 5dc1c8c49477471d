"""The file-system boundary: resolving and opening the files a task names, and writing outputs atomically.

Every such path is relative to the task file's directory (the project) and must
stay inside it: absolute paths, ``..`` escapes and symlinks pointing out are
refused unless the user allows it explicitly, because task files arrive in pull
requests from people whose files CI should not read. Whatever the user allows,
only regular files are read: never a device, FIFO or socket (which would hang or
fill memory) and never anything under /proc, /sys or /dev (a regular-looking
/proc/self/environ holds the CI's secrets). Writes go to a fresh temporary file
made with O_EXCL (``tempfile.mkstemp``) and are renamed over the target, and a
target that is a symbolic link is refused rather than replaced.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

# Trees of the kernel's own files: their "regular" files (/proc/self/environ, /proc/kcore) are not data.
SYSTEM_TREES = (Path("/proc"), Path("/sys"), Path("/dev"))

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))


class PathOutsideProject(ValueError):
    pass


class UnsafeFileError(OSError):
    """A file that taskc refuses to open: not a regular file, a system file, a link out of its directory,
    or over a size limit. The message never quotes the file's content."""


class SymlinkRefused(OSError):
    """A write whose target is a symbolic link: taskc neither writes through a link nor replaces it."""


def first_link_inside(directory: Path) -> Path | None:
    """The first symbolic link found under ``directory`` (links are listed, never followed), or None."""
    for parent, subdirectories, files in os.walk(directory):
        for name in sorted(subdirectories + files):
            entry = Path(parent) / name
            if entry.is_symlink():
                return entry
    return None


def resolve_project_path(project_dir: Path, relative: str, allow_outside: bool = False) -> Path:
    """The absolute path of ``relative``; raise PathOutsideProject when it leaves the project or, when it
    exists, is no regular file (a device, a FIFO, anything under /proc: refused even with allow_outside)."""
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
    problem = _not_readable(target)
    if problem:
        raise PathOutsideProject(f"'{relative}' {problem}")
    return target


def _not_readable(target: Path) -> str | None:
    """Why the resolved ``target`` is no file to read, or None (also when it is missing: opening it says so)."""
    tree = next((t for t in SYSTEM_TREES if target == t or t in target.parents), None)
    if tree is not None:
        return f"resolves into {tree}, which taskc never reads"
    try:
        mode = os.stat(target).st_mode
    except OSError:
        return None  # missing or unreadable: the caller's own open reports it
    return None if stat.S_ISREG(mode) else f"is {_kind(mode)}, not a regular file"


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def open_regular_file(path: Path, *, inside: Path | None = None) -> BinaryIO:
    """Open ``path`` for reading only if, links resolved, it is a regular file (inside ``inside`` if given).

    Nothing else is opened: a device or a FIFO is refused from its stat (opening one could block or have
    effects), and the file opened is checked again (O_NOFOLLOW, fstat), so a swap after the check is caught.
    Raises UnsafeFileError (an OSError) saying why; FileNotFoundError and the like pass through.
    """
    real = Path(os.path.realpath(path))
    if inside is not None:
        root = Path(os.path.realpath(inside))
        if real != root and root not in real.parents:
            raise UnsafeFileError(errno.EPERM, "it is a symbolic link to a file outside its directory; refused",
                                  str(path))
    problem = _not_readable(real)
    if problem:
        raise UnsafeFileError(errno.EPERM, f"it {problem}; refused", str(path))
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(real, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # the resolved path became a link since: someone is racing us
            raise UnsafeFileError(errno.EPERM, "it changed into a symbolic link while being opened; refused",
                                  str(path)) from None
        raise
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise UnsafeFileError(errno.EPERM, f"it is {_kind(mode)}, not a regular file; refused", str(path))
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def read_regular_file(path: Path, limit: int, *, inside: Path | None = None, what: str = "file") -> bytes:
    """The bytes of a regular file (see `open_regular_file`) of at most ``limit`` bytes; a bigger one is an
    UnsafeFileError naming its size and the limit, decided before anything is read into memory."""
    with open_regular_file(path, inside=inside) as handle:
        size = os.fstat(handle.fileno()).st_size
        data = handle.read(limit + 1) if size <= limit else b""
        if size > limit or len(data) > limit:
            raise UnsafeFileError(errno.EFBIG, f"{what} is {max(size, len(data)):,} bytes; the limit is "
                                               f"{_size_name(limit)} ({limit:,} bytes)", str(path))
        return data


def _size_name(limit: int) -> str:
    return f"{limit // (1 << 20)} MiB" if limit % (1 << 20) == 0 else f"{limit:,} bytes"


def _current_umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it; done once, at import
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _set_mode_and_owner(descriptor: int, name: str, mode: int, owner: tuple[int, int] | None) -> None:
    if hasattr(os, "fchmod"):
        os.fchmod(descriptor, mode)
    else:  # Windows: only the read-only bit exists, and the name is our own fresh file
        os.chmod(name, mode)
    if owner is not None and hasattr(os, "fchown"):
        try:
            os.fchown(descriptor, *owner)
        except OSError:
            pass  # only root may give a file away; keeping the mode is what matters


def write_atomic(path: Path, data: bytes, mode: int | None = None, *, owner: tuple[int, int] | None = None) -> None:
    """Replace ``path`` with ``data`` in one step (temp file, fsync, rename).

    The temporary file is created by ``tempfile.mkstemp`` next to ``path``: an unpredictable name, opened
    with O_EXCL (and O_NOFOLLOW), so a link planted where it will be written is never followed. A ``path``
    that is itself a symbolic link raises SymlinkRefused: the rename would replace the link by a file.
    On any failure (disk full, read-only directory) the temporary file is removed and the old file, if
    any, is left as it was: a reader never sees half a file. ``mode`` (default: 0o666 less the umask, as
    ``open`` gives) and ``owner`` (uid, gid; skipped where not permitted) are set on the open descriptor
    before the rename, so the file never has others.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        raise SymlinkRefused(errno.ELOOP, "it is a symbolic link; taskc never writes through or over a link",
                             str(path))
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            _set_mode_and_owner(handle.fileno(), temporary, (0o666 & ~_UMASK) if mode is None else mode, owner)
            os.fsync(handle.fileno())
        if path.is_symlink():  # planted between the check above and now
            raise SymlinkRefused(errno.ELOOP, "it is a symbolic link; taskc never writes through or over a link",
                                 str(path))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
