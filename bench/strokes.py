"""Strokes until each image is right: a simulated annotator paints the largest error, again and
again, with no model (manual), with the app's assistant learning from random weights after
every stroke (assisted: the network and the quick pixel classifier it blends in, as in the
app), and with an ilastik-style random forest (the anchor). Prints figures.

    python bench/strokes.py [--images 8] [--learn-seconds 1.0] [--pairs IMAGE:TRUTH ...] [--json]
                            [--network-only]   (the assistant without its quick classifier)
                            [--quick-only]     (its quick classifier alone: no network, no clock)

The annotator's rules, for an image with truth T (class indices, 255 void) and shown label L:
- band: pixels whose 3x3 neighbourhood in T holds more than one class; never counted as wrong.
- W = (L != T) and (T != 255) and not band. For each class c the 8-connected components of
  W and (T == c); the largest over all classes is painted next. Under 10 pixels: done.
- Opening strokes: while the prediction (outside the painted pixels) is entirely unlabelled,
  the classes present take turns (0, 1, ...; at most two rounds), each stroke in the largest
  component of its class.
- A stroke: p = the component's pixel farthest from any pixel outside it (Euclidean distance
  transform; ties: first in row-major order), r = min(12, max(1, floor(distance at p))); the
  pixels of the disk of radius r around p that lie in the component are painted c for good.
- After each stroke the assistant learns for ``--learn-seconds`` and predicts; L = painted
  where painted, else the prediction. At most 400 strokes an image; then it is reviewed with
  its final L and the next image starts from the assistant's prediction.
- Manual: the same annotator with no model; L starts all background (class 0).

Data: the nuclei tiles of ``bench/session.py``, or ``--pairs`` of an image and its index-mask
truth (PNG, 255 void). The anchor needs scikit-image and scikit-learn (``pip install -e
".[bench]"``); without them it is left out with a line saying so.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.session import cpu_name, nuclei_tiles  # noqa: E402
from core.base.choices import SCRATCH_VARIANT  # noqa: E402
from core.io.images import read_image  # noqa: E402
from core.io.labels import VOID, classes_from_names  # noqa: E402
from core.model.checkpoints import ModelInfo, new_model  # noqa: E402
from core.training.assist import Assistant  # noqa: E402
from core.training.learner import LearnerConfig  # noqa: E402

MAX_STROKES = 400
SMALLEST = 10  # a largest error below this many pixels: the image is done
EIGHT = np.ones((3, 3), bool)


def edge_band(truth: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood in ``truth`` holds more than one class (void is no class)."""
    t = truth.astype(np.int16)
    high = ndimage.maximum_filter(np.where(t == VOID, -1, t), size=3, mode="nearest")
    low = ndimage.minimum_filter(np.where(t == VOID, 999, t), size=3, mode="nearest")
    return (high >= 0) & (low < VOID) & (high != low)


def largest_component(wrong: np.ndarray) -> np.ndarray | None:
    """The largest 8-connected component of ``wrong`` (the first found on a tie), or None."""
    parts, count = ndimage.label(wrong, structure=EIGHT)
    if count == 0:
        return None
    sizes = np.bincount(parts.ravel())[1:]
    return parts == int(np.argmax(sizes)) + 1


def stroke(component: np.ndarray) -> np.ndarray:
    """The disk around the component's innermost pixel, inside the component."""
    distance = ndimage.distance_transform_edt(component)
    y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
    r = min(12, max(1, math.floor(distance[y, x])))
    rows, cols = np.ogrid[: component.shape[0], : component.shape[1]]
    return component & ((rows - y) ** 2 + (cols - x) ** 2 <= r * r)


def next_stroke(
    label: np.ndarray, truth: np.ndarray, band: np.ndarray, opening: int | None
) -> tuple[int, np.ndarray] | None:
    """The class and pixels of the next stroke, or None when the image is done. ``opening``:
    the number of opening strokes made so far, while the prediction is still unlabelled."""
    wrong = (label != truth) & (truth != VOID) & ~band
    classes = [int(c) for c in np.unique(truth) if c != VOID]
    if opening is not None and opening < 2 * len(classes):
        c = classes[opening % len(classes)]
        component = largest_component(wrong & (truth == c))
        if component is not None:
            return c, stroke(component)
    best: tuple[int, np.ndarray] | None = None
    for c in classes:
        component = largest_component(wrong & (truth == c))
        if component is not None and (best is None or component.sum() > best[1].sum()):
            best = (c, component)
    if best is None or best[1].sum() < SMALLEST:
        return None
    return best[0], stroke(best[1])


