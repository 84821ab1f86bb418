"""Whole-slide scale: segment and open images far larger than memory (prints figures; not a test).

    python bench/gigapixel.py [--side 20000] [--small-side 10000] [--part segment|app|all]
                              [--fcn-side 10000] [--fcn-wide 10000 100000]
                              [--app-sides 20000 100000] [--work DIR]

Writes tiled pyramidal BigTIFFs made from the sample photos (JPEG tiles of 512, levels down
to one tile; the content is photos, not noise), then:

- segment: ``fcn-gui segment`` with the U-Net on the ``--small-side`` and ``--side`` slides,
  each in its own process: peak resident memory (it must not grow with the slide), megapixels
  per second against the same network on an in-memory 4,096 x 4,096 image (the ratio is
  the tiling and reading overhead), and the output read back (size, levels). ``--fcn-side``
  adds FCN-8s on a slide of that side (0: skip; it runs at a tenth of the U-Net's speed);
  ``--fcn-wide`` on slides that wide and ``WIDE_HEIGHT`` high (two bands of tiles: the
  class scores the bands share, 21 classes of them, are what grows with the width).
- app: see ``--part app``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.session import cpu_name  # noqa: E402

TILE = 512
BLOCK = 1536  # each sample photo fills a block of this many pixels a side


def _photos() -> list[np.ndarray]:
    folder = ROOT / "resources" / "samples"
    photos = []
    for path in sorted(folder.iterdir()):
        with Image.open(path) as img:
            photos.append(np.asarray(img.convert("RGB").resize((BLOCK, BLOCK), Image.BILINEAR)))
    return photos


def _tile(photos: list[np.ndarray], level: int, ty: int, tx: int, height: int, width: int) -> np.ndarray:
    """Tile ``(ty, tx)`` of ``level``: the photo mosaic sampled every ``2**level`` pixels."""
    step = 2**level
    ys = (ty * TILE + np.arange(TILE)) * step
    xs = (tx * TILE + np.arange(TILE)) * step
    ys, xs = np.minimum(ys, height - 1), np.minimum(xs, width - 1)
    by, bx = ys // BLOCK, xs // BLOCK
    which = (by[:, None] * 7 + bx[None, :] * 3) % len(photos)
    stack = np.stack(photos)
    return stack[which, (ys % BLOCK)[:, None], (xs % BLOCK)[None, :]]


PERIOD = 12  # the mosaic repeats every 12 tiles at every level (BLOCK is 3 tiles, 4 photos)
WIDE_HEIGHT = 1100


def write_slide(path: Path, side: int, width: int | None = None) -> float:
    """A ``side x side`` (or ``side x width``) tiled pyramidal BigTIFF of JPEG tiles; returns
    the seconds it took.

    The mosaic repeats, so each distinct tile is encoded once and its bytes written again where
    it repeats: a 100,000-pixel slide (10 gigapixels) costs the disk's time, not the encoder's.
    """
    import imagecodecs
    import tifffile

    if path.exists():
        return 0.0
    photos = _photos()
    start = time.perf_counter()
    height, width = side, width or side
    shapes = [(height, width)]
    while max(shapes[-1]) > TILE:
        shapes.append(((shapes[-1][0] + 1) // 2, (shapes[-1][1] + 1) // 2))
    encoded: dict[tuple[int, int, int], bytes] = {}

    def tile_bytes(level: int, ty: int, tx: int, rows: int, cols: int) -> bytes:
        edge = ty == rows - 1 or tx == cols - 1  # clipped at the border: not periodic
        key = (level, ty % PERIOD, tx % PERIOD)
        if edge or key not in encoded:
            data = imagecodecs.jpeg8_encode(_tile(photos, level, ty, tx, height, width), level=90)
            if edge:
                return data
            encoded[key] = data
        return encoded[key]

    tmp = path.with_suffix(".partial.tif")
    with tifffile.TiffWriter(tmp, bigtiff=True) as tif:
        for level, (h, w) in enumerate(shapes):
            rows, cols = -(-h // TILE), -(-w // TILE)
            tiles = (tile_bytes(level, ty, tx, rows, cols) for ty in range(rows) for tx in range(cols))
            extra = {"subifds": len(shapes) - 1} if level == 0 else {"subfiletype": 1}
            tif.write(
                tiles, shape=(h, w, 3), dtype=np.uint8, tile=(TILE, TILE), photometric="rgb",
                compression="jpeg", **extra,
            )  # fmt: skip
    tmp.replace(path)
    return time.perf_counter() - start


def _run_measured(cmd: list[str]) -> tuple[float, float, str]:
    """Run ``cmd``; its wall seconds, peak resident GB (its own, from wait4) and output."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        log.seek(0)
        text = log.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{text}")
    return wall, usage.ru_maxrss * 1024 / 1e9, text


