"""A slide's painted label, exported as the tiled pyramidal label TIFF ``segment`` writes.

The tiles the user touched are laid out strip by strip (void where none was painted), so the
export holds one strip of 512 rows across the slide, never the whole label; the TIFF carries
the slide's georeferencing, so a GIS lays it over the orthophoto.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import numpy as np

from core.base.progress import Progress
from core.io.label_pyramid import LabelPyramidWriter
from core.io.labels import VOID, palette_for
from core.io.slides import open_slide
from core.store.label_tiles import TILE
from core.store.project import ImageEntry, Project

FOLDER = "SlideLabels"


def export_slide_labels(
    project: Project, entries: list[ImageEntry], out_dir: Path
) -> Generator[Progress, None, list[Path]]:
    """Write ``out_dir/SlideLabels/<id>.tif`` for each slide entry; yield per slide."""
    written = []
    for done, entry in enumerate(entries, start=1):
        with open_slide(project.image_path(entry)) as slide:
            height, width = slide.levels[0]
            geo = slide.geo
        written.append(
            write_slide_label(project, entry, out_dir / FOLDER / f"{entry.id}.tif", height, width, geo)
        )
        yield Progress(done, len(entries), entry.id)
    return written


def write_slide_label(
    project: Project, entry: ImageEntry, out: Path, height: int, width: int, geo: list
) -> Path:
    """One slide's label tiles as a pyramidal label TIFF at ``out``."""
    tiles = project.slide_tiles(entry)
    on_disk = set(tiles.on_disk())
    writer = LabelPyramidWriter(
        out, height, width, plan={"export": entry.id}, palette=palette_for(project.classes), geo=geo
    )
    for row in range(-(-height // TILE)):
        rows = min(TILE, height - row * TILE)
        strip = np.full((rows, width), VOID, dtype=np.uint8)
        for col in sorted(c for r, c in on_disk if r == row and c * TILE < width):
            data = tiles.read(row, col)
            if data is not None:
                cols = min(TILE, width - col * TILE)
                strip[:, col * TILE : col * TILE + cols] = data[0][:rows, :cols]
        writer.add(row * TILE, strip)
    return writer.finish()