def foreground_iou(label: np.ndarray, truth: np.ndarray, band: np.ndarray) -> float:
    """IoU of the foreground (any class but 0) of ``label`` and ``truth``, outside the band."""
    counted = (truth != VOID) & ~band
    a = (label != 0) & (label != VOID) & counted
    b = (truth != 0) & counted
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


@dataclass
class Done:
    strokes: int
    iou: float
    seconds: float
    steps: int = 0  # the helper's learning steps


def annotate(helper, image_id: str, image: np.ndarray, truth: np.ndarray, learn_s: float) -> Done:
    """Paint ``image`` with ``helper`` (``Assistant``'s interface) until the annotator is done."""
    started = time.perf_counter()
    band = edge_band(truth)
    helper.start(image_id, image)
    painted = np.full(truth.shape, VOID, np.uint8)
    label = helper.predict()
    strokes = opening = steps = 0
    while strokes < MAX_STROKES:
        unlabelled = bool((label[painted == VOID] == VOID).all())
        step = next_stroke(label, truth, band, opening if unlabelled else None)
        if step is None:
            break
        c, pixels = step
        painted[pixels] = c
        strokes += 1
        opening += unlabelled
        helper.paint(painted)
        steps += helper.learn(learn_s)
        label = helper.predict()
    helper.review(label)
    return Done(strokes, foreground_iou(label, truth, band), time.perf_counter() - started, steps)


class Manual:
    """No model: the label starts all background and only strokes change it."""

    def start(self, image_id: str, image: np.ndarray) -> None:
        self.painted = np.full(image.shape[:2], VOID, np.uint8)

    def paint(self, painted: np.ndarray) -> None:
        self.painted = painted.copy()

    def learn(self, seconds: float) -> int:
        return 0

    def predict(self) -> np.ndarray:
        return np.where(self.painted != VOID, self.painted, 0).astype(np.uint8)

    def review(self, label: np.ndarray) -> None:
        pass


class QuickOnly:
    """The assistant with its quick classifier alone: its steps after each stroke and no network,
    so the strokes depend on the seed, not on the CPU's speed (a minute for eight tiles)."""

    def __init__(self, assistant: Assistant) -> None:
        self.assistant = assistant

    def __getattr__(self, name: str):
        return getattr(self.assistant, name)

    def learn(self, seconds: float) -> int:
        return self.assistant.learn(seconds, network=False)


class ForestAnchor:
    """ilastik's way: a random forest (100 trees) on multiscale intensity, edge and texture
    features (sigma 0.5-16), retrained after every stroke on the painted pixels and the reviewed
    images (up to ``per_image`` pixels of each, drawn at random)."""

    def __init__(self, per_image: int = 5000, seed: int = 0) -> None:
        import warnings

        from skimage.feature import multiscale_basic_features
        from sklearn.ensemble import RandomForestClassifier

        # scikit-learn warns about its own thread pool when called from a script's main thread
        warnings.filterwarnings("ignore", message=".*sklearn.utils.parallel.delayed.*")

        self._features = lambda image: multiscale_basic_features(
            image, channel_axis=-1, sigma_min=0.5, sigma_max=16
        )
        self._forest = lambda: RandomForestClassifier(n_estimators=100, n_jobs=-1, random_state=seed)
        self.per_image, self.rng = per_image, np.random.default_rng(seed)
        self.reviewed: list[tuple[np.ndarray, np.ndarray]] = []
        self.model = None

    def start(self, image_id: str, image: np.ndarray) -> None:
        self.features = self._features(image)
        self.painted = np.full(image.shape[:2], VOID, np.uint8)

    def paint(self, painted: np.ndarray) -> None:
        self.painted = painted.copy()

    def learn(self, seconds: float) -> int:
        known = self.painted != VOID
        xs = [self.features[known], *(x for x, _ in self.reviewed)]
        ys = [self.painted[known], *(y for _, y in self.reviewed)]
        self.model = self._forest().fit(np.concatenate(xs), np.concatenate(ys))
        return 1

    def predict(self) -> np.ndarray:
        if self.model is None:
            return self.painted.copy()
        h, w = self.painted.shape
        guess = self.model.predict(self.features.reshape(h * w, -1)).reshape(h, w).astype(np.uint8)
        return np.where(self.painted != VOID, self.painted, guess)

    def review(self, label: np.ndarray) -> None:
        known = np.flatnonzero(label.ravel() != VOID)
        take = self.rng.choice(known, min(self.per_image, known.size), replace=False)
        flat = self.features.reshape(-1, self.features.shape[-1])
        self.reviewed.append((flat[take], label.ravel()[take]))


