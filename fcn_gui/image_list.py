"""Left dock: the project's images with thumbnails, state badges, a state filter and progress."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QVBoxLayout,
    QWidget,
)

from core.store.project import STATES, Project

from .runner import Runner
from .workers import GeneratorThread

THUMB = 64
STATE_COLORS = {
    "new": QColor(150, 150, 150),
    "predicted": QColor(94, 129, 172),
    "edited": QColor(235, 160, 60),
    "reviewed": QColor(100, 170, 90),
}


def _thumbnails(items: list[tuple[str, str]]):
    """Yield ``(image_id, QImage)`` thumbnails, made on a worker thread (an unreadable image
    gets none: the user hears why when opening it)."""
    import qimage2ndarray

    from core.base.errors import FcnGuiError
    from core.io.thumbnails import thumbnail

    for image_id, path in items:
        try:
            qimg = qimage2ndarray.array2qimage(thumbnail(path, THUMB))  # owns its pixels
        except (FcnGuiError, OSError, ValueError):
            qimg = QImage()
        yield image_id, qimg


class ImageListPanel(QWidget):
    """Emits ``activated(image_id)`` when the user picks an image."""

    activated = Signal(str)

    def __init__(self, runner: Runner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._runner = runner
        self.project: Project | None = None
        self.older: Callable[[str], bool] = lambda image_id: False  # predicted by an older model?
        self.filter = QComboBox()
        self.filter.addItems(["All images", *[s.capitalize() for s in STATES], "Not reviewed"])
        self.filter.setToolTip("Show only images in this state")
        self.progress_label = QLabel("No project")
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(8)
        self.list = QListWidget()
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setUniformItemSizes(True)
        self.list.setSpacing(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.filter)
        layout.addWidget(self.progress_label)
        layout.addWidget(self.progress)
        layout.addWidget(self.list, 1)
        self._items: dict[str, QListWidgetItem] = {}
        self._thumbs: dict[str, QPixmap] = {}
        self._thread: GeneratorThread | None = None
        self.filter.currentIndexChanged.connect(self._apply_filter)
        self.list.currentItemChanged.connect(self._on_current)

    def set_project(self, project: Project | None) -> None:
        self.stop_thumbnails()
        self.project = project
        self.list.clear()
        self._items.clear()
        self._thumbs.clear()
        if project is None:
            self.progress_label.setText("No project")
            return
        blank = QPixmap(THUMB, THUMB)
        blank.fill(QColor(60, 60, 64))
        for entry in project.images:
            item = QListWidgetItem(entry.id)
            item.setData(Qt.ItemDataRole.UserRole, entry.id)
            item.setToolTip(str(project.image_path(entry)))
            self._items[entry.id] = item
            self._thumbs[entry.id] = blank
            self.list.addItem(item)
        self.refresh()
        jobs = [(e.id, str(project.image_path(e))) for e in project.images]
        thread = self._runner.start(
            lambda: _thumbnails(jobs),
            "thumbnails",
            on_yield=lambda pair: self.add_thumbnail(*pair),
            on_finished=lambda: self._forget(thread),
        )
        self._thread = thread

    def _forget(self, thread: GeneratorThread) -> None:
        if self._thread is thread:
            self._thread = None

    def stop_thumbnails(self) -> None:
        if self._thread is not None:
            self._thread.cancel()
            self._runner.finish(self._thread)
            self._thread = None

    def add_thumbnail(self, image_id: str, image: QImage) -> None:
        if image_id in self._items and not image.isNull():
            self._thumbs[image_id] = QPixmap.fromImage(image)
            self._update_item(image_id)

    def refresh(self) -> None:
        """Re-read states from the project: badges, filter and progress."""
        if self.project is None:
            return
        for image_id in self._items:
            self._update_item(image_id)
        counts = self.project.counts()
        total = len(self.project.images)
        self.progress_label.setText(f"{counts['reviewed']} of {total} reviewed")
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(counts["reviewed"])
        self._apply_filter()

    def _update_item(self, image_id: str) -> None:
        entry = self.project.entry(image_id)
        item = self._items[image_id]
        item.setText(f"{entry.id}\n{entry.state}{', older model' if self.older(image_id) else ''}")
        item.setIcon(_badged(self._thumbs[image_id], STATE_COLORS[entry.state]))

    def _apply_filter(self) -> None:
        if self.project is None:
            return
        index = self.filter.currentIndex()
        for image_id, item in self._items.items():
            state = self.project.entry(image_id).state
            if index == 0:
                visible = True
            elif index <= len(STATES):
                visible = state == STATES[index - 1]
            else:
                visible = state != "reviewed"
            item.setHidden(not visible)

    def select(self, image_id: str) -> None:
        item = self._items.get(image_id)
        if item is not None and self.list.currentItem() is not item:
            self.list.blockSignals(True)
            self.list.setCurrentItem(item)
            self.list.blockSignals(False)
            self.list.scrollToItem(item)

    def _on_current(self, item: QListWidgetItem | None, _previous) -> None:
        if item is not None:
            self.activated.emit(item.data(Qt.ItemDataRole.UserRole))


def _badged(thumb: QPixmap, color: QColor) -> QPixmap:
    out = QPixmap(THUMB, THUMB)
    out.fill(Qt.GlobalColor.transparent)
    p = QPainter(out)
    p.drawPixmap((THUMB - thumb.width()) // 2, (THUMB - thumb.height()) // 2, thumb)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(QColor(255, 255, 255))
    p.setBrush(color)
    p.drawEllipse(THUMB - 17, THUMB - 17, 14, 14)
    p.end()
    return out
