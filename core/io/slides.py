"""Whole-slide images and orthophotos, read region by region and never whole.

A ``Slide`` looks like a lazy ``HxWx3 uint8`` array: ``slide[y0:y1, x0:x1]`` decodes only the
tiles under that region, at level 0 (full resolution); ``read(level, y, x, h, w)`` reads any
pyramid level. Tiled and pyramidal TIFF (BigTIFF, OME-TIFF, GeoTIFF, SVS) is read through
``tifffile``'s zarr store, with ``imagecodecs`` decoding JPEG, JPEG 2000, LZW and Deflate
tiles; the slide formats that are not plain TIFF (NDPI, MIRAX, SCN, VMS, BIF) go through
OpenSlide. Ordinary files (PNG, JPEG, untiled TIFF) are not slides: ``read_image`` decodes them.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from core.base.errors import ImageReadError

TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")
# Vendor formats OpenSlide reads and tifffile does not (or only partly).
OPENSLIDE_SUFFIXES = frozenset({".ndpi", ".mrxs", ".scn", ".vms", ".vmu", ".bif", ".svslide"})
SLIDE_SUFFIXES = OPENSLIDE_SUFFIXES | {".svs", ".tif", ".tiff", ".ome.tif", ".btf", ".tf8"}
# GeoTIFF: pixel scale, tie points, transformation, the geo keys and their parameters.
GEO_TAGS = (33550, 33922, 34264, 34735, 34736, 34737)
CONVERT_HINT = (
    "convert it to a tiled pyramidal TIFF, e.g. `vips tiffsave IN OUT.tif --tile --pyramid "
    "--compression jpeg --bigtiff`"
)


class SlideError(ImageReadError):
    """A slide cannot be read: a missing library, an unsupported compression, a broken pyramid."""


class Slide:
    """A pyramid of ``levels`` (``(height, width)`` each, level 0 the full image), read lazily.

    ``geo`` holds the GeoTIFF tags of level 0 as ``(code, dtype, count, value)``, for outputs
    that must lie on the same ground.
    """

    ndim = 3
    dtype = np.dtype(np.uint8)

    def __init__(
        self, path: Path, levels: list[tuple[int, int]], geo: list[tuple[int, int, int, object]]
    ) -> None:
        self.path = path
        self.levels = tuple(levels)
        self.geo = geo

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(height, width, 3)`` of level 0."""
        return (*self.levels[0], 3)

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        rows, cols = key[0], key[1]
        h, w = self.levels[0]
        y0, y1, _ = rows.indices(h)
        x0, x1, _ = cols.indices(w)
        return self.read(0, y0, x0, max(0, y1 - y0), max(0, x1 - x0))

    def read(self, level: int, y: int, x: int, h: int, w: int) -> np.ndarray:
        """The ``h x w`` region at ``(y, x)`` of ``level`` as ``h x w x 3 uint8`` (clipped to the level)."""
        raise NotImplementedError

    def thumbnail(self, side: int = 256) -> np.ndarray:
        """The whole slide, at most ``side`` pixels a side, from the smallest level that covers it."""
        level = self.level_for(max(self.levels[0]) / side)
        lh, lw = self.levels[level]
        step = max(1, int(np.ceil(max(lh, lw) / side)))
        # Bands of rows: a slide without a pyramid is read through once, never held whole.
        band = max(step, (4096 // step) * step)
        rows = [self.read(level, y, 0, band, lw)[::step, ::step] for y in range(0, lh, band)]
        return np.ascontiguousarray(np.concatenate(rows))

    def level_for(self, downsample: float) -> int:
        """The smallest level still at least as detailed as ``downsample`` (level 0: 1)."""
        full = self.levels[0][1]
        best = 0
        for i, (_h, w) in enumerate(self.levels):
            if full / w <= downsample * 1.01:
                best = i
        return best

    def close(self) -> None:
        """Release the file."""

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_slide(path: str | Path, min_pixels: int = 0) -> bool:
    """True for files to read lazily: a vendor slide format, or a TIFF that is tiled or pyramidal
    (and has at least ``min_pixels``).

    Decided by content (the TIFF header and its first page), not by the name alone: a plain
    strip TIFF, a PNG or a JPEG is not a slide.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in OPENSLIDE_SUFFIXES:
        return True
    try:
        with path.open("rb") as fh:
            if fh.read(4) not in TIFF_MAGIC:
                return False
    except OSError:
        return False
    import tifffile

    try:
        with _quiet_tifffile(), tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            page = series.pages[0]
            return (
                bool(page.is_tiled or len(series.levels) > 1)
                and page.imagewidth * page.imagelength >= min_pixels
            )
    except Exception:  # a damaged TIFF is for the ordinary reader to report
        return False


def _data_end(page) -> int:
    """Where the last byte of a page's tiles lies in the file."""
    ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts, strict=False) if c]
    return max(ends, default=0)


