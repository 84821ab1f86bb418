"""Checks of the CUDA code paths, for a machine with an NVIDIA GPU (not part of ``make test``).

    python bench/gpu_check.py WORK_DIR

1. ``fcn-gui train`` on CUDA in mixed precision with ``--time-budget``, and in fp32: the loss
   falls and the checkpoints are written.
2. fp16 with the gradient scaler (the path for GPUs without bf16), forced where bf16 exists.
3. The predictor on CUDA (tiles in batches, mixed precision) agrees with the CPU in fp32.
4. Out of GPU memory (the process limited to a small share of the GPU): prediction falls back
   to smaller batches and tiles, and still agrees.
5. The continuous learner trains on CUDA and adopts a model.
6. ``fcn-gui segment`` on CUDA, alone and as two ``torchrun`` ranks sharing the GPU and the folder.

DistributedDataParallel training over NCCL needs two GPUs (NCCL refuses two ranks on one).

Prints one line per check with its figures and exits 1 if any check failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.inference.predictor import Predictor  # noqa: E402
from core.io.images import read_image  # noqa: E402
from core.io.labels import classes_from_names  # noqa: E402
from core.model.checkpoints import ModelInfo, load_checkpoint, new_model  # noqa: E402
from core.training.learner import Adopted, ContinuousLearner, LearnerConfig  # noqa: E402
from core.training.sampling import CropSampler, Example  # noqa: E402
from core.training.step import StepRunner, build_optimizer  # noqa: E402

FAILED: list[str] = []


def check(name: str):
    def wrap(fn):
        def run(*args):
            t = time.perf_counter()
            try:
                detail = fn(*args)
                print(f"ok    {name} ({time.perf_counter() - t:.1f} s): {detail}", flush=True)
            except Exception:
                FAILED.append(name)
                print(f"FAIL  {name} ({time.perf_counter() - t:.1f} s)", flush=True)
                traceback.print_exc()

        return run

    return wrap


def cli(*args: str, env: dict | None = None, launcher: list[str] | None = None) -> str:
    cmd = [*(launcher or [sys.executable, "-m", "fcn_gui"]), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} exited {result.returncode}:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
        )
    return result.stdout + result.stderr


def nuclei() -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    image = read_image(ROOT / "tests/data/nuclei/nuclei.tif")
    label = (np.asarray(Image.open(ROOT / "tests/data/nuclei/nuclei_instances.tif")) > 0).astype(np.uint8)
    return image, label


@check("train on cuda, mixed precision, --time-budget")
def train_mixed(work: Path) -> str:
    out = work / "mixed.safetensors"
    t = time.perf_counter()
    log = cli("train", str(work / "voc"), "--output", str(out), "--init", "none", "--steps", "100000",
              "--time-budget", "25", "--batch-size", "8", "--crop", "128", "--lr", "3e-4",
              "--val-every", "50", "--device", "cuda", "--precision", "auto", "--workers", "4")  # fmt: skip
    wall = time.perf_counter() - t
    assert out.exists(), f"{out} not written"
    model = load_checkpoint(out, device="cpu")
    last = log.strip().splitlines()[-1]
    return f"wall {wall:.0f} s for a 25 s budget; {model.info.training}; log tail: {last}"


@check("train on cuda, fp32")
def train_fp32(work: Path) -> str:
    out = work / "fp32.safetensors"
    log = cli("train", str(work / "voc"), "--output", str(out), "--init", "none", "--steps", "40",
              "--batch-size", "8", "--crop", "128", "--val-every", "20", "--device", "cuda",
              "--precision", "fp32", "--workers", "2")  # fmt: skip
    assert out.exists()
    return log.strip().splitlines()[-1]


def _steps(runner: StepRunner, n: int) -> list[float]:
    image, label = nuclei()
    info = ModelInfo(variant="fcn8s", classes=classes_from_names(["background", "nucleus"]))
    sampler = CropSampler(128, info.mean, info.std, seed=0)
    example = Example("nuclei", image, label, None)
    return [runner(*sampler.batch([example], 8)) for _ in range(n)]


@check("fp16 with the gradient scaler")
def fp16_scaler(work: Path) -> str:
    real = torch.cuda.is_bf16_supported
    torch.cuda.is_bf16_supported = lambda *a, **k: False  # a GPU without bf16 (pre-Ampere)
    try:
        torch.manual_seed(0)
        net = new_model(ModelInfo(variant="fcn8s", classes=classes_from_names(["bg", "nucleus"]))).module
        net = net.cuda().train()
        opt = build_optimizer(net, lr=3e-4, head_lr_mult=100.0, weight_decay=1e-4)
        runner = StepRunner(net, opt, torch.device("cuda"), "auto")
        assert runner.scaler.is_enabled(), "the gradient scaler is off for fp16"
        losses = _steps(runner, 60)
    finally:
        torch.cuda.is_bf16_supported = real
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    assert np.isfinite(losses).all() and last < first, f"loss {first:.3f} -> {last:.3f}"
    return f"loss {first:.3f} -> {last:.3f}, scale {runner.scaler.get_scale():.0f}"


def big_image() -> np.ndarray:
    image, _ = nuclei()
    return np.tile(image, (6, 6, 1))  # 3072x3072


@check("predict on cuda agrees with the CPU in fp32")
def predict_agrees(work: Path) -> str:
    model = load_checkpoint(work / "mixed.safetensors", device="cpu")
    image = nuclei()[0]
    cpu = Predictor(
        load_checkpoint(work / "mixed.safetensors", device="cpu"),
        device="cpu",
        tile=256,
        overlap=64,
        precision="fp32",
    )
    gpu = Predictor(model, device="cuda", tile=256, overlap=64)
    ref, got = cpu.predict(image), gpu.predict(image)
    agree = float((ref.label == got.label).mean())
    assert agree > 0.99, f"only {agree:.2%} of pixels agree"
    big = big_image()
    gpu.tile = None
    gpu.predict(big)
    torch.cuda.synchronize()
    t = time.perf_counter()
    gpu.predict(big)
    torch.cuda.synchronize()
    return (
        f"{agree:.3%} of pixels agree (256 px tiles, batches of {gpu._batch_for(gpu.plan(512, 512))}); "
        f"{big.shape[1]}x{big.shape[0]} whole on {gpu.device_name} in {time.perf_counter() - t:.2f} s"
    )


@check("out of GPU memory: prediction falls back and still agrees")
def predict_oom(work: Path) -> str:
    big = big_image()
    reference = Predictor(load_checkpoint(work / "mixed.safetensors", device="cpu"), device="cuda").predict(
        big
    )
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(1.5 * 1024**3 / total)  # a 1.5 GiB GPU
    try:
        predictor = Predictor(load_checkpoint(work / "mixed.safetensors", device="cpu"), device="cuda")
        got = predictor.predict(big)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert predictor.warnings, "no out-of-memory fallback happened"
    agree = float((reference.label == got.label).mean())
    assert agree > 0.99, f"only {agree:.2%} of pixels agree after the fallback"
    where = f"now {predictor.device_name}, tile {predictor.tile}"
    return f"{'; '.join(predictor.warnings)}; {agree:.3%} agree; {where}"


@check("continuous learner on cuda adopts a model")
def learner(work: Path) -> str:
    image, label = nuclei()
    info = ModelInfo(variant="fcn8s", classes=classes_from_names(["background", "nucleus"]))
    torch.manual_seed(0)
    learner = ContinuousLearner(
        new_model(info), LearnerConfig(device="cuda", budget_steps=20, all_orientations=True)
    )
    for i, (y, x) in enumerate([(0, 0), (0, 256), (256, 0), (256, 256)]):
        learner.add(Example(f"q{i}", image[y : y + 256, x : x + 256], label[y : y + 256, x : x + 256], None))
    run = learner.run()
    adopted = None
    t = time.perf_counter()
    while time.perf_counter() - t < 40 and adopted is None:
        event = next(run)
        if isinstance(event, Adopted):
            adopted = event
    run.close()
    assert adopted is not None, f"nothing adopted after {learner.steps} steps"
    steps_per_s = learner.steps / learner.train_seconds
    return (
        f"{adopted.describe()} after {learner.steps} steps ({steps_per_s:.1f} steps/s, {learner.precision})"
    )


@check("segment a folder on cuda")
def segment(work: Path) -> str:
    out = work / "labels"
    log = cli("segment", str(work / "voc" / "JPEGImages"), "--out", str(out), "--checkpoint",
              str(work / "mixed.safetensors"), "--device", "cuda", "--overlay")  # fmt: skip
    written = len(list(out.glob("*.png")))
    assert written == 16, f"{written} labels written"
    sharded = work / "labels-2-ranks"
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "fcn_gui",
    ]
    log2 = cli("segment", str(work / "voc" / "JPEGImages"), "--out", str(sharded), "--checkpoint",
               str(work / "mixed.safetensors"), "--device", "cuda", launcher=launcher)  # fmt: skip
    shards = len(list(sharded.glob("*.png")))
    assert shards == 16, f"two ranks wrote {shards} labels"
    ranks = " | ".join(line for line in log2.splitlines() if "[rank" in line and "img" not in line)
    return f"{log.strip().splitlines()[-1]}; two ranks: {ranks}"


def main() -> int:
    work = Path(sys.argv[1] if len(sys.argv) > 1 else "gpu_check_work")
    work.mkdir(parents=True, exist_ok=True)
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check", file=sys.stderr)
        return 2
    print(
        f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}, bf16 {torch.cuda.is_bf16_supported()}"
    )
    subprocess.run([sys.executable, str(ROOT / "bench/make_nuclei_voc.py"), str(work / "voc")], check=True)
    for step in (
        train_mixed,
        train_fp32,
        fp16_scaler,
        predict_agrees,
        predict_oom,
        learner,
        segment,
    ):
        step(work)
    print("all checks passed" if not FAILED else f"FAILED: {', '.join(FAILED)}")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
