"""Continuous learning from the user's corrections: one trainer that runs while they annotate.

Reviewed images join (``add``) and leave (``remove``) between steps; no restart, no copies
of the labels. A share of them is held out and never trained on: the third image, then
every fifth (``holdout_every``). Every few seconds of training the learner scores its
weights on the held-out images (labelled pixels only) and compares them with the model in
use; when they score better, it *adopts* them: the model is saved to the history and handed
to the caller, which switches predictions to it. With fewer than three reviewed images there
is nothing to hold out, and it adopts after each short fixed budget of training instead.
What it scores and adopts is a moving average of its weights (``core.training.weight_average``),
which depends less on the step a budget happened to end on.

``run`` is a generator (``core``'s contract for long work): it yields ``LearnerEvent`` s,
runs until the caller closes it, and saves its weights and optimizer state in ``finally``
so nothing learnt is lost. Work the user waits for has priority: while ``yield_to()`` is
true the learner pauses between steps.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import numpy as np
import torch

from core.base.choices import UNET
from core.base.errors import TrainingError
from core.base.progress import Progress
from core.compute.devices import choose_device, prepare_device, training_precision_name
from core.model.checkpoints import SegmentationModel, copy_model
from core.training.evaluate import confusion
from core.training.example_memory import ExampleMemory
from core.training.history import LearningHistory
from core.training.metrics import ConfusionMeter
from core.training.sampling import CropSampler, Example, object_scale
from core.training.step import StepRunner, build_optimizer, diverged, freeze, set_dropout
from core.training.weight_average import averaged_model

EVAL_SIDE = 1024  # held-out images larger than this are scored on their most labelled part
# Scores come after at least this many times the last scoring's seconds of training, so
# scoring takes at most a fifth of the learner's time, however many held-out images there
# are (a 1024x1024 one takes 0.46 s for the U-Net on a 2-core Xeon, bf16).
SCORING_EVERY = 4.0


@dataclass
class LearnerConfig:
    """Knobs of the continuous learner; the defaults come from ``bench/session.py``."""

    crop: int | None = None  # None: the network's recipe (RECIPES)
    batch_size: int | None = None
    lr: float | None = None
    head_lr_mult: float = 100.0
    weight_decay: float = 1e-4
    dropout: float = 0.1
    precision: str = "auto"
    device: str = "auto"
    # FC6/FC7 hold 88 % of the weights: frozen, a CPU step takes a third of the time (measured)
    frozen: tuple[str, ...] = ("fc6.", "fc7.")
    wrong_share: float = 0.5
    all_orientations: bool = False
    eval_every_s: float = 8.0  # seconds of training between scores, or more (SCORING_EVERY)
    budget_steps: int | None = None  # fewer than three reviewed: adopt after this many steps
    holdout_every: int = 5
    min_gain: float = 0.002
    # This many steps without an adoption or a new review (or strokes), and a score since:
    # rest. Both rules count steps, not seconds, so that a slower CPU gets the same training
    # before them (in seconds, the busy EPYC got 8 steps before its first adoption).
    rest_after_steps: int | None = None
    memory_budget_mb: float | None = None  # reviewed images held in RAM; None: a quarter of it
    scale: float | None = None  # input scale; None: the model's, or chosen from the labels if untrained
    # Decay of the weight average that is scored and adopted (0: the latest weights). Measured
    # with bench/session.py: image 2 costs 34 % instead of 55 %, images 3-8 12.9 % against 13.2 %.
    average: float = 0.95
    seed: int = 0


@dataclass(frozen=True)
class Recipe:
    """Crop side, batch size and learning rate that train a network best per CPU-second, and
    the steps before the first adoption and before a rest."""

    crop: int
    batch_size: int
    lr: float
    budget_steps: int
    rest_after_steps: int


# Measured with bench/session.py (README, "Learning while you annotate"): the VGG16 FCNs want
# large crops to fill their stride-8 maps; the U-Net learns edges from many small crops.
# Rest: the 20 s measured there on the Xeon (12.6 / 13.2 % effort with 21-22 s of training per
# image, against 12.4 / 13.0 % after 30 s and 12.9 / 12.8 % after 60 s) at its step rates,
# U-Net 8.7 steps/s, FCN-8s 1.8 (3650 and 739 steps in 7 x 60 s). First adoption: the Xeon's
# 15 s would be 130 U-Net steps, which on a 2-core EPYC (2 steps/s) left images 2 and 3 with no
# model (bench/session.py --precision fp32 --budget 20: 37.5 % effort on images 2..8); 30 steps
# gave 13.8 % there (13.2 % with the 15 s rule); the FCNs' in the same proportion.
RECIPES = {UNET: Recipe(crop=96, batch_size=8, lr=1e-3, budget_steps=30, rest_after_steps=175)}
FCN_RECIPE = Recipe(crop=256, batch_size=4, lr=3e-4, budget_steps=6, rest_after_steps=35)


def recipe_for(config: LearnerConfig, variant: str) -> LearnerConfig:
    """``config`` with its unset fields (crop, batch size, learning rate, step rules) taken
    from ``variant``'s recipe."""
    recipe = dataclasses.asdict(RECIPES.get(variant, FCN_RECIPE))
    return dataclasses.replace(config, **{k: v for k, v in recipe.items() if getattr(config, k) is None})


