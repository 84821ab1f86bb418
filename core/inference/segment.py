"""Batch segmentation of many images: decode ahead, predict, write behind, resume, shard.

Decoding (a reader thread) and PNG/JPEG encoding (a writer thread) overlap with the network,
whose own work releases the GIL, so the model never waits for the disk. Whole-slide images
and other tiled TIFFs are never decoded whole: they are predicted tile by tile into a tiled
pyramidal label TIFF (``core.inference.slide_segment``).
"""

from __future__ import annotations

import errno
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from core.base.atomic import atomic_path
from core.base.errors import FcnGuiError
from core.base.progress import Progress, relay
from core.compute.distributed import distributed_rank, shard
from core.inference.predictor import Prediction, Predictor
from core.inference.slide_segment import segment_slide, slide_outputs
from core.io.files import InputImage, collect_images, output_folder
from core.io.images import DEFAULT_MAX_PIXELS, read_image
from core.io.labels import LabelClass, colorize, write_label
from core.io.slides import SLIDE_SUFFIXES, Slide, is_slide, open_slide

PREFETCH = 3


@dataclass
class SegmentOptions:
    """What to write and which files to take."""

    out_dir: Path
    recursive: bool = False
    overwrite: bool = False
    overlay: bool = False
    confidence: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    rank: int = 0
    world_size: int = 1


@dataclass
class SegmentReport:
    """What a run did: files written, files skipped as already done, files that failed."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        text = f"{len(self.written)} segmented, {len(self.skipped)} already done, {len(self.failed)} failed"
        text += "".join(f"\n  {p}: {reason}" for p, reason in self.failed)
        return text + "".join(f"\n  note: {note}" for note in self.notes)


def output_paths(out_dir: Path, item: InputImage) -> dict[str, Path]:
    """Label, overlay and confidence paths for ``item`` under ``out_dir``."""
    base = out_dir / item.relative
    return {
        "label": base.with_name(base.name + ".png"),
        "overlay": base.with_name(base.name + "_overlay.jpg"),
        "confidence": base.with_name(base.name + "_confidence.png"),
    }


def _done(out_dir: Path, item: InputImage) -> bool:
    """The image's label exists: a PNG, or for a slide its label TIFF."""
    if output_paths(out_dir, item)["label"].exists():
        return True
    if item.path.suffix.lower() not in SLIDE_SUFFIXES:
        return False
    return slide_outputs(out_dir / item.relative)["label"].exists()


def options_from_env(out_dir: Path, **kwargs) -> SegmentOptions:
    """Options whose rank and world size come from torchrun's environment."""
    rank, world, _local = distributed_rank()
    return SegmentOptions(out_dir=Path(out_dir), rank=rank, world_size=world, **kwargs)


def segment_paths(
    predictor: Predictor, inputs: list[str | Path], options: SegmentOptions
) -> Generator[Progress, None, SegmentReport]:
    """Segment every image under ``inputs``; yield one ``Progress`` per image; return the report.

    Images whose label already exists are skipped unless ``options.overwrite``. Files that
    cannot be read are reported and skipped. Each output is written atomically and the label
    last, so an interrupted run leaves no partial file and resumes where it stopped.
    """
    output_folder(options.out_dir)
    items, rejected = collect_images(inputs, recursive=options.recursive, extra_suffixes=SLIDE_SUFFIXES)
    items = shard(items, options.rank, options.world_size)
    report = SegmentReport(failed=list(rejected) if options.rank == 0 else [])
    todo = []
    for item in items:
        if not options.overwrite and _done(options.out_dir, item):
            report.skipped.append(item.path)
        else:
            todo.append(item)
    total = len(todo)
    classes = predictor.model.info.classes
    reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fcn-read")
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fcn-write")
    pending_writes: deque[tuple[InputImage, Future]] = deque()
    try:
        for done, (item, loaded) in enumerate(_read_ahead(reader, todo, options.max_pixels), start=1):
            try:
                image = loaded.result()
                if isinstance(image, Slide):
                    with image:
                        yield from _segment_slide(predictor, image, item, (done - 1, total), options, report)
                    yield Progress(done, total, item.path.name)
                    continue
                # A tiled image reports per tile; stopping there cancels between its tiles.
                prediction = yield from relay(predictor.iter_predict(image), _tiles_of(item, done - 1, total))
            except FcnGuiError as exc:
                report.failed.append((item.path, str(exc).removeprefix(f"{item.path}: ")))
            else:
                paths = output_paths(options.out_dir, item)
                job = writer.submit(_write_outputs, paths, image, prediction, classes, options)
                pending_writes.append((item, job))
            while pending_writes and (pending_writes[0][1].done() or len(pending_writes) > PREFETCH):
                _collect(pending_writes.popleft(), report)
            yield Progress(done, total, item.path.name)
        while pending_writes:
            _collect(pending_writes.popleft(), report)
    finally:
        reader.shutdown(wait=True, cancel_futures=True)
        writer.shutdown(wait=True, cancel_futures=True)
    return report


