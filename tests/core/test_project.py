import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.base.errors import LabelError, ProjectError
from core.base.progress import drain
from core.io.labels import VOC_PALETTE, VOID
from core.store.database import DATABASE, backups
from core.store.project import Project

ROOT = Path(__file__).parents[2]


@pytest.fixture
def image_folder(tmp_path, small_image):
    folder = tmp_path / "photos"
    (folder / "day2").mkdir(parents=True)
    Image.fromarray(small_image[:48, :64]).save(folder / "a.jpg")
    Image.fromarray(small_image[:40, :40]).save(folder / "b.png")
    Image.fromarray(small_image[:40, :40]).save(folder / "day2" / "b.png")  # same stem elsewhere
    return folder


def test_image_folder_becomes_a_project_and_reopens(image_folder):
    project = Project.open_path(image_folder)
    assert project.root == image_folder / "fcn-gui-project"
    assert sorted(e.path for e in project.images) == ["../a.jpg", "../b.png", "../day2/b.png"]
    assert len({e.id for e in project.images}) == 3
    assert all(e.state == "new" for e in project.images) and len(project.classes) == 21
    project.close()
    again = Project.open_path(image_folder)
    assert [e.id for e in again.images] == [e.id for e in project.images]
    assert again.image_path(again.images[0]).exists()
    assert again.db.meta("schema") == "2" and not (again.root / "project.json").exists()
    again.close()


