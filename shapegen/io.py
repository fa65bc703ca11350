"""Small I/O helpers shared by every command: atomic writes and output-path checks."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from shapegen.errors import ShapegenError


def check_output_path(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path after checking that its folder exists (or can be made) and is writable.

    Raises:
        ShapegenError: if the folder cannot be created or written to.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ShapegenError(f"cannot create output folder {parent}: {exc.strerror}; choose another -o path") from exc
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

    Example:
        >>> with atomic_path("mesh.glb") as tmp:  # doctest: +SKIP
        ...     mesh.export(tmp)
    """
    path = check_output_path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix="".join(path.suffixes) or ".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp makes owner-only files; give the result the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