def _segment_slide(
    predictor: Predictor,
    slide: Slide,
    item: InputImage,
    position: tuple[int, int],
    options: SegmentOptions,
    report: SegmentReport,
) -> Generator[Progress, None, None]:
    """A slide, tile by tile into its label TIFF; an interrupted run resumes from the tiles written."""
    base = options.out_dir / item.relative
    try:
        written = yield from relay(
            segment_slide(predictor, slide, base, confidence=options.confidence), _tiles_of(item, *position)
        )
    except OSError as exc:
        raise FcnGuiError(
            f"cannot write the label of {item.path.name} ({exc.strerror or exc}); free disk space or "
            "choose another --out (the tiles written so far are kept and the next run resumes)",
            exc.filename or item.path,
        ) from exc
    report.written.append(written)
    if options.overlay:
        report.notes.append(
            f"{item.path.name}: no overlay JPEG for a whole-slide image; open its label TIFF over the "
            "slide in QuPath or a GIS"
        )


def _tiles_of(item: InputImage, done: int, total: int):
    """The progress of a tiled image's tiles as the folder's progress (one tile: nothing)."""

    def progress(tile: Progress) -> Progress | None:
        if tile.total <= 1:
            return None
        return Progress(done, total, f"{item.path.name} ({tile.done}/{tile.total} tiles)")

    return progress


FATAL_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}


def _read_ahead(
    pool: ThreadPoolExecutor, items: list[InputImage], max_pixels: int
) -> Iterator[tuple[InputImage, Future]]:
    queue: deque[tuple[InputImage, Future]] = deque()
    it = iter(items)
    for item in it:
        queue.append((item, pool.submit(_load, item.path, max_pixels)))
        if len(queue) >= PREFETCH:
            break
    while queue:
        head = queue.popleft()
        nxt = next(it, None)
        if nxt is not None:
            queue.append((nxt, pool.submit(_load, nxt.path, max_pixels)))
        yield head


def _load(path: Path, max_pixels: int) -> np.ndarray | Slide:
    """A slide opened lazily (no pixel limit: it is never held), any other image decoded."""
    if path.suffix.lower() in SLIDE_SUFFIXES and is_slide(path):
        return open_slide(path)
    return read_image(path, max_pixels=max_pixels)


def _collect(entry: tuple[InputImage, Future], report: SegmentReport) -> None:
    item, job = entry
    try:
        report.written.append(job.result())
    except OSError as exc:
        if exc.errno in FATAL_WRITE_ERRORS:  # every later write would fail the same way: stop now
            raise FcnGuiError(
                f"cannot write the output of {item.path.name} ({exc.strerror}); "
                "free disk space or choose another --out (finished labels are kept)",
                exc.filename or item.path,
            ) from exc
        report.failed.append((item.path, f"cannot write its output ({exc.strerror or exc})"))


def _write_outputs(
    paths: dict[str, Path],
    image: np.ndarray,
    prediction: Prediction,
    classes: list[LabelClass],
    options: SegmentOptions,
) -> Path:
    if options.overlay:
        with atomic_path(paths["overlay"]) as tmp:
            Image.fromarray(overlay(image, prediction.label, classes)).save(tmp, format="JPEG", quality=90)
    if options.confidence:
        conf = np.round(prediction.confidence.astype(np.float32) * 255).astype(np.uint8)
        with atomic_path(paths["confidence"]) as tmp:
            Image.fromarray(conf).save(tmp, format="PNG")
    write_label(paths["label"], prediction.label, classes)
    return paths["label"]


def overlay(
    image: np.ndarray, label: np.ndarray, classes: list[LabelClass], alpha: float = 0.5
) -> np.ndarray:
    """The image with class colours blended in at ``alpha``; void pixels stay untouched."""
    colours = colorize(label, classes).astype(np.float32)
    out = image.astype(np.float32)
    mask = (label != 255)[..., None]
    blended = np.where(mask, out * (1 - alpha) + colours * alpha, out)
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)
