"""A simulated annotation session: how much a user still corrects per image as the model learns.

    python bench/session.py [--images 8] [--budget 60] [--precision auto fp32] [--crop 256] ...

The nuclei microscopy image (tests/data) is cut into ``--images`` tiles, annotated in turn.
For each: predict it with the model in use, count the pixels that differ from the truth
relative to its foreground (painting it from scratch costs the foreground: effort 100 %),
add it to the continuous learner as reviewed (the prediction's mistakes recorded), then let
the learner train for ``--budget`` seconds of training; models it adopts replace the one in
use, exactly as in the app. Starts from random weights (no pretrained weights offline).
Prints per-image effort, the mean over images 2..N, training seconds per image and when the
first model was adopted, for each precision asked for, and the learner's steps per second
against the bare step's (the same network, batch and precision with nothing around it): the
ratio is what the loop around the step costs. Not a test: figures only.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.base.choices import SCRATCH_VARIANT  # noqa: E402
from core.compute.devices import training_precision_name  # noqa: E402
from core.inference.predictor import Predictor  # noqa: E402
from core.io.images import read_image  # noqa: E402
from core.io.labels import classes_from_names  # noqa: E402
from core.model.checkpoints import ModelInfo, new_model  # noqa: E402
from core.training.learner import Adopted, ContinuousLearner, LearnerConfig  # noqa: E402
from core.training.sampling import Example  # noqa: E402
from core.training.step import StepRunner, build_optimizer  # noqa: E402


def tile_slices(count: int, side: int = 512) -> list[tuple[slice, slice]]:
    """A ``side`` square image cut into ``count`` equal tiles (rows of two), in reading order."""
    cols = 2 if count > 1 else 1
    rows = count // cols
    h, w = side // rows, side // cols
    return [(slice(r * h, (r + 1) * h), slice(c * w, (c + 1) * w)) for r in range(rows) for c in range(cols)]


def nuclei_tiles(count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The 512x512 nuclei image and its 0/1 truth cut into ``count`` tiles (``tile_slices``)."""
    image = read_image(ROOT / "tests/data/nuclei/nuclei.tif")
    truth = (np.asarray(Image.open(ROOT / "tests/data/nuclei/nuclei_instances.tif")) > 0).astype(np.uint8)
    return [(image[s], truth[s]) for s in tile_slices(count)]


def cpu_name() -> str:
    """The processor's model name and the threads torch uses, for every printed figure."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    return f"{cpu}, {torch.get_num_threads()} threads"


def effort(label: np.ndarray, truth: np.ndarray) -> float:
    """The pixels to correct in ``label`` relative to ``truth``'s foreground (painting it from
    scratch = 1)."""
    return float((label != truth).sum() / max(1, (truth > 0).sum()))


EDGE_BANDS = ("on the edge", "1-2 px from it", "farther")


def error_bands(pred: np.ndarray, truth: np.ndarray) -> dict[str, int]:
    """Missed and extra foreground pixels by their distance from the truth's edge, and the
    foreground: "on the edge" is the one-pixel layer either side of it (distance 1),
    "1-2 px from it" the next layer (up to 2 px, diagonals included)."""
    from scipy import ndimage

    fg = truth > 0
    distance = np.where(fg, ndimage.distance_transform_edt(fg), ndimage.distance_transform_edt(~fg))
    bands = (distance <= 1, (distance > 1) & (distance <= 2), distance > 2)
    counts = {"foreground": int(fg.sum())}
    for kind, wrong in (("missed", (pred == 0) & fg), ("extra", (pred > 0) & ~fg)):
        for name, band in zip(EDGE_BANDS, bands, strict=True):
            counts[f"{kind} {name}"] = int((wrong & band).sum())
    return counts


def format_bands(counts: dict[str, int]) -> str:
    """``error_bands``' counts (or their sums) relative to the foreground."""
    n = max(1, counts["foreground"])
    parts = []
    for kind in ("missed", "extra"):
        shares = [counts[f"{kind} {name}"] / n for name in EDGE_BANDS]
        detail = ", ".join(f"{share:.1%} {name}" for share, name in zip(shares, EDGE_BANDS, strict=True))
        parts.append(f"{kind} {sum(shares):.1%} ({detail})")
    return "; ".join(parts)