def load_pairs(pairs: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """``IMAGE:TRUTH`` pairs: an image and its index mask (255 void) of the same size."""
    out = []
    for pair in pairs:
        image_path, sep, truth_path = pair.rpartition(":")
        if not sep:
            raise SystemExit(f"{pair}: give IMAGE:TRUTH (an image and its index mask)")
        image = read_image(Path(image_path))
        with Image.open(truth_path) as mask:
            truth = np.asarray(mask).astype(np.uint8)
        if truth.shape != image.shape[:2]:
            raise SystemExit(f"{truth_path}: {truth.shape[::-1]} pixels, its image {image.shape[1::-1]}")
        out.append((image, truth))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=8, help="nuclei tiles (without --pairs)")
    p.add_argument("--pairs", nargs="+", metavar="IMAGE:TRUTH", help="your own images and index masks")
    p.add_argument("--first", type=int, default=None, help="annotate only the first N images")
    p.add_argument("--learn-seconds", type=float, default=1.0, help="learning after each stroke")
    p.add_argument("--variant", default=SCRATCH_VARIANT)
    p.add_argument("--precision", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-anchor", action="store_true", help="leave the random forest out")
    only = p.add_mutually_exclusive_group()
    only.add_argument("--network-only", action="store_true", help="the network alone, no quick classifier")
    only.add_argument("--quick-only", action="store_true", help="its quick classifier alone (no wall clock)")
    p.add_argument("--json", action="store_true", help="the figures as one JSON object on the last line")
    args = p.parse_args()
    data = (load_pairs(args.pairs) if args.pairs else nuclei_tiles(args.images))[: args.first]
    classes = max(int(t[t != VOID].max()) for _, t in data) + 1
    torch.manual_seed(args.seed)
    names = (
        ["background", *(f"class {i}" for i in range(1, classes))]
        if classes > 2
        else ["background", "nucleus"]
    )
    model = new_model(ModelInfo(variant=args.variant, classes=classes_from_names(names)))
    helpers = {
        "manual": Manual(),
        "assisted": Assistant(
            model, LearnerConfig(precision=args.precision, seed=args.seed), quick=not args.network_only
        ),
    }
    if args.quick_only:
        helpers["assisted"] = QuickOnly(helpers["assisted"])
    if not args.no_anchor:
        try:
            helpers["anchor"] = ForestAnchor(seed=args.seed)
        except ImportError as exc:
            print(f"anchor left out: {exc.name} is not installed (pip install -e '.[bench]')")
    print(f"CPU: {cpu_name()}; {len(data)} images; {args.variant} from random weights; {vars(args)}")
    print("| image | " + " | ".join(f"{k} strokes" for k in helpers) + " | assisted / manual | "
          + " | ".join(f"IoU {k}" for k in helpers) + " | seconds assisted | steps assisted |")  # fmt: skip
    print("|" + " --- |" * (2 * len(helpers) + 4))
    rows = []
    for i, (image, truth) in enumerate(data):
        done = {k: annotate(h, f"image{i}", image, truth, args.learn_seconds) for k, h in helpers.items()}
        rows.append(done)
        ratio = done["assisted"].strokes / max(1, done["manual"].strokes)
        print(f"| {i + 1} | " + " | ".join(str(d.strokes) for d in done.values()) + f" | {ratio:.2f} | "
              + " | ".join(f"{d.iou:.3f}" for d in done.values())
              + f" | {done['assisted'].seconds:.0f} | {done['assisted'].steps} |",
              flush=True)  # fmt: skip
    for first in (0, 1):
        totals = {k: sum(r[k].strokes for r in rows[first:]) for k in helpers}
        print(f"images {first + 1}..{len(rows)}: " + ", ".join(f"{k} {n}" for k, n in totals.items())
              + f"; assisted / manual {totals['assisted'] / max(1, totals['manual']):.2f}")  # fmt: skip
    helpers["assisted"].close()
    if args.json:
        images = [
            {"manual": r["manual"].strokes, "assisted": r["assisted"].strokes,
             "iou_manual": r["manual"].iou, "iou_assisted": r["assisted"].iou,
             "seconds": r["assisted"].seconds, "steps": r["assisted"].steps}
            | ({"anchor": r["anchor"].strokes, "iou_anchor": r["anchor"].iou} if "anchor" in r else {})
            for r in rows
        ]  # fmt: skip
        print(json.dumps({
            "images": images, "total_manual": sum(r["manual"].strokes for r in rows),
            "total_assisted": sum(r["assisted"].strokes for r in rows), "cpu": cpu_name(),
        }))  # fmt: skip


if __name__ == "__main__":
    main()
