"""Fine-tuning an FCN on labelled images; DistributedDataParallel under ``torchrun``.

The loss is per-pixel softmax cross-entropy averaged over the labelled pixels; void (255)
is ignored, so partial labels train only where the user painted. ``train`` is a generator:
it yields ``TrainProgress`` after each step (and each validation) and returns a
``TrainResult``; stopping the iteration stops training after the current step.
"""

from __future__ import annotations

import copy
import math
import shutil
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from core.base.errors import CheckpointError, FcnGuiError, TrainingError
from core.base.progress import Progress
from core.compute.devices import choose_device, prepare_device
from core.compute.distributed import any_rank, distributed_rank, join_process_group
from core.io.files import output_folder
from core.io.labels import VOID
from core.model.checkpoints import ModelInfo, SegmentationModel, load_checkpoint, new_model, save_checkpoint
from core.model.networks import replace_classifier
from core.model.tensor_files import load_tensor_file
from core.training.datasets import SegmentationDataset, TrainData, from_worker, train_transform
from core.training.evaluate import confusion, sample_pairs
from core.training.step import StepRunner, build_optimizer, diverged, freeze, set_dropout

MAX_EMPTY_BATCHES = 50  # in a row, before training gives up instead of looping for ever


@dataclass
class TrainConfig:
    """Every knob of a training run, with defaults that work on a handful of images."""

    output: Path
    variant: str = "fcn8s"
    backbone: str = "vgg16"
    init: str = "imagenet"  # imagenet | none | voc | path to a checkpoint
    steps: int = 500
    epochs: int | None = None
    batch_size: int = 4
    crop: int = 320
    lr: float = 1e-4
    head_lr_mult: float = 100.0  # the freshly initialised score layers learn this much faster
    dropout: float = 0.1
    optimizer: str = "adamw"  # adamw | sgd
    weight_decay: float = 1e-4
    freeze_backbone: bool = False
    val_every: int = 100
    seed: int = 0
    device: str = "auto"
    workers: int = 2
    resume: bool = False
    allow_download: bool = False
    time_budget_s: float | None = None
    precision: str = "auto"  # auto | fp32 | bf16 (see core.compute.devices.training_autocast)
    deterministic: bool = False  # repeatable on CUDA too, slower (see core.compute.devices.prepare_device)


@dataclass(frozen=True)
class TrainProgress(Progress):
    """A step's loss and learning rate; ``val_miou`` is set after a validation."""

    loss: float = float("nan")
    lr: float = 0.0
    val_miou: float | None = None


@dataclass
class TrainResult:
    """Where the checkpoints went and how training went."""

    best: Path
    last: Path
    steps: int
    best_miou: float | None
    history: list[dict] = field(default_factory=list)
    model: SegmentationModel | None = None
    skipped_batches: int = 0  # batches of unlabelled (void) crops only, not trained on


def last_path(output: Path) -> Path:
    """The sibling of ``output`` that holds the last (not the best) checkpoint."""
    return output.with_name(output.stem + ".last" + (output.suffix or ".safetensors"))


def optimizer_path(checkpoint: Path) -> Path:
    """The sibling of a saved ``checkpoint`` that holds its optimizer state (to resume from)."""
    return checkpoint.with_name(checkpoint.stem + ".optim.pt")


def start_model(config: TrainConfig, data: TrainData) -> SegmentationModel:
    """The model training starts from: a checkpoint, ImageNet/VOC weights, or random.

    When the class list differs from the start checkpoint's, the score layers are re-created.
    """
    torch.manual_seed(config.seed)  # the random init is part of a run's determinism
    info = ModelInfo(variant=config.variant, backbone=config.backbone, classes=list(data.classes))
    if config.init in ("none", "imagenet", "voc"):
        return new_model(info, init=config.init, allow_download=config.allow_download)
    model = load_checkpoint(config.init)
    if [c.name for c in model.info.classes] != [c.name for c in data.classes]:
        replace_classifier(model.module, len(data.classes))
        model.info.trained = False
    model.info.classes = list(data.classes)
    model.info.source = f"fine-tuned from {Path(config.init).name}"
    return model


