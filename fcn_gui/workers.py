"""Runs a core progress generator on a worker thread, reporting through Qt signals.

The worker never touches widgets: it only emits ``progress``, ``result`` and ``error``,
which Qt delivers to the GUI thread. ``cancel`` takes effect at the generator's next
``yield``; the generator is then closed, so its ``finally`` cleanup runs on the worker.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Generator
from typing import Any

from PySide6.QtCore import QThread, Signal


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
        try:
            gen = self._factory()
            while True:
                if self._cancel:
                    gen.close()
                    self.cancelled.emit()
                    return
                try:
                    event = next(gen)
                except StopIteration as stop:
                    self.result.emit(stop.value)
                    return
                self.yielded.emit(event)
                done, total, message = _unpack(event)
                self.progress.emit(done, total, message)
        except Exception as exc:
            if gen is not None:
                gen.close()
            self.error.emit(_describe(exc))


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


def run_in_thread(factory: Callable[[], Any], name: str = "worker", parent=None) -> GeneratorThread:
    """A ``GeneratorThread`` for a plain function: its return value is the result."""

    def gen() -> Generator[None, None, Any]:
        return factory()
        yield  # pragma: no cover - makes this a generator

    return GeneratorThread(gen, name, parent)
