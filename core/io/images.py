"""Read any common image file as an ``HxWx3 uint8`` RGB array."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from core.base.errors import ImageReadError, ImageTooLargeError

# Pillow's own decompression-bomb guard stops at 179 MP; we apply our own, larger limit.
Image.MAX_IMAGE_PIXELS = None

DEFAULT_MAX_PIXELS = 40_000 * 40_000
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".ppm", ".pgm", ".pbm"}
)


def is_image_path(path: str | Path) -> bool:
    """True when the file name has an image suffix we read."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` from the header only, with EXIF rotation applied."""
    path = Path(path)
    with _open(path) as img:
        w, h = img.size
        if img.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8):
            w, h = h, w
        return w, h


def read_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read ``path`` as RGB uint8: EXIF orientation applied, alpha composited on white.

    16-bit and float greyscale (microscopy TIFFs, depth PNGs) is stretched linearly between
    its 0.1st and 99.9th percentiles. Raises ``ImageReadError`` naming the file for missing,
    truncated or non-image files and ``ImageTooLargeError`` above ``max_pixels``.
    """
    path = Path(path)
    with _open(path) as img:
        w, h = img.size
        if w * h > max_pixels:
            raise ImageTooLargeError(
                f"{w}x{h} is {w * h / 1e6:.0f} megapixels, above the limit of {max_pixels / 1e6:.0f}; "
                "raise the limit (--max-pixels) if you trust this file",
                path,
            )
        try:
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageReadError(
                f"the image data is damaged or truncated ({exc}); re-export or re-download it", path
            ) from exc


def _open(path: Path) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Image.open(path)
    except FileNotFoundError as exc:
        raise ImageReadError("file not found; check the path", path) from exc
    except IsADirectoryError as exc:
        raise ImageReadError("is a folder, not an image", path) from exc
    except PermissionError as exc:
        raise ImageReadError("permission denied; check the file's permissions", path) from exc
    except UnidentifiedImageError as exc:
        raise ImageReadError(
            "not an image file (supported: JPEG, PNG, TIFF, BMP, WebP, GIF, PNM)", path
        ) from exc
    except OSError as exc:
        raise ImageReadError(
            f"cannot open: the file is damaged or truncated ({exc}); re-export or re-download it", path
        ) from exc


def _to_rgb(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("RGB",):
        return np.asarray(img, dtype=np.uint8).copy()
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return np.repeat(stretch_to_uint8(np.asarray(img))[..., None], 3, axis=2)
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"), dtype=np.uint8).copy()
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def stretch_to_uint8(arr: np.ndarray, low_pct: float = 0.1, high_pct: float = 99.9) -> np.ndarray:
    """Map a high-bit-depth greyscale array to uint8 by a robust linear stretch."""
    data = arr.astype(np.float32)
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return np.zeros(arr.shape, dtype=np.uint8)
    sample = finite[:: max(1, finite.size // 1_000_000)]
    lo, hi = np.percentile(sample, [low_pct, high_pct])
    if hi <= lo:
        lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    scaled = (np.nan_to_num(data, nan=lo) - lo) * (255.0 / (hi - lo))
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)
