"""Every subcommand with bad values and a failing environment, each run as a user would run it.

Each case runs ``python -m fcn_gui ...`` in a subprocess with a timeout and must end with
exit code 2 (a usage error) or 1 (it failed), no traceback, a few lines at most naming the
offending value or file, and nothing half-written where it writes. A new numeric option
joins ``USAGE`` (``test_every_numeric_option_is_in_the_table`` checks that).
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.base.limits import LIMITS
from core.cli import build_parser
from core.io.images import read_image
from core.io.labels import write_label
from core.store.project import Project

ROOT = Path(__file__).parents[2]

# (subcommand and arguments, text the message must contain); all exit with 2.
USAGE = [
    ("segment {img} --out {out} --tile 0", "--tile"),
    ("segment {img} --out {out} --tile -5", "--tile"),
    ("segment {img} --out {out} --tile 128 --overlap 64", "--overlap 64"),
    ("segment {img} --out {out} --overlap -1", "--overlap"),
    ("segment {img} --out {out} --max-pixels 0", "--max-pixels"),
    ("train {voc} --output {ckpt} --crop 0", "--crop"),
    ("train {voc} --output {ckpt} --batch-size 0", "--batch-size"),
    ("train {voc} --output {ckpt} --steps 0", "--steps"),
    ("train {voc} --output {ckpt} --epochs 0", "--epochs"),
    ("train {voc} --output {ckpt} --lr 0", "--lr"),
    ("train {voc} --output {ckpt} --lr nan", "--lr"),
    ("train {voc} --output {ckpt} --val-fraction 1", "--val-fraction"),
    ("train {voc} --output {ckpt} --val-every 0", "--val-every"),
    ("train {voc} --output {ckpt} --workers -1", "--workers"),
    ("train {voc} --output {ckpt} --seed -1", "--seed"),
    ("train {voc} --output {ckpt} --time-budget 0", "--time-budget"),
    ("train {voc} --output {ckpt} --crop many", "--crop"),
    ("eval {voc} --checkpoint {ckpt} --val-fraction -0.1", "--val-fraction"),
    ("eval {voc} --checkpoint {ckpt} --seed 1.5", "--seed"),
    ("export {project} --out {out} --val-fraction 1.5", "--val-fraction"),
    ("export {project} --out {out} --seed x", "--seed"),
    ("export {project} --out {out} --slide-crops 8", "--slide-crops"),
    ("info --variant fcn8s --size 0", "--size"),
]

# (arguments, text the message must contain); all exit with 1.
RUNTIME = [
    ("export {project} --out {file}", "is a file"),
    ("segment {img} --out {file}", "is a file"),
    ("segment {img} --out {file}/sub", "in the way"),
    ("train {voc} --output {out} --init none --steps 1 --crop 32 --workers 0", "is a folder"),
    ("train {voc} --output {ckpt} --init imagenet --download", "cannot download vgg16"),
    ("train {voc} --output {ckpt} --init imagenet", "vgg16-397923af.pth"),
    ("train {void_voc} --output {ckpt} --init none --crop 32 --batch-size 1 --workers 0", "labelled pixel"),
    ("export {locked} --out {out}", "open in another fcn-gui"),
    ("segment {img} --out {readonly}", "read-only"),
    ("segment {img} --out {full} --overwrite", "No space left"),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory, data_dir):
    """The files the cases name: an image, a VOC set, one with void labels only, projects."""
    base = tmp_path_factory.mktemp("bad")
    image = read_image(data_dir / "nuclei/nuclei.tif")[:96, :96]
    truth = (np.asarray(Image.open(data_dir / "nuclei/nuclei_instances.tif"))[:96, :96] > 0).astype(np.uint8)
    Image.fromarray(image).save(base / "cells.png")
    for name, label in (("voc", truth), ("void_voc", np.full_like(truth, 255))):
        for sub in ("JPEGImages", "SegmentationClass"):
            (base / name / sub).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(image).save(base / name / "JPEGImages" / f"c{i}.png")
            write_label(base / name / "SegmentationClass" / f"c{i}.png", label)
        (base / name / "class_names.txt").write_text("background\nnucleus\n")
    Project.create(base / "project", [base / "cells.png"]).close()
    (base / "file").write_text("not a folder")
    return base


@contextlib.contextmanager
def mounted(folder: Path, options: str, fill: bool = False):
    """A small tmpfs at ``folder`` (with ``fill``: no byte free) when this machine lets us mount;
    else ``None``."""
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    try:
        if done.returncode == 0 and fill:
            (folder / "sub").mkdir()
            with contextlib.suppress(OSError), (folder / "filler").open("wb") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
        yield folder if done.returncode == 0 else None
    finally:
        if done.returncode == 0:
            subprocess.run(["umount", str(folder)], check=False)


def run(args: str, world: Path, tmp_path: Path, extra: dict[str, str] | None = None, preexec=None):
    names = {
        "img": world / "cells.png",
        "voc": world / "voc",
        "void_voc": world / "void_voc",
        "project": world / "project",
        "file": world / "file",
        "out": tmp_path / "out",
        "ckpt": tmp_path / "out" / "model.safetensors",
        **(extra or {}),
    }
    (tmp_path / "out").mkdir(exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TORCH_HOME": str(tmp_path / "torch"),  # empty hub cache: pretrained weights are not there
        "FCN_GUI_WEIGHTS_MIRROR": "http://127.0.0.1:9",  # the discard port: nothing listens there
    }
    argv = [sys.executable, "-m", "fcn_gui", *args.format(**names).split()]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path, preexec_fn=preexec
    )


def check(done: subprocess.CompletedProcess, code: int, needle: str, tmp_path: Path) -> None:
    text = done.stdout + done.stderr
    assert done.returncode == code, text
    assert "Traceback" not in text, text
    lines = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and needle.lower() in lines[0].lower(), text
    assert len(done.stderr.rstrip("\n").split("\n")) <= 6, text  # a few lines (a progress bar is one)
    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith(".") and p.name.endswith(".tmp")]
    assert not leftovers, leftovers  # nothing half-written


@pytest.mark.parametrize(("args", "needle"), USAGE, ids=[a for a, _ in USAGE])
def test_bad_values_are_usage_errors_that_name_them(args, needle, world, tmp_path):
    done = run(args, world, tmp_path)
    check(done, 2, needle, tmp_path)
    assert "out of range" in done.stderr or "not a" in done.stderr or "must be under half" in done.stderr
    assert not any((tmp_path / "out").iterdir())  # nothing written before the check


@pytest.mark.parametrize(("args", "needle"), RUNTIME, ids=[a for a, _ in RUNTIME])
def test_a_failing_environment_is_one_line_and_exit_1(args, needle, world, tmp_path):
    extra, preexec = {}, None
    with contextlib.ExitStack() as stack:
        if "{locked}" in args:
            holder = stack.enter_context(Project.open(world / "project"))  # this process holds the lock
            extra["locked"] = holder.root
        if "{readonly}" in args:
            folder = stack.enter_context(mounted(tmp_path / "ro", "ro,size=64k"))
            if folder is None:
                pytest.skip("cannot mount a read-only file system here; root can write anywhere else")
            extra["readonly"] = folder / "labels"
        if "{full}" in args:
            folder = stack.enter_context(mounted(tmp_path / "full", "size=64k", fill=True))
            extra["full"] = folder / "sub" if folder is not None else tmp_path / "full"
            if folder is None:  # no mount: cap the file size instead, so the label's write fails
                preexec = _small_files
                needle = "File too large"
        done = run(args, world, tmp_path, extra, preexec)
        check(done, 1, needle, tmp_path)
        if "{full}" in args:
            assert not list(extra["full"].rglob("*.png"))  # no half-written label
        if "--download" in args:
            assert not list((tmp_path / "torch").rglob("*.pth*"))  # no partial download


def _small_files() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (512, 512))  # a palette PNG alone is larger


def test_every_numeric_option_is_in_the_table():
    parser = build_parser()
    numeric = set()
    for sub in parser._subparsers._group_actions[0].choices.values():
        for action in sub._actions:
            if action.type in {limit.parse for limit in LIMITS.values()} or action.type in (int, float):
                assert action.type not in (int, float), f"{action.option_strings} has no range in LIMITS"
                numeric.update(action.option_strings)
    tested = {word for args, _ in USAGE for word in args.split() if word.startswith("--")}
    assert numeric <= tested, numeric - tested
