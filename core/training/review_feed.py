"""Reviews handed to the learner from any thread: the GUI thread queues, the learner's thread
takes them between two steps. Light on purpose (no torch): the app imports it at start-up."""

from __future__ import annotations

import re
import threading

import numpy as np

# ("add", id, label or None) | ("remove", id, None) | ("live", id, (image, painted))
Change = tuple[str, str, object]
_REGION = re.compile(r"(.+)@(\d+)_(\d+)")


def region_id(image_id: str, y: int, x: int) -> str:
    """The id the strokes in a region of a slide train under: ``<slide>@<y>_<x>``."""
    return f"{image_id}@{y}_{x}"


def region_of(live_id: str) -> tuple[str, int, int] | None:
    """``(slide id, y, x)`` of a region's id (``region_id``), else ``None``."""
    match = _REGION.fullmatch(live_id)
    return None if match is None else (match[1], int(match[2]), int(match[3]))


class ReviewFeed:
    """A thread-safe queue of reviews, un-reviews and strokes, in the order they happened."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changes: list[Change] = []

    def reviewed(self, image_id: str, label: np.ndarray | None = None) -> None:
        """``image_id`` is a training target now (``label``: its label, else read from the project)."""
        with self._lock:
            self._changes.append(("add", image_id, label))

    def unreviewed(self, image_id: str) -> None:
        """``image_id`` was edited again: it leaves training until it is reviewed again."""
        with self._lock:
            self._changes.append(("remove", image_id, None))

    def live(self, image_id: str, image: np.ndarray, painted: np.ndarray) -> None:
        """The strokes on the image being painted (``painted``: their classes, void elsewhere;
        it may be the painter's own array, which the learner copies when it takes it); only the
        newest of an image stays queued."""
        with self._lock:
            self._changes = [c for c in self._changes if not (c[0] == "live" and c[1] == image_id)]
            self._changes.append(("live", image_id, (image, painted)))

    def has_live(self) -> bool:
        """Whether strokes are queued (cheap: called between tiles of a prediction)."""
        return any(c[0] == "live" for c in self._changes)

    def reset(self, image_ids: list[str] = (), *, keep_live: bool = False) -> None:
        """Forget what is queued (but strokes, with ``keep_live``), then queue ``image_ids`` as
        reviewed (a learner starting)."""
        with self._lock:
            live = [c for c in self._changes if c[0] == "live"] if keep_live else []
            self._changes = [*live, *(("add", i, None) for i in image_ids)]

    def take(self) -> list[Change]:
        """Everything queued so far, which leaves the queue."""
        with self._lock:
            changes, self._changes = self._changes, []
        return changes
