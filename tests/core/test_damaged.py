"""Damaged projects, odd but legal files and hostile checkpoints, each driven through the command
line as a user would: the expected exit code, one line naming the fault (or success), and every
file the user had byte for byte the same afterwards.

Each row builds its world in a fresh folder (``make``), runs ``python -m fcn_gui ARGS`` there in
a subprocess, and compares a checksum of every file but the command's own outputs (``out/``,
a new project, a checkpoint) and the project lock before and after.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.base.progress import drain
from core.io.labels import classes_from_names, write_label
from core.model.checkpoints import ModelInfo, new_model, save_checkpoint
from core.store.project import Project

ROOT = Path(__file__).parents[2]
OUTPUTS = ("out", "new-project", "model.safetensors", "model.last.safetensors")  # the commands' own
OURS = (".lock", ".lock.owner", "backups")  # the project's lock and the backups an open takes


def cells() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)


def labelled_project(world: Path, *, folder: str = "photos") -> Path:
    """An image folder with two photos, its project in ``fcn-gui-project`` with one reviewed label."""
    photos = world / folder
    photos.mkdir()
    for name in ("a", "b"):
        Image.fromarray(cells()).save(photos / f"{name}.png")
    with Project.open_path(photos, classes_from_names(["background", "cell"])) as project:
        label = np.zeros((48, 64), np.uint8)
        label[10:20, 10:30] = 1
        project.set_label(project.images[0], label, "reviewed")
    return photos / "fcn-gui-project"


def v1_project(world: Path, change: Callable[[dict], None]) -> Path:
    """A project as an earlier fcn-gui wrote it (format 1: ``project.json``), changed by ``change``;
    opening it migrates it to a database, checking every field."""
    photos = world / "photos"
    photos.mkdir()
    project = photos / "fcn-gui-project"
    (project / "labels.v1").mkdir(parents=True)
    for name in ("a", "b"):
        Image.fromarray(cells()).save(photos / f"{name}.png")
    label = np.zeros((48, 64), np.uint8)
    label[10:20, 10:30] = 1
    write_label(project / "labels.v1" / "a.png", label)
    data = {
        "format": "fcn-gui-project", "version": 1, "labels_dir": "labels.v1", "checkpoint": None,
        "classes": [{"name": "background", "color": [0, 0, 0]}, {"name": "cell", "color": [128, 0, 0]}],
        "images": [{"id": "a", "path": "../a.png", "state": "reviewed"}, {"id": "b", "path": "../b.png"}],
    }  # fmt: skip
    change(data)
    (project / "project.json").write_text(json.dumps(data))
    return project


def voc(world: Path, label: np.ndarray | None = None, name: str = "voc") -> Path:
    """A two-class VOC dataset of three 48x64 images; ``label`` replaces the first one's label."""
    root = world / name
    for sub in ("JPEGImages", "SegmentationClass"):
        (root / sub).mkdir(parents=True)
    for i in range(3):
        Image.fromarray(cells()).save(root / "JPEGImages" / f"c{i}.png")
        good = np.zeros((48, 64), np.uint8)
        good[5:25, 5:25] = 1
        first = i == 0 and label is not None
        write_label(root / "SegmentationClass" / f"c{i}.png", label if first else good)
    (root / "class_names.txt").write_text("background\ncell\n")
    return root


def masks_folder(world: Path, suffix: str, image: Image.Image) -> Path:
    root = world / "dataset"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.txt").write_text("background\ncell\n")
    image.save(root / "images" / f"cell{suffix}")
    mask = np.zeros((image.height, image.width), np.uint8)
    mask[2:6, 2:6] = 1
    Image.fromarray(mask).save(root / "masks" / "cell.png")
    return root


def nan_checkpoint(world: Path) -> Path:
    torch.manual_seed(0)
    model = new_model(ModelInfo(variant="unet", classes=classes_from_names(["background", "cell"])))
    with torch.no_grad():
        model.module.head.weight[0, 0, 0, 0] = float("nan")
    save_checkpoint(world / "broken.safetensors", model)
    return world / "broken.safetensors"


