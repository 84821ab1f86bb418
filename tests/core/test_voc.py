import shutil

import numpy as np
import pytest
from PIL import Image

from core.base.errors import DatasetError, LabelError
from core.base.progress import drain
from core.cli import main
from core.formats.voc import export_voc, import_voc, split_ids
from core.io.labels import colorize
from core.store.project import Project


@pytest.fixture
def voc_dataset(tmp_path, data_dir):
    """The real VOC sample laid out as VOC2012, plus a second labelled image."""
    root = tmp_path / "voc" / "VOCdevkit" / "VOC2012"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    shutil.copy(data_dir / "voc/2007_000129.jpg", root / "JPEGImages")
    shutil.copy(data_dir / "voc/2007_000129.png", root / "SegmentationClass")
    small = np.zeros((30, 40), np.uint8)
    small[5:20, 5:30] = 8
    small[0] = 255
    Image.fromarray(np.full((30, 40, 3), 90, np.uint8)).save(root / "JPEGImages" / "tiny.jpg")
    Image.fromarray(colorize(small)).save(root / "SegmentationClass" / "tiny.png")  # RGB label
    return root


def _labels(project):
    return {e.id: project.load_label(e) for e in project.images}


def test_import_then_export_reproduces_labels_and_palette(voc_dataset, tmp_path, data_dir):
    project = drain(import_voc(voc_dataset.parent.parent, tmp_path / "proj")).project
    assert {e.state for e in project.images} == {"reviewed"}
    labels = _labels(project)
    assert labels["tiny"][10, 10] == 8 and labels["tiny"][0, 0] == 255
    out = tmp_path / "export"
    report = drain(export_voc(project, out, val_fraction=0.5, seed=3))
    project.close()
    with (
        Image.open(data_dir / "voc/2007_000129.png") as a,
        Image.open(out / "SegmentationClass/2007_000129.png") as b,
    ):
        assert b.mode == "P"
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert a.getpalette()[:768] == b.getpalette()[:768]
    # JPEG sources are copied byte for byte.
    assert (out / "JPEGImages/2007_000129.jpg").read_bytes() == (
        voc_dataset / "JPEGImages/2007_000129.jpg"
    ).read_bytes()
    assert sorted(report.splits["trainval"]) == ["2007_000129", "tiny"]
    assert (out / "class_names.txt").read_text().splitlines()[15] == "person"


def test_torchvision_reads_our_export(voc_dataset, tmp_path):
    from torchvision.datasets import VOCSegmentation

    project = drain(import_voc(voc_dataset, tmp_path / "proj")).project
    expected = _labels(project)
    out = tmp_path / "data" / "VOCdevkit" / "VOC2012"
    drain(export_voc(project, out, val_fraction=0.5))
    project.close()
    for split in ("train", "val"):
        ids = (out / f"ImageSets/Segmentation/{split}.txt").read_text().split()
        dataset = VOCSegmentation(str(tmp_path / "data"), year="2012", image_set=split)
        assert len(dataset) == len(ids) == 1
        image, target = dataset[0]
        assert image.size == target.size
        np.testing.assert_array_equal(np.asarray(target), expected[ids[0]])


def test_project_to_voc_to_project_round_trip(tmp_path, small_image):
    folder = tmp_path / "imgs"
    (folder / "x").mkdir(parents=True)
    (folder / "y").mkdir()
    Image.fromarray(small_image[:32, :48]).save(folder / "x" / "same.png")
    Image.fromarray(small_image[:32, :48]).save(folder / "y" / "same.png")
    Image.fromarray(small_image[:40, :40]).save(folder / "other.jpg")
    rng = np.random.default_rng(0)
    with Project.open_path(folder) as project:
        for entry in project.images:
            w, h = Image.open(project.image_path(entry)).size
            project.set_label(entry, rng.integers(0, 21, (h, w)).astype(np.uint8), "reviewed")
        project.set_state(project.images[2], "edited")
        before = _labels(project)
        assert len(set(before)) == 3  # ids unique although two files share a stem
        drain(export_voc(project, tmp_path / "voc", only_reviewed=True))
        assert len((tmp_path / "voc/ImageSets/Segmentation/trainval.txt").read_text().split()) == 2
        drain(export_voc(project, tmp_path / "voc_all", image_format="png"))
    assert len(list((tmp_path / "voc_all/JPEGImages").glob("*.png"))) == 3
    again = drain(import_voc(tmp_path / "voc_all", tmp_path / "proj2")).project
    after = _labels(again)
    again.close()
    assert set(after) == set(before)
    for key, label in before.items():
        np.testing.assert_array_equal(after[key], label)


