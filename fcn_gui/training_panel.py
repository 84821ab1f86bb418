"""Right dock: fine-tune on the reviewed images in the background, and pick which round to use."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .charts import CorrectionChart, TrainingCurve


class TrainingPanel(QWidget):
    """Emits ``start_requested(steps, minutes)``, ``stop_requested``, ``use_requested(path)``."""

    start_requested = Signal(int, int)
    stop_requested = Signal()
    use_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.steps = QSpinBox()
        self.steps.setRange(1, 100000)
        self.steps.setValue(200)
        self.minutes = QSpinBox()
        self.minutes.setRange(0, 24 * 60)
        self.minutes.setSpecialValueText("no limit")
        self.minutes.setSuffix(" min")
        self.start = QPushButton("Train on reviewed")
        self.stop = QPushButton("Stop")
        self.stop.setEnabled(False)
        self.status = QLabel("Mark corrected images reviewed (R), then train.")
        self.status.setWordWrap(True)
        self.curve = TrainingCurve()
        self.rounds = QListWidget()
        self.rounds.setMaximumHeight(90)
        self.use = QPushButton("Use selected model")
        self.offer = QPushButton()
        self.offer.setStyleSheet("QPushButton { background: #dff0d8; font-weight: bold; padding: 4px; }")
        self.offer.hide()
        self.corrections = CorrectionChart()
        form = QFormLayout()
        form.addRow("Steps", self.steps)
        form.addRow("Time budget", self.minutes)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start)
        buttons.addWidget(self.stop)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.offer)
        layout.addWidget(self.curve)
        layout.addWidget(QLabel("Checkpoints (best of each round)"))
        layout.addWidget(self.rounds)
        layout.addWidget(self.use)
        layout.addWidget(self.corrections)
        layout.addStretch(1)
        self.start.clicked.connect(
            lambda: self.start_requested.emit(self.steps.value(), self.minutes.value())
        )
        self.stop.clicked.connect(self.stop_requested)
        self.use.clicked.connect(self._use_selected)
        self.offer.clicked.connect(lambda: self.use_requested.emit(self.offer.property("path")))

    def set_running(self, running: bool) -> None:
        self.start.setEnabled(not running)
        self.stop.setEnabled(running)
        if running:
            self.curve.clear()
            self.offer.hide()

    def offer_model(self, path: Path, miou: float | None) -> None:
        """Show the one-click 'use the new model' offer for a finished round."""
        score = "" if miou is None else f" (validation mIoU {miou:.3f})"
        self.offer.setText(f"Use the new model{score} and re-predict")
        self.offer.setProperty("path", str(path))
        self.offer.show()

    def set_rounds(self, rounds: list[tuple[Path, str]], in_use: str | None) -> None:
        self.rounds.clear()
        for path, text in rounds:
            item = QListWidgetItem(text + ("   [in use]" if str(path) == in_use else ""))
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            self.rounds.addItem(item)
        if self.rounds.count():
            self.rounds.setCurrentRow(self.rounds.count() - 1)

    def _use_selected(self) -> None:
        item = self.rounds.currentItem()
        if item is not None:
            self.use_requested.emit(item.data(Qt.ItemDataRole.UserRole))
