"""What re-predicting a folder after each adopted model costs the learner; figures, not a test.

    python bench/repredict_cost.py [--images 40] [--seconds 60]

The real window (offscreen) opens a folder of ``--images`` 512x512 microscopy images (the
nuclei image turned and flipped), the first is labelled and marked reviewed, and the
continuous learner runs for ``--seconds`` after its first adopted model. Printed for the
app's policy (while the learner trains, only the current and next images are predicted
again at once; the others when opened or when the learner rests) and for predicting every
unedited image again after each adoption: the learner's steps, the adoptions, and how many
predictions ran meanwhile.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
from gui_latency import wait_for  # noqa: E402
from PIL import Image  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402
from session import cpu_name  # noqa: E402


def folder_of(path: Path, count: int) -> np.ndarray:
    """``count`` turned and flipped copies of the nuclei image; returns the first one's truth."""
    from core.io.images import read_image

    path.mkdir()
    image = read_image(ROOT / "tests/data/nuclei/nuclei.tif")
    for i in range(count):
        turned = np.rot90(image, i % 4)
        Image.fromarray(np.ascontiguousarray(turned[:, ::-1] if i // 4 % 2 else turned)).save(
            path / f"cells{i:03d}.png"
        )
    return (np.asarray(Image.open(ROOT / "tests/data/nuclei/nuclei_instances.tif")) > 0).astype(np.uint8)


def measure(app: QApplication, folder: Path, truth: np.ndarray, seconds: float) -> tuple[int, int, int]:
    """Learner steps, adoptions and predictions in ``seconds`` after the first adopted model."""
    from fcn_gui.main_window import MainWindow

    window = MainWindow()
    window.resize(1400, 900)
    window.show()
    wait_for(app, lambda: window.session.models.predictor is not None)
    window.open_paths([folder])
    session, learning = window.session, window.learning
    wait_for(app, lambda: session.doc is not None and not session.queue.busy)
    session.doc.write_patch(0, 0, truth * 15)
    events, adopted, predicted = [], [], []
    learning.event.connect(events.append)
    learning.adopted.connect(adopted.append)
    session.queue.predicted.connect(lambda job, _: predicted.append(job.image_id))
    window.act["reviewed"].trigger()
    wait_for(app, lambda: bool(adopted))
    steps, done, first = events[-1].step, len(predicted), len(adopted)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.005)
    result = events[-1].step - steps, len(adopted) - first, len(predicted) - done
    window.close()
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=40)
    p.add_argument("--seconds", type=float, default=60.0)
    args = p.parse_args()
    app = QApplication.instance() or QApplication([])
    tmp = Path(tempfile.mkdtemp())
    os.environ["FCN_GUI_CONFIG_DIR"] = str(tmp / "config")
    import fcn_gui.session

    print(
        f"CPU: {cpu_name()}; {args.images} images of 512x512, {args.seconds:.0f} s after the first adoption"
    )
    policies = {
        "the next images at once, the others later (the app)": fcn_gui.session.PREDICT_AT_ONCE,
        "every unedited image at once": 10**9,
    }
    for i, (name, at_once) in enumerate(policies.items()):
        fcn_gui.session.PREDICT_AT_ONCE = at_once
        truth = folder_of(tmp / f"cells{i}", args.images)
        steps, adoptions, predictions = measure(app, tmp / f"cells{i}", truth, args.seconds)
        print(
            f"{name}: {steps} learner steps ({steps / args.seconds:.1f}/s), {adoptions} adoptions, "
            f"{predictions} predictions meanwhile",
            flush=True,
        )


if __name__ == "__main__":
    main()