def test_split_is_deterministic_for_a_seed():
    ids = [f"img{i}" for i in range(10)]
    assert split_ids(ids, 0.2, 0) == split_ids(list(reversed(ids)), 0.2, 0)
    train, val = split_ids(ids, 0.2, 0)
    assert len(val) == 2 and not set(train) & set(val) and sorted(train + val) == ids
    assert split_ids(ids, 0.2, 1) != (train, val)
    with pytest.raises(DatasetError, match="val-fraction"):
        split_ids(ids, 1.5, 0)


def test_bad_datasets_are_explained(voc_dataset, tmp_path):
    (voc_dataset / "JPEGImages/tiny.jpg").unlink()
    with pytest.raises(DatasetError, match="tiny: no image"):
        drain(import_voc(voc_dataset, tmp_path / "p1"))
    Image.fromarray(np.zeros((31, 40, 3), np.uint8)).save(voc_dataset / "JPEGImages/tiny.jpg")
    with pytest.raises(LabelError, match="40x30 but its image tiny.jpg is 40x31"):
        drain(import_voc(voc_dataset, tmp_path / "p2"))
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(voc_dataset / "JPEGImages/tiny.jpg")
    rgb = np.zeros((30, 40, 3), np.uint8)
    rgb[0, 0] = (9, 9, 9)
    Image.fromarray(rgb).save(voc_dataset / "SegmentationClass/tiny.png")
    with pytest.raises(LabelError, match="#090909"):
        drain(import_voc(voc_dataset, tmp_path / "p3"))
    with pytest.raises(DatasetError, match="not a VOC dataset"):
        drain(import_voc(tmp_path, tmp_path / "p4"))
    # Labels are read one at a time: the good first image was imported, then all of it discarded.
    assert not any((tmp_path / p).exists() for p in ("p1", "p2", "p3"))


def test_a_cancelled_import_leaves_nothing_behind(voc_dataset, tmp_path):
    gen = import_voc(voc_dataset, tmp_path / "project")
    first = next(gen)
    assert (first.done, first.total) == (1, 2) and (tmp_path / "project" / "project.db").exists()
    gen.close()
    assert not (tmp_path / "project").exists()


def test_export_refuses_missing_images_and_empty_projects(tmp_path, small_image):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(small_image[:32, :32]).save(folder / "a.png")
    with Project.open_path(folder) as project:
        with pytest.raises(DatasetError, match="no labelled images"):
            drain(export_voc(project, tmp_path / "out"))
        project.set_label(project.images[0], np.zeros((32, 32), np.uint8), "reviewed")
        (folder / "a.png").unlink()
        with pytest.raises(DatasetError, match="missing.*restore"):
            drain(export_voc(project, tmp_path / "out"))


def test_cli_import_and_export(voc_dataset, tmp_path, capsys):
    assert main(["import", str(voc_dataset), "--project", str(tmp_path / "p")]) == 0
    assert "2 labelled images imported as reviewed" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "p"), "--out", str(tmp_path / "o"), "--val-fraction", "0"]) == 0
    assert "train 2, val 0" in capsys.readouterr().out
    assert main(["import", str(voc_dataset), "--project", str(tmp_path / "p")]) == 1
    assert "already exists" in capsys.readouterr().err


def test_every_reader_of_a_class_list_skips_comments_and_blank_lines(voc_dataset, tmp_path):
    from core.formats.masks import import_masks
    from core.formats.voc import dataset_classes
    from core.training.datasets import TrainData

    names = "# my dataset\n" + "\n".join(f"c{i}" for i in range(21)) + "\n\n"
    (voc_dataset / "class_names.txt").write_text(names)
    expected = [f"c{i}" for i in range(21)]
    assert [c.name for c in dataset_classes(voc_dataset)] == expected
    assert [c.name for c in TrainData.from_voc(voc_dataset).classes] == expected
    with drain(import_voc(voc_dataset, tmp_path / "project")).project as project:
        assert [c.name for c in project.classes] == expected
    masks = tmp_path / "masks"
    (masks / "images").mkdir(parents=True)
    (masks / "masks").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(masks / "images" / "a.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(masks / "masks" / "a.png")
    (masks / "classes.txt").write_text(names)
    with drain(import_masks(masks, tmp_path / "masks-project")).project as project:
        assert [c.name for c in project.classes] == expected
