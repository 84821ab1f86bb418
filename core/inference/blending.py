"""Blending overlapping tile probabilities into the final label and confidence maps.

Tiles arrive band by band (a row of tiles), left to right. A pixel is final once no later
tile covers it: columns left of the next tile's start, rows above the next band's start.
So only the tile being blended (its columns that the next tile shares stay open) and the
rows the next band shares (the carry) are held: memory is ``classes x (tile + overlap x
width)``, never ``classes x tile height x width``. With a ``sink`` the label and confidence
are not held either: each band's final rows go to the sink as soon as the band is done, so a
slide of any size is predicted in the memory of one band of rows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from core.inference.tiling import TileGrid

RowSink = Callable[[int, np.ndarray, np.ndarray], None]

# fp32: with one tile held, not a band, the memory is small, and fp16 arithmetic is slower on CPUs.
BLEND_DTYPE = torch.float32


class TileBlender:
    """Accumulates ``add``-ed tiles of ``grid`` into ``label`` (uint8) and ``confidence`` (fp16).

    Tiles must come in the grid's order: band by band, left to right; ``start_band`` skips the
    bands before it (a resumed run). With ``sink``, ``label`` and ``confidence`` stay ``None``
    and ``sink(y, label_rows, confidence_rows)`` receives each band's final rows instead.
    """

    def __init__(
        self,
        grid: TileGrid,
        num_classes: int,
        window: torch.Tensor,
        sink: RowSink | None = None,
        start_band: int = 0,
    ) -> None:
        self.grid = grid
        self.window = window
        self.sink = sink
        self.label = None if sink else np.empty((grid.height, grid.width), dtype=np.uint8)
        self.confidence = None if sink else np.empty((grid.height, grid.width), dtype=np.float16)
        self._acc = torch.zeros(num_classes, grid.tile_h, grid.tile_w, dtype=BLEND_DTYPE)
        self._weight = torch.zeros(grid.tile_h, grid.tile_w)
        self._carry = torch.zeros(num_classes, 0, grid.width, dtype=BLEND_DTYPE)
        self._carry_weight = torch.zeros(0, grid.width)
        self._next_carry, self._next_carry_weight = self._carry, self._carry_weight
        self._bands = list(grid.bands())
        self._band = start_band - 1
        self._tile = len(grid.xs)
        self._filled = 0  # image columns [x, _filled) of the current band already hold data

    def add(self, probs: torch.Tensor) -> None:
        """Blend the next tile's window-weighted probabilities (``C x tile_h x tile_w``)."""
        grid = self.grid
        if self._tile == len(grid.xs):
            self._start_band()
        x, tw = grid.xs[self._tile], grid.tile_w
        acc, weight = self._acc, self._weight
        new = self._filled - x  # buffer columns from here on enter now
        acc[:, :, new:] = 0
        weight[:, new:] = 0
        rows = self._carry.shape[1]
        acc[:, :rows, new:] += self._carry[:, :, self._filled : x + tw]
        weight[:rows, new:] += self._carry_weight[:, self._filled : x + tw]
        self._filled = x + tw
        acc += probs
        weight += self.window
        self._tile += 1
        end = grid.xs[self._tile] if self._tile < len(grid.xs) else grid.width
        self._finish_columns(x, end)
        keep = x + tw - end  # columns the next tile shares move to the buffer's start
        if keep > 0:
            acc[:, :, :keep] = acc[:, :, end - x : tw].clone()
            weight[:, :keep] = weight[:, end - x : tw].clone()
        if self._tile == len(grid.xs):
            self._carry, self._carry_weight = self._next_carry, self._next_carry_weight
            if self.sink is not None:
                self.sink(self._bands[self._band][0], self._rows_label, self._rows_confidence)

    def _start_band(self) -> None:
        self._band += 1
        self._tile, self._filled = 0, 0
        y, rows_final, _ = self._bands[self._band]
        if self.sink is None:
            self._rows_label = self.label[y : y + rows_final]
            self._rows_confidence = self.confidence[y : y + rows_final]
        else:
            self._rows_label = np.empty((rows_final, self.grid.width), dtype=np.uint8)
            self._rows_confidence = np.empty((rows_final, self.grid.width), dtype=np.float16)
        keep = self.grid.tile_h - rows_final
        self._next_carry = torch.zeros(self._acc.shape[0], keep, self.grid.width, dtype=BLEND_DTYPE)
        self._next_carry_weight = torch.zeros(keep, self.grid.width)

    def _finish_columns(self, x: int, end: int) -> None:
        """Image columns ``[x, end)`` are final for this band's final rows; the rest is carried."""
        rows_final = self._bands[self._band][1]
        cols = slice(0, end - x)
        # The weight is the same for every class: the arg max needs no division.
        top, arg = self._acc[:, :rows_final, cols].max(dim=0)
        self._rows_label[:, x:end] = arg.numpy()
        top = top.float().div_(self._weight[:rows_final, cols]).clamp_(0, 1)
        self._rows_confidence[:, x:end] = top.numpy()
        self._next_carry[:, :, x:end] = self._acc[:, rows_final:, cols]
        self._next_carry_weight[:, x:end] = self._weight[rows_final:, cols]
