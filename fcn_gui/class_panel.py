"""Right dock: the class list with colour swatches and hotkeys, and class editing buttons."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QColorDialog,
    QHBoxLayout,
    QInputDialog,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.io.labels import VOID, LabelClass

HOTKEYS = "1234567890"


def swatch(color: tuple[int, int, int], size: int = 16) -> QIcon:
    pix = QPixmap(size, size)
    pix.fill(QColor(*color))
    return QIcon(pix)


class ClassPanel(QWidget):
    """Emits ``current_changed(index)``. The add/rename/recolour/remove buttons ask the user
    for the details in a dialog, then emit ``add_requested(name)``,
    ``rename_requested(index, name)``, ``recolor_requested(index, rgb)`` or
    ``remove_requested(index, remap_to)`` (``remap_to`` a class index or ``VOID``)."""

    current_changed = Signal(int)
    add_requested = Signal(str)
    rename_requested = Signal(int, str)
    recolor_requested = Signal(int, tuple)
    remove_requested = Signal(int, int)

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
        self.classes: list[LabelClass] = []
        self.buttons["add"].clicked.connect(self.ask_add)
        self.buttons["rename"].clicked.connect(lambda: self.ask_rename(self.current()))
        self.buttons["recolor"].clicked.connect(lambda: self.ask_recolor(self.current()))
        self.buttons["remove"].clicked.connect(lambda: self.ask_remove(self.current()))

    # --- the user's requests --------------------------------------------------------------
    def ask_add(self) -> None:
        name, ok = QInputDialog.getText(self, "Add class", "Name of the new class:")
        if ok and name.strip():
            self.add_requested.emit(name)

    def ask_rename(self, index: int) -> None:
        name, ok = QInputDialog.getText(self, "Rename class", "New name:", text=self.classes[index].name)
        if ok:
            self.rename_requested.emit(index, name)

    def ask_recolor(self, index: int) -> None:
        cls = self.classes[index]
        color = QColorDialog.getColor(QColor(*cls.color), self, f"Colour of {cls.name}")
        if color.isValid():
            self.recolor_requested.emit(index, (color.red(), color.green(), color.blue()))

    def ask_remove(self, index: int) -> None:
        name = self.classes[index].name
        others = ["void (unlabelled)"] + [f"{i}: {c.name}" for i, c in enumerate(self.classes) if i != index]
        target, ok = QInputDialog.getItem(
            self, "Remove class", f"Pixels of '{name}' in every label become:", others, 0, False
        )
        if not ok:
            return
        question = f"Remove '{name}' and rewrite every label? (It runs in the background; Cancel undoes it.)"
        if QMessageBox.question(self, "Remove class", question) != QMessageBox.StandardButton.Yes:
            return
        self.remove_requested.emit(index, VOID if target == others[0] else int(target.split(":")[0]))

    # --- state ---------------------------------------------------------------------------
    def set_classes(self, classes: list[LabelClass], keep: int | None = None) -> None:
        self.classes = list(classes)
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
