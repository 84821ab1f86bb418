"""The floor under bench/session.py's figures: each image's effort from a model that saw all the others.

    python bench/session_floor.py [--images 8] [--steps 500 1000 2000] [--device auto]

For each image k of the session after the first, the continuous learner's recipe (the same
crops, orientations, input scale and precision) trains from random weights on the other
images only, and the effort to correct image k is measured after each number of ``--steps``.
In the session, image k's model has seen only the images before it, for less time: these
figures bound from below what any training schedule of this model can reach. Runs on any
device; a GPU makes it quick. Not a test: figures only.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from session import cpu_name, effort, nuclei_tiles  # noqa: E402

from core.base.choices import SCRATCH_VARIANT  # noqa: E402
from core.inference.predictor import Predictor  # noqa: E402
from core.io.labels import classes_from_names  # noqa: E402
from core.model.checkpoints import ModelInfo, SegmentationModel, new_model  # noqa: E402
from core.training.learner import ContinuousLearner, LearnerConfig  # noqa: E402
from core.training.sampling import Example  # noqa: E402


def fixed_steps_config(device: str, seed: int) -> LearnerConfig:
    """The learner's recipe for training a given number of steps on every image it is given:
    nothing held out and no rest (with no score to improve, it would rest after
    ``rest_after_steps`` steps and the steps asked for would never come)."""
    return LearnerConfig(
        device=device, all_orientations=True, holdout_every=10**9, rest_after_steps=10**9, seed=seed
    )


def floor_of(k: int, tiles: list, args: argparse.Namespace) -> list[float]:
    torch.manual_seed(args.seed)
    info = ModelInfo(variant=args.variant, classes=classes_from_names(["background", "nucleus"]))
    learner = ContinuousLearner(new_model(info), fixed_steps_config(args.device, args.seed))
    for i, (image, truth) in enumerate(tiles):
        if i != k:
            learner.add(Example(f"tile{i}", image, truth, None))
    run = learner.run()
    efforts = []
    for target in sorted(args.steps):
        while learner.steps < target:
            next(run)
        info = copy.deepcopy(learner.model.info)
        snapshot = SegmentationModel(copy.deepcopy(learner.net).float().eval(), info)
        image, truth = tiles[k]
        efforts.append(effort(Predictor(snapshot, device=args.device).predict(image).label, truth))
    run.close()
    return efforts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--steps", type=int, nargs="+", default=[500, 1000, 2000])
    p.add_argument("--variant", default=SCRATCH_VARIANT)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    print(f"CPU: {cpu_name()}; torch {torch.__version__}; device {args.device}; settings {vars(args)}")
    tiles = nuclei_tiles(args.images)
    steps = sorted(args.steps)
    rows = []
    for k in range(1, args.images):
        t = time.perf_counter()
        rows.append(floor_of(k, tiles, args))
        cells = "  ".join(f"{s} steps {e:6.1%}" for s, e in zip(steps, rows[-1], strict=True))
        print(f"  image {k + 1}: {cells}  ({time.perf_counter() - t:.0f} s)", flush=True)
    means = np.mean(rows, axis=0)
    best = np.min(rows, axis=1).mean()
    print(
        f"=> mean effort images 2..{args.images} with every other image seen: "
        + ", ".join(f"{m:.1%} after {s} steps" for s, m in zip(steps, means, strict=True))
        + f"; {best:.1%} taking each image's best"
    )


if __name__ == "__main__":
    main()
