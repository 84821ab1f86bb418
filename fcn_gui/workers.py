"""Runs a core progress generator on a worker thread, reporting through Qt signals.

The worker never touches widgets: it only emits ``progress``, ``result`` and ``error``,
which Qt delivers to the GUI thread. ``cancel`` takes effect at the generator's next
``yield``; the generator is then closed, so its ``finally`` cleanup runs on the worker.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Generator
from typing import Any

from PySide6.QtCore import QThread, Signal

from core.base.progress import drain

_running = threading.local()  # the GeneratorThread whose generator runs on this thread


def cancel_asked() -> bool:
    """Whether the job running on this thread was asked to stop: for work that runs long
    between two yields (a whole-photo prediction) and can stop early; false off a job's thread."""
    thread = getattr(_running, "thread", None)
    return thread is not None and thread._cancel


class GeneratorThread(QThread):
    """A thread that drives ``factory()``'s generator to its end.

    Signals: ``progress(done, total, message)`` and ``yielded(event)`` for each yield,
    ``result(value)`` when it returns,
    ``error(message)`` when it raises, ``cancelled()`` when stopped by ``cancel``.
    """

    progress = Signal(int, int, str)
    yielded = Signal(object)
    result = Signal(object)
    error = Signal(str)
    cancelled = Signal()

    def __init__(
        self, factory: Callable[[], Generator[Any, None, Any]], name: str = "worker", parent=None
    ) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self._factory = factory
        self._cancel = False

    def cancel(self) -> None:
        """Ask the generator to stop at its next yield."""
        self._cancel = True

    def run(self) -> None:
        gen = None
        _running.thread = self
        try:
            gen = self._factory()
            self._stop_if_cancelled()
            self.result.emit(drain(gen, self._report))
        except _CancelledError:
            gen.close()
            self.cancelled.emit()
        except Exception as exc:
            if gen is not None:
                gen.close()
            self.error.emit(_describe(exc))

    def _report(self, event: Any) -> None:
        self.yielded.emit(event)
        self.progress.emit(*_unpack(event))
        self._stop_if_cancelled()

    def _stop_if_cancelled(self) -> None:
        if self._cancel:
            raise _CancelledError


class _CancelledError(Exception):
    """Raised between two steps of the generator once ``cancel`` was asked for."""


def _unpack(event: Any) -> tuple[int, int, str]:
    if event is None:
        return 0, 0, ""
    return int(getattr(event, "done", 0)), int(getattr(event, "total", 0)), str(getattr(event, "message", ""))


def _describe(exc: Exception) -> str:
    from core.base.errors import FcnGuiError

    if isinstance(exc, FcnGuiError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "out of memory; close other programs or use smaller tiles (Model > Tile size)"
    return f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc(limit=4)}"
