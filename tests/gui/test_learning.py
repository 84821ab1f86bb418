"""Continuous learning in the window: reviews start it, better models are used by themselves,
user work is never overwritten, pause and roll-back work, quitting keeps what it learnt."""

import numpy as np
import torch
from PIL import Image

from core.io.images import read_image
from core.io.labels import read_label
from core.training.learner import LearnerConfig
from tests.gui.conftest import wait_idle


def _tiles(folder, data_dir, n=5):
    folder.mkdir()
    image = read_image(data_dir / "nuclei/nuclei.tif")
    truth = (np.asarray(Image.open(data_dir / "nuclei/nuclei_instances.tif")) > 0).astype(np.uint8)
    for i in range(n):
        Image.fromarray(image[i * 64 : i * 64 + 64, :64]).save(folder / f"cell{i}.png")
    return [truth[i * 64 : i * 64 + 64, :64] * 15 for i in range(n)]  # class 15 stands for nucleus


def _row_text(window, image_id: str) -> str:
    """What the image list shows for ``image_id``."""
    model = window.session.images
    return model.data(model.index(model.row_of(image_id)))


def _show(window, qtbot, index):
    image_id = window.session.project.images[index].id
    window.session.documents.show(image_id)
    qtbot.waitUntil(lambda: window.session.doc is not None and window.session.doc.image_id == image_id)
    wait_idle(qtbot, window)
    return window.session.doc


def test_reviews_train_in_the_background_and_better_models_are_used(make_window, tmp_path, data_dir, qtbot):
    truths = _tiles(tmp_path / "cells", data_dir)
    window = make_window(tmp_path / "cells", learn=True)
    learning, session, panel = window.learning, window.session, window.learning_panel
    learning.config = LearnerConfig(
        crop=64, batch_size=2, device="cpu", frozen=(), budget_steps=2, eval_every_s=0.3,
        memory_budget_mb=0,  # every reviewed image mapped from a file, as past a quarter of RAM
    )  # fmt: skip
    wait_idle(qtbot, window)
    project = session.project
    cache = project.root / "learning" / "cache"
    assert not learning.running  # nothing reviewed yet
    assert panel.enabled.isChecked()

    edited = _show(window, qtbot, 1)
    edited.write_patch(0, 0, np.full((64, 64), 7, np.uint8))  # the user's own edit
    doc = _show(window, qtbot, 0)
    doc.write_patch(0, 0, truths[0])
    adopted = []
    learning.adopted.connect(adopted.append)
    window.act["reviewed"].trigger()
    qtbot.waitUntil(lambda: learning.running, timeout=5000)
    thread = learning._thread
    qtbot.waitUntil(lambda: bool(adopted), timeout=120000)
    path = adopted[0].path
    qtbot.waitUntil(lambda: str(session.models.checkpoint) == path, timeout=60000)
    panel.pause.click()  # a paused learner leaves the cores to predicting every stale image
    qtbot.waitUntil(lambda: not session.predictions.learner_busy, timeout=30000)

    def states():
        return {e.id: (e.state, e.checkpoint) for e in project.images}

    def repredicted():  # by the model in use: the first adopted one, or a later one
        return all(states()[f"cell{i}"] == ("predicted", str(session.models.checkpoint)) for i in (2, 3, 4))

    qtbot.waitUntil(repredicted, timeout=60000)  # re-predicted by themselves
    assert states()["cell0"][0] == "reviewed" and states()["cell1"][0] == "edited"
    np.testing.assert_array_equal(project.load_label(project.entry("cell0")), truths[0])
    assert (project.load_label(project.entry("cell1")) == 7).all()  # never replaced
    assert "improved" in panel.improved.text().lower()
    assert "improved" in window.status.fields["learn"].text().lower()
    panel.pause.click()  # resume

    doc = _show(window, qtbot, 2)  # a second review joins the running learner
    doc.write_patch(0, 0, truths[2])
    events = []
    learning.event.connect(events.append)
    window.act["reviewed"].trigger()
    # cell0 and cell2 reviewed, and cell1's edit: what the user paints trains as strokes
    qtbot.waitUntil(lambda: any(e.train_images == 3 for e in events), timeout=60000)
    assert learning._thread is thread
    assert len(list(cache.glob("*-label.npy"))) == 3

    panel.pause.click()
    qtbot.waitUntil(lambda: bool(events) and events[-1].state == "paused", timeout=30000)
    assert "Paused" in panel.status.text() and panel.pause.text() == "Resume"
    qtbot.waitUntil(lambda: panel.models.count() >= 1, timeout=30000)
    assert "MB on disk" in panel.disk.text()

    panel.models.setCurrentRow(0)
    first = panel.models.currentItem().data(256)  # Qt.UserRole
    panel.rollback.click()
    qtbot.waitUntil(lambda: str(session.models.checkpoint) == first, timeout=60000)
    qtbot.waitUntil(lambda: learning.running, timeout=60000)  # learning goes on from it
    window.close()
    assert not learning.running
    assert (project.root / "learning" / "latest.safetensors").exists()  # quitting kept what it learnt
    assert not list(cache.glob("*.npy"))