def rotated_labelme(world: Path) -> Path:
    """A photo stored 40 wide and 20 high whose EXIF says 'turn it': labelme shows (and stores)
    it 20 wide and 40 high."""
    folder = world / "annotated"
    folder.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to show
    Image.fromarray(np.full((20, 40, 3), 90, np.uint8)).save(folder / "photo.jpg", exif=exif)
    shape = {"label": "cell", "points": [[2, 2], [10, 30]], "shape_type": "rectangle"}
    doc = {"shapes": [shape], "imagePath": "photo.jpg", "imageHeight": 40, "imageWidth": 20}
    (folder / "photo.json").write_text(json.dumps(doc))
    return folder


def broken_labelme(world: Path) -> Path:
    folder = world / "annotated"
    folder.mkdir()
    (folder / "one.json").write_text(json.dumps({"shapes": [], "imagePath": "gone.png"}))
    embedded = base64.b64encode(b"not a png").decode()
    (folder / "two.json").write_text(json.dumps({"shapes": [], "imageData": embedded}))
    return folder


def resume_with_pickle(world: Path) -> str:
    data = voc(world)
    output = world / "model.safetensors"
    args = f"train {data} --output {output} --variant unet --steps 1 --crop 32 --workers 0"
    done = subprocess.run([sys.executable, "-m", "fcn_gui", *args.split()], cwd=world, env=_env(),
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    torch.save({"optimizer": datetime.datetime(2026, 1, 1)}, world / "model.last.optim.pt")  # an object
    return f"{args} --resume --steps 2"


def long_name(world: Path) -> Path:
    folder = world / "photos"
    folder.mkdir()
    Image.fromarray(cells()).save(folder / f"{'a' * 240}.png")  # 244 characters: legal on every system
    return folder


def symlink_loop(world: Path) -> Path:
    folder = world / "photos"
    (folder / "day1").mkdir(parents=True)
    Image.fromarray(cells()).save(folder / "day1" / "a.png")
    (folder / "day1" / "back").symlink_to(folder)  # a loop: photos/day1/back/day1/back/...
    return folder


def truncated_label(world: Path) -> Path:
    project = labelled_project(world)
    label = next((project / "labels.v1").glob("*.png"))
    label.write_bytes(label.read_bytes()[:40])
    return project


def pickled_checkpoint(world: Path) -> Path:
    torch.save({"weights": datetime.datetime(2026, 1, 1)}, world / "evil.pth")
    return world / "evil.pth"


FLOAT_IMAGE = Image.fromarray(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8))  # mode F


@dataclass(frozen=True)
class Case:
    """What a row builds (``make`` returns what ``args`` names as {0}), runs, and expects."""

    name: str
    make: Callable[[Path], object]
    args: str
    code: int
    says: str


def _manifest_case(name: str, change: Callable[[dict], None], says: str, command: str = "export") -> Case:
    def make(world: Path) -> Path:
        return v1_project(world, change)

    train = "train {0} --output model.safetensors --workers 0"
    args = "export {0} --out out" if command == "export" else train
    return Case(name, make, args, 1, says)


def _missing_database(world: Path, *, of_folder: bool) -> Path:
    project = labelled_project(world)
    (project / "project.db").unlink()
    return project.parent if of_folder else project


def damaged_database(world: Path) -> Path:
    project = labelled_project(world)
    Project.open(project).close()  # the open takes a backup
    (project / "project.db").write_bytes(b"SQLite format 3\x00" + b"\x13" * 4000)
    return project


