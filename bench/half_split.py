"""A quick yardstick for a change to the learner's recipe: train on half the tiles, measure the rest.

    python bench/half_split.py [--steps 300 600] [--seeds 0 1] [--depth 3] [--width 24]
                              [--intensity-jitter] [--analyse]

The nuclei image is cut into 8 tiles as in bench/session.py. The continuous learner's recipe
(crops, orientations, bf16 where faster, weight average) trains a U-Net from random weights
on the odd tiles and the effort (pixels to correct relative to the foreground) is measured on
the even ones, then the other way round, for each seed; nothing is held out and nothing rests.
Four models of 300-600 steps take about 4 minutes on a 2-core CPU, where bench/session.py
takes 4-7 and bench/session_floor.py an hour: a change that does not lower these figures
will not lower the session's. ``--intensity-jitter`` gives each crop a random gamma
(0.7-1.4), contrast (0.8-1.2) and brightness (+-8 %); ``--analyse`` prints where the
corrections lie relative to the truth's edges. Not a test: figures only.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from session import cpu_name, effort, error_bands, format_bands, nuclei_tiles  # noqa: E402
from session_floor import fixed_steps_config  # noqa: E402

from core.base.choices import UNET  # noqa: E402
from core.inference.predictor import Predictor  # noqa: E402
from core.io.labels import classes_from_names  # noqa: E402
from core.model.checkpoints import ModelInfo, SegmentationModel  # noqa: E402
from core.model.unet import UNET_DEPTH, UNET_WIDTH, UNet  # noqa: E402
from core.training.learner import ContinuousLearner  # noqa: E402
from core.training.sampling import CropSampler, Example  # noqa: E402


def jitter_intensity(sampler: CropSampler) -> None:
    """Make ``sampler``'s batches carry a random gamma, contrast and brightness per crop."""
    batch = sampler.batch

    def jittered(examples: list[Example], batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, masks = batch(examples, batch_size)
        raw = (x * sampler.std + sampler.mean).clamp(0, 1)
        n = x.shape[0]
        gamma = torch.from_numpy(np.exp(sampler.rng.uniform(np.log(0.7), np.log(1.4), n))).float()
        contrast = torch.from_numpy(sampler.rng.uniform(0.8, 1.2, n)).float()
        brightness = torch.from_numpy(sampler.rng.uniform(-0.08, 0.08, n)).float()
        shape = (n, 1, 1, 1)
        raw = (raw ** gamma.view(shape) * contrast.view(shape) + brightness.view(shape)).clamp(0, 1)
        return (raw - sampler.mean) / sampler.std, masks

    sampler.batch = jittered


def predictions(
    args: argparse.Namespace, seed: int, train_half: int, tiles: list
) -> dict[int, list[np.ndarray]]:
    """Each ``--steps`` count's label maps of every tile of the other half."""
    torch.manual_seed(seed)
    info = ModelInfo(variant=UNET, classes=classes_from_names(["background", "nucleus"]))
    model = SegmentationModel(UNet(info.num_classes, width=args.width, depth=args.depth), info)
    learner = ContinuousLearner(model, fixed_steps_config("cpu", seed))
    if args.intensity_jitter:
        jitter_intensity(learner.sampler)
    for i, (image, truth) in enumerate(tiles):
        if i % 2 == train_half:
            learner.add(Example(f"tile{i}", image, truth, None))
    run = learner.run()
    out: dict[int, list[np.ndarray]] = {}
    for target in sorted(args.steps):
        while learner.steps < target:
            next(run)
        with learner._averaged():  # what the learner would adopt
            snapshot = SegmentationModel(
                copy.deepcopy(learner.net).float().eval(), copy.deepcopy(learner.model.info)
            )
        predictor = Predictor(snapshot, device="cpu")
        measured = [image for i, (image, _) in enumerate(tiles) if i % 2 != train_half]
        out[target] = [predictor.predict(image).label for image in measured]
    run.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, nargs="+", default=[300, 600])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--depth", type=int, default=UNET_DEPTH)
    p.add_argument("--width", type=int, default=UNET_WIDTH)
    p.add_argument("--intensity-jitter", action="store_true")
    p.add_argument("--analyse", action="store_true", help="print where the corrections lie")
    args = p.parse_args()
    print(f"CPU: {cpu_name()}; torch {torch.__version__}; settings {vars(args)}")
    tiles = nuclei_tiles(8)
    start = time.perf_counter()
    rows: dict[int, list[float]] = {s: [] for s in args.steps}
    bands: dict[int, Counter] = {s: Counter() for s in args.steps}
    for seed in args.seeds:
        for half in (0, 1):
            truths = [truth for i, (_, truth) in enumerate(tiles) if i % 2 != half]
            for steps, labels in predictions(args, seed, half, tiles).items():
                for label, truth in zip(labels, truths, strict=True):
                    rows[steps].append(effort(label, truth))
                    if args.analyse:
                        bands[steps].update(error_bands(label, truth))
    for steps in sorted(rows):
        values = rows[steps]
        print(f"  {steps} steps: mean effort {np.mean(values):.2%} ({' '.join(f'{v:.1%}' for v in values)})")
        if args.analyse:
            print(f"    where, over all measured tiles: {format_bands(bands[steps])}")
    print(f"  {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
