"""Opening a folder of labelme JSON files in the app imports it as a reviewed project."""

import json

import numpy as np
from PIL import Image


def test_a_labelme_folder_opens_as_a_reviewed_project(make_window, tmp_path, qtbot):
    folder = tmp_path / "annotated"
    folder.mkdir()
    Image.fromarray(np.full((64, 96, 3), 120, np.uint8)).save(folder / "plate.png")
    shape = {"label": "cell", "points": [[10, 10], [40, 30]], "shape_type": "rectangle"}
    (folder / "plate.json").write_text(json.dumps({"shapes": [shape], "imagePath": "plate.png"}))
    window = make_window()
    window.open_paths([folder])
    qtbot.waitUntil(lambda: window.session.project is not None, timeout=30000)
    project = window.session.project
    assert [c.name for c in project.classes] == ["background", "cell"]
    assert project.images[0].state == "reviewed"
    label = project.load_label(project.images[0])
    assert label[20, 20] == 1 and label[50, 80] == 0
    assert window.class_panel.list.count() == 2
