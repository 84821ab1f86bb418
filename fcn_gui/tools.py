"""Painting tools: brush, eraser, flood fill, polygon fill and class picker.

Each tool turns mouse input (in image pixel coordinates) into edits of a ``LabelDocument``;
every stroke, fill or polygon is one undo step.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from PySide6.QtCore import QPointF

from core.io.labels import VOID

from .document import LabelDocument


def segment_mask(p0: QPointF, p1: QPointF, radius: float) -> tuple[int, int, np.ndarray]:
    """A round brush dragged from p0 to p1: ``(y, x, mask)`` of its bounding box."""
    r = max(radius, 0.5)
    x0 = int(np.floor(min(p0.x(), p1.x()) - r))
    y0 = int(np.floor(min(p0.y(), p1.y()) - r))
    x1 = int(np.ceil(max(p0.x(), p1.x()) + r)) + 1
    y1 = int(np.ceil(max(p0.y(), p1.y()) + r)) + 1
    ys, xs = np.mgrid[y0:y1, x0:x1]
    px, py = xs + 0.5, ys + 0.5  # pixel centres
    ax, ay, bx, by = p0.x(), p0.y(), p1.x(), p1.y()
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    t = np.zeros_like(px) if length2 == 0 else np.clip(((px - ax) * dx + (py - ay) * dy) / length2, 0, 1)
    dist2 = (px - (ax + t * dx)) ** 2 + (py - (ay + t * dy)) ** 2
    return y0, x0, dist2 <= r * r


class Tool:
    """Base tool: no-op handlers. ``value()`` is the class index the tool writes."""

    label = "Tool"
    shortcut = ""
    uses_size = False

    def __init__(self, value_source) -> None:
        self.value_source = value_source

    def value(self) -> int:
        return self.value_source()

    def press(self, doc: LabelDocument, pos: QPointF) -> None: ...
    def move(self, doc: LabelDocument, pos: QPointF) -> None: ...
    def release(self, doc: LabelDocument, pos: QPointF) -> None: ...
    def cancel(self, doc: LabelDocument) -> None: ...


class BrushTool(Tool):
    """Round brush; drag to paint the current class."""

    label, shortcut, uses_size = "Brush", "B", True

    def __init__(self, value_source, size: int = 15) -> None:
        super().__init__(value_source)
        self.size = size
        self._last: QPointF | None = None

    def press(self, doc: LabelDocument, pos: QPointF) -> None:
        doc.begin_stroke()
        self._last = pos
        self._stamp(doc, pos, pos)

    def move(self, doc: LabelDocument, pos: QPointF) -> None:
        if self._last is not None:
            self._stamp(doc, self._last, pos)
            self._last = pos

    def release(self, doc: LabelDocument, pos: QPointF) -> None:
        if self._last is not None:
            self._last = None
            doc.end_stroke(f"{self.label} stroke")

    def _stamp(self, doc: LabelDocument, a: QPointF, b: QPointF) -> None:
        y, x, mask = segment_mask(a, b, self.size / 2)
        doc.paint_mask(y, x, mask, self.value())


class EraserTool(BrushTool):
    """Brush that writes void (unlabelled) or background, as the user picks."""

    label, shortcut = "Eraser", "E"

    def __init__(self, size: int = 25, to_void: bool = True) -> None:
        super().__init__(lambda: VOID if self.to_void else 0, size)
        self.to_void = to_void


class FillTool(Tool):
    """Flood fill: the contiguous region of the clicked pixel's label takes the current class."""

    label, shortcut = "Flood fill", "F"

    def press(self, doc: LabelDocument, pos: QPointF) -> None:
        from scipy import ndimage

        x, y = int(pos.x()), int(pos.y())
        if not doc.contains(x, y):
            return
        value = self.value()
        if doc.class_at(x, y) == value:
            return
        top, left, label = doc.fill_window(x, y)  # a slide's: the window around the click
        y, x = y - top, x - left
        components, _n = ndimage.label(label == label[y, x])  # 4-connected
        region = components == components[y, x]
        # The region's box from its rows and columns: np.nonzero listed every pixel (a 6-megapixel
        # region: 90 MB and 60 of the 120 ms a fill took on a 4000x3000 label).
        rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        doc.apply_mask(top + y0, left + x0, region[y0:y1, x0:x1], value, "Flood fill")


class PolygonTool(Tool):
    """Click the corners; double-click or Enter fills the polygon, Esc cancels."""

    label, shortcut = "Polygon fill", "P"

    def __init__(self, value_source) -> None:
        super().__init__(value_source)
        self.points: list[QPointF] = []

    def press(self, doc: LabelDocument, pos: QPointF) -> None:
        self.points.append(pos)

    def cancel(self, doc: LabelDocument) -> None:
        self.points = []

    def finish(self, doc: LabelDocument) -> None:
        points, self.points = self.points, []
        if len(points) < 3:
            return
        xs = [p.x() for p in points]
        ys = [p.y() for p in points]
        x0, y0 = max(0, int(min(xs))), max(0, int(min(ys)))
        x1, y1 = min(doc.width, int(max(xs)) + 2), min(doc.height, int(max(ys)) + 2)
        if x1 <= x0 or y1 <= y0:
            return
        canvas = Image.new("1", (x1 - x0, y1 - y0), 0)
        ImageDraw.Draw(canvas).polygon([(p.x() - x0, p.y() - y0) for p in points], fill=1, outline=1)
        doc.apply_mask(y0, x0, np.asarray(canvas, dtype=bool), self.value(), "Polygon fill")


class PickerTool(Tool):
    """Eyedropper: the clicked pixel's class becomes the current class."""

    label, shortcut = "Class picker", "I"

    def __init__(self, on_pick) -> None:
        super().__init__(lambda: 0)
        self.on_pick = on_pick

    def press(self, doc: LabelDocument, pos: QPointF) -> None:
        x, y = int(pos.x()), int(pos.y())
        if doc.contains(x, y) and doc.class_at(x, y) != VOID:
            self.on_pick(doc.class_at(x, y))


def make_tools(settings, current_class, pick_class) -> dict[str, Tool]:
    """The five tools, sized as the user left them; painting tools read ``current_class()``
    when they paint, the picker calls ``pick_class(index)``."""
    return {
        "brush": BrushTool(current_class, settings.get("brush_size", 15, int)),
        "eraser": EraserTool(settings.get("eraser_size", 25, int), settings.get("erase_to_void", True, bool)),
        "fill": FillTool(current_class),
        "polygon": PolygonTool(current_class),
        "picker": PickerTool(pick_class),
    }


def save_tool_sizes(settings, tools: dict[str, Tool]) -> None:
    """Remember the brush and eraser sizes for the next start."""
    settings.set("brush_size", tools["brush"].size)
    settings.set("eraser_size", tools["eraser"].size)
