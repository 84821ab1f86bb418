"""The project's images as the list shows them: a Qt item model over the project's database.

The view asks only for the rows on screen; each is read a page at a time and kept in a small
cache. With every image shown in the project's order (the usual view) the rows are the
database's row numbers and nothing is held per image, at any project size. A state filter, a
name search or another order asks the database once for the matching ids and their sort
keys, on a worker, and keeps them while they apply; an image whose state changes is moved in
or out of them in place. A change repaints its own row (``dataChanged`` for that row).
Thumbnails are made on a worker for the rows asked for, kept in a bounded cache in memory and
in the project's ``cache/thumbnails.db``, and read with the project's pixel limit.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Callable

from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPixmap

from core.store.manifest import STATES, ImageEntry
from core.store.project import Project, sort_key

from .runner import Runner
from .workers import GeneratorThread

THUMB = 64
ENTRY_CACHE = 2000  # entries kept for the rows met last
PAGE = 100  # rows read at a time
PIXMAPS = 3000  # thumbnails kept in memory (about 50 MB at most)
BADGED = 300  # thumbnails with their state's badge, for the rows painted last
STATE_COLORS = {
    "new": QColor(150, 150, 150),
    "predicted": QColor(94, 129, 172),
    "edited": QColor(235, 160, 60),
    "reviewed": QColor(100, 170, 90),
}
FILTERS = {
    "All images": None,
    **{state.capitalize(): (state,) for state in STATES},
    "Not reviewed": ("new", "predicted", "edited"),
}
ORDERS = {
    "Project order": "order",
    "Name": "name",
    "State": "state",
    "Least confident first": "least confident",
}
IdRole = Qt.ItemDataRole.UserRole


class ImageListModel(QAbstractListModel):
    """One row per image matching ``states`` and ``search``, sorted by ``order``.
    Signals: ``rows_ready()`` after the rows were (re)built, ``counts_changed()``."""

    rows_ready = Signal()

    def __init__(self, runner: Runner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._runner = runner
        self.project: Project | None = None
        self.states: tuple[str, ...] | None = None
        self.search = ""
        self.order = "order"
        self.older: Callable[[str], bool] = lambda image_id: False  # predicted by an older model?
        self._count = 0  # rows in the plain view (the project's order, no filter)
        self._keys: list[tuple] | None = None  # the filtered view: sort keys ...
        self._ids: list[str] | None = None  # ... and ids, in order
        self._key_of: dict[str, tuple] = {}  # ... and each shown id's key
        self._entries: OrderedDict[str, ImageEntry] = OrderedDict()
        self._by_row: dict[int, str] = {}  # the plain view's rows met, to their ids
        self._query: GeneratorThread | None = None
        self._changed_meanwhile: set[str] = set()  # changed while the rows were queried
        self._badged: OrderedDict[tuple[str, str], QPixmap] = OrderedDict()  # (id, state) -> icon
        self.thumbnails = Thumbnails(runner, self)
        self.thumbnails.ready.connect(self._on_thumbnail)

    # --- what is shown ---------------------------------------------------------------------
    @property
    def plain(self) -> bool:
        """Every image in the project's order: rows are row numbers, nothing is held per image."""
        return self.states is None and not self.search and self.order == "order"

    def set_project(self, project: Project | None) -> None:
        self.thumbnails.set_project(project)
        self._badged.clear()
        self.project = project
        self._rebuild()

    def set_view(self, states: tuple[str, ...] | None, search: str, order: str) -> None:
        """Show the images in ``states`` (``None``: all) whose name contains ``search``, by ``order``."""
        if (states, search, order) == (self.states, self.search, self.order):
            return
        self.states, self.search, self.order = states, search.strip(), order
        self._rebuild()

    def _rebuild(self) -> None:
        project = self.project
        self._query, self._changed_meanwhile = None, set()
        if project is None or self.plain:
            self.beginResetModel()
            self._keys = self._ids = None
            self._key_of = {}
            self._count = project.last_row() if project is not None else 0
            self._entries.clear()
            self._by_row.clear()
            self.endResetModel()
            self.rows_ready.emit()
            return
        states, search, order = self.states, self.search, self.order

        def query():  # on a worker, down to the last list: 100,000 rows take 30 ms to arrange
            keyed = project.sort_keys(states, search=search, order=order)
            keys, ids = [k for k, _ in keyed], [i for _, i in keyed]
            return (project, states, search, order), keys, ids, dict(zip(ids, keys, strict=True))

        self._query = self._runner.call(query, "image list", on_result=self._on_rows)

    def _on_rows(self, value) -> None:
        view, keys, ids, key_of = value
        if view != (self.project, self.states, self.search, self.order):
            return  # the project or the view changed meanwhile
        self.beginResetModel()
        self._keys, self._ids, self._key_of = keys, ids, key_of
        self._entries.clear()
        self.endResetModel()
        self._query = None
        for image_id in self._changed_meanwhile:  # the query may have read them before the change
            self.entry_changed(image_id)
        self._changed_meanwhile = set()
        self.rows_ready.emit()

    def grew(self, added: int) -> None:
        """``added`` images were appended to the project (a scan found them)."""
        if self.project is None or not added:
            return
        if self.plain:
            last = self.project.last_row()
            if last > self._count:
                self.beginInsertRows(QModelIndex(), self._count, last - 1)
                self._count = last
                self.endInsertRows()
        else:
            self._rebuild()

    # --- rows ------------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008 - Qt override
        if parent.isValid() or self.project is None:
            return 0
        return self._count if self._ids is None else len(self._ids)

    def image_id(self, row: int) -> str | None:
        """The id shown at ``row``."""
        if not 0 <= row < self.rowCount():
            return None
        if self._ids is not None:
            return self._ids[row]
        if row + 1 not in self._by_row:
            self._fetch_rows(row)
        return self._by_row.get(row + 1)

    def row_of(self, image_id: str) -> int | None:
        """The row showing ``image_id``, or ``None`` when the view leaves it out."""
        if self._ids is None:
            entry = self.entry(image_id)
            return entry.row - 1 if entry is not None and entry.row else None
        key = self._key_of.get(image_id)
        if key is None:
            return None
        i = bisect.bisect_left(self._keys, key)
        return i if i < len(self._ids) and self._ids[i] == image_id else None

    def entry(self, image_id: str) -> ImageEntry | None:
        """The entry of ``image_id`` (cached), with its staged edits."""
        cached = self._entries.get(image_id)
        if cached is not None:
            self._entries.move_to_end(image_id)
            return cached
        found = self.project.find(image_id) if self.project is not None else None
        if found is not None:
            self._remember(found)
        return found

    def _remember(self, entry: ImageEntry) -> None:
        self._entries[entry.id] = entry
        self._by_row[entry.row] = entry.id
        while len(self._entries) > ENTRY_CACHE:
            old = self._entries.popitem(last=False)[1]
            self._by_row.pop(old.row, None)

    def _fetch_rows(self, row: int) -> None:
        first = row // PAGE * PAGE + 1
        for entry in self.project.between(first, first + PAGE - 1):
            self._remember(entry)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        image_id = self.image_id(index.row()) if index.isValid() else None
        if image_id is None:
            return None
        if role == IdRole:
            return image_id
        entry = self.entry(image_id)
        if entry is None:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            older = ", older model" if self.older(image_id) else ""
            missing = ", file missing" if entry.missing else ""
            return f"{entry.id}\n{entry.state}{older}{missing}"
        if role == Qt.ItemDataRole.DecorationRole:
            return self._decoration(entry)
        if role == Qt.ItemDataRole.ToolTipRole:
            return str(self.project.image_path(entry))
        if role == Qt.ItemDataRole.SizeHintRole:
            return QSize(THUMB + 140, THUMB + 4)
        return None

    def multiData(self, index: QModelIndex, roles) -> None:  # noqa: N802 - Qt override
        """Every role a paint asks for in one call: each call from Qt into Python takes the
        interpreter lock, which a busy worker holds for up to ``sys.getswitchinterval()``."""
        for role_data in roles:
            value = self.data(index, role_data.role())
            if value is not None:
                role_data.setData(value)

    def _decoration(self, entry: ImageEntry) -> QPixmap:
        """The thumbnail with its state's badge, drawn once per image and state, not per paint."""
        key = (entry.id, entry.state)
        icon = self._badged.get(key)
        if icon is None:
            icon = self._badged[key] = _badged(self.thumbnails.get(entry), STATE_COLORS[entry.state])
            while len(self._badged) > BADGED:
                self._badged.popitem(last=False)
        else:
            self._badged.move_to_end(key)
        return icon

    # --- changes ---------------------------------------------------------------------------
    def entry_changed(self, image_id: str) -> None:
        """``image_id``'s state or fields changed: its row repaints; in a filtered view it moves
        in or out as its new state and key say."""
        if self.project is None:
            return
        if self._query is not None:
            self._changed_meanwhile.add(image_id)
        self._entries.pop(image_id, None)
        entry = self.entry(image_id)
        if entry is None:
            return
        if self._ids is None:
            index = self.index(entry.row - 1)
            self.dataChanged.emit(index, index)
            return
        row = self.row_of(image_id)
        shown = self.states is None or entry.state in self.states
        wanted = shown and self.search.lower() in image_id.lower()
        key = sort_key(self.order, image_id, entry.row, entry.state, entry.confidence)
        if row is not None and wanted and key == self._keys[row]:
            self.dataChanged.emit(self.index(row), self.index(row))  # in place: only its row repaints
            return
        if row is not None:
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._ids[row], self._keys[row], self._key_of[image_id]
            self.endRemoveRows()
        if wanted:
            at = bisect.bisect_left(self._keys, key)
            self.beginInsertRows(QModelIndex(), at, at)
            self._ids.insert(at, image_id)
            self._keys.insert(at, key)
            self._key_of[image_id] = key
            self.endInsertRows()

    def refresh_all(self) -> None:
        """Every row may read differently (another model is in use): repaint what is shown."""
        self._entries.clear()
        if self.rowCount():
            self.dataChanged.emit(self.index(0), self.index(self.rowCount() - 1))

    def _on_thumbnail(self, image_id: str) -> None:
        for state in STATES:  # drawn with the blank thumbnail until now
            self._badged.pop((image_id, state), None)
        row = self.row_of(image_id) if self.project is not None else None
        if row is not None:
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


