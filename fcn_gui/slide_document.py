"""A whole-slide image being labelled: its pixels come tile by tile, its label lives in tiles.

The same editing face as ``LabelDocument`` (strokes, masks, undo, ``changed``), but nothing of
the slide's size is ever held: the pixels are drawn from a ``TileLoader`` at the pyramid level
the zoom needs; the label is the tiles the user touched (512 x 512 each, void elsewhere),
each saved atomically to the project as its stroke ends (``core.store.label_tiles``), so a
crash loses at most the stroke being drawn. Zoomed out, the overlay comes from an overview:
the label sampled every ``step`` pixels, at most ``OVERVIEW_SIDE`` a side.

The assist learns from a slide's strokes region by region: ``live_region`` is the
``LIVE_SIDE`` square (on the tile grid) around the newest stroke, kept while strokes stay in
it; its pixels and ``painted_label`` train at once, and ``apply_prediction`` fills the rest
of it as on a photo.
"""

from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import qimage2ndarray
from PySide6.QtCore import QObject, QRect, QRectF, Signal
from PySide6.QtGui import QImage, QPainter, QUndoCommand, QUndoStack

from core.io.labels import VOID, LabelClass
from core.io.slides import Slide
from core.store.label_tiles import TILE, LabelTiles, tile_parts

from .document import UNDO_LIMIT, _lut
from .slide_tiles import TileLoader

SLIDE_PIXELS = 8192 * 8192  # tiled TIFFs from this size on open as slides; smaller ones whole
OVERVIEW_SIDE = 4096
TILE_OVERLAY_FROM_SCALE = 0.5  # zoomed out further, the overlay is drawn from the overview
OVERLAY_CACHE = 64  # label tiles with a drawn overlay kept (1 MB each)
FILL_WINDOW = 4096  # a flood fill spreads at most this far around the click
LIVE_SIDE = 1024  # the region of a slide around the strokes that the assist fills in


def is_slide_file(path) -> bool:
    """Open this image as a slide: a vendor format, or a tiled TIFF of ``SLIDE_PIXELS`` or more."""
    from core.io.slides import SLIDE_SUFFIXES, is_slide

    return path.suffix.lower() in SLIDE_SUFFIXES and is_slide(path, min_pixels=SLIDE_PIXELS)


class _Tile:
    __slots__ = ("label", "overlay", "painted")

    def __init__(self, label: np.ndarray, painted: np.ndarray) -> None:
        self.label, self.painted = label, painted
        self.overlay: tuple[QImage, np.ndarray] | None = None


class TilesCommand(QUndoCommand):
    """One undoable edit of a slide: the touched tiles' label and painted marks, before and after."""

    def __init__(self, doc: SlideDocument, before: dict, after: dict, text: str) -> None:
        super().__init__(text)
        self.doc, self.before, self.after = doc, before, after
        self._first = True

    def redo(self) -> None:
        if self._first:
            self._first = False
            return
        self.doc.write_tiles(self.after)

    def undo(self) -> None:
        self.doc.write_tiles(self.before)


