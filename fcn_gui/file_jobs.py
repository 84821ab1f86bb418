"""Opening, importing, exporting and downloading: what the File and Model menus start.

Each decides what a path is, runs the slow part as a visible background job (progress in the
status bar, Cancel stops it) and hands the outcome to the session. Dialogs stay in the window;
this module only receives the paths and choices the user made.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject

from core.base.errors import FcnGuiError
from core.formats.detect import dataset_root
from core.io.images import IMAGE_SUFFIXES
from core.store.project import Project

from .session import project_for_images


class FileJobs(QObject):
    """Works on ``session``; reports through ``session.message`` and ``session.error``."""

    def __init__(self, session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session

    def open_paths(self, paths: list[str | Path]) -> None:
        """Open a project/image folder, an annotation folder to import, or image files."""
        paths = [Path(p) for p in paths]
        if not paths:
            return
        try:
            if len(paths) == 1 and paths[0].is_dir():
                folder = paths[0]
                if not (folder / "fcn-gui-project").exists() and not (folder / "project.json").exists():
                    try:
                        self.import_folder(dataset_root(folder, masks=False))
                        return
                    except FcnGuiError:
                        pass  # a plain image folder
                project = Project.open_path(folder, self.session.model_classes())
            else:
                images = [p for p in paths if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
                if not images:
                    raise FcnGuiError("none of these is an image, an image folder or a project", paths[0])
                project = project_for_images(images, self.session.model_classes())
        except FcnGuiError as exc:
            self.session.error.emit(str(exc))
            return
        self.session.open_project(project)

    def import_any(self, folder: str | Path) -> None:
        """File > Import: whatever annotation layout ``folder`` holds."""
        try:
            self.import_folder(dataset_root(Path(folder)))
        except FcnGuiError as exc:
            self.session.error.emit(str(exc))

    def import_folder(self, folder: Path) -> None:
        """Import a VOC dataset, labelme JSON files or index masks as a project, then open it."""
        from core.formats.detect import import_any
        from core.store.project import project_home_for

        target = project_home_for(folder)
        if (target / "project.json").exists():
            self.open_paths([target])
            return
        session = self.session

        def opened(report) -> None:
            session.open_project(report.project)
            if report.skipped:
                session.error.emit(report.summary())

        session.runner.start(
            lambda: import_any(folder, target), f"Importing {folder.name}", on_result=opened, visible=True
        )

    def export_voc(self, folder: str | Path, *, reviewed_only: bool) -> None:
        """Write the project as a VOC dataset into ``folder``."""
        from core.formats.voc import export_voc

        session, project = self.session, self.session.project
        if project is None:
            session.error.emit("Open a project first (File > Open Folder).")
            return
        session.save_and_wait()
        session.runner.start(
            lambda: export_voc(project, folder, only_reviewed=reviewed_only),
            "Exporting VOC",
            on_result=lambda report: session.message.emit(report.summary()),
            visible=True,
        )

    def download(self, source, backbone: str) -> None:
        """Download ``source`` (a ``core.model.weights`` source) and build a model from ``backbone``."""
        from core.model.weights import download

        session = self.session
        session.runner.start(
            lambda: download(source),
            f"Downloading {source.filename}",
            on_result=lambda _path: session.models.load_pretrained(backbone, session.classes()),
            visible=True,
        )

    def load_checkpoint(self, path: str | Path) -> None:
        """Use the checkpoint at ``path``."""
        self.session.queue.cancel_all()
        self.session.models.load(Path(path), self.session.classes())
