"""What every import does once a format has read its files: build the project.

A format (VOC, index masks, labelme) turns its files into ``ImportItem`` s, lazily; this
makes the project from them. Each labelled image becomes ``reviewed`` under the id the
format gives it, an image without a label ``new``. A label whose size differs from its image,
or any other bad label, stops the import and leaves nothing behind (``building``).
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.base.progress import Progress
from core.io.images import image_size
from core.io.labels import LabelClass, check_label_size
from core.store.project import Project, building

FLUSH_EVERY = 50  # images per save while importing


@dataclass
class ImportItem:
    """One image for the new project: its id, its label (``None``: none, the image is ``new``)
    and the annotation file the label came from (named in messages)."""

    image: Path
    id: str
    label: np.ndarray | None = None
    source: Path | None = None


@dataclass
class ImportReport:
    """What an import made: the project, and the annotation files it could not use (with why)."""

    project: Project
    imported: int = 0
    unlabelled: int = 0
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.imported} labelled images imported as reviewed, {self.unlabelled} without one as new"
        if self.skipped:
            text += f", {len(self.skipped)} annotation files skipped:" + "".join(
                f"\n  {p}: {why}" for p, why in self.skipped
            )
        return text


def import_items(
    project_dir: str | Path,
    classes: list[LabelClass],
    items: Iterable[ImportItem],
    total: int,
    skipped: list[tuple[Path, str]] | None = None,
) -> Generator[Progress, None, ImportReport]:
    """Make a project in ``project_dir`` from ``items`` (``total`` of them); yield per item.

    ``skipped`` are files the format already could not use, reported with the rest.
    """
    with building(project_dir, classes) as project:
        report = ImportReport(project, skipped=list(skipped or []))
        for done, item in enumerate(items, start=1):
            _add(project, item, report)
            if done % FLUSH_EVERY == 0:
                project.flush()
            yield Progress(done, total, item.id)
    return report


def _add(project: Project, item: ImportItem, report: ImportReport) -> None:
    if item.label is not None:
        check_label_size(item.label, image_size(item.image), item.source or item.image, item.image)
    entries = project.add_images([item.image])
    if not entries:
        why = f"its image {item.image.name} is in the project already (labelled by another file)"
        report.skipped.append((item.source or item.image, why))
        return
    project.rename_image(entries[0], item.id)  # taken by another image: it keeps a numbered id
    if item.label is None:
        report.unlabelled += 1
    else:
        project.set_label(entries[0], item.label, "reviewed")
        report.imported += 1
