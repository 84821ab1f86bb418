"""Where Next and Previous go: the project's order, or the least confident image not reviewed."""

from __future__ import annotations

from PySide6.QtCore import QObject


class Navigation(QObject):
    """Answers ``neighbour`` for the session's project and current image."""

    def __init__(self, session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.least_confident_next = False

    def neighbour(self, step: int) -> str | None:
        """The image before/after the current one; with ``least_confident_next``, Next goes to
        the image not yet reviewed whose prediction has the lowest mean confidence."""
        s = self.session
        if s.project is None or not s.project.images:
            return None
        current_id = s.doc.image_id if s.doc else None
        if step > 0 and self.least_confident_next:
            confidence = s.predictions.mean_confidence
            scored = [
                (confidence[e.id], e.id)
                for e in s.project.images
                if e.state != "reviewed" and e.id != current_id and e.id in confidence
            ]
            if scored:
                return min(scored)[1]
        ids = [e.id for e in s.project.images]
        current = ids.index(current_id) if current_id in ids else -1
        index = current + step
        return ids[index] if 0 <= index < len(ids) else None

    def set_least_confident_next(self, on: bool) -> None:
        """Switch the order of Next; predicts every new image ahead so all have a confidence."""
        self.least_confident_next = on
        if on:
            self.session.predictions.predict_new()

    def visit_order(self) -> list[str]:
        """Image ids in the order the user will likely meet them: current, next, then onwards."""
        s = self.session
        ids = [e.id for e in s.project.images]
        current = s.doc.image_id if s.doc else None
        start = ids.index(current) if current in ids else 0
        first = [i for i in (current, self.neighbour(1)) if i is not None]
        return list(dict.fromkeys(first + ids[start:] + ids[:start]))
