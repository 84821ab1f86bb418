"""The image on the canvas: opened on a worker, its edits staged for saving, marked reviewed.

``Documents`` builds the ``LabelDocument`` of the image the user picks off the GUI thread
(decoding the image, reading its label and the prediction it is measured against), hands it
to the GUI thread, and keeps Undo/Redo acting on it. It works on the ``Session`` it belongs
to and announces through the session's signals.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject

from core.io.labels import VOID

from .document import LabelDocument
from .label_snapshot import SNAPSHOT_BAND_PIXELS, LabelSnapshot
from .slide_document import SlideDocument, is_slide_file

THUMBNAIL_SIDE = 1024  # the slide drawn at once, before (and under) its tiles


class Documents(QObject):
    """Opens, stages and reviews the session's current image (``doc``)."""

    def __init__(self, session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.doc: LabelDocument | None = None
        self.wanted: str | None = None  # the image asked for last (it may still be loading)
        self._snapshot: LabelSnapshot | None = None  # the autosave's copy of a large label
        self.snapshot_band = SNAPSHOT_BAND_PIXELS  # labels larger than this are copied in bands

    def show(self, image_id: str) -> None:
        """Stage the current label, then load ``image_id`` on a worker thread."""
        s = self.session
        if s.project is None or (self.doc is not None and self.doc.image_id == image_id):
            return
        if s.frozen:
            s.message.emit(f"Wait until {s.frozen} has finished")
            return
        self.save_current()
        self.wanted = image_id
        project = s.project
        entry = project.entry(image_id)
        classes, confidence = list(project.classes), s.predictions.confidence(image_id)
        untouched = entry.state == "predicted"  # its label is the model's prediction
        gui_thread = self.thread()

        def load():
            """Decode and build the whole document here, off the GUI thread, then hand it over."""
            from core.io.images import read_image

            path = project.image_path(entry)
            if is_slide_file(path):
                return load_slide(path)
            image = read_image(path)
            if (entry.width, entry.height) != (image.shape[1], image.shape[0]):
                project.set_size(entry, image.shape[1], image.shape[0])
            label = project.load_label(entry)
            if label is None:
                label = np.full(image.shape[:2], VOID, dtype=np.uint8)
            # what Mark Reviewed measures corrections against; painting changes ``label`` in place
            predicted = label.copy() if untouched else project.load_prediction(entry)
            painted = project.load_painted(entry, label.shape)
            if painted is None and entry.state in ("edited", "reviewed"):
                painted = label != VOID  # saved before painted pixels were recorded: all the user's
            doc = LabelDocument(
                image_id, image, label, classes, confidence, predicted=predicted, painted=painted
            )
            doc.moveToThread(gui_thread)
            return doc

        def load_slide(path):
            """A slide: its smallest level and the tiles the user painted; the rest comes as seen."""
            from core.io.slides import open_slide

            slide = open_slide(path)
            try:
                thumb = slide.thumbnail(THUMBNAIL_SIDE)
                if (entry.width, entry.height) != (slide.levels[0][1], slide.levels[0][0]):
                    project.set_size(entry, slide.levels[0][1], slide.levels[0][0])
                doc = SlideDocument(image_id, slide, project.slide_tiles(entry), classes, thumb)
            except BaseException:
                slide.close()
                raise
            doc.moveToThread(gui_thread)
            return doc

        s.message.emit(f"Opening {entry.id}…")
        s.runner.call(load, "image-loader", on_result=self._on_loaded, on_error=s.error.emit)

    def apply_live(self, image_id: str, label: np.ndarray) -> None:
        """The assist predicted the image being painted (or a region of the slide being painted,
        ``review_feed.region_id``): show it on the pixels not painted, if that image is still on
        the canvas and reviewed it is not."""
        from core.training.review_feed import region_of

        doc, project = self.doc, self.session.project
        if doc is None or project is None:
            return
        region = region_of(image_id) if doc.pixels is None else None
        if (region[0] if region else image_id) != doc.image_id:
            return
        if project.entry(doc.image_id).state == "reviewed":
            return
        if region is not None:
            doc.apply_prediction(region[1], region[2], label)
        else:
            doc.apply_live(label)

    def _on_loaded(self, doc: LabelDocument | SlideDocument) -> None:
        s = self.session
        if s.project is None or doc.image_id != self.wanted:
            if isinstance(doc, SlideDocument):
                doc.close()
            doc.deleteLater()
            return  # the user moved on meanwhile
        doc.setParent(self)
        if isinstance(doc, SlideDocument):
            doc.start(s.runner)
            doc.loader.failed.connect(s.error.emit)
        if doc.classes != s.project.classes:  # the classes were edited while it loaded
            doc.set_classes(s.project.classes)
        doc.edited.connect(self._on_edited)
        self._set(doc)
        entry = s.project.entry(doc.image_id)
        if isinstance(doc, SlideDocument):
            s.message.emit(
                f"{entry.id}: a {doc.width:,} x {doc.height:,} slide, shown tile by tile; each stroke is "
                "saved as it ends. Predict it with `fcn-gui segment` (tile by tile, resumable)"
            )
            return
        s.message.emit(f"{entry.id}: {entry.state}")
        s.predictions.schedule(doc.image_id)

    def put_away(self) -> None:
        """Stage the image on the canvas for saving and take it off (a class removal is about
        to rewrite every label: it saves what is staged first)."""
        self.save_current()
        self.wanted = None
        self._set(None)

    def close(self) -> None:
        """The project closes: no image, nothing wanted."""
        self.wanted = None
        self._set(None)

    def _set(self, doc: LabelDocument | SlideDocument | None) -> None:
        old = self.doc
        self.doc = doc
        if isinstance(old, SlideDocument) and old is not doc:
            old.close()  # its strokes are saved; its tile worker stops
            old.deleteLater()
        self._use_undo_stack(doc)
        self.session.document_changed.emit(doc)

    def _use_undo_stack(self, doc: LabelDocument | None) -> None:
        """Undo/Redo now act on ``doc``; the stacks of images left behind go with them."""
        group = self.session.undo_group
        if doc is not None:
            group.addStack(doc.undo_stack)
            group.setActiveStack(doc.undo_stack)
        for stack in list(group.stacks()):
            if doc is None or stack is not doc.undo_stack:
                group.removeStack(stack)

    def _on_edited(self) -> None:
        s = self.session
        s.strokes_changed.emit(self.doc)
        entry = s.project.entry(self.doc.image_id)
        if entry.state != "edited":
            was_reviewed = entry.state == "reviewed"
            s.project.set_state(entry, "edited")
            s.entry_changed.emit(entry.id)
            s.states_changed.emit()
            if was_reviewed:
                s.unreviewed.emit(entry.id)

    def autosave(self) -> None:
        """The autosave timer's save: as ``save_current``, from a copy of a large label taken
        band by band (``LabelSnapshot``), so that the window never stalls for it."""
        doc, project = self.doc, self.session.project
        if not isinstance(doc, LabelDocument) or doc.label.size <= self.snapshot_band:
            self.save_current()
            return
        if not doc.modified or (self._snapshot is not None and self._snapshot.running):
            self.session.save_async()
            return

        def done(label: np.ndarray, painted: np.ndarray) -> None:
            if self.doc is doc and self.session.project is project:
                self._stage(doc, project, label, painted, None)
            self.session.save_async()

        self._snapshot = LabelSnapshot(doc, done, self.snapshot_band)

    def save_current(self, state: str | None = None) -> None:
        """Stage the current label if it changed (or its state is set) and save in the background."""
        doc, project = self.doc, self.session.project
        if self._snapshot is not None:
            self._snapshot.cancel()  # copied at once instead
            self._snapshot = None
        if doc is None or project is None:
            return
        if doc.modified or state is not None:
            self._stage(doc, project, doc.label.copy(), doc.painted.copy(), state)
        self.session.save_async()

    @staticmethod
    def _stage(doc, project, label: np.ndarray, painted: np.ndarray, state: str | None) -> None:
        entry = project.entry(doc.image_id)
        state = state or ("edited" if doc.modified else entry.state)
        project.set_label(entry, label, state, painted=painted)
        doc.modified = False

    def _review_slide(self, doc: SlideDocument) -> None:
        """A slide's tiles the user painted in become training targets (each whole, as it is now)."""
        s = self.session
        doc.flush()
        painted = sum(1 for tile in doc.tiles.values() if tile.painted.any())
        if not painted:
            s.message.emit(
                f"{doc.image_id}: paint the parts you checked first; the tiles you paint in train the model"
            )
            return
        entry = s.project.entry(doc.image_id)
        s.project.set_state(entry, "reviewed")
        self.session.save_async()
        s.entry_changed.emit(entry.id)
        s.states_changed.emit()
        s.reviewed.emit(entry.id, None)
        s.message.emit(
            f"{entry.id} marked reviewed: the {painted} tiles of 512 px you painted in train the model"
        )

    def mark_reviewed(self) -> None:
        """The current label becomes a trusted training target; records how much was corrected."""
        doc, s = self.doc, self.session
        if doc is None:
            return
        if isinstance(doc, SlideDocument):
            self._review_slide(doc)
            return
        entry = s.project.entry(doc.image_id)
        predicted = doc.predicted  # read with the image, off the GUI thread
        if predicted is not None and predicted.shape == doc.label.shape:
            changed = float(np.mean(predicted != doc.label))
            s.project.set_state(entry, entry.state, changed_fraction=changed)
        self.save_current(state="reviewed")
        s.entry_changed.emit(entry.id)
        s.states_changed.emit()
        s.reviewed.emit(entry.id, doc.label.copy())
        changed = (
            "" if entry.changed_fraction is None else f" ({entry.changed_fraction:.1%} of pixels corrected)"
        )
        s.message.emit(f"{entry.id} marked reviewed{changed}")
