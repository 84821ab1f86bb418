"""Scoring a network on labelled images: the one path behind ``fcn-gui eval``, validation
during ``train`` and the learner's held-out check.

Each image goes through the network whole, at the model's input scale and in the chosen
precision; void pixels are left out of the confusion matrix.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch

from core.compute.devices import training_autocast
from core.model.checkpoints import ModelInfo
from core.model.networks import forward_scaled
from core.training.datasets import Sample, SegmentationDataset
from core.training.metrics import ConfusionMeter


def confusion(
    net: torch.nn.Module,
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    info: ModelInfo,
    device: torch.device,
    precision: str = "fp32",
) -> ConfusionMeter:
    """The confusion matrix of ``net``'s predictions on ``(image HxWx3 uint8, label HxW)`` pairs."""
    meter = ConfusionMeter(info.num_classes)
    mean = torch.tensor(info.mean).view(1, 3, 1, 1)
    std = torch.tensor(info.std).view(1, 3, 1, 1)
    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode(), training_autocast(device, precision):
            for image, label in pairs:
                x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float()  # a writable copy
                x = ((x / 255 - mean) / std).to(device)
                pred = forward_scaled(net, x, info.scale).max(1).indices[0].to("cpu", torch.uint8).numpy()
                meter.update(pred, label)
    finally:
        net.train(was_training)
    return meter


def sample_pairs(samples: list[Sample], num_classes: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The images and labels of dataset ``samples``, read one at a time."""
    dataset = SegmentationDataset(samples, num_classes, transform=None)
    for i in range(len(dataset)):
        image, label = dataset.load(i)
        yield image.permute(1, 2, 0).numpy(), label.numpy()
