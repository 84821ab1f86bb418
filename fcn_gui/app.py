"""Starting the desktop app: the window first, torch and the model on a worker thread."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication


def run_app(args: list[str]) -> int:
    """Open the main window on ``args`` (paths); return the exit code."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("fcn-gui")
    app.setOrganizationName("fcn-gui")
    from .main_window import MainWindow

    window = MainWindow()
    window.show()
    if args:
        window.open_paths(args)
    return app.exec()