@contextlib.contextmanager
def _quiet_tifffile() -> Iterator[None]:
    """tifffile logs a broken page and leaves it out; our checks name what is missing instead."""
    logger = logging.getLogger("tifffile")
    level, logger.level = logger.level, logging.CRITICAL
    try:
        yield
    finally:
        logger.level = level


def open_slide(path: str | Path) -> Slide:
    """Open a slide (see ``is_slide``); raises ``SlideError`` naming the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError("file not found; check the path", path)
    if path.suffix.lower() in OPENSLIDE_SUFFIXES:
        return _open_openslide(path)
    slide = _TiffSlide(path)
    slide.check()
    return slide


class _TiffSlide(Slide):
    """A tiled TIFF through tifffile's zarr store: one zarr array per level."""

    def __init__(self, path: Path) -> None:
        import tifffile

        try:
            import zarr
        except ImportError as exc:
            raise SlideError("reading tiled TIFFs needs zarr: pip install zarr", path) from exc
        try:
            with _quiet_tifffile():
                self._tif = tifffile.TiffFile(path)
                series = self._tif.series[0]
                count = len(series.levels)
                self._arrays = [zarr.open(series.aszarr(level=i), mode="r") for i in range(count)]
        except Exception as exc:
            if hasattr(self, "_tif"):
                self._tif.close()
            raise SlideError(f"cannot open this TIFF ({exc}); {CONVERT_HINT}", path) from exc
        self._axes = series.axes
        first = series.pages[0]
        self._declared = len(first.tags[330].value) + 1 if 330 in first.tags else 0  # SubIFDs
        self._file_size = path.stat().st_size
        self._ends = [_data_end(level.keyframe) for level in series.levels]
        geo = [(t.code, int(t.dtype), t.count, t.value) for t in first.tags.values() if t.code in GEO_TAGS]
        levels = [self._yx(level.shape) for level in series.levels]
        super().__init__(path, levels, geo)
        self._compression = getattr(first.compression, "name", str(first.compression))
        self._stretch: tuple[float, float] | None = None
        self._raw_dtype = np.dtype(series.dtype)

    def _yx(self, shape: tuple[int, ...]) -> tuple[int, int]:
        return shape[self._axes.index("Y")], shape[self._axes.index("X")]

    def check(self) -> None:
        """Decode a pixel of every level: a broken pyramid or a codec we lack fails here, not mid-run."""
        if self._declared > len(self.levels):
            self.close()
            raise SlideError(
                f"the pyramid declares {self._declared} levels but only {len(self.levels)} can be read "
                "(the file is truncated or damaged); re-export it or rebuild the pyramid: " + CONVERT_HINT,
                self.path,
            )
        for i, (h, w) in enumerate(self.levels):
            if i and not (h < self.levels[i - 1][0] and w < self.levels[i - 1][1]):
                self.close()
                raise SlideError(
                    f"pyramid level {i} is {w}x{h}, not smaller than level {i - 1}; rebuild the pyramid: "
                    + CONVERT_HINT,
                    self.path,
                )
            if self._ends[i] > self._file_size:
                self.close()
                raise SlideError(
                    f"pyramid level {i} ({w}x{h}) is cut short: its tiles run past the end of the file "
                    "(an interrupted copy or download); copy it again or " + CONVERT_HINT,
                    self.path,
                )
            try:
                self._raw(i, 0, 0, 1, 1)
            except Exception as exc:
                self.close()
                raise self._decode_error(i, exc) from exc

    def _decode_error(self, level: int, exc: Exception) -> SlideError:
        text = str(exc)
        missing = isinstance(exc, (ImportError, NotImplementedError)) or "decode" in text
        if missing or "imagecodecs" in text or "codec" in text.lower():
            return SlideError(
                f"its {self._compression} tiles cannot be decoded here ({text}); install imagecodecs "
                f"(pip install imagecodecs) or {CONVERT_HINT}",
                self.path,
            )
        where = f"pyramid level {level} ({self.levels[level][1]}x{self.levels[level][0]})"
        damaged = f"{where} cannot be read ({text}); the file is damaged or truncated: "
        return SlideError(damaged + CONVERT_HINT, self.path)

    def _raw(self, level: int, y: int, x: int, h: int, w: int) -> np.ndarray:
        index = []
        for axis in self._axes:
            if axis == "Y":
                index.append(slice(y, y + h))
            elif axis == "X":
                index.append(slice(x, x + w))
            elif axis in "SC":
                index.append(slice(None))
            else:
                index.append(0)
        data = np.asarray(self._arrays[level][tuple(index)])
        kept = [a for a in self._axes if a in "YXSC"]
        order = [kept.index("Y"), kept.index("X")] + [i for i, a in enumerate(kept) if a in "SC"]
        data = data.transpose(order)
        return data.reshape(*data.shape[:2], -1)

    def read(self, level: int, y: int, x: int, h: int, w: int) -> np.ndarray:
        try:
            data = self._raw(level, y, x, h, w)
        except Exception as exc:
            raise self._decode_error(level, exc) from exc
        if data.dtype != np.uint8:
            data = self._to_uint8(data)
        channels = data.shape[2]
        if channels >= 3:
            return np.ascontiguousarray(data[:, :, :3])
        return np.ascontiguousarray(np.repeat(data[:, :, :1], 3, axis=2))

    def _to_uint8(self, data: np.ndarray) -> np.ndarray:
        """Deeper images are stretched by one linear map for the whole slide, set from its smallest level."""
        if self._stretch is None:
            small = len(self.levels) - 1
            sh, sw = self.levels[small]
            cap = 2048
            sample = self._raw(small, 0, 0, min(sh, cap), min(sw, cap)).astype(np.float32)
            lo, hi = np.percentile(sample[np.isfinite(sample)], [0.1, 99.9]) if sample.size else (0.0, 1.0)
            self._stretch = (float(lo), float(hi) if hi > lo else float(lo) + 1.0)
        lo, hi = self._stretch
        scaled = (np.nan_to_num(data.astype(np.float32), nan=lo) - lo) * (255.0 / (hi - lo))
        return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)

    def close(self) -> None:
        self._tif.close()


