"""The window's docks: the image list on the left, classes, view, model and learning on the right."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow, QWidget

Area = Qt.DockWidgetArea


def add_docks(window: QMainWindow, panels: dict[str, tuple[str, QWidget]]) -> dict[str, QDockWidget]:
    """Dock each ``name: (title, widget)``; "images" goes left, the rest right, with "model"
    and "training" sharing one tabbed place (learning in front)."""
    docks = {}
    for name, (title, widget) in panels.items():
        dock = QDockWidget(title, window)
        dock.setObjectName(f"dock-{name}")  # saveState/restoreState find docks by this name
        dock.setWidget(widget)
        features = QDockWidget.DockWidgetFeature
        dock.setFeatures(features.DockWidgetMovable | features.DockWidgetFloatable)
        window.addDockWidget(Area.LeftDockWidgetArea if name == "images" else Area.RightDockWidgetArea, dock)
        docks[name] = dock
    window.tabifyDockWidget(docks["model"], docks["training"])
    docks["training"].raise_()
    return docks
