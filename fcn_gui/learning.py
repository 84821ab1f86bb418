"""Continuous learning in the app: one background learner while a project is open.

The controller wires the session to the engine's project learner
(``core.training.project_learner``): it queues the images the user marks reviewed (and takes
back those they edit again), hands adopted models to the session (which re-predicts what the
user has not touched), and shows the history kept in ``PROJECT/learning``. The learner is
built and fed on its worker thread; the GUI thread only queues ids and receives events.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal

from .workers import GeneratorThread, cancel_asked

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
        from core.training.review_feed import ReviewFeed

        self.session = session
        self.enabled = True
        self.config = None  # a core.training.learner.LearnerConfig; None: its defaults
        self.feed = ReviewFeed()
        self._thread: GeneratorThread | None = None
        self._learner = None
        self._last_event = 0.0
        self._restart_from: str | None = None
        self.paused = False
        self.all_orientations = False
        self._failed = False  # no automatic restart after an error until the next review
        self._num_classes = 0
        self._strokes = False  # strokes are queued that the learner has not started for
        self._region: tuple[str, np.ndarray] | None = None  # a slide region's id and its pixels
        self._region_wanted: str | None = None  # the region whose pixels are being read
        session.reviewed.connect(self._on_reviewed)
        session.strokes_changed.connect(self._on_strokes)
        session.unreviewed.connect(self.feed.unreviewed)
        session.project_changed.connect(self._on_project_changed)
        session.models.ready.connect(lambda *_: self.start_if_ready())
        session.classes_changed.connect(self._on_classes_changed)

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
        return None if project is None else LearningHistory.of(project.root)

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
        self.feed.reviewed(image_id, label)
        self._failed = False
        self.start_if_ready()

    def _on_strokes(self, doc) -> None:
        """The painted pixels of the image on the canvas changed: they train at once."""
        project = self.session.project
        if project is None or project.entry(doc.image_id).state == "reviewed":
            return
        if doc.pixels is None:
            self._on_slide_strokes(doc)
            return
        self._feed_live(doc.image_id, doc.pixels, doc.painted_label())

    def _feed_live(self, live_id: str, pixels: np.ndarray, painted: np.ndarray) -> None:
        self.feed.live(live_id, pixels, painted)
        self._strokes = True
        self._failed = False
        self.start_if_ready()

    def _on_slide_strokes(self, doc) -> None:
        """A slide's strokes train region by region (``doc.live_region``): the region's pixels
        are read once, on a worker from a handle of its own, then each stroke in it goes to the
        learner with them."""
        from core.training.review_feed import region_id

        box = doc.live_region()
        if box is None:
            return
        live_id = region_id(doc.image_id, box[0], box[1])
        if self._region is not None and self._region[0] == live_id:
            self._feed_live(live_id, self._region[1], doc.painted_label(*box))
            return
        if self._region_wanted == live_id or self.session.runner.closing:
            return  # being read: the strokes it finds then go with it
        self._region_wanted, path = live_id, doc.slide.path

        def read() -> np.ndarray:
            from core.io.slides import open_slide

            with open_slide(path) as slide:
                return slide.read(0, *box)

        def done(pixels: np.ndarray) -> None:
            if self._region_wanted != live_id:
                return  # strokes moved to another region meanwhile
            self._region_wanted, self._region = None, (live_id, pixels)
            if self.session.doc is doc:
                self._feed_live(live_id, pixels, doc.painted_label(*box))

        def failed(message: str) -> None:
            if self._region_wanted == live_id:
                self._region_wanted = None  # the next stroke there tries again
            self.session.error.emit(message)

        self.session.runner.call(read, "live-region", on_result=done, on_error=failed)

    def _on_classes_changed(self) -> None:
        project = self.session.project
        if self.running and project is not None and len(project.classes) != self._num_classes:
            self.stop()  # it starts again by itself, with a score layer per class

    def _on_project_changed(self) -> None:
        self.stop()
        self.feed.reset()
        self._strokes = False
        self._region = self._region_wanted = None
        self.history_changed.emit()
        self.start_if_ready()

    def start_if_ready(self) -> None:
        """Start the learner when switched on, a model is loaded and something is reviewed or
        painted."""
        session = self.session
        project = session.project
        if self.running or not self.enabled or project is None or session.models.model is None:
            return
        if session.runner.closing:
            return
        if not self._strokes and not project.counts()["reviewed"]:
            return
        self._start(project)

    def _start(self, project) -> None:
        in_use = self.session.models.model
        restart_from, self._restart_from = self._restart_from, None
        self.feed.reset(keep_live=True)  # the learner reads the reviewed images itself, on its worker
        self._strokes = False
        doc = self.session.doc
        if (
            doc is not None
            and doc.pixels is not None
            and doc.painted.any()
            and project.entry(doc.image_id).state != "reviewed"
        ):
            self.feed.live(doc.image_id, doc.pixels, doc.painted_label())  # a restart goes on with them
        config, device, all_orientations = self.config, self.session.models.device, self.all_orientations
        self._num_classes = len(project.classes)

        def work():
            # Imported here, on the worker (and ahead of time by fcn_gui.preload): its first
            # import froze the window for 1.4-2.2 s at the first review.
            from core.training.learner import LearnerConfig
            from core.training.project_learner import learn

            options = dataclasses.replace(
                config or LearnerConfig(device=device), all_orientations=all_orientations
            )
            # spare_core: while a stroke is filled in, the window keeps a core to itself
            return (yield from learn(project, in_use, options, self.feed, restart_from=restart_from,
                                     started=self._started, stopping=cancel_asked,
                                     spare_core=True))  # fmt: skip

        self.running_changed.emit(True)
        self._thread = self.session.runner.start(
            work, "learner", on_yield=self._on_event, on_error=self._on_error, on_finished=self._on_finished
        )

    def _started(self, learner) -> None:
        """On the worker, before the learner's first step: the app's part of its settings."""
        learner.yield_to = self.session.predictions.waiting_for_current
        if self.paused:
            learner.pause()
        self._learner = learner

    # --- events --------------------------------------------------------------------------
    def _on_event(self, event) -> None:
        from core.training.assist import LivePrediction
        from core.training.learner import Adopted

        if isinstance(event, LivePrediction):
            self.session.documents.apply_live(event.image_id, event.label)
            return
        if isinstance(event, Adopted):
            # Use it; the session re-predicts the images the user has not touched.
            self.session.adopt_model(event.model, event.path, event.describe().capitalize())
            self.adopted.emit(event)
            self.history_changed.emit()
            self.event.emit(event)
            return
        self.session.predictions.set_learner_busy(event.state in ("training", "waiting"))
        now = time.monotonic()
        if event.state != "training" or now - self._last_event >= EVENT_INTERVAL_S:
            self._last_event = now
            self.event.emit(event)

    def _on_error(self, message: str) -> None:
        self._failed = True
        self.failed.emit(message)

    def _on_finished(self) -> None:
        self._thread = None
        self._learner = None
        self.session.predictions.set_learner_busy(False)
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
