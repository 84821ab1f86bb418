"""The image view: image + label overlay, zoom around the cursor, pan, and tool dispatch.

Only the widget rectangle an edit touched is repainted; drawing is nearest-neighbour so
every label pixel stays visible when zoomed in.
"""

from __future__ import annotations

import itertools

from PySide6.QtCore import QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QKeyEvent, QMouseEvent, QPainter, QPaintEvent, QPen, QWheelEvent
from PySide6.QtWidgets import QWidget

from .document import LabelDocument
from .tools import BrushTool, PolygonTool, Tool

MIN_SCALE, MAX_SCALE = 0.02, 40.0


class Canvas(QWidget):
    """Shows a ``LabelDocument``; emits ``hovered(x, y)`` in image pixels (-1, -1 outside)."""

    hovered = Signal(int, int)
    zoom_changed = Signal(float)
    view_changed = Signal(QRect)  # the image pixels in the window, after a zoom, pan or resize

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setMinimumSize(320, 240)
        self.doc: LabelDocument | None = None
        self.tool: Tool | None = None
        self.scale = 1.0
        self.offset = QPointF(0, 0)
        self.opacity = 0.5
        self.overlay_visible = True
        self.unsure_visible = False
        self._pan_from: QPointF | None = None
        self._space_down = False
        self._painting = False
        self._cursor_pos: QPointF | None = None
        self._placeholder = "Open images or a folder (File menu, or drop them here)"

    # --- document and view state --------------------------------------------------------
    def set_document(self, doc: LabelDocument | None, keep_view: bool = False) -> None:
        if self.doc is not None:
            self.doc.changed.disconnect(self._on_doc_changed)
            if getattr(self.doc, "loader", None) is not None:
                self.doc.loader.loaded.disconnect(self.update)
        self.doc = doc
        if doc is not None:
            doc.changed.connect(self._on_doc_changed)
            if getattr(doc, "loader", None) is not None:  # a slide: repaint as its tiles arrive
                doc.loader.loaded.connect(self.update)
            if not keep_view:
                self.fit()
            else:
                self.view_changed.emit(self.visible_image_rect())
        self.update()

    def set_tool(self, tool: Tool) -> None:
        if self.tool is not None and self.doc is not None:
            self.tool.cancel(self.doc)
        self.tool = tool
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.update()

    def set_opacity(self, opacity: float) -> None:
        self.opacity = opacity
        self.update()

    def set_overlay_visible(self, visible: bool) -> None:
        self.overlay_visible = visible
        self.update()

    def set_unsure_visible(self, visible: bool) -> None:
        self.unsure_visible = visible
        self.update()

    def fit(self) -> None:
        """Zoom so the whole image is visible, centred."""
        if self.doc is None:
            return
        s = min(self.width() / self.doc.width, self.height() / self.doc.height) * 0.98
        self._set_scale(s, QPointF(self.width() / 2, self.height() / 2), centre=True)

    def actual_size(self) -> None:
        """100%: one image pixel per screen pixel, keeping the centre."""
        self._set_scale(1.0, QPointF(self.width() / 2, self.height() / 2))

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        anchor = anchor if anchor is not None else QPointF(self.width() / 2, self.height() / 2)
        self._set_scale(self.scale * factor, anchor)

    def _set_scale(self, scale: float, anchor: QPointF, centre: bool = False) -> None:
        lowest = MIN_SCALE
        if self.doc is not None:  # a 100,000-pixel slide fits the window only below 2 %
            lowest = min(lowest, 0.5 * min(self.width() / self.doc.width, self.height() / self.doc.height))
        scale = min(MAX_SCALE, max(lowest, scale))
        if centre and self.doc is not None:
            self.offset = QPointF(
                (self.width() - self.doc.width * scale) / 2, (self.height() - self.doc.height * scale) / 2
            )
        else:
            image_pt = self.to_image(anchor)
            self.offset = anchor - image_pt * scale
        self.scale = scale
        self.zoom_changed.emit(scale)
        self._view_moved()

    def visible_image_rect(self) -> QRect:
        """The image pixels the window shows (clipped to the image)."""
        if self.doc is None:
            return QRect()
        whole = QRectF(self.to_image(QPointF(0, 0)), self.to_image(QPointF(self.width(), self.height())))
        return whole.intersected(QRectF(0, 0, self.doc.width, self.doc.height)).toAlignedRect()

    def _view_moved(self) -> None:
        self.update()
        self.view_changed.emit(self.visible_image_rect())

    # --- coordinates --------------------------------------------------------------------
    def to_image(self, p: QPointF) -> QPointF:
        return (p - self.offset) / self.scale

    def to_widget_rect(self, r: QRect) -> QRect:
        top_left = QPointF(r.x(), r.y()) * self.scale + self.offset
        return QRectF(
            top_left.x(), top_left.y(), r.width() * self.scale, r.height() * self.scale
        ).toAlignedRect()

    def _on_doc_changed(self, rect: QRect) -> None:
        self.update(self.to_widget_rect(rect).adjusted(-2, -2, 2, 2))

    # --- painting -----------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.fillRect(event.rect(), QColor(45, 45, 48))
        doc = self.doc
        if doc is None:
            painter.setPen(QColor(170, 170, 170))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self._placeholder)
            return
        exposed = QRectF(event.rect())
        src = QRectF(self.to_image(exposed.topLeft()), self.to_image(exposed.bottomRight()))
        src = src.adjusted(-1, -1, 2, 2).intersected(QRectF(0, 0, doc.width, doc.height)).toAlignedRect()
        if src.isEmpty():
            return
        if hasattr(doc, "paint_view"):  # a slide: drawn from its tiles
            view = self.visible_image_rect()
            doc.paint_view(painter, self, src, view, self.overlay_visible, self.opacity)
            self._paint_tool_preview(painter)
            return
        target = QRectF(self.to_widget_rect(src))
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.scale < 1)
        painter.drawImage(target, doc.image, QRectF(src))
        if self.overlay_visible:
            painter.setOpacity(self.opacity)
            painter.drawImage(target, doc.overlay, QRectF(src))
        if self.unsure_visible and doc.confidence is not None:
            painter.setOpacity(0.6)
            painter.drawImage(target, doc.unsure, QRectF(src))
        painter.setOpacity(1.0)
        self._paint_tool_preview(painter)

    def _paint_tool_preview(self, painter: QPainter) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if isinstance(self.tool, BrushTool) and self._cursor_pos is not None:
            r = self.tool.size / 2 * self.scale
            painter.setPen(QPen(QColor(255, 255, 255), 1.5))
            painter.drawEllipse(self._cursor_pos, r, r)
            painter.setPen(QPen(QColor(0, 0, 0), 1))
            painter.drawEllipse(self._cursor_pos, r + 1.5, r + 1.5)
        if isinstance(self.tool, PolygonTool) and self.tool.points:
            pts = [p * self.scale + self.offset for p in self.tool.points]
            if self._cursor_pos is not None:
                pts.append(self._cursor_pos)
            painter.setPen(QPen(QColor(255, 230, 0), 2, Qt.PenStyle.DashLine))
            for a, b in itertools.pairwise(pts):
                painter.drawLine(a, b)

    # --- input --------------------------------------------------------------------------
    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt override
        steps = event.angleDelta().y() / 120
        if steps:
            self.zoom_by(1.25**steps, event.position())

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        pos = event.position()
        if event.button() == Qt.MouseButton.MiddleButton or (
            event.button() == Qt.MouseButton.LeftButton and self._space_down
        ):
            self._pan_from = pos
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
            return
        if event.button() == Qt.MouseButton.LeftButton and self.doc is not None and self.tool is not None:
            self._painting = True
            self.tool.press(self.doc, self.to_image(pos))
            self.update()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        pos = event.position()
        old = self._cursor_pos
        self._cursor_pos = pos
        if self._pan_from is not None:
            self.offset += pos - self._pan_from
            self._pan_from = pos
            self._view_moved()
        elif self._painting and self.doc is not None and self.tool is not None:
            self.tool.move(self.doc, self.to_image(pos))
        self._update_preview(old, pos)
        if self.doc is not None:
            p = self.to_image(pos)
            x, y = int(p.x() // 1), int(p.y() // 1)
            inside = self.doc.contains(x, y)
            self.hovered.emit(x if inside else -1, y if inside else -1)

    def _update_preview(self, old: QPointF | None, new: QPointF) -> None:
        if isinstance(self.tool, PolygonTool) and self.tool.points:
            self.update()
            return
        if not isinstance(self.tool, BrushTool):
            return
        r = int(self.tool.size / 2 * self.scale) + 4
        for p in (old, new):
            if p is not None:
                self.update(QRect(int(p.x()) - r, int(p.y()) - r, 2 * r, 2 * r))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if self._pan_from is not None and event.button() in (
            Qt.MouseButton.MiddleButton,
            Qt.MouseButton.LeftButton,
        ):
            self._pan_from = None
            self.setCursor(Qt.CursorShape.CrossCursor)
            return
        if self._painting and self.doc is not None and self.tool is not None:
            self._painting = False
            self.tool.release(self.doc, self.to_image(event.position()))

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if isinstance(self.tool, PolygonTool) and self.doc is not None:
            self.tool.finish(self.doc)
            self.update()
        else:
            super().mouseDoubleClickEvent(event)

    def leaveEvent(self, event) -> None:  # noqa: N802 - Qt override
        old, self._cursor_pos = self._cursor_pos, None
        if old is not None:
            self.update()
        self.hovered.emit(-1, -1)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        key = event.key()
        if key == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = True
            self.setCursor(Qt.CursorShape.OpenHandCursor)
        elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and isinstance(self.tool, PolygonTool) and self.doc:
            self.tool.finish(self.doc)
            self.update()
        elif key == Qt.Key.Key_Escape and self.tool is not None and self.doc is not None:
            self.tool.cancel(self.doc)
            self.update()
        else:
            super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = False
            self._pan_from = None
            self.setCursor(Qt.CursorShape.CrossCursor)
        else:
            super().keyReleaseEvent(event)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if self.doc is not None and event.oldSize().width() <= 0:
            self.fit()
        elif self.doc is not None:
            self.view_changed.emit(self.visible_image_rect())
