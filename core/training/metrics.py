"""The confusion matrix and the four FCN metrics (Long et al., section 5), void excluded."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.io.labels import VOID


def confusion_matrix(pred: np.ndarray, true: np.ndarray, num_classes: int) -> np.ndarray:
    """``(C, C) int64`` counts: row = true class, column = predicted class; void pixels skipped."""
    if pred.shape != true.shape:
        raise ValueError(f"prediction {pred.shape} and truth {true.shape} differ in size")
    t = true.ravel().astype(np.int64)
    p = pred.ravel().astype(np.int64)
    keep = t != VOID
    t, p = t[keep], p[keep]
    if t.size and (t.max() >= num_classes or p.max() >= num_classes):
        raise ValueError(f"labels must be below {num_classes} (or 255 for void in the truth)")
    return np.bincount(num_classes * t + p, minlength=num_classes**2).reshape(num_classes, num_classes)


@dataclass(frozen=True)
class Scores:
    """Pixel accuracy, mean accuracy, mean IoU, frequency-weighted IoU, and IoU per class.

    A class absent from both truth and prediction has IoU ``nan`` and does not count in the
    means; mean accuracy averages over the classes present in the truth.
    """

    pixel_accuracy: float
    mean_accuracy: float
    mean_iou: float
    fw_iou: float
    per_class_iou: tuple[float, ...]

    def as_dict(self) -> dict[str, float | list[float | None]]:
        return {
            "pixel_accuracy": self.pixel_accuracy,
            "mean_accuracy": self.mean_accuracy,
            "mean_iou": self.mean_iou,
            "fw_iou": self.fw_iou,
            "per_class_iou": [None if np.isnan(v) else v for v in self.per_class_iou],
        }


def scores(conf: np.ndarray) -> Scores:
    """The FCN paper's metrics from a confusion matrix ``n[i, j]`` (true i predicted j)."""
    n = conf.astype(np.float64)
    hits = np.diag(n)
    truth = n.sum(axis=1)  # t_i
    union = truth + n.sum(axis=0) - hits
    total = truth.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = hits / truth
        iou = hits / union
    present = truth > 0
    return Scores(
        pixel_accuracy=float(hits.sum() / total) if total else float("nan"),
        mean_accuracy=float(np.mean(acc[present])) if present.any() else float("nan"),
        mean_iou=float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        fw_iou=float(np.nansum(truth * np.nan_to_num(iou)) / total) if total else float("nan"),
        per_class_iou=tuple(float(v) for v in iou),
    )


class ConfusionMeter:
    """Accumulates a confusion matrix over many images."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, pred: np.ndarray, true: np.ndarray) -> None:
        self.matrix += confusion_matrix(pred, true, self.num_classes)

    def scores(self) -> Scores:
        return scores(self.matrix)
