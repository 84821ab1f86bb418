"""The one way the app runs background work: every worker thread starts and ends here.

Each job is a core generator driven by a ``GeneratorThread``. Its callbacks run on the GUI
thread: the runner lives there, and Qt queues the thread's signals to the runner's own slots,
which look the job up and call what its owner asked for. Jobs the user started (an import, an
export, a download, a class removal) are *visible*: their progress feeds one status-bar
indicator and Cancel stops them. Quitting cancels and waits for everything through ``shutdown``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal

from .workers import GeneratorThread

# How long a worker running Python may keep the interpreter lock while the GUI thread waits for
# it (Python's default is 5 ms). A paint of the image list calls from Qt into Python some 40
# times, each waiting up to this long when a worker is busy: 5 ms made a repaint 130 ms, 0.5 ms
# makes it 20 ms (docs/benchmarks.md). A worker only switches this often while the GUI thread
# asks, so its own speed barely changes.
SWITCH_INTERVAL = 0.0005


@dataclass
class _Callbacks:
    result: Callable[[Any], None] | None
    error: Callable[[str], None] | None
    yielded: Callable[[Any], None] | None
    progress: Callable[[int, int, str], None] | None
    finished: Callable[[], None] | None
    visible: bool
    title: str


class Runner(QObject):
    """Signals: ``job_started(title)``, ``job_progress(done, total, message)`` and
    ``jobs_idle()`` for visible jobs; ``job_failed(message)`` for one without an error callback."""

    job_started = Signal(str)
    job_progress = Signal(int, int, str)
    jobs_idle = Signal()
    job_failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._jobs: dict[GeneratorThread, _Callbacks] = {}
        self.closing = False
        sys.setswitchinterval(SWITCH_INTERVAL)

    def start(
        self,
        factory: Callable[[], Generator[Any, None, Any]],
        name: str,
        *,
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        on_yield: Callable[[Any], None] | None = None,
        on_progress: Callable[[int, int, str], None] | None = None,
        on_finished: Callable[[], None] | None = None,
        visible: bool = False,
    ) -> GeneratorThread:
        """Run ``factory()``'s generator on a new thread; returns its handle (``cancel``, ``wait``)."""
        if self.closing:
            raise RuntimeError(f"{name} started while the app quits")
        thread = GeneratorThread(factory, name, self)
        self._jobs[thread] = _Callbacks(
            on_result, on_error, on_yield, on_progress, on_finished, visible, name
        )
        thread.result.connect(self._on_result)
        thread.error.connect(self._on_error)
        thread.finished.connect(self._on_finished)
        if on_yield is not None:
            thread.yielded.connect(self._on_yield)
        if on_progress is not None or visible:
            thread.progress.connect(self._on_progress)
        if visible:
            self.job_started.emit(name)
        thread.start()
        return thread

    def call(self, function: Callable[[], Any], name: str, **callbacks) -> GeneratorThread:
        """``start`` for a plain function: its return value is the result."""

        def gen() -> Generator[None, None, Any]:
            return function()
            yield  # pragma: no cover - makes this a generator

        return self.start(gen, name, **callbacks)

    @property
    def busy(self) -> bool:
        """Is a visible job running?"""
        return any(c.visible for c in self._jobs.values())

    def names(self) -> list[str]:
        """The running jobs, for tests and for the quit log."""
        return [c.title for c in self._jobs.values()]

    def cancel_visible(self) -> None:
        """The user's Cancel: stop every job they started, at its next yield."""
        for thread, callbacks in list(self._jobs.items()):
            if callbacks.visible:
                thread.cancel()

    def finish(self, thread: GeneratorThread) -> None:
        """Wait for ``thread`` and run its callbacks now (the GUI thread needs its end at once)."""
        thread.wait()
        self._retire(thread)

    def shutdown(self) -> None:
        """Cancel every job and wait for all of them (quitting); no job may start after this."""
        self.closing = True
        for thread in list(self._jobs):
            thread.cancel()
        for thread in list(self._jobs):
            thread.wait()
            self._retire(thread)

    def _callbacks(self) -> _Callbacks | None:
        return self._jobs.get(self.sender())

    def _on_result(self, value: Any) -> None:
        if (c := self._callbacks()) is not None and c.result is not None:
            c.result(value)

    def _on_error(self, message: str) -> None:
        c = self._callbacks()
        if c is not None and c.error is not None:
            c.error(message)
        elif c is not None:
            self.job_failed.emit(message)

    def _on_yield(self, event: Any) -> None:
        if (c := self._callbacks()) is not None and c.yielded is not None:
            c.yielded(event)

    def _on_progress(self, done: int, total: int, message: str) -> None:
        if (c := self._callbacks()) is None:
            return
        if c.progress is not None:
            c.progress(done, total, message)
        if c.visible:
            self.job_progress.emit(done, total, message)

    def _on_finished(self) -> None:
        thread = self.sender()
        if isinstance(thread, GeneratorThread):
            self._retire(thread)

    def _retire(self, thread: GeneratorThread) -> None:
        callbacks = self._jobs.pop(thread, None)
        if callbacks is None:
            return  # already retired by ``finish`` or ``shutdown``
        thread.deleteLater()
        if callbacks.finished is not None:
            callbacks.finished()
        if callbacks.visible and not self.busy:
            self.jobs_idle.emit()