CASES = [
    _manifest_case("labels folder named by the manifest is missing",
                   lambda d: d.update(labels_dir="labels.v9"), "labels folder labels.v9 is missing"),
    _manifest_case("labels folder named with a number", lambda d: d.update(labels_dir=3), "labels_dir is 3"),
    _manifest_case("empty class list", lambda d: d.update(classes=[]), "classes are wrong"),
    _manifest_case("manifest version of the wrong type",
                   lambda d: d.update(version="one"), "version is 'one'"),
    _manifest_case("class colour of the wrong type",
                   lambda d: d["classes"][1].update(color="red"), "colour 'red'", command="train"),
    _manifest_case("image state unknown", lambda d: d["images"][0].update(state="done"), "state 'done'"),
    _manifest_case("image id that is a path",
                   lambda d: d["images"][0].update(id="../../x"), "file-name-safe id"),
    Case("project without its database", lambda w: _missing_database(w, of_folder=False),
         "export {0} --out out", 1, "project.db is missing"),
    Case("image folder whose project lost its database", lambda w: _missing_database(w, of_folder=True),
         "export {0} --out out", 1, "project.db is missing"),
    Case("import into a project folder without its database",
         lambda w: (_missing_database(w, of_folder=False), voc(w))[1],
         "import {0} --project photos/fcn-gui-project", 1, "project.db is missing"),
    Case("a damaged project database", damaged_database, "export {0} --out out", 1,
         "the project database is damaged"),
    Case("training label of the wrong size, read by a worker process",
         lambda w: voc(w, np.zeros((30, 40), np.uint8)),
         "train {0} --output model.safetensors --variant unet --steps 2 --crop 32 --workers 2", 1,
         "the label is 40x30 but its image c0.png is 64x48"),
    Case("training label with a class beyond the list, read by a worker process",
         lambda w: voc(w, np.full((48, 64), 9, np.uint8)),
         "train {0} --output model.safetensors --variant unet --steps 2 --crop 32 --workers 2", 1,
         "label values [9] are not classes"),
    Case("optimizer state that is a pickle, on --resume", resume_with_pickle, "{0}", 1,
         "not a safe optimizer state"),
    Case("checkpoint that is a pickle", lambda w: (pickled_checkpoint(w), labelled_project(w).parent)[::-1],
         "segment {0} --out out --checkpoint {1}", 1, "not a safe checkpoint"),
    Case("masks import with WebP images",
         lambda w: masks_folder(w, ".webp", Image.new("RGB", (8, 8), "gray")),
         "import {0} --project new-project", 0, "1 labelled images imported"),
    Case("masks import with GIF images", lambda w: masks_folder(w, ".gif", Image.new("P", (8, 8))),
         "import {0} --project new-project", 0, "1 labelled images imported"),
    Case("masks import with float TIFF images",
         lambda w: masks_folder(w, ".tif", FLOAT_IMAGE),
         "import {0} --project new-project", 0, "1 labelled images imported"),
    Case("labelme JSON of an EXIF-rotated photo", rotated_labelme, "import {0} --project new-project", 0,
         "1 labelled images imported"),
    Case("labelme folder where every JSON fails", broken_labelme, "import {0} --project new-project", 1,
         "one.json: not a usable labelme file"),
    Case("a legal 244-character file name", long_name, "segment {0} --out out", 0, "1 segmented"),
    Case("a checkpoint with NaN weights, segment", lambda w: (nan_checkpoint(w), long_name(w))[::-1],
         "segment {0} --out out --checkpoint {1}", 1, "head.weight holds NaN"),
    Case("a checkpoint with NaN weights, train --init", lambda w: (voc(w), nan_checkpoint(w)),
         "train {0} --output model.safetensors --init {1} --steps 1 --crop 32 --workers 0", 1, "holds NaN"),
    Case("a symbolic link loop in a recursive folder", symlink_loop, "segment {0} --out out --recursive", 1,
         "symbolic link loop"),
    Case("a truncated label PNG", truncated_label, "export {0} --out out", 1, "cannot read the label"),
]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "FCN_GUI_WEIGHTS_MIRROR": "http://127.0.0.1:9"}


def _ours(rel: Path) -> bool:
    return any(part in OURS for part in rel.parts)


