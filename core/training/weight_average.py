"""An exponential moving average of a network's trainable weights (Polyak averaging).

The continuous learner scores and adopts the average rather than the latest weights: after
a few dozen steps on one or two images, the latest weights swing from step to step, and the
model the user gets would depend on which step the budget happened to end on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.optim.swa_utils import get_ema_multi_avg_fn


class WeightAverage:
    """The average of ``net``'s trainable parameters, updated with ``update`` after each step.

    ``decay`` is the share kept per step; early on it is lowered to ``(1 + n) / (10 + n)``
    after ``n`` updates, so the random initial weights fade within the first steps.
    """

    def __init__(self, net: torch.nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the weight average's decay must be between 0 and 1, got {decay}")
        self.decay = decay
        self.params = [p for p in net.parameters() if p.requires_grad]
        self.average = [p.detach().clone() for p in self.params]
        self.updates = 0

    def update(self) -> None:
        """Fold the current weights into the average."""
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        with torch.no_grad():
            get_ema_multi_avg_fn(decay)(self.average, [p.detach() for p in self.params], None)
        self.updates += 1

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The network holds the averaged weights inside the block, its own ones again after."""
        own = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, a in zip(self.params, self.average, strict=True):
                p.copy_(a)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, o in zip(self.params, own, strict=True):
                    p.copy_(o)
