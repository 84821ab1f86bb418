"""What every export takes from a project: the labelled images, each with its image file.

Chosen before anything is written, so an export that cannot be complete (an image moved
away) is refused whole instead of failing half-way.
"""

from __future__ import annotations

from core.base.errors import DatasetError
from core.store.project import ImageEntry, Project

LABELLED = ("predicted", "edited", "reviewed")


def export_entries(project: Project, *, only_reviewed: bool = False) -> list[ImageEntry]:
    """The entries to export: saved labels in a labelled state (``reviewed`` only if asked).

    Raises ``DatasetError`` when there are none, or when an image of one is missing.
    """
    project.flush()
    wanted = ("reviewed",) if only_reviewed else LABELLED
    entries = [e for e in project.images if e.state in wanted and project.label_path(e).exists()]
    if not entries:
        hint = "drop --only-reviewed, or mark some reviewed" if only_reviewed else "mark some reviewed"
        raise DatasetError(f"no labelled images to export ({hint})", project.root)
    missing = [project.image_path(e) for e in entries if not project.image_path(e).exists()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:5])
        raise DatasetError(
            f"{len(missing)} labelled images are missing ({shown}); "
            "restore them or remove them from the project",
            project.root,
        )
    return entries
