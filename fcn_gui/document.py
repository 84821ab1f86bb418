"""The image being labelled: its label map, overlay pixels, confidence, and undo history.

The label array is the truth; the overlay is an ARGB32 QImage sharing memory with a numpy
view, updated only inside the rectangle an edit touched. Undo steps store the changed
rectangle before and after, never a copy of the whole label. ``painted`` marks the pixels
the user set (brush, fill, polygon, eraser to a class) apart from predicted ones: the assist
fills in the others (``apply_live``) and never repaints these.
"""

from __future__ import annotations

import numpy as np
import qimage2ndarray
from PySide6.QtCore import QObject, QRect, QTimer, Signal
from PySide6.QtGui import QImage, QUndoCommand, QUndoStack

from core.io.labels import VOID, LabelClass

UNDO_LIMIT = 500
LIVE_BAND_PIXELS = 1 << 20  # of an assist's prediction put on the label per turn of the event loop
STROKE_TILE = 256  # a stroke keeps the tiles of this side it touched, as they were, for its undo step
UNSURE_COLOR = 0xC0FF00FF  # premultiplied-safe: fully saturated magenta at 75% alpha


def _lut(classes: list[LabelClass]) -> np.ndarray:
    lut = np.zeros(256, dtype=np.uint32)  # void and unused indices are transparent
    for i, c in enumerate(classes):
        r, g, b = c.color
        lut[i] = 0xFF000000 | (r << 16) | (g << 8) | b
    return lut


class PatchCommand(QUndoCommand):
    """One undoable edit: the rectangle's label values and painted marks, before and after."""

    def __init__(self, doc: LabelDocument, y: int, x: int, before: tuple, after: tuple, text: str):
        super().__init__(text)
        self.doc, self.y, self.x, self.before, self.after = doc, y, x, before, after
        self._first = True

    def redo(self) -> None:
        if self._first:  # the edit is already on the label when it is pushed
            self._first = False
            return
        self.doc.write_patch(self.y, self.x, *self.after)

    def undo(self) -> None:
        self.doc.write_patch(self.y, self.x, *self.before)


