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

from .runner import Runner

MODULES = ("scipy.ndimage", "core.learner")


def preload(runner: Runner) -> None:
    """Import ``MODULES`` on a worker thread."""
    gc.freeze()

    def work() -> None:
        for name in MODULES:
            importlib.import_module(name)

    runner.call(work, "preload", on_finished=gc.unfreeze)
