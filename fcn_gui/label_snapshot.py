"""A copy of a label document's label and painted marks, taken a band of rows per turn of the
event loop, for the autosave.

Both copied at once took up to a tenth of a second on a 24-megapixel photo while the learner
kept both cores busy. Rows the user (or the assist's fill-in) changes behind the copy are
copied again before it is handed over, so it is the document as it is when ``done`` gets it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QObject, QRect, QTimer

from .document import LabelDocument

SNAPSHOT_BAND_PIXELS = 4 << 20  # of the label (and as many painted marks) copied per turn


class LabelSnapshot(QObject):
    """Copies ``doc``'s label and painted marks band by band, then calls ``done(label, painted)``
    (unless ``cancel`` came first: a save that copies at once took over)."""

    def __init__(
        self,
        doc: LabelDocument,
        done: Callable[[np.ndarray, np.ndarray], None],
        band_pixels: int = SNAPSHOT_BAND_PIXELS,
    ) -> None:
        super().__init__()
        self._band_rows = max(1, band_pixels // doc.width)
        self.doc = doc
        self._done: Callable[[np.ndarray, np.ndarray], None] | None = done
        self.label = np.empty_like(doc.label)
        self.painted = np.empty_like(doc.painted)
        self._row = 0
        self._behind: list[QRect] = []  # changed where the copy has already been
        doc.changed.connect(self._on_changed)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._step)
        self._step()

    @property
    def running(self) -> bool:
        return self._done is not None

    def cancel(self) -> None:
        if self._done is not None:
            self._done = None
            self._timer.stop()
            self.doc.changed.disconnect(self._on_changed)

    def _on_changed(self, rect: QRect) -> None:
        if rect.y() < self._row:
            self._behind.append(rect)

    def _step(self) -> None:
        if self._done is None:
            return
        doc = self.doc
        behind, self._behind = self._behind, []
        for r in behind:
            rows, cols = slice(max(0, r.y()), r.y() + r.height()), slice(max(0, r.x()), r.x() + r.width())
            self.label[rows, cols] = doc.label[rows, cols]
            self.painted[rows, cols] = doc.painted[rows, cols]
        y0 = self._row
        y1 = min(doc.height, y0 + self._band_rows)
        self.label[y0:y1] = doc.label[y0:y1]
        self.painted[y0:y1] = doc.painted[y0:y1]
        self._row = y1
        if y1 < doc.height:
            self._timer.start(0)
            return
        done, label, painted = self._done, self.label, self.painted
        self.cancel()
        self.label = self.painted = None  # the project holds them until they are written
        done(label, painted)
