import itertools
import time

import numpy as np
from PIL import Image
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from core.io.labels import VOID, read_label
from tests.gui.conftest import SAMPLES, click, drag, wait_idle


def _known_label(window, qtbot, value=VOID):
    """Let predictions settle, then fill the current label with ``value`` (as one edit)."""
    wait_idle(qtbot, window)
    doc = window.session.doc
    doc.write_patch(0, 0, np.full((doc.height, doc.width), value, np.uint8))
    doc.undo_stack.clear()
    return doc


def test_open_folder_lists_images_with_states(make_window, photo_folder, qtbot):
    window = make_window(photo_folder)
    panel, model = window.image_panel, window.session.images
    qtbot.waitUntil(lambda: model.rowCount() == 4)
    wait_idle(qtbot, window)
    states = {e.id: e.state for e in window.session.project.images}
    # The current image and, ahead of time, the next one have been predicted.
    assert states == {"astronaut": "predicted", "chelsea": "predicted", "coffee": "new", "rocket": "new"}
    qtbot.waitUntil(lambda: panel.progress_label.text() == "0 of 4 reviewed")
    panel.filter.setCurrentIndex(1)  # "New"
    qtbot.waitUntil(lambda: model.rowCount() == 2)
    assert [model.data(model.index(i)).split()[0] for i in range(2)] == ["coffee", "rocket"]
    qtbot.waitUntil(lambda: "rocket" in model.thumbnails._pixmaps)
    assert model.thumbnails._pixmaps["rocket"].toImage().pixelColor(10, 10).name() != "#3c3c40"


def test_an_untrained_model_predicts_nothing_and_says_how_to_teach_it(make_window, photo_folder, qtbot):
    """`make run` on the sample photos: the app's own model has learnt nothing, so the images
    open unlabelled instead of covered in its random guesses."""
    window = make_window(photo_folder, with_model=False)
    session = window.session
    assert session.untrained()
    qtbot.wait(300)  # a prediction, if one were scheduled, would have started by now
    wait_idle(qtbot, window)
    assert (session.doc.label == VOID).all()
    assert {e.state for e in session.project.images} == {"new"}
    assert "Nothing learnt yet" in window.learning_panel.status.text()
    errors = []
    session.error.connect(errors.append)
    session.predictions.predict_current()
    assert session.predictions.predict_all() == 0
    assert len(errors) == 2 and all("learnt nothing" in e for e in errors)
    assert not session.queue.pending and not session.queue.busy


def test_brush_paints_and_undo_redo_restore_exact_pixels(make_window, photo_folder, qtbot):
    window = make_window(photo_folder)
    doc = _known_label(window, qtbot, 0)
    window.select_tool("brush")
    window.view_panel.brush_size.setValue(5)
    window.set_current_class(15)
    before = doc.label.copy()
    drag(window.canvas, [(10, 20), (30, 20), (40, 25)])
    painted = doc.label.copy()
    assert painted[20, 10] == painted[20, 30] == painted[22, 35] == 15
    assert painted[20, 60] == 0 and painted[5, 10] == 0
    assert 50 < (painted == 15).sum() < 400
    assert doc.undo_stack.count() == 1
    window.act["undo"].trigger()
    np.testing.assert_array_equal(doc.label, before)
    window.act["redo"].trigger()
    np.testing.assert_array_equal(doc.label, painted)
    cmd = doc.undo_stack.command(0)
    assert cmd.before[0].size < doc.label.size / 4  # the step holds the changed box, not the image


