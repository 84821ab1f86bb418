"""What every export takes from a project: the labelled images, each with its image file.

Checked before anything is written, so an export that cannot be complete (an image moved
away) is refused whole instead of failing half-way; then read a page at a time, so exporting
100,000 labels holds one page of entries, never the whole project.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from core.base.errors import DatasetError
from core.store.project import ImageEntry, Project

LABELLED = ("predicted", "edited", "reviewed")
PAGE = 1000


@dataclass
class ExportSelection:
    """The entries of ``project`` in ``states`` whose label is on disk; ``total`` of them.
    ``slides``: the whole-slide images among them, whose label is tiles (never iterated here)."""

    project: Project
    states: tuple[str, ...]
    total: int = 0
    slides: list[ImageEntry] = field(default_factory=list)

    def __iter__(self) -> Iterator[ImageEntry]:
        last = 0
        while page := self.project.entries(self.states, after_row=last, limit=PAGE):
            last = page[-1].row
            yield from (e for e in page if self.project.label_path(e).exists())

    def find_slides(self) -> None:
        """Collect the entries whose label is a slide's tiles."""
        last = 0
        while page := self.project.entries(self.states, after_row=last, limit=PAGE):
            last = page[-1].row
            self.slides += [e for e in page if self.project.slide_tiles(e).on_disk()]


def export_entries(project: Project, *, only_reviewed: bool = False) -> ExportSelection:
    """The entries to export: saved labels in a labelled state (``reviewed`` only if asked).

    Raises ``DatasetError`` when there are none, or when an image of one is missing.
    """
    project.flush()
    selection = ExportSelection(project, ("reviewed",) if only_reviewed else LABELLED)
    missing, shown = 0, []
    for entry in selection:
        selection.total += 1
        if not project.image_path(entry).exists():
            missing += 1
            shown += [str(project.image_path(entry))] if len(shown) < 5 else []
    selection.find_slides()
    for entry in selection.slides:
        if not project.image_path(entry).exists():
            missing += 1
            shown += [str(project.image_path(entry))] if len(shown) < 5 else []
    if not selection.total and not selection.slides:
        hint = "drop --only-reviewed, or mark some reviewed" if only_reviewed else "mark some reviewed"
        raise DatasetError(f"no labelled images to export ({hint})", project.root)
    if missing:
        raise DatasetError(
            f"{missing} labelled images are missing ({', '.join(shown)}); "
            "restore them or remove them from the project",
            project.root,
        )
    return selection
