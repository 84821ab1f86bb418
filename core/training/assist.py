"""The assist loop on the image being painted: its strokes train the network at once.

One API for the app, the benches and scripts::

    assistant = Assistant(model)
    assistant.start("img1", image)
    assistant.paint(painted)       # the user's pixels so far (255 where nothing is painted)
    assistant.learn(1.0)           # train for a second of wall time on them and the reviews
    label = assistant.predict()    # painted pixels as painted, the rest predicted
    assistant.review(label)        # the whole label becomes a target, as a reviewed image

The painted pixels of the image being worked on are training targets from the first stroke
(its other pixels are void for the loss), beside every reviewed image. ``predict`` uses the
newest weights for that image; a model for the other images is adopted by the learner's
held-out rule (``adopted``). A model that has learnt nothing predicts nothing: all void.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from core.inference.predictor import Predictor
from core.io.labels import VOID
from core.model.checkpoints import SegmentationModel
from core.training.learner import Adopted, ContinuousLearner, LearnerConfig
from core.training.sampling import Example

# States in which the learner has nothing to do until it gets new labels.
_STOPPED = ("idle", "resting", "paused")


class Assistant:
    """Learns from the strokes on the image being painted and predicts the rest of it."""

    def __init__(
        self, model: SegmentationModel, config: LearnerConfig | None = None, *, device: str = "cpu"
    ) -> None:
        config = dataclasses.replace(config or LearnerConfig(), device=device)
        self.learner = ContinuousLearner(model, config)
        self.device = device
        self.adopted: SegmentationModel | None = model if model.info.trained else None
        self._run = self.learner.run()
        self._predictor: Predictor | None = None  # made once; its weights refreshed per predict
        self._image_id: str | None = None
        self._image: np.ndarray | None = None
        self.painted: np.ndarray | None = None

    @property
    def has_learnt(self) -> bool:
        """Whether the weights are worth showing: a trained checkpoint, or any step taken."""
        return self.adopted is not None or self.learner.steps > 0

    def start(self, image_id: str, image: np.ndarray, painted: np.ndarray | None = None) -> None:
        """Work on ``image`` next; ``painted``: strokes it already has (a reopened image)."""
        self._image_id, self._image = image_id, image
        self.painted = np.full(image.shape[:2], VOID, np.uint8)
        if painted is not None:
            self.paint(painted)

    def paint(self, painted: np.ndarray) -> None:
        """The painted pixels of the image being worked on (``VOID`` elsewhere): they train from
        the next step on."""
        if self._image is None:
            raise RuntimeError("start an image before painting it")
        if painted.shape != self.painted.shape:
            raise ValueError(f"{self._image_id}: painted {painted.shape}, image {self.painted.shape}")
        self.painted = painted.astype(np.uint8, copy=True)
        if (self.painted != VOID).any():
            self.learner.add(Example(self._image_id, self._image, self.painted), live=True)

    def learn(self, seconds: float) -> int:
        """Train for ``seconds`` of wall time, or until there is nothing to learn; the steps taken."""
        before = self.learner.steps
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            event = next(self._run)
            if isinstance(event, Adopted):
                self.adopted = event.model
            if event.state in _STOPPED:
                break
        return self.learner.steps - before

    def predict(self) -> np.ndarray:
        """The image's label: painted pixels as painted, the others from the newest weights (all
        void while nothing has been learnt)."""
        if self._image is None:
            raise RuntimeError("start an image before predicting it")
        if not self.has_learnt:
            return self.painted.copy()
        source = self.adopted.module if self.learner.steps == 0 else self.learner.net
        if self._predictor is None:
            info = dataclasses.replace(self.learner.model.info, trained=True)
            self._predictor = Predictor(SegmentationModel(source, info), device=self.device, precision="fp32")
        else:  # the newest weights into the predictor's own copy, not a new copy per stroke
            self._predictor.model.module.load_state_dict(source.state_dict())
        label = self._predictor.predict(self._image).label
        return np.where(self.painted != VOID, self.painted, label)

    def review(self, label: np.ndarray) -> None:
        """The image is done: ``label`` (the whole of it) trains as a reviewed image from now on."""
        if self._image is None:
            raise RuntimeError("start an image before reviewing it")
        self.learner.add(Example(self._image_id, self._image, label))
        self._image_id = self._image = self.painted = None

    def close(self) -> None:
        """Stop the learner (it keeps what it learnt in its history, if it has one)."""
        self._run.close()
