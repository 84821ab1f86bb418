import numpy as np
from PySide6.QtWidgets import QInputDialog, QMessageBox

from core.io.labels import VOID
from tests.gui.conftest import wait_idle


def _striped(doc) -> np.ndarray:
    """Four bands: class 0, class 1, class 2 and void."""
    label = np.zeros((doc.height, doc.width), np.uint8)
    band = doc.height // 4
    label[band : 2 * band], label[2 * band : 3 * band], label[3 * band :] = 1, 2, VOID
    return label


def test_removing_a_class_rewrites_every_label_in_the_background(
    make_window, photo_folder, qtbot, monkeypatch
):
    window = make_window(photo_folder)
    wait_idle(qtbot, window)
    session, project = window.session, window.session.project
    doc = session.doc
    label = _striped(doc)
    doc.write_patch(0, 0, label)
    window.act["reviewed"].trigger()
    first = doc.image_id
    window.go(1)
    qtbot.waitUntil(lambda: session.doc is not None and session.doc.image_id != first)
    second = session.doc.image_id
    session.doc.write_patch(0, 0, np.full((session.doc.height, session.doc.width), 2, np.uint8))
    names_before = [c.name for c in project.classes]

    # The panel asks which class takes the pixels, then for confirmation.
    monkeypatch.setattr(QInputDialog, "getItem", lambda *a, **k: (a[3][0], True))  # void
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    window.class_panel.ask_remove(1)
    assert session.frozen and session.doc is None  # nothing can be edited while labels are rewritten
    session.documents.show(first)
    assert session.doc is None
    qtbot.waitUntil(lambda: not session.frozen and session.doc is not None, timeout=30000)

    assert [c.name for c in project.classes] == names_before[:1] + names_before[2:]
    assert window.class_panel.list.count() == len(names_before) - 1
    assert session.doc.image_id == second  # the image on the canvas comes back
    assert (session.doc.label == 1).all()  # its edit (class 2) was saved first, then shifted down
    expected = np.where(label == 1, VOID, np.where(label == 2, 1, label))
    np.testing.assert_array_equal(project.load_label(project.entry(first)), expected)
    assert project.entry(first).state == "reviewed"
    assert not window.model_panel.warning.isHidden()  # the 21-class model no longer fits
    qtbot.waitUntil(window.status.progress.isHidden, timeout=30000)  # the job is done and says so
