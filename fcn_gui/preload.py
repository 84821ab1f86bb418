"""Modules the window needs later, imported once on a worker while nothing else runs.

The first review imports the learner (torchvision's training modules and scipy.ndimage: 1.4 s
of one core here), the first flood fill scipy.ndimage. Imported then on the GUI thread, they
froze the window for 1.4-2.2 s (measured at the first review). Even on a worker they stalled
it by up to 110 ms: an import makes enough objects to start Python's full garbage
collections, which hold the interpreter lock while they walk every object alive (40 ms with
torch loaded). Frozen out of the collections (``gc.freeze``) while the modules import, the
objects already alive are not walked; they are unfrozen afterwards, so nothing stays
uncollectable.
"""

from __future__ import annotations

import gc
import importlib

from PySide6.QtCore import QObject, QTimer

MODULES = ("scipy.ndimage", "core.training.learner", "core.training.project_learner")
IDLE_MS = 1000  # this long with a model loaded and nothing to predict, then the preload


class Preloader(QObject):
    """Imports ``MODULES`` on a worker once: after a second with a model loaded and nothing to
    predict (at start-up on a folder, after its first predictions rather than beside them)."""

    def __init__(self, session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.started = False
        self._timer = QTimer(self, singleShot=True, interval=IDLE_MS)
        self._timer.timeout.connect(self._start)
        for signal in (session.queue.idle, session.models.ready, session.document_changed):
            signal.connect(self._soon)

    def _soon(self, *_args) -> None:
        if not self.started:
            self._timer.start()  # again: it waits for a second without anything to do

    def _start(self) -> None:
        s = self.session
        idle = not s.queue.busy and not s.queue.pending and (s.project is None or s.doc is not None)
        if self.started or s.runner.closing or s.models.model is None or not idle:
            return
        self.started = True
        gc.freeze()

        def work() -> None:
            for name in MODULES:
                importlib.import_module(name)

        s.runner.call(work, "preload", on_finished=gc.unfreeze)
