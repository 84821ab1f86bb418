"""The assist loop on the image being painted: its strokes train at once, and the rest of the
image is predicted from them.

One API for the app, the benches and scripts::

    assistant = Assistant(model)
    assistant.start("img1", image)
    assistant.paint(painted)       # the user's pixels so far (255 where nothing is painted)
    assistant.learn(1.0)           # train for a second of wall time on them and the reviews
    label = assistant.predict()    # painted pixels as painted, the rest predicted
    assistant.review(label)        # the whole label becomes a target, as a reviewed image

The painted pixels of the image being worked on are training targets from the first stroke
(its other pixels are void for the loss), beside every reviewed image. Two learners take them:

- the network (``ContinuousLearner``), which is the model the app ends with; a model for the
  other images is adopted by its held-out rule (``adopted``);
- a quick pixel classifier on filter features (``QuickClassifier``), which separates what a few
  strokes show in tens of steps while the network, from random weights, needs hundreds.

``predict`` blends their probabilities with the weight that predicted the last reviewed
images best as they opened, before their first stroke (strokes are no fair test: each falls
where the blend shown was wrong), so the network takes over as it gets better. A model that
has learnt nothing predicts nothing: all void.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from core.inference.predictor import Prediction, Predictor
from core.io.labels import VOID
from core.model.checkpoints import SegmentationModel
from core.training.learner import Adopted, ContinuousLearner, LearnerConfig, LearnerEvent
from core.training.pixel_features import pixel_features
from core.training.quick_classifier import QuickClassifier
from core.training.sampling import Example

# States in which the learner has nothing to do until it gets new labels.
_STOPPED = ("idle", "resting", "paused")
FEATURE_PIXELS = 1_000_000  # larger images get their features at a scale with this many pixels
QUICK_STEPS = 150  # of the quick classifier after each change of the strokes (measured: bench/strokes.py)
# In the app, the image is filled in after the first this many of them, then again after the
# rest: the same weights as all at once, and the fill-in half a second sooner on a slow CPU.
QUICK_FIRST_STEPS = 40
REVIEWED_PIXELS = 5000  # pixels of each reviewed image the quick classifier keeps
REVIEWED_IMAGES = 50  # the newest this many reviewed images
SCORED_PIXELS = 20000  # of each reviewed image, to weigh the two learners
EVIDENCE_DECAY = 0.5  # per reviewed image: recent ones count more, as the network changes fastest
WEIGHTS = np.linspace(0.0, 1.0, 11)  # the quick classifier's share of the blend
# Before any evidence the quick classifier is trusted over a network that started from random
# weights (by this many nats of mean log-likelihood at share 1 over share 0, decaying as evidence
# comes); a trained checkpoint starts even.
PRIOR_NATS = 2.0
# After a change of the strokes, the image is predicted at once (the quick classifier and the
# network as it is) and again after this many network steps on it.
LIVE_TILE = 512  # tiles of the network's refresh: a point to stop at every few tenths of a second
REFRESH_AFTER_STEPS = (2, 8, 32)  # (the quick one at once reuses the network's last prediction)
BLEND_BAND_VALUES = 1 << 22  # class probabilities upsampled and blended at a time (rows x width x classes)


@dataclass(frozen=True)
class LivePrediction(LearnerEvent):
    """The image being painted, predicted with the newest weights; ``label``: painted pixels as
    painted, the rest predicted."""

    image_id: str = ""
    label: np.ndarray | None = field(default=None, repr=False, compare=False)


class Assistant:
    """Learns from the strokes on the image being painted and predicts the rest of it.

    Not thread-safe: one thread calls it (the app's learner thread, which takes the strokes
    from a queue between steps)."""

    def __init__(
        self,
        model: SegmentationModel | None = None,
        config: LearnerConfig | None = None,
        *,
        device: str = "cpu",
        learner: ContinuousLearner | None = None,
        in_use: SegmentationModel | None = None,
        quick: bool = True,
        interrupted: Callable[[], bool] = lambda: False,
        spare_core: bool = False,
    ) -> None:
        if learner is None:
            config = dataclasses.replace(config or LearnerConfig(), device=device)
            learner = ContinuousLearner(model, config)
            in_use = model
        self.learner = learner
        self.device = str(learner.device)
        self.adopted: SegmentationModel | None = (
            in_use if in_use is not None and in_use.info.trained else None
        )
        self.use_quick = quick
        # New strokes are waiting: a refresh of the image with the network (seconds on a large
        # image) stops between tiles, as its result would be out of date at once.
        self.interrupted = interrupted
        # A window on the same CPU: while a stroke is filled in, ``events`` trains and predicts on
        # one core fewer, so painting on a 2-core machine never waits for the learner's threads.
        self.spare_core = spare_core
        self._threads: int | None = None  # the calling thread's torch threads, when not live
        self._run = self.learner.run()
        self._predictor: Predictor | None = None  # made once; its weights refreshed per predict
        self._image_id: str | None = None
        self._image: np.ndarray | None = None
        self.painted: np.ndarray | None = None
        self._features: torch.Tensor | None = None  # (h, w, F) of the image, maybe scaled down
        self._quick: QuickClassifier | None = None
        self._quick_classes = torch.zeros(0, dtype=torch.long)  # the classes it was last shown
        self._quick_stale = False
        self._reviewed: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._evidence = PRIOR_NATS * WEIGHTS if self.adopted is None else np.zeros(len(WEIGHTS))
        self._shown: tuple[torch.Tensor | None, Prediction | None] = (None, None)
        self._first_shown: tuple[torch.Tensor | None, Prediction | None] | None = None  # at start
        self._since_paint = 0  # network steps since the strokes last changed
        self._has_strokes = False  # painted holds a class somewhere (start and paint set it)
        self._rng = np.random.default_rng(learner.config.seed)

    @property
    def has_learnt(self) -> bool:
        """Whether the network's weights are worth showing: a trained checkpoint, or any step."""
        return self.adopted is not None or self.learner.steps > 0

    @property
    def image_id(self) -> str | None:
        return self._image_id

    @property
    def quick_share(self) -> float:
        """The quick classifier's share of the blend now (1 while the network has learnt nothing)."""
        if not self.has_learnt:
            return 1.0
        if self._quick is None or not self._quick.fitted:
            return 0.0
        return float(WEIGHTS[int(np.argmax(self._evidence))])

    # --- the image being painted ----------------------------------------------------------
    def start(self, image_id: str, image: np.ndarray, painted: np.ndarray | None = None) -> None:
        """Work on ``image`` next; ``painted``: strokes it already has (a reopened image)."""
        self._image_id, self._image = image_id, image
        self.painted = np.full(image.shape[:2], VOID, np.uint8)
        self._has_strokes = False
        self._features = self._features_of(image) if self.use_quick else None
        self._shown, self._first_shown = (None, None), None
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
        self._since_paint = 0
        self._quick_stale = True
        self._has_strokes = bool((self.painted != VOID).any())
        if self._has_strokes:
            self.learner.add(Example(self._image_id, self._image, self.painted), live=True)
        else:  # every stroke undone
            self.learner.remove(self._image_id)

    def review(self, label: np.ndarray, *, wrong: np.ndarray | None = None) -> None:
        """The image is done: ``label`` (the whole of it) trains as a reviewed image from now on
        (``wrong``: where the prediction it started from differed, sampled more often)."""
        if self._image is None:
            raise RuntimeError("start an image before reviewing it")
        if self._first_shown is not None:  # how each predicted the image before its first stroke
            self._weigh(self._first_shown, label)
        self.add_reviewed(self._image_id, self._image, label, wrong=wrong, features=self._features)
        self._image_id = self._image = self.painted = self._features = None
        self._shown = (None, None)

    def add_reviewed(
        self, image_id: str, image: np.ndarray, label: np.ndarray, *, wrong: np.ndarray | None = None,
        features: torch.Tensor | None = None, quick: bool = True,
    ) -> None:  # fmt: skip
        """A reviewed image (not the one being painted) trains from now on; ``quick`` False:
        the network only (an old review, when the quick classifier has the newest ones)."""
        self.learner.add(Example(image_id, image, label, wrong))
        if not self.use_quick or not quick:
            return
        features = self._features_of(image) if features is None else features
        known = _scaled(label, features.shape[:2]).ravel()
        where = np.flatnonzero(known != VOID)
        if where.size:
            take = torch.from_numpy(self._rng.choice(where, min(REVIEWED_PIXELS, where.size), replace=False))
            flat = features.reshape(-1, features.shape[-1])
            self._reviewed = [*self._reviewed, (flat[take], torch.from_numpy(known[take.numpy()]).long())]
            self._reviewed = self._reviewed[-REVIEWED_IMAGES:]
            self._quick_stale = True

    # --- learning ---------------------------------------------------------------------------
    def events(self) -> Generator[LearnerEvent, None, None]:
        """The learner's events, with a ``LivePrediction`` of the image being painted at once
        after each change of its strokes (after ``QUICK_FIRST_STEPS`` of the quick classifier,
        then after all of them) and again after ``REFRESH_AFTER_STEPS`` network steps; with
        ``spare_core``, on one core fewer until then."""
        try:
            yield from self._events()
        finally:
            self._spare_a_core(False)

    def _events(self) -> Generator[LearnerEvent, None, None]:
        while True:
            self._spare_a_core(self._filling_in())
            if self._quick_stale and self._image is not None and self._has_strokes:
                # The image on screen first: its quick prediction before the network's next step
                # (the network's last prediction is reused), after a few steps and after all.
                self._fit_quick(QUICK_FIRST_STEPS)
                yield self._live(fresh=False)
                if not self._quick_stale and self._quick is not None:  # no newer strokes meanwhile
                    self._fit_quick(QUICK_STEPS - QUICK_FIRST_STEPS)
                    yield self._live(fresh=False)
                continue
            event = next(self._run)
            if isinstance(event, Adopted):
                self.adopted = event.model
            yield event
            if event.state == "training":
                self._since_paint += 1
                refresh = self._since_paint in REFRESH_AFTER_STEPS and not self.interrupted()
                if self._image is not None and refresh and (live := self._live(fresh=True)) is not None:
                    yield live

    def _filling_in(self) -> bool:
        """Whether the newest strokes are still being filled in (their refreshes to come)."""
        return self._image is not None and self._has_strokes and self._since_paint < REFRESH_AFTER_STEPS[-1]

    def _spare_a_core(self, spare: bool) -> None:
        """With ``spare_core``: the calling thread's torch threads one fewer while ``spare``
        (at least one), all of them again after. (torch's count is per thread once a thread has
        run an op; a thread that starts its first op meanwhile takes the lower count.)"""
        if not self.spare_core:
            return
        if self._threads is None:
            self._threads = torch.get_num_threads()
        wanted = max(1, self._threads - 1) if spare else self._threads
        if torch.get_num_threads() != wanted:
            torch.set_num_threads(wanted)

    def learn(self, seconds: float, *, network: bool = True) -> int:
        """Train for ``seconds`` of wall time, or until there is nothing to learn (the quick
        classifier's steps first, counted in the time); the network steps taken. ``network``
        False: the quick classifier's steps only, whatever the time (a measure that does not
        depend on the CPU's speed: ``bench/strokes.py --quick-only``)."""
        before = self.learner.steps
        deadline = time.perf_counter() + seconds
        if seconds > 0 and self._quick_stale and self._image is not None:
            self._fit_quick()
        while network and time.perf_counter() < deadline:
            event = next(self._run)
            if isinstance(event, Adopted):
                self.adopted = event.model
            if event.state == "training":
                self._since_paint += 1
            if event.state in _STOPPED:
                break
        return self.learner.steps - before

    def _fit_quick(self, steps: int = QUICK_STEPS) -> None:
        self._quick_stale = False
        if self._features is None:
            return
        painted = _scaled(self.painted, self._features.shape[:2]).ravel()
        where = torch.from_numpy(np.flatnonzero(painted != VOID))
        xs = [self._features.reshape(-1, self._features.shape[-1])[where], *(x for x, _ in self._reviewed)]
        ys = [torch.from_numpy(painted[where.numpy()]).long(), *(y for _, y in self._reviewed)]
        x, y = torch.cat(xs), torch.cat(ys)
        if x.shape[0] == 0:
            return
        classes = self.learner.model.info.num_classes
        if self._quick is None or self._quick.net[0].in_features != x.shape[1]:
            self._quick = QuickClassifier(x.shape[1], classes, seed=self.learner.config.seed)
        self._quick.fit(x, y, steps, focus=int(where.numel()))
        self._quick_classes = torch.unique(y)

    def _live(self, fresh: bool) -> LivePrediction | None:
        """The image predicted for the window; ``None`` when new strokes interrupted it."""
        label = self.predict(fresh=fresh, interruptible=fresh)
        if label is None:
            return None
        return LivePrediction(
            self.learner.steps, 0, "live", state="live", step=self.learner.steps,
            image_id=self._image_id, label=label,
        )  # fmt: skip

    # --- predicting ---------------------------------------------------------------------------
    def predict(self, *, fresh: bool = True, interruptible: bool = False) -> np.ndarray | None:
        """The image's label: painted pixels as painted, the others from the blend of the quick
        classifier and the newest network weights (all void while nothing has been learnt).
        ``fresh`` False: the network's last prediction of the image, or none if there is none
        yet, instead of a new one (it costs seconds on a large image, a minute at 24 megapixels;
        the quick classifier is always new). ``interruptible``: ``None`` if ``interrupted()``
        came true between network tiles."""
        if self._image is None:
            raise RuntimeError("start an image before predicting it")
        net = None if fresh else self._shown[1]
        if fresh and self.has_learnt:
            net = self._network(interruptible)
            if net is None:
                return None
        quick = self._quick_probabilities()
        self._shown = (quick, net)
        if self._first_shown is None:
            self._first_shown = self._shown
        if quick is None and net is None:
            return self.painted.copy()
        share = self.quick_share if quick is not None else 0.0
        if net is not None and share <= 0.0:
            label = net.label
        else:
            label = self._blend_label(quick, None if share >= 1.0 else net, share)
        return np.where(self.painted != VOID, self.painted, label)

    def _blend_label(self, quick: torch.Tensor, net: Prediction | None, share: float) -> np.ndarray:
        """The arg max of ``share`` x the quick classifier's probabilities (at the features'
        size, upsampled bilinearly) + the rest x the network's, over the classes either can
        give: the classes the quick classifier was shown, and the network's. Band by band of
        rows, so a 24-megapixel photo never holds its classes' probabilities whole."""
        height, width = self._image.shape[:2]
        present = self._quick_classes
        if net is not None:
            predicted = np.flatnonzero(np.bincount(net.label.ravel(), minlength=quick.shape[-1]))
            present = torch.unique(torch.cat([present, torch.from_numpy(predicted)]))
        present = present[present < quick.shape[-1]]
        small = quick.permute(2, 0, 1)[present]  # (present classes, h, w)
        label = np.empty((height, width), np.uint8)
        rows = max(1, BLEND_BAND_VALUES // (width * len(present)))
        for y0 in range(0, height, rows):
            y1 = min(height, y0 + rows)
            probs = _upsampled_rows(small, height, width, y0, y1) * share
            if net is not None:
                band = (net.label[y0:y1], net.confidence[y0:y1])
                probs += (1 - share) * _network_probabilities(*band, present, quick.shape[-1])
            # max's indices, not argmax: the same first-of-equals, ten times faster over dim 0
            label[y0:y1] = present[probs.max(0).indices].numpy()
        return label

    def _quick_probabilities(self) -> torch.Tensor | None:
        """(h, w, classes) probabilities of the quick classifier, at the features' size."""
        if self._quick is None or not self._quick.fitted or self._features is None:
            return None
        h, w, f = self._features.shape
        probabilities = self._quick.probabilities(self._features.reshape(-1, f)).reshape(h, w, -1)
        # Averaged over each pixel's 3x3 neighbours: fewer specks of the wrong class to paint
        # over (bench/strokes.py, four seeds: 75-83 strokes, 80-95 without). Only the classes it
        # was shown: the others are next to nothing everywhere, and all 21 of VOC's took 0.4 s.
        shown = self._quick_classes[self._quick_classes < probabilities.shape[-1]]
        with torch.inference_mode():  # as the probabilities were made
            probabilities[..., shown] = _neighbourhood_mean(probabilities[..., shown])
        return probabilities

    def _network(self, interruptible: bool = False) -> Prediction | None:
        source = self.adopted.module if self.learner.steps == 0 else self.learner.net
        if self._predictor is None:
            info = dataclasses.replace(self.learner.model.info, trained=True)
            self._predictor = Predictor(
                SegmentationModel(source, info), device=self.device, precision="fp32", tile=LIVE_TILE
            )
        else:  # the newest weights into the predictor's own copy, not a new copy per stroke
            self._predictor.model.module.load_state_dict(source.state_dict())
        run = self._predictor.iter_predict(self._image)
        try:
            while True:
                next(run)
                if interruptible and self.interrupted():
                    run.close()
                    return None
        except StopIteration as done:
            return done.value

    def _weigh(self, shown: tuple, label: np.ndarray) -> None:
        """Score each blend weight by how the ``shown`` predictions (quick, network) fit the
        reviewed ``label``."""
        quick, net = shown
        if quick is None or net is None:
            return
        where = np.flatnonzero(label.ravel() != VOID)
        if where.size > SCORED_PIXELS:
            where = self._rng.choice(where, SCORED_PIXELS, replace=False)
        if where.size == 0:
            return
        truth = torch.from_numpy(label.ravel()[where].astype(np.int64))
        classes = quick.shape[-1]
        truth = truth.clamp(max=classes - 1)
        h, w = quick.shape[:2]
        height, width = label.shape
        small = torch.from_numpy((where // width) * h // height * w + (where % width) * w // width)
        p_quick = quick.reshape(-1, classes)[small].gather(1, truth[:, None])[:, 0]
        at = (net.label.ravel()[where], net.confidence.ravel()[where])
        p_net = _network_probabilities(*at, torch.arange(classes), classes).gather(0, truth[None])[0]
        shares = torch.from_numpy(WEIGHTS).float()[:, None]
        blended = (shares * p_quick + (1 - shares) * p_net).clamp(min=1e-4)
        self._evidence = EVIDENCE_DECAY * self._evidence + blended.log().mean(1).numpy()

    @staticmethod
    def _features_of(image: np.ndarray) -> torch.Tensor:
        h, w = image.shape[:2]
        if h * w > FEATURE_PIXELS:
            factor = (FEATURE_PIXELS / (h * w)) ** 0.5
            size = (max(1, round(h * factor)), max(1, round(w * factor)))
            x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
            image = F.interpolate(x, size, mode="area")[0].permute(1, 2, 0).round().byte().numpy()
        return pixel_features(image)

    def close(self) -> None:
        """Stop the learner (it keeps what it learnt in its history, if it has one)."""
        self._run.close()


def _scaled(label: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``label`` at ``size`` (nearest pixel)."""
    if label.shape == size:
        return label
    rows = (np.arange(size[0]) * label.shape[0] // size[0])[:, None]
    cols = (np.arange(size[1]) * label.shape[1] // size[1])[None, :]
    return label[rows, cols]


def _network_probabilities(
    label: np.ndarray, confidence: np.ndarray, of: torch.Tensor, classes: int
) -> torch.Tensor:
    """``(len(of), *label.shape)``: the network's probability of each class in ``of`` where it
    predicted ``label`` with ``confidence``: the predicted class has the confidence, the other
    ``classes - 1`` share the rest (exact with two classes)."""
    predicted = torch.from_numpy(np.ascontiguousarray(label)).long().clamp(max=classes - 1)
    confidence = torch.from_numpy(np.ascontiguousarray(confidence)).float()
    rest = (1 - confidence) / max(1, classes - 1)
    of = of.view(-1, *([1] * predicted.dim()))
    return torch.where(predicted[None] == of, confidence[None], rest[None])


def _neighbourhood_mean(values: torch.Tensor) -> torch.Tensor:
    """The mean of each pixel's 3x3 neighbourhood in ``values`` (h, w, C), over the neighbours
    inside the image (as ``avg_pool2d(..., count_include_pad=False)``, three times faster)."""
    h, w = values.shape[:2]
    rows = values.clone()
    rows[1:] += values[:-1]
    rows[:-1] += values[1:]
    out = rows.clone()
    out[:, 1:] += rows[:, :-1]
    out[:, :-1] += rows[:, 1:]
    count_y = 1 + (torch.arange(h) > 0).float() + (torch.arange(h) < h - 1).float()
    count_x = 1 + (torch.arange(w) > 0).float() + (torch.arange(w) < w - 1).float()
    return out.div_((count_y[:, None] * count_x[None, :])[:, :, None])


def _upsampled_rows(small: torch.Tensor, height: int, width: int, y0: int, y1: int) -> torch.Tensor:
    """Rows ``[y0, y1)`` of ``small`` (C, h, w) resized bilinearly to ``height x width`` (as
    ``F.interpolate(..., mode="bilinear")`` would give them), without the rest."""
    h = small.shape[1]
    sy = ((torch.arange(y0, y1, dtype=torch.float32) + 0.5) * (h / height) - 0.5).clamp(min=0)
    top = sy.floor().long().clamp(max=h - 1)
    bottom = (top + 1).clamp(max=h - 1)
    weight = (sy - top.float())[None, :, None]
    rows = small[:, top] * (1 - weight) + small[:, bottom] * weight  # (C, rows, w)
    if small.shape[2] == width:
        return rows
    return F.interpolate(rows, size=width, mode="linear", align_corners=False)
