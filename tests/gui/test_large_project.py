"""A project of 5,000 images in the window: listed as it is scanned, each change repaints its own
row, filter, search and least-confident-next answered by the database, and the GUI thread
never waits on another thread."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QThread
from PySide6.QtWidgets import QInputDialog, QMessageBox

from core.store.manifest import STATES
from tests.gui.conftest import wait_idle

COUNT = 5000


@pytest.fixture
def many(tmp_path):
    folder = tmp_path / "many"
    for i in range(COUNT):
        sub = folder / f"part{i // 1000}"
        if i % 1000 == 0:
            sub.mkdir(parents=True)
        Image.new("RGB", (16, 12), (i % 251, 40, 90)).save(sub / f"img{i:05d}.png")
    return folder


@pytest.fixture
def waits(monkeypatch):
    """Every blocking wait the GUI thread makes on another thread: ``QThread.wait``, and the
    result of a future not done yet (how saves used to be waited for)."""
    calls = []
    real_wait, real_result = QThread.wait, Future.result

    def wait(thread, *args):
        if threading.current_thread() is threading.main_thread():
            calls.append(thread.objectName())
        return real_wait(thread, *args)

    def result(future, *args, **kwargs):
        if threading.current_thread() is threading.main_thread() and not future.done():
            calls.append(f"a future: {future!r}")
        return real_result(future, *args, **kwargs)

    monkeypatch.setattr(QThread, "wait", wait)
    monkeypatch.setattr(Future, "result", result)
    return calls


def test_five_thousand_images_list_as_they_are_found_and_each_change_repaints_its_row(
    make_window, many, qtbot, waits, monkeypatch
):
    window = make_window(many)
    session, model, panel = window.session, window.session.images, window.image_panel
    qtbot.waitUntil(lambda: model.rowCount() == COUNT, timeout=60000)
    qtbot.waitUntil(lambda: not session.runner.names(), timeout=60000)  # the scan has finished
    wait_idle(qtbot, window)
    assert panel.progress_label.text() == f"0 of {COUNT:,} reviewed"
    assert model.image_id(0) == "part0_img00000" and model.image_id(COUNT - 1) == "part4_img04999"

    # A state change repaints one row: no reset, no range of rows.
    changes, resets = [], []
    model.dataChanged.connect(lambda first, last, *_: changes.append((first.row(), last.row())))
    model.modelReset.connect(lambda: resets.append(1))
    doc = session.doc
    doc.write_patch(0, 0, np.zeros((doc.height, doc.width), np.uint8))  # edited
    row = model.row_of(doc.image_id)
    assert changes == [(row, row)] and not resets
    window.act["reviewed"].trigger()
    assert changes[-1] == (row, row) and not resets
    qtbot.waitUntil(lambda: panel.progress_label.text() == f"1 of {COUNT:,} reviewed")

    # Filter and search, answered by the database.
    panel.filter.setCurrentText("Reviewed")
    qtbot.waitUntil(lambda: model.rowCount() == 1)
    assert model.image_id(0) == doc.image_id
    panel.filter.setCurrentText("Not reviewed")
    qtbot.waitUntil(lambda: model.rowCount() == COUNT - 1)
    panel.search.setText("img0420")
    qtbot.waitUntil(lambda: model.rowCount() == 10)  # img04200 .. img04209
    assert [model.image_id(i) for i in (0, 9)] == ["part4_img04200", "part4_img04209"]
    panel.search.setText("")
    panel.filter.setCurrentText("All images")
    qtbot.waitUntil(lambda: model.rowCount() == COUNT)

    # Least confident next: the image whose prediction is least sure, among those predicted.
    project = session.project
    for i, confidence in ((3000, 0.01), (4000, 0.0001), (100, 0.005)):  # below any prediction's
        entry = project.entry(f"part{i // 1000}_img{i:05d}")
        project.set_confidence(entry, confidence)
    window.view_panel.least_confident.setChecked(True)
    assert session.navigation.neighbour(1) == "part4_img04000"
    window.view_panel.least_confident.setChecked(False)

    # The orders: least confident first, and by state (the reviewed image last).
    project.flush()
    panel.order.setCurrentText("Least confident first")
    qtbot.waitUntil(lambda: model.image_id(0) == "part4_img04000")
    assert [model.image_id(i) for i in range(3)] == ["part4_img04000", "part0_img00100", "part3_img03000"]
    panel.order.setCurrentText("State")
    qtbot.waitUntil(lambda: model.image_id(COUNT - 1) == doc.image_id)
    ranks = [STATES.index(model.entry(model.image_id(i)).state) for i in range(0, COUNT, 97)]
    assert ranks == sorted(ranks) and model.rowCount() == COUNT
    panel.order.setCurrentText("Project order")
    session.queue.cancel_all()

    # Switching images, saving, a class removal and another project: no wait on the GUI thread.
    for _ in range(5):
        before = session.doc.image_id
        window.go(1)
        qtbot.waitUntil(lambda before=before: session.doc is not None and session.doc.image_id != before)
    window.autosave.timeout.emit()
    monkeypatch.setattr(QInputDialog, "getItem", lambda *a, **k: (a[3][0], True))
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    window.class_panel.ask_remove(20)
    qtbot.waitUntil(lambda: not session.frozen and session.doc is not None, timeout=120000)
    assert len(project.classes) == 20
    other = many.parent / "other"
    other.mkdir()
    Image.new("RGB", (16, 12)).save(other / "one.png")
    window.open_paths([other])  # the large project is saved and closed in the background
    qtbot.waitUntil(lambda: session.project is not None and session.project.root.parent == other)
    qtbot.waitUntil(lambda: not session.saver.busy, timeout=30000)
    assert waits == [], f"the GUI thread waited for {waits}"
    assert project.db._all == []  # the large project was closed: its connections too
