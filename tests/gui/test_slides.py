"""Whole-slide images in the window: drawn from the pyramid level the zoom needs, only visible
tiles loaded, painted tile by tile with each stroke's tiles saved as it ends (and surviving
``kill -9``), undo keeping working."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PySide6.QtCore import QPointF, QRect, QRectF

from core.io.labels import VOID
from core.store.label_tiles import LabelTiles
from tests.gui.conftest import drag

SIDE = 8192  # the smallest image the app opens as a slide (64 megapixels)
ROOT = Path(__file__).parents[2]


def write_slide(path: Path, side: int = SIDE) -> None:
    """A tiled pyramidal BigTIFF of JPEG tiles whose colour tells the tile: quick to write."""
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        levels = 1
        while side >> (levels - 1) > 512:
            levels += 1
        for level in range(levels):
            n = side >> level
            count = -(-n // 512)

            def tiles(count=count, level=level):
                for row in range(count):
                    for col in range(count):
                        tile = np.empty((512, 512, 3), np.uint8)
                        tile[:] = ((row * 37) % 256, (col * 53) % 256, (level * 40) % 256)
                        yield tile

            extra = {"subifds": levels - 1} if level == 0 else {"subfiletype": 1}
            tif.write(
                tiles(), shape=(n, n, 3), dtype=np.uint8, tile=(512, 512), photometric="rgb",
                compression="jpeg", **extra,
            )  # fmt: skip


@pytest.fixture
def slide_folder(tmp_path) -> Path:
    folder = tmp_path / "slides"
    folder.mkdir()
    write_slide(folder / "ortho.tif")
    return folder


def visible_rect(canvas) -> QRectF:
    top_left = canvas.to_image(canvas.rect().topLeft().toPointF())
    bottom_right = canvas.to_image(canvas.rect().bottomRight().toPointF())
    return QRectF(top_left, bottom_right)


def test_a_slide_is_drawn_from_the_level_its_zoom_needs_and_only_visible_tiles_load(
    make_window, slide_folder, qtbot
):
    from fcn_gui.slide_document import SlideDocument

    window = make_window(slide_folder)
    doc, canvas = window.session.doc, window.canvas
    assert isinstance(doc, SlideDocument) and (doc.width, doc.height) == (SIDE, SIDE)
    loader = doc.loader
    qtbot.waitUntil(lambda: bool(loader.requested), timeout=10000)
    qtbot.wait(300)
    fitted = set(loader.requested)
    assert {level for level, _r, _c in fitted} == {doc.slide.level_for(1 / canvas.scale)} != {0}
    assert len(fitted) <= 4  # the whole slide at fit: a level of at most 2 x 2 tiles
    loader.requested.clear()
    canvas.actual_size()  # 100 %, at the slide's centre
    qtbot.waitUntil(lambda: len(loader.requested) >= 2, timeout=10000)
    qtbot.wait(300)
    view = visible_rect(canvas)
    for level, row, col in loader.requested:
        assert level == 0
        tile = QRectF(col * 512, row * 512, 512, 512)
        assert tile.intersects(view), (row, col)  # nothing outside the window is decoded
    assert len(set(loader.requested)) <= (canvas.width() // 512 + 2) * (canvas.height() // 512 + 2)
    qtbot.waitUntil(lambda: all(loader.get(k) is not None for k in loader.requested), timeout=10000)
    shot = canvas.grab().toImage()
    for _level, row, col in loader.requested:  # each shows its own tile's colour, to its corners
        for x, y in ((col * 512 + 2, row * 512 + 2), (col * 512 + 509, row * 512 + 509)):
            p = canvas.to_widget_rect(QRect(x, y, 1, 1)).center()
            if not canvas.rect().contains(p):
                continue
            colour = shot.pixelColor(p)
            assert abs(colour.red() - (row * 37) % 256) < 8 and abs(colour.green() - (col * 53) % 256) < 8
            assert colour.blue() < 8  # level 0's, not the thumbnail's


def test_a_stroke_on_a_slide_saves_only_its_tiles_and_undo_and_reopening_keep_it(
    make_window, slide_folder, qtbot
):
    window = make_window(slide_folder)
    doc, canvas = window.session.doc, window.canvas
    canvas.actual_size()
    window.select_tool("brush")
    window.view_panel.brush_size.setValue(9)
    window.set_current_class(15)
    view = visible_rect(canvas)
    x0 = (int(view.left()) // 512 + 1) * 512  # across the first tile border in the window
    assert view.left() < x0 - 20 and x0 + 20 < view.right()
    y = (int(view.top()) // 512 + 1) * 512 + 100  # inside one row of tiles
    assert y < view.bottom()
    drag(canvas, [(x0 - 20, y), (x0 + 20, y)])
    doc.flush()
    store = LabelTiles(window.session.project.slide_tiles(window.session.project.images[0]).folder)
    row = y // 512
    assert store.on_disk() == [(row, x0 // 512 - 1), (row, x0 // 512)]  # those two tiles only
    left = store.read(row, x0 // 512 - 1)
    assert left[0][y % 512, 511] == 15 and left[1][y % 512, 511] and not left[1][0, 0]
    assert doc.class_at(x0 - 20, y) == 15 and doc.class_at(x0 + 20, y) == 15
    window.act["undo"].trigger()
    doc.flush()
    assert doc.class_at(x0, y) == VOID and store.read(row, x0 // 512)[0][y % 512, 0] == VOID
    window.act["redo"].trigger()
    doc.flush()
    assert store.read(row, x0 // 512)[0][y % 512, 0] == 15
    window.close()
    again = make_window(slide_folder)
    assert again.session.doc.class_at(x0, y) == 15
    assert 15 in again.session.doc.overview[y // again.session.doc.step]  # drawn zoomed out too
    reviewed = []
    again.session.reviewed.connect(lambda image_id, label: reviewed.append(image_id))
    again.act["reviewed"].trigger()  # the tiles painted in become training targets
    project = again.session.project
    assert reviewed == ["ortho"] and project.entry("ortho").state == "reviewed"


def test_slide_tiles_survive_kill_9_mid_painting(tmp_path, slide_folder):
    """A process painting stroke after stroke is killed at once: every tile on disk is whole
    and holds a finished stroke."""
    tiles = tmp_path / "tiles"
    script = textwrap.dedent(
        f"""
        import sys
        from PySide6.QtWidgets import QApplication
        import numpy as np
        from core.io.labels import default_classes
        from core.io.slides import open_slide
        from core.store.label_tiles import LabelTiles
        from fcn_gui.slide_document import SlideDocument

        app = QApplication([])
        slide = open_slide({str(slide_folder / "ortho.tif")!r})
        store = LabelTiles({str(tiles)!r})
        doc = SlideDocument("ortho", slide, store, default_classes(), slide.thumbnail(64))
        mask = np.ones((700, 700), bool)
        for stroke in range(10_000):
            doc.apply_mask(300, 300, mask, 1 + stroke % 20, "Brush")
            if stroke % 5 == 0:
                doc.flush()
                print(stroke, flush=True)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    for _ in range(4):  # some strokes are on disk, more are being written
        proc.stdout.readline()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = LabelTiles(tiles)
    assert store.on_disk() == [(0, 0), (0, 1), (1, 0), (1, 1)]  # rows and columns 300..999
    for key in store.on_disk():
        label, painted = store.read(*key)  # whole: a damaged tile would be set aside
        values = np.unique(label[painted])
        assert len(values) == 1 and 1 <= values[0] <= 20  # one whole stroke's class
        assert (label[~painted] == VOID).all()
    assert not store.damaged and not list(tiles.glob("*.damaged"))


