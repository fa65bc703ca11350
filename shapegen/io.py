"""Small I/O helpers shared by every command: atomic writes and output-path checks.

A command must leave its output location as it found it when it fails: writers go through
:func:`atomic_path` (temporary file + rename), folders are made with :func:`make_output_dir`
(which remembers the ones it created, so :func:`remove_created_folders` can take the empty
ones away again after an error), and an OS error while writing (a full disk, a read-only file
system) becomes a one-line :class:`ShapegenError`.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from shapegen.errors import ShapegenError

#: errno values of a write that the user fixes by freeing space or choosing another place.
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}

_created_folders: list[Path] = []
"""Folders :func:`make_output_dir` created during this command, outermost first."""


def write_error(exc: OSError, path: str | os.PathLike | None = None) -> ShapegenError:
    """A one-line :class:`ShapegenError` for an OS error while writing ``path``, saying what to do.

    Without ``path`` (the error came from a library) the error's own file name is named, and a
    permission error is not assumed to be about the output.
    """
    where = path if path is not None else (exc.filename or "the output")
    reason = exc.strerror or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return ShapegenError(f"cannot write {where}: {reason}; free some disk space or write the output to another disk (-o)")
    if exc.errno == errno.EROFS or path is not None:
        return ShapegenError(f"cannot write {where}: {reason}; choose a writable output location (-o)")
    return ShapegenError(f"cannot access {where}: {reason}; check its permissions or choose another output location (-o)")


def make_output_dir(path: str | os.PathLike) -> Path:
    """Create the folder ``path`` and its missing parents; remember which ones were new.

    Raises:
        ShapegenError: if a folder cannot be created (read-only file system, no permission,
            a file in the way).
    """
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise ShapegenError(f"cannot create output folder {folder}: {exc.strerror}; choose another -o path") from exc
        _created_folders.append(folder)
    if not path.is_dir():
        raise ShapegenError(f"cannot create output folder {path}: a file of that name is in the way; choose another -o path")
    return path


def remove_created_folders() -> None:
    """Remove the folders :func:`make_output_dir` created that are still empty (after a failure).

    Only empty folders are removed (innermost first), never files: a run that wrote results
    (e.g. checkpoints to resume from) keeps them.
    """
    for folder in reversed(_created_folders):
        if not folder.is_dir():
            continue
        for dirpath, _dirnames, _filenames in sorted(os.walk(folder), key=lambda w: -len(w[0])):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)
    _created_folders.clear()


def forget_created_folders() -> None:
    """Start a new command: folders made before are no longer this command's to remove."""
    _created_folders.clear()


def check_output_folder(path: str | os.PathLike) -> Path:
    """Check, without creating anything, that ``path`` is (or can become) a writable folder.

    Raises:
        ShapegenError: if ``path`` is a file or its nearest existing folder is not writable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ShapegenError(f"output {path} is a file; give a folder with -o")
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise ShapegenError(f"output folder {probe} is not writable; choose another -o path")
    return path


def check_output_path(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path after checking that its folder exists (or can be made) and is writable.

    Raises:
        ShapegenError: if the folder cannot be created or written to.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    make_output_dir(parent)
    if not os.access(parent, os.W_OK):
        raise ShapegenError(f"output folder {parent} is not writable; choose another -o path")
    if path.is_dir():
        raise ShapegenError(f"output {path} is a folder; give a file name such as {path}/out.glb")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary file keeps the final suffix, so writers that choose a format from the
    suffix (trimesh, imageio, numpy) behave the same. On any exception the temporary file
    is removed and ``path`` is left untouched: no half-written output ever appears.

    Raises:
        ShapegenError: the folder cannot be made or written, or the block failed with an OS
            error of a write (a full disk, a read-only file system: :data:`WRITE_ERRNOS`).

    Example:
        >>> with atomic_path("mesh.glb") as tmp:  # doctest: +SKIP
        ...     mesh.export(tmp)
    """
    path = check_output_path(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix="".join(path.suffixes) or ".tmp", dir=path.parent)
    except OSError as exc:
        raise write_error(exc, path) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp makes owner-only files; give the result the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
            raise write_error(exc, path) from exc
        raise


def write_npz(path: str | os.PathLike, *, compressed: bool = False, **arrays) -> Path:
    """Write ``arrays`` to the ``.npz`` file ``path`` atomically.

    The archive is built in memory and written in one go: numpy's zip writer, when the disk
    fills up under it, fails again while being garbage-collected and prints a second traceback.
    """
    import numpy as np

    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())
    return Path(path)
