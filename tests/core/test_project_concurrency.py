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


def _choose_edit(project: Project, rng: random.Random, step: int) -> tuple[str, tuple]:
    """A random edit: a label, a state, or (committed at once, not staged) a class edit."""
    entry = rng.choice(project.images)
    kind = rng.random()
    if kind < 0.5:
        label = np.full(SIZE, rng.randrange(len(project.classes)), np.uint8)
        label[: rng.randrange(SIZE[0])] = 255
        return "label", (entry, label, rng.choice(STATES[1:]))
    if kind < 0.8:
        return "state", (entry, rng.choice(STATES), rng.random())
    if kind < 0.9:
        return "rename", (rng.randrange(len(project.classes)), f"class-{step}")
    if kind < 0.97:
        return "recolor", (rng.randrange(len(project.classes)), (step % 256, 7, 9))
    return "add", (f"added-{step}",)


def _apply(project: Project, kind: str, args: tuple) -> None:
    if kind == "label":
        project.set_label(args[0], args[1], args[2])
    elif kind == "state":
        project.set_state(args[0], args[1], changed_fraction=args[2])
    elif kind == "rename":
        project.rename_class(*args)
    elif kind == "recolor":
        project.recolor_class(*args)
    else:
        project.add_class(*args)


def _classes_after(classes: list, kind: str, args: tuple) -> list:
    """The class list (as ``_snapshot`` gives it) once a class edit is committed."""
    classes = [list(c) for c in classes]
    if kind == "rename":
        classes[args[0]][0] = args[1]
    elif kind == "recolor":
        classes[args[0]][1] = list(args[1])
    elif kind == "add":
        from core.io.labels import VOC_PALETTE

        classes.append([args[0], [int(v) for v in VOC_PALETTE[len(classes)]]])
    return classes


def _random_edit(project: Project, rng: random.Random, step: int) -> None:
    _apply(project, *_choose_edit(project, rng, step))


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
    from tests.core.test_project_concurrency import _apply, _choose_edit, _classes_after, _snapshot
    from core.store.project import Project

    project = Project.open(sys.argv[1])
    journal = open(sys.argv[2], "a")
    rng = random.Random(int(sys.argv[4]))

    def record(kind, snap):
        journal.write(json.dumps([kind, snap]) + "\\n")
        journal.flush()
        os.fsync(journal.fileno())

    for step in range(10_000):
        kind, args = _choose_edit(project, rng, int(sys.argv[4]) * 100_000 + step)  # unique names
        if kind in ("rename", "recolor", "add"):  # committed at once: journalled before it is
            record("classes", _classes_after(_snapshot(project)["classes"], kind, args))
        _apply(project, kind, args)
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
        last = max(i for i, (kind, _) in enumerate(entries) if kind == "saved")
        saved = entries[last][1]
        # What it last saved, and the save under way when it died (if any).
        candidates = [saved] + ([entries[-1][1]] if entries[-1][0] == "saving" else [])
        # Class edits commit at once: the class list is one journalled since that save.
        classes = [saved["classes"], *(snap for kind, snap in entries[last:] if kind == "classes"),
                   *(snap["classes"] for kind, snap in entries[last:] if kind == "saving")]  # fmt: skip
        with Project.open(root) as project:  # always readable; the dead process's lock is free
            got = _snapshot(project)
        assert got["classes"] in classes
        for image_id, (state, digest) in got["images"].items():
            # A state comes from the database; a label file may already be the newer one.
            assert state in [c["images"][image_id][0] for c in candidates], image_id
            assert digest in [c["images"][image_id][1] for c in candidates], image_id
        assert got != before  # the round did change the project
        before = got


def test_two_writers_and_a_saver_at_once_lose_nothing(folder):
    """A GUI thread and a worker each change their own images' states and labels while a third
    thread saves: every last change is on disk, and the counts add up all along."""
    with Project.open_path(folder) as project:
        ids = [e.id for e in project.images]
        halves = {"gui": ids[::2], "worker": ids[1::2]}
        final: dict[str, str] = {}
        stop = threading.Event()
        errors: list[BaseException] = []

        def writer(name: str, seed: int) -> None:
            rng = random.Random(seed)
            try:
                for step in range(400):
                    image_id = rng.choice(halves[name])
                    entry = project.entry(image_id)
                    state = rng.choice(STATES)
                    if step % 3:
                        project.set_state(entry, state)
                    else:
                        project.set_label(entry, np.full(SIZE, step % 21, np.uint8), state)
                    final[image_id] = state
                    assert sum(project.counts().values()) == len(ids)
            except BaseException as exc:
                errors.append(exc)

        def saver() -> None:
            while not stop.is_set():
                project.flush()

        threads = [threading.Thread(target=writer, args=("worker", 2)), threading.Thread(target=saver)]
        for thread in threads:
            thread.start()
        writer("gui", 1)
        threads[0].join()
        stop.set()
        threads[1].join()
        assert not errors, errors
    with Project.open_path(folder) as again:
        assert {e.id: e.state for e in again.images if e.id in final} == final
