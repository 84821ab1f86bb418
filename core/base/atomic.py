"""Crash-safe file writes: write a temporary sibling, flush it to disk, rename it into place.

The temporary name is short (``.fcn-<8 hex>.tmp``) whatever the file's own name, so a legal
255-character file name stays legal, and the file is created as ``open()`` would create it:
with the permissions the user's umask gives (not 0600), so colleagues and jobs under other
accounts read what fcn-gui writes as they read any other file of the user's.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    The caller writes the whole file to the yielded path. If the block raises (or the
    process dies), ``path`` keeps its previous content and the temporary file is removed
    (or, after a hard kill, left as an ignorable ``.fcn-*.tmp`` file).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, mode = _new_temporary(path.parent)
    try:
        yield tmp
        tmp.chmod(mode)  # a writer may have made the file anew (safetensors does), as 0600
        _fsync_file(tmp)
        tmp.replace(path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _new_temporary(folder: Path) -> tuple[Path, int]:
    """A new empty file ``folder/.fcn-XXXXXXXX.tmp`` and its mode: 0666 less the umask, as
    ``open()`` would make it (read from the file: the umask cannot be read without changing it)."""
    for _ in range(100):
        tmp = folder / f".fcn-{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            continue
        try:
            return tmp, os.fstat(fd).st_mode & 0o777
        finally:
            os.close(fd)
    raise FileExistsError(f"no free temporary name in {folder}")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old or the new file."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _fsync_file(path: Path) -> None:
    with path.open("rb+") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
