"""The label of a whole-slide image, kept tile by tile: only the tiles the user touched exist.

A slide of 100,000 x 100,000 pixels has 40,000 label tiles of 512 x 512; a user paints a few.
Each touched tile is one PNG (``PROJECT/labels.vN/<id>.tiles/<row>_<col>.png``, greyscale
with alpha: the class index, and 255 alpha where the user painted it), written atomically the
moment the stroke ends, so a crash or ``kill -9`` loses at most the stroke being drawn. A
missing tile is void. A damaged one is set aside (renamed ``.damaged``), never deleted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from core.base.atomic import atomic_path
from core.io.labels import VOID

SUFFIX = ".tiles"  # the folder of an image's tiles, beside where its label PNG would be
TILE = 512


Slices = tuple[slice, slice]
Array = np.ndarray


def tile_parts(y0: int, x0: int, y1: int, x1: int) -> Iterator[tuple[tuple[int, int], Slices, Slices]]:
    """The tiles under the box ``[y0, y1) x [x0, x1)``: ``((row, col), part of the tile, part of
    the box)``, the two parts the same pixels."""
    for row in range(y0 // TILE, (y1 - 1) // TILE + 1):
        for col in range(x0 // TILE, (x1 - 1) // TILE + 1):
            ty, tx = row * TILE, col * TILE
            sy0, sx0, sy1, sx1 = max(y0, ty), max(x0, tx), min(y1, ty + TILE), min(x1, tx + TILE)
            in_tile = (slice(sy0 - ty, sy1 - ty), slice(sx0 - tx, sx1 - tx))
            yield (row, col), in_tile, (slice(sy0 - y0, sy1 - y0), slice(sx0 - x0, sx1 - x0))


class LabelTiles:
    """The tiles of one slide's label in ``folder``; any thread may read or write a tile."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.damaged: list[Path] = []

    def path(self, row: int, col: int) -> Path:
        return self.folder / f"{row}_{col}.png"

    def on_disk(self) -> list[tuple[int, int]]:
        """``(row, col)`` of every tile on disk."""
        try:
            names = [p.name for p in self.folder.iterdir()]
        except FileNotFoundError:
            return []
        keys = []
        for name in names:
            stem, dot, suffix = name.partition(".")
            row, _, col = stem.partition("_")
            if suffix == "png" and dot and row.isdigit() and col.isdigit():
                keys.append((int(row), int(col)))
        return sorted(keys)

    def read(self, row: int, col: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The tile's ``(label, painted)`` (``TILE x TILE``), or ``None`` when it is not on disk."""
        return self.read_file(self.path(row, col))

    def read_file(self, path: Path) -> tuple[np.ndarray, np.ndarray] | None:
        """``read`` of a tile file by its path (a copy kept elsewhere, e.g. a training snapshot)."""
        try:
            with Image.open(path) as img:
                if img.mode != "LA" or img.size != (TILE, TILE):
                    raise ValueError(f"a {img.mode} image of {img.size}")
                data = np.asarray(img)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            aside = path.with_name(f"{path.name}.damaged")
            path.replace(aside)
            self.damaged.append(aside)
            return None
        return data[:, :, 0].copy(), data[:, :, 1] > 0

    def region(
        self, y: int, x: int, h: int, w: int, on_disk: set[tuple[int, int]] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The label and painted marks of the ``h x w`` region at ``(y, x)``, void where no tile
        is (``on_disk``: the tiles there, known already: the others are not looked for)."""
        label = np.full((h, w), VOID, dtype=np.uint8)
        painted = np.zeros((h, w), dtype=bool)
        for key, in_tile, in_box in tile_parts(y, x, y + h, x + w):
            if on_disk is not None and key not in on_disk:
                continue
            if (data := self.read(*key)) is not None:
                label[in_box], painted[in_box] = data[0][in_tile], data[1][in_tile]
        return label, painted

    def painted_in(
        self, height: int, width: int
    ) -> Iterator[tuple[tuple[int, int], tuple, np.ndarray, np.ndarray]]:
        """The tiles the user painted in, of an image ``height x width``: ``((row, col), (y, x,
        h, w), label, painted)``, the region and both arrays cut where the image ends."""
        for row, col in self.on_disk():
            data = self.read(row, col)
            if data is None or not data[1].any():
                continue
            y, x = row * TILE, col * TILE
            h, w = min(TILE, height - y), min(TILE, width - x)
            yield (row, col), (y, x, h, w), data[0][:h, :w].copy(), data[1][:h, :w].copy()

    def remap(self, lut: np.ndarray, target: LabelTiles) -> None:
        """Write every tile into ``target`` with its classes mapped through ``lut`` (a class
        removal); tiles already there (written before a crash) are kept."""
        for row, col in self.on_disk():
            if not target.path(row, col).exists() and (data := self.read(row, col)) is not None:
                target.write(row, col, lut[data[0]], data[1])

    def write(self, row: int, col: int, label: np.ndarray, painted: np.ndarray) -> None:
        """Write one tile atomically: the previous version stays until the new one is whole."""
        data = np.stack([label, np.where(painted, np.uint8(255), np.uint8(0))], axis=2)
        with atomic_path(self.path(row, col)) as tmp:
            Image.fromarray(data).save(tmp, format="PNG", compress_level=1)
