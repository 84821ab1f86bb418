"""Which images are predicted when, and what a finished prediction becomes.

The image on the canvas comes first, then the next one. Background work (after a model
change, when the learner rests, Predict All, or ranking by confidence) is a sweep through
the project that the prediction queue asks for one image at a time, from the current image
onwards: no queue of every image, so it costs the same at 100,000 images as at 10. While the
learner trains only the current and next image are predicted: predictions beside training
take its cores (a 2-core Xeon: the U-Net's 9.4 training steps/s fell to 2.5 while 512x512
images were predicted alongside). A prediction becomes the label of an image the user has not
edited; over user work it is only offered (``confirm_replace``) when asked for explicitly.
A model that has learnt nothing (random weights) predicts nothing: its guesses would be noise
to paint over, so images open unlabelled until it has learnt.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject

from .prediction import Job

CONFIDENCE_CACHE = 16
UNTRAINED = (
    "The model has learnt nothing yet, so it predicts nothing: paint a few strokes of each class "
    "(or the whole image), mark the image reviewed (R), and it predicts once it has learnt from it. "
    "Or load a trained checkpoint (Model menu)."
)  # confidence maps kept for the images met last (for the unsure overlay)


@dataclass
class _Sweep:
    """A pass through the project from row ``start`` onwards, wrapping once to the rows before;
    ``kind`` is what it predicts (``core.store.project.PREDICT``)."""

    kind: str
    start: int
    cursor: int
    wrapped: bool = False


class Predictions(QObject):
    """Schedules the session's prediction queue and applies what it returns."""

    def __init__(self, session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.predict_ahead = True
        self.learner_busy = False  # the learner trains: background sweeps wait (set_learner_busy)
        self._confidence: OrderedDict[str, np.ndarray] = OrderedDict()
        self._sweeps: list[_Sweep] = []
        session.queue.background = self._background
        session.queue.cancelled.connect(self.clear_sweeps)
        session.queue.predicted.connect(self._on_predicted)
        session.queue.failed.connect(
            lambda image_id, msg: session.error.emit(f"Prediction of {image_id} failed: {msg}")
        )

    def confidence(self, image_id: str) -> np.ndarray | None:
        """The confidence map of ``image_id``'s last prediction, if still kept."""
        return self._confidence.get(image_id)

    def clear(self) -> None:
        self._confidence.clear()
        self.clear_sweeps()

    def clear_sweeps(self) -> None:
        """No more background predictions (Cancel, or another model coming)."""
        self._sweeps.clear()

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
        entry = s.images.entry(image_id)
        return entry is not None and entry.state == "predicted" and entry.checkpoint not in (
            None, s.checkpoint_name())  # fmt: skip

    def _unpredicted(self, image_id: str) -> bool:
        """Not predicted yet, or by another model, and not the user's work."""
        entry = self.session.images.entry(image_id)
        return entry is not None and (entry.state == "new" or self.older(image_id))

    def _job(self, image_id: str, force: bool = False) -> Job:
        project = self.session.project
        return Job(image_id, project.image_path(project.entry(image_id)), force, project)

    def predict_current(self) -> None:
        """Predict the image on the canvas again (asked for: may replace the user's edits, asking)."""
        s = self.session
        if s.doc is None:
            return
        if (why := self._cannot_predict()) is not None:
            s.error.emit(why)
            return
        s.queue.enqueue(self._job(s.doc.image_id, force=True), front=True)

    def predict_all(self) -> int:
        """Predict every image that is new or only predicted, in the background; edited ones
        are left alone. Returns how many."""
        s = self.session
        if (why := self._cannot_predict()) is not None:
            s.error.emit(why)
            return 0
        counts = s.project.counts()
        if counts["edited"]:
            s.message.emit(f"Edited images ({counts['edited']:,}) are kept as they are")
        self._sweep("unlabelled")
        return counts["new"] + counts["predicted"]

    def _cannot_predict(self) -> str | None:
        if (why := self.session.model_mismatch()) is not None:
            return why
        return UNTRAINED if self.session.untrained() else None

    def predict_new(self) -> None:
        """Predict every image that has no prediction yet (least-confident-next ranks them all)."""
        if self.session.usable_predictor() is not None and self.session.project is not None:
            self._sweep("new")

    def repredict_unreviewed(self) -> int:
        """After a model change: predict again every image the user has not edited or reviewed,
        the current and next image first, the rest in the background (while the learner
        trains, once it rests). Returns how many need predicting."""
        s = self.session
        if s.project is None or s.usable_predictor() is None:
            return 0
        current = s.doc.image_id if s.doc is not None else None
        for image_id in (current, s.navigation.neighbour(1)):
            if image_id is not None and self._unpredicted(image_id):
                s.queue.enqueue(self._job(image_id))
        self._sweep("stale")
        s.images.refresh_all()  # "older model" marks
        counts = s.project.counts()
        return counts["new"] + counts["predicted"]

    def set_learner_busy(self, busy: bool) -> None:
        """The learner trains (``True``): background sweeps wait; it rests, pauses or has
        stopped: the images no model in use has predicted are predicted in the background."""
        if busy == self.learner_busy:
            return
        self.learner_busy = busy
        s = self.session
        if not busy and s.project is not None and s.usable_predictor() is not None:
            self._sweep("stale")

    def _sweep(self, kind: str) -> None:
        """Start a pass through the project (from the current image on) for ``kind``."""
        s = self.session
        entry = s.images.entry(s.doc.image_id) if s.doc is not None else None
        start = entry.row if entry is not None else 0
        self._sweeps = [w for w in self._sweeps if w.kind != kind]
        self._sweeps.append(_Sweep(kind, start, start - 1 if start else 0))
        s.queue.model_ready()  # start if idle

    def _background(self) -> Job | None:
        """The queue's next background job: the next image of the newest sweep (one query)."""
        s = self.session
        if self.learner_busy or s.project is None or s.frozen:
            return None
        checkpoint = s.checkpoint_name()
        while self._sweeps:
            sweep = self._sweeps[-1]
            found = s.project.next_to_predict(
                sweep.kind, checkpoint, sweep.cursor, sweep.start if sweep.wrapped else None
            )
            if found:
                sweep.cursor, image_id = found
                if image_id != (s.queue.current.image_id if s.queue.current else None):
                    return self._job(image_id)
                continue
            if not sweep.wrapped and sweep.start > 1:
                sweep.wrapped, sweep.cursor = True, 0
                continue
            self._sweeps.pop()
        return None

    # --- what a prediction becomes -------------------------------------------------------
    def _on_predicted(self, job: Job, prediction) -> None:
        s = self.session
        if s.project is None or job.project is not s.project or s.frozen:
            return  # for a project closed since, or labels being rewritten
        entry = s.project.find(job.image_id)
        if entry is None or prediction is None:  # None: a slide, left to `fcn-gui segment`
            return
        self._confidence[job.image_id] = prediction.confidence
        self._confidence.move_to_end(job.image_id)
        while len(self._confidence) > CONFIDENCE_CACHE:
            self._confidence.popitem(last=False)
        s.project.set_confidence(entry, float(prediction.confidence.mean(dtype=np.float32)))
        doc = s.doc
        is_current = doc is not None and doc.image_id == job.image_id
        user_work = entry.state in ("edited", "reviewed") or (is_current and doc.modified)
        if user_work:
            s.entry_changed.emit(job.image_id)
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
        if job.project is not s.project or s.project is None:
            return
        project, label = s.project, prediction.label
        entry = project.entry(job.image_id)
        project.set_label(entry, label, "predicted", checkpoint=s.checkpoint_name())
        s.saver.submit(lambda: project.save_prediction(entry, label))
        s.save_async()
        if s.doc is not None and s.doc.image_id == job.image_id:
            s.doc.replace_label(label, prediction.confidence)
        s.entry_changed.emit(job.image_id)
        s.states_changed.emit()
