"""GUI test set-up: settings sandboxed per test, a window on a folder of small real photos."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

SAMPLES = Path(__file__).parents[2] / "resources" / "samples"


@pytest.fixture(autouse=True)
def sandbox_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("FCN_GUI_CONFIG_DIR", str(tmp_path / "config"))
    return tmp_path / "config"


@pytest.fixture
def photo_folder(tmp_path) -> Path:
    """The four sample photos shrunk to about 96 px wide."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for src in sorted(p for p in SAMPLES.iterdir() if p.is_file()):  # not the project `make run` makes
        with Image.open(src) as img:
            img = img.convert("RGB")
            img.thumbnail((96, 96))
            img.save(folder / src.name)
    return folder


@pytest.fixture
def make_window(qtbot, unet_checkpoint, sandbox_settings):
    """Build a ``MainWindow`` whose model is the small U-Net checkpoint; closes it at the end."""
    from fcn_gui.main_window import MainWindow
    from fcn_gui.settings import Settings

    windows = []

    def make(folder: Path | None = None, *, with_model: bool = True, learn: bool = False):
        settings = Settings()
        settings.set("learn", learn)  # background training only in the tests about it
        if with_model:
            settings.set("checkpoint", str(unet_checkpoint))
        window = MainWindow(settings)
        qtbot.addWidget(window)
        window.resize(1000, 700)
        window.show()
        qtbot.waitUntil(lambda: window.session.models.predictor is not None, timeout=30000)
        if folder is not None:
            window.open_paths([folder])
            qtbot.waitUntil(lambda: window.session.doc is not None, timeout=10000)
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()


def wait_idle(qtbot, window, timeout: int = 30000) -> None:
    """Until no prediction is queued or running, and the workers that change the project after
    one (the label writes, the thumbnails with the sizes read from their headers) are done."""
    s = window.session
    qtbot.waitUntil(
        lambda: not (s.queue.busy or s.queue.pending or s.saver.busy or s.images.thumbnails.busy),
        timeout=timeout,
    )


def widget_point(canvas, x: float, y: float) -> QPointF:
    """The canvas point showing image pixel (x, y)'s centre."""
    return QPointF(x + 0.5, y + 0.5) * canvas.scale + canvas.offset


def send_mouse(canvas, kind, point: QPointF, button=Qt.MouseButton.LeftButton, buttons=None) -> None:
    buttons = buttons if buttons is not None else button
    event = QMouseEvent(
        kind,
        point,
        canvas.mapToGlobal(QPoint(int(point.x()), int(point.y()))),
        button,
        buttons,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(canvas, event)


def drag(canvas, pixels: list[tuple[float, float]]) -> None:
    """Press at the first image pixel, move through the rest with the button held, release."""
    points = [widget_point(canvas, x, y) for x, y in pixels]
    send_mouse(canvas, QEvent.Type.MouseButtonPress, points[0])
    for p in points[1:]:
        send_mouse(canvas, QEvent.Type.MouseMove, p, Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton)
    send_mouse(
        canvas, QEvent.Type.MouseButtonRelease, points[-1], Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    )


def click(canvas, x: float, y: float, double: bool = False) -> None:
    p = widget_point(canvas, x, y)
    send_mouse(canvas, QEvent.Type.MouseButtonPress, p)
    send_mouse(canvas, QEvent.Type.MouseButtonRelease, p, Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton)
    if double:
        send_mouse(canvas, QEvent.Type.MouseButtonDblClick, p)