def test_flood_fill_polygon_picker_and_eraser(make_window, photo_folder, qtbot):
    window = make_window(photo_folder)
    doc = _known_label(window, qtbot, 0)
    h, w = doc.height, doc.width
    block = np.full((h, w), 0, np.uint8)
    block[:, w // 2 :] = 3
    block[5:10, 5:10] = 3  # an island of 3 not connected to the right half
    doc.write_patch(0, 0, block)
    window.select_tool("fill")
    window.set_current_class(7)
    click(window.canvas, w - 5, h - 5)
    assert (doc.label[:, w // 2 :] == 7).all()
    assert (doc.label[5:10, 5:10] == 3).all() and doc.label[0, 0] == 0

    window.select_tool("polygon")
    window.set_current_class(2)
    for x, y in [(2, 20), (20, 20), (20, 40)]:
        click(window.canvas, x, y)
    click(window.canvas, 2, 40, double=True)
    assert doc.label[30, 10] == 2 and doc.label[22, 18] == 2
    assert doc.label[45, 10] == 0 and doc.label[10, 30] == 0

    window.select_tool("picker")
    click(window.canvas, w - 3, 3)
    assert window.current_class == 7

    window.select_tool("eraser")
    window.view_panel.erase_mode.setCurrentIndex(0)
    window.view_panel.brush_size.setValue(3)
    drag(window.canvas, [(w - 10, 10), (w - 10, 12)])
    assert doc.label[11, w - 10] == VOID
    window.view_panel.erase_mode.setCurrentIndex(1)
    drag(window.canvas, [(w - 20, 10), (w - 20, 12)])
    assert doc.label[11, w - 20] == 0
    assert doc.undo_stack.count() == 4


def test_prediction_runs_on_a_worker_while_the_event_loop_keeps_going(make_window, tmp_path, qtbot):
    folder = tmp_path / "large"
    folder.mkdir()
    with Image.open(SAMPLES / "astronaut.png") as img:
        img.convert("RGB").resize((1024, 1024)).save(folder / "astronaut.png")  # long enough to time
    window = make_window(folder)
    wait_idle(qtbot, window)
    session = window.session
    doc = session.doc
    doc.write_patch(0, 0, np.full((doc.height, doc.width), VOID, np.uint8))
    doc.modified = False
    session.project.set_state(session.project.entry(doc.image_id), "predicted")  # no edits to protect
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(5)
    with qtbot.waitSignal(session.queue.started, timeout=30000):
        window.act["predict"].trigger()
    started = time.perf_counter()
    with qtbot.waitSignal(session.queue.predicted, timeout=60000):
        pass
    finished = time.perf_counter()
    timer.stop()
    during = [started, *(t for t in ticks if started < t < finished), finished]
    longest = max(b - a for a, b in itertools.pairwise(during))
    # On the GUI thread the whole prediction would be one gap between ticks.
    assert finished - started > 0.05 and longest < (finished - started) / 2, (longest, finished - started)
    assert (doc.label != VOID).all() and len(np.unique(doc.label)) >= 2
    assert doc.confidence is not None and doc.confidence.shape == doc.label.shape
    window.view_panel.unsure.setChecked(True)
    assert window.canvas.unsure_visible


def test_cancel_stops_the_queue(make_window, photo_folder, qtbot):
    window = make_window(photo_folder, with_model=True)
    wait_idle(qtbot, window)
    session = window.session
    for e in session.project.images:
        if e.state == "predicted":
            session.project.set_state(e, "new")
    window.predict_all()
    assert session.queue.busy
    window.cancel_work()
    wait_idle(qtbot, window)
    assert sum(e.state == "predicted" for e in session.project.images) <= 1
    assert window.status.progress.isHidden()


def test_switching_images_autosaves_the_edit(make_window, photo_folder, qtbot):
    window = make_window(photo_folder)
    doc = _known_label(window, qtbot, 0)
    window.set_current_class(5)
    window.select_tool("brush")
    drag(window.canvas, [(10, 10), (20, 10)])
    edited = doc.label.copy()
    window.act["next"].trigger()
    qtbot.waitUntil(lambda: window.session.doc.image_id == "chelsea")
    project = window.session.project
    entry = project.entry("astronaut")
    assert entry.state == "edited"
    qtbot.waitUntil(
        lambda: project.label_path(entry).exists() and (read_label(project.label_path(entry)) == edited).all()
    )
    window.act["prev"].trigger()
    qtbot.waitUntil(lambda: window.session.doc.image_id == "astronaut")
    np.testing.assert_array_equal(window.session.doc.label, edited)


def test_a_label_is_copied_for_the_autosave_band_by_band_with_what_changed_behind_the_copy(qtbot):
    from core.io.labels import default_classes
    from fcn_gui.document import LabelDocument
    from fcn_gui.label_snapshot import LabelSnapshot

    doc = LabelDocument("x", np.zeros((48, 64, 3), np.uint8), np.zeros((48, 64), np.uint8), default_classes())
    copies = []
    snapshot = LabelSnapshot(doc, lambda *arrays: copies.append(arrays), band_pixels=64 * 8)
    assert not copies and snapshot.running  # one band of six so far
    doc.apply_mask(0, 0, np.ones((4, 4), bool), 3, "behind the copy")
    doc.apply_mask(40, 10, np.ones((4, 4), bool), 5, "ahead of it")
    qtbot.waitUntil(lambda: bool(copies))
    label, painted = copies[0]
    np.testing.assert_array_equal(label, doc.label)
    np.testing.assert_array_equal(painted, doc.painted)
    assert label[0, 0] == 3 and label[40, 10] == 5 and painted[0, 0] and not snapshot.running

    cancelled = LabelSnapshot(doc, lambda *arrays: copies.append(arrays), band_pixels=64 * 8)
    cancelled.cancel()
    qtbot.wait(50)
    assert len(copies) == 1


def test_the_autosave_of_a_large_label_stages_it_as_it_is_when_copied(make_window, photo_folder, qtbot):
    window = make_window(photo_folder)
    session = window.session
    doc = _known_label(window, qtbot, 0)
    session.documents.snapshot_band = doc.width * 8  # as a 24-megapixel label would be, in bands
    window.set_current_class(5)
    window.select_tool("brush")
    drag(window.canvas, [(10, 30), (20, 30)])
    window.autosave.timeout.emit()  # the first band is copied at once
    window.set_current_class(7)
    drag(window.canvas, [(10, 2), (20, 2)])  # behind the copy
    entry = session.project.entry(doc.image_id)
    path = session.project.label_path(entry)
    qtbot.waitUntil(lambda: path.exists() and (read_label(path) == doc.label).all(), timeout=10000)
    assert (read_label(path) == 7).any() and (read_label(path) == 5).any() and not doc.modified


def test_mark_reviewed_records_the_correction(make_window, photo_folder, qtbot):
    window = make_window(photo_folder)
    wait_idle(qtbot, window)
    doc = window.session.doc
    window.select_tool("brush")
    window.view_panel.brush_size.setValue(9)
    window.set_current_class(9)
    drag(window.canvas, [(5, 5), (40, 5)])
    window.act["reviewed"].trigger()
    entry = window.session.project.entry(doc.image_id)
    assert entry.state == "reviewed"
    assert 0 < entry.changed_fraction < 0.2
    assert window.image_panel.progress_label.text() == "1 of 4 reviewed"


def test_unreadable_image_shows_an_error_and_the_app_keeps_working(make_window, photo_folder, qtbot):
    (photo_folder / "zz_broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    window = make_window(photo_folder)
    wait_idle(qtbot, window)
    window.session.documents.show("zz_broken")

    def error_box():
        boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
        return bool(boxes) and "zz_broken.jpg" in boxes[0].text()

    qtbot.waitUntil(error_box, timeout=10000)
    assert window.session.doc.image_id == "astronaut"  # the previous image stays open
    window.act["next"].trigger()
    qtbot.waitUntil(lambda: window.session.doc.image_id == "chelsea")


def test_settings_persist_between_runs(make_window, photo_folder, qtbot):
    first = make_window(photo_folder)
    first.view_panel.brush_size.setValue(33)
    first.view_panel.opacity.setValue(70)
    first.view_panel.erase_mode.setCurrentIndex(1)
    first.view_panel.least_confident.setChecked(True)
    first.close()
    second = make_window(None)
    assert second.tools["brush"].size == 33 and second.view_panel.opacity.value() == 70
    assert not second.tools["eraser"].to_void and second.view_panel.erase_mode.currentIndex() == 1
    assert second.session.navigation.least_confident_next
    assert str(photo_folder / "fcn-gui-project") in second.settings.recent()


def test_quit_while_predicting_waits_cleanly(make_window, photo_folder, qtbot):
    window = make_window(photo_folder)
    wait_idle(qtbot, window)
    for e in window.session.project.images:
        window.session.project.set_state(e, "new")
    window.predict_all()
    assert window.session.queue.busy
    window.close()
    assert not window.session.queue.busy and window.session.project is None


def test_an_image_reopened_later_measures_its_correction_against_its_prediction(
    make_window, photo_folder, qtbot
):
    window = make_window(photo_folder)
    wait_idle(qtbot, window)
    first = window.session.doc.image_id
    qtbot.waitUntil(lambda: not window.session.saver.busy)  # its prediction is on disk
    window.go(1)
    qtbot.waitUntil(lambda: window.session.doc is not None and window.session.doc.image_id != first)
    window.go(-1)  # opened again: the prediction comes from disk, read off the GUI thread
    qtbot.waitUntil(lambda: window.session.doc is not None and window.session.doc.image_id == first)
    window.select_tool("brush")
    window.view_panel.brush_size.setValue(9)
    window.set_current_class(9)
    drag(window.canvas, [(5, 5), (40, 5)])
    window.act["reviewed"].trigger()
    assert 0 < window.session.project.entry(first).changed_fraction < 0.2


def test_an_edited_image_reopened_measures_all_its_corrections_against_its_prediction(
    make_window, photo_folder, qtbot
):
    window = make_window(photo_folder)
    wait_idle(qtbot, window)
    session = window.session
    first = session.doc.image_id
    window.select_tool("brush")
    window.view_panel.brush_size.setValue(9)
    window.set_current_class(9)
    drag(window.canvas, [(5, 5), (40, 5)])  # corrected before leaving the image
    window.go(1)
    qtbot.waitUntil(lambda: session.doc is not None and session.doc.image_id != first)
    window.go(-1)
    qtbot.waitUntil(lambda: session.doc is not None and session.doc.image_id == first)
    assert session.project.entry(first).state == "edited"
    drag(window.canvas, [(5, 40), (40, 40)])  # and more after coming back
    window.act["reviewed"].trigger()
    session.documents.save_current()
    qtbot.waitUntil(lambda: not session.saver.busy)
    entry = session.project.entry(first)
    predicted = read_label(session.project.prediction_path(entry))
    both = float(np.mean(predicted != session.project.load_label(entry)))
    assert entry.changed_fraction == both > 0


def test_a_new_folder_opened_while_the_model_loads_takes_the_models_classes(
    qtbot, tmp_path, sandbox_settings, photo_folder
):
    from core.io.labels import classes_from_names
    from core.model.checkpoints import ModelInfo, new_model, save_checkpoint
    from fcn_gui.main_window import MainWindow
    from fcn_gui.settings import Settings

    checkpoint = tmp_path / "cells.safetensors"
    classes = classes_from_names(["background", "cell"])
    save_checkpoint(checkpoint, new_model(ModelInfo(variant="unet", trained=True, classes=classes)))
    settings = Settings()
    settings.set("checkpoint", str(checkpoint))
    settings.set("learn", False)
    window = MainWindow(settings)
    qtbot.addWidget(window)
    window.show()
    window.open_paths([photo_folder])  # at once, as `fcn-gui FOLDER` does while the model loads
    qtbot.waitUntil(lambda: window.session.doc is not None, timeout=30000)
    assert [c.name for c in window.session.project.classes] == ["background", "cell"]
    assert window.session.model_mismatch() is None  # so it predicts
    window.close()