class Thumbnails(QObject):
    """Thumbnails for the rows asked for, made on a worker, newest request first; a bounded
    cache in memory and the project's ``cache/thumbnails.db`` on disk. ``ready(image_id)``."""

    ready = Signal(str)

    def __init__(self, runner: Runner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._runner = runner
        self._pixmaps: OrderedDict[str, QPixmap] = OrderedDict()
        self._wanted: OrderedDict[str, str] = OrderedDict()  # id -> image path, newest last
        self._failed: set[str] = set()
        self._lock = threading.Lock()
        self._thread: GeneratorThread | None = None
        self._store = None
        self._project: Project | None = None
        self._blank = QPixmap(THUMB, THUMB)
        self._blank.fill(QColor(60, 60, 64))

    @property
    def busy(self) -> bool:
        """Are thumbnails (and the sizes read with them) being made?"""
        return self._thread is not None or bool(self._wanted)

    def set_project(self, project: Project | None) -> None:
        with self._lock:
            self._wanted.clear()
        if self._thread is not None:
            self._thread.cancel()
        self._pixmaps.clear()
        self._failed.clear()
        store, self._store = self._store, None
        if store is not None:
            store.close()
        if project is not None:
            from core.io.thumbnails import ThumbnailStore

            self._store = ThumbnailStore(project.root / "cache" / "thumbnails.db")
        self._project = project

    def get(self, entry: ImageEntry) -> QPixmap:
        """The thumbnail of ``entry``, or a blank one while it is made."""
        pixmap = self._pixmaps.get(entry.id)
        if pixmap is not None:
            self._pixmaps.move_to_end(entry.id)
            return pixmap
        if entry.id not in self._failed and self._project is not None:
            with self._lock:
                self._wanted[entry.id] = str(self._project.image_path(entry))
                self._wanted.move_to_end(entry.id)
            if self._thread is None:
                self._start()
        return self._blank

    def _start(self) -> None:
        if not self._runner.closing:
            self._thread = self._runner.start(
                self._make, "thumbnails", on_yield=self._on_made, on_finished=self._on_finished
            )

    def _make(self):
        """On the worker: the newest request first (the rows on screen now)."""
        import qimage2ndarray

        from core.base.errors import FcnGuiError
        from core.io.thumbnails import file_stamp, thumbnail_and_size

        store, project = self._store, self._project
        while True:
            with self._lock:
                if not self._wanted:
                    return
                image_id, path = self._wanted.popitem(last=True)
            stamp = file_stamp(path)
            pixels = store.get(image_id, stamp) if store is not None and stamp else None
            if pixels is None:
                try:
                    pixels, size = thumbnail_and_size(path, THUMB)
                except (FcnGuiError, OSError, ValueError):
                    yield image_id, None
                    continue
                if store is not None and stamp:
                    store.put(image_id, stamp, pixels)
                entry = project.find(image_id) if project is not None else None
                if entry is not None and (entry.width, entry.height) != size:
                    project.set_size(entry, *size)  # read with the header: saved with the next save
            yield image_id, qimage2ndarray.array2qimage(pixels)

    def _on_made(self, made) -> None:
        image_id, image = made
        if image is None or image.isNull():
            self._failed.add(image_id)  # the user hears why when opening it
            return
        self._pixmaps[image_id] = QPixmap.fromImage(image)
        while len(self._pixmaps) > PIXMAPS:
            self._pixmaps.popitem(last=False)
        self.ready.emit(image_id)

    def _on_finished(self) -> None:
        self._thread = None
        with self._lock:
            more = bool(self._wanted)
        if more:
            self._start()


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
