"""The queue of prediction jobs: one at a time on a worker thread, current image first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from .runner import Runner
from .slide_document import is_slide_file
from .workers import GeneratorThread


@dataclass
class Job:
    image_id: str
    path: Path
    force: bool = False  # asked for explicitly (may replace an edited label after confirmation)
    project: object = None  # the project it was queued for (a result for another one is dropped)


class PredictionQueue(QObject):
    """Runs ``predictor.iter_predict`` for queued images, one worker thread at a time.

    Signals: ``started(image_id)``, ``progress(done, total, message)``,
    ``predicted(job, prediction)``, ``failed(image_id, message)``, ``idle()``.
    """

    started = Signal(str)
    cancelled = Signal()  # cancel_all: background work stops too
    progress = Signal(int, int, str)
    predicted = Signal(object, object)
    failed = Signal(str, str)
    idle = Signal()

    def __init__(self, predictor_source, runner: Runner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._predictor_source = predictor_source
        self._runner = runner
        self.pending: list[Job] = []
        self.current: Job | None = None
        self._thread: GeneratorThread | None = None
        # Asked for the next job once the queue is empty (background work found a page at a
        # time, instead of a queue holding every image of a large project).
        self.background: Callable[[], Job | None] = lambda: None

    @property
    def busy(self) -> bool:
        return self.current is not None

    def enqueue(self, job: Job, *, front: bool = False) -> None:
        """Queue ``job`` unless that image is queued or running already."""
        if self.current is not None and self.current.image_id == job.image_id:
            return
        existing = [j for j in self.pending if j.image_id == job.image_id]
        if existing and not front:
            return
        self.pending = [j for j in self.pending if j.image_id != job.image_id]
        if front:
            self.pending.insert(0, job)
        else:
            self.pending.append(job)
        self._start_next()

    def cancel_all(self) -> None:
        """Drop the queue and stop the running job at its next tile."""
        self.pending.clear()
        self.cancelled.emit()
        if self._thread is not None:
            self._thread.cancel()

    def drop(self, image_ids: set[str]) -> None:
        """Take the jobs of ``image_ids`` out of the queue (a running one finishes)."""
        self.pending = [j for j in self.pending if j.image_id not in image_ids]

    def _start_next(self) -> None:
        if self.current is not None or self._runner.closing:  # quitting: whatever is queued waits
            return
        predictor = self._predictor_source()
        if predictor is None:
            if not self.pending:
                self.idle.emit()
            return
        job = self.pending.pop(0) if self.pending else self.background()
        if job is None:
            self.idle.emit()
            return
        self.current = job

        def work():
            from core.io.images import read_image

            if is_slide_file(job.path):
                return None  # never decoded whole; `fcn-gui segment` predicts it tile by tile
            image = read_image(job.path)
            return (yield from predictor.iter_predict(image))

        self.started.emit(job.image_id)
        self._thread = self._runner.start(
            work,
            f"predict-{job.image_id}",
            on_result=lambda prediction: self.predicted.emit(job, prediction),
            on_error=lambda message: self.failed.emit(job.image_id, message),
            on_progress=self.progress.emit,
            on_finished=self._on_finished,
        )

    def _on_finished(self) -> None:
        self._thread = None
        self.current = None
        self._start_next()

    def model_ready(self) -> None:
        """Start queued work that was waiting for the model."""
        self._start_next()
