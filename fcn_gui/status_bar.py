"""The status bar: cursor position, class and confidence under it, background progress with
Cancel, what the learner last did, zoom and the device the model runs on."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QProgressBar, QPushButton, QStatusBar

from core.io.labels import VOID


class StatusBar(QStatusBar):
    """Emits ``cancel_requested`` when its Cancel button is clicked."""

    cancel_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.fields = {k: QLabel() for k in ("pos", "cls", "conf", "learn", "zoom", "device")}
        self.fields["learn"].setStyleSheet("QLabel { color: #2e7d32; }")
        for key, width in (("pos", 90), ("cls", 130), ("conf", 90)):
            self.fields[key].setMinimumWidth(width)
            self.addWidget(self.fields[key])
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(180)
        self.progress.setMaximumHeight(16)
        self.progress.hide()
        self.cancel = QPushButton("Cancel")
        self.cancel.setFlat(True)
        self.cancel.hide()
        self.cancel.clicked.connect(self.cancel_requested)
        for widget in (self.progress, self.cancel, self.fields["learn"], self.fields["zoom"]):
            self.addPermanentWidget(widget)
        self.addPermanentWidget(self.fields["device"])
        self.fields["device"].setText("model: loading…")

    def show_hover(self, doc, x: int, y: int) -> None:
        """What is under the cursor at image pixel (x, y); ``x < 0`` clears it."""
        if doc is None or x < 0:
            for key in ("pos", "cls", "conf"):
                self.fields[key].setText("")
            return
        self.fields["pos"].setText(f"x {x}, y {y}")
        index = doc.class_at(x, y)
        names = [c.name for c in doc.classes]
        name = "void" if index == VOID else names[index] if index < len(names) else str(index)
        self.fields["cls"].setText(f"class: {name}")
        conf = doc.confidence_at(x, y)
        self.fields["conf"].setText("" if conf is None else f"confidence {conf:.0%}")

    def show_busy(self, text: str = "") -> None:
        """Background work started: show the progress bar and Cancel."""
        if text:
            self.showMessage(text, 3000)
        self.progress.setRange(0, 0)
        self.progress.show()
        self.cancel.show()

    def show_progress(self, done: int, total: int, _message: str = "") -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def show_idle(self) -> None:
        self.progress.hide()
        self.cancel.hide()

    def show_zoom(self, zoom: float) -> None:
        self.fields["zoom"].setText(f"{zoom:.0%}")

    def show_device(self, text: str) -> None:
        self.fields["device"].setText(text)

    def show_learning(self, text: str) -> None:
        self.fields["learn"].setText(text)