@dataclass(frozen=True)
class LearnerEvent(Progress):
    """A step or a change of state. ``state``: training, waiting (for a prediction), paused,
    resting, idle (nothing to train on), adopted."""

    state: str = "training"
    step: int = 0
    loss: float = float("nan")
    train_images: int = 0
    heldout_images: int = 0
    train_seconds: float = 0.0
    score: float | None = None  # the latest held-out mIoU of the learner's weights


@dataclass(frozen=True)
class Adopted(LearnerEvent):
    """The learner's weights replaced the model in use; ``model`` is the caller's copy."""

    model: SegmentationModel | None = field(default=None, repr=False)
    path: str | None = None
    before: float | None = None
    after: float | None = None

    def describe(self) -> str:
        if self.after is None:
            n = self.train_images
            return f"model improved: trained {self.train_seconds:.0f} s on {n} reviewed image{'s' * (n != 1)}"
        before = "?" if self.before is None or np.isnan(self.before) else f"{self.before:.2f}"
        n = self.heldout_images
        return f"model improved: mIoU {before} -> {self.after:.2f} on {n} held-out image{'s' * (n != 1)}"


class ContinuousLearner:
    """Trains a copy of ``model`` on a changing set of reviewed ``Example`` s; see the module doc.

    ``optimizer_state`` and ``state`` resume a learner saved by ``LearningHistory.save_latest``.
    Thread-safe: ``add``, ``remove``, ``pause``, ``resume`` may be called from any thread while
    ``run`` iterates on another.
    """

    def __init__(
        self,
        model: SegmentationModel,
        config: LearnerConfig | None = None,
        *,
        history: LearningHistory | None = None,
        optimizer_state: dict | None = None,
        state: dict | None = None,
        in_use: SegmentationModel | None = None,
    ) -> None:
        self.config = c = recipe_for(config or LearnerConfig(), model.info.variant)
        self.device = choose_device(c.device)
        prepare_device(self.device)
        self.history = history
        self.precision = training_precision_name(self.device, c.precision)
        torch.manual_seed(c.seed)
        module = copy.deepcopy(model.module).float().to(self.device)
        if self.device.type == "cpu":
            module = module.to(memory_format=torch.channels_last)
        self.model = SegmentationModel(module, copy.deepcopy(model.info))
        self.net = module.train()
        set_dropout(self.net, c.dropout)
        freeze(self.net, c.frozen)
        self.opt = build_optimizer(
            self.net, lr=c.lr, head_lr_mult=c.head_lr_mult, weight_decay=c.weight_decay
        )
        if optimizer_state is not None:
            # Saved for another set of trainable layers: start the moments afresh.
            with contextlib.suppress(ValueError, KeyError):
                self.opt.load_state_dict(optimizer_state)
        self.step_runner = StepRunner(self.net, self.opt, self.device, c.precision)
        # What is scored and adopted: the moving average of the weights, or the latest ones.
        self.average = averaged_model(self.net, c.average) if c.average else None
        self.scored = self.average.module if self.average is not None else self.net
        self.sampler = CropSampler(
            c.crop, self.model.info.mean, self.model.info.std,
            wrong_share=c.wrong_share, all_orientations=c.all_orientations, seed=c.seed,
        )  # fmt: skip
        if c.scale is not None:
            self.model.info.scale = c.scale
        self.sampler.zoom = self.model.info.scale
        self._scale_pending = c.scale is None and not model.info.trained
        # The model in use, to score it on the held-out images. Shaped like the learner's network
        # and sharing its frozen tensors: it holds only what training changes.
        self._frozen = {n: p for n, p in self.net.named_parameters() if not p.requires_grad}
        self._scorer = self._scorer_shell()
        source = in_use if in_use is not None else model
        self._scorer_scale = source.info.scale
        self._scorer_fits = source.info.num_classes == self.model.info.num_classes
        if self._scorer_fits:
            self._take_in_use(source.module)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        budget = None if c.memory_budget_mb is None else int(c.memory_budget_mb * 2**20)
        self._examples = ExampleMemory(history.cache_folder if history is not None else None, budget)
        state = state or {}
        self._heldout: set[str] = set(state.get("heldout", []))
        self._seen: set[str] = set(state.get("seen", [])) | self._heldout  # every id that ever arrived
        self._live: set[str] = set()  # images being painted: their strokes are their labels
        self.steps = int(state.get("steps", 0))
        self.train_seconds = 0.0
        self.scoring_seconds = 0.0  # spent scoring held-out images
        self._last_scoring = 0.0
        self.paused = False
        self.yield_to: Callable[[], bool] = lambda: False
        self._new_data = False
        self._in_use_score: tuple[frozenset[str], float] | None = None
        self.score: float | None = None
        self._saved_step = self.steps

    # --- the pool of reviewed images (any thread) ---------------------------------------
    def add(self, example: Example, *, live: bool = False) -> None:
        """A reviewed image joins (or its label is replaced) at the next step. ``live``: the
        image being painted, its strokes as the label; it trains at once and is never held out
        (it takes its place in the held-out split when it is added again, reviewed)."""
        with self._lock:
            if live:
                self._live.add(example.id)
            else:
                self._live.discard(example.id)
            if not live and example.id not in self._seen:
                if len(self._seen) % self.config.holdout_every == 2:
                    self._heldout.add(example.id)
                self._seen.add(example.id)
            self._examples.keep(example)
            self._new_data = True
        self._wake.set()

    def remove(self, image_id: str) -> None:
        """An image taken back out of ``reviewed`` leaves training (it stays held out if it was)."""
        with self._lock:
            self._examples.forget(image_id)

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self._wake.set()

    def wake(self) -> None:
        """End a rest (new reviews do this by themselves)."""
        self._wake.set()

    def _split(self) -> tuple[list[Example], list[Example]]:
        with self._lock:
            items = self._examples.values()
        train = [e for e in items if e.id not in self._heldout and e.has_labels]
        return train, [e for e in items if e.id in self._heldout and e.has_labels]

    def _has_reviewed(self, train: list[Example]) -> bool:
        """Whether a reviewed image is trained on: strokes alone never make a model for the
        other images (they make the live prediction of the one being painted)."""
        with self._lock:
            return any(e.id not in self._live for e in train)

    def state(self) -> dict:
        """What ``LearningHistory.save_latest`` keeps to resume with the same held-out split."""
        with self._lock:
            return {"heldout": sorted(self._heldout), "seen": sorted(self._seen), "steps": self.steps}

    # --- scoring -------------------------------------------------------------------------
    def _confusion(self, net: torch.nn.Module, examples: list[Example], scale: float) -> ConfusionMeter:
        info = dataclasses.replace(self.model.info, scale=scale)
        pairs = (_most_labelled(e, EVAL_SIDE) for e in examples)
        return confusion(net, pairs, info, self.device, self.config.precision)

    def _score(self, net: torch.nn.Module, heldout: list[Example], scale: float) -> float:
        return float(self._confusion(net, heldout, scale).scores().mean_iou)

    def _in_use(self, heldout: list[Example]) -> float:
        if not self._scorer_fits:  # the model in use predicts another class list: any score beats it
            return float("nan")
        key = frozenset(e.id for e in heldout)
        if self._in_use_score is None or self._in_use_score[0] != key:
            self._in_use_score = (key, self._score(self._scorer, heldout, self._scorer_scale))
        return self._in_use_score[1]

    # --- the loop ------------------------------------------------------------------------
    def _event(self, state: str, train: list, heldout: list, **kw) -> LearnerEvent:
        return LearnerEvent(
            self.steps, 0, state, state=state, step=self.steps, train_images=len(train),
            heldout_images=len(heldout), train_seconds=self.train_seconds, score=self.score, **kw,
        )  # fmt: skip

    def _scorer_shell(self) -> torch.nn.Module:
        """A network shaped like the learner's that shares its frozen tensors."""
        shell = copy.deepcopy(self.net, memo={id(p): p for p in self._frozen.values()}).eval()
        shell.is_shell = True
        return shell

    def _take_in_use(self, module: torch.nn.Module) -> None:
        """The scorer gets ``module``'s weights: a frozen tensor equal to the learner's stays
        shared with it, everything else is copied in. A model in use of another architecture
        (a checkpoint loaded since the learner's last run) is copied whole."""
        state, mine = module.state_dict(), self.net.state_dict()
        if state.keys() != mine.keys() or any(state[k].shape != mine[k].shape for k in mine):
            self._scorer = copy.deepcopy(module).float().to(self.device).eval()
            return
        if not getattr(self._scorer, "is_shell", False):
            self._scorer = self._scorer_shell()
        own = dict(self._scorer.named_parameters()) | dict(self._scorer.named_buffers())
        with torch.no_grad():
            for name, value in state.items():
                shared = self._frozen.get(name)
                if shared is None:
                    own[name].copy_(value)
                    continue
                same = value.data_ptr() == shared.data_ptr() or torch.equal(
                    value.to(shared.device, shared.dtype), shared
                )
                if not same:
                    shared = torch.nn.Parameter(value.to(self.device, torch.float32, copy=True), False)
                owner, _, attr = name.rpartition(".")
                setattr(self._scorer.get_submodule(owner), attr, shared)

    def _adopt(self, train: list, heldout: list, before: float | None, after: float | None) -> Adopted:
        self._take_in_use(self.scored)
        self._scorer_fits = True
        self._scorer_scale = self.model.info.scale
        self._in_use_score = None if after is None else (frozenset(e.id for e in heldout), after)
        copy_ = copy_model(SegmentationModel(self.scored, self.model.info), device="cpu")
        copy_.module.eval()
        copy_.info.trained = True
        path = None
        if self.history is not None:
            path = str(self.history.save_adopted(copy_, after, len(heldout), self.steps))
        return Adopted(
            self.steps, 0, "adopted", state="adopted", step=self.steps, train_images=len(train),
            heldout_images=len(heldout), train_seconds=self.train_seconds, score=after,
            model=copy_, path=path, before=before, after=after,
        )  # fmt: skip

    def run(self) -> Generator[LearnerEvent, None, None]:
        """Train until closed; yields a ``LearnerEvent`` per step or state change."""
        c = self.config
        # Steps since the last adoption and since the last progress (an adoption, a review or
        # strokes); seconds of training since the last score. Waiting for a prediction the
        # user wants, or a pause, never counts.
        since_adoption = since_progress = 0
        since_eval = 0.0
        # Whether the held-out images were scored since the last review or adoption: with
        # scoring spaced out on large held-out images (SCORING_EVERY), the rest could come
        # before the training since the last review was ever checked.
        scored = False
        first_loss: float | None = None
        try:
            while True:
                train, heldout = self._split()
                if self._new_data:
                    self._new_data = False
                    since_progress, scored = 0, False
                waiting = (
                    "paused" if self.paused
                    else "idle" if not train
                    else "resting" if since_progress > c.rest_after_steps and (scored or not heldout)
                    else "waiting" if self.yield_to()
                    else None
                )  # fmt: skip
                if waiting is not None:
                    if waiting == "resting" and self.history is not None and self._saved_step != self.steps:
                        self.save_latest()
                    self._wake.wait(0.05 if waiting == "waiting" else 0.25)
                    self._wake.clear()
                    yield self._event(waiting, train, heldout)
                    continue
                # Strokes tell nothing of the objects' size: the scale waits for a reviewed image.
                if self._scale_pending and (reviewed := [e.label for e in train if e.id not in self._live]):
                    self._scale_pending = False
                    scale = object_scale(reviewed, self.net.output_stride)
                    self.model.info.scale = self.sampler.zoom = scale
                started = time.perf_counter()
                images, masks = self.sampler.batch(train, c.batch_size)
                loss = self.step_runner(images, masks, lambda v, f=first_loss: _check(v, f))
                first_loss = loss if first_loss is None else first_loss
                self.steps += 1
                if self.average is not None:
                    self.average.update_parameters(self.net)
                spent = time.perf_counter() - started
                self.train_seconds += spent
                since_adoption += 1
                since_eval += spent
                since_progress += 1
                yield self._event("training", train, heldout, loss=loss)
                adopted = None
                if heldout and since_eval >= max(c.eval_every_s, self._last_scoring * SCORING_EVERY):
                    since_eval = 0.0
                    scoring = time.perf_counter()
                    before = self._in_use(heldout)
                    self.score = self._score(self.scored, heldout, self.model.info.scale)
                    self._last_scoring = time.perf_counter() - scoring
                    self.scoring_seconds += self._last_scoring
                    scored = True
                    if self.score > before + c.min_gain or np.isnan(before):
                        since_adoption = since_progress = 0
                        scored = False
                        adopted = self._adopt(train, heldout, before, self.score)
                elif not heldout and since_adoption >= c.budget_steps and self._has_reviewed(train):
                    since_adoption = 0
                    adopted = self._adopt(train, heldout, None, None)
                if adopted is not None:
                    yield adopted
        finally:
            if self.history is not None and self._saved_step != self.steps:
                self.save_latest()
            with self._lock:
                self._examples.delete_files()

    def save_latest(self) -> None:
        """Keep the learner's weights, optimizer state and split (done on close and when resting)."""
        info = copy.deepcopy(self.model.info)
        info.trained = True
        info.training = {**info.training, "steps": self.steps}
        self.history.save_latest(SegmentationModel(self.net, info), self.opt.state_dict(), self.state())
        self._saved_step = self.steps


def _check(value: float, first: float | None) -> None:
    if diverged(value, first):
        raise TrainingError(
            f"the loss became {value:.3g} (learning diverged); the model in use is kept. "
            "Roll back to an earlier model or lower the learning rate"
        )


def _most_labelled(e: Example, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Image and label of the ``side`` x ``side`` part of ``e`` with the most labelled pixels
    (its centre could be all void, and score nothing)."""
    top, left = e.labelled.densest_window(side)
    rows, cols = slice(top, top + side), slice(left, left + side)
    return e.image[rows, cols], e.label[rows, cols]