def test_while_the_learner_trains_only_the_next_images_are_predicted_again_at_once(
    make_window, tmp_path, data_dir, qtbot, unet_checkpoint
):
    from core.model.checkpoints import load_checkpoint, save_checkpoint

    _tiles(tmp_path / "cells", data_dir)
    window = make_window(tmp_path / "cells")
    session, project = window.session, window.session.project
    session.predictions.predict_all()
    wait_idle(qtbot, window)
    old = str(unet_checkpoint)
    assert {e.checkpoint for e in project.images} == {old}
    better = load_checkpoint(unet_checkpoint)
    with torch.no_grad():
        better.module.head.bias[15] += 5.0  # a different model: more nucleus everywhere
    newer = tmp_path / "adopted.safetensors"
    save_checkpoint(newer, better)

    def predicted_by():
        return [e.checkpoint == str(newer) for e in project.images]

    session.predictions.set_learner_busy(True)
    session.adopt_model(load_checkpoint(newer), str(newer), "Model improved")
    qtbot.waitUntil(lambda: str(session.models.checkpoint) == str(newer), timeout=30000)
    wait_idle(qtbot, window)
    assert predicted_by() == [True, True, False, False, False]  # the current and the next image
    texts = [_row_text(window, e.id) for e in project.images]
    assert ["older model" in t for t in texts] == [False, False, True, True, True]
    _show(window, qtbot, 3)  # opening a stale image predicts it, and the one after it, first
    qtbot.waitUntil(lambda: predicted_by() == [True, True, False, True, True], timeout=30000)
    assert (session.doc.label == project.load_label(project.entry("cell3"))).all()  # on the canvas too
    window.close()  # quit while cell2 is still stale: after a restart it is known as such
    window = make_window(tmp_path / "cells")
    session, project = window.session, window.session.project
    qtbot.waitUntil(lambda: str(session.models.checkpoint) == str(newer), timeout=30000)
    assert "older model" in _row_text(window, "cell2")
    assert "older model" not in _row_text(window, "cell3")
    session.predictions.set_learner_busy(True)
    session.predictions.set_learner_busy(False)  # resting: the rest is predicted in the background
    qtbot.waitUntil(lambda: all(predicted_by()), timeout=30000)
    assert not any("older model" in _row_text(window, e.id) for e in project.images)


def test_switching_learning_off_stops_it_and_is_remembered(make_window, tmp_path, data_dir, qtbot):
    truths = _tiles(tmp_path / "cells", data_dir, n=2)
    window = make_window(tmp_path / "cells", learn=True)
    window.learning.config = LearnerConfig(crop=64, batch_size=2, device="cpu", frozen=())
    doc = _show(window, qtbot, 0)
    doc.write_patch(0, 0, truths[0])
    window.act["reviewed"].trigger()
    qtbot.waitUntil(lambda: window.learning.running, timeout=5000)
    window.learning_panel.enabled.setChecked(False)
    qtbot.waitUntil(lambda: not window.learning.running, timeout=60000)
    assert "off" in window.learning_panel.status.text()
    assert window.settings.get("learn", True, bool) is False


def test_next_goes_to_the_least_confident_image(make_window, photo_folder, qtbot):
    window = make_window(photo_folder)
    window.view_panel.least_confident.setChecked(True)
    session = window.session
    wait_idle(qtbot, window)
    qtbot.waitUntil(lambda: all(e.confidence is not None for e in session.project.images), timeout=60000)
    current = session.doc.image_id
    others = {e.id: e.confidence for e in session.project.images if e.id != current}
    assert session.navigation.neighbour(1) == min(others, key=others.get)
    window.view_panel.least_confident.setChecked(False)
    ids = [e.id for e in session.project.images]
    assert session.navigation.neighbour(1) == ids[ids.index(current) + 1]


def test_quitting_while_it_trains_saves_everything_and_starts_no_prediction(
    make_window, tmp_path, data_dir, qtbot
):
    """The learner's end tells the session it no longer trains, which predicts the images no
    model has seen yet: not while the app quits, where starting a thread is refused."""
    truths = _tiles(tmp_path / "cells", data_dir)
    window = make_window(tmp_path / "cells", learn=True)
    window.learning.config = LearnerConfig(crop=64, batch_size=2, device="cpu", frozen=())
    session = window.session
    wait_idle(qtbot, window)
    project = session.project
    assert project.entry("cell4").state == "new"  # not predicted yet: queued once the learner stops
    session.doc.write_patch(0, 0, truths[0])
    window.act["reviewed"].trigger()
    qtbot.waitUntil(lambda: session.predictions.learner_busy, timeout=10000)
    window.close()  # an exception in closeEvent fails the test (pytest-qt)
    assert session.project is None and not session.queue.busy
    assert (read_label(project.label_path(project.entry("cell0"))) == truths[0]).all()
