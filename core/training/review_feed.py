"""Reviews handed to the learner from any thread: the GUI thread queues, the learner's thread
takes them between two steps. Light on purpose (no torch): the app imports it at start-up."""

from __future__ import annotations

import threading

import numpy as np

Change = tuple[str, str, "np.ndarray | None"]  # ("add" | "remove", image id, label or None)


class ReviewFeed:
    """A thread-safe queue of reviews and un-reviews, in the order they happened."""

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

    def reset(self, image_ids: list[str] = ()) -> None:
        """Forget what is queued, then queue ``image_ids`` as reviewed (a learner starting)."""
        with self._lock:
            self._changes = [("add", i, None) for i in image_ids]

    def take(self) -> list[Change]:
        """Everything queued so far, which leaves the queue."""
        with self._lock:
            changes, self._changes = self._changes, []
        return changes
