"""Right dock "View and tools": overlay opacity, unsure pixels, brush size, eraser mode, order."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QLabel,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .settings import Settings


class ViewPanel(QWidget):
    """Emits ``opacity_changed(fraction)``, ``threshold_changed(fraction)``,
    ``size_changed(px)`` and ``erase_to_void_changed(bool)``; the check boxes are public."""

    opacity_changed = Signal(float)
    threshold_changed = Signal(float)
    size_changed = Signal(int)
    erase_to_void_changed = Signal(bool)

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(settings.get("opacity", 50, int))
        self.opacity.setToolTip("Overlay opacity (O toggles the overlay)")
        self.unsure = QCheckBox("Highlight unsure pixels (U)")
        self.threshold = QSlider(Qt.Orientation.Horizontal)
        self.threshold.setRange(5, 100)
        self.threshold.setValue(settings.get("unsure_threshold", 60, int))
        self.threshold.setToolTip("Pixels whose confidence is below this are highlighted")
        self.threshold_label = QLabel()
        self.brush_size = QSpinBox()
        self.brush_size.setRange(1, 500)
        self.brush_size.setSuffix(" px")
        self.brush_size.setToolTip("Brush/eraser size ([ and ] change it)")
        self.erase_mode = QComboBox()
        self.erase_mode.addItems(["to void (unlabelled)", "to background"])
        self.erase_mode.setCurrentIndex(0 if settings.get("erase_to_void", True, bool) else 1)
        self.predict_ahead = QCheckBox("Predict the next image ahead")
        self.predict_ahead.setChecked(settings.get("predict_ahead", True, bool))
        self.least_confident = QCheckBox("Next: least confident image first")
        self.least_confident.setToolTip(
            "Next (Right) goes to the image not yet reviewed whose prediction is least confident"
        )
        self.least_confident.setChecked(settings.get("least_confident_next", False, bool))
        form = QFormLayout()
        form.addRow("Opacity", self.opacity)
        form.addRow(self.unsure)
        form.addRow(self.threshold_label, self.threshold)
        form.addRow("Size", self.brush_size)
        form.addRow("Eraser", self.erase_mode)
        form.addRow(self.predict_ahead)
        form.addRow(self.least_confident)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(form)
        self.opacity.valueChanged.connect(lambda v: self.opacity_changed.emit(v / 100))
        self.threshold.valueChanged.connect(self._on_threshold)
        self.brush_size.valueChanged.connect(self.size_changed)
        self.erase_mode.currentIndexChanged.connect(lambda i: self.erase_to_void_changed.emit(i == 0))
        self._on_threshold(self.threshold.value())

    def _on_threshold(self, value: int) -> None:
        self.threshold_label.setText(f"Below {value}%")
        self.threshold_changed.emit(value / 100)

    def show_size(self, size: int | None) -> None:
        """The selected tool's size, without echoing it back; ``None`` for a tool without one."""
        self.brush_size.setEnabled(size is not None)
        if size is not None:
            self.brush_size.blockSignals(True)
            self.brush_size.setValue(size)
            self.brush_size.blockSignals(False)

    def scale_size(self, factor: float) -> None:
        """[ and ]: a bigger or smaller brush, by at least one pixel."""
        value = self.brush_size.value()
        self.brush_size.setValue(int(value * factor) + (1 if factor > 1 else 0))

    def save(self, settings: Settings) -> None:
        """Remember the choices for the next start."""
        settings.set("opacity", self.opacity.value())
        settings.set("unsure_threshold", self.threshold.value())
        settings.set("erase_to_void", self.erase_mode.currentIndex() == 0)
        settings.set("predict_ahead", self.predict_ahead.isChecked())
        settings.set("least_confident_next", self.least_confident.isChecked())