def test_second_instance_is_refused_and_a_killed_owner_releases_the_lock(image_folder):
    project = Project.open_path(image_folder)
    code = f"from core.store.project import Project; Project.open_path({str(image_folder)!r})"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode != 0
    assert f"open in another fcn-gui (pid {os.getpid()} on " in result.stderr  # names the holder
    with pytest.raises(ProjectError, match="already open in this window"):
        Project.open(project.root)
    project.close()
    holder = subprocess.Popen(
        [sys.executable, "-c", code.replace("Project.open_path", "p = Project.open_path")
         + "; import time; print('open', flush=True); time.sleep(60)"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "open"
    with pytest.raises(ProjectError, match=f"pid {holder.pid} on"):
        Project.open(project.root)
    holder.kill()
    holder.wait()
    Project.open(project.root).close()  # at once: the system released the dead process's lock


def test_autosave_writes_only_what_changed(image_folder):
    with Project.open_path(image_folder) as project:
        a, b = project.images[0], project.images[1]
        project.set_label(a, np.zeros((48, 64), np.uint8), "predicted", checkpoint="m.safetensors")
        project.set_label(b, np.ones((40, 40), np.uint8), "edited")
        assert len(project.flush()) == 2
        first_b = project.label_path(b).stat().st_mtime_ns
        edited = np.zeros((48, 64), np.uint8)
        edited[:10] = 15
        project.set_label(a, edited, "edited")
        assert project.flush() == [project.label_path(a)]
        assert project.label_path(b).stat().st_mtime_ns == first_b
        assert project.flush() == [] and not project.has_unsaved_changes
    with Project.open_path(image_folder) as project:
        a = project.images[0]
        assert a.state == "edited" and a.checkpoint == "m.safetensors" and a.modified
        np.testing.assert_array_equal(project.load_label(a), edited)
        assert project.counts() == {"new": 1, "predicted": 0, "edited": 2, "reviewed": 0}


def test_the_pixels_the_user_painted_survive_save_and_reopen(image_folder):
    painted = np.zeros((48, 64), bool)
    painted[5:9, 10:30] = True
    label = np.where(painted, 15, 0).astype(np.uint8)
    with Project.open_path(image_folder) as project:
        a, b = project.images[0], project.images[1]
        assert project.load_painted(a, (48, 64)) is None  # never recorded
        project.set_label(a, label, "edited", painted=painted)
        np.testing.assert_array_equal(project.load_painted(a, (48, 64)), painted)  # staged
        with pytest.raises(ValueError, match="painted mask"):
            project.set_label(b, np.zeros((40, 40), np.uint8), "edited", painted=painted)
        project.flush()
        assert project.painted_path(a).stat().st_size < 1000
    with Project.open_path(image_folder) as project:
        a = project.images[0]
        np.testing.assert_array_equal(project.load_painted(a, (48, 64)), painted)
        assert project.load_painted(a, (40, 40)) is None  # not this image's size: not its mask
        project.painted_path(a).write_bytes(b"\x89PNG damaged")
        assert project.load_painted(a, (48, 64)) is None  # the app then keeps every labelled pixel
        np.testing.assert_array_equal(project.load_label(a), label)


def test_bad_labels_are_refused(image_folder):
    with Project.open_path(image_folder) as project:
        a = project.images[0]
        with pytest.raises(LabelError, match=r"\[30\]"):
            project.set_label(a, np.full((48, 64), 30, np.uint8), "edited")
        Image.fromarray(np.zeros((10, 10), np.uint8)).save(project.label_path(a))
        with pytest.raises(LabelError, match="the label is 10x10 but its image a.jpg is 64x48"):
            project.load_label(a)


def test_a_newer_or_damaged_database_is_refused_naming_the_newest_backup(image_folder):
    Project.open_path(image_folder).close()  # created; the open below takes the first backup
    Project.open_path(image_folder).close()
    root = image_folder / "fcn-gui-project"
    newest = backups(root)[0]
    with sqlite3.connect(root / DATABASE) as con:
        con.execute("UPDATE meta SET value = '7' WHERE key = 'schema'")
    con.close()
    with pytest.raises(ProjectError, match="newer fcn-gui.*update"):
        Project.open_path(image_folder)
    (root / DATABASE).write_bytes(b"SQLite format 3\x00" + b"\x13" * 3000)  # damaged: not a database
    before = {p.name: p.read_bytes() for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")}
    with pytest.raises(ProjectError, match=f"damaged.*newest backup is {newest}"):
        Project.open_path(image_folder)
    after = {p.name: p.read_bytes() for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")}
    assert after == before  # nothing overwritten, no backup taken of the damaged file
    shutil.copy(newest, root / DATABASE)  # what the message says to do
    with Project.open_path(image_folder) as project:
        assert len(project.images) == 3


def test_backups_roll_keeping_the_newest_three(image_folder):
    for _ in range(5):
        Project.open_path(image_folder).close()
    saved = backups(image_folder / "fcn-gui-project")
    assert len(saved) == 3
    for path in saved:
        with sqlite3.connect(path) as con:
            assert con.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 3
        con.close()


def test_a_format_1_project_is_migrated_once_and_its_manifest_kept(image_folder, tmp_path):
    """A project.json of an earlier fcn-gui opens without a question: the same classes, states,
    labels and settings, and the JSON kept beside the database."""
    root = image_folder / "fcn-gui-project"
    (root / "labels.v2").mkdir(parents=True)
    label = np.zeros((48, 64), np.uint8)
    label[:, 5:9] = 2
    from core.io.labels import write_label

    write_label(root / "labels.v2" / "a.png", label)
    manifest = {
        "format": "fcn-gui-project", "version": 1, "labels_dir": "labels.v2",
        "checkpoint": "/models/m.safetensors",
        "classes": [{"name": "background", "color": [0, 0, 0]}, {"name": "cell", "color": [1, 2, 3]},
                    {"name": "edge", "color": [4, 5, 6]}],
        "images": [
            {"id": "a", "path": "../a.jpg", "state": "reviewed", "checkpoint": None,
             "modified": "2026-11-30T10:00:00+00:00", "changed_fraction": 0.25},
            {"id": "b", "path": "../b.png", "state": "new"},
        ],
    }  # fmt: skip
    text = json.dumps(manifest, indent=1)
    (root / "project.json").write_text(text)
    with Project.open(root) as project:
        assert [(c.name, c.color) for c in project.classes] == [
            ("background", (0, 0, 0)), ("cell", (1, 2, 3)), ("edge", (4, 5, 6))]  # fmt: skip
        assert project.labels_dir == "labels.v2" and project.checkpoint == "/models/m.safetensors"
        states = {e.id: (e.state, e.changed_fraction, e.modified) for e in project.images}
        assert states == {"a": ("reviewed", 0.25, "2026-11-30T10:00:00+00:00"), "b": ("new", None, None)}
        np.testing.assert_array_equal(project.load_label(project.entry("a")), label)
    assert (root / "project.json.v1-backup").read_text() == text and not (root / "project.json").exists()
    with Project.open(root) as project:  # once: the database now
        assert project.entry("a").state == "reviewed"


def test_read_only_project_folder(image_folder):
    Project.open_path(image_folder).close()
    root = image_folder / "fcn-gui-project"
    locked = subprocess.run(["chattr", "+i", str(root)], capture_output=True).returncode == 0
    if not locked:
        root.chmod(0o555)
    try:
        if os.access(root, os.W_OK) and not locked:
            pytest.skip("cannot make a folder read-only for this user")
        with pytest.raises(ProjectError, match="read-only"):
            Project.open(root)
    finally:
        if locked:
            subprocess.run(["chattr", "-i", str(root)], check=True)
        root.chmod(0o755)


def test_class_edits_and_removal_remap_every_label(image_folder):
    with Project.open_path(image_folder) as project:
        a, b = project.images[0], project.images[1]
        la = np.zeros((48, 64), np.uint8)
        la[:, 10:20], la[:, 20:30], la[:, 30:40], la[0, 0] = 1, 2, 3, VOID
        lb = np.full((40, 40), 3, np.uint8)
        project.set_label(a, la, "reviewed")
        project.set_label(b, lb, "edited")
        project.rename_class(3, "songbird")
        project.recolor_class(2, (1, 2, 3))
        new = project.add_class("nucleus")
        assert new.color == tuple(int(v) for v in VOC_PALETTE[21])
        with pytest.raises(ProjectError, match="taken"):
            project.add_class("nucleus")
        project.remove_class(1, remap_to=3)
        assert [c.name for c in project.classes[:3]] == ["background", "bicycle", "songbird"]
        assert project.classes[1].color == (1, 2, 3) and len(project.classes) == 21
        expected = la.copy()
        expected[:, 10:20] = 2  # old 1 -> old 3, which is now 2
        expected[:, 20:30] = 1
        expected[:, 30:40] = 2
        np.testing.assert_array_equal(project.load_label(a), expected)
        np.testing.assert_array_equal(project.load_label(b), np.full((40, 40), 2, np.uint8))
        project.remove_class(2, remap_to=VOID)
        assert project.load_label(b).max() == VOID
    with Project.open_path(image_folder) as project:
        assert project.labels_dir == "labels.v3"
        assert [d.name for d in project.root.glob("labels.v*")] == ["labels.v3"]
        with Image.open(project.label_path(project.images[0])) as img:
            assert img.getpalette()[3:6] == [1, 2, 3]


def test_cancelled_class_removal_leaves_the_project_as_it_was(image_folder):
    with Project.open_path(image_folder) as project:
        label = np.full((48, 64), 2, np.uint8)
        project.set_label(project.images[0], label, "reviewed")
        project.flush()
        removal = project.iter_remove_class(1)
        first = next(removal)
        assert (first.done, first.total) == (1, project.count())
        assert (project.root / "labels.v2").is_dir() and project.removal_pending["labels_dir"] == "labels.v2"
        removal.close()  # what Cancel does
        assert not (project.root / "labels.v2").exists() and project.removal_pending is None
        assert len(project.classes) == 21 and project.labels_dir == "labels.v1"
        np.testing.assert_array_equal(project.load_label(project.images[0]), label)
        project.set_label(project.images[0], label[::-1].copy(), "edited")  # the store still saves
        project.flush()
    with Project.open_path(image_folder) as project:
        assert project.entry(project.images[0].id).state == "edited"


CRASHER = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from core.store.project import Project
    kill_at = sys.argv[2]
    calls = 0
    real_fsync = os.fsync
    def fsync(fd):
        global calls
        calls += 1
        if str(calls) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        real_fsync(fd)
    os.fsync = fsync
    project = Project.open(sys.argv[1])
    entry = project.images[0]
    project.set_label(entry, np.full((48, 64), 7, np.uint8), "reviewed")
    project.flush()
    if kill_at == "after":
        os.kill(os.getpid(), signal.SIGKILL)
    """
)

# A save writes the label to a temporary file and syncs it (1), renames it and syncs the folder
# (2), then commits the row (SQLite syncs its own journal). Killed at each point, the project
# opens with the old or the new label, and the state its database last committed.
SAVE_KILLS = {"1": ("edited", 2), "2": ("edited", 7), "after": ("reviewed", 7)}


@pytest.mark.parametrize("kill_at", sorted(SAVE_KILLS))
def test_kill_at_each_stage_of_a_save_keeps_a_readable_project(image_folder, kill_at):
    with Project.open_path(image_folder) as project:
        project.set_label(project.images[0], np.full((48, 64), 2, np.uint8), "edited")
    root = image_folder / "fcn-gui-project"
    result = subprocess.run([sys.executable, "-c", CRASHER, str(root), kill_at], cwd=ROOT)
    assert result.returncode == -signal.SIGKILL  # it really died there
    with Project.open(root) as project:  # the dead process's lock is taken over
        entry = project.images[0]
        label = project.load_label(entry)
        assert (entry.state, int(label[0, 0])) == SAVE_KILLS[kill_at]
        assert len(np.unique(label)) == 1  # a whole label, never a mix


@pytest.mark.parametrize("kill_at", ["1", "2", "after"])
def test_kill_while_saving_a_label_of_a_new_class_keeps_every_label_readable(image_folder, kill_at):
    with Project.open_path(image_folder) as project:
        root = project.root
    code = CRASHER.replace(
        "entry = project.images[0]",
        "entry = project.images[0]\nproject.add_class('nucleus')",
    ).replace("np.full((48, 64), 7, np.uint8)", "np.full((48, 64), 21, np.uint8)")
    result = subprocess.run([sys.executable, "-c", code, str(root), kill_at], cwd=ROOT)
    assert result.returncode == -signal.SIGKILL
    with Project.open(root) as project:
        assert project.classes[21].name == "nucleus"  # committed before any label used it
        label = project.load_label(project.images[0])  # never "values [21] are not classes"
        assert label is None or (label == 21).all()


REMOVAL = textwrap.dedent(
    """
    import os, signal, sys
    from core.store.project import Project
    project = Project.open(sys.argv[1])
    for done, _ in enumerate(project.iter_remove_class(1, remap_to=0), start=1):
        if done == 2:  # two of the three labels rewritten
            os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_a_class_removal_cut_short_by_a_crash_resumes_from_the_labels_it_wrote(image_folder):
    with Project.open_path(image_folder) as project:
        for entry, value in zip(project.images, (1, 2, 3), strict=True):
            w, h = Image.open(project.image_path(entry)).size
            project.set_label(entry, np.full((h, w), value, np.uint8), "reviewed")
    root = image_folder / "fcn-gui-project"
    result = subprocess.run([sys.executable, "-c", REMOVAL, str(root)], cwd=ROOT)
    assert result.returncode == -signal.SIGKILL  # it did die in the middle
    written = {p.name: p.stat().st_mtime_ns for p in (root / "labels.v2").iterdir()}
    assert len(written) == 2
    with Project.open(root) as project:
        assert len(project.classes) == 21 and project.removal_pending is not None  # not switched yet
        drain(project.iter_resume_removal())
        assert len(project.classes) == 20 and project.removal_pending is None
        values = sorted(int(project.load_label(e).max()) for e in project.images)
        assert values == [0, 1, 2]  # 1 -> 0, then 2 and 3 shift down by one
    assert [d.name for d in root.glob("labels.v*")] == ["labels.v2"]
    kept = {p.name: p.stat().st_mtime_ns for p in (root / "labels.v2").iterdir() if p.name in written}
    assert kept == written  # the labels written before the crash were kept, not redone
