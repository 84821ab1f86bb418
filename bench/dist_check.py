"""Smoke test of the frozen app (``make dist-check``); takes a few minutes, not part of ``make test``.

    python bench/dist_check.py dist/fcn-gui

Checks: ``--version``; ``train`` makes a small checkpoint from the test data (nuclei crops,
1 step); ``segment`` on the bundled samples with it, and on two small slides (a pyramidal
TIFF of JPEG tiles, read through tifffile's zarr store and imagecodecs, and an ``.ndpi``
name read through the bundled OpenSlide) into pyramidal label TIFFs; the GUI opens offscreen,
loads a sample, predicts it with that checkpoint, and quits with exit code 0 within a time
limit. Prints the times from launching the process to the window and to the first
prediction, from source and from the frozen build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list[str], timeout: int, env: dict | None = None) -> subprocess.CompletedProcess:
    t = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    status = "ok" if result.returncode == 0 else f"FAILED (exit {result.returncode})"
    print(f"[{time.perf_counter() - t:6.1f} s] {' '.join(cmd[:3])} ... {status}")
    if result.returncode != 0:
        print(result.stdout[-2000:], result.stderr[-3000:], sep="\n")
        sys.exit(1)
    return result


def check_slides(exe: Path, ckpt: Path, tmp: Path) -> None:
    """The frozen ``segment`` on a JPEG-tiled pyramid and an OpenSlide-read file: the codecs,
    zarr and OpenSlide's library must all have been bundled."""
    import numpy as np
    import tifffile
    from PIL import Image

    with Image.open(ROOT / "resources" / "samples" / "astronaut.png") as img:
        image = np.asarray(img.convert("RGB").resize((1280, 1024)))
    folder = tmp / "slides"
    folder.mkdir()
    with tifffile.TiffWriter(folder / "pyramid.tif", bigtiff=True) as tif:
        tif.write(image, tile=(256, 256), compression="jpeg", photometric="rgb", subifds=1)
        tif.write(image[::2, ::2], tile=(256, 256), compression="jpeg", photometric="rgb", subfiletype=1)
    with tifffile.TiffWriter(folder / "scan.ndpi") as tif:  # OpenSlide reads it as a generic tiled TIFF
        tif.write(image, tile=(256, 256), compression="zlib", photometric="rgb")
    out = tmp / "slides_out"
    run([str(exe), "segment", str(folder), "--out", str(out), "--checkpoint", str(ckpt)], 600)
    for name in ("pyramid.tif", "scan.tif"):
        with tifffile.TiffFile(out / name) as tif:
            levels = [level.shape for level in tif.series[0].levels]
            assert levels[0] == (1024, 1280) and len(levels) == 3 and tif.pages[0].is_tiled, (name, levels)
    print(f"  slides: {', '.join(sorted(p.name for p in out.glob('*.tif')))} written as tiled pyramids")


def main() -> None:
    exe = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "dist" / "fcn-gui") / "fcn-gui"
    if not exe.exists():
        sys.exit(f"{exe}: not built; run `make dist` first")
    files = [f for f in exe.parent.rglob("*") if f.is_file() and not f.is_symlink()]  # links: counted once
    size = sum(f.stat().st_size for f in files) / 1024**3
    print(f"{exe.parent}: {size:.2f} GiB")
    print(run([str(exe), "--version"], 120).stdout.strip())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        voc = tmp / "voc"
        subprocess.run([sys.executable, str(ROOT / "bench" / "make_nuclei_voc.py"), str(voc)], check=True)
        ckpt = tmp / "tiny.safetensors"
        run(
            [
                str(exe),
                "train",
                str(voc),
                "--output",
                str(ckpt),
                "--init",
                "none",
                "--steps",
                "1",
                "--crop",
                "64",
                "--batch-size",
                "2",
                "--workers",
                "0",
            ],
            600,
        )
        run(
            [
                str(exe),
                "segment",
                str(ROOT / "resources" / "samples"),
                "--out",
                str(tmp / "out"),
                "--checkpoint",
                str(ckpt),
            ],
            600,
        )
        assert len(list((tmp / "out").glob("*.png"))) == 4
        check_slides(exe, ckpt, tmp)
        run([str(exe), "export-model", str(ckpt), "--out", str(tmp / "tiny.onnx")], 600)
        headless = {
            k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
        }
        done = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120, env=headless)
        assert done.returncode == 2 and "no display" in done.stderr, done.stderr
        print(f"  no display: exit 2, {done.stderr.strip()[:60]}...")
        samples = tmp / "samples"
        shutil.copytree(ROOT / "resources" / "samples", samples)
        env = {
            **os.environ,
            "QT_QPA_PLATFORM": "offscreen",
            "FCN_GUI_SMOKE_TEST": "1",
            "FCN_GUI_CONFIG_DIR": str(tmp / "config"),
        }
        # The trained checkpoint: a model that has learnt nothing predicts nothing (it waits
        # for strokes), and the smoke test waits for a prediction.
        (tmp / "config").mkdir()
        (tmp / "config" / "settings.ini").write_text(f"[General]\ncheckpoint={ckpt}\nlearn=false\n")
        for name, cmd in (("frozen", [str(exe)]), ("source", [sys.executable, "-m", "fcn_gui"])):
            shutil.rmtree(samples / "fcn-gui-project", ignore_errors=True)
            env["FCN_GUI_T0"] = repr(time.time())  # times measured from the launch, imports included
            out = run([*cmd, str(samples)], 300, env).stdout
            print(f"  {name}: " + "; ".join(line for line in out.splitlines() if "after" in line))


if __name__ == "__main__":
    main()
