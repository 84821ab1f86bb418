"""Right dock: continuous learning from the user's corrections, its progress and kept models."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from .charts import CorrectionChart, TrainingCurve

STATES = {
    "training": "Learning from {train} image{s} you painted or reviewed ({heldout} held out to check it)",
    "waiting": "Waiting: the image you look at is being predicted first",
    "paused": "Paused",
    "resting": "Resting: no improvement for a while; new reviews wake it",
    "idle": "Waiting for a reviewed image with labelled pixels",
}


class LearningPanel(QWidget):
    """Emits ``enabled_changed(bool)``, ``pause_toggled(bool)``, ``rollback_requested(path)``."""

    enabled_changed = Signal(bool)
    orientations_changed = Signal(bool)
    pause_toggled = Signal(bool)
    rollback_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.enabled = QCheckBox("Learn from my corrections")
        self.enabled.setChecked(True)
        self.enabled.setToolTip(
            "Learns in the background from your strokes on the image you paint (the rest of it is "
            "predicted again after each stroke) and from the images you mark reviewed (R); the other "
            "images switch to the new model whenever it scores better on held-out reviewed images"
        )
        self.orientations = QCheckBox("Images have no up or down (microscopy, aerial)")
        self.orientations.setToolTip("Also learn from vertically flipped and rotated copies of your labels")
        self.pause = QPushButton("Pause")
        self.pause.setCheckable(True)
        self.pause.setEnabled(False)
        self.status = QLabel("Paint a few strokes or mark an image reviewed (R): learning starts by itself.")
        self.status.setWordWrap(True)
        # Its text changes with every step: it wraps to the dock, never widens or narrows it
        # (a dock that resized moved the canvas under the brush).
        # Its height follows its wrapped text (the policy made anew loses that flag: the text was
        # cut to half a line in a dock full of charts, seen in a screenshot).
        policy = QSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        policy.setHeightForWidth(True)
        self.status.setSizePolicy(policy)
        self.improved = QLabel("")
        self.improved.setWordWrap(True)
        self.improved.setStyleSheet("QLabel { color: #2e7d32; font-weight: bold; }")
        self.curve = TrainingCurve()
        self.models = QListWidget()
        self.models.setMaximumHeight(90)
        self.rollback = QPushButton("Use selected model")
        self.rollback.setToolTip("Roll back (or forward) to a kept model and learn on from it")
        self.disk = QLabel("")
        self.disk.setStyleSheet("QLabel { color: gray; }")
        self.corrections = CorrectionChart()
        self._last_score: float | None = None
        top = QHBoxLayout()
        top.addWidget(self.enabled, 1)
        top.addWidget(self.pause)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.orientations)
        layout.addWidget(self.status)
        layout.addWidget(self.improved)
        layout.addWidget(self.curve)
        layout.addWidget(QLabel("Kept models (best few and the newest)"))
        layout.addWidget(self.models)
        row = QHBoxLayout()
        row.addWidget(self.rollback)
        row.addWidget(self.disk, 1, Qt.AlignmentFlag.AlignRight)
        layout.addLayout(row)
        layout.addWidget(self.corrections)
        layout.addStretch(1)
        self.enabled.toggled.connect(self.enabled_changed)
        self.orientations.toggled.connect(self.orientations_changed)
        self.pause.toggled.connect(self._on_pause)
        self.rollback.clicked.connect(self._rollback_selected)

    def _on_pause(self, paused: bool) -> None:
        self.pause.setText("Resume" if paused else "Pause")
        self.pause_toggled.emit(paused)

    def set_running(self, running: bool) -> None:
        self.pause.setEnabled(running)
        if not running:
            self.status.setText(
                "Learning is off."
                if not self.enabled.isChecked()
                else "Learning stopped; it starts with the next review."
            )

    def show_untrained(self) -> None:
        """The model in use has learnt nothing: say how to teach it."""
        self.status.setText(
            "Nothing learnt yet, so nothing is predicted: paint a few strokes of each class on an "
            "image. The rest of it fills in within seconds and again after each stroke; correct "
            "it and mark it reviewed (R) when it is right. The model then predicts the other images."
        )

    def show_event(self, event) -> None:
        """A ``core.training.learner.LearnerEvent``: the state line, and the curve for steps."""
        text = STATES.get(event.state, "").format(
            train=event.train_images, heldout=event.heldout_images, s="s" * (event.train_images != 1)
        )
        if event.state == "training":
            text += f"\nstep {event.step}, loss {event.loss:.3f}, {event.train_seconds:.0f} s of training"
            new_score = event.score is not None and event.score != self._last_score
            self.curve.add(event.loss, event.score if new_score else None)  # a dot per held-out scoring
            self._last_score = event.score
        if text:
            self.status.setText(text)

    def show_adopted(self, text: str) -> None:
        self.improved.setText(text)

    def set_history(self, entries, in_use: str | None, disk_bytes: int) -> None:
        """``core.training.history.HistoryEntry`` s, newest last; marks the one in use."""
        self.models.clear()
        for e in entries:
            item = QListWidgetItem(e.describe() + ("   [in use]" if str(e.path) == in_use else ""))
            item.setData(Qt.ItemDataRole.UserRole, str(e.path))
            self.models.addItem(item)
        if self.models.count():
            self.models.setCurrentRow(self.models.count() - 1)
        self.rollback.setEnabled(self.models.count() > 0)
        self.disk.setText(f"{disk_bytes / 2**20:,.0f} MB on disk" if disk_bytes else "")

    def _rollback_selected(self) -> None:
        item = self.models.currentItem()
        if item is not None:
            self.rollback_requested.emit(item.data(Qt.ItemDataRole.UserRole))
