"""Label maps of any size written as tiled, compressed, pyramidal TIFFs, row band by row band.

Rows arrive top to bottom (from a tiled prediction), in panels of columns when the map is
predicted panel by panel, and are kept in ``OUT.partial/`` as strips of ``STRIP`` rows of a
panel, each written atomically: an interrupted run resumes after each panel's last strip on
disk, and memory never holds more than one strip across the map's width. ``finish``
halves the strips into pyramid levels (nearest neighbour: a label stays a label) and writes
``OUT`` atomically: a palette (or greyscale) BigTIFF of 512-pixel Deflate tiles with its
reduced levels as SubIFDs, the layout QuPath, napari, OpenSlide and GDAL read as a pyramid,
carrying the source's GeoTIFF tags when it has them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from core.base.atomic import atomic_path, atomic_write_text

STRIP = 512  # rows per strip: one row of TIFF tiles
TILE = 512
PLAN_FILE = "plan.json"


class LabelPyramidWriter:
    """Collects an ``height x width`` uint8 map into ``out`` (a pyramidal TIFF), resumably.

    ``plan`` describes what made the rows (model, tile grid, size): strips left by a run with
    another plan are discarded, never mixed in. ``palette`` (``256 x 3 uint8``) makes a palette
    TIFF; ``geo`` holds TIFF tags to copy (``(code, dtype, count, value)``, e.g. GeoTIFF's).
    ``panel`` (a multiple of ``TILE``; default the whole width) splits the columns into panels
    that are given one after another, each top to bottom (``add(y, rows, x)``).
    """

    def __init__(
        self,
        out: Path,
        height: int,
        width: int,
        *,
        plan: dict,
        palette: np.ndarray | None = None,
        geo: list[tuple[int, int, int, object]] | None = None,
        panel: int | None = None,
    ) -> None:
        self.out = Path(out)
        self.height, self.width = height, width
        self.palette = palette
        self.geo = geo or []
        self.partial = self.out.with_name(self.out.name + ".partial")
        self.panel = min(panel or width, width)
        if self.panel < width and self.panel % TILE:
            raise ValueError(f"panels of {self.panel} columns: not a multiple of {TILE}")
        self.panels = [(x, min(x + self.panel, width)) for x in range(0, width, self.panel)]
        self._plan = {**plan, "height": height, "width": width, "panel": self.panel}
        self._open_partial()
        # Per panel, the first row not yet in a strip or the buffer.
        self._next = [min(self._panel_strips_on_disk(p) * STRIP, height) for p in range(len(self.panels))]
        self._buffer: np.ndarray | None = None

    def rows_done(self, x: int = 0) -> int:
        """Rows of the panel starting at column ``x`` already on disk: a resumed run starts there."""
        return min(self._panel_strips_on_disk(self._panel_at(x)) * STRIP, self.height)

    def _panel_at(self, x: int) -> int:
        if x % self.panel or not 0 <= x < self.width:
            raise ValueError(f"no panel starts at column {x} (panels of {self.panel})")
        return x // self.panel

    def _open_partial(self) -> None:
        plan_path = self.partial / PLAN_FILE
        try:
            same = json.loads(plan_path.read_text()) == self._plan
        except (OSError, ValueError):
            same = False
        if not same and self.partial.exists():
            shutil.rmtree(self.partial)
        self.partial.mkdir(parents=True, exist_ok=True)
        if not same:
            atomic_write_text(plan_path, json.dumps(self._plan))

    def _strip_path(self, level: int, index: int) -> Path:
        return self.partial / f"L{level}_{index:06d}.png"

    def _panel_strip_path(self, panel: int, index: int) -> Path:
        return self.partial / f"L0_{index:06d}_{panel:04d}.png"

    def _panel_strips_on_disk(self, panel: int) -> int:
        return _count(lambda n: self._panel_strip_path(panel, n))

    def _strips_on_disk(self, level: int) -> int:
        return _count(lambda n: self._strip_path(level, n))

    def add(self, y: int, rows: np.ndarray, x: int = 0) -> None:
        """Rows ``[y, y + len(rows))`` of the panel starting at column ``x`` (the whole panel's
        width); rows already written are skipped.

        A panel's rows must come in order: ``y`` is at most its first row not yet given.
        """
        panel = self._panel_at(x)
        start, end = self.panels[panel]
        if rows.shape[1] != end - start:
            raise ValueError(f"rows {rows.shape[1]} wide for the panel of columns {start}..{end}")
        done = self._next[panel]
        if y > done:
            raise ValueError(f"rows from {y} given before rows {done}..{y}")
        rows = rows[done - y :]
        if self._buffer is None or self._buffer.shape[1] != end - start:
            self._buffer = np.empty((STRIP, end - start), dtype=np.uint8)
        while len(rows) and done < self.height:
            at = done % STRIP
            take = min(STRIP - at, len(rows), self.height - done)
            self._buffer[at : at + take] = rows[:take]
            rows = rows[take:]
            done += take
            if at + take == STRIP or done == self.height:
                with atomic_path(self._panel_strip_path(panel, (done - 1) // STRIP)) as tmp:
                    self._save(tmp, self._buffer[: at + take])
        self._next[panel] = done

    def _write_strip(self, level: int, index: int, strip: np.ndarray) -> None:
        with atomic_path(self._strip_path(level, index)) as tmp:
            self._save(tmp, strip)

    @staticmethod
    def _save(path: Path, strip: np.ndarray) -> None:
        Image.fromarray(np.ascontiguousarray(strip)).save(path, format="PNG", compress_level=1)

    def _read_strip(self, level: int, index: int) -> np.ndarray:
        """A strip across the whole width (level 0's panels side by side)."""
        paths = [self._strip_path(level, index)]
        if level == 0:
            paths = [self._panel_strip_path(panel, index) for panel in range(len(self.panels))]
        parts = []
        for path in paths:
            with Image.open(path) as img:
                parts.append(np.asarray(img))
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    @property
    def complete(self) -> bool:
        """All rows are on disk."""
        return min(self._next) >= self.height

    def level_shapes(self) -> list[tuple[int, int]]:
        """``(height, width)`` of every level: halved until it fits one tile."""
        shapes = [(self.height, self.width)]
        while max(shapes[-1]) > TILE:
            h, w = shapes[-1]
            shapes.append(((h + 1) // 2, (w + 1) // 2))
        return shapes

    def finish(self) -> Path:
        """Build the reduced levels and write ``out`` atomically; the partial folder goes."""
        if not self.complete:
            raise ValueError(f"{self.out}: rows {min(self._next)}..{self.height} were never given")
        shapes = self.level_shapes()
        for level in range(1, len(shapes)):
            self._reduce(level, shapes[level])
        import tifffile

        bigtiff = self.height * self.width * 4 // 3 > 2**31
        kind = {"photometric": "minisblack"}
        if self.palette is not None:
            colormap = self.palette[:256].T.astype(np.uint16) * 257
            kind = {"photometric": "palette", "colormap": colormap}
        extratags = [(code, dtype, count, value, True) for code, dtype, count, value in self.geo]
        with atomic_path(self.out) as tmp, tifffile.TiffWriter(tmp, bigtiff=bigtiff) as tif:
            for level, (h, w) in enumerate(shapes):
                top = {"subifds": len(shapes) - 1, "extratags": extratags}
                first = top if level == 0 else {"subfiletype": 1}
                tif.write(
                    self._tiles(level, h, w),
                    shape=(h, w),
                    dtype=np.uint8,
                    tile=(TILE, TILE),
                    compression="zlib",
                    **kind,
                    **first,
                )
        shutil.rmtree(self.partial, ignore_errors=True)
        return self.out

    def _reduce(self, level: int, shape: tuple[int, int]) -> None:
        """Level ``level``'s strips from the level above: every other row and column."""
        count = -(-shape[0] // STRIP)
        above = -(-self.level_shapes()[level - 1][0] // STRIP)
        done = self._strips_on_disk(level)
        for index in range(done, count):
            halves = [k for k in (2 * index, 2 * index + 1) if k < above]
            parts = [self._read_strip(level - 1, k)[::2, ::2] for k in halves]
            self._write_strip(level, index, np.concatenate(parts))

    def _tiles(self, level: int, height: int, width: int) -> Iterator[np.ndarray]:
        for index in range(-(-height // STRIP)):
            strip = self._read_strip(level, index)
            for x in range(0, width, TILE):
                tile = np.zeros((TILE, TILE), dtype=np.uint8)
                part = strip[:, x : x + TILE]
                tile[: part.shape[0], : part.shape[1]] = part
                yield tile


def read_plan(out: Path) -> dict | None:
    """The plan a previous, unfinished run of ``out`` recorded, or ``None``."""
    try:
        plan = json.loads((Path(out).with_name(Path(out).name + ".partial") / PLAN_FILE).read_text())
    except (OSError, ValueError):
        return None
    return plan if isinstance(plan, dict) else None


def _count(path_of) -> int:
    """How many of ``path_of(0)``, ``path_of(1)``... exist, up to the first missing one."""
    n = 0
    while path_of(n).is_file():
        n += 1
    return n
