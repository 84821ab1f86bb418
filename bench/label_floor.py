"""How closely the nuclei image itself predicts its masks' edges. Prints figures, not a test.

    python bench/label_floor.py [--images 8] [--margin 4] [--sigmas 0 0.7 1 1.5]

bench/session.py counts the pixels a user corrects on each tile. This asks how many of
those corrections any outline drawn along the image's intensity could avoid, when it is
told the best intensity level for each nucleus separately: every pixel within ``--margin``
px of a nucleus belongs to the nearest one; for each nucleus the threshold (on the image,
Gaussian-smoothed by sigma to tame the photon noise) that best reproduces its own mask
is chosen by looking at the mask; pixels further from every nucleus count as background.
Then every nucleus gets the same place in its own intensity range (the oracle's mean), and
the best single threshold for the whole image is printed too.

This is an oracle: it reads the truth that a model is never shown, so no model following
intensity edges can expect to do better, and the figures bound from below what outlining
by intensity can reach on these masks (a learnt model may place an edge off the contour,
so it is a yardstick for the session's figures, not a proof about every model).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from session import tile_slices  # noqa: E402

from core.io.images import read_image  # noqa: E402


def outlines(
    image: np.ndarray, instances: np.ndarray, margin: float, sigma: float, level: float | None = None
) -> tuple[np.ndarray, list[float]]:
    """The foreground from a threshold per nucleus on the (smoothed) image, and each threshold's
    place in its nucleus' range (0 at the 5th percentile around it, 1 at the 95th inside it).
    ``level`` None: each nucleus' own best threshold; else that same place in every range."""
    g = ndimage.gaussian_filter(image, sigma) if sigma else image
    dist, (iy, ix) = ndimage.distance_transform_edt(instances == 0, return_indices=True)
    owner = np.where(dist <= margin, instances[iy, ix], 0)
    out, places = np.zeros(instances.shape, bool), []
    for i in np.unique(owner[owner > 0]):
        region = owner == i
        inside, values = instances[region] > 0, g[region]
        low, high = np.percentile(values, 5), np.percentile(values[inside], 95)
        if level is None:
            levels = np.unique(np.quantile(values, np.linspace(0, 1, 300)))
            errors = [np.count_nonzero((values > t) != inside) for t in levels]
            threshold = levels[int(np.argmin(errors))]
        else:
            threshold = low + level * (high - low)
        out[region] = values > threshold
        places.append(float((threshold - low) / max(high - low, 1e-3)))
    return out, places


def per_tile(pred: np.ndarray, truth: np.ndarray, count: int) -> list[float]:
    """Effort per tile as bench/session.py counts it: differing pixels over the foreground."""
    return [
        float(np.count_nonzero(pred[s] != truth[s]) / max(1, np.count_nonzero(truth[s])))
        for s in tile_slices(count, truth.shape[0])
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--margin", type=float, default=4.0, help="px around each nucleus given its own level")
    p.add_argument("--sigmas", type=float, nargs="+", default=[0.0, 0.7, 1.0, 1.5])
    args = p.parse_args()
    image = read_image(ROOT / "tests/data/nuclei/nuclei.tif")[..., 0].astype(np.float32)
    instances = np.asarray(Image.open(ROOT / "tests/data/nuclei/nuclei_instances.tif")).astype(np.int32)
    truth = instances > 0

    def report(name: str, pred: np.ndarray) -> None:
        tiles = per_tile(pred, truth, args.images)
        print(
            f"{name}: per tile {' '.join(f'{e:.1%}' for e in tiles)}; "
            f"mean of tiles 2..{args.images} {np.mean(tiles[1:]):.1%}"
        )

    levels = np.unique(image)
    best = levels[int(np.argmin([np.count_nonzero((image > t) != truth) for t in levels]))]
    report(f"one threshold for the whole image ({best:g}, chosen on the truth)", image > best)
    for sigma in args.sigmas:
        pred, places = outlines(image, instances, args.margin, sigma)
        report(f"each nucleus' own best threshold, smoothed by sigma {sigma:g}", pred)
        mean = float(np.mean(places))
        print(f"  its place in each nucleus' range: mean {mean:.2f}, standard deviation {np.std(places):.2f}")
        pred, _ = outlines(image, instances, args.margin, sigma, level=mean)
        report(f"  every nucleus at that mean place ({mean:.2f})", pred)


if __name__ == "__main__":
    main()
