"""Whole-slide images and orthophotos: lazy readers, tiled segmentation into pyramidal label TIFFs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from core.base.progress import drain
from core.inference.predictor import CARRY_BYTES, Predictor
from core.inference.segment import SegmentOptions, segment_paths
from core.inference.slide_segment import segment_slide
from core.io.labels import classes_from_names
from core.io.slides import SlideError, is_slide, open_slide
from core.model.checkpoints import ModelInfo, new_model
from core.store.label_tiles import LabelTiles

ROOT = Path(__file__).parents[2]
# GeoTIFF: 0.5 m pixels, tie point in UTM 33N (EPSG:32633), as GDAL writes them.
GEO = [
    (33550, 12, 3, (0.5, 0.5, 0.0)),
    (33922, 12, 6, (0.0, 0.0, 0.0, 350000.0, 5800000.0, 0.0)),
    (34735, 3, 16, (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32633)),
    (34737, 2, 0, "WGS 84 / UTM zone 33N|"),
]


def photo(height: int, width: int) -> np.ndarray:
    """A real photo (the astronaut) stretched to the size asked for: content, not noise."""
    with Image.open(ROOT / "resources/samples/astronaut.png") as img:
        return np.asarray(img.convert("RGB").resize((width, height), Image.BILINEAR))


def tiles(array: np.ndarray, side: int):
    for y in range(0, array.shape[0], side):
        for x in range(0, array.shape[1], side):
            tile = np.zeros((side, side, *array.shape[2:]), array.dtype)
            part = array[y : y + side, x : x + side]
            tile[: part.shape[0], : part.shape[1]] = part
            yield tile


def write_pyramid(path: Path, image: np.ndarray, *, levels: int = 3, compression: str = "zlib", **kw) -> None:
    """A tiled pyramidal BigTIFF: the image and its halvings as SubIFDs (what vips and QuPath write)."""
    rgb = {"photometric": "rgb"} if image.ndim == 3 else {"photometric": "minisblack"}
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for level in range(levels):
            data = image[:: 2**level, :: 2**level]
            extra = {"subifds": levels - 1, **kw} if level == 0 else {"subfiletype": 1}
            tif.write(
                tiles(data, 128), shape=data.shape, dtype=data.dtype, tile=(128, 128),
                compression=compression, **rgb, **extra,
            )  # fmt: skip


def pieced(slide, level: int, step: int = 97) -> np.ndarray:
    """A level read in odd-sized regions and put back together."""
    h, w = slide.levels[level]
    out = np.zeros((h, w, 3), np.uint8)
    for y in range(0, h, step):
        for x in range(0, w, step + 20):
            out[y : y + step, x : x + step + 20] = slide.read(level, y, x, step, step + 20)
    return out


@pytest.mark.parametrize("compression", ["zlib", "jpeg", "lzw"])
def test_pyramidal_tiff_read_region_by_region_equals_the_whole_read(tmp_path, compression):
    image = photo(600, 700)
    path = tmp_path / "slide.tif"
    write_pyramid(path, image, compression=compression)
    assert is_slide(path)
    with open_slide(path) as slide, tifffile.TiffFile(path) as tif:
        assert slide.levels == ((600, 700), (300, 350), (150, 175))
        for level in range(3):
            whole = tif.series[0].levels[level].asarray()  # decoded whole, by tifffile itself
            assert np.array_equal(pieced(slide, level), whole)
        if compression != "jpeg":
            assert np.array_equal(slide[123:456, 78:690], image[123:456, 78:690])
        assert slide.thumbnail(100).shape == (75, 88, 3)  # from the smallest level, not level 0


def test_ome_tiff_of_16_bit_is_read_region_by_region_with_one_stretch(tmp_path):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 40, (500, 600))
    grey = (photo(500, 600)[:, :, 1].astype(np.uint16) * 40 + noise).astype(np.uint16)
    path = tmp_path / "cells.ome.tif"
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tif:
        tif.write(grey, tile=(128, 128), subifds=1, compression="zlib", metadata={"axes": "YX"})
        tif.write(grey[::2, ::2], tile=(128, 128), subfiletype=1, compression="zlib")
    with open_slide(path) as slide:
        assert slide.levels == ((500, 600), (250, 300))
        whole = slide.read(0, 0, 0, 500, 600)
        assert np.array_equal(pieced(slide, 0), whole)
        assert whole.min() == 0 and whole.max() == 255  # stretched as one image, not tile by tile
        assert np.array_equal(whole[:, :, 0], whole[:, :, 2])


def test_openslide_reads_vendor_formats_region_by_region(tmp_path):
    image = photo(400, 500)
    path = tmp_path / "scan.ndpi"  # OpenSlide decides by content: a tiled TIFF is its generic-tiff
    with tifffile.TiffWriter(path) as tif:
        tif.write(image, tile=(128, 128), compression="zlib", photometric="rgb")
    with open_slide(path) as slide:
        assert type(slide).__name__ == "_OpenSlide"
        assert slide.levels[0] == (400, 500)
        assert np.array_equal(pieced(slide, 0), image)


def test_ordinary_images_are_not_slides(tmp_path):
    image = photo(100, 120)
    Image.fromarray(image).save(tmp_path / "a.png")
    Image.fromarray(image).save(tmp_path / "strips.tif")
    write_pyramid(tmp_path / "tiled.tif", image, levels=1)
    assert not is_slide(tmp_path / "a.png")
    assert not is_slide(tmp_path / "strips.tif")
    assert is_slide(tmp_path / "tiled.tif")


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    return new_model(ModelInfo(variant="unet", trained=True))


def test_segment_of_a_slide_writes_a_pyramidal_label_tiff_equal_to_the_whole_image_and_keeps_georeferencing(
    tmp_path, unet
):
    image = photo(700, 900)
    folder = tmp_path / "in"
    folder.mkdir()
    write_pyramid(folder / "ortho.tif", image, extratags=[(*tag, True) for tag in GEO])
    Image.fromarray(image[:64, :64]).save(folder / "small.png")
    predictor = Predictor(unet, device="cpu", tile=256, overlap=32, precision="fp32")
    out = tmp_path / "out"
    report = drain(segment_paths(predictor, [folder], SegmentOptions(out, confidence=True)))
    assert report.ok and len(report.written) == 2
    assert (out / "small.png").is_file()
    assert not list(out.glob("*.partial"))
    whole = predictor.predict(image)  # the same image in memory, the same grid
    with tifffile.TiffFile(out / "ortho.tif") as tif:
        series = tif.series[0]
        assert [level.shape for level in series.levels] == [(700, 900), (350, 450)]  # down to one tile
        assert tif.pages[0].is_tiled and tif.pages[0].photometric == tifffile.PHOTOMETRIC.PALETTE
        assert np.array_equal(series.levels[0].asarray(), whole.label)  # bit for bit (fp32)
        assert np.array_equal(series.levels[1].asarray(), whole.label[::2, ::2])
        tags = tif.pages[0].tags
        for code, _dtype, _count, value in GEO:
            assert tags[code].value == value, code
    with tifffile.TiffFile(out / "ortho_confidence.tif") as tif:
        confidence = tif.series[0].levels[0].asarray()
        expected = np.round(whole.confidence.astype(np.float32) * 255).astype(np.uint8)
        assert np.array_equal(confidence, expected)
        assert tif.pages[0].tags[33922].value == GEO[1][3]
    again = drain(segment_paths(predictor, [folder], SegmentOptions(out)))
    assert len(again.skipped) == 2  # finished slides are not redone


def test_interrupted_slide_segment_resumes_from_the_tiles_written(tmp_path, unet):
    image = photo(1200, 500)
    path = tmp_path / "slide.tif"
    write_pyramid(path, image, levels=2)
    predictor = Predictor(unet, device="cpu", tile=256, overlap=32, precision="fp32")
    base = tmp_path / "out" / "slide"
    with open_slide(path) as slide:
        gen = segment_slide(predictor, slide, base)
        for event in gen:
            if event.done >= event.total * 3 // 4:
                break
        gen.close()  # as Ctrl+C or a killed process leaves it: strips on disk, no label
        assert not (tmp_path / "out" / "slide.tif").exists()
        strips = sorted(p.name for p in (tmp_path / "out" / "slide.tif.partial").glob("L0_*.png"))
        assert strips == ["L0_000000_0000.png"]  # 512 of 1200 rows, written whole
        events = []
        out = drain(segment_slide(predictor, slide, base), events.append)
    skipped = events[0].done - 1  # one tile a batch: the first batch resumed is tile skipped + 1
    assert skipped >= 3 and len(events) == events[-1].total - skipped  # whole bands were not run again
    expected = predictor.predict(image).label
    with tifffile.TiffFile(out) as tif:
        assert np.array_equal(tif.series[0].levels[0].asarray(), expected)


def test_a_wide_slide_is_segmented_in_panels_of_columns_equal_to_the_whole_and_resumes_mid_panel(
    tmp_path, unet
):
    image = photo(700, 1100)
    path = tmp_path / "wide.tif"
    write_pyramid(path, image, levels=2)
    predictor = Predictor(unet, device="cpu", tile=128, overlap=16, precision="fp32")
    base = tmp_path / "out" / "wide"
    partial = tmp_path / "out" / "wide.tif.partial"
    with open_slide(path) as slide:
        gen = segment_slide(predictor, slide, base, confidence=True, panel=512)
        for _event in gen:
            if len(list(partial.glob("L0_*_0001.png"))) == 1:
                break  # the second panel's first strip is on disk, its second is not
        gen.close()
        strips = sorted(p.name for p in partial.glob("L0_*.png"))
        assert strips == ["L0_000000_0000.png", "L0_000000_0001.png", "L0_000001_0000.png"]
        events = []
        out = drain(segment_slide(predictor, slide, base, confidence=True, panel=512), events.append)
    assert events[0].done > events[-1].total // 3  # the first panel was not run again
    whole = predictor.predict(image)
    with tifffile.TiffFile(out) as tif:
        assert np.array_equal(tif.series[0].levels[0].asarray(), whole.label)  # bit for bit (fp32)
        assert np.array_equal(tif.series[0].levels[1].asarray(), whole.label[::2, ::2])
    with tifffile.TiffFile(tmp_path / "out" / "wide_confidence.tif") as tif:
        expected = np.round(whole.confidence.astype(np.float32) * 255).astype(np.uint8)
        assert np.array_equal(tif.series[0].levels[0].asarray(), expected)


def test_the_scores_held_between_bands_are_bounded_by_panels_whatever_the_width(unet):
    two = new_model(ModelInfo(variant="unet", classes=classes_from_names(["background", "cell"])))
    few = Predictor(two, device="cpu", overlap=64, precision="fp32")
    wide = Predictor(unet, device="cpu", overlap=64, precision="fp32")  # the 21 VOC classes
    assert wide.carry_columns() < few.carry_columns() // 5  # 21 classes' scores a column, not 2
    for predictor in (few, wide):
        carried = predictor.carry_columns() * 2 * (predictor.model.info.num_classes + 1) * 4 * (64 + 32)
        assert carried <= CARRY_BYTES
        # the tile chosen for a slide does not shrink with its width: the carry is a panel's
        tiles = {predictor.largest_tile(5_000, width, held=False) for width in (20_000, 150_000)}
        assert len(tiles) == 1


@pytest.mark.parametrize(
    ("kept", "why"), [(0.97, "level 2 .* is cut short"), (0.9, "declares 3 levels but only 2")]
)
def test_a_truncated_pyramid_is_named_with_the_fix(tmp_path, kept, why):
    path = tmp_path / "cut.tif"
    write_pyramid(path, photo(600, 700), compression="jpeg")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * kept)])
    with pytest.raises(SlideError, match=f"cut.tif: .*pyramid {why}.*vips tiffsave"):
        open_slide(path)


def test_missing_libraries_are_named_with_what_to_install(tmp_path, monkeypatch):
    jpeg = tmp_path / "jpeg.tif"
    write_pyramid(jpeg, photo(300, 300), compression="jpeg", levels=1)
    monkeypatch.setattr(sys.modules["tifffile.tifffile"], "imagecodecs", None)  # as if not installed
    with pytest.raises(SlideError, match=r"jpeg.tif: .*JPEG tiles cannot be decoded.*install imagecodecs"):
        open_slide(jpeg)
    monkeypatch.setitem(sys.modules, "openslide", None)
    mirax = tmp_path / "slide.mrxs"
    mirax.write_bytes(b"[GENERAL]\n")
    with pytest.raises(SlideError, match=r"slide.mrxs: .*pip install openslide-python openslide-bin"):
        open_slide(mirax)


def test_label_tiles_round_trip_and_a_damaged_tile_is_set_aside_not_deleted(tmp_path):
    store = LabelTiles(tmp_path / "ortho.tiles")
    assert store.on_disk() == [] and store.read(0, 0) is None
    label = np.full((512, 512), 255, np.uint8)
    label[10:20, 30:40] = 7
    store.write(3, 12, label, label != 255)
    store.write(0, 1, label, np.zeros_like(label, bool))
    assert store.on_disk() == [(0, 1), (3, 12)]
    back, painted = store.read(3, 12)
    assert np.array_equal(back, label) and np.array_equal(painted, label != 255)
    store.path(0, 1).write_bytes(store.path(0, 1).read_bytes()[:100])  # cut short by a full disk
    assert store.read(0, 1) is None
    assert store.damaged == [store.path(0, 1).with_name("0_1.png.damaged")] and store.damaged[0].exists()


def test_removing_a_class_rewrites_a_slides_tiles_with_the_labels(tmp_path):
    from core.store.project import Project

    image = photo(600, 700)
    write_pyramid(tmp_path / "ortho.tif", image)
    with Project.create(tmp_path / "proj", classes=classes_from_names(["bg", "road", "roof"])) as project:
        (entry,) = project.add_images([tmp_path / "ortho.tif"])
        label = np.full((512, 512), 2, np.uint8)  # roof
        label[:, :100] = 1  # road
        project.slide_tiles(entry).write(1, 0, label, np.ones_like(label, bool))
        project.remove_class(1)  # road goes: its pixels become void, roof becomes 1
        back, painted = project.slide_tiles(entry).read(1, 0)
    assert (back[:, :100] == 255).all() and (back[:, 100:] == 1).all() and painted.all()


@pytest.mark.parametrize("fmt", ["voc", "masks"])
def test_export_writes_a_slides_painted_tiles_as_a_georeferenced_pyramidal_label_tiff(tmp_path, fmt):
    from core.formats.masks import export_masks
    from core.formats.voc import export_voc
    from core.store.project import Project

    write_pyramid(tmp_path / "ortho.tif", photo(1100, 1300), extratags=[(*tag, True) for tag in GEO])
    with Project.create(tmp_path / "proj", classes=classes_from_names(["bg", "road"])) as project:
        (entry,) = project.add_images([tmp_path / "ortho.tif"])
        label = np.full((512, 512), 255, np.uint8)
        label[:, 200:300] = 1
        project.slide_tiles(entry).write(2, 2, label, label != 255)  # the bottom-right corner tile
        project.set_state(entry, "edited")
        exporter = export_voc if fmt == "voc" else export_masks
        drain(exporter(project, tmp_path / "out"))
    with tifffile.TiffFile(tmp_path / "out" / "SlideLabels" / "ortho.tif") as tif:
        back = tif.series[0].levels[0].asarray()
        assert tif.pages[0].tags[33922].value == GEO[1][3] and tif.pages[0].is_tiled
    expected = np.full((1100, 1300), 255, np.uint8)
    expected[1024:, 1024 + 200 : 1024 + 276] = 1  # the tile clipped at the slide's edge
    assert np.array_equal(back, expected)


def test_a_reviewed_slide_trains_the_learner_on_the_tiles_painted_in_read_region_by_region(tmp_path, unet):
    from core.store.project import Project
    from core.training.learner import LearnerConfig
    from core.training.project_learner import learn, slide_examples
    from core.training.review_feed import ReviewFeed

    image = photo(1100, 1300)
    write_pyramid(tmp_path / "ortho.tif", image)
    with Project.create(tmp_path / "proj") as project:
        (entry,) = project.add_images([tmp_path / "ortho.tif"])
        tiles = project.slide_tiles(entry)
        label = np.full((512, 512), 255, np.uint8)
        label[100:300, 100:300] = 15
        tiles.write(0, 1, label, label != 255)  # painted in
        tiles.write(2, 2, np.zeros((512, 512), np.uint8), np.zeros((512, 512), bool))  # predicted only
        project.set_state(entry, "reviewed")
        project.flush()
        examples = slide_examples(project, entry.id)
        assert [e.id for e in examples] == ["ortho#0_1"]
        assert np.array_equal(examples[0].image, image[:512, 512:1024])
        assert np.array_equal(examples[0].label, label)
        learners = []
        config = LearnerConfig(device="cpu", precision="fp32", crop=64, batch_size=2, rest_after_steps=10**9)
        feed = ReviewFeed()
        gen = learn(project, unet, config, feed, started=learners.append)
        for _event in gen:
            if learners[0].steps >= 2:
                break
        ids = {e.id for e in learners[0]._examples.values()}
        assert ids == {"ortho#0_1"}  # the slide trains through its painted tile, never read whole
        feed.unreviewed("ortho")
        next(gen)
        assert not learners[0]._examples.values()
        gen.close()


def test_a_slides_strokes_train_region_by_region_until_it_is_reviewed(tmp_path, unet):
    from core.store.project import Project
    from core.training.learner import LearnerConfig
    from core.training.project_learner import LIVE_REGIONS, learn
    from core.training.review_feed import ReviewFeed, region_id

    image = photo(1100, 1300)
    write_pyramid(tmp_path / "ortho.tif", image)
    with Project.create(tmp_path / "proj") as project:
        (entry,) = project.add_images([tmp_path / "ortho.tif"])
        learners = []
        config = LearnerConfig(device="cpu", precision="fp32", crop=64, batch_size=2, rest_after_steps=10**9)
        feed = ReviewFeed()
        gen = learn(project, unet, config, feed, started=learners.append)
        regions = [region_id("ortho", 0, 64 * i) for i in range(LIVE_REGIONS + 2)]
        for live_id in regions:
            painted = np.full((128, 128), 255, np.uint8)
            painted[40:60, 40:60] = 15
            feed.live(live_id, image[:128, :128], painted)
            next(gen)  # one region after another, as strokes move across the slide
        ids = {e.id for e in learners[0]._examples.values()}
        assert ids == set(regions[-LIVE_REGIONS:])  # the newest regions' strokes train
        label = np.full((512, 512), 255, np.uint8)
        label[100:300, 100:300] = 15
        project.slide_tiles(entry).write(0, 0, label, label != 255)
        project.set_state(entry, "reviewed")
        feed.reviewed("ortho")
        next(gen)
        assert {e.id for e in learners[0]._examples.values()} == {"ortho#0_0"}  # its painted tiles instead
        gen.close()


def test_export_cuts_a_slide_into_voc_crops_where_it_was_painted_when_asked(tmp_path, capsys):
    from core.cli import main
    from core.store.project import Project

    image = photo(1100, 1300)
    write_pyramid(tmp_path / "ortho.tif", image)
    with Project.create(tmp_path / "proj", classes=classes_from_names(["bg", "road"])) as project:
        (entry,) = project.add_images([tmp_path / "ortho.tif"])
        label = np.full((512, 512), 255, np.uint8)
        label[10:20, 300:310] = 1  # in the 256-cell at (512, 768) only
        project.slide_tiles(entry).write(1, 1, label, label != 255)
        project.set_state(entry, "reviewed")
    out = tmp_path / "voc"
    assert main(["export", str(tmp_path / "proj"), "--out", str(out), "--slide-crops", "256"]) == 0
    assert sorted(p.name for p in (out / "SegmentationClass").iterdir()) == ["ortho_512_768.png"]
    crop = np.asarray(Image.open(out / "JPEGImages" / "ortho_512_768.jpg"))
    assert crop.shape == (256, 256, 3) and np.abs(crop.astype(int) - image[512:768, 768:1024]).mean() < 4
    back = np.asarray(Image.open(out / "SegmentationClass" / "ortho_512_768.png"))
    assert (back[10:20, 44:54] == 1).all() and (back == 1).sum() == 100 and (back[back != 1] == 255).all()
    assert (out / "SlideLabels" / "ortho.tif").is_file()
    with pytest.raises(SystemExit) as usage:
        main(["export", str(tmp_path / "proj"), "--out", str(tmp_path / "x"), "--slide-crops", "8"])
    assert usage.value.code == 2 and "--slide-crops: 8 is out of range" in capsys.readouterr().err


def test_train_on_a_project_takes_a_reviewed_slides_painted_tiles_read_region_by_region(tmp_path, capsys):
    from core.cli import main
    from core.store.project import Project
    from core.training.datasets import SegmentationDataset, TrainData

    image = photo(1100, 1300)
    write_pyramid(tmp_path / "ortho.tif", image)
    with Project.create(tmp_path / "proj", classes=classes_from_names(["bg", "road"])) as project:
        (entry,) = project.add_images([tmp_path / "ortho.tif"])
        label = np.zeros((512, 512), np.uint8)
        label[:, 200:] = 1
        project.slide_tiles(entry).write(2, 2, label, label == 1)  # the corner tile: 76 x 276 px
        project.slide_tiles(entry).write(0, 0, label, np.zeros_like(label, bool))  # predicted only
        project.set_state(entry, "reviewed")
    data = TrainData.from_path(tmp_path / "proj", val_fraction=0.0)
    assert [s.name for s in data.train] == ["ortho#2_2"] and not data.val
    pair = SegmentationDataset(data.train, 2, lambda i, m: (i, m)).load(0)
    assert np.array_equal(pair[0].permute(1, 2, 0).numpy(), image[1024:, 1024:])
    assert np.array_equal(pair[1].numpy(), label[:76, :276])
    out = tmp_path / "slide.safetensors"
    args = ["train", str(tmp_path / "proj"), "--output", str(out), "--variant", "unet", "--steps", "2",
            "--batch-size", "1", "--crop", "64", "--workers", "0", "--val-every", "2"]  # fmt: skip
    assert main(args) == 0 and out.is_file()
