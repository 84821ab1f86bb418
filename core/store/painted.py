"""Which pixels of a label the user set (brush, fill, polygon, eraser to a class), apart from
the ones predicted for them: kept beside each label so that the assist never repaints them,
after a save and reopen as before.

One-bit PNG per image (``PROJECT/painted/<id>.png``, a few kB), written atomically like the
labels and before the database row that points at the new label commits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from core.base.atomic import atomic_path

FOLDER = "painted"


def write_painted(path: str | Path, painted: np.ndarray) -> None:
    """Write the ``HxW`` bool mask as a one-bit PNG, atomically."""
    if painted.dtype != bool or painted.ndim != 2:
        raise ValueError(f"a painted mask is HxW bool, got {painted.dtype} {painted.shape}")
    with atomic_path(path) as tmp:
        Image.fromarray(painted).save(tmp, format="PNG")


def read_painted(path: str | Path, shape: tuple[int, int]) -> np.ndarray | None:
    """The mask at ``path`` if it is there, readable and of ``shape``; else ``None`` (the caller
    then treats every labelled pixel as the user's: nothing they made gets repainted)."""
    try:
        with Image.open(path) as img:
            if img.size != (shape[1], shape[0]):
                return None
            return np.asarray(img.convert("1")).astype(bool)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
