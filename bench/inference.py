"""Inference benchmark: prints figures for the README (not a test).

    python bench/inference.py [--device auto] [--precision auto|fp32|bf16] [--skip-large | --large-only]

Measures, in one run on this machine: the fp32 matmul peak, seconds and GFLOP/s per
500x500 image for FCN-32s/16s/8s, end-to-end `segment` throughput on 32 JPEGs of 500x375,
the tiling overhead on a 4096x4096 image, and the peak resident memory of segmenting an
8192x8192 image in a separate process.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.base.choices import PRECISION_CHOICES  # noqa: E402
from core.base.progress import drain  # noqa: E402
from core.compute.devices import choose_device, describe_device, inference_dtype  # noqa: E402
from core.inference.predictor import Predictor  # noqa: E402
from core.inference.segment import SegmentOptions, segment_paths  # noqa: E402
from core.model.checkpoints import ModelInfo, new_model, save_checkpoint  # noqa: E402
from core.model.flops import count_flops  # noqa: E402
from core.model.networks import build_model  # noqa: E402


def matmul_peak(device: torch.device, n: int = 4096, reps: int = 10, dtype=torch.float32) -> float:
    """Best GFLOP/s of an n x n matmul (fp32 unless ``dtype`` says otherwise)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    with torch.inference_mode():
        for _ in range(reps):
            _sync(device)
            t = time.perf_counter()
            a @ b
            _sync(device)
            best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gflops(variant: str, h: int, w: int) -> float:
    with torch.device("meta"):
        model = build_model(variant, num_classes=21).eval()
    return count_flops(model, h, w) / 1e9


def sample_image(h: int, w: int) -> np.ndarray:
    """A real photo (the astronaut) resized to h x w."""
    with Image.open(ROOT / "resources/samples/astronaut.png") as img:
        return np.asarray(img.convert("RGB").resize((w, h), Image.BILINEAR))


def time_predict(predictor: Predictor, image: np.ndarray, reps: int) -> float:
    predictor.predict(image)  # warm-up (oneDNN/cuDNN kernel choice)
    best = float("inf")
    for _ in range(reps):
        _sync(predictor.device)
        t = time.perf_counter()
        predictor.predict(image)
        _sync(predictor.device)
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--precision", default="auto", choices=PRECISION_CHOICES)
    parser.add_argument("--skip-large", action="store_true", help="skip the 8192x8192 memory run")
    parser.add_argument("--large-only", action="store_true", help="only the 8192x8192 memory run")
    args = parser.parse_args()
    device = choose_device(args.device)
    torch.manual_seed(0)
    print(f"device: {describe_device(device)}; torch {torch.__version__}")
    peak = matmul_peak(device)
    print(f"fp32 matmul peak (4096x4096): {peak:.1f} GFLOP/s")
    precision = args.precision
    if args.large_only:
        with tempfile.TemporaryDirectory() as tmp:
            large_memory(Path(tmp), args.device, precision)
        return
    dtype = inference_dtype(device, precision)
    print(f"precision {precision}: the model runs in {str(dtype).removeprefix('torch.')}")
    if dtype == torch.bfloat16:
        print(f"bf16 matmul peak (4096x4096): {matmul_peak(device, dtype=torch.bfloat16):.1f} GFLOP/s")
    image = sample_image(500, 500)
    per_image: dict[str, float] = {}
    print("\nvariant  s/img(500x500)  GFLOPs/img  achieved GFLOP/s  of peak")
    for variant in ("fcn32s", "fcn16s", "fcn8s"):
        model = new_model(ModelInfo(variant=variant))
        predictor = Predictor(model, device=device, precision=precision)
        secs = time_predict(predictor, image, args.reps)
        gf = gflops(variant, 500, 500)
        per_image[variant] = secs
        print(f"{variant:7}  {secs:14.3f}  {gf:10.1f}  {gf / secs:16.1f}  {gf / secs / peak:7.2f}")
        del model, predictor

    model = new_model(ModelInfo(variant="fcn8s"))
    predictor = Predictor(model, device=device, precision=precision)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "jpegs"
        folder.mkdir()
        base = sample_image(750, 1000)
        rng = np.random.default_rng(0)
        for i in range(32):
            y, x = rng.integers(0, 375), rng.integers(0, 500)
            Image.fromarray(base[y : y + 375, x : x + 500]).save(folder / f"img{i:02d}.jpg", quality=90)
        predictor.predict(base[:375, :500])
        t = time.perf_counter()
        report = drain(segment_paths(predictor, [folder], SegmentOptions(Path(tmp) / "out")))
        wall = time.perf_counter() - t
        assert len(report.written) == 32, report.summary()
        ips = 32 / wall
        gf = gflops("fcn8s", 375, 500)
        print(
            f"\nsegment, 32 JPEGs 500x375, FCN-8s: {ips:.3f} images/s, {gf:.1f} GFLOPs/img, "
            f"pipeline efficiency {ips * gf / peak:.2f} of the fp32 matmul peak"
        )

        big = np.ascontiguousarray(np.tile(sample_image(1024, 1024), (4, 4, 1)))
        grid = predictor.plan(4096, 4096)
        t = time.perf_counter()
        predictor.predict(big)
        _sync(device)
        tiled = time.perf_counter() - t
        expected = 4096 * 4096 / (500 * 500) * per_image["fcn8s"]
        print(
            f"4096x4096 tiled ({len(grid)} tiles of {grid.tile_h}x{grid.tile_w}): {tiled:.1f} s, "
            f"tiling overhead {tiled / expected:.2f} (1.00 = as fast per pixel as whole 500x500 images)"
        )

        if not args.skip_large:
            del model, predictor
            large_memory(Path(tmp), args.device, precision)


def large_memory(tmp: Path, device: str, precision: str) -> None:
    """Peak resident memory of `fcn-gui segment` on an 8192x8192 PNG, in a fresh process."""
    path = tmp / "huge.png"
    Image.fromarray(np.tile(sample_image(1024, 1024), (8, 8, 1))).save(path, compress_level=1)
    ckpt = tmp / "fcn8s.safetensors"
    save_checkpoint(ckpt, new_model(ModelInfo(variant="fcn8s")))
    cmd = [
        sys.executable,
        "-m",
        "fcn_gui",
        "segment",
        str(path),
        "--out",
        str(tmp / "huge"),
        "--checkpoint",
        str(ckpt),
        "--device",
        device,
        "--precision",
        precision,
    ]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2  # KiB -> GiB
    print(
        f"8192x8192 segment (FCN-8s, 21 classes, precision {precision}): "
        f"peak resident memory {rss:.2f} GiB ({rss * 1.073741824:.2f} GB), {wall:.0f} s"
    )


if __name__ == "__main__":
    main()
