"""Small previews of images for the image list, decoded no larger than needed."""

from __future__ import annotations

import contextlib
import io
import sqlite3
import threading
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from core.io.images import DEFAULT_MAX_PIXELS, displayed_size, open_image, read_image
from core.io.slides import SLIDE_SUFFIXES, is_slide, open_slide

FAST_MODES = ("RGB", "L", "P", "RGBA", "CMYK")  # what Pillow scales down without our conversion


def thumbnail(path: str | Path, side: int, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An ``hxwx3 uint8`` preview of ``path`` fitting ``side`` x ``side``, as it is shown (EXIF
    rotation applied). A JPEG is decoded at a fraction of its size; an image above ``max_pixels``
    is refused like any other read (``ImageTooLargeError``), before it is decoded."""
    return thumbnail_and_size(path, side, max_pixels=max_pixels)[0]


def thumbnail_and_size(
    path: str | Path, side: int, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, tuple[int, int]]:
    """``thumbnail`` and the image's displayed ``(width, height)``, from one read. A slide's
    comes from its smallest pyramid level, never from the whole image."""
    if Path(path).suffix.lower() in SLIDE_SUFFIXES and is_slide(path):
        with open_slide(path) as slide:
            height, width = slide.levels[0]
            return slide.thumbnail(side), (width, height)
    with open_image(path, max_pixels=max_pixels) as img:
        size = displayed_size(img)
        if img.mode in FAST_MODES:
            img.draft("RGB", (side * 2, side * 2))  # JPEG: decode at 1/2 to 1/8 of the size
            small = ImageOps.exif_transpose(img)
            small.thumbnail((side, side))
            return np.asarray(small.convert("RGB")), size
    small = Image.fromarray(read_image(path, max_pixels=max_pixels))  # 16-bit, float: stretched
    small.thumbnail((side, side))
    return np.asarray(small), size


class ThumbnailStore:
    """Thumbnails kept on disk between sessions: one small SQLite file (``PROJECT/cache/
    thumbnails.db``), each a JPEG keyed by the image's id and stamped with its file's size and
    modification time, so a changed image gets a new one. Any thread may use it (one
    connection, one at a time); a damaged or unwritable file only means thumbnails are made
    again."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._con: sqlite3.Connection | None = None
        self._broken = False

    def _connection(self) -> sqlite3.Connection | None:
        if self._con is None and not self._broken:
            try:
                self._con = self._connect()
            except (sqlite3.OperationalError, OSError):  # cannot be opened or written
                pass
            except sqlite3.DatabaseError:  # not a database (damaged): it is only our cache
                with contextlib.suppress(OSError, sqlite3.Error):
                    self.path.unlink()
                    self._con = self._connect()
            self._broken = self._con is None  # unwritable: thumbnails are made each time
        return self._con

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=OFF")  # a cache: losing the last ones costs nothing
            con.execute("CREATE TABLE IF NOT EXISTS thumbs (id TEXT PRIMARY KEY, stamp TEXT, jpeg BLOB)")
        except sqlite3.Error:
            con.close()
            raise
        return con

    def get(self, key: str, stamp: str) -> np.ndarray | None:
        """The thumbnail kept for ``key`` if it was made from the file as ``stamp`` says it is now."""
        with self._lock:
            con = self._connection()
            try:
                found = con.execute("SELECT stamp, jpeg FROM thumbs WHERE id = ?", (key,)) if con else None
                row = found.fetchone() if found else None
            except sqlite3.Error:
                return None
        if row is None or row[0] != stamp:
            return None
        with contextlib.suppress(OSError, ValueError), Image.open(io.BytesIO(row[1])) as img:
            return np.asarray(img.convert("RGB"))
        return None

    def put(self, key: str, stamp: str, pixels: np.ndarray) -> None:
        """Keep ``pixels`` (RGB) as ``key``'s thumbnail, made from the file as ``stamp`` says."""
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=85)
        row = (key, stamp, buffer.getvalue())
        with self._lock:
            con = self._connection()
            with contextlib.suppress(sqlite3.Error):
                if con is not None:
                    con.execute("INSERT OR REPLACE INTO thumbs VALUES (?, ?, ?)", row)

    def close(self) -> None:
        """Close the file (a project closing); the store opens it again if used."""
        with self._lock:
            if self._con is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._con.close()
                self._con = None


def file_stamp(path: str | Path) -> str | None:
    """What a kept thumbnail is checked against: the file's size and modification time."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return f"{st.st_size}:{st.st_mtime_ns}"