def user_files(world: Path) -> dict[str, str]:
    """sha1 of every file but the commands' outputs and the project lock."""
    files = {}
    for path in sorted(world.rglob("*")):
        rel = path.relative_to(world)
        if rel.parts[0] in OUTPUTS or _ours(rel) or path.is_symlink() or not path.is_file():
            continue
        files[str(rel)] = hashlib.sha1(path.read_bytes()).hexdigest()
    return files


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_fault_is_one_clear_line_and_nothing_the_user_made_changes(case: Case, tmp_path):
    made = case.make(tmp_path)
    names = made if isinstance(made, tuple) else (made,)
    before = user_files(tmp_path)
    args = case.args.format(*names).split()
    done = subprocess.run([sys.executable, "-m", "fcn_gui", *args], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    text = done.stdout + done.stderr
    assert done.returncode == case.code, text
    assert "Traceback" not in text and "a bug" not in text and "weights_only" not in text, text
    assert case.says.lower() in text.lower(), text
    assert len(done.stderr.strip().splitlines()) <= 4, text  # the fault in a line or two, not a trace
    assert user_files(tmp_path) == before


CUT_SHORT = """
import os, signal, sys
from core.store.project import Project
project = Project.open(sys.argv[1])
removal = project.iter_remove_class(1)
next(removal)  # the rewrite has begun: its folder is recorded, then written
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_class_removal_cut_short_touches_only_its_own_folder(tmp_path):
    """The folder a removal writes is recorded in the database first; only that one is ever
    written or, cancelled, deleted. Any other labels folder stays, whatever its name."""
    project = labelled_project(tmp_path)
    stray = project / "labels.v7"
    stray.mkdir()
    (stray / "mine.png").write_bytes(b"a user's file")
    done = subprocess.run([sys.executable, "-c", CUT_SHORT, str(project)], cwd=ROOT, env=_env())
    assert done.returncode == -9  # it died in the middle
    with Project.open(project) as p:
        assert p.removal_pending["labels_dir"] == "labels.v2" and (project / "labels.v2").is_dir()
        drain(p.iter_resume_removal())
        assert p.labels_dir == "labels.v2" and len(p.classes) == 1
    assert (stray / "mine.png").read_bytes() == b"a user's file"  # not its own: kept
    assert sorted(d.name for d in project.glob("labels.v*")) == ["labels.v2", "labels.v7"]


def test_a_failed_import_removes_only_what_it_made(tmp_path):
    target = tmp_path / "target"
    (target / "images").mkdir(parents=True)
    (target / "images" / "keep.png").write_bytes(b"the user's own image")
    (target / "notes.txt").write_text("mine")
    bad = voc(tmp_path, np.zeros((30, 40), np.uint8))  # a label of the wrong size stops the import
    done = subprocess.run([sys.executable, "-m", "fcn_gui", "import", str(bad), "--project", str(target)],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 1 and "40x30" in done.stderr, done.stderr
    assert sorted(p.name for p in target.iterdir()) == ["images", "notes.txt"]
    assert (target / "images" / "keep.png").read_bytes() == b"the user's own image"


def test_written_files_get_the_permissions_of_the_users_umask(tmp_path):
    old = os.umask(0o022)
    try:
        project = labelled_project(tmp_path)
        from core.base.progress import drain
        from core.formats.voc import export_voc

        with Project.open(project) as p:
            drain(export_voc(p, tmp_path / "out"))
        save_checkpoint(tmp_path / "m.safetensors", new_model(ModelInfo(variant="unet")))
    finally:
        os.umask(old)
    written = [project / "project.db", *(project / "labels.v1").glob("*.png"), tmp_path / "m.safetensors",
               *(tmp_path / "out").rglob("*.*")]  # fmt: skip
    assert len(written) > 6
    assert {oct(p.stat().st_mode & 0o777) for p in written} == {"0o644"}  # as open() makes them


def test_an_image_with_the_suffix_in_capitals_is_found_by_every_finder(tmp_path):
    from core.io.images import find_image

    (tmp_path / "a.JPG").write_bytes(io.BytesIO().getvalue())
    (tmp_path / "b.webp").write_bytes(b"")
    assert find_image(tmp_path, "a") == tmp_path / "a.JPG"
    assert find_image(tmp_path, "b") == tmp_path / "b.webp"
    assert find_image(tmp_path, "c") is None
