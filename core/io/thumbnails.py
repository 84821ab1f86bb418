"""Small previews of images for the image list, decoded no larger than needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from core.io.images import DEFAULT_MAX_PIXELS, open_image, read_image

FAST_MODES = ("RGB", "L", "P", "RGBA", "CMYK")  # what Pillow scales down without our conversion


def thumbnail(path: str | Path, side: int, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An ``hxwx3 uint8`` preview of ``path`` fitting ``side`` x ``side``, as it is shown (EXIF
    rotation applied). A JPEG is decoded at a fraction of its size; an image above ``max_pixels``
    is refused like any other read (``ImageTooLargeError``), before it is decoded."""
    with open_image(path, max_pixels=max_pixels) as img:
        if img.mode in FAST_MODES:
            img.draft("RGB", (side * 2, side * 2))  # JPEG: decode at 1/2 to 1/8 of the size
            small = ImageOps.exif_transpose(img)
            small.thumbnail((side, side))
            return np.asarray(small.convert("RGB"))
    small = Image.fromarray(read_image(path, max_pixels=max_pixels))  # 16-bit, float: stretched
    small.thumbnail((side, side))
    return np.asarray(small)