class Trainer:
    """One training run: model, optimiser, data loader, checkpoints. ``run`` is the generator."""

    def __init__(self, config: TrainConfig, data: TrainData, model: SegmentationModel | None = None) -> None:
        if Path(config.output).is_dir():
            raise TrainingError(
                f"{config.output} is a folder; --output names the checkpoint file (e.g. model.safetensors)"
            )
        if not data.train:
            raise TrainingError("no training images (need at least one reviewed/labelled image)")
        self.config, self.data = config, data
        self.rank, self.world, local_rank = distributed_rank()
        self.device = choose_device(config.device)
        if self.world > 1:
            if self.device.type == "cuda":
                self.device = torch.device("cuda", local_rank)
                torch.cuda.set_device(self.device)
            join_process_group("nccl" if self.device.type == "cuda" else "gloo")
        prepare_device(self.device, deterministic=config.deterministic)
        torch.manual_seed(config.seed)
        np.random.seed(config.seed)
        self.model = model or start_model(config, data)
        self.model.info.classes = list(data.classes)
        self.net = self.model.module.to(self.device).train()
        if self.device.type == "cpu":
            self.net = self.net.to(memory_format=torch.channels_last)
        set_dropout(self.net, config.dropout)
        if config.freeze_backbone:
            freeze(self.net, (self.net.encoder_prefix,))
        self.opt = self._optimizer()
        self.loader, self.sampler = self._loader()
        self.steps = config.steps
        if config.epochs is not None:
            per_epoch = math.ceil(len(data.train) / (config.batch_size * self.world))
            self.steps = config.epochs * max(1, per_epoch)
        total = max(self.steps, 1)
        self.schedule = torch.optim.lr_scheduler.PolynomialLR(self.opt, total_iters=total, power=0.9)
        self.output = Path(config.output)
        self.step, self.best_miou, self.history = 0, None, []
        if config.resume and last_path(self.output).exists():
            self._resume()
        self.saved_step = self.step
        if self.rank == 0:
            self._check_disk_space()
        self.summary = {
            "data": data.description,
            "train_images": len(data.train),
            "val_images": len(data.val),
        }

    def _optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        return build_optimizer(
            self.net, lr=c.lr, head_lr_mult=c.head_lr_mult, kind=c.optimizer, weight_decay=c.weight_decay
        )

    def _loader(self) -> tuple[DataLoader, object]:
        c, info = self.config, self.model.info
        transform = train_transform(c.crop, info.mean, info.std, scale=(0.5 * info.scale, 2.0 * info.scale))
        dataset = SegmentationDataset(self.data.train, len(self.data.classes), transform)
        gen = torch.Generator().manual_seed(c.seed)
        if self.world > 1:
            sampler = DistributedSampler(dataset, num_replicas=self.world, rank=self.rank, seed=c.seed)
        else:
            sampler = RandomSampler(dataset, replacement=True, num_samples=10**9, generator=gen)
        loader = DataLoader(
            dataset,
            batch_size=c.batch_size,
            sampler=sampler,
            num_workers=c.workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=c.workers > 0,
            generator=gen,
        )
        return loader, sampler

    def _check_disk_space(self) -> None:
        """Fail before the first step, not at the first save, when the checkpoints cannot fit."""
        weights = sum(p.numel() * p.element_size() for p in self.net.parameters())
        moments = 2 if self.config.optimizer == "adamw" else 1
        files = {
            self.output: weights,
            last_path(self.output): weights,
            optimizer_path(last_path(self.output)): weights * moments,
        }
        replaced = sum(p.stat().st_size for p in files if p.exists())
        needed = sum(files.values()) + max(files.values()) - replaced  # + one temporary file while replacing
        folder = output_folder(self.output.parent, "checkpoint folder")
        free = shutil.disk_usage(folder).free
        if free < needed:
            raise TrainingError(
                f"not enough disk space in {folder}: the checkpoints need {needed / 2**30:.1f} GB "
                f"and {free / 2**30:.1f} GB are free; free some space or choose another --output"
            )

    def _resume(self) -> None:
        last = load_checkpoint(last_path(self.output), num_classes=self.model.info.num_classes)
        self.model.module.load_state_dict(last.module.state_dict())
        state_file = optimizer_path(last_path(self.output))
        if state_file.exists():
            state = load_tensor_file(state_file, map_location=self.device, what="optimizer state")
            try:
                self.opt.load_state_dict(state["optimizer"])
                self.schedule.load_state_dict(state["schedule"])
            except (KeyError, TypeError, ValueError) as exc:
                raise CheckpointError(
                    f"does not hold the optimizer state of this run ({exc}); delete it to resume "
                    "with fresh optimizer moments",
                    state_file,
                ) from exc
            self.schedule.total_iters = max(self.steps, 1)  # a resumed run may go on for longer
        t = last.info.training
        self.step, self.best_miou = int(t.get("steps", 0)), t.get("best_val_miou")
        self.history = list(t.get("history", []))

    def _training(self, best: float | None) -> dict:
        return {**self.summary, "steps": self.step, "best_val_miou": best, "history": list(self.history)}

    def _save_last(self) -> None:
        training = self._training(self.best_miou)
        _save(self.rank, last_path(self.output), self.model, training, self.opt, self.schedule)
        self.saved_step = self.step

    def _checkpoint(self, val: float | None) -> None:
        """After a validation: the best checkpoint if it improved, and always the last one."""
        if val is not None and (self.best_miou is None or val > self.best_miou):
            self.best_miou = val
            _save(self.rank, self.output, self.model, self._training(val))
        elif not self.data.val:
            _save(self.rank, self.output, self.model, self._training(None))
        self._save_last()

    def _check_loss(self, value: float, first: float | None) -> None:
        if diverged(value, first):
            kept = self.output if self.output.exists() else "none yet"
            raise TrainingError(
                f"the loss became {value:.3g} at step {self.step + 1} (training diverged); "
                f"lower --lr. The last good checkpoint is kept: {kept}"
            )

    def _no_labels(self, batches: int) -> TrainingError:
        where = f" on at least one of the {self.world} processes" if self.world > 1 else ""
        return TrainingError(
            f"{batches} batches in a row held no labelled pixel{where}: the labels cover too little "
            f"of the images for --crop {self.config.crop}; use a larger --crop or label more"
        )

    def _batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The loader's batches. Bad data (a label of the wrong size, an unknown class) stops
        every rank together with its one-line message, as the main process would print it,
        not the data-loading worker's traceback."""
        batches = iter(self.loader)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except FcnGuiError as exc:
                batch = from_worker(exc)
            if any_rank(isinstance(batch, Exception), self.device):
                if isinstance(batch, Exception):
                    raise batch from None
                raise TrainingError("another training process stopped on bad data (its message names it)")
            yield batch

    def _out_of_time(self, started: float) -> bool:
        """Past the time budget on any rank (every rank stops at the same step)."""
        budget = self.config.time_budget_s
        return any_rank(budget is not None and time.monotonic() - started > budget, self.device)

    def run(self) -> Generator[TrainProgress, None, TrainResult]:
        c = self.config
        ddp = self.net
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            ddp = torch.nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
        step = StepRunner(ddp, self.opt, self.device, c.precision)
        started, first_loss, epoch, empty = time.monotonic(), None, 0, 0
        self.skipped = 0
        try:
            while self.step < self.steps and not self._out_of_time(started):
                if self.world > 1:
                    self.sampler.set_epoch(epoch)
                epoch += 1
                for images, masks in self._batches():
                    # Crops of unlabelled areas only: nothing to learn from. Skipped by every rank
                    # when one rank has such a batch, so that no rank waits for another's gradients.
                    if any_rank(not (masks != VOID).any(), self.device):
                        empty += 1
                        self.skipped += 1
                        if empty >= MAX_EMPTY_BATCHES:
                            raise self._no_labels(empty)
                        continue
                    empty = 0
                    value = step(images, masks, lambda v, f=first_loss: self._check_loss(v, f))
                    first_loss = value if first_loss is None else first_loss
                    self.schedule.step()
                    self.step += 1
                    done = self.step >= self.steps or self._out_of_time(started)
                    val = None
                    if self.step % c.val_every == 0 or done:
                        if self.data.val:
                            val = evaluate_model(
                                self.net, self.data, self.model.info, self.device, self.rank, self.world,
                                self.config.precision,
                            )  # fmt: skip
                            self.net.train()
                        self.history.append({"step": self.step, "loss": value, "val_miou": val})
                        self._checkpoint(val)
                    lr = self.opt.param_groups[0]["lr"]
                    yield TrainProgress(self.step, self.steps, "training", loss=value, lr=lr, val_miou=val)
                    if done:
                        break
        except (GeneratorExit, KeyboardInterrupt):
            if self.step > self.saved_step:  # stopped by the user: keep what was learnt, for --resume
                self._save_last()
            raise
        finally:
            self.net.eval()
        self.model.info.trained = True
        self.model.info.training = self._training(self.best_miou)
        return TrainResult(
            self.output, last_path(self.output), self.step, self.best_miou, self.history, self.model,
            self.skipped,
        )  # fmt: skip