class _OpenSlide(Slide):
    """A vendor slide through OpenSlide; regions come back RGBA and are laid on white."""

    def __init__(self, path: Path, handle) -> None:
        self._handle = handle
        levels = [(h, w) for (w, h) in handle.level_dimensions]
        super().__init__(path, levels, [])
        self._downsamples = handle.level_downsamples

    def read(self, level: int, y: int, x: int, h: int, w: int) -> np.ndarray:
        lh, lw = self.levels[level]
        h, w = max(0, min(h, lh - y)), max(0, min(w, lw - x))
        if h == 0 or w == 0:
            return np.zeros((h, w, 3), dtype=np.uint8)
        scale = self._downsamples[level]
        try:
            rgba = np.asarray(self._handle.read_region((round(x * scale), round(y * scale)), level, (w, h)))
        except Exception as exc:
            why = f"cannot read a region at level {level} ({exc}); {CONVERT_HINT}"
            raise SlideError(why, self.path) from exc
        alpha = rgba[:, :, 3:4].astype(np.uint16)
        rgb = (rgba[:, :, :3].astype(np.uint16) * alpha + 255 * (255 - alpha) + 127) // 255
        return rgb.astype(np.uint8)

    def close(self) -> None:
        self._handle.close()


def _open_openslide(path: Path) -> Slide:
    try:
        import openslide
    except (ImportError, OSError) as exc:
        raise SlideError(
            f"reading {path.suffix} slides needs OpenSlide: pip install openslide-python openslide-bin "
            f"({exc})",
            path,
        ) from exc
    try:
        handle = openslide.OpenSlide(os.fspath(path))
    except Exception as exc:
        raise SlideError(f"OpenSlide cannot open this slide ({exc}); {CONVERT_HINT}", path) from exc
    return _OpenSlide(path, handle)
