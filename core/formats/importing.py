"""What every import does once a format has read its files: build the project.

A format (VOC, index masks, labelme) turns its files into ``ImportItem`` s, lazily; this
makes the project from them. Each labelled image becomes ``reviewed`` under the id the
format gives it, an image without a label ``new``. A label whose size differs from its image,
or any other bad label, stops the import and leaves nothing behind (``building``).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Generator, Iterable, Iterator
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

    ``skipped`` are files the format already could not use, reported with the rest. Items are
    added ``FLUSH_EVERY`` at a time: one transaction for their rows, one save for their labels.
    """
    with building(project_dir, classes) as project:
        report = ImportReport(project, skipped=list(skipped or []))
        taken: set[str] = set()  # the ids given so far (the project is new)
        done = 0
        for chunk in _batched(items, FLUSH_EVERY):
            _add(project, chunk, report, taken)
            project.flush()
            for item in chunk:
                done += 1
                yield Progress(done, total, item.id)
    return report


def _add(project: Project, chunk: tuple[ImportItem, ...], report: ImportReport, taken: set[str]) -> None:
    for item in chunk:
        if item.label is not None:
            check_label_size(item.label, image_size(item.image), item.source or item.image, item.image)
    entries = project.add_images([i.image for i in chunk], taken=taken, ids=[i.id for i in chunk])
    by_path = {project.image_path(e): e for e in entries}
    for item in chunk:
        entry = by_path.pop(Path(os.path.normpath(item.image.absolute())), None)
        if entry is None:
            why = f"its image {item.image.name} is in the project already (labelled by another file)"
            report.skipped.append((item.source or item.image, why))
        elif item.label is None:
            report.unlabelled += 1
        else:
            project.set_label(entry, item.label, "reviewed")
            report.imported += 1


def _batched(items: Iterable[ImportItem], size: int) -> Iterator[tuple[ImportItem, ...]]:
    it = iter(items)
    while chunk := tuple(itertools.islice(it, size)):
        yield chunk
