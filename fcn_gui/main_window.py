"""The main window: wiring only. It builds the canvas, docks, actions and status bar and
connects them to the session and its controllers; the workflows live in those controllers."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QMainWindow

from . import dialogs
from .actions import (
    fill_recent,
    make_actions,
    make_class_hotkeys,
    make_menus_and_toolbar,
    make_tool_actions,
    make_undo_actions,
)
from .canvas import Canvas
from .class_editor import ClassEditor
from .class_panel import HOTKEYS, ClassPanel
from .docks import add_docks
from .file_jobs import FileJobs
from .image_list import ImageListPanel
from .learning import LearningController
from .learning_panel import LearningPanel
from .model_panel import ModelPanel
from .preload import Preloader
from .resources import icon
from .session import Session
from .settings import Settings
from .status_bar import StatusBar
from .tools import make_tools, save_tool_sizes
from .view_panel import ViewPanel

AUTOSAVE_MS = 15_000


class MainWindow(QMainWindow):
    """fcn-gui's window. ``open_paths`` opens what the command line or a drop names."""

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__()
        self.settings = settings or Settings()
        self.setWindowTitle("fcn-gui")
        self.setWindowIcon(icon("app"))
        self.setAcceptDrops(True)
        self.session = s = Session(self)
        self.learning = LearningController(s, self)
        self.learning.enabled = self.settings.get("learn", True, bool)
        self.classes = ClassEditor(s, self)
        self.files = FileJobs(s, self)
        self.current_class = 0
        self.preloader = Preloader(s, self)
        self.canvas = Canvas(self)
        self.setCentralWidget(self.canvas)
        self.status = StatusBar(self)
        self.setStatusBar(self.status)
        self.tools = make_tools(self.settings, lambda: self.current_class, self.set_current_class)
        self._make_docks()
        self._make_actions()
        self._connect()
        self.settings.restore_window(self)
        self.autosave = QTimer(self)
        self.autosave.setInterval(AUTOSAVE_MS)
        self.autosave.timeout.connect(s.documents.autosave)
        self.autosave.start()
        self.select_tool("brush")
        path = self.settings.get("checkpoint", "", str)
        s.models.load(Path(path) if path and Path(path).exists() else None, s.classes())

    # --- construction -------------------------------------------------------------------
    def _make_docks(self) -> None:
        self.image_panel = ImageListPanel(self.session.images)
        self.class_panel = ClassPanel()
        self.model_panel = ModelPanel()
        self.view_panel = ViewPanel(self.settings)
        self.learning_panel = LearningPanel()
        self.learning_panel.enabled.setChecked(self.learning.enabled)
        self.learning_panel.orientations.setChecked(self.settings.get("learn_all_orientations", False, bool))
        self.learning.all_orientations = self.learning_panel.orientations.isChecked()
        self.docks = add_docks(self, {
            "images": ("Images", self.image_panel), "classes": ("Classes", self.class_panel),
            "view": ("View and tools", self.view_panel), "model": ("Model", self.model_panel),
            "training": ("Learning", self.learning_panel),
        })  # fmt: skip

    def _make_actions(self) -> None:
        s, v, start = self.session, self.view_panel, self._last_dir
        self.act = make_actions(self, {
            "open_images": lambda: self._open(dialogs.ask_images(self, start())),
            "open_folder": lambda: self._open([dialogs.ask_folder(self, "Open an image folder", start())]),
            "open_project": lambda: self._open([dialogs.ask_folder(self, "Open a project folder", start())]),
            "import": self.import_dialog, "export": self.export_dialog, "quit": self.close,
            "rescan": lambda: self.files.scan(first=False),
            "prev": lambda: self.go(-1), "next": lambda: self.go(1), "reviewed": s.documents.mark_reviewed,
            "predict": s.predictions.predict_current, "predict_all": self.predict_all,
            "cancel": self.cancel_work,
            "load_checkpoint": self.load_checkpoint_dialog, "download": self.download_dialog,
            "fit": self.canvas.fit, "actual": self.canvas.actual_size,
            "zoom_in": lambda: self.canvas.zoom_by(1.25), "zoom_out": lambda: self.canvas.zoom_by(0.8),
            "overlay": self.canvas.set_overlay_visible, "unsure": v.unsure.setChecked,
            "bigger": lambda: v.scale_size(1.25), "smaller": lambda: v.scale_size(1 / 1.25),
            "shortcuts": lambda: dialogs.show_shortcuts(self, self.actions()),
            "about": lambda: dialogs.show_about(self),
        })  # fmt: skip
        self.act |= make_undo_actions(self, s.undo_group)
        self.act |= make_tool_actions(self, self.tools, self.select_tool)
        make_class_hotkeys(self, HOTKEYS, self.set_current_class)
        self.recent_menu, _ = make_menus_and_toolbar(self, self.act, list(self.tools))
        self.recent_menu.aboutToShow.connect(
            lambda: fill_recent(self.recent_menu, self.settings.recent(), lambda p: self.open_paths([p]))
        )

    def _connect(self) -> None:
        s, v, st = self.session, self.view_panel, self.status
        s.project_changed.connect(self._on_project_changed)
        s.document_changed.connect(self._on_document_changed)
        s.states_changed.connect(self._show_counts)
        s.reviewed.connect(lambda *_: self._show_corrections())
        s.scan_status.connect(self.image_panel.show_scan)
        s.classes_changed.connect(self._on_classes_changed)
        s.message.connect(lambda text: st.showMessage(text, 5000))
        s.error.connect(self.show_error)
        s.confirm_replace.connect(
            lambda job, pred: dialogs.ask_replace(self, job.image_id) and s.predictions.apply(job, pred)
        )
        s.model_changed.connect(st.show_learning)
        s.models.ready.connect(self._on_model_ready)
        s.models.failed.connect(self._on_model_failed)
        s.models.loading.connect(self.model_panel.name.setText)
        s.queue.started.connect(self._on_prediction_started)
        s.queue.progress.connect(st.show_progress)
        s.queue.idle.connect(self._maybe_idle)
        s.runner.job_started.connect(st.show_busy)
        s.runner.job_progress.connect(st.show_progress)
        s.runner.jobs_idle.connect(self._maybe_idle)
        st.cancel_requested.connect(self.cancel_work)
        self.image_panel.activated.connect(s.documents.show)
        self.class_panel.current_changed.connect(lambda i: setattr(self, "current_class", i))
        self.class_panel.add_requested.connect(self.classes.add)
        self.class_panel.rename_requested.connect(self.classes.rename)
        self.class_panel.recolor_requested.connect(self.classes.recolor)
        self.class_panel.remove_requested.connect(self.classes.remove)
        self.model_panel.load_requested.connect(self.load_checkpoint_dialog)
        self.model_panel.download_requested.connect(self.download_dialog)
        self.model_panel.device_changed.connect(s.switch_device)
        self.model_panel.tile_changed.connect(lambda t: s.models.set_tile(t or None))
        lp, learning = self.learning_panel, self.learning
        lp.enabled_changed.connect(lambda on: (self.settings.set("learn", on), learning.set_enabled(on)))
        lp.orientations_changed.connect(
            lambda on: (self.settings.set("learn_all_orientations", on), learning.set_all_orientations(on))
        )
        lp.pause_toggled.connect(learning.set_paused)
        lp.rollback_requested.connect(learning.roll_back)
        learning.event.connect(lp.show_event)
        learning.adopted.connect(lambda event: lp.show_adopted(event.describe().capitalize()))
        learning.failed.connect(lambda text: self.show_error(f"Learning stopped: {text}"))
        learning.running_changed.connect(lp.set_running)
        learning.history_changed.connect(lambda: lp.set_history(*learning.history_summary()))
        self.canvas.hovered.connect(lambda x, y: st.show_hover(s.doc, x, y))
        self.canvas.zoom_changed.connect(st.show_zoom)
        self.canvas.view_changed.connect(s.slide_predictions.set_view)
        v.opacity_changed.connect(self.canvas.set_opacity)
        v.unsure.toggled.connect(self.canvas.set_unsure_visible)
        v.unsure.toggled.connect(self.act["unsure"].setChecked)
        v.threshold_changed.connect(lambda t: s.doc and s.doc.set_unsure_threshold(t))
        v.size_changed.connect(self._on_size)
        v.erase_to_void_changed.connect(lambda on: setattr(self.tools["eraser"], "to_void", on))
        v.predict_ahead.toggled.connect(lambda on: setattr(s.predictions, "predict_ahead", on))
        v.least_confident.toggled.connect(s.navigation.set_least_confident_next)
        s.predictions.predict_ahead = v.predict_ahead.isChecked()
        s.navigation.least_confident_next = v.least_confident.isChecked()
        self.canvas.set_opacity(v.opacity.value() / 100)
        self.class_panel.set_classes(s.classes())

    # --- commands -----------------------------------------------------------------------
    def open_paths(self, paths: list[str | Path]) -> None:
        """Open a project/image folder, an annotation folder or image files (argv or a drop)."""
        self.files.open_paths(paths)

    def _open(self, paths: list[str]) -> None:
        paths = [p for p in paths if p]
        if paths:
            self.settings.remember_dir(paths[0])
            self.files.open_paths(paths)

    def import_dialog(self) -> None:
        title = "Import a VOC dataset, a folder of labelme JSON files, or images/ + masks/"
        if folder := dialogs.ask_folder(self, title, self._last_dir()):
            self.files.import_any(folder)

    def export_dialog(self) -> None:
        if self.session.project is None:
            self.show_error("Open a project first (File > Open Folder).")
        elif choice := dialogs.ask_export(self, self._last_dir()):
            self.files.export_voc(choice[0], reviewed_only=choice[1])

    def load_checkpoint_dialog(self) -> None:
        if path := dialogs.ask_checkpoint(self, self._last_dir()):
            self.files.load_checkpoint(path)

    def download_dialog(self) -> None:
        if choice := dialogs.ask_download(self):
            self.files.download(*choice)

    def predict_all(self) -> None:
        if n := self.session.predictions.predict_all():
            self.status.showMessage(f"Predicting {n} images in the background", 5000)

    def cancel_work(self) -> None:
        self.session.queue.cancel_all()
        self.session.runner.cancel_visible()
        self.status.showMessage("Cancelled", 3000)

    def go(self, step: int) -> None:
        if (target := self.session.navigation.neighbour(step)) is not None:
            self.session.documents.show(target)

    def select_tool(self, name: str) -> None:
        tool = self.tools[name]
        self.canvas.set_tool(tool)
        self.act[f"tool_{name}"].setChecked(True)
        self.view_panel.show_size(tool.size if tool.uses_size else None)

    def set_current_class(self, index: int) -> None:
        if 0 <= index < len(self.session.classes()):
            self.class_panel.set_current(index)

    def show_error(self, text: str) -> None:
        self.status.showMessage(text.splitlines()[0], 10000)
        dialogs.show_error(self, text)

    def _on_size(self, value: int) -> None:
        if getattr(self.canvas.tool, "uses_size", False):
            self.canvas.tool.size = value
            self.canvas.update()

    def _last_dir(self) -> str:
        return self.settings.get("last_dir", str(Path.home()), str)

    # --- session events -----------------------------------------------------------------
    def _on_project_changed(self) -> None:
        project = self.session.project
        self._show_counts()
        self.class_panel.set_classes(self.session.classes(), keep=0)
        self._show_corrections()
        if project is not None:
            self.setWindowTitle(f"fcn-gui — {project.root}")
            self.settings.add_recent(str(project.root))
            self._show_model_warning()

    def _on_classes_changed(self) -> None:
        self.class_panel.set_classes(self.session.classes())
        self._show_model_warning()

    def _on_document_changed(self, doc) -> None:
        if doc is not None:
            doc.set_unsure_threshold(self.view_panel.threshold.value() / 100)
            self.image_panel.select(doc.image_id)
            old = self.canvas.doc
            same_size = old is not None and (old.width, old.height) == (doc.width, doc.height)
            self.canvas.set_document(doc, keep_view=same_size)
        else:
            self.canvas.set_document(None)

    def _on_model_ready(self, _info, device_name: str) -> None:
        self.model_panel.show_model(self.session.models)
        self.status.show_device(f"model on {device_name}")
        if (ckpt := self.session.models.checkpoint) is not None:
            self.settings.set("checkpoint", str(ckpt))
        self._show_model_warning()
        if self.session.untrained():
            self.learning_panel.show_untrained()
        self.learning_panel.set_history(*self.learning.history_summary())

    def _on_model_failed(self, message: str) -> None:
        self.model_panel.show_model(self.session.models)  # the model in use, if any, stays
        if self.session.models.model is None:
            self.status.show_device("model: none")
        self.show_error(f"Could not load the model: {message}")

    def _show_model_warning(self) -> None:
        if why := self.session.model_mismatch():
            self.model_panel.show_warning(why)

    def _show_counts(self) -> None:
        project = self.session.project
        self.image_panel.show_counts(project.counts() if project is not None else None)

    def _show_corrections(self) -> None:
        project = self.session.project
        self.learning_panel.corrections.set_values(project.corrections() if project else [])

    def _on_prediction_started(self, image_id: str) -> None:
        left = len(self.session.queue.pending)
        self.status.show_busy(f"Predicting {image_id}" + (f" ({left} more queued)" if left else ""))

    def _maybe_idle(self) -> None:
        if not self.session.queue.busy and not self.session.runner.busy:
            self.status.show_idle()

    # --- drag and drop, closing ---------------------------------------------------------
    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        if paths := [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]:
            event.acceptProposedAction()
            self.open_paths(paths)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        self.autosave.stop()
        self.session.shutdown()  # stops the learner too: it saves what it learnt
        self.settings.save_window(self)
        save_tool_sizes(self.settings, self.tools)
        self.view_panel.save(self.settings)
        self.settings.sync()
        event.accept()
