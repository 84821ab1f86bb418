"""Writing the open project to disk in the background: one writer, every write in order.

Saves (the project's staged labels and states) and the predictions kept to measure
corrections are jobs queued here and run on a worker the one runner starts; the GUI thread
only queues them. A failed write comes back as ``failed(message)``, and the edit stays in
memory for the next save.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Generator

from PySide6.QtCore import QObject, Signal

from core.base.errors import FcnGuiError

from .runner import Runner
from .workers import GeneratorThread


class Saver(QObject):
    """Runs queued write jobs one after another on a worker; ``failed(message)`` on an error."""

    failed = Signal(str)

    def __init__(self, runner: Runner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._runner = runner
        self._jobs: deque[Callable[[], object]] = deque()
        self._lock = threading.Lock()
        self._thread: GeneratorThread | None = None

    @property
    def busy(self) -> bool:
        """Are writes queued or running?"""
        return self._thread is not None or bool(self._jobs)

    def submit(self, job: Callable[[], object]) -> None:
        """Queue ``job`` (a write) after the ones queued before it."""
        with self._lock:
            self._jobs.append(job)
        if self._thread is None and not self._runner.closing:
            self._start()

    def _start(self) -> None:
        self._thread = self._runner.start(
            self._write, "saver", on_error=self.failed.emit, on_finished=self._on_finished
        )

    def _write(self) -> Generator[None, None, None]:
        """On the worker: run the jobs until none is left."""
        while (job := self._next()) is not None:
            self._run(job)
            yield  # where a quit may stop it: what is left is written by ``wait``

    def _next(self) -> Callable[[], object] | None:
        with self._lock:
            return self._jobs.popleft() if self._jobs else None

    def _run(self, job: Callable[[], object]) -> None:
        try:
            job()
        except FcnGuiError as exc:
            self.failed.emit(str(exc))

    def _on_finished(self) -> None:
        self._thread = None
        if self._jobs and not self._runner.closing:
            self._start()  # queued after the worker looked for the last time

    def wait(self) -> None:
        """Block until every queued write is done (closing a project, quitting)."""
        while True:
            if self._thread is not None:
                self._runner.finish(self._thread)
            elif (job := self._next()) is not None:
                self._run(job)  # the runner is closing: the last writes happen here
            else:
                return
