"""Which annotation format a folder holds, and its import: one answer for the command line and
the app."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

from core.base.errors import DatasetError, FcnGuiError
from core.base.progress import Progress
from core.formats.importing import ImportReport
from core.formats.labelme import import_labelme, is_labelme_folder
from core.formats.masks import import_masks, is_mask_folder
from core.formats.voc import find_voc_root, import_voc


def dataset_root(folder: str | Path, *, masks: bool = True) -> Path:
    """The root of the annotations in ``folder``: a labelme JSON folder, (with ``masks``) an
    images/ + masks/ folder, or a VOC dataset. Raises ``DatasetError`` naming the layouts."""
    folder = Path(folder)
    if is_labelme_folder(folder) or (masks and is_mask_folder(folder)):
        return folder
    try:
        return find_voc_root(folder)
    except DatasetError:
        raise DatasetError(
            "nothing to import here: pick a VOC dataset (JPEGImages/ + SegmentationClass/), a folder of "
            "labelme JSON files, or a folder with images/ + masks/",
            folder,
        ) from None


def import_any(
    folder: str | Path, project_dir: str | Path, class_file: str | Path | None = None
) -> Generator[Progress, None, ImportReport]:
    """Import whatever ``folder`` holds (see ``dataset_root``) as a new project in ``project_dir``.

    ``class_file`` is labelme's class list; the other formats name their classes themselves.
    """
    root = dataset_root(folder)
    if is_labelme_folder(root):
        return (yield from import_labelme(root, project_dir, class_file))
    if class_file is not None:
        raise FcnGuiError("--classes is for labelme JSON folders; VOC and mask folders name their classes")
    if is_mask_folder(root):
        return (yield from import_masks(root, project_dir))
    return (yield from import_voc(root, project_dir))
