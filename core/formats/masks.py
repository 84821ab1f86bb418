"""Folders of index masks: single-channel PNGs whose pixel values are class indices (255 void).

The layout many training pipelines (and Cityscapes-style datasets) read:

```
DIR/images/<id>.<jpg|png|...>   the images
DIR/masks/<id>.png              8-bit greyscale, value = class index, 255 = void
DIR/classes.txt                 one class name per line, index 0 first
```
"""

from __future__ import annotations

import shutil
from collections.abc import Generator
from pathlib import Path

import numpy as np
from PIL import Image

from core.base.atomic import atomic_path, atomic_write_text
from core.base.errors import DatasetError, ImageReadError, ImageTooLargeError, LabelError
from core.base.progress import Progress
from core.formats.exporting import export_entries
from core.formats.importing import ImportItem, ImportReport, import_items
from core.formats.slide_labels import export_slide_labels
from core.io.files import output_folder
from core.io.images import find_image, open_image
from core.io.labels import VOID, check_label_indices, read_class_file
from core.store.project import Project

CLASS_FILES = ("classes.txt", "class_names.txt")


def is_mask_folder(folder: str | Path) -> bool:
    """Does ``folder`` have the index-mask layout above?"""
    folder = Path(folder)
    return (folder / "masks").is_dir() and (folder / "images").is_dir()


def export_masks(
    project: Project, out_dir: str | Path, *, only_reviewed: bool = False
) -> Generator[Progress, None, int]:
    """Write the project's labels as index masks with their images; returns how many."""
    out = output_folder(out_dir, "export folder")  # a file in the way: said before anything else
    selection = export_entries(project, only_reviewed=only_reviewed)
    for done, entry in enumerate(selection, start=1):
        source = project.image_path(entry)
        with atomic_path(out / "images" / f"{entry.id}{source.suffix.lower()}") as tmp:
            shutil.copyfile(source, tmp)
        with atomic_path(out / "masks" / f"{entry.id}.png") as tmp:
            Image.fromarray(project.load_label(entry), mode="L").save(tmp, format="PNG")
        yield Progress(done, selection.total, entry.id)
    atomic_write_text(out / "classes.txt", "".join(f"{c.name}\n" for c in project.classes))
    slides = yield from export_slide_labels(project, selection.slides, out)
    return selection.total + len(slides)


def read_index_mask(path: Path, num_classes: int) -> np.ndarray:
    """An index mask as ``HxW uint8``; colour or palette images and unknown indices are refused."""
    try:
        with open_image(path) as img:
            if img.mode not in ("L", "P", "I", "I;16"):
                raise LabelError(f"is a {img.mode} image; index masks are single-channel", path)
            label = np.asarray(img if img.mode in ("L", "P") else img.convert("I"))
    except ImageTooLargeError:
        raise
    except (ImageReadError, OSError) as exc:
        raise LabelError(f"cannot read the mask ({str(exc).removeprefix(f'{path}: ')})", path) from exc
    if label.max(initial=0) > VOID:
        raise LabelError(f"holds the value {int(label.max())}; masks hold class indices and 255", path)
    label = label.astype(np.uint8)
    check_label_indices(label, num_classes, path)
    return label


def import_masks(folder: str | Path, project_dir: str | Path) -> Generator[Progress, None, ImportReport]:
    """Make a project from an index-mask folder; its labels become ``reviewed``."""
    folder = Path(folder)
    class_file = next((folder / n for n in CLASS_FILES if (folder / n).exists()), None)
    if class_file is None:
        raise DatasetError("no classes.txt (one class name per line) beside masks/ and images/", folder)
    classes = read_class_file(class_file)
    masks = sorted((folder / "masks").glob("*.png"))
    if not masks:
        raise DatasetError("masks/ holds no PNG masks", folder)
    pairs = [(mask, find_image(folder / "images", mask.stem)) for mask in masks]
    if lonely := [mask.name for mask, image in pairs if image is None]:
        raise DatasetError(
            f"{len(lonely)} masks have no image in images/ ({', '.join(lonely[:3])}); "
            "add the images or remove the masks",
            folder,
        )
    items = (ImportItem(image, mask.stem, read_index_mask(mask, len(classes)), mask) for mask, image in pairs)
    return (yield from import_items(project_dir, classes, items, len(pairs)))
