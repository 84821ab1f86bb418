"""labelme / X-AnyLabeling JSON import and index-mask folders, through the command line."""

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.base.errors import LabelError
from core.base.progress import drain
from core.cli import main
from core.formats.labelme import import_labelme
from core.formats.masks import read_index_mask
from core.io.labels import VOID
from core.store.project import Project

ROOT = Path(__file__).parents[2]
H, W = 300, 400


def _photo() -> Image.Image:
    with Image.open(ROOT / "resources/samples/coffee.png") as img:
        return img.convert("RGB").resize((W, H))


def _png_b64(array: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _shape(label, points, kind="polygon", **extra):
    return {"label": label, "points": points, "shape_type": kind, "group_id": None, "flags": {}, **extra}


SHAPES = [
    _shape("cat", [[20, 20], [180, 30], [150, 160], [30, 140]]),
    _shape("dog", [[200, 40], [330, 120]], "rectangle"),
    _shape("cat", [[300, 220], [300, 260]], "circle"),  # radius 40
    _shape("dog", [[100, 200], [220, 200]], "line"),
    _shape("dog", [[40, 250], [90, 280], [140, 250]], "linestrip"),
    _shape("cat", [[250, 200]], "point"),
    _shape("cat", [[60, 60], [79, 89]], "mask", mask=_png_b64(np.full((30, 20), 255, np.uint8))),
    _shape("__ignore__", [[210, 50], [260, 50], [260, 90], [210, 90]]),  # on top of the dog
]


@pytest.fixture
def labelme_folder(tmp_path) -> Path:
    folder = tmp_path / "annotated"
    folder.mkdir()
    _photo().save(folder / "kitchen.jpg", quality=95)
    doc = {"version": "5.5.0", "flags": {}, "shapes": SHAPES, "imagePath": "kitchen.jpg", "imageData": None,
           "imageHeight": H, "imageWidth": W}  # fmt: skip
    (folder / "kitchen.json").write_text(json.dumps(doc))
    buf = io.BytesIO()
    _photo().save(buf, format="PNG")
    embedded = {"shapes": [_shape("dog", [[0, 0], [50, 50]], "rectangle")], "imagePath": "gone.png",
                "imageData": base64.b64encode(buf.getvalue()).decode()}  # fmt: skip
    (folder / "embedded.json").write_text(json.dumps(embedded))
    _photo().save(folder / "unlabelled.png")
    (folder / "broken.json").write_text('{"shapes": [ {"label": "cat", ')
    (folder / "classes.txt").write_text("__ignore__\n_background_\ncat\ndog\n")
    return folder


def _inside_polygon(points, xs, ys):
    """Even-odd test of pixel coordinates against a polygon (an independent reference)."""
    inside = np.zeros(xs.shape, bool)
    for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True):
        crosses = (y0 > ys) != (y1 > ys)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x0 + (ys - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (xs < x_at)
    return inside


def _reference() -> np.ndarray:
    ys, xs = np.mgrid[0:H, 0:W].astype(float)
    ref = np.zeros((H, W), np.uint8)
    ref[_inside_polygon([(20, 20), (180, 30), (150, 160), (30, 140)], xs, ys)] = 1
    ref[(xs >= 200) & (xs <= 330) & (ys >= 40) & (ys <= 120)] = 2
    ref[(xs - 300) ** 2 + (ys - 220) ** 2 <= 40**2] = 1
    ref[(xs >= 100) & (xs <= 220) & (np.abs(ys - 200) <= 5)] = 2
    for (x0, y0), (x1, y1) in (((40, 250), (90, 280)), ((90, 280), (140, 250))):
        t = np.clip(((xs - x0) * (x1 - x0) + (ys - y0) * (y1 - y0)) / ((x1 - x0) ** 2 + (y1 - y0) ** 2), 0, 1)
        ref[np.hypot(xs - x0 - t * (x1 - x0), ys - y0 - t * (y1 - y0)) <= 5] = 2
    ref[(xs - 250) ** 2 + (ys - 200) ** 2 <= 25] = 1
    ref[60:90, 60:80] = 1
    ref[(xs >= 210) & (xs <= 260) & (ys >= 50) & (ys <= 90)] = VOID
    return ref


def test_labelme_folder_imports_as_labelme2voc_rasterises(labelme_folder, tmp_path, capsys):
    project_dir = tmp_path / "project"
    code = main(["import", str(labelme_folder), "--project", str(project_dir),
                 "--classes", str(labelme_folder / "classes.txt")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1 and "broken.json" in out and "2 labelled images imported" in out  # the rest came in
    with Project.open(project_dir) as project:
        assert [c.name for c in project.classes] == ["_background_", "cat", "dog"]
        states = {e.id: e.state for e in project.images}
        assert states["kitchen"] == "reviewed" and states["unlabelled"] == "new"
        label = project.load_label(project.entry("kitchen"))
        assert label.shape == (H, W)
        assert np.mean(label == _reference()) >= 0.995
        assert (label[70, 235] == VOID) and label[100, 300] == 2 and label[220, 300] == 1  # later on top
        embedded = next(e for e in project.images if project.image_path(e).parent.name == "images")
        assert embedded.state == "reviewed" and project.image_path(embedded).exists()
        assert (project.load_label(embedded)[:50, :50] == 2).all()


def test_without_a_class_file_the_labels_found_are_the_classes(labelme_folder, tmp_path):
    (labelme_folder / "broken.json").unlink()
    report = drain(import_labelme(labelme_folder, tmp_path / "p"))
    assert [c.name for c in report.project.classes] == ["background", "cat", "dog"]
    assert report.imported == 2 and report.unlabelled == 1 and not report.skipped
    report.project.close()


def test_a_label_missing_from_the_class_file_is_refused_by_name(labelme_folder, tmp_path, capsys):
    (labelme_folder / "classes.txt").write_text("__ignore__\n_background_\ncat\n")
    code = main(["import", str(labelme_folder), "--project", str(tmp_path / "p"),
                 "--classes", str(labelme_folder / "classes.txt")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "'dog'" in err and ("kitchen.json" in err or "embedded.json" in err)
    assert not (tmp_path / "p").exists()  # nothing half-imported


def test_index_masks_export_and_import_round_trip(labelme_folder, tmp_path, capsys):
    (labelme_folder / "broken.json").unlink()
    drain(import_labelme(labelme_folder, tmp_path / "p")).project.close()
    assert main(["export", str(tmp_path / "p"), "--out", str(tmp_path / "masks"), "--format", "masks"]) == 0
    mask_path = tmp_path / "masks" / "masks" / "kitchen.png"
    with Image.open(mask_path) as img:
        assert img.mode == "L"
    assert (tmp_path / "masks" / "classes.txt").read_text().split() == ["background", "cat", "dog"]
    assert main(["import", str(tmp_path / "masks"), "--project", str(tmp_path / "again")]) == 0
    with Project.open(tmp_path / "p") as a, Project.open(tmp_path / "again") as b:
        assert [c.name for c in a.classes] == [c.name for c in b.classes]
        for entry in b.images:
            np.testing.assert_array_equal(b.load_label(entry), a.load_label(a.entry(entry.id)))
            assert entry.state == "reviewed"
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(mask_path)  # a colour image is not a mask
    capsys.readouterr()
    assert main(["import", str(tmp_path / "masks"), "--project", str(tmp_path / "third")]) == 1
    assert "kitchen.png" in capsys.readouterr().err
    Image.fromarray(np.full((4, 4), 900, np.uint16)).save(tmp_path / "big.png")
    with pytest.raises(LabelError, match="class indices"):
        read_index_mask(tmp_path / "big.png", 3)
