"""The continuous learner of one project: started from what the project kept, fed its reviews.

``learn`` is the generator a caller runs on a worker thread (the app's learning controller
does): it builds a ``ContinuousLearner`` from the project's learning history (the latest
weights and held-out split, or a kept model to roll back to) or from the model in use, wraps
it in the ``Assistant`` (the strokes on the image being painted train at once, and that image
is predicted again after each change), and between the learner's steps applies the reviews
and strokes queued in a ``ReviewFeed`` from any thread, reading each reviewed image and the
prediction the user corrected there on the learner's own thread. A slide's strokes train
region by region (``review_feed.region_id``) until it is reviewed; then its painted tiles do.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Generator
from pathlib import Path

import numpy as np

from core.base.errors import FcnGuiError
from core.io.images import read_image
from core.io.slides import open_slide
from core.model.checkpoints import SegmentationModel, load_checkpoint
from core.model.networks import replace_classifier
from core.store.project import Project
from core.training.assist import Assistant
from core.training.history import LearningHistory
from core.training.learner import ContinuousLearner, LearnerConfig, LearnerEvent
from core.training.review_feed import ReviewFeed, region_of
from core.training.sampling import Example


def reviewed_example(project: Project, image_id: str, label: np.ndarray | None = None) -> Example | None:
    """A reviewed image as a training example, with where the model's prediction was wrong;
    ``None`` when it cannot be read (the user hears of that when opening the image)."""
    try:
        entry = project.entry(image_id)
        image = read_image(project.image_path(entry))
        label = project.load_label(entry) if label is None else label
        if label is None or label.shape != image.shape[:2]:
            return None
        predicted = project.load_prediction(entry)
        wrong = predicted != label if predicted is not None and predicted.shape == label.shape else None
        return Example(image_id, image, label, wrong)
    except (FcnGuiError, ValueError, OSError):
        return None


SLIDE_TILE_MARK = "#"  # a slide's tile example is "<image id>#<row>_<col>"
SLIDE_TILES = 64  # a reviewed slide trains on at most this many of its tiles (the most painted)


def slide_examples(project: Project, image_id: str) -> list[Example]:
    """A reviewed slide's tiles that the user painted in, each a training example of 512 x 512
    (its label: the tile as reviewed), read from the slide region by region, never whole."""
    try:
        entry = project.entry(image_id)
        with open_slide(project.image_path(entry)) as slide:
            height, width = slide.levels[0]
            found = list(project.slide_tiles(entry).painted_in(height, width))
            found = sorted(found, key=lambda tile: -int(tile[3].sum()))[:SLIDE_TILES]
            examples = [
                Example(f"{image_id}{SLIDE_TILE_MARK}{row}_{col}", slide.read(0, *region), label)
                for (row, col), region, label, _painted in found
            ]
        return examples
    except (FcnGuiError, ValueError, OSError):
        return []


def is_slide_label(project: Project, image_id: str) -> bool:
    """The image's label is kept in tiles (a slide), not in one label file."""
    return project.slide_tiles(project.entry(image_id)).folder.is_dir()


def build_learner(
    project: Project,
    in_use: SegmentationModel,
    config: LearnerConfig,
    *,
    restart_from: str | Path | None = None,
) -> ContinuousLearner:
    """A learner for ``project``: from a kept model (``restart_from``: a roll-back), else from
    the latest weights its history kept, else from the model in use; a score layer per class."""
    history = LearningHistory.of(project.root)
    classes = list(project.classes)
    saved = None if restart_from else history.load_latest(len(classes))
    if restart_from:
        start, optim, state = load_checkpoint(restart_from), None, history.load_state()
    elif saved is not None:
        start, optim, state = saved
    else:
        start, optim, state = in_use, None, history.load_state()
    if start.info.num_classes != len(classes):
        start = SegmentationModel(copy.deepcopy(start.module).float(), copy.deepcopy(start.info))
        replace_classifier(start.module, len(classes))
        start.info.classes = classes
    scored = start if restart_from else in_use  # the model in use once the roll-back loads
    return ContinuousLearner(
        start, config, history=history, optimizer_state=optim, state=state, in_use=scored
    )


QUICK_AT_START = 10  # the newest reviewed images the quick classifier starts with
LIVE_REGIONS = 8  # regions of a slide whose strokes train before it is reviewed (the newest)


def learn(
    project: Project,
    in_use: SegmentationModel,
    config: LearnerConfig,
    feed: ReviewFeed,
    *,
    restart_from: str | Path | None = None,
    started: Callable[[ContinuousLearner], None] | None = None,
    stopping: Callable[[], bool] = lambda: False,
    spare_core: bool = False,
) -> Generator[LearnerEvent, None, None]:
    """Build the project's learner (``started`` gets it before its first step), give it the
    project's reviewed images, and run it until closed, applying ``feed`` between steps; yields
    its events, ``LivePrediction`` s of the image being painted among them. ``stopping``: the
    caller will close it at the next yield, so a refresh of the painted image (a minute at 24
    megapixels) stops between tiles. ``spare_core``: a window shares the CPU (``Assistant``)."""
    learner = build_learner(project, in_use, config, restart_from=restart_from)
    if started is not None:
        started(learner)
    assistant = Assistant(
        learner=learner,
        in_use=in_use,
        interrupted=lambda: feed.has_live() or stopping(),
        spare_core=spare_core,
    )
    ids = project.ids(("reviewed",))
    changes = [("add", image_id, None) for image_id in ids]
    quick_from = len(ids) - QUICK_AT_START  # older reviews train the network only
    slide_tiles: dict[str, list[str]] = {}  # a reviewed slide's tile examples
    regions: dict[str, list[str]] = {}  # the regions of a slide being painted, oldest first

    def drop_regions(slide_id: str) -> None:
        for live_id in regions.pop(slide_id, []):
            learner.remove(live_id)

    events = assistant.events()
    try:
        while True:
            changes += feed.take()
            for kind, image_id, payload in changes:
                if kind == "remove":
                    learner.remove(image_id)
                    for tile_id in slide_tiles.pop(image_id, []):
                        learner.remove(tile_id)
                elif kind == "add" and is_slide_label(project, image_id):
                    drop_regions(image_id)  # the painted tiles train instead, whole
                    for tile_id in slide_tiles.pop(image_id, []):
                        learner.remove(tile_id)
                    examples = slide_examples(project, image_id)
                    for example in examples:
                        assistant.add_reviewed(
                            example.id, example.image, example.label, quick=quick_from <= 0
                        )
                    slide_tiles[image_id] = [example.id for example in examples]
                elif kind == "live":
                    image, painted = payload
                    if assistant.image_id != image_id:
                        assistant.start(image_id, image)
                        if (region := region_of(image_id)) is not None:
                            kept = [r for r in regions.get(region[0], []) if r != image_id] + [image_id]
                            for old in kept[:-LIVE_REGIONS]:
                                learner.remove(old)
                            regions[region[0]] = kept[-LIVE_REGIONS:]
                    assistant.paint(painted)
                elif (example := reviewed_example(project, image_id, payload)) is not None:
                    if assistant.image_id == image_id:
                        assistant.review(example.label, wrong=example.wrong)
                    else:
                        assistant.add_reviewed(
                            image_id, example.image, example.label, wrong=example.wrong, quick=quick_from <= 0
                        )
                quick_from -= kind == "add"
            changes = []
            yield next(events)
    finally:
        events.close()
        assistant.close()
