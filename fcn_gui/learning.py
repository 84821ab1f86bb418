"""Continuous learning in the app: one background ``ContinuousLearner`` while a project is open.

The controller feeds it the images the user marks reviewed (and takes back those they edit
again), hands adopted models to the session (which re-predicts what the user has not
touched), and keeps the history in ``PROJECT/learning``. Files are read and models built on
the learner's worker thread; the GUI thread only queues ids and receives events.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal

from .workers import GeneratorThread

EVENT_INTERVAL_S = 0.25  # step events reach the GUI at most this often


class LearningController(QObject):
    """Signals: ``event(LearnerEvent)`` (throttled), ``adopted(Adopted)``, ``failed(text)``,
    ``running_changed(bool)``, ``history_changed()``."""

    event = Signal(object)
    adopted = Signal(object)
    failed = Signal(str)
    running_changed = Signal(bool)
    history_changed = Signal()

    def __init__(self, session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.enabled = True
        self.config = None  # a core.training.learner.LearnerConfig; None: its defaults
        self._thread: GeneratorThread | None = None
        self._learner = None
        self._changes: list[tuple[str, str, np.ndarray | None]] = []
        self._changes_lock = threading.Lock()
        self._last_event = 0.0
        self._restart_from: str | None = None
        self.paused = False
        self.all_orientations = False
        self._failed = False  # no automatic restart after an error until the next review
        session.reviewed.connect(self._on_reviewed)
        session.unreviewed.connect(self._on_unreviewed)
        session.project_changed.connect(self._on_project_changed)
        session.models.ready.connect(lambda *_: self.start_if_ready())
        session.classes_changed.connect(self._on_classes_changed)
        self._num_classes = 0

    # --- state ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None

    def history_summary(self) -> tuple[list, str | None, int]:
        """The kept models, the path of the one in use, and their size on disk (bytes)."""
        history = self.history()
        if history is None:
            return [], None, 0
        ckpt = self.session.models.checkpoint
        return history.entries(), str(ckpt) if ckpt else None, history.disk_bytes()

    def history(self):
        from core.training.history import LearningHistory

        project = self.session.project
        return None if project is None else LearningHistory(project.root / "learning")

    def set_enabled(self, on: bool) -> None:
        """The "Learn from my corrections" switch."""
        self.enabled = on
        if on:
            self.start_if_ready()
        else:
            self.stop()

    def set_all_orientations(self, on: bool) -> None:
        """Learn from flipped and turned copies too (for images without an up or down)."""
        self.all_orientations = on
        if self._learner is not None:
            self._learner.sampler.all_orientations = on

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        if self._learner is not None:
            self._learner.pause() if paused else self._learner.resume()

    # --- reviews in and out --------------------------------------------------------------
    def _on_reviewed(self, image_id: str, label: np.ndarray) -> None:
        with self._changes_lock:
            self._changes.append(("add", image_id, label))
        self._failed = False
        self.start_if_ready()

    def _on_unreviewed(self, image_id: str) -> None:
        with self._changes_lock:
            self._changes.append(("remove", image_id, None))

    def _on_classes_changed(self) -> None:
        project = self.session.project
        if self.running and project is not None and len(project.classes) != self._num_classes:
            self.stop()  # it starts again by itself, with a score layer per class

    def _on_project_changed(self) -> None:
        self.stop()
        with self._changes_lock:
            self._changes.clear()
        self.history_changed.emit()
        self.start_if_ready()

    def start_if_ready(self) -> None:
        """Start the learner when switched on, a model is loaded and something is reviewed."""
        session = self.session
        project = session.project
        if self.running or not self.enabled or project is None or session.models.model is None:
            return
        if session.runner.closing:
            return
        if not any(e.state == "reviewed" for e in project.images):
            return
        self._start(project)

    def _start(self, project) -> None:
        history = self.history()
        in_use = self.session.models.model
        restart_from, self._restart_from = self._restart_from, None
        reviewed = [e.id for e in project.images if e.state == "reviewed"]
        with self._changes_lock:
            self._changes = [("add", i, None) for i in reviewed]
        config, device, all_orientations = self.config, self.session.models.device, self.all_orientations
        num_classes = self._num_classes = len(project.classes)

        def work():
            # Imported here, on the worker (and ahead of time by fcn_gui.preload): its first
            # import froze the window for 1.4-2.2 s at the first review.
            from core.model.checkpoints import SegmentationModel, load_checkpoint
            from core.model.networks import replace_classifier
            from core.training.learner import ContinuousLearner, LearnerConfig

            options = dataclasses.replace(
                config or LearnerConfig(device=device), all_orientations=all_orientations
            )
            saved = None if restart_from else history.load_latest(num_classes)
            if restart_from:
                start, optim, state = load_checkpoint(restart_from), None, _state(history)
            elif saved is not None:
                start, optim, state = saved
            else:
                start, optim, state = in_use, None, _state(history)
            if start.info.num_classes != num_classes:
                import copy

                start = SegmentationModel(copy.deepcopy(start.module).float(), copy.deepcopy(start.info))
                replace_classifier(start.module, num_classes)
                start.info.classes = list(project.classes)
            scored = start if restart_from else in_use  # the model in use once the roll-back loads
            learner = ContinuousLearner(
                start, options, history=history, optimizer_state=optim, state=state, in_use=scored
            )
            learner.yield_to = self.session.waiting_for_prediction
            if self.paused:
                learner.pause()
            self._learner = learner
            run = learner.run()
            try:
                while True:
                    self._apply_changes(project, learner)
                    yield next(run)
            finally:
                run.close()
                self._learner = None

        self.running_changed.emit(True)
        self._thread = self.session.runner.start(
            work, "learner", on_yield=self._on_event, on_error=self._on_error, on_finished=self._on_finished
        )

    def _apply_changes(self, project, learner) -> None:
        """On the worker: read the images (and earlier predictions) of queued reviews."""
        from core.base.errors import FcnGuiError
        from core.io.images import read_image
        from core.training.sampling import Example

        with self._changes_lock:
            changes, self._changes = self._changes, []
        for kind, image_id, label in changes:
            if kind == "remove":
                learner.remove(image_id)
                continue
            try:
                entry = project.entry(image_id)
                image = read_image(project.image_path(entry))
                label = project.load_label(entry) if label is None else label
                if label is None or label.shape != image.shape[:2]:
                    continue
                predicted = project.load_prediction(entry)
                wrong = (
                    predicted != label if predicted is not None and predicted.shape == label.shape else None
                )
                learner.add(Example(image_id, image, label, wrong))
            except (FcnGuiError, ValueError, OSError):
                continue  # an image that cannot be read is reported when the user opens it

    # --- events --------------------------------------------------------------------------
    def _on_event(self, event) -> None:
        from core.training.learner import Adopted

        if isinstance(event, Adopted):
            # Use it; the session re-predicts the images the user has not touched.
            self.session.adopt_model(event.model, event.path, event.describe().capitalize())
            self.adopted.emit(event)
            self.history_changed.emit()
            self.event.emit(event)
            return
        self.session.set_learner_busy(event.state in ("training", "waiting"))
        now = time.monotonic()
        if event.state != "training" or now - self._last_event >= EVENT_INTERVAL_S:
            self._last_event = now
            self.event.emit(event)

    def _on_error(self, message: str) -> None:
        self._failed = True
        self.failed.emit(message)

    def _on_finished(self) -> None:
        self._thread = None
        self.session.set_learner_busy(False)
        self.running_changed.emit(False)
        self.history_changed.emit()
        if not self._failed:
            self.start_if_ready()  # another project opened, or a roll-back, while it stopped

    def roll_back(self, path: str) -> None:
        """Use a kept model again, and learn on from it."""
        self._restart_from = path
        self.session.use_checkpoint(Path(path))
        if self.running:
            self.stop()
        else:
            self.start_if_ready()

    def stop(self) -> None:
        """Stop at the next step; the learner saves what it learnt."""
        if self._thread is not None:
            self._thread.cancel()
            if self._learner is not None:
                self._learner.wake()

    def wait(self) -> None:
        """Block until stopped."""
        if self._thread is not None:
            self.session.runner.finish(self._thread)


def _state(history) -> dict:
    """The held-out split saved earlier, even when the latest weights are not reused."""
    import json

    try:
        return json.loads(history.state_path.read_text())
    except (OSError, ValueError):
        return {}
