"""The annotation session: the open project, the image on the canvas, saving and predicting.

Widgets call this object and listen to its signals; it never blocks the GUI thread on the
network or on PNG encoding: predictions run on the prediction queue's thread, image loads on
a loader thread, and saves on a single background writer.
"""

from __future__ import annotations

from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoGroup

from core.base.errors import FcnGuiError
from core.io.labels import VOID
from core.store.project import Project

from .document import LabelDocument
from .model_manager import ModelManager
from .prediction import Job, PredictionQueue
from .runner import Runner

CONFIDENCE_CACHE = 16
# After a model change while the learner trains, only the images the user meets next are
# predicted at once: predictions beside training take its cores (a 2-core Xeon: the U-Net's
# 9.4 training steps/s fell to 2.5 while 512x512 images were predicted alongside).
PREDICT_AT_ONCE = 2


class Session(QObject):
    """Signals: ``project_changed``, ``document_changed(doc)``, ``states_changed``,
    ``classes_changed``, ``message(text)``, ``error(text)``, ``confirm_replace(job, prediction)``.

    ``runner`` runs every background job of the app; ``frozen`` names the job (a class
    removal) that must finish before another image may be opened.
    """

    project_changed = Signal()
    classes_changed = Signal()
    document_changed = Signal(object)
    states_changed = Signal()
    message = Signal(str)
    error = Signal(str)
    confirm_replace = Signal(object, object)
    save_failed = Signal(str)
    reviewed = Signal(str, object)  # image id, its label: a new training target
    unreviewed = Signal(str)  # a reviewed label was edited again: no longer a target
    model_changed = Signal(str)  # a message: another model is in use and images are re-predicted

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self.doc: LabelDocument | None = None
        self.runner = Runner(self)
        self.undo_group = QUndoGroup(self)  # Undo/Redo act on the image on the canvas
        self.models = ModelManager(self.runner, self)
        self.queue = PredictionQueue(self.usable_predictor, self.runner, self)
        self.frozen: str | None = None
        self.predict_ahead = True
        self._confidence: OrderedDict[str, np.ndarray] = OrderedDict()
        self._saver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fcn-save")
        self._wanted_id: str | None = None
        self._repredict_on_ready = False
        self.learner_busy = False  # the learner trains: older predictions wait (set_learner_busy)
        self.least_confident_next = False
        self.mean_confidence: dict[str, float] = {}
        self.queue.predicted.connect(self._on_predicted)
        self.queue.failed.connect(
            lambda image_id, msg: self.error.emit(f"Prediction of {image_id} failed: {msg}")
        )
        self.models.ready.connect(lambda *_: self._on_model_ready())
        self.save_failed.connect(self.error)
        self.runner.job_failed.connect(self.error)

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

    def usable_predictor(self):
        return None if self.model_mismatch() else self.models.predictor

    def checkpoint_name(self) -> str:
        ckpt = self.models.checkpoint
        return str(ckpt) if ckpt else (self.models.info.source if self.models.info else "untrained")

    def _on_model_ready(self) -> None:
        if self.project is not None and self.models.checkpoint is not None:
            self.project.set_checkpoint(str(self.models.checkpoint))
            self.save_async()
        self.queue.model_ready()
        if self._repredict_on_ready:
            self._repredict_on_ready = False
            self.repredict_unreviewed()  # earlier confidences still rank Next until replaced
        else:
            self.states_changed.emit()  # which predictions are older depends on the model in use
            if self.doc is not None:
                self._schedule_predictions(self.doc.image_id)

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

    def waiting_for_prediction(self) -> bool:
        """Is the image the user looks at being predicted? (Training yields to it; any thread.)"""
        job = self.queue.current
        return job is not None and job.image_id == self._wanted_id

    # --- project ------------------------------------------------------------------------
    def open_project(self, project: Project) -> None:
        """Switch to ``project`` (closing the previous one, its edits saved)."""
        self.close_project()
        self.project = project
        self.project_changed.emit()
        ckpt = project.checkpoint
        if ckpt and Path(ckpt).exists() and str(self.models.checkpoint) != ckpt:
            self.models.load(Path(ckpt), project.classes)  # the model its predictions came from
        missing = project.missing_images()
        if missing:
            self.error.emit(
                f"{len(missing)} images of this project are missing (e.g. {project.image_path(missing[0])}); "
                "move them back or open the folder they are in."
            )
        first = next(
            (e for e in project.images if e.state != "reviewed"),
            project.images[0] if project.images else None,
        )
        if first is not None:
            self.show_image(first.id)

    def close_project(self) -> None:
        self.queue.cancel_all()
        self.queue.wait()
        self.save_and_wait()
        if self.project is not None:
            try:
                self.project.close()
            except FcnGuiError as exc:
                self.error.emit(str(exc))
        self.project = None
        self.doc = None
        self._use_undo_stack(None)
        self._confidence.clear()
        self.mean_confidence.clear()
        self.document_changed.emit(None)

    # --- switching and saving -----------------------------------------------------------
    def show_image(self, image_id: str) -> None:
        """Save the current label, then load ``image_id`` on a worker thread."""
        if self.project is None or (self.doc is not None and self.doc.image_id == image_id):
            return
        if self.frozen:
            self.message.emit(f"Wait until {self.frozen} has finished")
            return
        self.save_current()
        self._wanted_id = image_id
        project = self.project
        entry = project.entry(image_id)

        classes, confidence = list(project.classes), self._confidence.get(image_id)
        untouched = entry.state == "predicted"  # its label is the model's prediction
        gui_thread = self.thread()

        def load():
            """Decode and build the whole document here, off the GUI thread, then hand it over."""
            from core.io.images import read_image

            image = read_image(project.image_path(entry))
            label = project.load_label(entry)
            if label is None:
                label = np.full(image.shape[:2], VOID, dtype=np.uint8)
            # what Mark Reviewed measures corrections against; painting changes ``label`` in place
            predicted = label.copy() if untouched else project.load_prediction(entry)
            doc = LabelDocument(image_id, image, label, classes, confidence, predicted=predicted)
            doc.moveToThread(gui_thread)
            return doc

        self.message.emit(f"Opening {entry.id}…")
        self.runner.call(load, "image-loader", on_result=self._on_loaded, on_error=self.error.emit)

    def _on_loaded(self, doc: LabelDocument) -> None:
        image_id = doc.image_id
        if self.project is None or image_id != self._wanted_id:
            doc.deleteLater()
            return  # the user moved on meanwhile
        doc.setParent(self)
        if doc.classes != self.project.classes:  # the classes were edited while it loaded
            doc.set_classes(self.project.classes)
        doc.edited.connect(self._on_edited)
        self.doc = doc
        self._use_undo_stack(doc)
        self.document_changed.emit(doc)
        entry = self.project.entry(image_id)
        self.message.emit(f"{entry.id}: {entry.state}")
        self._schedule_predictions(image_id)

    def put_away_document(self) -> None:
        """Save the image on the canvas and take it off (a class removal is about to rewrite it)."""
        self.save_and_wait()
        self.doc = None
        self._use_undo_stack(None)
        self.document_changed.emit(None)

    def _use_undo_stack(self, doc: LabelDocument | None) -> None:
        """Undo/Redo now act on ``doc``; the stacks of images left behind go with them."""
        if doc is not None:
            self.undo_group.addStack(doc.undo_stack)
            self.undo_group.setActiveStack(doc.undo_stack)
        for stack in list(self.undo_group.stacks()):
            if doc is None or stack is not doc.undo_stack:
                self.undo_group.removeStack(stack)

    def _on_edited(self) -> None:
        entry = self.project.entry(self.doc.image_id)
        if entry.state != "edited":
            was_reviewed = entry.state == "reviewed"
            self.project.set_state(entry, "edited")
            self.states_changed.emit()
            if was_reviewed:
                self.unreviewed.emit(entry.id)

    def save_current(self, state: str | None = None) -> None:
        """Stage the current label if it changed (or its state is set) and save in the background."""
        doc, project = self.doc, self.project
        if doc is None or project is None:
            return
        entry = project.entry(doc.image_id)
        if doc.modified or state is not None:
            project.set_label(entry, doc.label.copy(), state or ("edited" if doc.modified else entry.state))
            doc.modified = False
        self.save_async()

    def save_and_wait(self) -> None:
        """Save the current label and wait until every pending write is on disk."""
        self.save_current()
        self._saver.submit(lambda: None).result()

    def save_async(self) -> None:
        """Write what changed on the background writer; errors come back as ``save_failed``."""
        project = self.project
        if project is None:
            return

        def flush():
            try:
                project.flush()
            except FcnGuiError as exc:
                self.save_failed.emit(str(exc))

        self._saver.submit(flush)

    def mark_reviewed(self) -> None:
        """The current label becomes a trusted training target; records how much was corrected."""
        doc = self.doc
        if doc is None:
            return
        entry = self.project.entry(doc.image_id)
        predicted = doc.predicted  # read with the image, off the GUI thread
        if predicted is not None and predicted.shape == doc.label.shape:
            changed = float(np.mean(predicted != doc.label))
            self.project.set_state(entry, entry.state, changed_fraction=changed)
        self.save_current(state="reviewed")
        self.states_changed.emit()
        self.reviewed.emit(entry.id, doc.label.copy())
        changed = (
            "" if entry.changed_fraction is None else f" ({entry.changed_fraction:.1%} of pixels corrected)"
        )
        self.message.emit(f"{entry.id} marked reviewed{changed}")

    def corrections(self) -> list[float]:
        """The share of pixels the user corrected on each reviewed image, oldest review first."""
        if self.project is None:
            return []
        done = [e for e in self.project.images if e.state == "reviewed" and e.changed_fraction is not None]
        return [e.changed_fraction for e in sorted(done, key=lambda e: e.modified or "")]

    def neighbour(self, step: int) -> str | None:
        """The image before/after the current one; with ``least_confident_next``, Next goes to
        the image not yet reviewed whose prediction has the lowest mean confidence."""
        if self.project is None or not self.project.images:
            return None
        current_id = self.doc.image_id if self.doc else None
        if step > 0 and self.least_confident_next:
            scored = [
                (self.mean_confidence[e.id], e.id)
                for e in self.project.images
                if e.state != "reviewed" and e.id != current_id and e.id in self.mean_confidence
            ]
            if scored:
                return min(scored)[1]
        ids = [e.id for e in self.project.images]
        current = ids.index(current_id) if current_id in ids else -1
        index = current + step
        return ids[index] if 0 <= index < len(ids) else None

    def set_least_confident_next(self, on: bool) -> None:
        """Switch the order of Next; predicts every new image ahead so all have a confidence."""
        self.least_confident_next = on
        if on and self.usable_predictor() is not None and self.project is not None:
            for e in self.project.images:
                if e.state == "new":
                    self.queue.enqueue(Job(e.id, self.project.image_path(e)))

    # --- predictions --------------------------------------------------------------------
    def _schedule_predictions(self, image_id: str) -> None:
        if self.usable_predictor() is None:
            return
        if self._unpredicted(image_id):
            self.queue.enqueue(self._job(image_id), front=True)
        nxt = self.neighbour(1)
        if self.predict_ahead and nxt is not None and self._unpredicted(nxt):
            self.queue.enqueue(self._job(nxt))

    def older(self, image_id: str) -> bool:
        """Predicted by another model than the one in use (each prediction records its model),
        e.g. while the learner trained, also before a restart."""
        if self.project is None or self.models.model is None:
            return False
        entry = self.project.entry(image_id)
        return entry.state == "predicted" and entry.checkpoint not in (None, self.checkpoint_name())

    def _unpredicted(self, image_id: str) -> bool:
        """Not predicted yet, or by another model, and not the user's work."""
        return self.project.entry(image_id).state == "new" or self.older(image_id)

    def _job(self, image_id: str) -> Job:
        return Job(image_id, self.project.image_path(self.project.entry(image_id)))

    def predict_current(self) -> None:
        if self.doc is None:
            return
        if (why := self.model_mismatch()) is not None:
            self.error.emit(why)
            return
        entry = self.project.entry(self.doc.image_id)
        self.queue.enqueue(Job(entry.id, self.project.image_path(entry), force=True), front=True)

    def predict_all(self) -> int:
        """Queue every image that is new or only predicted; edited ones are left alone."""
        if (why := self.model_mismatch()) is not None:
            self.error.emit(why)
            return 0
        todo = [e for e in self.project.images if e.state in ("new", "predicted")]
        for e in todo:
            self.queue.enqueue(Job(e.id, self.project.image_path(e)))
        skipped = sum(e.state == "edited" for e in self.project.images)
        if skipped:
            self.message.emit(f"Predicting {len(todo)} images; {skipped} edited images are kept as they are")
        return len(todo)

    def repredict_unreviewed(self) -> int:
        """After a model change: predict again every image the user has not edited or reviewed,
        the current and next image first. While the learner trains, only the first
        ``PREDICT_AT_ONCE`` are queued; the others wait until the user opens them or the
        learner stops training (``set_learner_busy``). Returns how many need predicting."""
        if self.project is None or self.usable_predictor() is None:
            return 0
        todo = [i for i in self._visit_order() if self.project.entry(i).state in ("new", "predicted")]
        now = todo[:PREDICT_AT_ONCE] if self.learner_busy else todo
        for image_id in now:
            self.queue.enqueue(self._job(image_id))
        if len(now) < len(todo):
            self.states_changed.emit()
        return len(todo)

    def set_learner_busy(self, busy: bool) -> None:
        """The learner trains (``True``), or rests, pauses or has stopped: then images not
        predicted by the model in use are predicted in the background; when it trains again,
        those queued beyond the current and next image wait for its next rest."""
        if busy == self.learner_busy:
            return
        self.learner_busy = busy
        if self.project is None or self.usable_predictor() is None:
            return
        order = self._visit_order()
        if busy:
            self.queue.drop({i for i in order[PREDICT_AT_ONCE:] if self._unpredicted(i)} - {self._wanted_id})
        else:
            for image_id in filter(self._unpredicted, order):
                self.queue.enqueue(self._job(image_id))

    def _visit_order(self) -> list[str]:
        """Image ids in the order the user will likely meet them: current, next, then onwards."""
        ids = [e.id for e in self.project.images]
        current = self.doc.image_id if self.doc else None
        start = ids.index(current) if current in ids else 0
        first = [i for i in (current, self.neighbour(1)) if i is not None]
        return list(dict.fromkeys(first + ids[start:] + ids[:start]))

    def _on_predicted(self, job: Job, prediction) -> None:
        if self.project is None:
            return
        try:
            entry = self.project.entry(job.image_id)
        except FcnGuiError:
            return
        self._confidence[job.image_id] = prediction.confidence
        self.mean_confidence[job.image_id] = float(prediction.confidence.mean(dtype=np.float32))
        self._confidence.move_to_end(job.image_id)
        while len(self._confidence) > CONFIDENCE_CACHE:
            self._confidence.popitem(last=False)
        is_current = self.doc is not None and self.doc.image_id == job.image_id
        user_work = entry.state in ("edited", "reviewed") or (is_current and self.doc.modified)
        if user_work:
            if job.force:
                self.confirm_replace.emit(job, prediction)
            elif is_current:
                self.doc.confidence = prediction.confidence
                self.doc.set_unsure_threshold(self.doc.unsure_threshold)
            return
        self.apply_prediction(job, prediction)

    def apply_prediction(self, job: Job, prediction) -> None:
        """Make ``prediction`` the label of ``job``'s image (state ``predicted``)."""
        entry = self.project.entry(job.image_id)
        self.project.set_label(entry, prediction.label, "predicted", checkpoint=self.checkpoint_name())
        project, label = self.project, prediction.label
        self._saver.submit(lambda: project.save_prediction(entry, label))
        self.save_async()
        if self.doc is not None and self.doc.image_id == job.image_id:
            self.doc.replace_label(prediction.label, prediction.confidence)
        self.states_changed.emit()

    # --- shutdown -----------------------------------------------------------------------
    def shutdown(self) -> None:
        """Cancel work, wait for every thread, save, release the project."""
        self.queue.cancel_all()
        self.runner.shutdown()
        self.close_project()
        self._saver.shutdown(wait=True)


def project_for_images(paths: list[Path], classes=None) -> Project:
    """Open (or make, with ``classes``) the project next to the first image; add ``paths``."""
    from core.store.project import project_home_for

    home = project_home_for(paths[0].parent)
    project = Project.open(home) if (home / "project.json").exists() else Project.create(home, [], classes)
    project.add_images(paths)
    project.flush()
    return project