def test_a_slide_is_predicted_in_view_first_around_the_users_strokes(make_window, slide_folder, qtbot):
    from fcn_gui.slide_prediction import BLOCK

    window = make_window(slide_folder)  # a (stand-in) trained model: it predicts
    session, canvas = window.session, window.canvas
    doc = session.doc
    qtbot.wait(500)
    assert not doc.tiles  # the whole slide in view: nothing is predicted (64 x 64 megapixels)
    canvas.actual_size()
    canvas.zoom_by(1.0, QPointF(0, 0))
    canvas.offset = QPointF(canvas.width() / 2 - 1.5 * BLOCK, canvas.height() / 2 - 1.5 * BLOCK)
    canvas.zoom_by(1.0)  # the view settles inside block (1, 1): one block to wait for
    view = canvas.visible_image_rect()
    window.select_tool("brush")
    window.view_panel.brush_size.setValue(5)
    window.set_current_class(3)
    cx, cy = view.center().x(), view.center().y()
    drag(canvas, [(cx - 30, cy), (cx + 30, cy)])
    in_view = {
        (r, c)
        for r in range(view.top() // BLOCK, view.bottom() // BLOCK + 1)
        for c in range(view.left() // BLOCK, view.right() // BLOCK + 1)
    }
    qtbot.waitUntil(lambda: in_view <= session.slide_predictions.done.keys(), timeout=120000)
    order = list(session.slide_predictions.done)
    assert set(order[: len(in_view)]) == in_view  # the blocks in view came first
    assert doc.class_at(cx, cy) == 3  # the stroke is kept
    predicted = [doc.class_at(x, cy + 40) for x in range(cx - 100, cx + 100, 10)]
    assert all(v != VOID for v in predicted)  # the rest filled in
    assert session.project.entry(doc.image_id).state == "edited"  # the user's stroke made it edited
    doc.flush()
    row, col = (cy + 40) // 512, cx // 512
    label, painted = LabelTiles(session.project.slide_tiles(session.project.images[0]).folder).read(row, col)
    assert label[(cy + 40) % 512, cx % 512] != VOID and not painted[(cy + 40) % 512, cx % 512]
    assert session.runner.names().count("slide-predict") == 1  # spreading around the view
    session.slide_predictions.start()  # the view moved while a block ran: a restart is due...
    window.close()  # ...and the app quits: nothing starts, nothing raises
    assert "slide-predict" not in session.runner.names()


def test_a_vendor_format_opens_as_a_slide_through_openslide(make_window, tmp_path, qtbot):
    folder = tmp_path / "scans"
    folder.mkdir()
    pixels = np.zeros((600, 700, 3), np.uint8)
    pixels[:, :, 0] = 200
    with tifffile.TiffWriter(folder / "scan.ndpi") as tif:  # OpenSlide's generic-tiff, by content
        tif.write(pixels, tile=(256, 256), compression="zlib", photometric="rgb")
    window = make_window(folder)
    doc = window.session.doc
    assert type(doc.slide).__name__ == "_OpenSlide" and (doc.width, doc.height) == (700, 600)
    qtbot.waitUntil(lambda: bool(doc.loader.requested), timeout=10000)
    key = doc.loader.requested[0]
    qtbot.waitUntil(lambda: doc.loader.get(key) is not None, timeout=10000)
    colour = doc.loader.get(key).pixelColor(5, 5)
    assert (colour.red(), colour.green(), colour.blue()) == (200, 0, 0)


def test_strokes_on_a_slide_fill_in_the_region_around_them_before_any_review(
    make_window, slide_folder, qtbot
):
    from core.training.learner import LearnerConfig
    from fcn_gui.slide_document import LIVE_SIDE

    window = make_window(slide_folder, with_model=False, learn=True)  # random weights: nothing predicted
    session, learning = window.session, window.learning
    learning.config = LearnerConfig(crop=32, batch_size=2, device="cpu", precision="fp32")
    doc = session.doc
    qtbot.wait(300)
    assert not doc.tiles and not learning.running
    mask = np.zeros((20, 60), bool)
    mask[5:15] = True
    doc.apply_mask(2048 + 440, 2048 + 420, mask, 3, "Brush")  # tile (4, 4), near its corner
    assert doc.live_region() == (2048, 2048, LIVE_SIDE, LIVE_SIDE)  # the 2 x 2 tiles around it
    doc.apply_mask(2048 + 440, 2560 + 40, mask, 0, "Brush")  # tile (4, 5), another colour
    assert doc.live_region() == (2048, 2048, LIVE_SIDE, LIVE_SIDE)  # still in it: the same region
    region = {(4, 4), (4, 5), (5, 4), (5, 5)}
    painted = {key: (doc.tiles[key].label.copy(), doc.tiles[key].painted.copy()) for key in doc.tiles}
    qtbot.waitUntil(lambda: learning.running, timeout=10000)  # the region read, its strokes start it

    def filled() -> bool:
        return set(doc.tiles) == region and all((doc.tiles[k].label != VOID).all() for k in region)

    qtbot.waitUntil(filled, timeout=60000)
    for key, (label, mask_painted) in painted.items():  # painted pixels never change
        assert np.array_equal(doc.tiles[key].label[mask_painted], label[mask_painted])
        assert np.array_equal(doc.tiles[key].painted, mask_painted)
    for key, value in (((4, 4), 3), ((4, 5), 0)):  # each stroke's tile takes its class
        tile = doc.tiles[key]
        assert np.mean(tile.label[~tile.painted] == value) > 0.8, key
    assert session.project.counts()["reviewed"] == 0
    assert session.project.entry(doc.image_id).state == "edited"
    doc.flush()
    store = LabelTiles(session.project.slide_tiles(session.project.images[0]).folder)
    label, saved_painted = store.read(4, 5)
    assert (label != VOID).all() and np.array_equal(saved_painted, doc.tiles[(4, 5)].painted)  # saved
