"""Does bf16 training reach the fp32 validation score? Prints figures, not a test.

    python bench/precision.py [--steps 120] [--seeds 0 1] [--variant unet]

The app's from-scratch model (or ``--variant``) from random weights trains with the app's
learner engine (the same step, sampler, recipe and frozen layers) on the left half of the
nuclei image, for the same number of steps in fp32 and in bf16 autocast, from the same
seeds; the right half is the validation image. Prints the validation mean IoU of each run
and the time per step, so the bf16-vs-fp32 gap can be read next to the seed-to-seed noise.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from session import cpu_name  # noqa: E402

from core.base.choices import SCRATCH_VARIANT  # noqa: E402
from core.io.images import read_image  # noqa: E402
from core.io.labels import classes_from_names  # noqa: E402
from core.model.checkpoints import ModelInfo, new_model  # noqa: E402
from core.training.learner import ContinuousLearner, LearnerConfig  # noqa: E402
from core.training.sampling import Example, object_scale  # noqa: E402


def run(precision: str, seed: int, steps: int, variant: str) -> tuple[float, float]:
    image = read_image(ROOT / "tests/data/nuclei/nuclei.tif")
    truth = (np.asarray(Image.open(ROOT / "tests/data/nuclei/nuclei_instances.tif")) > 0).astype(np.uint8)
    torch.manual_seed(seed)
    model = new_model(ModelInfo(variant=variant, classes=classes_from_names(["background", "nucleus"])))
    train = [Example(f"t{i}", image[i * 128 : (i + 1) * 128, :256], truth[i * 128 : (i + 1) * 128, :256])
             for i in range(4)]  # fmt: skip
    scale = object_scale([e.label for e in train], model.module.output_stride)  # as the learner chooses
    config = LearnerConfig(precision=precision, device="cpu", seed=seed, all_orientations=True, scale=scale)
    learner = ContinuousLearner(model, config)
    config = learner.config  # with the network's recipe filled in
    val = Example("val", image[:, 256:], truth[:, 256:])
    started = time.perf_counter()
    for _ in range(steps):
        images, masks = learner.sampler.batch(train, config.batch_size)
        learner.step_runner(images, masks)
    per_step = (time.perf_counter() - started) / steps
    return learner._score(learner.net, [val], learner.model.info.scale), per_step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--variant", default=SCRATCH_VARIANT)
    args = p.parse_args()
    print(f"CPU: {cpu_name()}; torch {torch.__version__}; {args.variant}, {args.steps} steps")
    for precision in ("fp32", "bf16"):
        results = [run(precision, seed, args.steps, args.variant) for seed in args.seeds]
        scores = " ".join(f"{m:.3f}" for m, _ in results)
        print(
            f"{precision}: validation mIoU {scores} (seeds {args.seeds}); "
            f"{np.mean([s for _, s in results]):.2f} s per step",
            flush=True,
        )


if __name__ == "__main__":
    main()
