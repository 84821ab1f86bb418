"""Right dock: the class list with colour swatches and hotkeys, and class editing buttons."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from core.labels import LabelClass

HOTKEYS = "1234567890"


def swatch(color: tuple[int, int, int], size: int = 16) -> QIcon:
    pix = QPixmap(size, size)
    pix.fill(QColor(*color))
    return QIcon(pix)


class ClassPanel(QWidget):
    """Emits ``current_changed(index)``; the add/rename/recolour/remove buttons emit requests."""

    current_changed = Signal(int)
    add_requested = Signal()
    rename_requested = Signal(int)
    recolor_requested = Signal(int)
    remove_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setAlternatingRowColors(True)
        buttons = QHBoxLayout()
        self.buttons = {}
        for key, text, tip in (
            ("add", "Add", "Add a class"),
            ("rename", "Rename", "Rename the selected class"),
            ("recolor", "Colour", "Change the selected class's colour"),
            ("remove", "Remove", "Remove the selected class (its pixels are remapped)"),
        ):
            button = QPushButton(text)
            button.setToolTip(tip)
            buttons.addWidget(button)
            self.buttons[key] = button
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self.list.currentRowChanged.connect(self.current_changed)
        self.buttons["add"].clicked.connect(self.add_requested)
        self.buttons["rename"].clicked.connect(lambda: self.rename_requested.emit(self.current()))
        self.buttons["recolor"].clicked.connect(lambda: self.recolor_requested.emit(self.current()))
        self.buttons["remove"].clicked.connect(lambda: self.remove_requested.emit(self.current()))

    def set_classes(self, classes: list[LabelClass], keep: int | None = None) -> None:
        current = self.current() if keep is None else keep
        self.list.blockSignals(True)
        self.list.clear()
        for i, c in enumerate(classes):
            key = f"  [{HOTKEYS[i]}]" if i < len(HOTKEYS) else ""
            item = QListWidgetItem(swatch(c.color), f"{c.name}{key}")
            item.setData(Qt.ItemDataRole.UserRole, i)
            self.list.addItem(item)
        self.list.blockSignals(False)
        self.set_current(min(max(current, 0), len(classes) - 1))

    def current(self) -> int:
        return max(self.list.currentRow(), 0)

    def set_current(self, index: int) -> None:
        if 0 <= index < self.list.count():
            self.list.setCurrentRow(index)
            self.current_changed.emit(index)
