"""Pascal VOC segmentation datasets: export a project, import a dataset as a project.

The layout written (and read) is VOC2012's::

    DIR/JPEGImages/<id>.jpg
    DIR/SegmentationClass/<id>.png          palette PNG, 255 = void
    DIR/ImageSets/Segmentation/{train,val,trainval}.txt
    DIR/class_names.txt

torchvision's ``VOCSegmentation(root, year="2012")`` reads ``root/VOCdevkit/VOC2012``: export
to ``.../VOCdevkit/VOC2012`` and pass the folder two levels up as ``root``.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import ExifTags, Image

from core.base.atomic import atomic_path, atomic_write_text
from core.base.errors import DatasetError
from core.base.progress import Progress
from core.formats.exporting import export_entries
from core.formats.importing import ImportItem, ImportReport, import_items
from core.formats.slide_labels import FOLDER, export_slide_labels
from core.formats.slide_labels import slide_crops as crops_of
from core.io.files import output_folder
from core.io.images import find_image, open_image, read_image
from core.io.labels import LabelClass, default_classes, palette_for, read_class_file, read_label, write_label
from core.store.project import Project

SPLITS = ("train", "val", "trainval")


@dataclass
class ExportReport:
    """Ids per split and images left out (with the reason)."""

    out_dir: Path
    splits: dict[str, list[str]] = field(default_factory=dict)
    unlabelled: int = 0  # images left out: no label yet, or not in the states asked for
    slides: list[Path] = field(default_factory=list)  # slides' labels, as tiled pyramidal TIFFs

    def summary(self) -> str:
        counts = ", ".join(f"{k} {len(v)}" for k, v in self.splits.items())
        slides = f"; {len(self.slides)} slide labels in {FOLDER}/" if self.slides else ""
        return (
            f"exported to {self.out_dir}: {counts}{slides}; {self.unlabelled} images without a usable label"
        )


def split_ids(ids: list[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """A deterministic train/val split of ``ids`` (at least one val image if any is asked)."""
    if not 0 <= val_fraction < 1:
        raise DatasetError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    order = sorted(ids)
    random.Random(seed).shuffle(order)
    n_val = round(len(order) * val_fraction)
    if val_fraction > 0 and len(order) > 1:
        n_val = max(1, n_val)
    n_val = min(n_val, max(0, len(order) - 1))
    return sorted(order[n_val:]), sorted(order[:n_val])


def export_voc(
    project: Project,
    out_dir: str | Path,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    only_reviewed: bool = False,
    image_format: str = "jpg",
    slide_crops: int = 0,
) -> Generator[Progress, None, ExportReport]:
    """Write ``project`` as a VOC segmentation dataset; yield per image; return the report.

    JPEG sources without EXIF rotation are copied byte for byte; other images are encoded
    (JPEG quality 95, or PNG with ``image_format="png"``, lossless but unreadable by
    torchvision's loader, which expects ``.jpg``). Slides' labels are written as pyramidal TIFFs
    in ``SlideLabels/``; with ``slide_crops`` (a size in pixels) the cells of that size they
    were painted in also join the dataset as ordinary VOC images.
    """
    if image_format not in ("jpg", "png"):
        raise DatasetError(f"--image-format must be jpg or png, got {image_format!r}")
    out = output_folder(out_dir, "export folder")  # a file in the way: said before anything else
    selection = export_entries(project, only_reviewed=only_reviewed)
    report = ExportReport(out)
    report.unlabelled = project.count() - selection.total - len(selection.slides)
    ids = []
    for done, entry in enumerate(selection, start=1):
        source = project.image_path(entry)
        label = project.load_label(entry)
        _write_image(source, out / "JPEGImages" / f"{entry.id}.{image_format}", image_format)
        write_label(out / "SegmentationClass" / f"{entry.id}.png", label, project.classes)
        ids.append(entry.id)
        yield Progress(done, selection.total, entry.id)
    for entry in selection.slides if slide_crops else []:
        for crop_id, image, label in crops_of(project, entry, slide_crops):
            with atomic_path(out / "JPEGImages" / f"{crop_id}.{image_format}") as tmp:
                Image.fromarray(image).save(
                    tmp, format="JPEG" if image_format == "jpg" else "PNG", quality=95
                )
            write_label(out / "SegmentationClass" / f"{crop_id}.png", label, project.classes)
            ids.append(crop_id)
    train, val = split_ids(ids, val_fraction, seed)
    report.splits = {"train": train, "val": val, "trainval": sorted(train + val)}
    for name, ids in report.splits.items():
        atomic_write_text(out / "ImageSets" / "Segmentation" / f"{name}.txt", "".join(f"{i}\n" for i in ids))
    atomic_write_text(out / "class_names.txt", "".join(f"{c.name}\n" for c in project.classes))
    report.slides = yield from export_slide_labels(project, selection.slides, out)
    return report


def _write_image(source: Path, dest: Path, image_format: str) -> None:
    is_jpeg = source.suffix.lower() in (".jpg", ".jpeg")
    if image_format == "jpg" and is_jpeg and _orientation(source) in (None, 1):
        with atomic_path(dest) as tmp:
            shutil.copyfile(source, tmp)
        return
    image = Image.fromarray(read_image(source))
    with atomic_path(dest) as tmp:
        if image_format == "jpg":
            image.save(tmp, format="JPEG", quality=95, subsampling=0)
        else:
            image.save(tmp, format="PNG")


def _orientation(path: Path) -> int | None:
    with open_image(path) as img:
        return img.getexif().get(ExifTags.Base.Orientation)


def find_voc_root(path: str | Path) -> Path:
    """The folder holding ``JPEGImages`` and ``SegmentationClass`` (also under VOCdevkit/VOC20xx)."""
    path = Path(path)
    candidates = [path, *sorted(path.glob("VOC20*")), *sorted(path.glob("VOCdevkit/VOC20*"))]
    for c in candidates:
        if (c / "SegmentationClass").is_dir():
            return c
    raise DatasetError("not a VOC dataset: no SegmentationClass folder here or under VOCdevkit/VOC20xx", path)


def import_voc(voc_dir: str | Path, project_dir: str | Path) -> Generator[Progress, None, ImportReport]:
    """Make a project in ``project_dir`` from a VOC dataset; its labels become ``reviewed``.

    Images stay where they are; labels are copied into the project. Classes come from
    ``class_names.txt`` when present, else the 21 VOC classes. RGB label images are
    converted through the colour map; unknown colours raise ``LabelError``.
    """
    root = find_voc_root(voc_dir)
    classes = dataset_classes(root)
    images_dir = root / "JPEGImages"
    pairs, problems = [], []
    for image_id in _dataset_ids(root):
        image = find_image(images_dir, image_id)
        if image is None:
            problems.append(f"{image_id}: no image in {images_dir}")
        else:
            pairs.append((image_id, image))
    if problems:
        raise DatasetError(
            f"{len(problems)} labels have no image ({'; '.join(problems[:3])}); "
            "add the images or remove the labels",
            root,
        )
    if not pairs:
        raise DatasetError("the dataset has no labels in SegmentationClass", root)
    palette = palette_for(classes)

    def items() -> Iterator[ImportItem]:
        for image_id, image in pairs:
            label_path = root / "SegmentationClass" / f"{image_id}.png"
            label = read_label(label_path, num_classes=len(classes), palette=palette)
            yield ImportItem(image, image_id, label, label_path)

    return (yield from import_items(project_dir, classes, items(), len(pairs)))


def dataset_classes(root: Path) -> list[LabelClass]:
    names_file = root / "class_names.txt"
    return read_class_file(names_file) if names_file.exists() else default_classes()


def _dataset_ids(root: Path) -> list[str]:
    sets = root / "ImageSets" / "Segmentation"
    ids: list[str] = []
    for name in SPLITS:
        f = sets / f"{name}.txt"
        if f.exists():
            ids += [line.strip() for line in f.read_text().splitlines() if line.strip()]
    if not ids:
        ids = [p.stem for p in sorted((root / "SegmentationClass").glob("*.png"))]
    seen = set()
    unique = [i for i in ids if not (i in seen or seen.add(i))]
    return unique
