"""The main window: menus, toolbar, docks and status bar, wired to the ``Session``."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QColor, QKeySequence, QUndoGroup
from PySide6.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QFormLayout,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from core.errors import FcnGuiError
from core.images import IMAGE_SUFFIXES
from core.labels import VOID
from core.project import Project

from .canvas import Canvas
from .class_panel import HOTKEYS, ClassPanel
from .image_list import ImageListPanel
from .learning import LearningController
from .learning_panel import LearningPanel
from .model_panel import ModelPanel
from .resources import icon
from .session import Session, project_for_images
from .settings import Settings
from .tools import BrushTool, EraserTool, FillTool, PickerTool, PolygonTool
from .workers import GeneratorThread

AUTOSAVE_MS = 15_000


class MainWindow(QMainWindow):
    """fcn-gui's window. ``open_paths`` opens what the command line or a drop names."""

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__()
        self.settings = settings or Settings()
        self.setWindowTitle("fcn-gui")
        self.setWindowIcon(icon("app"))
        self.setAcceptDrops(True)
        self.session = Session(self)
        self.learning = LearningController(self.session, self)
        self.learning.enabled = self.settings.get("learn", True, bool)
        self.undo_group = QUndoGroup(self)
        self.current_class = 0
        self._busy_threads: list[GeneratorThread] = []

        self.canvas = Canvas(self)
        self.setCentralWidget(self.canvas)
        self._make_tools()
        self._make_docks()
        self._make_actions()
        self._make_menus_and_toolbar()
        self._make_status_bar()
        self._connect()
        self._restore_settings()

        self.autosave = QTimer(self)
        self.autosave.setInterval(AUTOSAVE_MS)
        self.autosave.timeout.connect(self.session.save_current)
        self.autosave.start()
        self.select_tool("brush")
        self.session.models.load(self._last_checkpoint(), self._classes())

    # --- construction -------------------------------------------------------------------
    def _make_tools(self) -> None:
        value = lambda: self.current_class  # noqa: E731 - the tools read the current class lazily
        self.tools = {
            "brush": BrushTool(value, self.settings.get("brush_size", 15, int)),
            "eraser": EraserTool(
                self.settings.get("eraser_size", 25, int), self.settings.get("erase_to_void", True, bool)
            ),
            "fill": FillTool(value),
            "polygon": PolygonTool(value),
            "picker": PickerTool(self.set_current_class),
        }

    def _make_docks(self) -> None:
        self.docks: dict[str, QDockWidget] = {}
        self.image_panel = ImageListPanel()
        self.class_panel = ClassPanel()
        self.model_panel = ModelPanel()
        self.view_panel = self._view_controls()
        self.learning_panel = LearningPanel()
        self.learning_panel.enabled.setChecked(self.learning.enabled)
        self.learning_panel.orientations.setChecked(self.settings.get("learn_all_orientations", False, bool))
        self.learning.all_orientations = self.learning_panel.orientations.isChecked()
        for title, widget, area, name in (
            ("Images", self.image_panel, Qt.DockWidgetArea.LeftDockWidgetArea, "images"),
            ("Classes", self.class_panel, Qt.DockWidgetArea.RightDockWidgetArea, "classes"),
            ("View and tools", self.view_panel, Qt.DockWidgetArea.RightDockWidgetArea, "view"),
            ("Model", self.model_panel, Qt.DockWidgetArea.RightDockWidgetArea, "model"),
            ("Learning", self.learning_panel, Qt.DockWidgetArea.RightDockWidgetArea, "training"),
        ):
            dock = QDockWidget(title, self)
            dock.setObjectName(f"dock-{name}")
            dock.setWidget(widget)
            dock.setFeatures(
                QDockWidget.DockWidgetFeature.DockWidgetMovable
                | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            )
            self.addDockWidget(area, dock)
            self.docks[name] = dock
        self.tabifyDockWidget(self.docks["model"], self.docks["training"])
        self.docks["training"].raise_()

    def _view_controls(self) -> QWidget:
        w = QWidget()
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(self.settings.get("opacity", 50, int))
        self.opacity.setToolTip("Overlay opacity (O toggles the overlay)")
        self.unsure = QCheckBox("Highlight unsure pixels (U)")
        self.threshold = QSlider(Qt.Orientation.Horizontal)
        self.threshold.setRange(5, 100)
        self.threshold.setValue(self.settings.get("unsure_threshold", 60, int))
        self.threshold.setToolTip("Pixels whose confidence is below this are highlighted")
        self.threshold_label = QLabel()
        self.brush_size = QSpinBox()
        self.brush_size.setRange(1, 500)
        self.brush_size.setSuffix(" px")
        self.brush_size.setToolTip("Brush/eraser size ([ and ] change it)")
        self.erase_mode = QComboBox()
        self.erase_mode.addItems(["to void (unlabelled)", "to background"])
        self.erase_mode.setCurrentIndex(0 if self.tools["eraser"].to_void else 1)
        self.predict_ahead = QCheckBox("Predict the next image ahead")
        self.predict_ahead.setChecked(self.settings.get("predict_ahead", True, bool))
        self.least_confident = QCheckBox("Next: least confident image first")
        self.least_confident.setToolTip(
            "Next (Right) goes to the image not yet reviewed whose prediction is least confident"
        )
        self.least_confident.setChecked(self.settings.get("least_confident_next", False, bool))
        form = QFormLayout()
        form.addRow("Opacity", self.opacity)
        form.addRow(self.unsure)
        form.addRow(self.threshold_label, self.threshold)
        form.addRow("Size", self.brush_size)
        form.addRow("Eraser", self.erase_mode)
        form.addRow(self.predict_ahead)
        form.addRow(self.least_confident)
        layout = QVBoxLayout(w)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(form)
        return w

    def _action(self, text: str, slot, shortcut=None, icon_name: str | None = None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if icon_name:
            action.setIcon(icon(icon_name))
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.setToolTip(f"{tip or text} ({action.shortcut().toString()})" if shortcut else tip or text)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _make_actions(self) -> None:
        a = self._action
        self.act = {
            "open_images": a(
                "Open Image(s)…", self.open_images_dialog, QKeySequence.StandardKey.Open, "open"
            ),
            "open_folder": a("Open Folder…", self.open_folder_dialog, "Ctrl+Shift+O", "folder"),
            "open_project": a("Open Project…", self.open_project_dialog),
            "open_voc": a("Import Annotations (VOC, labelme, masks)…", self.open_voc_dialog),
            "export": a("Export VOC…", self.export_dialog, "Ctrl+E", "export"),
            "quit": a("Quit", self.close, QKeySequence.StandardKey.Quit),
            "prev": a("Previous Image", lambda: self.go(-1), "Left", "prev"),
            "next": a("Next Image", lambda: self.go(1), "Right", "next"),
            "reviewed": a(
                "Mark Reviewed",
                self.mark_reviewed,
                "R",
                "reviewed",
                "Mark the label reviewed: a training target",
            ),
            "predict": a("Predict Image", self.session.predict_current, "Ctrl+P", "predict"),
            "predict_all": a("Predict All Not Reviewed", self.predict_all, "Ctrl+Shift+P", "predict_all"),
            "cancel": a("Cancel Predictions", self.cancel_work, "Ctrl+.", "cancel"),
            "fit": a("Fit to Window", self.canvas.fit, "Ctrl+0", "fit"),
            "actual": a("Actual Size (100%)", self.canvas.actual_size, "Ctrl+1", "zoom100"),
            "zoom_in": a("Zoom In", lambda: self.canvas.zoom_by(1.25), QKeySequence.StandardKey.ZoomIn),
            "zoom_out": a("Zoom Out", lambda: self.canvas.zoom_by(0.8), QKeySequence.StandardKey.ZoomOut),
            "overlay": a("Show Overlay", self.canvas.set_overlay_visible, "O"),
            "unsure": a("Highlight Unsure Pixels", self.unsure.setChecked, "U"),
            "bigger": a(
                "Bigger Brush", lambda: self.brush_size.setValue(int(self.brush_size.value() * 1.25) + 1), "]"
            ),
            "smaller": a(
                "Smaller Brush", lambda: self.brush_size.setValue(int(self.brush_size.value() / 1.25)), "["
            ),
        }
        self.act["overlay"].setCheckable(True)
        self.act["overlay"].setChecked(True)
        self.act["unsure"].setCheckable(True)
        self.act["undo"] = self.undo_group.createUndoAction(self, "Undo")
        self.act["undo"].setShortcut(QKeySequence.StandardKey.Undo)
        self.act["undo"].setIcon(icon("undo"))
        self.act["redo"] = self.undo_group.createRedoAction(self, "Redo")
        self.act["redo"].setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence.StandardKey.Redo])
        self.act["redo"].setIcon(icon("redo"))
        self.tool_group = QActionGroup(self)
        for name, tool in self.tools.items():
            action = a(tool.label, lambda _=False, n=name: self.select_tool(n), tool.shortcut, name)
            action.setCheckable(True)
            self.tool_group.addAction(action)
            self.act[f"tool_{name}"] = action
        for i, key in enumerate(HOTKEYS):
            a(f"Class {i + 1}", lambda _=False, i=i: self.set_current_class(i), key)

    def _make_menus_and_toolbar(self) -> None:
        bar = self.menuBar()
        file = bar.addMenu("&File")
        for key in ("open_images", "open_folder", "open_project", "open_voc"):
            file.addAction(self.act[key])
        self.recent_menu = file.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file.addSeparator()
        file.addAction(self.act["export"])
        file.addSeparator()
        file.addAction(self.act["quit"])
        edit = bar.addMenu("&Edit")
        edit.addAction(self.act["undo"])
        edit.addAction(self.act["redo"])
        edit.addSeparator()
        edit.addAction(self.act["reviewed"])
        view = bar.addMenu("&View")
        for key in ("fit", "actual", "zoom_in", "zoom_out", None, "overlay", "unsure"):
            view.addAction(self.act[key]) if key else view.addSeparator()
        tools = bar.addMenu("&Tools")
        for name in self.tools:
            tools.addAction(self.act[f"tool_{name}"])
        tools.addSeparator()
        tools.addAction(self.act["bigger"])
        tools.addAction(self.act["smaller"])
        model = bar.addMenu("&Model")
        for key in ("predict", "predict_all", "cancel"):
            model.addAction(self.act[key])
        model.addSeparator()
        model.addAction("Load Checkpoint…", self.load_checkpoint_dialog)
        model.addAction("Download Pretrained Weights…", self.download_dialog)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction("Keyboard Shortcuts", self.show_shortcuts)
        help_menu.addAction("About fcn-gui", self.show_about)

        tb = QToolBar("Main", self)
        tb.setObjectName("toolbar-main")
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        for key in ("open_folder", "export", None, "prev", "next", "reviewed", None, "undo", "redo", None):
            tb.addAction(self.act[key]) if key else tb.addSeparator()
        for name in self.tools:
            tb.addAction(self.act[f"tool_{name}"])
        tb.addSeparator()
        for key in ("predict", "predict_all", "cancel", None, "fit", "actual"):
            tb.addAction(self.act[key]) if key else tb.addSeparator()
        self.addToolBar(tb)

    def _make_status_bar(self) -> None:
        sb = self.statusBar()
        self.status = {k: QLabel() for k in ("pos", "cls", "conf", "learn", "zoom", "device")}
        self.status["learn"].setStyleSheet("QLabel { color: #2e7d32; }")
        self.status["pos"].setMinimumWidth(90)
        self.status["cls"].setMinimumWidth(130)
        self.status["conf"].setMinimumWidth(90)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(180)
        self.progress.setMaximumHeight(16)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setFlat(True)
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel_work)
        for key in ("pos", "cls", "conf"):
            sb.addWidget(self.status[key])
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_button)
        sb.addPermanentWidget(self.status["learn"])
        sb.addPermanentWidget(self.status["zoom"])
        sb.addPermanentWidget(self.status["device"])
        self.status["device"].setText("model: loading…")

    def _connect(self) -> None:
        s = self.session
        s.project_changed.connect(self._on_project_changed)
        s.document_changed.connect(self._on_document_changed)
        s.states_changed.connect(self.image_panel.refresh)
        s.message.connect(lambda text: self.statusBar().showMessage(text, 5000))
        s.error.connect(self.show_error)
        s.confirm_replace.connect(self._confirm_replace)
        s.models.ready.connect(self._on_model_ready)
        s.models.failed.connect(self._on_model_failed)
        s.models.loading.connect(lambda text: self.model_panel.name.setText(text))
        s.queue.started.connect(self._on_prediction_started)
        s.queue.progress.connect(self._on_prediction_progress)
        s.queue.idle.connect(self._on_queue_idle)
        self.image_panel.activated.connect(s.show_image)
        self.class_panel.current_changed.connect(self._on_class_selected)
        self.class_panel.add_requested.connect(self.add_class)
        self.class_panel.rename_requested.connect(self.rename_class)
        self.class_panel.recolor_requested.connect(self.recolor_class)
        self.class_panel.remove_requested.connect(self.remove_class)
        self.model_panel.load_requested.connect(self.load_checkpoint_dialog)
        self.model_panel.download_requested.connect(self.download_dialog)
        self.model_panel.device_changed.connect(self._on_device_changed)
        self.model_panel.tile_changed.connect(lambda v: s.models.set_tile(v or None))
        self.learning_panel.enabled_changed.connect(self._on_learning_switched)
        self.learning_panel.pause_toggled.connect(self.learning.set_paused)
        self.learning_panel.orientations_changed.connect(self._on_orientations)
        self.learning_panel.rollback_requested.connect(self.learning.roll_back)
        self.learning.event.connect(self.learning_panel.show_event)
        self.learning.adopted.connect(self._on_adopted)
        self.learning.failed.connect(lambda text: self.show_error(f"Learning stopped: {text}"))
        self.learning.running_changed.connect(self.learning_panel.set_running)
        self.learning.history_changed.connect(self._refresh_history)
        s.model_changed.connect(self.status["learn"].setText)
        s.states_changed.connect(self._refresh_corrections)
        self.canvas.hovered.connect(self._on_hover)
        self.canvas.zoom_changed.connect(lambda z: self.status["zoom"].setText(f"{z:.0%}"))
        self.opacity.valueChanged.connect(lambda v: self.canvas.set_opacity(v / 100))
        self.unsure.toggled.connect(self.canvas.set_unsure_visible)
        self.unsure.toggled.connect(self.act["unsure"].setChecked)
        self.threshold.valueChanged.connect(self._on_threshold)
        self.brush_size.valueChanged.connect(self._on_size)
        self.erase_mode.currentIndexChanged.connect(
            lambda i: setattr(self.tools["eraser"], "to_void", i == 0)
        )
        self.predict_ahead.toggled.connect(lambda on: setattr(s, "predict_ahead", on))
        s.predict_ahead = self.predict_ahead.isChecked()
        self.least_confident.toggled.connect(s.set_least_confident_next)
        s.least_confident_next = self.least_confident.isChecked()
        self.canvas.set_opacity(self.opacity.value() / 100)
        self._on_threshold(self.threshold.value())
        self.class_panel.set_classes(self._classes())

    def _restore_settings(self) -> None:
        self.resize(1400, 900)
        geometry = self.settings.get("geometry", None)
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        state = self.settings.get("window_state", None)
        if isinstance(state, QByteArray):
            self.restoreState(state)

    # --- helpers ------------------------------------------------------------------------
    def _classes(self):
        from core.labels import default_classes

        return self.session.project.classes if self.session.project else default_classes()

    def _model_classes(self):
        """A new project's classes: those of the loaded trained model, else VOC's."""
        info = self.session.models.info
        return list(info.classes) if info is not None and info.trained else None

    def _last_checkpoint(self) -> Path | None:
        path = self.settings.get("checkpoint", "", str)
        return Path(path) if path and Path(path).exists() else None

    def show_error(self, text: str) -> None:
        self.statusBar().showMessage(text.splitlines()[0], 10000)
        box = QMessageBox(QMessageBox.Icon.Warning, "fcn-gui", text.split("\n\n")[0], parent=self)
        if "\n\n" in text:
            box.setDetailedText(text)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.show()

    def select_tool(self, name: str) -> None:
        tool = self.tools[name]
        self.canvas.set_tool(tool)
        self.act[f"tool_{name}"].setChecked(True)
        self.brush_size.setEnabled(tool.uses_size)
        if tool.uses_size:
            self.brush_size.blockSignals(True)
            self.brush_size.setValue(tool.size)
            self.brush_size.blockSignals(False)

    def set_current_class(self, index: int) -> None:
        if 0 <= index < len(self._classes()):
            self.class_panel.set_current(index)

    def _on_class_selected(self, index: int) -> None:
        self.current_class = index

    def _on_size(self, value: int) -> None:
        tool = self.canvas.tool
        if getattr(tool, "uses_size", False):
            tool.size = value
            self.canvas.update()

    def _on_threshold(self, value: int) -> None:
        self.threshold_label.setText(f"Below {value}%")
        if self.session.doc is not None:
            self.session.doc.set_unsure_threshold(value / 100)

    def _on_hover(self, x: int, y: int) -> None:
        doc = self.session.doc
        if doc is None or x < 0:
            for key in ("pos", "cls", "conf"):
                self.status[key].setText("")
            return
        self.status["pos"].setText(f"x {x}, y {y}")
        index = doc.class_at(x, y)
        name = (
            "void" if index == VOID else doc.classes[index].name if index < len(doc.classes) else str(index)
        )
        self.status["cls"].setText(f"class: {name}")
        conf = doc.confidence_at(x, y)
        self.status["conf"].setText("" if conf is None else f"confidence {conf:.0%}")

    # --- session events -----------------------------------------------------------------
    def _on_project_changed(self) -> None:
        project = self.session.project
        self.image_panel.set_project(project)
        self.class_panel.set_classes(self._classes(), keep=0)
        self._refresh_corrections()
        if project is not None:
            self.setWindowTitle(f"fcn-gui — {project.root}")
            self.settings.add_recent(str(project.root))
            self._update_model_warning()
            if (
                project.checkpoint
                and Path(project.checkpoint).exists()
                and (
                    self.session.models.checkpoint is None
                    or str(self.session.models.checkpoint) != project.checkpoint
                )
            ):
                self.session.models.load(Path(project.checkpoint), project.classes)

    def _on_document_changed(self, doc) -> None:
        if doc is not None:
            self.undo_group.addStack(doc.undo_stack)
            self.undo_group.setActiveStack(doc.undo_stack)
            doc.set_unsure_threshold(self.threshold.value() / 100)
            self.image_panel.select(doc.image_id)
            self.canvas.set_document(
                doc,
                keep_view=self.canvas.doc is not None
                and (self.canvas.doc.width, self.canvas.doc.height) == (doc.width, doc.height),
            )
        else:
            self.canvas.set_document(None)
        for stack in list(self.undo_group.stacks()):
            if doc is None or stack is not doc.undo_stack:
                self.undo_group.removeStack(stack)
        self.image_panel.refresh()

    def _on_model_ready(self, info, device_name: str) -> None:
        ckpt = self.session.models.checkpoint
        self.model_panel.show_info(info, device_name, str(ckpt) if ckpt else None)
        self.status["device"].setText(f"model on {device_name}")
        if ckpt is not None:
            self.settings.set("checkpoint", str(ckpt))
        self._update_model_warning()
        self._refresh_history()

    def _update_model_warning(self) -> None:
        why = self.session.model_mismatch()
        if why:
            self.model_panel.show_warning(why)

    def _on_model_failed(self, message: str) -> None:
        models = self.session.models
        if models.model is None:
            self.model_panel.name.setText("No model loaded")
            self.status["device"].setText("model: none")
        else:  # the model in use stays
            ckpt = str(models.checkpoint) if models.checkpoint else None
            self.model_panel.show_info(models.info, models.predictor.device_name, ckpt)
        self.show_error(f"Could not load the model: {message}")

    def _on_prediction_started(self, image_id: str) -> None:
        q = self.session.queue
        left = len(q.pending)
        self.statusBar().showMessage(
            f"Predicting {image_id}" + (f" ({left} more queued)" if left else ""), 3000
        )
        self.progress.show()
        self.cancel_button.show()

    def _on_prediction_progress(self, done: int, total: int, _message: str) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _on_queue_idle(self) -> None:
        self.progress.hide()
        self.cancel_button.hide()

    def _confirm_replace(self, job, prediction) -> None:
        answer = QMessageBox.question(
            self,
            "Replace your edits?",
            f"{job.image_id} has edits of yours. Replace its label with the new prediction?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.session.apply_prediction(job, prediction)

    def _on_device_changed(self, device: str) -> None:
        models = self.session.models
        if models.device == device:
            return
        models.device = device
        self.session.queue.cancel_all()
        models.load(models.checkpoint, self._classes())

    # --- commands -----------------------------------------------------------------------
    def open_paths(self, paths: list[str | Path]) -> None:
        """Open a project/image folder, a VOC dataset, or image files (from argv or a drop)."""
        paths = [Path(p) for p in paths]
        if not paths:
            return
        try:
            if len(paths) == 1 and paths[0].is_dir():
                from core.labelme import is_labelme_folder
                from core.voc import find_voc_root

                folder = paths[0]
                try:
                    voc = find_voc_root(folder) if not (folder / "project.json").exists() else None
                except FcnGuiError:
                    voc = folder if is_labelme_folder(folder) else None
                if voc is not None and not (folder / "fcn-gui-project").exists():
                    self.import_voc(voc)
                    return
                project = Project.open_path(folder, self._model_classes())
            else:
                images = [p for p in paths if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
                if not images:
                    raise FcnGuiError("none of these is an image, an image folder or a project", paths[0])
                project = project_for_images(images, self._model_classes())
        except FcnGuiError as exc:
            self.show_error(str(exc))
            return
        self.session.open_project(project)

    def open_images_dialog(self) -> None:
        pattern = " ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES))
        files, _ = QFileDialog.getOpenFileNames(self, "Open images", self._last_dir(), f"Images ({pattern})")
        if files:
            self._remember_dir(files[0])
            self.open_paths(files)

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open an image folder", self._last_dir())
        if folder:
            self._remember_dir(folder)
            self.open_paths([folder])

    def open_project_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a project folder", self._last_dir())
        if folder:
            self.open_paths([folder])

    def open_voc_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self,
            "Import a VOC dataset, a folder of labelme JSON files, or images/ + masks/",
            self._last_dir(),
        )
        if not folder:
            return
        from core.labelme import is_labelme_folder
        from core.masks import is_mask_folder

        if is_labelme_folder(folder) or is_mask_folder(folder):
            self.import_voc(Path(folder))
            return
        try:
            from core.voc import find_voc_root

            self.import_voc(find_voc_root(folder))
        except FcnGuiError as exc:
            self.show_error(str(exc))

    def import_voc(self, folder: Path) -> None:
        """Import a VOC dataset, labelme JSON files or index masks as a project, then open it."""
        from core.labelme import import_labelme, is_labelme_folder
        from core.masks import import_masks, is_mask_folder
        from core.project import project_home_for
        from core.voc import import_voc

        target = project_home_for(folder)
        if (target / "project.json").exists():
            self.open_paths([target])
            return
        if is_labelme_folder(folder):

            def opened(report) -> None:
                self.session.open_project(report.project)
                if report.broken:
                    self.show_error(report.summary())

            self._run_job(lambda: import_labelme(folder, target), f"Importing {folder.name}", opened)
            return
        job = import_masks if is_mask_folder(folder) else import_voc
        self._run_job(lambda: job(folder, target), f"Importing {folder.name}", self.session.open_project)

    def export_dialog(self) -> None:
        project = self.session.project
        if project is None:
            self.show_error("Open a project first (File > Open Folder).")
            return
        folder = QFileDialog.getExistingDirectory(self, "Export VOC dataset into", self._last_dir())
        if not folder:
            return
        reviewed_only = (
            QMessageBox.question(
                self,
                "Export VOC",
                "Export only reviewed labels?\n(No exports every predicted or edited label too.)",
            )
            == QMessageBox.StandardButton.Yes
        )
        self.session.save_and_wait()
        from core.voc import export_voc

        self._run_job(
            lambda: export_voc(project, folder, only_reviewed=reviewed_only),
            "Exporting VOC",
            lambda report: self.statusBar().showMessage(report.summary(), 10000),
        )

    def _run_job(self, factory, title: str, on_result) -> None:
        thread = GeneratorThread(factory, title, self)
        thread.progress.connect(self._on_prediction_progress)
        thread.result.connect(on_result)
        thread.error.connect(self.show_error)
        thread.finished.connect(lambda: (self.progress.hide(), self._busy_threads.remove(thread)))
        self._busy_threads.append(thread)
        self.progress.show()
        self.statusBar().showMessage(f"{title}…", 3000)
        thread.start()

    def load_checkpoint_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Load checkpoint", self._last_dir(), "Checkpoints (*.safetensors *.pth *.pt)"
        )
        if path:
            self.session.queue.cancel_all()
            self.session.models.load(Path(path), self._classes())

    def download_dialog(self) -> None:
        from core.weights import pretrained_source

        choices = {
            "VGG16 ImageNet backbone for FCN-8s (528 MB; fine-tune before use)": ("vgg16-imagenet", "vgg16"),
            "FCN-ResNet50, 21 VOC classes (135 MB; predicts right away)": ("resnet50-voc", "resnet50"),
            "FCN-ResNet101, 21 VOC classes (208 MB; predicts right away)": ("resnet101-voc", "resnet101"),
        }
        item, ok = QInputDialog.getItem(
            self,
            "Download pretrained weights",
            "Weights to download from download.pytorch.org:",
            list(choices),
            0,
            False,
        )
        if not ok:
            return
        key, backbone = choices[item]
        source = pretrained_source(key)
        if (
            QMessageBox.question(
                self,
                "Download",
                f"Download {source.filename} ({source.size_mb} MB) into {source.cache_path.parent}?",
            )
            != QMessageBox.StandardButton.Yes
        ):
            return
        from core.weights import download

        def done(_path) -> None:
            self.session.models.load_pretrained(backbone, self._classes())

        self._run_job(lambda: download(source), f"Downloading {source.filename}", done)

    def predict_all(self) -> None:
        n = self.session.predict_all()
        if n:
            self.statusBar().showMessage(f"Predicting {n} images in the background", 5000)

    def cancel_work(self) -> None:
        self.session.queue.cancel_all()
        for thread in self._busy_threads:
            thread.cancel()
        self.statusBar().showMessage("Cancelled", 3000)

    def go(self, step: int) -> None:
        target = self.session.neighbour(step)
        if target is not None:
            self.session.show_image(target)

    def mark_reviewed(self) -> None:
        self.session.mark_reviewed()

    # --- learning -----------------------------------------------------------------------
    def _on_learning_switched(self, on: bool) -> None:
        self.settings.set("learn", on)
        self.learning.set_enabled(on)

    def _on_orientations(self, on: bool) -> None:
        self.settings.set("learn_all_orientations", on)
        self.learning.set_all_orientations(on)

    def _on_adopted(self, event) -> None:
        """The learner found a better model: use it; the session re-predicts what you did not touch."""
        text = event.describe()
        self.session.adopt_model(event.model, event.path, text.capitalize())
        self.learning_panel.show_adopted(text.capitalize())

    def _refresh_history(self) -> None:
        history = self.learning.history()
        if history is None:
            self.learning_panel.set_history([], None, 0)
            return
        ckpt = self.session.models.checkpoint
        self.learning_panel.set_history(history.entries(), str(ckpt) if ckpt else None, history.disk_bytes())

    def _refresh_corrections(self) -> None:
        project = self.session.project
        entries = (
            []
            if project is None
            else [e for e in project.images if e.state == "reviewed" and e.changed_fraction is not None]
        )
        entries.sort(key=lambda e: e.modified or "")
        self.learning_panel.corrections.set_values([e.changed_fraction for e in entries])

    # --- classes ------------------------------------------------------------------------
    def _class_edit(self, change) -> None:
        project = self.session.project
        if project is None:
            self.show_error("Open a project first: classes belong to a project.")
            return
        count = len(project.classes)
        try:
            change(project)
        except FcnGuiError as exc:
            self.show_error(str(exc))
            return
        if len(project.classes) != count:
            self.learning.stop()  # it starts again by itself, with a score layer per class
        if self.session.doc is not None:
            self.session.doc.set_classes(project.classes)
        self.class_panel.set_classes(project.classes)
        self.session.save_async()
        self._update_model_warning()

    def add_class(self) -> None:
        name, ok = QInputDialog.getText(self, "Add class", "Name of the new class:")
        if ok and name.strip():
            self._class_edit(lambda p: p.add_class(name))

    def rename_class(self, index: int) -> None:
        classes = self._classes()
        name, ok = QInputDialog.getText(self, "Rename class", "New name:", text=classes[index].name)
        if ok:
            self._class_edit(lambda p: p.rename_class(index, name))

    def recolor_class(self, index: int) -> None:
        current = QColor(*self._classes()[index].color)
        color = QColorDialog.getColor(current, self, f"Colour of {self._classes()[index].name}")
        if color.isValid():
            self._class_edit(lambda p: p.recolor_class(index, (color.red(), color.green(), color.blue())))

    def remove_class(self, index: int) -> None:
        project = self.session.project
        if project is None:
            return
        others = ["void (unlabelled)"] + [
            f"{i}: {c.name}" for i, c in enumerate(project.classes) if i != index
        ]
        target, ok = QInputDialog.getItem(
            self,
            "Remove class",
            f"Pixels of '{project.classes[index].name}' in every label become:",
            others,
            0,
            False,
        )
        if not ok:
            return
        remap = VOID if target == others[0] else int(target.split(":")[0])
        if (
            QMessageBox.question(
                self, "Remove class", f"Remove '{project.classes[index].name}' and rewrite every label?"
            )
            != QMessageBox.StandardButton.Yes
        ):
            return
        self.session.queue.cancel_all()
        self.session.queue.wait()
        current = self.session.doc.image_id if self.session.doc else None
        self.session.save_and_wait()
        self._class_edit(lambda p: p.remove_class(index, remap))
        if current is not None:
            self.session.doc = None
            self.session.show_image(current)

    # --- recent, dialogs, settings ------------------------------------------------------
    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for path in self.settings.recent():
            self.recent_menu.addAction(path, lambda p=path: self.open_paths([p]))
        if not self.settings.recent():
            self.recent_menu.addAction("(none yet)").setEnabled(False)

    def _last_dir(self) -> str:
        return self.settings.get("last_dir", str(Path.home()), str)

    def _remember_dir(self, path: str) -> None:
        p = Path(path)
        self.settings.set("last_dir", str(p if p.is_dir() else p.parent))

    def show_shortcuts(self) -> None:
        rows = [
            (act.text().replace("&", ""), act.shortcut().toString())
            for act in self.actions()
            if not act.shortcut().isEmpty() and not act.text().startswith("Class ")
        ]
        text = (
            "\n".join(f"{k:<12} {t}" for t, k in rows)
            + "\n1-9, 0       pick class 1-10\nWheel        zoom at cursor\nMiddle/Space-drag  pan"
        )
        box = QMessageBox(QMessageBox.Icon.Information, "Keyboard shortcuts", "", parent=self)
        box.setText(f"<pre>{text}</pre>")
        box.exec()

    def show_about(self) -> None:
        from core import __version__

        QMessageBox.about(
            self,
            "About fcn-gui",
            f"fcn-gui {__version__}\nSemantic-segmentation labelling with FCN-32s/16s/8s.",
        )

    # --- drag and drop, closing ---------------------------------------------------------
    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        self.autosave.stop()
        self.cancel_work()
        for thread in list(self._busy_threads):
            thread.wait()
        self.image_panel.stop_thumbnails()
        self.learning.stop()
        self.learning.wait()
        self.session.shutdown()
        self.settings.set("geometry", self.saveGeometry())
        self.settings.set("window_state", self.saveState())
        self.settings.set("brush_size", self.tools["brush"].size)
        self.settings.set("eraser_size", self.tools["eraser"].size)
        self.settings.set("erase_to_void", self.tools["eraser"].to_void)
        self.settings.set("opacity", self.opacity.value())
        self.settings.set("unsure_threshold", self.threshold.value())
        self.settings.set("predict_ahead", self.predict_ahead.isChecked())
        self.settings.set("least_confident_next", self.least_confident.isChecked())
        self.settings.sync()
        event.accept()
