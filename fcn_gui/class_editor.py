"""Class edits of the open project: add, rename and recolour at once; removal in the background.

Removing a class rewrites every label, which takes a while on a large project: it runs as a
visible job (progress in the status bar, Cancel undoes it) and no image can be opened until
it ends. The project switches to the new labels in one transaction (``Project.iter_remove_class``);
a removal a crash cut short is finished when the project opens again.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject

from core.base.errors import FcnGuiError
from core.store.project import Project


class ClassEditor(QObject):
    """Applies the class panel's requests to ``session.project`` and announces the result
    through ``session.classes_changed`` (or ``session.error``)."""

    def __init__(self, session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        session.project_changed.connect(self.resume)  # a removal a crash cut short goes on

    def add(self, name: str) -> None:
        self._edit(lambda p: p.add_class(name))

    def rename(self, index: int, name: str) -> None:
        self._edit(lambda p: p.rename_class(index, name))

    def recolor(self, index: int, color: tuple[int, int, int]) -> None:
        self._edit(lambda p: p.recolor_class(index, color))

    def _edit(self, change: Callable[[Project], object]) -> None:
        project = self.session.project
        if project is None:
            self.session.error.emit("Open a project first: classes belong to a project.")
            return
        try:
            change(project)
        except FcnGuiError as exc:
            self.session.error.emit(str(exc))
            return
        self._announce()

    def remove(self, index: int, remap_to: int) -> None:
        """Remove class ``index`` (its pixels become ``remap_to``) on a background job."""
        project = self.session.project
        if project is None or self.session.frozen:
            return
        name = project.classes[index].name
        self._rewrite(
            lambda: project.iter_remove_class(index, remap_to), f"the removal of class '{name}'",
            f"Removing class '{name}'", f"Removed class '{name}'",
        )  # fmt: skip

    def resume(self) -> None:
        """Finish the class removal a crash cut short (the project opened with it pending)."""
        project = self.session.project
        if project is None or self.session.frozen or project.removal_pending is None:
            return
        self._rewrite(
            project.iter_resume_removal, "the class removal cut short",
            "Finishing the class removal that was cut short", "Finished the class removal",
        )  # fmt: skip

    def _rewrite(self, job, frozen: str, title: str, done: str) -> None:
        """Run a rewrite of every label: predictions stop (a running one is dropped when it
        ends), the image on the canvas is staged and taken off, no image opens until it ends."""
        session, project = self.session, self.session.project
        session.queue.cancel_all()
        current = session.doc.image_id if session.doc else None
        session.documents.put_away()
        session.frozen = frozen

        def finished() -> None:
            session.frozen = None
            if session.project is not project:
                return
            self._announce()
            if current is not None:
                session.documents.show(current)
            else:
                session.show_first()

        session.runner.start(
            job, title, on_result=lambda _: session.message.emit(done), on_error=session.error.emit,
            on_finished=finished, visible=True,
        )  # fmt: skip

    def _announce(self) -> None:
        session = self.session
        if session.doc is not None:
            session.doc.set_classes(session.project.classes)
        session.save_async()
        session.classes_changed.emit()
