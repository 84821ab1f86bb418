"""Every menu command and toolbar button as one table, and the menus and toolbar built from it.

The window supplies a slot per key; adding a command is one row here plus its slot.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence, QUndoGroup
from PySide6.QtWidgets import QMainWindow, QMenu, QToolBar

from .resources import icon

Key = QKeySequence.StandardKey

# key: (text, shortcut, icon, tooltip); the tooltip defaults to the text
ACTIONS: dict[str, tuple[str, object, str | None, str]] = {
    "open_images": ("Open Image(s)…", Key.Open, "open", ""),
    "open_folder": ("Open Folder…", "Ctrl+Shift+O", "folder", ""),
    "open_project": ("Open Project…", None, None, ""),
    "import": ("Import Annotations (VOC, labelme, masks)…", None, None, ""),
    "rescan": ("Rescan Image Folder", "F5", None, "Add the images new in the folder, mark those gone"),
    "export": ("Export VOC…", "Ctrl+E", "export", ""),
    "quit": ("Quit", Key.Quit, None, ""),
    "prev": ("Previous Image", "Left", "prev", ""),
    "next": ("Next Image", "Right", "next", ""),
    "reviewed": ("Mark Reviewed", "R", "reviewed", "Mark the label reviewed: a training target"),
    "predict": ("Predict Image", "Ctrl+P", "predict", ""),
    "predict_all": ("Predict All Not Reviewed", "Ctrl+Shift+P", "predict_all", ""),
    "cancel": ("Cancel Background Work", "Ctrl+.", "cancel", "Cancel predictions, imports and exports"),
    "load_checkpoint": ("Load Checkpoint…", None, None, ""),
    "download": ("Download Pretrained Weights…", None, None, ""),
    "fit": ("Fit to Window", "Ctrl+0", "fit", ""),
    "actual": ("Actual Size (100%)", "Ctrl+1", "zoom100", ""),
    "zoom_in": ("Zoom In", Key.ZoomIn, None, ""),
    "zoom_out": ("Zoom Out", Key.ZoomOut, None, ""),
    "overlay": ("Show Overlay", "O", None, ""),
    "unsure": ("Highlight Unsure Pixels", "U", None, ""),
    "bigger": ("Bigger Brush", "]", None, ""),
    "smaller": ("Smaller Brush", "[", None, ""),
    "shortcuts": ("Keyboard Shortcuts", None, None, ""),
    "about": ("About fcn-gui", None, None, ""),
}
CHECKABLE = ("overlay", "unsure")

# None is a separator; "tools" expands to the tool actions, "recent" to the Open Recent menu
MENUS: dict[str, list[str | None]] = {
    "&File": [
        "open_images",
        "open_folder",
        "open_project",
        "import",
        "recent",
        None,
        "rescan",
        "export",
        None,
        "quit",
    ],
    "&Edit": ["undo", "redo", None, "reviewed"],
    "&View": ["fit", "actual", "zoom_in", "zoom_out", None, "overlay", "unsure"],
    "&Tools": ["tools", None, "bigger", "smaller"],
    "&Model": ["predict", "predict_all", "cancel", None, "load_checkpoint", "download"],
    "&Help": ["shortcuts", "about"],
}
TOOLBAR: list[str | None] = [
    "open_folder", "export", None, "prev", "next", "reviewed", None, "undo", "redo", None,
    "tools", None, "predict", "predict_all", "cancel", None, "fit", "actual",
]  # fmt: skip


def make_action(
    window: QMainWindow, text: str, slot: Callable, shortcut=None, icon_name: str | None = None, tip: str = ""
) -> QAction:
    """A window-wide action; its tooltip names its shortcut."""
    action = QAction(text, window)
    if icon_name:
        action.setIcon(icon(icon_name))
    if shortcut:
        action.setShortcut(QKeySequence(shortcut))
    action.setToolTip(f"{tip or text} ({action.shortcut().toString()})" if shortcut else tip or text)
    action.triggered.connect(slot)
    window.addAction(action)
    return action


def make_actions(window: QMainWindow, slots: dict[str, Callable]) -> dict[str, QAction]:
    """One ``QAction`` per row of ``ACTIONS``, triggering ``slots[key]``."""
    actions = {}
    for key, (text, shortcut, icon_name, tip) in ACTIONS.items():
        actions[key] = make_action(window, text, slots[key], shortcut, icon_name, tip)
        actions[key].setCheckable(key in CHECKABLE)
    actions["overlay"].setChecked(True)
    return actions


def make_menus_and_toolbar(
    window: QMainWindow, actions: dict[str, QAction], tool_keys: list[str]
) -> tuple[QMenu, QToolBar]:
    """Fill the menu bar and the main toolbar; returns the (empty) Open Recent menu and the bar."""
    recent = None

    def fill(target, keys) -> None:
        nonlocal recent
        for key in keys:
            if key is None:
                target.addSeparator()
            elif key == "tools":
                for tool in tool_keys:
                    target.addAction(actions[f"tool_{tool}"])
            elif key == "recent":
                recent = target.addMenu("Open &Recent")
            else:
                target.addAction(actions[key])

    for title, keys in MENUS.items():
        fill(window.menuBar().addMenu(title), keys)
    bar = QToolBar("Main", window)
    bar.setObjectName("toolbar-main")
    bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
    fill(bar, TOOLBAR)
    window.addToolBar(bar)
    return recent, bar


def make_undo_actions(window: QMainWindow, group: QUndoGroup) -> dict[str, QAction]:
    """Undo and Redo of whichever image is on the canvas."""
    actions = {}
    for key, text, shortcuts, create in (
        ("undo", "Undo", [QKeySequence(Key.Undo)], group.createUndoAction),
        ("redo", "Redo", [QKeySequence("Ctrl+Shift+Z"), QKeySequence(Key.Redo)], group.createRedoAction),
    ):
        actions[key] = create(window, text)
        actions[key].setShortcuts(shortcuts)
        actions[key].setIcon(icon(key))
    return actions


def make_tool_actions(window: QMainWindow, tools: dict, select: Callable[[str], None]) -> dict[str, QAction]:
    """One checkable action per painting tool (only one checked at a time), as ``tool_<name>``."""
    group = QActionGroup(window)
    actions = {}
    for name, tool in tools.items():
        action = make_action(window, tool.label, lambda _=False, n=name: select(n), tool.shortcut, name)
        action.setCheckable(True)
        group.addAction(action)
        actions[f"tool_{name}"] = action
    return actions


def make_class_hotkeys(window: QMainWindow, keys: str, pick: Callable[[int], None]) -> None:
    """Keys 1..9, 0 pick classes 1..10."""
    for i, key in enumerate(keys):
        make_action(window, f"Class {i + 1}", lambda _=False, i=i: pick(i), key)


def fill_recent(menu: QMenu, paths: list[str], open_path: Callable[[str], None]) -> None:
    """The Open Recent menu, filled as it opens."""
    menu.clear()
    for path in paths:
        menu.addAction(path, lambda p=path: open_path(p))
    if not paths:
        menu.addAction("(none yet)").setEnabled(False)