def segment_part(args: argparse.Namespace, work: Path) -> dict:
    import tifffile
    import torch

    from core.inference.predictor import Predictor
    from core.model.checkpoints import ModelInfo, new_model, save_checkpoint

    torch.manual_seed(0)
    results: dict = {}
    nets = [("unet", side, side) for side in (args.small_side, args.side) if side]  # 0: skipped
    if args.fcn_side:
        nets.append(("fcn8s", args.fcn_side, args.fcn_side))
    nets += [("fcn8s", WIDE_HEIGHT, width) for width in args.fcn_wide]
    for variant in sorted({v for v, _, _ in nets}):
        model = new_model(ModelInfo(variant=variant, trained=True))
        ckpt = work / f"{variant}.safetensors"
        save_checkpoint(ckpt, model)
        # The in-memory reference: a 4,096 x 4,096 crop of the same mosaic, decoded whole.
        photos = _photos()
        ref = np.concatenate(
            [np.concatenate([_tile(photos, 0, ty, tx, 4096, 4096) for tx in range(8)], 1) for ty in range(8)]
        )
        predictor = Predictor(model, device="cpu", precision=args.precision)
        predictor.predict(ref[:1024, :1024])  # warm-up
        start = time.perf_counter()
        predictor.predict(ref)
        secs = time.perf_counter() - start
        mp_s = 4096 * 4096 / 1e6 / secs
        results[f"{variant}_in_memory_mp_s"] = mp_s
        print(f"{variant}: in-memory 4096x4096: {secs:.1f} s, {mp_s:.2f} MP/s", flush=True)
        del ref, predictor, model
    for variant, side, width in nets:
        size = f"{width}x{side}"
        slide = work / (f"slide_{side}.tif" if width == side else f"slide_{size}.tif")
        made = write_slide(slide, side, width)
        if made:
            print(f"wrote {slide.name} ({size}, {slide.stat().st_size / 1e9:.2f} GB) in {made:.0f} s")
        out = work / f"out_{variant}_{size}"
        cmd = [sys.executable, "-m", "fcn_gui", "segment", str(slide), "--out", str(out), "--overwrite"]
        cmd += ["--checkpoint", str(work / f"{variant}.safetensors"), "--precision", args.precision]
        wall, rss, text = _run_measured(cmd)
        mp_s = side * width / 1e6 / wall
        with tifffile.TiffFile(out / f"{slide.stem}.tif") as tif:
            levels = [lvl.shape for lvl in tif.series[0].levels]
            ok = levels[0] == (side, width) and tif.pages[0].is_tiled
        ratio = results[f"{variant}_in_memory_mp_s"] / mp_s
        line = (
            f"{variant} segment {size}: {wall:.0f} s, {mp_s:.2f} MP/s ({ratio:.2f}x the in-memory "
            f"time a pixel), peak RSS {rss:.2f} GB, output {levels[0][1]}x{levels[0][0]} in {len(levels)} "
            f"levels, tiled: {ok}"
        )
        print(line, flush=True)
        results[f"{variant}_{size}"] = {"seconds": wall, "mp_s": mp_s, "ratio": ratio, "rss_gb": rss,
                                        "levels": len(levels), "valid": ok}  # fmt: skip
        if "segmented" not in text:
            print(text)
    return results


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--side", type=int, default=20_000)
    parser.add_argument("--small-side", type=int, default=10_000)
    parser.add_argument("--fcn-side", type=int, default=0, help="FCN-8s on a slide of this side (0: skip)")
    parser.add_argument(
        "--fcn-wide", type=int, nargs="*", default=[], help=f"FCN-8s on WIDTHx{WIDE_HEIGHT} slides"
    )
    parser.add_argument("--app-sides", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--part", choices=("segment", "app", "all"), default="all")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--work", type=Path, default=None, help="keep the slides here (default: temporary)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="gigapixel-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        results = {"cpu": cpu_name()}
        if args.part in ("segment", "all"):
            results["segment"] = segment_part(args, work)
        if args.part in ("app", "all"):
            from bench.gigapixel_app import app_part

            results["app"] = app_part(args, work)
        if args.json:
            print(json.dumps(results))


if __name__ == "__main__":
    main()
