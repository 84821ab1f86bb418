"""Why the image list is a fixed-row ``QTableView`` with ``multiData``, and why the app sets a
0.5 ms interpreter switch interval: prints the figures behind each choice.

1. Rows appended 1,000 at a time to 100,000 (a scan filling the list): the event-loop time
   each append costs in a ``QListView`` (uniform sizes) and a ``QTableView`` (fixed rows).
2. One repaint of the visible rows while a worker thread runs Python (a scan, a sweep), for
   Qt calling ``data`` once per role or ``multiData`` once per row, at several switch
   intervals; and how much Python work the worker got done meanwhile.

    QT_QPA_PLATFORM=offscreen python bench/list_repaint.py
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtCore import QAbstractListModel, QModelIndex, Qt
from PySide6.QtWidgets import QAbstractItemView, QApplication, QHeaderView, QListView, QTableView

from bench.session import cpu_name


class Rows(QAbstractListModel):
    """``count`` rows of text, answered per role (``data``)."""

    def __init__(self, count: int = 0) -> None:
        super().__init__()
        self.count = count

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else self.count

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        return f"img{index.row():06d}\nnew" if role == Qt.ItemDataRole.DisplayRole else None

    def grow(self, added: int) -> None:
        self.beginInsertRows(QModelIndex(), self.count, self.count + added - 1)
        self.count += added
        self.endInsertRows()


class RowsAtOnce(Rows):
    """The same, every role of a row in one call (``multiData``), as the app's model does."""

    def multiData(self, index: QModelIndex, roles) -> None:  # noqa: N802
        for role_data in roles:
            value = self.data(index, role_data.role())
            if value is not None:
                role_data.setData(value)


def table(model: Rows) -> QTableView:
    view = QTableView()
    view.setModel(model)
    view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
    rows, columns = view.verticalHeader(), view.horizontalHeader()
    rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    rows.setDefaultSectionSize(68)
    rows.hide()
    columns.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
    columns.hide()
    return view


def show(view, app: QApplication):
    view.resize(300, 700)
    view.show()
    app.processEvents()
    return view


def appending(app: QApplication) -> None:
    print("\n1. appending 1,000 rows at a time: event-loop time per append (ms)")
    print("| view | at 20,000 rows | at 100,000 rows |\n| --- | --- | --- |")
    for name in ("QListView", "QTableView"):
        model = Rows()
        if name == "QListView":
            view = QListView()
            view.setModel(model)
            view.setUniformItemSizes(True)
        else:
            view = table(model)
        show(view, app)
        cost = {}
        for _ in range(100):
            model.grow(1000)
            t0 = time.perf_counter()
            app.processEvents()
            cost[model.count] = (time.perf_counter() - t0) * 1000
        print(f"| {name} | {cost[20000]:.1f} | {cost[100000]:.1f} |")
        view.close()


def repaint_under_load(app: QApplication) -> None:
    print("\n2. one repaint of the visible rows while a worker runs Python")
    done = [0]
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            total = 0
            for k in range(1000):
                total += k
            done[0] += 1

    def alone_rate() -> float:
        done[0] = 0
        time.sleep(1.0)
        return done[0]

    default = sys.getswitchinterval()
    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    alone_rate()  # warm-up
    print(f"(worker alone: {alone_rate():.0f} loops/s)")
    print(
        "| switch interval | data per role: repaint ms | multiData: repaint ms "
        "| worker: loops/s while repainting |"
    )
    print("| --- | --- | --- | --- |")
    views = {kind: show(table(kind(100000)), app) for kind in (Rows, RowsAtOnce)}
    for interval in (0.005, 0.002, 0.001, 0.0005, 0.0002):
        sys.setswitchinterval(interval)
        cells = []
        for view in views.values():
            times = []
            done[0] = 0
            started = time.perf_counter()
            while time.perf_counter() - started < 1.0:
                view.viewport().update()
                t0 = time.perf_counter()
                app.processEvents()
                times.append((time.perf_counter() - t0) * 1000)
            cells.append(statistics.median(times))
        rate = done[0] / (time.perf_counter() - started)  # while the multiData view repainted
        print(f"| {interval * 1000:g} ms | {cells[0]:.1f} | {cells[1]:.1f} | {rate:.0f} |")
    stop.set()
    sys.setswitchinterval(default)


def main() -> None:
    app = QApplication.instance() or QApplication([])
    print(f"CPU: {cpu_name()}")
    appending(app)
    repaint_under_load(app)


if __name__ == "__main__":
    main()
