"""Predicting a slide in the window: the region in view first, then outwards, block by block.

A slide of 10 gigapixels takes hours to predict on a CPU, so the window never predicts it
whole: it predicts the blocks of 1,024 x 1,024 pixels in view, nearest the centre first, then
``SPREAD_BLOCKS`` more around them, each read from the slide with a margin of context. Each
block fills the pixels the user has not painted and is saved with the label's tiles. Moving
the view starts over from the new view; blocks already predicted by the model in use are not
predicted again. ``fcn-gui segment`` predicts a whole slide, resumably.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, QRect, QTimer

from .slide_document import SlideDocument

TILE = 512  # the network's tile within a block
BLOCK = 1024  # a few seconds of a U-Net on a CPU: the view fills in block by block
MARGIN = 64  # context around a block: its edges see what lies beyond, as in tiled inference
SPREAD_BLOCKS = 24  # blocks predicted beyond the view (24 megapixels) once the view is done
VIEW_MAX_BLOCKS = 64  # a wider view (zoomed out) is not predicted: "zoom in to predict"
SETTLE_MS = 250  # the view must rest this long before its prediction starts


@dataclass
class BlockPrediction:
    """The label predicted for block ``key`` of slide ``image_id``, whose top-left pixel is ``(y, x)``."""

    image_id: str
    key: tuple[int, int]
    y: int
    x: int
    label: np.ndarray


class SlidePredictions(QObject):
    """Predicts the slide on the canvas around the view (``set_view``) with the session's model."""

    def __init__(self, session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.doc: SlideDocument | None = None
        self.view = QRect()
        self.done: dict[tuple[int, int], None] = {}  # the blocks predicted, in order
        self._model: str | None = None
        self._thread = None
        self._restart = False
        self._told = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SETTLE_MS)
        self._timer.timeout.connect(self.start)
        session.document_changed.connect(self._on_document)

    def _on_document(self, doc) -> None:
        self.stop()
        self.doc = doc if isinstance(doc, SlideDocument) else None
        self.done = {}
        self._told = False

    def set_view(self, view: QRect) -> None:
        """The part of the slide in the window (image pixels) changed."""
        self.view = QRect(view)
        if self.doc is not None:
            self._timer.start()

    def stop(self) -> None:
        """Stop predicting (at the network's next tile)."""
        self._timer.stop()
        self._restart = False
        if self._thread is not None:
            self._thread.cancel()

    def blocks(self) -> list[tuple[int, int]]:
        """The blocks to predict: those in view from its centre out, then a ring around them."""
        doc, view = self.doc, self.view
        rows, cols = -(-doc.height // BLOCK), -(-doc.width // BLOCK)
        r0, r1 = max(0, view.top() // BLOCK), min(rows - 1, view.bottom() // BLOCK)
        c0, c1 = max(0, view.left() // BLOCK), min(cols - 1, view.right() // BLOCK)
        mid_r, mid_c = (r0 + r1) / 2, (c0 + c1) / 2
        near = [
            (r, c)
            for r in range(max(0, r0 - 3), min(rows, r1 + 4))
            for c in range(max(0, c0 - 3), min(cols, c1 + 4))
        ]

        def rank(rc: tuple[int, int]) -> tuple[bool, float]:
            outside = not (r0 <= rc[0] <= r1 and c0 <= rc[1] <= c1)
            return outside, (rc[0] - mid_r) ** 2 + (rc[1] - mid_c) ** 2

        order = sorted(near, key=rank)
        in_view = (r1 - r0 + 1) * (c1 - c0 + 1)
        return order[: in_view + SPREAD_BLOCKS]

    def start(self) -> None:
        """Predict around the current view (after the running job stops, if one runs)."""
        s, doc = self.session, self.doc
        predictor = s.usable_predictor()
        if doc is None or predictor is None or s.project is None or self.view.isEmpty() or s.runner.closing:
            return  # (quitting: nothing starts)
        if self._thread is not None:
            self._restart = True
            self._thread.cancel()
            return
        view_blocks = (self.view.height() / BLOCK) * (self.view.width() / BLOCK)
        if view_blocks > VIEW_MAX_BLOCKS:
            if not self._told:
                s.message.emit("Zoom in to predict this slide here (a view of at most 64 megapixels)")
                self._told = True
            return
        self._told = False
        if self._model != s.checkpoint_name():
            self._model, self.done = s.checkpoint_name(), {}
        todo = [key for key in self.blocks() if key not in self.done]
        if not todo:
            return
        image_id = doc.image_id
        path = s.project.image_path(s.project.entry(image_id))
        height, width = doc.height, doc.width
        # Tiles of 512 within a block: a tenth of the whole block's activations (1 GB in fp32),
        # so the window on a slide stays within the memory of the window on a photo.
        predictor = copy.copy(predictor)
        predictor.tile = min(predictor.tile or TILE, TILE)

        def work():
            from core.io.slides import open_slide

            with open_slide(path) as slide:  # its own file handle: the tile worker reads the other
                for row, col in todo:
                    y0, x0 = row * BLOCK, col * BLOCK
                    y1, x1 = min(height, y0 + BLOCK), min(width, x0 + BLOCK)
                    ry0, rx0 = max(0, y0 - MARGIN), max(0, x0 - MARGIN)
                    ry1, rx1 = min(height, y1 + MARGIN), min(width, x1 + MARGIN)
                    region = slide[ry0:ry1, rx0:rx1]
                    prediction = yield from predictor.iter_predict(region)
                    label = prediction.label[y0 - ry0 : y1 - ry0, x0 - rx0 : x1 - rx0]
                    yield BlockPrediction(image_id, (row, col), y0, x0, np.ascontiguousarray(label))

        self._thread = s.runner.start(
            work,
            "slide-predict",
            on_yield=self._on_event,
            on_error=s.error.emit,
            on_finished=self._on_finished,
        )

    def _on_event(self, event) -> None:
        if not isinstance(event, BlockPrediction) or self.doc is None or event.image_id != self.doc.image_id:
            return  # (a block of the slide left behind, delivered after the switch)
        self.doc.apply_prediction(event.y, event.x, event.label)
        self.done[event.key] = None
        project = self.session.project
        entry = project.entry(self.doc.image_id) if project is not None else None
        if entry is not None and entry.state == "new":
            project.set_state(entry, "predicted", checkpoint=self._model)
            self.session.entry_changed.emit(entry.id)
            self.session.states_changed.emit()

    def _on_finished(self) -> None:
        self._thread = None
        if self._restart:
            self._restart = False
            self.start()
