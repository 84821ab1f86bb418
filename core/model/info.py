"""A model's description (``ModelInfo``) and reading it from a checkpoint's header.

Torch-free on purpose: the app lists kept models and checks a project's checkpoint on the GUI
thread, which must not import torch (that takes seconds, and blocks on the import lock while
a worker imports it).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

from core.base.choices import BACKBONES, UNET, VARIANTS
from core.base.errors import CheckpointError
from core.io.labels import LabelClass, classes_from_data, classes_to_data, default_classes

FORMAT = "fcn-gui-checkpoint"
FORMAT_VERSION = 1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INIT_CHOICES = ("none", "imagenet", "voc")
# The released FCN models take BGR pixels minus this mean, unscaled (given here in RGB order;
# the module flips the channels): normalised = (rgb / 255 - mean) / std = rgb - 255 * mean.
CAFFE_MEAN_RGB = (122.67891434 / 255, 116.66876762 / 255, 104.00698793 / 255)
CAFFE_STD = (1 / 255, 1 / 255, 1 / 255)


@dataclass
class ModelInfo:
    """Everything about a model except its weights."""

    variant: str = "fcn8s"
    backbone: str = "vgg16"
    classes: list[LabelClass] = field(default_factory=default_classes)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    trained: bool = False
    source: str = "random initialisation"
    training: dict[str, Any] = field(default_factory=dict)
    scale: float = 1.0  # the network sees images resized by this factor (2: small objects, finer edges)
    geometry: str = "ours"  # or "caffe": the FCN paper's released models (see core.model.networks.GEOMETRIES)

    def __post_init__(self) -> None:
        if self.variant == UNET:  # its own encoder: "vgg16" here is only the unset default
            self.backbone = UNET

    @property
    def named_backbone(self) -> str:
        """The backbone to name next to the variant; empty for a network with its own encoder."""
        return "" if self.backbone == self.variant else self.backbone

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_json(self) -> str:
        data = asdict(self)
        data["classes"] = classes_to_data(self.classes)
        return json.dumps({"format": FORMAT, "version": FORMAT_VERSION, **data})

    @classmethod
    def from_json(cls, text: str, path: Path) -> ModelInfo:
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError("not an fcn-gui checkpoint")
            if int(data.get("version", 0)) > FORMAT_VERSION:
                raise CheckpointError(
                    f"written by a newer fcn-gui (format {data['version']}); update fcn-gui to load it", path
                )
            classes = classes_from_data(data["classes"])
            mean, std, scale = _triple(data, "mean"), _triple(data, "std"), data.get("scale", 1.0)
            if not isinstance(scale, int | float) or isinstance(scale, bool) or not 0 < scale <= 16:
                raise ValueError(f"scale is {scale!r}, not a number above 0 and at most 16")
            info = cls(
                variant=_one_of(data, "variant", VARIANTS),
                backbone=_one_of(data, "backbone", BACKBONES),
                classes=classes,
                mean=mean,
                std=std,
                trained=bool(data["trained"]),
                source=str(data.get("source", str(path))),
                training=dict(data.get("training", {})),
                scale=float(scale),
                geometry=_one_of({"geometry": data.get("geometry", "ours")}, "geometry", ("ours", "caffe")),
            )
            return info
        except KeyError as exc:
            lacks = f"the metadata header lacks {exc}; use a checkpoint fcn-gui wrote"
            raise CheckpointError(lacks, path) from exc
        except (ValueError, TypeError) as exc:
            raise CheckpointError(
                f"the metadata header is malformed ({exc}); use a checkpoint fcn-gui wrote", path
            ) from exc

    def describe(self) -> str:
        """One line for a status bar or a log."""
        state = "trained" if self.trained else "UNTRAINED: predictions are meaningless until fine-tuned"
        name = " ".join(filter(None, (self.variant.upper(), self.named_backbone)))
        return f"{name}, {self.num_classes} classes, {state}"


def _one_of(data: dict, field: str, allowed: tuple[str, ...]) -> str:
    value = data[field]
    if value not in allowed:
        raise ValueError(f"{field} is {value!r}, not one of {', '.join(allowed)}")
    return value


def _triple(data: dict, field: str) -> tuple[float, float, float]:
    value = data[field]
    if (
        not isinstance(value, list | tuple)
        or len(value) != 3
        or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    ):
        raise ValueError(f"{field} is {value!r}, not three numbers")
    return tuple(float(v) for v in value)


def read_info(path: str | Path) -> ModelInfo:
    """The metadata of an fcn-gui checkpoint, without loading its weights."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError("checkpoint not found; check the path", path)
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"not a safetensors checkpoint ({exc}); is it a .pth state dict saved under another name?", path
        ) from exc
    if "fcn_gui" not in meta:
        raise CheckpointError(
            "a safetensors file without fcn-gui metadata; it holds no model description", path
        )
    return ModelInfo.from_json(meta["fcn_gui"], path)
