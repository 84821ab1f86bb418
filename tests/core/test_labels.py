import numpy as np
import pytest
from PIL import Image

from core.base.errors import LabelError
from core.io.labels import (
    VOC_PALETTE,
    check_label_indices,
    classes_from_names,
    colorize,
    default_classes,
    read_class_file,
    read_label,
    write_label,
)


def test_voc_colour_map_known_entries():
    assert VOC_PALETTE[0].tolist() == [0, 0, 0]
    assert VOC_PALETTE[1].tolist() == [128, 0, 0]
    assert VOC_PALETTE[15].tolist() == [192, 128, 128]  # person
    assert VOC_PALETTE[255].tolist() == [224, 224, 192]  # void
    assert [c.name for c in default_classes()][:3] == ["background", "aeroplane", "bicycle"]


def test_real_voc_label_round_trip_keeps_indices_and_palette(data_dir, tmp_path):
    source = data_dir / "voc/2007_000129.png"
    label = read_label(source, num_classes=21)
    assert set(np.unique(label)) == {0, 2, 15, 255}
    out = tmp_path / "round.png"
    write_label(out, label)
    with Image.open(source) as a, Image.open(out) as b:
        assert b.mode == "P"
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert a.getpalette()[: 256 * 3] == b.getpalette()[: 256 * 3]
    assert not list(tmp_path.glob(".*tmp"))


def test_rgb_label_converts_by_colour_map(tmp_path):
    label = np.array([[0, 1, 15], [255, 2, 0]], dtype=np.uint8)
    Image.fromarray(colorize(label)).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_label(tmp_path / "rgb.png"), label)


def test_rgb_label_with_unknown_colours_lists_them(tmp_path):
    rgb = np.zeros((4, 4, 3), dtype=np.uint8)
    rgb[0, 0] = (1, 2, 3)
    Image.fromarray(rgb).save(tmp_path / "odd.png")
    with pytest.raises(LabelError, match="#010203") as err:
        read_label(tmp_path / "odd.png")
    assert "odd.png" in str(err.value)


def test_indices_beyond_the_classes_are_refused(tmp_path):
    write_label(tmp_path / "l.png", np.array([[0, 7]], dtype=np.uint8))
    with pytest.raises(LabelError, match=r"\[7\].*3 classes"):
        read_label(tmp_path / "l.png", num_classes=3)


@pytest.mark.parametrize("classes", [1, 2, 21, 254, 255])
def test_every_value_between_the_last_class_and_void_is_refused_and_no_other(classes):
    label = np.full((3, 4), 255, np.uint8)
    label[0, :2] = [0, classes - 1]
    check_label_indices(label, classes)  # classes and void
    for bad in range(classes, 255):
        label[1, 1] = bad
        with pytest.raises(LabelError, match=rf"values \[{bad}\] are not classes"):
            check_label_indices(label, classes)


def test_custom_class_colours_go_into_the_palette(tmp_path):
    classes = classes_from_names(["bg", "cell"])
    classes[1] = type(classes[1])("cell", (10, 200, 30))
    write_label(tmp_path / "c.png", np.array([[0, 1]], dtype=np.uint8), classes)
    with Image.open(tmp_path / "c.png") as img:
        assert img.getpalette()[3:6] == [10, 200, 30]


def test_class_file(tmp_path):
    f = tmp_path / "classes.txt"
    f.write_text("# my classes\nbackground\n\nnucleus\n")
    assert [c.name for c in read_class_file(f)] == ["background", "nucleus"]
    f.write_text("a\nb\na\n")
    with pytest.raises(LabelError, match="repeat"):
        read_class_file(f)
    f.write_text("\n")
    with pytest.raises(LabelError, match="empty"):
        read_class_file(f)


def test_unreadable_label_names_the_file(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(LabelError, match=r"bad\.png"):
        read_label(bad)
    with pytest.raises(LabelError, match="not found"):
        read_label(tmp_path / "missing.png")
