"""The assist from the first stroke in the window: strokes on the image being painted train at
once and the rest of it fills in, painted pixels never change, and which pixels were painted
survives undo, saving and reopening."""

import numpy as np

from core.io.labels import VOID
from core.training.learner import LearnerConfig
from tests.gui.conftest import drag, wait_idle
from tests.gui.test_learning import _show, _tiles


def test_strokes_fill_in_the_image_being_painted_before_any_review(make_window, tmp_path, data_dir, qtbot):
    truths = _tiles(tmp_path / "cells", data_dir, n=2)
    window = make_window(tmp_path / "cells", with_model=False, learn=True)  # a model from random weights
    session, learning = window.session, window.learning
    learning.config = LearnerConfig(crop=32, batch_size=2, device="cpu", precision="fp32")
    wait_idle(qtbot, window)
    doc = _show(window, qtbot, 0)
    truth = truths[0]
    assert (doc.label == VOID).all() and not learning.running
    adopted = []
    learning.adopted.connect(adopted.append)
    for c in (15, 0):  # a few pixels of each class, as two strokes
        ys, xs = np.nonzero(truth == c)
        pick = np.linspace(0, ys.size - 1, 12).astype(int)
        mask = np.zeros(truth.shape, bool)
        mask[ys[pick], xs[pick]] = True
        doc.apply_mask(0, 0, mask, c, "Brush")
    painted = doc.painted.copy()
    strokes = doc.label[painted].copy()
    assert painted.sum() == 24 and learning.running  # the strokes started the learner
    qtbot.waitUntil(lambda: (doc.label != VOID).all(), timeout=60000)  # filled in
    np.testing.assert_array_equal(doc.label[painted], strokes)  # painted pixels never change
    np.testing.assert_array_equal(doc.painted, painted)  # predicted pixels are not the user's
    assert set(np.unique(doc.label[~painted])) <= {0, 15}  # classes the strokes showed
    assert np.mean(doc.label == truth) > 0.7  # 24 pixels told it much of the 64 x 64 tile
    assert session.project.counts()["reviewed"] == 0 and not adopted  # no review, no new model
    # Another stroke: the image is predicted again from it, and it stays as painted.
    before = doc.label.copy()
    wrong = (doc.label != truth) & ~painted
    if wrong.any():
        y, x = np.argwhere(wrong)[0]
        spot = np.zeros(truth.shape, bool)
        spot[y, x] = True
        doc.apply_mask(0, 0, spot, int(truth[y, x]), "Brush")
        qtbot.waitUntil(lambda: not np.array_equal(doc.label, before), timeout=60000)
        assert doc.label[y, x] == truth[y, x]


def test_which_pixels_were_painted_survives_undo_saving_and_reopening(make_window, photo_folder, qtbot):
    window = make_window(photo_folder)
    wait_idle(qtbot, window)
    doc = _show(window, qtbot, 0)
    assert not doc.painted.any()  # a prediction: none of it is the user's
    window.select_tool("brush")
    window.view_panel.brush_size.setValue(5)
    window.set_current_class(15)
    drag(window.canvas, [(10, 20), (30, 20)])
    painted = doc.painted.copy()
    assert painted[20, 10] and painted[20, 30] and not painted[5, 5]
    assert ((doc.label == 15) | ~painted).all()
    window.act["undo"].trigger()
    assert not doc.painted.any()
    window.act["redo"].trigger()
    np.testing.assert_array_equal(doc.painted, painted)
    image_id = doc.image_id
    _show(window, qtbot, 1)  # switching images saves the edit
    qtbot.waitUntil(lambda: not session_dirty(window), timeout=10000)
    window.close()
    reopened = make_window(photo_folder)
    wait_idle(qtbot, reopened)
    index = [e.id for e in reopened.session.project.images].index(image_id)
    again = _show(reopened, qtbot, index)
    np.testing.assert_array_equal(again.painted, painted)


def session_dirty(window) -> bool:
    project = window.session.project
    return project is not None and project.has_unsaved_changes


def test_a_large_images_fill_in_goes_on_a_band_of_rows_a_turn_and_keeps_strokes_made_meanwhile(qtbot):
    from core.io.labels import classes_from_names
    from fcn_gui.document import LIVE_BAND_PIXELS, LabelDocument

    h, w = 3000, 1000  # 3 megapixels: three bands
    classes = classes_from_names(["bg", "fg"])
    doc = LabelDocument("big", np.zeros((h, w, 3), np.uint8), np.full((h, w), VOID, np.uint8), classes)
    stroke = np.ones((20, 20), bool)
    doc.apply_mask(10, 10, stroke, 0, "Brush")
    applied = []
    doc.live_applied.connect(lambda: applied.append(True))
    doc.apply_live(np.ones((h, w), np.uint8))
    rows = LIVE_BAND_PIXELS // w
    assert (doc.label[:rows][~doc.painted[:rows]] == 1).all()  # the first band at once...
    assert (doc.label[rows:] == VOID).all() and doc.applying_live and not applied  # ...the rest later
    doc.apply_mask(h - 30, 10, stroke, 0, "Brush")  # a stroke before the fill-in gets there
    qtbot.waitUntil(lambda: bool(applied), timeout=5000)
    assert not doc.applying_live
    assert (doc.label[doc.painted] == 0).all() and doc.painted.sum() == 800  # strokes kept
    assert (doc.label[~doc.painted] == 1).all()  # the rest filled in


def test_a_stroke_across_many_tiles_undoes_and_redoes_exactly_and_the_assist_gets_its_strokes(qtbot):
    from core.io.labels import classes_from_names
    from fcn_gui.document import LabelDocument

    label = np.random.default_rng(0).integers(0, 3, (700, 900)).astype(np.uint8)
    classes = classes_from_names(["a", "b", "c"])
    doc = LabelDocument("x", np.zeros((700, 900, 3), np.uint8), label, classes, painted=label == 2)
    before = (doc.label.copy(), doc.painted.copy())
    doc.begin_stroke()
    for x in range(-5, 905, 7):  # across tiles, in and out of the image
        doc.paint_mask(100 + x // 2, x, np.ones((15, 15), bool), 1)
    doc.paint_mask(690, 880, np.ones((30, 30), bool), VOID)  # an eraser dab in the corner
    doc.end_stroke("Brush")
    after = (doc.label.copy(), doc.painted.copy())
    assert not np.array_equal(after[0], before[0])
    doc.undo_stack.undo()
    assert all(np.array_equal(a, b) for a, b in zip((doc.label, doc.painted), before, strict=True))
    assert np.array_equal(doc.painted_label(), np.where(before[1], before[0], VOID))  # what the assist gets
    doc.undo_stack.redo()
    assert all(np.array_equal(a, b) for a, b in zip((doc.label, doc.painted), after, strict=True))
    assert np.array_equal(doc.painted_label(), np.where(after[1], after[0], VOID))
