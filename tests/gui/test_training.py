import numpy as np
from PIL import Image

from core.checkpoints import read_info
from core.images import read_image
from tests.gui.conftest import wait_idle


def test_training_round_in_the_background_then_use_and_repredict(make_window, tmp_path, data_dir, qtbot):
    folder = tmp_path / "cells"
    folder.mkdir()
    image = read_image(data_dir / "nuclei/nuclei.tif")
    for i in range(4):
        Image.fromarray(image[i * 64 : i * 64 + 64, :64]).save(folder / f"cell{i}.png")
    window = make_window(folder)
    wait_idle(qtbot, window)
    session = window.session
    project = session.project
    truth = (np.asarray(Image.open(data_dir / "nuclei/nuclei_instances.tif")) > 0).astype(np.uint8)
    for i, entry in enumerate(project.images[:3]):
        project.set_label(entry, truth[i * 64 : i * 64 + 64, :64] * 15, "reviewed")  # class 15 = nucleus here
    project.flush()
    window.training.crop = 48
    window.training.batch_size = 2
    window.training_panel.steps.setValue(2)
    ended, errors = [], []
    window.training.finished.connect(ended.append)
    window.training.failed.connect(errors.append)
    window.training_panel.start.click()
    assert window.training.running and not window.training_panel.start.isEnabled()
    window.go(1)  # annotation goes on while training runs
    qtbot.waitUntil(lambda: bool(ended or errors), timeout=120000)
    assert not errors
    qtbot.waitUntil(lambda: not window.training.running)
    offer = window.training_panel.offer
    assert offer.isVisible() and "Use the new model" in offer.text()
    path = offer.property("path")
    assert read_info(path).training["train_images"] + read_info(path).training["val_images"] == 3
    assert window.training_panel.rounds.count() == 1
    assert len(window.training_panel.curve.losses) == 2
    offer.click()
    qtbot.waitUntil(lambda: str(session.models.checkpoint) == path, timeout=30000)
    wait_idle(qtbot, window)
    last = project.images[3]
    assert last.state == "predicted" and last.checkpoint == path
    assert all(e.state == "reviewed" for e in project.images[:3])
    assert "[in use]" in window.training_panel.rounds.item(0).text()
