"""One optimisation step and its parts, shared by ``fcn-gui train`` and the continuous learner:
the optimiser with faster score layers, dropout and freezing, and the divergence check.

``FCN_GUI_SLOW_STEP_S=SECONDS`` makes every step sleep that long after its update: it
stands in for a slower CPU, so tests and benches can show that nothing assumes a fast one
(``pytest --slow-steps``).
"""

from __future__ import annotations

import math
import os
import time

import torch

from core.base.errors import TrainingError
from core.compute.devices import training_autocast
from core.compute.distributed import largest
from core.io.labels import VOID

# The layers that learn head_lr_mult times faster. Not the x2 upsamplers ("upscore"): each
# mixes every class into every other, and chained at that rate they blew a 21-class FCN-4s
# learning from scratch up within three steps; at the trunk's rate it trains.
HEAD_PREFIXES = ("score", "net.classifier.4")


def diverged(loss: float, first: float | None) -> bool:
    """A loss that is not a number, or a hundred times the first one (and above 1)."""
    return not math.isfinite(loss) or (first is not None and loss > 100 * max(first, 1.0))


def build_optimizer(
    net: torch.nn.Module,
    *,
    lr: float,
    head_lr_mult: float = 100.0,
    kind: str = "adamw",
    weight_decay: float = 1e-4,
) -> torch.optim.Optimizer:
    """AdamW (or SGD with momentum) over the trainable parameters; the class-specific score
    layers learn ``head_lr_mult`` times faster than the trunk."""
    named = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if not n.startswith(HEAD_PREFIXES)], "lr": lr},
        {"params": [p for n, p in named if n.startswith(HEAD_PREFIXES)], "lr": lr * head_lr_mult},
    ]
    groups = [g for g in groups if g["params"]]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if kind == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    raise TrainingError(f"unknown optimizer {kind!r}; use adamw or sgd")


def set_dropout(net: torch.nn.Module, p: float) -> None:
    """Use dropout ``p`` in every dropout layer (FCN's 0.5 is for training from ImageNet for days)."""
    for m in net.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = p


def freeze(net: torch.nn.Module, prefixes: tuple[str, ...]) -> None:
    """Stop training the parameters whose names start with one of ``prefixes``."""
    for name, p in net.named_parameters():
        if name.startswith(prefixes):
            p.requires_grad_(False)


class StepRunner:
    """One optimisation step, shared by ``fcn-gui train`` and the app's continuous learner.

    Forward under the run's precision (``core.compute.devices.training_autocast``), cross-entropy
    averaged over labelled pixels (void ignored), backward, update. Returns the loss.
    """

    def __init__(
        self, net: torch.nn.Module, opt: torch.optim.Optimizer, device: torch.device, precision: str
    ) -> None:
        self.net, self.opt, self.device, self.precision = net, opt, device, precision
        self.loss_fn = torch.nn.CrossEntropyLoss(ignore_index=VOID)
        fp16 = device.type == "cuda" and precision != "fp32" and not torch.cuda.is_bf16_supported()
        self.scaler = torch.amp.GradScaler("cuda", enabled=fp16)
        self.channels_last = device.type == "cpu"  # measured 1.3x faster for bf16 training on CPU
        self.slow_s = float(os.environ.get("FCN_GUI_SLOW_STEP_S") or 0.0)

    def __call__(self, images: torch.Tensor, masks: torch.Tensor, check=None) -> float:
        """Train on one batch; ``check(loss)`` may raise before the update (divergence)."""
        images = images.to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with training_autocast(self.device, self.precision):
            logits = self.net(images)
        loss = self.loss_fn(logits.float(), masks.to(self.device, non_blocking=True))
        # Under DistributedDataParallel every rank checks the largest loss of all ranks, so that
        # a divergence stops them all at this step instead of leaving the others in backward.
        value = largest(float(loss.detach()), self.device)
        if check is not None:
            check(value)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        if self.slow_s:
            time.sleep(self.slow_s)
        return value
