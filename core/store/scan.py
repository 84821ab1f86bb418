"""Listing an image folder into its project as its files are found, and rescanning it.

``scan_folder`` walks the folder once, adding images batch by batch (the first batch small, so
a window shows the first image at once, the rest a thousand at a time) and yielding the ids it
added; then it checks the files the project already listed and marks those that vanished
(``missing``) or came back. Run it on a worker: the file system, not the project, sets its
pace. Stopping it keeps what was added.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

from core.base.progress import Progress
from core.io.files import walk_files
from core.io.images import is_image_path
from core.io.slides import OPENSLIDE_SUFFIXES
from core.store.project import Project

FIRST_BATCH = 20
BATCH = 1000


@dataclass(frozen=True)
class ScanProgress(Progress):
    """Files looked at so far (``done``; ``total`` is 0 while the walk goes on); ``added``: the
    ids listed by this step; ``changed``: ids whose file vanished or came back."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()


@dataclass
class ScanReport:
    """What a scan found: images added, files missing now, what it could not scan (and why)."""

    added: int = 0
    missing: int = 0
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.added} images added, {self.missing} missing"
        return text + "".join(f"\n  {p}: {why}" for p, why in self.skipped)


def scan_folder(project: Project, folder: str | Path) -> Generator[ScanProgress, None, ScanReport]:
    """Add the images under ``folder`` not listed yet, then mark the listed files that are gone."""
    folder = Path(folder)
    report = ScanReport()
    taken = set(project.ids())
    batch: list[str] = []
    looked = 0
    for path in walk_files(folder, report.skipped):
        looked += 1
        if is_image_path(path) or os.path.splitext(path)[1].lower() in OPENSLIDE_SUFFIXES:
            batch.append(path)
        if len(batch) >= (FIRST_BATCH if report.added == 0 else BATCH):
            yield _add(project, batch, taken, looked, report)
            batch = []
    if batch:
        yield _add(project, batch, taken, looked, report)
    yield from _check_files(project, looked, report)
    report.missing = project.count(missing=True)
    return report


def _add(
    project: Project, batch: list[str], taken: set[str], looked: int, report: ScanReport
) -> ScanProgress:
    added = project.add_images(batch, taken=taken)
    report.added += len(added)
    return ScanProgress(looked, 0, f"{looked} files looked at", added=tuple(e.id for e in added))


def _check_files(project: Project, looked: int, report: ScanReport) -> Generator[ScanProgress, None, None]:
    """Compare every listed image with the disk, a page at a time (by row number: a page
    costs the same at the end of 100,000 images as at the start)."""
    total, done, last = project.count(), 0, 0
    while page := project.paths_after(last, BATCH):
        changed = {}
        for _row, image_id, stored, missing in page:
            present = os.path.exists(project.file_of(stored))
            if present == missing:
                changed[image_id] = not present
        if changed:
            project.mark_missing(changed)
        done, last = done + len(page), page[-1][0]
        yield ScanProgress(done, total, f"checked {done} of {total} images", changed=tuple(changed))
