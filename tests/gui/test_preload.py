"""What the first review and the first flood fill need is imported ahead, on a worker, once
the first predictions are done.

Imported at the first review on the GUI thread, the learner's modules froze the window for
1.4-2.2 s. Checked in a fresh process: the test process has imported everything already.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).parents[2]

SCRIPT = textwrap.dedent(
    """
    import gc, json, sys, threading, time

    class Spy:  # records which thread first imports each watched module, and what ran then
        on_gui_thread = {}
        predicting = []
        session = None

        def find_spec(self, name, path=None, target=None):
            if name in ("core.training.learner", "scipy.ndimage"):
                self.on_gui_thread[name] = threading.current_thread() is threading.main_thread()
                queue = Spy.session.queue
                self.predicting.append(queue.busy or bool(queue.pending))
            return None

    sys.meta_path.insert(0, Spy())
    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    from fcn_gui.main_window import MainWindow
    from fcn_gui.settings import Settings

    settings = Settings()
    settings.set("checkpoint", sys.argv[1])
    window = MainWindow(settings)
    window.show()
    window.open_paths([sys.argv[2]])
    session = Spy.session = window.session
    end = time.monotonic() + 120
    while time.monotonic() < end and not (
        "core.training.learner" in sys.modules and not session.runner.names() and not session.queue.busy
    ):
        app.processEvents()
        time.sleep(0.01)
    states = [e.state for e in session.project.images]
    result = {"on_gui_thread": Spy.on_gui_thread, "predicting": Spy.predicting, "states": states}
    print(json.dumps({**result, "frozen": gc.get_freeze_count()}))
    window.close()
    """
)


def test_the_learner_and_fill_modules_are_imported_ahead_on_a_worker(unet_checkpoint, photo_folder, tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "FCN_GUI_CONFIG_DIR": str(tmp_path / "config")}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(unet_checkpoint), str(photo_folder)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["on_gui_thread"] == {"scipy.ndimage": False, "core.training.learner": False}
    assert result["predicting"] == [False, False]  # after the folder's predictions, not beside them
    assert result["states"][:2] == ["predicted"] * 2  # the image on the canvas and the next
    assert result["frozen"] == 0  # the objects frozen during the imports are collectable again


def test_a_window_closed_before_its_preload_never_starts_it(make_window, photo_folder, qtbot):
    window = make_window(photo_folder)
    window.close()  # within the idle second: its worker would start while the app quits
    window.preloader._timer.timeout.emit()  # the idle second ends after the quit
    assert not window.preloader.started  # starting a worker then would raise in the event loop
