"""The annotation session: the open project and the model in use, and the parts that work on them.

Widgets call the session (or one of its parts) and listen to its signals. The parts, each
with one job: ``documents`` (the image on the canvas: loading, staging edits, reviews),
``predictions`` (what is predicted when, and what a prediction becomes), ``navigation``
(where Next goes), ``saver`` (writing the project in the background), ``models`` (the model
and its predictor) and ``queue`` (the prediction jobs). Every thread is started by the one
``runner``; the GUI thread never runs the network or encodes a PNG.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoGroup

from core.store.project import Project

from .documents import Documents
from .image_model import ImageListModel
from .model_manager import ModelManager
from .navigation import Navigation
from .prediction import PredictionQueue
from .predictions import Predictions
from .runner import Runner
from .saver import Saver
from .slide_prediction import SlidePredictions


class Session(QObject):
    """Signals: ``project_changed``, ``document_changed(doc)``, ``states_changed``,
    ``classes_changed``, ``message(text)``, ``error(text)``, ``confirm_replace(job, prediction)``,
    ``reviewed(image_id, label)``, ``unreviewed(image_id)``, ``model_changed(text)``.

    ``frozen`` names the job (a class removal) that must finish before another image may be opened.
    """

    project_changed = Signal()
    classes_changed = Signal()
    document_changed = Signal(object)
    states_changed = Signal()
    entry_changed = Signal(str)  # an image's state or fields changed: its row repaints
    scan_status = Signal(str)  # what the folder scan is doing ("" when done)
    message = Signal(str)
    error = Signal(str)
    confirm_replace = Signal(object, object)
    reviewed = Signal(str, object)  # image id, its label: a new training target
    unreviewed = Signal(str)  # a reviewed label was edited again: no longer a target
    strokes_changed = Signal(object)  # the document whose painted pixels changed (the assist learns)
    model_changed = Signal(str)  # a message: another model is in use and images are re-predicted

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self.frozen: str | None = None
        self.runner = Runner(self)
        self.undo_group = QUndoGroup(self)  # Undo/Redo act on the image on the canvas
        self.models = ModelManager(self.runner, self)
        self.queue = PredictionQueue(self.usable_predictor, self.runner, self)
        self.saver = Saver(self.runner, self)
        self.images = ImageListModel(self.runner, self)  # the project's images as the list shows them
        self.documents = Documents(self, self)
        self.predictions = Predictions(self, self)
        self.navigation = Navigation(self, self)
        self.slide_predictions = SlidePredictions(self, self)
        self.images.older = self.predictions.older
        self.entry_changed.connect(self.images.entry_changed)
        self._repredict_on_ready = False
        self.models.ready.connect(lambda *_: self._on_model_ready())
        self.saver.failed.connect(self.error)
        self.runner.job_failed.connect(self.error)

    @property
    def doc(self):
        """The ``LabelDocument`` on the canvas, or ``None``."""
        return self.documents.doc

    # --- model --------------------------------------------------------------------------
    def model_mismatch(self) -> str | None:
        """Why the model cannot predict for this project, or ``None``."""
        info = self.models.info
        if info is None or self.project is None:
            return None
        if info.num_classes != len(self.project.classes):
            return (
                f"The model predicts {info.num_classes} classes but the project has "
                f"{len(self.project.classes)}: fine-tune it on this project or load a matching checkpoint."
            )
        return None

    def untrained(self) -> bool:
        """The model has learnt nothing (random weights): it predicts nothing until it has."""
        info = self.models.info
        return info is not None and not info.trained

    def usable_predictor(self):
        return None if self.model_mismatch() or self.untrained() else self.models.predictor

    def checkpoint_name(self) -> str:
        ckpt = self.models.checkpoint
        return str(ckpt) if ckpt else (self.models.info.source if self.models.info else "untrained")

    def _on_model_ready(self) -> None:
        if self.project is not None and self.models.checkpoint is not None:
            project, checkpoint = self.project, str(self.models.checkpoint)
            self.saver.submit(lambda: project.set_checkpoint(checkpoint))  # a write: not here
        self.queue.model_ready()
        if self._repredict_on_ready:
            self._repredict_on_ready = False
            self.predictions.repredict_unreviewed()  # earlier confidences still rank Next until replaced
        else:
            self.images.refresh_all()  # which predictions are older depends on the model in use
            if self.doc is not None:
                self.predictions.schedule(self.doc.image_id)

    def use_checkpoint(self, path: Path) -> None:
        """Load ``path`` as the model in use and re-predict every image not edited or reviewed."""
        self.queue.cancel_all()
        self._repredict_on_ready = True
        self.models.load(path, self.project.classes if self.project else [])

    def adopt_model(self, model, path: str | None, why: str) -> None:
        """Use ``model`` (already in memory, e.g. from the learner) and re-predict as above."""
        self.queue.cancel_all()
        self._repredict_on_ready = True
        self.models.use(model, Path(path) if path else None)
        self.model_changed.emit(why)

    def switch_device(self, device: str) -> None:
        """Run the model on ``device`` ("auto", "cpu", "cuda", "mps"): reload it there."""
        if self.models.device == device:
            return
        self.models.device = device
        self.queue.cancel_all()
        self.models.load(self.models.checkpoint, self.classes())

    def classes(self):
        """The open project's classes, else VOC's (for a model built before a project opens)."""
        from core.io.labels import default_classes

        return self.project.classes if self.project else default_classes()

    def model_classes(self):
        """A new project's classes: those of the loaded trained model, else ``None`` (VOC's)."""
        info = self.models.info
        return list(info.classes) if info is not None and info.trained else None

    # --- project ------------------------------------------------------------------------
    def open_project(self, project: Project) -> None:
        """Switch to ``project`` (the previous one is saved and closed in the background)."""
        self.close_project()
        self.project = project
        self.images.set_project(project)
        self.project_changed.emit()
        ckpt = project.checkpoint
        if ckpt and Path(ckpt).exists() and str(self.models.checkpoint) != ckpt:
            self.models.load(Path(ckpt), project.classes)  # the model its predictions came from
        for path, why in project.skipped:
            self.message.emit(f"{path}: {why}")
        self.show_first()

    def show_first(self) -> None:
        """Show the first image not reviewed (else the first) when none is shown yet."""
        project = self.project
        if project is None or self.doc is not None or self.documents.wanted is not None:
            return
        first = project.neighbour(None, 1, ("new", "predicted", "edited")) or project.neighbour(None, 1)
        if first is not None:
            self.documents.show(first)

    def close_project(self) -> None:
        """Take the project off; its edits are staged and it is saved and closed by the saver,
        in the background: nothing here waits."""
        self.queue.cancel_all()
        self.documents.save_current()
        project, self.project = self.project, None
        if project is not None:
            self.saver.submit(project.close)
        self.predictions.clear()
        self.documents.close()
        self.images.set_project(None)

    # --- saving -------------------------------------------------------------------------
    def save_async(self) -> None:
        """Write what changed in the background; errors come back as ``error``."""
        if (project := self.project) is not None:
            self.saver.submit(project.flush)

    # --- shutdown -----------------------------------------------------------------------
    def shutdown(self) -> None:
        """Quitting: cancel work, wait for every thread, save, release the project."""
        self.queue.cancel_all()
        self.runner.shutdown()
        self.close_project()
        self.saver.wait()


def project_for_images(paths: list[Path], classes=None) -> Project:
    """Open (or make, with ``classes``) the project next to the first image; add ``paths``."""
    from core.store.project import is_project, project_home_for

    home = project_home_for(paths[0].parent)
    project = Project.open(home) if is_project(home) else Project.create(home, [], classes)
    project.add_images(paths)
    return project
