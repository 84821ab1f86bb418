"""Which images are predicted when, and what a finished prediction becomes.

The image on the canvas comes first, then the next one; after a model change the images the
user has not touched are predicted again, the ones met next first. While the learner trains
only those two are predicted at once: predictions beside training take its cores (a 2-core
Xeon: the U-Net's 9.4 training steps/s fell to 2.5 while 512x512 images were predicted
alongside). A prediction becomes the label of an image the user has not edited; over user
work it is only offered (``confirm_replace``) when asked for explicitly.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from PySide6.QtCore import QObject

from core.base.errors import FcnGuiError

from .prediction import Job

CONFIDENCE_CACHE = 16  # confidence maps kept for the images met last (for the unsure overlay)
PREDICT_AT_ONCE = 2


class Predictions(QObject):
    """Schedules the session's prediction queue and applies what it returns."""

    def __init__(self, session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.predict_ahead = True
        self.learner_busy = False  # the learner trains: older predictions wait (set_learner_busy)
        self.mean_confidence: dict[str, float] = {}
        self._confidence: OrderedDict[str, np.ndarray] = OrderedDict()
        session.queue.predicted.connect(self._on_predicted)
        session.queue.failed.connect(
            lambda image_id, msg: session.error.emit(f"Prediction of {image_id} failed: {msg}")
        )

    def confidence(self, image_id: str) -> np.ndarray | None:
        """The confidence map of ``image_id``'s last prediction, if still kept."""
        return self._confidence.get(image_id)

    def clear(self) -> None:
        self._confidence.clear()
        self.mean_confidence.clear()

    def waiting_for_current(self) -> bool:
        """Is the image the user looks at being predicted? (Training yields to it; any thread.)"""
        job = self.session.queue.current
        return job is not None and job.image_id == self.session.documents.wanted

    # --- what to predict -----------------------------------------------------------------
    def schedule(self, image_id: str) -> None:
        """``image_id`` is on the canvas: predict it first if it needs it, then the next one."""
        s = self.session
        if s.usable_predictor() is None:
            return
        if self._unpredicted(image_id):
            s.queue.enqueue(self._job(image_id), front=True)
        nxt = s.navigation.neighbour(1)
        if self.predict_ahead and nxt is not None and self._unpredicted(nxt):
            s.queue.enqueue(self._job(nxt))

    def older(self, image_id: str) -> bool:
        """Predicted by another model than the one in use (each prediction records its model),
        e.g. while the learner trained, also before a restart."""
        s = self.session
        if s.project is None or s.models.model is None:
            return False
        entry = s.project.entry(image_id)
        return entry.state == "predicted" and entry.checkpoint not in (None, s.checkpoint_name())

    def _unpredicted(self, image_id: str) -> bool:
        """Not predicted yet, or by another model, and not the user's work."""
        return self.session.project.entry(image_id).state == "new" or self.older(image_id)

    def _job(self, image_id: str, force: bool = False) -> Job:
        project = self.session.project
        return Job(image_id, project.image_path(project.entry(image_id)), force)

    def predict_current(self) -> None:
        """Predict the image on the canvas again (asked for: may replace the user's edits, asking)."""
        s = self.session
        if s.doc is None:
            return
        if (why := s.model_mismatch()) is not None:
            s.error.emit(why)
            return
        s.queue.enqueue(self._job(s.doc.image_id, force=True), front=True)

    def predict_all(self) -> int:
        """Queue every image that is new or only predicted; edited ones are left alone."""
        s = self.session
        if (why := s.model_mismatch()) is not None:
            s.error.emit(why)
            return 0
        todo = [e for e in s.project.images if e.state in ("new", "predicted")]
        for e in todo:
            s.queue.enqueue(self._job(e.id))
        skipped = sum(e.state == "edited" for e in s.project.images)
        if skipped:
            s.message.emit(f"Predicting {len(todo)} images; {skipped} edited images are kept as they are")
        return len(todo)

    def predict_new(self) -> None:
        """Predict every image that has no prediction (least-confident-next ranks them all)."""
        s = self.session
        if s.usable_predictor() is not None and s.project is not None:
            for e in s.project.images:
                if e.state == "new":
                    s.queue.enqueue(self._job(e.id))

    def repredict_unreviewed(self) -> int:
        """After a model change: predict again every image the user has not edited or reviewed,
        the current and next image first. While the learner trains, only the first
        ``PREDICT_AT_ONCE`` are queued; the others wait until the user opens them or the
        learner stops training (``set_learner_busy``). Returns how many need predicting."""
        s = self.session
        if s.project is None or s.usable_predictor() is None:
            return 0
        todo = [i for i in s.navigation.visit_order() if s.project.entry(i).state in ("new", "predicted")]
        now = todo[:PREDICT_AT_ONCE] if self.learner_busy else todo
        for image_id in now:
            s.queue.enqueue(self._job(image_id))
        if len(now) < len(todo):
            s.states_changed.emit()
        return len(todo)

    def set_learner_busy(self, busy: bool) -> None:
        """The learner trains (``True``), or rests, pauses or has stopped: then images not
        predicted by the model in use are predicted in the background; when it trains again,
        those queued beyond the current and next image wait for its next rest."""
        if busy == self.learner_busy:
            return
        self.learner_busy = busy
        s = self.session
        if s.project is None or s.usable_predictor() is None:
            return
        order = s.navigation.visit_order()
        if busy:
            s.queue.drop({i for i in order[PREDICT_AT_ONCE:] if self._unpredicted(i)} - {s.documents.wanted})
        else:
            for image_id in filter(self._unpredicted, order):
                s.queue.enqueue(self._job(image_id))

    # --- what a prediction becomes -------------------------------------------------------
    def _on_predicted(self, job: Job, prediction) -> None:
        s = self.session
        if s.project is None:
            return
        try:
            entry = s.project.entry(job.image_id)
        except FcnGuiError:
            return
        self._confidence[job.image_id] = prediction.confidence
        self.mean_confidence[job.image_id] = float(prediction.confidence.mean(dtype=np.float32))
        self._confidence.move_to_end(job.image_id)
        while len(self._confidence) > CONFIDENCE_CACHE:
            self._confidence.popitem(last=False)
        doc = s.doc
        is_current = doc is not None and doc.image_id == job.image_id
        user_work = entry.state in ("edited", "reviewed") or (is_current and doc.modified)
        if user_work:
            if job.force:
                s.confirm_replace.emit(job, prediction)
            elif is_current:
                doc.confidence = prediction.confidence
                doc.set_unsure_threshold(doc.unsure_threshold)
            return
        self.apply(job, prediction)

    def apply(self, job: Job, prediction) -> None:
        """Make ``prediction`` the label of ``job``'s image (state ``predicted``)."""
        s = self.session
        project, label = s.project, prediction.label
        entry = project.entry(job.image_id)
        project.set_label(entry, label, "predicted", checkpoint=s.checkpoint_name())
        s.saver.submit(lambda: project.save_prediction(entry, label))
        s.save_async()
        if s.doc is not None and s.doc.image_id == job.image_id:
            s.doc.replace_label(label, prediction.confidence)
        s.states_changed.emit()
