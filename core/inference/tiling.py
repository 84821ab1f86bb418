"""The tile grid for large images and the smooth weights that blend overlapping tiles."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

ALIGN = 32  # the network's largest stride: aligned tiles see the same pooling grid as the whole image


def axis_tiles(length: int, tile: int, overlap: int) -> tuple[int, tuple[int, ...]]:
    """Tile length and start offsets covering ``[0, length)`` with at least ``overlap`` shared.

    The fewest tiles of at most ``tile`` pixels are spread evenly (starts on multiples of 32
    where possible), the last flush with the border, and shrunk so none overlaps more than
    needed. An axis shorter than ``tile`` is one tile of exactly ``length``.
    """
    if length <= tile:
        return length, (0,)
    overlap = min(overlap, tile // 2)
    # Rounding starts down to a multiple of ALIGN widens a gap by up to ALIGN - 1 pixels:
    # plan for that much more overlap, unless it would take more tiles.
    plain = math.ceil((length - overlap) / (tile - overlap))
    aligned = overlap + ALIGN - 1
    use_align = aligned < tile and math.ceil((length - aligned) / (tile - aligned)) <= plain
    align, needed = (ALIGN, aligned) if use_align else (1, overlap)
    n = math.ceil((length - needed) / (tile - needed))
    size = min(tile, _round_up(math.ceil((length + (n - 1) * needed) / n), align))
    step = (length - size) / (n - 1)
    starts = [min(round(i * step) // align * align, length - size) for i in range(n - 1)]
    return size, (*starts, length - size)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@dataclass(frozen=True)
class TileGrid:
    """Tiles of ``tile_h x tile_w`` at every ``(y, x)`` in ``ys x xs``; rows of tiles are bands."""

    height: int
    width: int
    tile_h: int
    tile_w: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.ys) * len(self.xs)

    def bands(self) -> Iterator[tuple[int, int, int]]:
        """``(y, rows_final, next_y)``: a band's top, and how many of its rows no later band touches."""
        for i, y in enumerate(self.ys):
            nxt = self.ys[i + 1] if i + 1 < len(self.ys) else self.height
            yield y, nxt - y, nxt

    def columns(self, start: int, end: int) -> tuple[TileGrid, int]:
        """The tiles touching image columns ``[start, end)``, as a grid of their own, and the
        image column ``x0`` that is its column 0: ``(grid, x0)``.

        Every tile that covers one of those columns is in it, in the same order, so those
        columns blend exactly as in the whole grid (bit for bit); the columns beside them do not.
        """
        first = next(i for i, x in enumerate(self.xs) if x + self.tile_w > start)
        last = max(i for i, x in enumerate(self.xs) if x < end)
        x0 = self.xs[first]
        xs = tuple(x - x0 for x in self.xs[first : last + 1])
        return TileGrid(self.height, xs[-1] + self.tile_w, self.tile_h, self.tile_w, self.ys, xs), x0


def make_grid(height: int, width: int, tile: int, overlap: int) -> TileGrid:
    """The grid for an image; one tile when the image is no larger than ``tile`` either way."""
    th, ys = axis_tiles(height, tile, overlap)
    tw, xs = axis_tiles(width, tile, overlap)
    return TileGrid(height, width, th, tw, ys, xs)


def blend_window(tile_h: int, tile_w: int, sigma: float = 0.125) -> np.ndarray:
    """Separable Gaussian weights (``sigma`` of the tile size), floored to stay positive."""

    def axis(n: int) -> np.ndarray:
        x = np.arange(n, dtype=np.float64) - (n - 1) / 2
        return np.exp(-0.5 * (x / max(sigma * n, 1e-6)) ** 2)

    w = np.outer(axis(tile_h), axis(tile_w))
    return np.maximum(w / w.max(), 1e-4).astype(np.float32)