def train(
    config: TrainConfig, data: TrainData, model: SegmentationModel | None = None
) -> Generator[TrainProgress, None, TrainResult]:
    """Fine-tune on ``data.train``, validating on ``data.val``; see the module docstring."""
    return (yield from Trainer(config, data, model).run())


def _save(rank: int, path: Path, model: SegmentationModel, training: dict, opt=None, schedule=None) -> None:
    """Rank 0 writes the checkpoint (and optimizer state for resuming), atomically."""
    if rank != 0:
        return
    info = copy.deepcopy(model.info)
    info.trained = True
    info.training = training
    save_checkpoint(path, SegmentationModel(model.module, info))
    if opt is not None:
        from core.base.atomic import atomic_path

        with atomic_path(optimizer_path(path)) as tmp:
            torch.save({"optimizer": opt.state_dict(), "schedule": schedule.state_dict()}, tmp)


def evaluate_model(
    net: torch.nn.Module,
    data: TrainData,
    info: ModelInfo,
    device: torch.device,
    rank: int = 0,
    world: int = 1,
    precision: str = "fp32",
) -> float:
    """Mean IoU of ``net`` on ``data.val`` (whole images); summed over ranks when distributed."""
    pairs = sample_pairs(data.val[rank::world], info.num_classes)
    meter = confusion(net, pairs, info, device, precision)
    if world > 1 and dist.is_initialized():
        t = torch.from_numpy(meter.matrix).to(device if device.type == "cuda" else "cpu")
        dist.all_reduce(t)
        meter.matrix = t.cpu().numpy()
    return meter.scores().mean_iou