class SlideDocument(QObject):
    """A slide and its tiled label; emits ``changed(QRect)`` in image pixels after every edit."""

    changed = Signal(QRect)
    edited = Signal()

    def __init__(
        self,
        image_id: str,
        slide: Slide,
        store: LabelTiles,
        classes: list[LabelClass],
        thumbnail: np.ndarray,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.image_id = image_id
        self.slide = slide
        self.height, self.width = slide.levels[0]
        self.store = store
        self.tiles: dict[tuple[int, int], _Tile] = {}
        for key in store.on_disk():
            data = store.read(*key)
            if data is not None:
                self.tiles[key] = _Tile(*data)
        self.thumbnail = qimage2ndarray.array2qimage(thumbnail)
        self.step = max(1, math.ceil(max(self.height, self.width) / OVERVIEW_SIDE))
        shape = (-(-self.height // self.step), -(-self.width // self.step))
        self.overview = np.full(shape, VOID, dtype=np.uint8)
        self.overview_image = QImage(shape[1], shape[0], QImage.Format.Format_ARGB32_Premultiplied)
        self._overview_px = qimage2ndarray.raw_view(self.overview_image)
        self.undo_stack = QUndoStack(self)
        self.undo_stack.setUndoLimit(UNDO_LIMIT)
        self.modified = False  # each stroke is saved as it ends: nothing waits for Save
        self.confidence = None
        self.predicted = None
        self.unsure_threshold = 0.5
        self.pixels = None  # never held: the assist gets a region's pixels (``live_region``)
        self.last_stroke: QRect | None = None  # image pixels the newest stroke touched
        self._live_box: tuple[int, int, int, int] | None = None
        self._stroke_box: QRect | None = None
        self.loader: TileLoader | None = None
        self._overlays: list[tuple[int, int]] = []
        self._before: dict | None = None
        self._saver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slide-tiles")
        self._saves: list[Future] = []
        self._lut = _lut(list(classes))
        for key in self.tiles:
            self._sample_overview(*self._tile_box(key))
        self.set_classes(classes)

    # --- set-up and tear-down ----------------------------------------------------------------
    def start(self, runner) -> None:
        """Start loading the slide's tiles through the app's runner."""
        self.loader = TileLoader(self.slide, self)
        self.loader.start(runner)

    def close(self) -> None:
        """Finish the saves under way and stop the tile worker."""
        self.flush()
        self._saver.shutdown(wait=True)
        if self.loader is not None:
            self.loader.stop()
        else:
            self.slide.close()

    def flush(self) -> None:
        """Wait until every finished stroke is on disk; a failed save raises here."""
        saves, self._saves = self._saves, []
        for job in saves:
            job.result()

    def set_classes(self, classes: list[LabelClass]) -> None:
        self.classes = list(classes)
        self._lut = _lut(self.classes)
        np.take(self._lut, self.overview, out=self._overview_px)
        for key in self._overlays:
            self.tiles[key].overlay = None
        self._overlays = []
        self.changed.emit(QRect(0, 0, self.width, self.height))

    def set_unsure_threshold(self, threshold: float) -> None:
        """Slides carry no confidence in the app: there is nothing to mark unsure."""
        self.unsure_threshold = threshold

    # --- reading -----------------------------------------------------------------------------
    def contains(self, x: int, y: int) -> bool:
        return 0 <= x < self.width and 0 <= y < self.height

    def class_at(self, x: int, y: int) -> int:
        tile = self.tiles.get((y // TILE, x // TILE))
        return VOID if tile is None else int(tile.label[y % TILE, x % TILE])

    def confidence_at(self, x: int, y: int) -> float | None:
        return None

    def live_region(self) -> tuple[int, int, int, int] | None:
        """``(y, x, h, w)``: the region around the newest stroke that the assist learns from and
        fills in, ``LIVE_SIDE`` a side on the tile grid; the same one while strokes stay in it."""
        stroke = self.last_stroke
        if stroke is None:
            return None
        cy, cx = stroke.center().y(), stroke.center().x()
        box = self._live_box
        if box is not None and box[0] <= cy < box[0] + box[2] and box[1] <= cx < box[1] + box[3]:
            return box
        h, w = min(LIVE_SIDE, self.height), min(LIVE_SIDE, self.width)
        y = min(max(0, round((cy - h / 2) / TILE) * TILE), self.height - h)
        x = min(max(0, round((cx - w / 2) / TILE) * TILE), self.width - w)
        self._live_box = (y, x, h, w)
        return self._live_box

    def painted_label(self, y: int, x: int, h: int, w: int) -> np.ndarray:
        """The painted pixels' classes in the box, ``VOID`` elsewhere: what the assist trains on."""
        out = np.full((h, w), VOID, dtype=np.uint8)
        for _key, tile, in_tile, in_box in self._parts(y, x, y + h, x + w, create=False):
            np.copyto(out[in_box], tile.label[in_tile], where=tile.painted[in_tile])
        return out

    def fill_window(self, x: int, y: int) -> tuple[int, int, np.ndarray]:
        """The label around ``(x, y)`` a flood fill may spread in: ``(top, left, label)``."""
        half = FILL_WINDOW // 2
        x0, y0 = max(0, x - half), max(0, y - half)
        x1, y1 = min(self.width, x0 + FILL_WINDOW), min(self.height, y0 + FILL_WINDOW)
        window = np.full((y1 - y0, x1 - x0), VOID, dtype=np.uint8)
        for _key, tile, in_tile, in_box in self._parts(y0, x0, y1, x1, create=False):
            window[in_box] = tile.label[in_tile]
        return y0, x0, window

    # --- editing -----------------------------------------------------------------------------
    def begin_stroke(self) -> None:
        self._before = {}
        self._stroke_box = None

    def paint_mask(self, y: int, x: int, mask: np.ndarray, value: int) -> None:
        """Set the pixels where ``mask`` is true (a box at y, x) to ``value``, inside a stroke."""
        y0, x0 = max(0, y), max(0, x)
        y1, x1 = min(self.height, y + mask.shape[0]), min(self.width, x + mask.shape[1])
        if y1 <= y0 or x1 <= x0:
            return
        if self._before is None:
            self.begin_stroke()
        colour = self._lut[value]
        mask = mask[y0 - y : y1 - y, x0 - x : x1 - x]  # the part inside the slide
        for key, tile, box, in_box in self._parts(y0, x0, y1, x1, create=True):
            m = mask[in_box]
            if not m.any():
                continue
            if key not in self._before:
                self._before[key] = (tile.label.copy(), tile.painted.copy())
            tile.label[box][m] = value
            tile.painted[box][m] = value != VOID  # an eraser to void unpaints
            if tile.overlay is not None:
                tile.overlay[1][box][m] = colour
        self._sample_overview(y0, x0, y1, x1)
        box = QRect(x0, y0, x1 - x0, y1 - y0)
        self._stroke_box = box if self._stroke_box is None else self._stroke_box.united(box)
        self.changed.emit(box)

    def end_stroke(self, text: str) -> None:
        """Close the stroke as one undo step of the tiles it touched, and save those tiles."""
        before, self._before = self._before, None
        if self._stroke_box is not None:
            self.last_stroke, self._stroke_box = self._stroke_box, None
        if not before:
            return
        after = {key: (self.tiles[key].label.copy(), self.tiles[key].painted.copy()) for key in before}
        touched = [
            key
            for key in before
            if not (
                np.array_equal(before[key][0], after[key][0])
                and np.array_equal(before[key][1], after[key][1])
            )
        ]
        if not touched:
            return
        self.undo_stack.push(
            TilesCommand(self, {k: before[k] for k in touched}, {k: after[k] for k in touched}, text)
        )
        self._save({k: after[k] for k in touched})
        self.edited.emit()

    def apply_mask(self, y: int, x: int, mask: np.ndarray, value: int, text: str) -> None:
        """One-shot edit (fill, polygon): set masked pixels of the box at (y, x) to ``value``."""
        self.begin_stroke()
        self.paint_mask(y, x, mask, value)
        self.end_stroke(text)

    def write_tiles(self, states: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]) -> None:
        """Put tiles back as they were (undo, redo), refresh what shows them, and save them."""
        for key, (label, painted) in states.items():
            tile = self._tile(key, create=True)
            tile.label[:] = label
            tile.painted[:] = painted
            if tile.overlay is not None:
                np.take(self._lut, tile.label, out=tile.overlay[1])
            y0, x0, y1, x1 = self._tile_box(key)
            self._sample_overview(y0, x0, y1, x1)
            self.changed.emit(QRect(x0, y0, x1 - x0, y1 - y0))
        self._save({k: (label.copy(), painted.copy()) for k, (label, painted) in states.items()})
        self.edited.emit()

    def apply_prediction(self, y: int, x: int, label: np.ndarray) -> None:
        """A predicted block at ``(y, x)``: fills the pixels the user has not painted (no undo
        step: the user's strokes stay as they are) and is saved with the tiles."""
        h, w = label.shape
        y1, x1 = min(self.height, y + h), min(self.width, x + w)
        changed = {}
        for key, tile, box, in_box in self._parts(y, x, y1, x1, create=True):
            new = label[in_box]
            free = ~tile.painted[box]
            if not (tile.label[box][free] != new[free]).any():
                continue
            np.copyto(tile.label[box], new, where=free)
            if tile.overlay is not None:
                tile.overlay[1][box] = self._lut[tile.label[box]]
            changed[key] = (tile.label.copy(), tile.painted.copy())
        if changed:
            self._sample_overview(y, x, y1, x1)
            self._save(changed)
            self.changed.emit(QRect(x, y, x1 - x, y1 - y))

    def _save(self, states: dict) -> None:
        def write() -> None:
            for (row, col), (label, painted) in states.items():
                self.store.write(row, col, label, painted)

        self._saves = [job for job in self._saves if not job.done() or job.exception()]
        self._saves.append(self._saver.submit(write))

    # --- tiles -------------------------------------------------------------------------------
    def _tile(self, key: tuple[int, int], create: bool) -> _Tile | None:
        tile = self.tiles.get(key)
        if tile is None and create:
            tile = self.tiles[key] = _Tile(
                np.full((TILE, TILE), VOID, dtype=np.uint8), np.zeros((TILE, TILE), dtype=bool)
            )
        return tile

    def _parts(self, y0: int, x0: int, y1: int, x1: int, create: bool):
        """``(key, tile, part of the tile, part of the box)`` for the tiles under the box (made
        void where missing with ``create``, else only those there)."""
        for key, in_tile, in_box in tile_parts(y0, x0, y1, x1):
            tile = self._tile(key, create)
            if tile is not None:
                yield key, tile, in_tile, in_box

    def _tile_box(self, key: tuple[int, int]) -> tuple[int, int, int, int]:
        y0, x0 = key[0] * TILE, key[1] * TILE
        return y0, x0, min(self.height, y0 + TILE), min(self.width, x0 + TILE)

    def _sample_overview(self, y0: int, x0: int, y1: int, x1: int) -> None:
        """Re-read the overview's samples that fall in the box from the tiles."""
        s = self.step
        oy0, ox0, oy1, ox1 = -(-y0 // s), -(-x0 // s), -(-y1 // s), -(-x1 // s)
        if oy1 <= oy0 or ox1 <= ox0:
            return
        ys, xs = np.arange(oy0, oy1) * s, np.arange(ox0, ox1) * s
        block = np.full((len(ys), len(xs)), VOID, dtype=np.uint8)
        for (row, col), tile, _in_tile, _in_box in self._parts(
            int(ys[0]), int(xs[0]), int(ys[-1]) + 1, int(xs[-1]) + 1, False
        ):
            in_y = (ys // TILE) == row
            in_x = (xs // TILE) == col
            block[np.ix_(in_y, in_x)] = tile.label[np.ix_(ys[in_y] % TILE, xs[in_x] % TILE)]
        self.overview[oy0:oy1, ox0:ox1] = block
        self._overview_px[oy0:oy1, ox0:ox1] = self._lut[block]

    def _overlay(self, key: tuple[int, int]) -> QImage:
        tile = self.tiles[key]
        if tile.overlay is None:
            image = QImage(TILE, TILE, QImage.Format.Format_ARGB32_Premultiplied)
            pixels = qimage2ndarray.raw_view(image)
            np.take(self._lut, tile.label, out=pixels)
            tile.overlay = (image, pixels)
            self._overlays.append(key)
            if len(self._overlays) > OVERLAY_CACHE:
                self.tiles[self._overlays.pop(0)].overlay = None
        return tile.overlay[0]

    # --- drawing -----------------------------------------------------------------------------
    def paint_view(
        self, painter: QPainter, canvas, src: QRect, view: QRect, overlay: bool, opacity: float
    ) -> None:
        """Draw the part ``src`` (image pixels) of the slide and its label on ``canvas``; load
        the tiles of ``view`` (all that is visible) that are not cached yet."""
        scale, offset = canvas.scale, canvas.offset

        def target(x: float, y: float, w: float, h: float) -> QRectF:
            # Corners on whole screen pixels: neighbouring tiles meet without a seam.
            left, top = round(x * scale + offset.x()), round(y * scale + offset.y())
            right, bottom = round((x + w) * scale + offset.x()), round((y + h) * scale + offset.y())
            return QRectF(left, top, right - left, bottom - top)

        sx, sy = self.thumbnail.width() / self.width, self.thumbnail.height() / self.height
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        painter.drawImage(
            target(src.x(), src.y(), src.width(), src.height()),
            self.thumbnail,
            QRectF(src.x() * sx, src.y() * sy, src.width() * sx, src.height() * sy),
        )
        if self.loader is not None:
            self._paint_tiles(painter, src, view, scale, target)
        if not overlay:
            return
        painter.setOpacity(opacity)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        if scale >= TILE_OVERLAY_FROM_SCALE:
            for key, *_parts in self._parts(src.top(), src.left(), src.bottom() + 1, src.right() + 1, False):
                y0, x0, y1, x1 = self._tile_box(key)
                painter.drawImage(
                    target(x0, y0, x1 - x0, y1 - y0), self._overlay(key), QRectF(0, 0, x1 - x0, y1 - y0)
                )
        else:
            s = self.step
            painter.drawImage(
                target(src.x(), src.y(), src.width(), src.height()),
                self.overview_image,
                QRectF(src.x() / s, src.y() / s, src.width() / s, src.height() / s),
            )
        painter.setOpacity(1.0)

    def _paint_tiles(self, painter: QPainter, src: QRect, view: QRect, scale: float, target) -> None:
        loader = self.loader
        level = self.slide.level_for(1 / scale)
        lh, lw = self.slide.levels[level]
        down_y, down_x = self.height / lh, self.width / lw
        if down_x * scale < 0.25:  # no level this coarse: decoding the finer one would take minutes
            loader.want([])
            return
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, scale < 1)
        for key in self._level_tiles(level, src):
            image = loader.get(key)
            if image is not None:
                x, y, w, h = loader.tile_rect(key)
                painter.drawImage(target(x, y, w, h), image, QRectF(0, 0, w / down_x, h / down_y))
        loader.want([key for key in self._level_tiles(level, view) if loader.get(key) is None])

    def _level_tiles(self, level: int, rect: QRect) -> list[tuple[int, int, int]]:
        """The tiles of ``level`` under ``rect`` (image pixels), from its centre outwards."""
        lh, lw = self.slide.levels[level]
        down_y, down_x = self.height / lh, self.width / lw
        rows = range(
            max(0, int(rect.top() / down_y) // TILE),
            min(-(-lh // TILE), int((rect.bottom() + 1) / down_y) // TILE + 1),
        )
        cols = range(
            max(0, int(rect.left() / down_x) // TILE),
            min(-(-lw // TILE), int((rect.right() + 1) / down_x) // TILE + 1),
        )
        mid_r, mid_c = (rows.start + rows.stop - 1) / 2, (cols.start + cols.stop - 1) / 2
        keys = [(level, r, c) for r in rows for c in cols]
        return sorted(keys, key=lambda k: (k[1] - mid_r) ** 2 + (k[2] - mid_c) ** 2)
