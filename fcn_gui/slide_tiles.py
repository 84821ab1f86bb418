"""The pixels of a whole-slide image, loaded tile by tile on a worker into a bounded cache.

The canvas asks for the tiles it would draw (``want``: only the visible ones, of the pyramid
level that matches the zoom) and draws those already cached; one worker thread decodes the
rest, newest request first, and ``loaded`` asks for a repaint as each arrives. The cache
holds at most ``CACHE_BYTES`` of decoded tiles, dropping the least recently drawn: memory
stays the same for a 20,000- or a 100,000-pixel slide.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Generator

import qimage2ndarray
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from core.io.slides import Slide

TILE = 512
CACHE_BYTES = 256 * 1024**2
IDLE_POLL_S = 0.2  # how soon an idle worker notices it is cancelled

Key = tuple[int, int, int]  # (level, row, column)


class TileLoader(QObject):
    """Decoded tiles of ``slide`` as ``QImage`` (RGB32); ``loaded()`` after each new one."""

    loaded = Signal()
    failed = Signal(str)

    def __init__(self, slide: Slide, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.slide = slide
        self._cache: OrderedDict[Key, QImage] = OrderedDict()
        self._bytes = 0
        self._wanted: list[Key] = []
        self._lock = threading.Condition()
        self._thread = None
        self.requested: list[Key] = []  # every key asked of the worker, in order (for tests)

    def start(self, runner) -> None:
        """Run the worker through the app's runner (which owns every thread)."""
        self._thread = runner.start(
            self._work, f"tiles-{self.slide.path.name}", on_yield=self._on_tile, on_error=self.failed.emit
        )

    def stop(self) -> None:
        """Stop the worker; it closes the slide's file as it ends."""
        if self._thread is not None:
            self._thread.cancel()
            with self._lock:
                self._lock.notify_all()
        else:
            self.slide.close()

    def get(self, key: Key) -> QImage | None:
        """The tile if it is cached (it becomes the most recently used)."""
        image = self._cache.get(key)
        if image is not None:
            self._cache.move_to_end(key)
        return image

    def want(self, keys: list[Key]) -> None:
        """The tiles to load now, most wanted first; replaces what was asked before."""
        with self._lock:
            self._wanted = [k for k in reversed(keys) if k not in self._cache]
            self._lock.notify_all()

    def tile_rect(self, key: Key) -> tuple[float, float, float, float]:
        """``(x, y, width, height)`` of a tile in level-0 pixels."""
        level, row, col = key
        lh, lw = self.slide.levels[level]
        sy, sx = self.slide.levels[0][0] / lh, self.slide.levels[0][1] / lw
        h, w = min(TILE, lh - row * TILE), min(TILE, lw - col * TILE)
        return col * TILE * sx, row * TILE * sy, w * sx, h * sy

    def _work(self) -> Generator[tuple[Key, QImage] | None, None, None]:
        try:
            while True:
                with self._lock:
                    if not self._wanted:
                        self._lock.wait(IDLE_POLL_S)
                    key = self._wanted.pop() if self._wanted else None
                if key is None:
                    yield None  # lets a cancel take effect
                    continue
                self.requested.append(key)
                level, row, col = key
                pixels = self.slide.read(level, row * TILE, col * TILE, TILE, TILE)
                yield key, qimage2ndarray.array2qimage(pixels)
        finally:
            self.slide.close()

    def _on_tile(self, event) -> None:
        if event is None:
            return
        key, image = event
        if key in self._cache:
            return
        self._cache[key] = image
        self._bytes += image.sizeInBytes()
        while self._bytes > CACHE_BYTES and len(self._cache) > 1:
            _key, old = self._cache.popitem(last=False)
            self._bytes -= old.sizeInBytes()
        self.loaded.emit()
