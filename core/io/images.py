"""Read any common image file as an ``HxWx3 uint8`` RGB array, behind one size limit.

Every image this program decodes (photos, label maps, index masks, thumbnails, the images and
masks inside labelme JSON) is opened by ``open_image``, which reads the header and refuses an
image above the pixel limit before a single pixel is decoded: a file whose header claims
100,000 x 100,000 pixels is refused at once, not allocated. Pillow's own decompression-bomb
guard stays in force for the rest of the process; only where our limit is higher than
Pillow's (a user raising ``--max-pixels``) is it lifted, for that one header read.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from core.base.errors import ImageReadError, ImageTooLargeError

DEFAULT_MAX_PIXELS = 40_000 * 40_000
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".ppm", ".pgm", ".pbm"}
)
_PILLOW_GUARD = threading.Lock()  # held for each header read: Pillow's guard is process-wide


def is_image_path(path: str | Path) -> bool:
    """True when the file name has an image suffix we read."""
    return os.path.splitext(path)[1].lower() in IMAGE_SUFFIXES


def find_image(folder: Path, stem: str) -> Path | None:
    """The image called ``stem`` in ``folder`` with any suffix we read (any case), or ``None``."""
    exact = [folder / f"{stem}{s}" for s in sorted(IMAGE_SUFFIXES)]
    found = next((p for p in exact if p.is_file()), None)
    if found is None and folder.is_dir():  # .JPG, .Png: a folder scan only when the usual names miss
        named = sorted(folder.glob(f"{_glob_escape(stem)}.*"))
        found = next((p for p in named if p.stem == stem and is_image_path(p)), None)
    return found


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def open_image(
    source: str | Path | bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | Path | None = None
) -> Image.Image:
    """Open an image file (or the bytes of one) with only its header read; the caller decodes.

    Raises ``ImageTooLargeError`` above ``max_pixels`` and ``ImageReadError`` for a missing,
    damaged or unknown file, each naming the file (``name`` for bytes: the file they came from).
    """
    label = name if name is not None else source if not isinstance(source, bytes) else "embedded image"
    fp = io.BytesIO(source) if isinstance(source, bytes) else Path(source)
    # Every header read takes the lock: one that came while another had lifted Pillow's guard
    # would see it lifted, take that for Pillow's setting and put it back so (tested).
    with _PILLOW_GUARD, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our limit decides
        saved = Image.MAX_IMAGE_PIXELS
        lift = saved is not None and max_pixels > 2 * saved
        if lift:
            Image.MAX_IMAGE_PIXELS = None
        try:
            img = _open(fp, label)
        except Image.DecompressionBombError as exc:
            raise _too_large(label, None, max_pixels) from exc
        finally:
            if lift:
                Image.MAX_IMAGE_PIXELS = saved
    w, h = img.size
    if w * h > max_pixels:
        img.close()
        raise _too_large(label, (w, h), max_pixels)
    return img


def _too_large(label, size: tuple[int, int] | None, max_pixels: int) -> ImageTooLargeError:
    what = f"{size[0]}x{size[1]} is {size[0] * size[1] / 1e6:.0f} megapixels" if size else "the image"
    return ImageTooLargeError(
        f"{what}, above the limit of {max_pixels / 1e6:.0f} megapixels; raise the limit (--max-pixels) "
        "only if you trust this file",
        label,
    )


def image_size(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """``(width, height)`` from the header only, with EXIF rotation applied."""
    with open_image(path, max_pixels=max_pixels) as img:
        return displayed_size(img)


def displayed_size(img: Image.Image) -> tuple[int, int]:
    """``(width, height)`` of an open image as it is shown: turned by its EXIF orientation."""
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
    with open_image(path, max_pixels=max_pixels) as img:
        try:
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageReadError(
                f"the image data is damaged or truncated ({exc}); re-export or re-download it", path
            ) from exc


def _open(fp, path) -> Image.Image:
    try:
        return Image.open(fp)
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