def try_refine(image: np.ndarray, prediction, truth: np.ndarray) -> str:
    """Effort after edge-aware refinement of the foreground probability (guided filter)."""
    from scipy import ndimage

    def box(x, r):
        return ndimage.uniform_filter(x, size=2 * r + 1, mode="reflect")

    guide = image.astype(np.float32).mean(axis=2) / 255
    conf = prediction.confidence.astype(np.float32)
    p = np.where(prediction.label == 1, conf, 1 - conf)
    fg = max(1, int((truth > 0).sum()))
    out = []
    for r in (1, 2, 4, 8):
        for eps in (1e-4, 1e-3, 1e-2):
            m_i, m_p = box(guide, r), box(p, r)
            a = (box(guide * p, r) - m_i * m_p) / (box(guide * guide, r) - m_i * m_i + eps)
            b = m_p - a * m_i
            q = box(a, r) * guide + box(b, r)
            out.append(f"r{r}/{eps:g} {((q > 0.5) != (truth > 0)).sum() / fg:.1%}")
    return ", ".join(out)


def _foreground(prediction) -> np.ndarray:
    conf = prediction.confidence.astype(np.float32)
    return np.where(prediction.label == 1, conf, 1 - conf)


def try_threshold(in_use, learner, prediction, truth: np.ndarray) -> str:
    """Effort when the foreground threshold is chosen on the held-out reviewed images (honest)
    and on this image itself (the best any threshold could do)."""
    grid = np.round(np.arange(0.2, 0.81, 0.05), 2)

    def efforts(p, t):
        fg = max(1, int((t > 0).sum()))
        return np.array([((p > g) != (t > 0)).sum() / fg for g in grid])

    heldout = [e for e in learner._examples.values() if e.id in learner._heldout]
    chosen = 0.5
    if heldout:
        total = sum(efforts(_foreground(in_use.predict(e.image)), e.label) for e in heldout)
        chosen = float(grid[int(np.argmin(total))])
    here = efforts(_foreground(prediction), truth)
    best = int(np.argmin(here))
    at = here[int(np.argmin(np.abs(grid - chosen)))]
    half = here[int(np.argmin(np.abs(grid - 0.5)))]
    return f"0.5 -> {half:.1%}, held-out {chosen:.2f} -> {at:.1%}, best {grid[best]:.2f} -> {here[best]:.1%}"


def bare_steps_per_second(learner: ContinuousLearner, examples: list[Example], steps: int = 10) -> float:
    """The learner's network, batch and precision with nothing around the step: a copy trained
    ``steps`` times on one batch (sampling, the weight average and scoring left out)."""
    net = copy.deepcopy(learner.net)
    runner = StepRunner(
        net, build_optimizer(net, lr=learner.config.lr), learner.device, learner.config.precision
    )
    images, masks = learner.sampler.batch(examples, learner.config.batch_size)
    runner(images, masks)  # warm-up
    started = time.perf_counter()
    for _ in range(steps):
        runner(images, masks)
    return steps / (time.perf_counter() - started)