class LabelDocument(QObject):
    """One image with its label; emits ``changed(QRect)`` in image pixels after every edit."""

    changed = Signal(QRect)
    edited = Signal()
    live_applied = Signal()  # an assist's prediction is on the label, all of it, and changed it

    def __init__(
        self,
        image_id: str,
        image: np.ndarray,
        label: np.ndarray,
        classes: list[LabelClass],
        confidence: np.ndarray | None = None,
        parent: QObject | None = None,
        predicted: np.ndarray | None = None,
        painted: np.ndarray | None = None,
    ) -> None:
        super().__init__(parent)
        self.image_id = image_id
        self.height, self.width = image.shape[:2]
        self.pixels = image  # what the assist learns from (the QImage below is for drawing)
        self.image = qimage2ndarray.array2qimage(image)  # RGB32: the fastest format to draw
        self.label = np.ascontiguousarray(label, dtype=np.uint8)
        self.painted = np.zeros(label.shape, bool) if painted is None else painted.astype(bool, copy=True)
        # The painted pixels' classes, void elsewhere, kept up to date edit by edit: what the
        # assist trains on after every stroke, without a pass over the whole image.
        self._painted_label = np.where(self.painted, self.label, np.uint8(VOID))
        self.overlay = QImage(self.width, self.height, QImage.Format.Format_ARGB32_Premultiplied)
        self._overlay_px = qimage2ndarray.raw_view(self.overlay)
        self.unsure = QImage(self.width, self.height, QImage.Format.Format_ARGB32_Premultiplied)
        self._unsure_px = qimage2ndarray.raw_view(self.unsure)
        self.confidence = confidence
        self.predicted = predicted  # the model's label, to measure the user's corrections against
        self.unsure_threshold = 0.5
        self.undo_stack = QUndoStack(self)
        self.undo_stack.setUndoLimit(UNDO_LIMIT)
        self.modified = False
        # A stroke's undo record: the label and painted marks of each STROKE_TILE it touched,
        # as they were before it (copying the whole image per stroke took tens of ms at 24 MP).
        self._stroke_before: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] | None = None
        self._stroke_box: list[int] | None = None
        self._live: np.ndarray | None = None  # an assist's prediction being applied, band by band
        self._live_row, self._live_changed = 0, False
        self._live_timer: QTimer | None = None
        self.set_classes(classes)
        self._refresh_unsure()

    # --- whole-document changes ---------------------------------------------------------
    def set_classes(self, classes: list[LabelClass]) -> None:
        self.classes = list(classes)
        self._lut = _lut(self.classes)
        np.take(self._lut, self.label, out=self._overlay_px)
        self.changed.emit(QRect(0, 0, self.width, self.height))

    def replace_label(self, label: np.ndarray, confidence: np.ndarray | None) -> None:
        """A new prediction: replaces the label, clears the history."""
        self._live = None  # an assist's prediction still being applied is out of date
        self.label[:] = label
        self.painted[:] = False
        self._painted_label[:] = VOID
        self.confidence = confidence
        self.predicted = label
        self.undo_stack.clear()
        self.modified = False
        np.take(self._lut, self.label, out=self._overlay_px)
        self._refresh_unsure()
        self.changed.emit(QRect(0, 0, self.width, self.height))

    def apply_live(self, label: np.ndarray) -> None:
        """The assist's prediction for the pixels the user has not painted (no undo step: undoing
        a stroke undoes what the user did, and the next prediction follows).

        Applied ``LIVE_BAND_PIXELS`` at a time, one band of rows per turn of the event loop: on
        a 24-megapixel photo the whole of it at once held the GUI thread for a third of a
        second. A newer prediction arriving meanwhile starts over with it."""
        if label.shape != self.label.shape:
            return
        self._live, self._live_row, self._live_changed = label, 0, False
        if self._live_timer is None:
            self._live_timer = QTimer(self)
            self._live_timer.setSingleShot(True)
            self._live_timer.timeout.connect(self._apply_live_band)
        self._apply_live_band()

    def _apply_live_band(self) -> None:
        label, y0 = self._live, self._live_row
        if label is None:
            return
        y1 = min(self.height, y0 + max(1, LIVE_BAND_PIXELS // self.width))
        free = ~self.painted[y0:y1]
        changed = self.label[y0:y1] != label[y0:y1]
        changed &= free
        if changed.any():
            np.copyto(self.label[y0:y1], label[y0:y1], where=free)
            np.take(self._lut, self.label[y0:y1], out=self._overlay_px[y0:y1])
            if self.confidence is not None:
                self.confidence = None  # the saved confidence was of another model's prediction
                self._refresh_unsure()
            self.modified = self._live_changed = True
            self.changed.emit(QRect(0, y0, self.width, y1 - y0))
        self._live_row = y1
        if y1 < self.height:
            self._live_timer.start(0)
            return
        self._live = None
        if self._live_changed:
            self.live_applied.emit()

    @property
    def applying_live(self) -> bool:
        """A prediction of the assist is still being put on the label, band by band."""
        return self._live is not None

    def painted_label(self) -> np.ndarray:
        """The painted pixels' classes, ``VOID`` elsewhere: what the assist trains on.

        A read-only view that follows the strokes, not a copy (two copies per stroke held the
        GUI thread for tens of ms at 24 megapixels): the learner copies it when it takes it,
        and a stroke made meanwhile is sent again as it ends."""
        view = self._painted_label.view()
        view.flags.writeable = False
        return view

    def set_unsure_threshold(self, threshold: float) -> None:
        self.unsure_threshold = threshold
        self._refresh_unsure()
        self.changed.emit(QRect(0, 0, self.width, self.height))

    def _refresh_unsure(self) -> None:
        if self.confidence is None:
            self._unsure_px[:] = 0
            return
        self._unsure_px[:] = np.where(
            self.confidence < self.unsure_threshold, np.uint32(UNSURE_COLOR), np.uint32(0)
        )

    # --- reading ------------------------------------------------------------------------
    def contains(self, x: int, y: int) -> bool:
        return 0 <= x < self.width and 0 <= y < self.height

    def class_at(self, x: int, y: int) -> int:
        return int(self.label[y, x])

    def confidence_at(self, x: int, y: int) -> float | None:
        return None if self.confidence is None else float(self.confidence[y, x])

    def fill_window(self, x: int, y: int) -> tuple[int, int, np.ndarray]:
        """The label a flood fill from ``(x, y)`` may spread in: ``(top, left, label)``, all of it."""
        return 0, 0, self.label

    # --- editing ------------------------------------------------------------------------
    def write_patch(self, y: int, x: int, patch: np.ndarray, painted: np.ndarray | None = None) -> None:
        """Put ``patch`` into the label at (y, x) and refresh that part of the overlay.
        ``painted``: which of its pixels the user set (default: all but void ones)."""
        h, w = patch.shape
        self.label[y : y + h, x : x + w] = patch
        self.painted[y : y + h, x : x + w] = patch != VOID if painted is None else painted
        box = (slice(y, y + h), slice(x, x + w))
        self._painted_label[box] = np.where(self.painted[box], patch, np.uint8(VOID))
        self._overlay_px[y : y + h, x : x + w] = self._lut[patch]
        self.modified = True
        self.changed.emit(QRect(x, y, w, h))
        self.edited.emit()

    def begin_stroke(self) -> None:
        """Start an edit made of many small changes (a brush stroke)."""
        self._stroke_before = {}
        self._stroke_box = None

    def _keep_before(self, y0: int, x0: int, y1: int, x1: int) -> None:
        """Copy the tiles under the box into the stroke's undo record, those not there yet."""
        before, t = self._stroke_before, STROKE_TILE
        if before is None:
            return
        for ty in range(y0 // t, (y1 - 1) // t + 1):
            for tx in range(x0 // t, (x1 - 1) // t + 1):
                if (ty, tx) not in before:
                    part = (slice(ty * t, (ty + 1) * t), slice(tx * t, (tx + 1) * t))
                    before[ty, tx] = (self.label[part].copy(), self.painted[part].copy())

    def paint_mask(self, y: int, x: int, mask: np.ndarray, value: int) -> None:
        """Set the pixels where ``mask`` is true (a box at y, x) to ``value``, inside a stroke."""
        y0, x0 = max(0, y), max(0, x)
        y1, x1 = min(self.height, y + mask.shape[0]), min(self.width, x + mask.shape[1])
        if y1 <= y0 or x1 <= x0:
            return
        m = mask[y0 - y : y1 - y, x0 - x : x1 - x]
        self._keep_before(y0, x0, y1, x1)
        region = self.label[y0:y1, x0:x1]
        region[m] = value
        self.painted[y0:y1, x0:x1][m] = value != VOID  # an eraser to void unpaints
        self._painted_label[y0:y1, x0:x1][m] = value
        self._overlay_px[y0:y1, x0:x1][m] = self._lut[value]
        box = self._stroke_box
        self._stroke_box = (
            [y0, x0, y1, x1]
            if box is None
            else [min(box[0], y0), min(box[1], x0), max(box[2], y1), max(box[3], x1)]
        )
        self.modified = True
        self.changed.emit(QRect(x0, y0, x1 - x0, y1 - y0))

    def end_stroke(self, text: str) -> None:
        """Close the stroke as one undo step holding only its bounding box."""
        before, box = self._stroke_before, self._stroke_box
        self._stroke_before = self._stroke_box = None
        if before is None or box is None:
            return
        y0, x0, y1, x1 = box
        new = (self.label[y0:y1, x0:x1].copy(), self.painted[y0:y1, x0:x1].copy())
        old = (new[0].copy(), new[1].copy())  # pixels of tiles the stroke never touched are as they were
        t = STROKE_TILE
        for (ty, tx), parts in before.items():
            a0, b0 = max(y0, ty * t), max(x0, tx * t)
            a1, b1 = min(y1, ty * t + t), min(x1, tx * t + t)
            if a1 > a0 and b1 > b0:
                for kept, saved in zip(old, parts, strict=True):
                    kept[a0 - y0 : a1 - y0, b0 - x0 : b1 - x0] = saved[
                        a0 - ty * t : a1 - ty * t, b0 - tx * t : b1 - tx * t
                    ]
        if all(np.array_equal(a, b) for a, b in zip(old, new, strict=True)):
            return
        self.undo_stack.push(PatchCommand(self, y0, x0, old, new, text))
        self.edited.emit()

    def apply_mask(self, y: int, x: int, mask: np.ndarray, value: int, text: str) -> None:
        """One-shot edit (fill, polygon): set masked pixels of the box at (y, x) to ``value``."""
        self.begin_stroke()
        self.paint_mask(y, x, mask, value)
        self.end_stroke(text)
