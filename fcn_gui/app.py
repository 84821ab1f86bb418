"""Starting the desktop app: the window first, torch and the model on a worker thread."""

from __future__ import annotations

import os
import signal
import sys
import time

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

SMOKE_ENV = "FCN_GUI_SMOKE_TEST"  # set by `make dist-check`: open, predict, report, quit
LAUNCH_ENV = "FCN_GUI_T0"  # the launcher's time.time() just before it started this process


def run_app(args: list[str]) -> int:
    """Open the main window on ``args`` (paths); return the exit code."""
    started = float(os.environ.get(LAUNCH_ENV) or time.time())
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("fcn-gui")
    app.setOrganizationName("fcn-gui")
    from .main_window import MainWindow

    window = MainWindow()
    window.show()
    app.processEvents()
    smoke = bool(os.environ.get(SMOKE_ENV))
    if smoke:
        print(f"window shown after {time.time() - started:.2f} s", flush=True)
        _quit_when_predicted(window, started)
    if args:
        window.open_paths(args)
    _close_on_signals(window)
    return app.exec()


def _close_on_signals(window) -> None:
    """Ctrl+C in the terminal or a plain ``kill`` closes the window as Quit does: work is saved,
    the learner keeps what it learnt. Qt's C++ loop lets Python see signals only between
    events, so a timer wakes the interpreter a few times a second."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: window.close())
    timer = QTimer(window)
    timer.timeout.connect(lambda: None)
    timer.start(250)


def _quit_when_predicted(window, started: float) -> None:
    """Smoke test: quit with code 0 once the first image has its prediction."""

    def check() -> None:
        project = window.session.project
        if project is not None and project.counts()["predicted"]:
            print(f"first prediction shown after {time.time() - started:.2f} s", flush=True)
            window.close()
            QApplication.instance().exit(0)

    timer = QTimer(window)
    timer.timeout.connect(check)
    timer.start(100)