def session(args: argparse.Namespace, precision: str) -> dict:
    torch.manual_seed(args.seed)
    info = ModelInfo(variant=args.variant, classes=classes_from_names(["background", "nucleus"]))
    model = new_model(info)
    config = LearnerConfig(
        crop=args.crop, batch_size=args.batch, lr=args.lr, precision=precision, device="cpu",
        frozen=tuple(args.frozen), wrong_share=args.wrong_share, all_orientations=args.orientations,
        budget_steps=args.first_budget, seed=args.seed, scale=args.scale, average=args.average,
        rest_after_steps=args.rest_after,
    )  # fmt: skip
    learner = ContinuousLearner(model, config)
    in_use = Predictor(new_model(info), device="cpu", precision=precision)
    in_use.model.module.load_state_dict(model.module.state_dict())
    run = learner.run()
    started = time.perf_counter()
    efforts, train_s, adoptions, first_adoption, added = [], [], 0, None, []
    for i, (image, truth) in enumerate(nuclei_tiles(args.images)):
        prediction = in_use.predict(image)
        pred = prediction.label
        wrong = pred != truth
        efforts.append(effort(pred, truth))
        if args.analyse:
            print("  " + format_bands(error_bands(pred, truth)), flush=True)
        if args.try_refine:
            print("  refined: " + try_refine(image, prediction, truth), flush=True)
        if args.try_threshold and i > 0:
            print("  threshold: " + try_threshold(in_use, learner, prediction, truth), flush=True)
        added.append(Example(f"tile{i}", image, truth, wrong))
        learner.add(added[-1])
        if i == args.images - 1:
            break
        start = learner.train_seconds
        while learner.train_seconds - start < args.budget:
            event = next(run)
            if event.state == "resting":
                break  # no improvement for long: the app would rest until the next review
            if isinstance(event, Adopted):
                adoptions += 1
                if first_adoption is None:
                    first_adoption = event.train_seconds
                in_use = Predictor(event.model, device="cpu", precision=precision)
        train_s.append(learner.train_seconds - start)
        print(
            f"  image {i + 1}: effort {efforts[-1]:6.1%}  steps {learner.steps:4d}  "
            f"held-out mIoU {learner.score if learner.score is not None else float('nan'):.3f}",
            flush=True,
        )
    run.close()
    wall = time.perf_counter() - started
    print(f"  image {args.images}: effort {efforts[-1]:6.1%}", flush=True)
    return {
        "efforts": efforts,
        "mean_2_n": float(np.mean(efforts[1:])),
        "train_s": float(np.mean(train_s)),
        "adoptions": adoptions,
        "first_adoption_s": first_adoption,
        "precision": training_precision_name(torch.device("cpu"), precision),
        "steps": learner.steps,
        "steps_per_s": learner.steps / max(learner.train_seconds, 1e-9),
        "steps_per_wall_s": learner.steps / wall,
        "bare_steps_per_s": bare_steps_per_second(learner, added[:-1]),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--budget", type=float, default=60.0, help="training seconds after each image")
    p.add_argument("--precision", nargs="+", default=["fp32", "auto"])
    p.add_argument("--variant", default=SCRATCH_VARIANT, help="default: the app's model learnt from scratch")
    p.add_argument("--crop", type=int, default=LearnerConfig.crop)
    p.add_argument("--batch", type=int, default=LearnerConfig.batch_size)
    p.add_argument("--lr", type=float, default=LearnerConfig.lr)
    p.add_argument("--frozen", nargs="*", default=list(LearnerConfig.frozen))
    p.add_argument("--wrong-share", type=float, default=LearnerConfig.wrong_share)
    p.add_argument("--orientations", action="store_true", help="train with all 8 orientations")
    p.add_argument(
        "--first-budget",
        type=int,
        default=None,
        help="steps before the first adoption (default: the recipe's)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--average", type=float, default=LearnerConfig.average, help="weight average decay")
    p.add_argument("--scale", type=float, default=None, help="input scale (default: chosen from the labels)")
    p.add_argument(
        "--rest-after", type=int, default=None,
        help="steps without an adoption before the learner rests until the next image (default: recipe's)",
    )  # fmt: skip
    p.add_argument("--analyse", action="store_true", help="print where each image's corrections are")
    p.add_argument("--try-refine", action="store_true", help="print the effort after edge-aware refinement")
    p.add_argument("--try-threshold", action="store_true", help="print the effort at other thresholds")
    args = p.parse_args()
    print(f"CPU: {cpu_name()}; torch {torch.__version__}")
    print(f"settings: {vars(args)}")
    for precision in args.precision:
        print(f"precision {precision}:", flush=True)
        t = time.perf_counter()
        r = session(args, precision)
        print(
            f"  => {r['precision']}: mean effort images 2..{args.images} {r['mean_2_n']:.1%} "
            f"(per image {' '.join(f'{e:.0%}' for e in r['efforts'])}); "
            f"{r['train_s']:.0f} s training per image, {r['steps']} steps, {r['adoptions']} adoptions, "
            f"first after {r['first_adoption_s'] or float('nan'):.0f} s of training; "
            f"wall {time.perf_counter() - t:.0f} s",
            flush=True,
        )
        print(
            f"  => steps/s: {r['steps_per_s']:.2f} of the learner's own training seconds, "
            f"{r['steps_per_wall_s']:.2f} of the session's wall time; the bare step alone "
            f"{r['bare_steps_per_s']:.2f}/s: ratio {r['steps_per_s'] / r['bare_steps_per_s']:.2f} "
            f"(wall: {r['steps_per_wall_s'] / r['bare_steps_per_s']:.2f})",
            flush=True,
        )


if __name__ == "__main__":
    main()
