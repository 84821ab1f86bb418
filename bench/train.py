"""Training benchmark; prints figures, not a test.

    python bench/train.py [--device auto] [--steps 6] [--rounds 2] [--curve-steps 40] [--skip-curve]

1. Throughput (images/s) of ``core.training.trainer`` at 320x320, batch 4, next to a minimal plain
   PyTorch loop over the same model, data and optimiser (target >= 0.95). Each loop runs in
   a fresh process, alternately, so neither inherits the other's data-loader workers or
   memory; two warm-up steps are not timed.
2. A learning curve on the nuclei microscopy image: foreground IoU on held-out crops after
   training on 1, 2, 4 and 8 reviewed crops (random init: no pretrained weights offline).
"""

from __future__ import annotations

import argparse
import json
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

from core.compute.devices import choose_device, describe_device  # noqa: E402
from core.io.images import read_image  # noqa: E402
from core.io.labels import VOID, classes_from_names, write_label  # noqa: E402
from core.training.datasets import Sample, SegmentationDataset, TrainData, train_transform  # noqa: E402
from core.training.evaluate import confusion, sample_pairs  # noqa: E402
from core.training.trainer import TrainConfig, Trainer  # noqa: E402


def nuclei_samples(folder: Path, size: int) -> list[Sample]:
    image = read_image(ROOT / "tests/data/nuclei/nuclei.tif")
    label = (np.asarray(Image.open(ROOT / "tests/data/nuclei/nuclei_instances.tif")) > 0).astype(np.uint8)
    samples = []
    for i, y in enumerate(range(0, 512, size)):
        for j, x in enumerate(range(0, 512, size)):
            name = f"c{i}{j}"
            Image.fromarray(image[y : y + size, x : x + size]).save(folder / f"{name}.png")
            write_label(folder / f"{name}_label.png", label[y : y + size, x : x + size])
            samples.append(Sample(folder / f"{name}.png", folder / f"{name}_label.png", name))
    return samples


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def ours(data: TrainData, device: torch.device, steps: int, out: Path) -> float:
    config = TrainConfig(
        output=out,
        init="none",
        steps=steps + 3,
        batch_size=4,
        crop=320,
        workers=2,
        val_every=10**9,
        device=str(device),
        precision="fp32",  # as the plain loop: this figure is the engine's overhead, not bf16's gain
    )
    trainer = Trainer(config, TrainData(data.train, [], data.classes, "bench"))
    run = trainer.run()
    next(run), next(run)  # warm-up: workers start, optimiser state
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        next(run)
    sync(device)
    elapsed = time.perf_counter() - t
    run.close()
    return steps * 4 / elapsed


def plain(data: TrainData, device: torch.device, steps: int) -> float:
    """The textbook loop: DataLoader, forward, loss, backward, step; same model and optimiser."""
    from core.model.checkpoints import ModelInfo, new_model

    model = new_model(ModelInfo(classes=data.classes)).module.to(device).train()
    head = ("score", "upscore")
    opt = torch.optim.AdamW(
        [
            {"params": [p for n, p in model.named_parameters() if not n.startswith(head)], "lr": 1e-4},
            {"params": [p for n, p in model.named_parameters() if n.startswith(head)], "lr": 1e-2},
        ],
        weight_decay=1e-4,
    )
    dataset = SegmentationDataset(
        data.train, 2, train_transform(320, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    )
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=4, shuffle=True, num_workers=2, drop_last=True, persistent_workers=True
    )
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=VOID)
    it = iter(loader)

    def step():
        nonlocal it
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(loader)
            x, y = next(it)
        loss = loss_fn(model(x.to(device)), y.to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()

    step(), step()  # warm-up: workers start, optimiser state
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps * 4 / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--curve-steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2, help="alternating ours/plain process pairs")
    parser.add_argument("--skip-curve", action="store_true")
    parser.add_argument("--only", choices=("ours", "plain"), help=argparse.SUPPRESS)  # one child process
    args = parser.parse_args()
    device = choose_device(args.device)
    torch.manual_seed(0)
    classes = classes_from_names(["background", "nucleus"])
    if args.only is None:
        print(f"device: {describe_device(device)}; torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        big = tmp / "big"
        big.mkdir()
        data = TrainData(nuclei_samples(big, 256) * 2, [], classes, "nuclei 256")
        if args.only == "ours":
            print(json.dumps(ours(data, device, args.steps, tmp / "ours.safetensors")))
            return
        if args.only == "plain":
            print(json.dumps(plain(data, device, args.steps)))
            return
        rates: dict[str, list[float]] = {"ours": [], "plain": []}
        for r in range(args.rounds):
            for which in ("ours", "plain") if r % 2 == 0 else ("plain", "ours"):
                cmd = [sys.executable, __file__, "--only", which, "--steps", str(args.steps)]
                cmd += ["--device", args.device]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True)
                rates[which].append(float(out.stdout.strip().splitlines()[-1]))
        a, b = np.mean(rates["ours"]), np.mean(rates["plain"])
        each = {k: [round(v, 2) for v in vs] for k, vs in rates.items()}
        print(
            f"throughput at 320x320, batch 4: fcn-gui {a:.2f} images/s {each['ours']}, "
            f"plain PyTorch loop {b:.2f} images/s {each['plain']}, ratio {a / b:.2f}"
        )

        if args.skip_curve:
            return
        small = tmp / "small"
        small.mkdir()
        crops = nuclei_samples(small, 128)  # 16 crops: the last 4 are held out
        held_out = crops[12:]
        print(
            f"\nlearning curve ({args.curve_steps} steps each, crop 96, random init): "
            "foreground IoU on 4 held-out crops"
        )
        for n in (1, 2, 4, 8):
            train_data = TrainData(crops[:n], [], classes, f"{n} crops")
            config = TrainConfig(
                output=tmp / f"n{n}.safetensors",
                init="none",
                steps=args.curve_steps,
                batch_size=4,
                crop=96,
                lr=3e-4,
                workers=0,
                val_every=10**9,
                device=str(device),
            )
            trainer = Trainer(config, train_data)
            for _ in trainer.run():
                pass
            info = trainer.model.info
            meter = confusion(trainer.model.module, sample_pairs(held_out, info.num_classes), info, device)
            print(f"  {n} reviewed crop(s): foreground IoU {meter.scores().per_class_iou[1]:.3f}")


if __name__ == "__main__":
    main()
