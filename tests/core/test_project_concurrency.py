"""The project store under concurrency: edits made while another thread saves are never lost,
and a process killed at any moment leaves a readable project holding everything it had saved."""

import hashlib
import json
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.store.project import STATES, Project

ROOT = Path(__file__).parents[2]
SIZE = (24, 32)  # every test image is 32x24


@pytest.fixture
def folder(tmp_path) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (*SIZE, 3), dtype=np.uint8)).save(images / f"im{i}.png")
    return images


def _digest(label: np.ndarray | None) -> str | None:
    return None if label is None else hashlib.sha1(label.tobytes()).hexdigest()


def _snapshot(project: Project) -> dict:
    """What the store holds: classes, each image's state and label."""
    return {
        "classes": [[c.name, list(c.color)] for c in project.classes],
        "images": {e.id: [e.state, _digest(project.load_label(e))] for e in project.images},
    }


def _random_edit(project: Project, rng: random.Random, step: int) -> None:
    entry = rng.choice(project.images)
    kind = rng.random()
    if kind < 0.5:
        label = np.full(SIZE, rng.randrange(len(project.classes)), np.uint8)
        label[: rng.randrange(SIZE[0])] = 255
        project.set_label(entry, label, rng.choice(STATES[1:]))
    elif kind < 0.8:
        project.set_state(entry, rng.choice(STATES), changed_fraction=rng.random())
    elif kind < 0.9:
        project.rename_class(rng.randrange(len(project.classes)), f"class-{step}")
    elif kind < 0.97:
        project.recolor_class(rng.randrange(len(project.classes)), (step % 256, 7, 9))
    else:
        project.add_class(f"added-{step}")


def test_edits_made_while_another_thread_saves_are_never_lost(folder):
    rng = random.Random(1)
    with Project.open_path(folder) as project:
        stop = threading.Event()
        errors: list[BaseException] = []

        def saver() -> None:
            try:
                while not stop.is_set():
                    project.flush()
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        thread = threading.Thread(target=saver)
        thread.start()
        try:
            for step in range(600):
                _random_edit(project, rng, step)
                if step % 50 == 0:
                    time.sleep(0.005)  # let the saver interleave at other points too
        finally:
            stop.set()
            thread.join()
        assert not errors
        project.flush()
        expected = _snapshot(project)
        fractions = {e.id: e.changed_fraction for e in project.images}
    with Project.open_path(folder) as again:
        assert _snapshot(again) == expected
        assert {e.id: e.changed_fraction for e in again.images} == fractions


WORKER = textwrap.dedent(
    """
    import json, os, random, sys, threading
    sys.path.insert(0, sys.argv[3])
    from tests.core.test_project_concurrency import _random_edit, _snapshot
    from core.store.project import Project

    project = Project.open(sys.argv[1])
    journal = open(sys.argv[2], "a")
    rng = random.Random(int(sys.argv[4]))

    def record(kind, snap):
        journal.write(json.dumps([kind, snap]) + "\\n")
        journal.flush()
        os.fsync(journal.fileno())

    for step in range(10_000):
        _random_edit(project, rng, int(sys.argv[4]) * 100_000 + step)  # names unique across rounds
        if step % 7 == 0:
            snap = _snapshot(project)
            record("saving", snap)  # the flush below writes exactly this
            project.flush()
            record("saved", snap)
    """
)


@pytest.mark.parametrize("seed", [11, 12, 13, 14, 15, 16])
def test_a_process_killed_at_any_moment_leaves_every_saved_change(folder, tmp_path, seed):
    with Project.open_path(folder) as project:
        root, before = project.root, _snapshot(project)
    rng = random.Random(seed)
    for round_ in range(3):  # kill, reopen and check, then go on from there
        journal = tmp_path / f"journal{round_}.jsonl"
        journal.touch()
        args = [str(root), str(journal), str(ROOT), str(seed * 10 + round_)]
        proc = subprocess.Popen([sys.executable, "-c", WORKER, *args])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and journal.read_text().count('"saved"') < 2:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.2))
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL  # it was killed, not finished
        entries = [json.loads(line) for line in journal.read_text().split("\n")[:-1]]  # whole lines
        saved = [snap for kind, snap in entries if kind == "saved"]
        assert saved, "the worker saved nothing before it was killed"
        # What it last saved, and the save under way when it died (if any).
        candidates = [saved[-1]] + ([entries[-1][1]] if entries[-1][0] == "saving" else [])
        with Project.open(root) as project:  # always readable; the dead process's lock is free
            got = _snapshot(project)
        assert got["classes"] in [c["classes"] for c in candidates]
        for image_id, (state, digest) in got["images"].items():
            # A state comes from the manifest; a label file may already be the newer one.
            assert state in [c["images"][image_id][0] for c in candidates], image_id
            assert digest in [c["images"][image_id][1] for c in candidates], image_id
        assert got != before  # the round did change the project
        before = got
