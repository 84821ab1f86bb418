"""Segmenting a whole-slide image or orthophoto without holding it: tiles in, label tiles out.

The predictor reads each tile from the slide as it needs it and hands every band's final
rows to a ``LabelPyramidWriter``, which keeps them as strips on disk and, at the end, writes
a tiled pyramidal label TIFF carrying the slide's georeferencing. Memory is one band of rows
and one tile's activations whatever the slide's size; an interrupted run resumes from the
strips already written, with the tile grid it started with.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import numpy as np

from core.base.progress import Progress
from core.inference.predictor import Predictor
from core.io.label_pyramid import LabelPyramidWriter, read_plan
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
    predictor: Predictor, slide: Slide, base: Path, *, confidence: bool = False
) -> Generator[Progress, None, Path]:
    """Segment ``slide`` into ``base.tif`` (and ``base_confidence.tif``); yield per batch of tiles."""
    height, width = slide.shape[:2]
    paths = slide_outputs(base)
    plan = {"model": model_fingerprint(predictor.model), "overlap": predictor.overlap}
    stored = read_plan(paths["label"])
    tile = predictor.tile or predictor.largest_tile(height, width, held=False)
    if stored and {k: stored.get(k) for k in plan} == plan and stored.get("height") == height:
        tile = stored.get("tile", tile)  # resume on the grid the run began with
    plan["tile"] = tile
    palette = palette_for(predictor.model.info.classes)
    labels = LabelPyramidWriter(paths["label"], height, width, plan=plan, palette=palette, geo=slide.geo)
    writers = [labels]
    if confidence:
        writers.append(LabelPyramidWriter(paths["confidence"], height, width, plan=plan, geo=slide.geo))

    def sink(y: int, label: np.ndarray, conf: np.ndarray) -> None:
        labels.add(y, label)
        if confidence:
            writers[1].add(y, np.round(conf.astype(np.float32) * 255).astype(np.uint8))

    start = min(w.rows_done for w in writers)
    yield from predictor.iter_predict_rows(slide, sink, start_row=start, tile=plan["tile"])
    for writer in writers[1:]:
        writer.finish()
    return labels.finish()
