"""A slide's painted label, exported as the tiled pyramidal label TIFF ``segment`` writes.

The tiles the user touched are laid out strip by strip (void where none was painted), so the
export holds one strip of 512 rows across the slide, never the whole label; the TIFF carries
the slide's georeferencing, so a GIS lays it over the orthophoto.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

from core.base.progress import Progress
from core.io.label_pyramid import LabelPyramidWriter
from core.io.labels import palette_for
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
    for y in range(0, height, TILE):
        writer.add(y, tiles.region(y, 0, min(TILE, height - y), width, on_disk)[0])
    return writer.finish()


def slide_crops(project: Project, entry: ImageEntry, size: int):
    """``(crop id, image, label)`` for every ``size`` x ``size`` cell of the slide's grid that the
    user painted in: VOC-sized pieces of a slide, read region by region."""
    tiles = project.slide_tiles(entry)
    on_disk = set(tiles.on_disk())
    cells = sorted(
        {(r * TILE // size + i, c * TILE // size + j)
         for r, c in on_disk
         for i in range(-(-TILE // size) + 1) for j in range(-(-TILE // size) + 1)}
    )  # fmt: skip
    with open_slide(project.image_path(entry)) as slide:
        height, width = slide.levels[0]
        for cy, cx in cells:
            y, x = cy * size, cx * size
            if y >= height or x >= width:
                continue
            h, w = min(size, height - y), min(size, width - x)
            label, painted = tiles.region(y, x, h, w, on_disk)
            if painted.any():
                yield f"{entry.id}_{y}_{x}", slide.read(0, y, x, h, w), label
