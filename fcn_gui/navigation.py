"""Where Next and Previous go: the next row of the image list as it is shown (its filter, search
and order), or the least confident image not reviewed."""

from __future__ import annotations

from PySide6.QtCore import QObject


class Navigation(QObject):
    """Answers ``neighbour`` for the session's project and current image."""

    def __init__(self, session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.least_confident_next = False

    def neighbour(self, step: int) -> str | None:
        """The image before/after the current one in the list; with ``least_confident_next``,
        Next goes to the image not yet reviewed whose prediction has the lowest mean confidence."""
        s = self.session
        if s.project is None:
            return None
        current = s.doc.image_id if s.doc is not None else s.documents.wanted
        if step > 0 and self.least_confident_next:
            found = s.project.least_confident(exclude=current)
            if found is not None:
                return found
        model = s.images
        row = model.row_of(current) if current is not None else None
        if row is None:  # not in the list as shown: from its start (or end)
            row = -1 if step > 0 else model.rowCount()
        return model.image_id(row + step)

    def set_least_confident_next(self, on: bool) -> None:
        """Switch the order of Next; predicts every new image ahead so all have a confidence."""
        self.least_confident_next = on
        if on:
            self.session.predictions.predict_new()
