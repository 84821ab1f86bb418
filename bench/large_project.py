"""A project of many images in the real window (offscreen): does its size show? Prints figures.

    python bench/large_project.py [--sizes 1000 10000 100000] [--folder /tmp/fcn-bench]

For each size N it makes (once, kept in ``--folder``) N tiny JPEGs of 128x96 in subfolders of
1,000, then drives the window as a user would: opens the folder, waits for the first image,
switches images 50 times (Next), marks 20 reviewed, changes the state filter, searches a
name, waits through an autosave, quits and opens the folder again. A 1 ms timer records every
gap of the event loop meanwhile. Printed per N: time to the first image shown, time until the
whole folder is listed, the longest event-loop stall and its 99th percentile, the median
image switch, the app's resident memory over the same window with no project, the time to
show the first image on reopening, and the database's size. Learning is off (the project's own
costs are measured, not the learner's); the model is the U-Net the app starts with, marked
trained so that it predicts (``stand_in_checkpoint``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
from PIL import Image  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from bench.gui_latency import stall_meter, stand_in_checkpoint  # noqa: E402
from bench.session import cpu_name  # noqa: E402


def make_folder(root: Path, count: int) -> Path:
    """``count`` JPEGs of 128x96 in subfolders of 1,000 (made once; a marker says it is complete)."""
    folder = root / f"images-{count}"
    if (folder / ".complete").exists():
        return folder
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    for i in range(count):
        sub = folder / f"part{i // 1000:03d}"
        if i % 1000 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        pixels = np.roll(base, i % 97, axis=1)
        Image.fromarray(pixels).save(sub / f"img{i:06d}.jpg", quality=80)
    (folder / ".complete").write_text("")
    return folder


class Clock:
    """Runs the event loop until a condition holds, as the window's user would wait."""

    def __init__(self, app: QApplication) -> None:
        self.app = app

    def until(self, condition, timeout: float = 1800.0) -> float:
        started = time.monotonic()
        while not condition():
            self.app.processEvents()
            time.sleep(0.001)
            if time.monotonic() - started > timeout:
                raise TimeoutError
        return time.monotonic() - started


def run(count: int, root: Path) -> dict:
    from fcn_gui.main_window import MainWindow
    from fcn_gui.settings import Settings

    app = QApplication.instance() or QApplication([])
    clock = Clock(app)
    folder = make_folder(root, count)
    project_dir = folder / "fcn-gui-project"
    if project_dir.exists():
        import shutil

        shutil.rmtree(project_dir)
    config = Path(tempfile.mkdtemp())
    os.environ["FCN_GUI_CONFIG_DIR"] = str(config)
    process = psutil.Process()
    checkpoint = stand_in_checkpoint(config)

    def window_ready() -> MainWindow:
        settings = Settings()
        settings.set("learn", False)
        settings.set("checkpoint", str(checkpoint))
        window = MainWindow(settings)
        window.resize(1200, 800)
        window.show()
        clock.until(lambda: window.session.models.predictor is not None)
        clock.until(lambda: window.preloader.started and not window.session.runner.names(), timeout=60)
        return window

    window = window_ready()
    baseline = process.memory_info().rss
    timer, gaps = stall_meter()
    timer.start(1)
    session = window.session
    started = time.monotonic()
    window.open_paths([folder])
    first = clock.until(lambda: session.doc is not None)
    clock.until(lambda: session.images.rowCount() == count)
    listed = time.monotonic() - started
    clock.until(lambda: not any(name.startswith("Scanning") for name in session.runner.names()))
    switches = []
    for _ in range(50):
        before = session.doc.image_id
        t0 = time.monotonic()
        window.go(1)
        clock.until(lambda before=before: session.doc is not None and session.doc.image_id != before)
        switches.append(time.monotonic() - t0)
    for _ in range(20):
        before = session.doc.image_id
        window.act["reviewed"].trigger()
        window.go(1)
        clock.until(lambda before=before: session.doc is not None and session.doc.image_id != before)
    panel = window.image_panel
    panel.filter.setCurrentText("Reviewed")
    clock.until(lambda: session.images.rowCount() == 20)
    panel.filter.setCurrentText("All images")
    panel.search.setText(f"img{count - 7:06d}")
    clock.until(lambda: session.images.rowCount() == 1, timeout=60)
    panel.search.setText("")
    clock.until(lambda: session.images.rowCount() == count, timeout=60)
    window.autosave.timeout.emit()
    clock.until(lambda: not session.saver.busy)
    clock.until(lambda: not session.runner.names() and not session.queue.busy, timeout=120)
    memory = process.memory_info().rss - baseline
    timer.stop()
    window.close()
    window = window_ready()
    t0 = time.monotonic()
    window.open_paths([folder])
    clock.until(lambda: window.session.doc is not None)
    reopen = time.monotonic() - t0
    clock.until(lambda: not window.session.runner.names() and not window.session.queue.busy, timeout=600)
    window.close()
    stalls = sorted(gaps)
    return {
        "images": count,
        "first image s": first,
        "listed s": listed,
        "longest stall ms": stalls[-1],
        "p99 stall ms": stalls[int(0.99 * (len(stalls) - 1))],
        "median switch ms": statistics.median(switches) * 1000,
        "memory MB": memory / 2**20,
        "reopen s": reopen,
        "database MB": (project_dir / "project.db").stat().st_size / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "fcn-bench")
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}")
    rows = [run(n, args.folder) for n in args.sizes]
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + " --- |" * len(keys))
    for row in rows:
        cells = (f"{row[k]:.3g}" if isinstance(row[k], float) else str(row[k]) for k in keys)
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
