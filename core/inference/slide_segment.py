"""Segmenting a whole-slide image or orthophoto without holding it: tiles in, label tiles out.

The predictor reads each tile from the slide as it needs it and hands every band's final
rows to a ``LabelPyramidWriter``, which keeps them as strips on disk and, at the end, writes
a tiled pyramidal label TIFF carrying the slide's georeferencing. Memory is one band of rows
of a panel of columns and one tile's activations whatever the slide's size; an interrupted
run resumes from the strips already written, with the tile grid it started with.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import numpy as np

from core.base.progress import Progress, relay
from core.inference.predictor import Predictor
from core.inference.tiling import make_grid
from core.io.label_pyramid import TILE, LabelPyramidWriter, read_plan
from core.io.labels import palette_for
from core.io.slides import Slide
from core.model.checkpoints import model_fingerprint


def slide_outputs(base: Path) -> dict[str, Path]:
    """The label and confidence TIFFs of a slide whose outputs are named after ``base``."""
    return {
        "label": base.with_name(base.name + ".tif"),
        "confidence": base.with_name(base.name + "_confidence.tif"),
    }


def segment_slide(
    predictor: Predictor, slide: Slide, base: Path, *, confidence: bool = False, panel: int | None = None
) -> Generator[Progress, None, Path]:
    """Segment ``slide`` into ``base.tif`` (and ``base_confidence.tif``); yield per batch of tiles.

    A slide wider than the predictor's ``carry_columns`` is predicted in panels of columns
    (``panel``, a multiple of the label TIFF's tile; default the widest that fits), each from
    top to bottom: the class scores held between bands stay bounded whatever the width.
    """
    height, width = slide.shape[:2]
    paths = slide_outputs(base)
    if panel is None:
        panel = max(4 * TILE, predictor.carry_columns() // TILE * TILE)
    plan = {"model": model_fingerprint(predictor.model), "overlap": predictor.overlap}
    plan["panel"] = min(panel, width)
    stored = read_plan(paths["label"])
    tile = predictor.tile or predictor.largest_tile(height, width, held=False)
    if stored and {k: stored.get(k) for k in plan} == plan and stored.get("height") == height:
        tile = stored.get("tile", tile)  # resume on the grid the run began with
    plan["tile"] = tile
    palette = palette_for(predictor.model.info.classes)
    common = {"plan": plan, "geo": slide.geo, "panel": plan["panel"]}
    labels = LabelPyramidWriter(paths["label"], height, width, palette=palette, **common)
    writers = [labels]
    if confidence:
        writers.append(LabelPyramidWriter(paths["confidence"], height, width, **common))
    grid = make_grid(height, width, tile, predictor.overlap)
    sizes = [len(grid.columns(start, end)[0]) for start, end in labels.panels]
    for index, (start, end) in enumerate(labels.panels):

        def sink(y: int, label: np.ndarray, conf: np.ndarray, x: int = start) -> None:
            labels.add(y, label, x)
            if confidence:
                writers[1].add(y, np.round(conf.astype(np.float32) * 255).astype(np.uint8), x)

        before = sum(sizes[:index])
        first = min(w.rows_done(start) for w in writers)
        rows = predictor.iter_predict_rows(slide, sink, start_row=first, tile=tile, columns=(start, end))
        yield from relay(rows, lambda e, before=before: Progress(before + e.done, sum(sizes), e.message))
    for writer in writers[1:]:
        writer.finish()
    return labels.finish()
