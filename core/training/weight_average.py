"""The exponential moving average of a network that the continuous learner scores and adopts.

After a few dozen steps on one or two images the latest weights swing from step to step, and
the model the user gets would depend on which step a budget happened to end on. The average
is torch's ``AveragedModel`` with ``use_buffers=True``: batch norm's running statistics are
averaged with the weights they belong to, so the adopted model never pairs averaged weights
with the statistics of the latest step.

Frozen parameters (FCN-8s' FC6 and FC7: 88 % of its weights) never change, so the average
shares them with the network instead of holding and averaging a second copy.
"""

from __future__ import annotations

import copy

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def averaged_model(net: torch.nn.Module, decay: float) -> AveragedModel:
    """An ``AveragedModel`` of ``net`` (its ``module`` is a network to score and copy); call
    ``update_parameters(net)`` after every step.

    ``decay`` is the share kept per step; after ``n`` updates it is at most ``(1 + n) / (10 + n)``,
    so the random initial weights fade within the first steps.
    """
    if not 0.0 < decay < 1.0:
        raise ValueError(f"the weight average's decay must be between 0 and 1, got {decay}")
    frozen = {id(p): p for p in net.parameters() if not p.requires_grad}
    average = AveragedModel(torch.nn.Identity(), multi_avg_fn=_warm_ema(decay), use_buffers=True)
    average.module = copy.deepcopy(net, memo=dict(frozen))  # the frozen tensors themselves, not copies
    return average


def _warm_ema(decay: float):
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], updates: torch.Tensor) -> None:
        # Shared (frozen) tensors come as two views of one memory: nothing to average.
        pairs = [(a, c) for a, c in zip(averaged, current, strict=True) if a.data_ptr() != c.data_ptr()]
        if not pairs:
            return
        if not torch.is_floating_point(pairs[0][0]):  # counters (batch norm's batches seen)
            for a, c in pairs:
                a.copy_(c)
            return
        n = float(updates)
        get_ema_multi_avg_fn(min(decay, (1 + n) / (10 + n)))([a for a, _ in pairs], [c for _, c in pairs], n)

    return update
