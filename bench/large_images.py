"""The learner with large reviewed images: its memory and its time; figures, not a test. Linux.

    python bench/large_images.py [--images 6] [--size 4096 6144] [--budgets-mb 100000 0]
                                 [--steps 150] [--variant unet]

``--images`` reviewed images of ``--size`` (the nuclei image tiled, each turned differently,
with its truth and a prediction that was wrong on a tenth of the pixels) join a continuous
learner (the app's from-scratch model and its recipe unless ``--variant``; the third image
is held out, as in the app), which then trains ``--steps`` steps. For each RAM budget: the
process' anonymous memory (what the system cannot drop under pressure, from /proc) after
each review and after training, the mapped files' size, the learner's steps per second, and
the share of its time spent scoring the held-out image. The bytes that crop centres need are
printed against the flat index of every labelled pixel (8 bytes each) used before.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from session import cpu_name  # noqa: E402

from core.base.choices import SCRATCH_VARIANT  # noqa: E402
from core.io.images import read_image  # noqa: E402
from core.io.labels import classes_from_names  # noqa: E402
from core.model.checkpoints import ModelInfo, new_model  # noqa: E402
from core.training.history import LearningHistory  # noqa: E402
from core.training.learner import ContinuousLearner, LearnerConfig  # noqa: E402
from core.training.sampling import Example  # noqa: E402


def anonymous_mb() -> float:
    """Resident anonymous memory of this process (RssAnon), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no RssAnon in /proc/self/status (not Linux?)")


def large_examples(count: int, size: tuple[int, int]):
    """``count`` reviewed examples of ``size``, made one at a time."""
    image = read_image(ROOT / "tests/data/nuclei/nuclei.tif")
    truth = (np.asarray(Image.open(ROOT / "tests/data/nuclei/nuclei_instances.tif")) > 0).astype(np.uint8)
    rng = np.random.default_rng(0)
    for i in range(count):
        reps = (-(-size[0] // 512), -(-size[1] // 512))
        tiled = np.tile(np.rot90(image, i), (*reps, 1))[: size[0], : size[1]]
        label = np.tile(np.rot90(truth, i), reps)[: size[0], : size[1]]
        wrong = rng.random(label.shape) < 0.1
        yield Example(f"large{i}", np.ascontiguousarray(tiled), np.ascontiguousarray(label), wrong)


def measure(budget_mb: float, args: argparse.Namespace) -> None:
    info = ModelInfo(variant=args.variant, classes=classes_from_names(["background", "nucleus"]))
    with tempfile.TemporaryDirectory() as tmp:
        history = LearningHistory(Path(tmp) / "learning")
        config = LearnerConfig(memory_budget_mb=budget_mb, rest_after_steps=10**9)  # it must reach --steps
        learner = ContinuousLearner(new_model(info), config, history=history)
        gc.collect()
        start = anonymous_mb()
        print(f"RAM budget {budget_mb:g} MB:")
        for i, example in enumerate(large_examples(args.images, tuple(args.size))):
            index_mb = 8 * (example.labelled.size + example.wrong_pool.size) / 2**20
            pools_mb = (example.labelled.nbytes + example.wrong_pool.nbytes) / 2**20
            learner.add(example)
            del example
            gc.collect()
            files = sum(p.stat().st_size for p in history.cache_folder.glob("*.npy")) / 2**20
            print(
                f"  after review {i + 1}: +{anonymous_mb() - start:6.0f} MB anonymous memory, "
                f"{files:6.0f} MB mapped from files; crop centres {pools_mb:.1f} MB "
                f"(a flat index: {index_mb:.0f} MB)",
                flush=True,
            )
        run = learner.run()
        next(run)  # the first step sets the scale up
        t = time.perf_counter()
        first = learner.steps
        while learner.steps < first + args.steps:
            next(run)
        rate = (learner.steps - first) / (time.perf_counter() - t)
        grown = anonymous_mb() - start
        print(f"  after {args.steps} steps: +{grown:6.0f} MB anonymous memory; {rate:.1f} steps/s")
        share = learner.scoring_seconds / (learner.scoring_seconds + learner.train_seconds)
        spent = learner.scoring_seconds
        print(f"  scoring the held-out image: {spent:.1f} s, {share:.0%} of the learner's time")
        run.close()
        left = list(history.cache_folder.glob("*.npy")) if history.cache_folder.exists() else []
        print(f"  files left after it stopped: {len(left)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=6)
    p.add_argument("--size", type=int, nargs=2, default=[4096, 6144], metavar=("HEIGHT", "WIDTH"))
    p.add_argument("--budgets-mb", type=float, nargs="+", default=[100_000, 0])
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--variant", default=SCRATCH_VARIANT)
    args = p.parse_args()
    size = f"{args.size[0]}x{args.size[1]}"
    print(f"CPU: {cpu_name()}; {args.images} reviewed images of {size}; {args.variant}")
    for budget in args.budgets_mb:
        measure(budget, args)


if __name__ == "__main__":
    main()
