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
from core.io.slides import OPENSLIDE_SUFFIXES
from core.store.project import Project

from .session import project_for_images

OPENABLE = IMAGE_SUFFIXES | OPENSLIDE_SUFFIXES  # photos, and slide formats that are not TIFF


class FileJobs(QObject):
    """Works on ``session``; reports through ``session.message`` and ``session.error``."""

    def __init__(self, session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session

    def open_paths(self, paths: list[str | Path]) -> None:
        """Open a project/image folder, an annotation folder to import, or image files.

        Everything that touches the disk runs on a worker: a new image folder's project opens
        empty at once and its images appear as a scan finds them (``scan``)."""
        paths = [Path(p) for p in paths]
        if not paths:
            return
        if self.session.models.pending and not _is_existing_project(paths):
            self._open_when_loaded(paths)  # a new project takes the classes of the model loading
            return
        self._open_now(paths)

    def _open_now(self, paths: list[Path]) -> None:
        classes = self.session.model_classes()

        def what():
            """On the worker: an import to start, or the project to open (made if new)."""
            from core.store.project import DEFAULT_SUBFOLDER, is_project

            if len(paths) == 1 and paths[0].is_dir():
                folder = paths[0]
                if not is_project(folder) and not (folder / DEFAULT_SUBFOLDER).exists():
                    try:
                        return "import", dataset_root(folder, masks=False)
                    except FcnGuiError:
                        pass  # a plain image folder
                project = Project.open_path(folder, classes, scan=False)
                return "project", project
            images = [p for p in paths if p.is_file() and p.suffix.lower() in OPENABLE]
            if not images:
                raise FcnGuiError("none of these is an image, an image folder or a project", paths[0])
            return "files", project_for_images(images, classes)

        self.session.message.emit(f"Opening {paths[0].name}…")
        self.session.runner.call(what, "opening", on_result=self._opened, on_error=self.session.error.emit)

    def _open_when_loaded(self, paths: list[Path]) -> None:
        models = self.session.models

        def loaded(*_args) -> None:
            models.ready.disconnect(loaded)
            models.failed.disconnect(loaded)
            if not self.session.runner.closing:
                self._open_now(paths)

        models.ready.connect(loaded)
        models.failed.connect(loaded)
        self.session.message.emit(f"Opening {paths[0].name} once the model is loaded…")

    def _opened(self, outcome) -> None:
        kind, value = outcome
        if kind == "import":
            self.import_folder(value)
            return
        if self.session.runner.closing:
            value.close()
            return
        self.session.open_project(value)
        if kind == "project":
            self.scan(first=value.count() == 0)

    def scan(self, *, first: bool = False) -> None:
        """Look at the project's image folder again: add the images that appeared (they show in
        the list as they are found), mark those that vanished. ``first``: the folder is new,
        and the scan a visible job (progress in the status bar, Cancel stops it)."""
        session, project = self.session, self.session.project
        folder = project.folder if project is not None else None
        if folder is None or not folder.is_dir():
            if project is not None and folder is not None:
                session.error.emit(f"{folder}: the image folder is gone; move it back to see its images")
            return
        from core.store.scan import scan_folder

        panel_text = session.scan_status

        def found(event) -> None:
            if session.project is not project:
                return
            session.images.grew(len(event.added))
            for image_id in event.changed:
                session.entry_changed.emit(image_id)
            if event.added:
                session.show_first()
                session.states_changed.emit()
            panel_text.emit(event.message)

        def done(report) -> None:
            panel_text.emit("")
            if session.project is not project:
                return
            session.states_changed.emit()
            if report.added == 0 and project.count() == 0:
                session.error.emit(f"{folder}: holds no images (JPEG, PNG, TIFF, BMP, WebP, GIF, PNM)")
            for path, why in report.skipped:
                session.message.emit(f"{path}: {why}")

        session.runner.start(
            lambda: scan_folder(project, folder), f"Scanning {folder.name}", on_yield=found, on_result=done,
            on_error=session.error.emit, visible=first,
        )  # fmt: skip

    def import_any(self, folder: str | Path) -> None:
        """File > Import: whatever annotation layout ``folder`` holds."""
        try:
            self.import_folder(dataset_root(Path(folder)))
        except FcnGuiError as exc:
            self.session.error.emit(str(exc))

    def import_folder(self, folder: Path) -> None:
        """Import a VOC dataset, labelme JSON files or index masks as a project, then open it."""
        from core.formats.detect import import_any
        from core.store.project import is_project, project_home_for

        target = project_home_for(folder)
        if is_project(target):
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
        session.documents.save_current()  # staged: the export saves it first
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


def _is_existing_project(paths: list[Path]) -> bool:
    """One folder that holds a project already (its classes are its own): a couple of stats."""
    from core.store.project import DEFAULT_SUBFOLDER, is_project

    return len(paths) == 1 and (is_project(paths[0]) or is_project(paths[0] / DEFAULT_SUBFOLDER))
