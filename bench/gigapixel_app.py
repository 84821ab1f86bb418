"""The app on a whole-slide image, offscreen: first view, stalls while zooming and panning,
memory, a brush stroke and its save. Run by ``bench/gigapixel.py --part app`` (one process per
slide, so each one's peak memory is its own), or alone:

    python bench/gigapixel_app.py SLIDE.tif [--json]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FRAME_S = 0.016  # a 60 Hz pan: one move per frame
PAN_FRAMES = 240  # four seconds of panning
PAN_STEP = 40  # screen pixels per frame (a brisk drag)


def measure(slide: Path, trained: bool = True) -> dict:
    import psutil
    from PySide6.QtCore import QPointF, QRectF
    from PySide6.QtWidgets import QApplication

    from bench.gui_latency import stall_meter, stand_in_checkpoint, wait_for
    from fcn_gui.main_window import MainWindow
    from fcn_gui.settings import Settings

    app = QApplication.instance() or QApplication([])
    tmp = Path(tempfile.mkdtemp())
    os.environ["FCN_GUI_CONFIG_DIR"] = str(tmp / "config")
    folder = tmp / "slides"
    folder.mkdir()
    (folder / slide.name).symlink_to(slide.resolve())
    settings = Settings()
    if trained:  # the view is predicted as it moves (an untrained model predicts nothing)
        settings.set("checkpoint", str(stand_in_checkpoint(tmp)))
    window = MainWindow(settings)
    window.resize(1400, 900)
    window.show()
    wait_for(app, lambda: window.session.models.predictor is not None)
    canvas = window.canvas
    start = time.perf_counter()
    window.open_paths([folder])
    wait_for(app, lambda: window.session.doc is not None)
    canvas.repaint()
    first_view = time.perf_counter() - start
    doc = window.session.doc

    def sharp() -> bool:
        app.processEvents()
        return not doc.loader._wanted and all(doc.loader.get(k) is not None for k in visible_keys())

    def visible_keys():
        level = doc.slide.level_for(1 / canvas.scale)
        whole = canvas.rect()
        view = QRectF(
            canvas.to_image(QPointF(whole.topLeft())), canvas.to_image(QPointF(whole.bottomRight()))
        )
        view = view.intersected(QRectF(0, 0, doc.width, doc.height)).toAlignedRect()
        return doc._level_tiles(level, view)

    wait_for(app, sharp)
    sharp_s = time.perf_counter() - start
    # The learner's modules import once, a second after start-up (fcn_gui/preload.py): their
    # extension libraries load holding the interpreter lock. Measured after that, as a user
    # who opened the slide and looked at it; the first seconds are the gui_latency bench's.
    wait_for(app, lambda: window.preloader.started and "preload" not in window.session.runner.names())
    timer, gaps = stall_meter()
    timer.start(1)
    centre = QPointF(canvas.width() / 2, canvas.height() / 2)
    zoom_steps = 0
    while canvas.scale < 1:  # wheel clicks at the centre, 20 a second, from the whole slide to 100 %
        canvas.zoom_by(1.25, centre)
        zoom_steps += 1
        end = time.perf_counter() + 0.05
        while time.perf_counter() < end:
            app.processEvents()
    canvas.actual_size()
    for _ in range(PAN_FRAMES):
        canvas.offset -= QPointF(PAN_STEP, PAN_STEP / 3)
        canvas.update()
        end = time.perf_counter() + FRAME_S
        while time.perf_counter() < end:
            app.processEvents()
    timer.stop()
    stalls = sorted(gaps)
    pan_loaded = sum(1 for k in doc.loader.requested if k[0] == 0)
    # A brush stroke at 100 %, and the time until its tiles are on disk.
    window.select_tool("brush")
    window.set_current_class(1)
    from tests.gui.conftest import drag

    centre_px = canvas.to_image(centre)
    cx, cy = centre_px.x(), centre_px.y()
    t = time.perf_counter()
    drag(canvas, [(cx - 200 + 10 * i, cy + (i % 5) * 4) for i in range(41)])
    stroke_s = time.perf_counter() - t
    t = time.perf_counter()
    doc.flush()
    save_s = time.perf_counter() - t
    tiles = len(doc.store.on_disk())
    rss = psutil.Process().memory_info().rss / 1e9
    window.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        "side": doc.width,
        "first_view_s": first_view,
        "sharp_s": sharp_s,
        "zoom_steps": zoom_steps,
        "pan_frames": PAN_FRAMES,
        "tiles_loaded_panning": pan_loaded,
        "max_stall_ms": stalls[-1],
        "p99_stall_ms": stalls[int(len(stalls) * 0.99)],
        "median_gap_ms": statistics.median(stalls),
        "stroke_s": stroke_s,
        "stroke_save_s": save_s,
        "tiles_saved": tiles,
        "rss_end_gb": rss,
    }


def app_part(args, work: Path) -> dict:
    """One process per slide side: its figures and its own peak memory."""
    from bench.gigapixel import _run_measured, write_slide

    results = {}
    for side in args.app_sides:
        slide = work / f"slide_{side}.tif"
        made = write_slide(slide, side)
        if made:
            print(f"wrote {slide.name} ({side}x{side}, {slide.stat().st_size / 1e9:.2f} GB) in {made:.0f} s")
        _wall, peak, text = _run_measured([sys.executable, str(Path(__file__)), str(slide), "--json"])
        figures = json.loads(text.strip().splitlines()[-1])
        figures["peak_rss_gb"] = peak
        results[side] = figures
        print(
            f"app {side}x{side}: first view {figures['first_view_s']:.2f} s, "
            f"sharp {figures['sharp_s']:.2f} s; "
            f"zoom to 100 % ({figures['zoom_steps']} steps) and pan {figures['pan_frames']} frames "
            f"({figures['tiles_loaded_panning']} level-0 tiles loaded): longest stall "
            f"{figures['max_stall_ms']:.1f} ms, p99 {figures['p99_stall_ms']:.1f} ms; stroke "
            f"{figures['stroke_s'] * 1000:.0f} ms, saved in {figures['stroke_save_s'] * 1000:.0f} ms "
            f"({figures['tiles_saved']} tiles); memory peak {peak:.2f} GB",
            flush=True,
        )
    return results


def main() -> None:
    figures = measure(Path(sys.argv[1]), trained="--untrained" not in sys.argv)
    if "--json" in sys.argv:
        print(json.dumps(figures))
    else:
        print(figures)


if __name__ == "__main__":
    main()
