"""Bad input and a failing environment in the app's dialogs: a message, and the project as it was."""

import torch
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox

from tests.gui.conftest import wait_idle


def _message(window, qtbot, needle: str) -> QMessageBox:
    def found():
        return [b for b in window.findChildren(QMessageBox) if b.isVisible() and needle in b.text()]

    qtbot.waitUntil(lambda: bool(found()), timeout=60000)
    return found()[0]


def _snapshot(project) -> tuple[list, list, dict]:
    project.flush()
    labels = {p.name: p.read_bytes() for p in (project.root / project.labels_dir).glob("*.png")}
    return project.images, project.classes, labels


def test_export_to_a_file_shows_why_and_keeps_the_project(
    make_window, photo_folder, qtbot, monkeypatch, tmp_path
):
    window = make_window(photo_folder)
    wait_idle(qtbot, window)
    before = _snapshot(window.session.project)
    target = tmp_path / "a-file.txt"
    target.write_text("in the way")
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(target))
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.No)
    window.act["export"].trigger()
    box = _message(window, qtbot, "is a file")
    assert str(target) in box.text()
    assert target.read_text() == "in the way"
    assert _snapshot(window.session.project) == before


def test_download_offline_says_where_to_put_the_file(make_window, photo_folder, qtbot, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("FCN_GUI_WEIGHTS_MIRROR", "http://127.0.0.1:9")  # nothing listens there
    window = make_window(photo_folder)
    wait_idle(qtbot, window)
    before = _snapshot(window.session.project)
    checkpoint = window.session.models.checkpoint
    monkeypatch.setattr(QInputDialog, "getItem", lambda *a, **k: (a[3][0], True))
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    window.download_dialog()
    box = _message(window, qtbot, "cannot download")
    assert "vgg16-397923af.pth" in box.text() and "copy it to" in box.text()
    assert not list((tmp_path / "torch").rglob("*.pth*"))  # no partial file
    assert window.session.models.checkpoint == checkpoint
    assert _snapshot(window.session.project) == before


def test_a_checkpoint_of_another_kind_is_refused_and_the_model_kept(
    make_window, photo_folder, qtbot, monkeypatch, tmp_path
):
    window = make_window(photo_folder)
    wait_idle(qtbot, window)
    before = _snapshot(window.session.project)
    model = window.session.models.model
    odd = tmp_path / "odd.pth"
    torch.save({"encoder.weight": torch.zeros(3, 3)}, odd)  # a state dict of some other network
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(odd), ""))
    window.load_checkpoint_dialog()
    box = _message(window, qtbot, "Could not load the model")
    assert "odd.pth" in box.text() and "unrecognised state dict" in box.text()
    assert window.session.models.model is model
    assert _snapshot(window.session.project) == before
