"""Two small hand-drawn charts: the training curve and the corrections per reviewed image."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

LOSS = QColor(94, 129, 172)
MIOU = QColor(100, 170, 90)
BAR = QColor(235, 160, 60)


class _Chart(QWidget):
    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.setMinimumHeight(90)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def _frame(self, painter: QPainter) -> QRectF:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), self.palette().base())
        painter.setPen(self.palette().text().color())
        painter.drawText(QRectF(4, 2, self.width() - 8, 14), Qt.AlignmentFlag.AlignLeft, self.title)
        left = self.fontMetrics().horizontalAdvance("100%") + 6  # room for the scale's label
        plot = QRectF(left, 18, self.width() - left - 6, self.height() - 26)
        painter.setPen(QPen(QColor(160, 160, 160), 1))
        painter.drawRect(plot)
        return plot


class TrainingCurve(_Chart):
    """Loss per step (blue line, scaled to its maximum) and held-out mIoU (green dots, 0-1).

    Keeps the last ``MAX_POINTS`` steps, so hours of continuous learning draw as fast as a minute.
    """

    MAX_POINTS = 400

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Loss (blue) and held-out mIoU (green)", parent)
        self.losses: list[float] = []
        self.vals: list[tuple[int, float]] = []

    def clear(self) -> None:
        self.losses, self.vals = [], []
        self.update()

    def add(self, loss: float, val: float | None) -> None:
        self.losses.append(loss)
        if val is not None:
            self.vals.append((len(self.losses), val))
        if len(self.losses) > self.MAX_POINTS:
            drop = len(self.losses) - self.MAX_POINTS
            self.losses = self.losses[drop:]
            self.vals = [(i - drop, v) for i, v in self.vals if i > drop]
        self.update()

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        plot = self._frame(p)
        n = max(len(self.losses), 2)
        top = max(self.losses, default=1.0) or 1.0
        if self.losses:
            path = QPainterPath()
            for i, loss in enumerate(self.losses):
                pt = QPointF(
                    plot.left() + plot.width() * i / (n - 1), plot.bottom() - plot.height() * loss / top
                )
                path.lineTo(pt) if i else path.moveTo(pt)
            p.setPen(QPen(LOSS, 1.5))
            p.drawPath(path)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(MIOU)
        for step, val in self.vals:
            x = plot.left() + plot.width() * (step - 1) / (n - 1)
            p.drawEllipse(QPointF(x, plot.bottom() - plot.height() * val), 3.5, 3.5)


class CorrectionChart(_Chart):
    """Share of pixels the user changed from the prediction, per reviewed image, in order."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Pixels corrected per reviewed image", parent)
        self.values: list[float] = []

    def set_values(self, values: list[float]) -> None:
        self.values = values
        self.update()

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        plot = self._frame(p)
        if not self.values:
            p.setPen(QColor(140, 140, 140))
            p.drawText(plot, Qt.AlignmentFlag.AlignCenter, "none reviewed yet")
            return
        top = max(max(self.values), 0.05)
        width = plot.width() / len(self.values)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(BAR)
        for i, v in enumerate(self.values):
            h = plot.height() * v / top
            p.drawRect(QRectF(plot.left() + i * width + 1, plot.bottom() - h, max(width - 2, 1), h))
        p.setPen(self.palette().text().color())
        p.drawText(QRectF(0, plot.top() - 2, plot.left() - 3, 14), Qt.AlignmentFlag.AlignRight, f"{top:.0%}")
