"""Save and load a model with its metadata in one safetensors file; import torchvision weights.

Loading never runs code from a file: ``.safetensors`` holds only tensors and a JSON header,
and ``.pth`` imports go through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from core.base.atomic import atomic_path
from core.base.choices import UNET
from core.base.errors import CheckpointError
from core.io.labels import classes_from_names, default_classes
from core.model.info import (
    CAFFE_MEAN_RGB,
    CAFFE_STD,
    INIT_CHOICES,
    ModelInfo,
    read_info,
)
from core.model.networks import CAFFE_FINAL, FCN, build_model, replace_classifier
from core.model.networks import VGG16_LAYERS as _VGG16_LAYERS
from core.model.tensor_files import check_finite, load_tensor_file
from core.model.weights import load_pretrained_state, source_for_backbone


@dataclass
class SegmentationModel:
    """A network with the metadata needed to run it and to save it again."""

    module: nn.Module
    info: ModelInfo


def copy_model(
    model: SegmentationModel,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
) -> SegmentationModel:
    """A copy of ``model`` with its floating-point tensors in ``dtype`` on ``device``; ``model``
    is left as it was.

    The module's structure is copied without its tensors, then each tensor is converted once
    into the copy, so the copy costs its own size only (a bf16 copy half an fp32 one), never
    a full second copy first. Tensors shared within the module stay shared in the copy.
    """
    source = getattr(model.module, "module", model.module)  # unwrap DistributedDataParallel
    tensors = [*source.parameters(), *source.buffers()]
    module = copy.deepcopy(source, memo={id(t): t for t in tensors})  # the structure; tensors shared
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    converted: dict[int, torch.Tensor] = {}

    def convert(value: torch.Tensor) -> torch.Tensor:
        if id(value) not in converted:
            new = value.detach().to(
                device,
                dtype if value.is_floating_point() else value.dtype,
                memory_format=fmt if value.dim() == 4 else torch.preserve_format,
                copy=True,
            )
            if isinstance(value, nn.Parameter):
                new = nn.Parameter(new, requires_grad=value.requires_grad)
            converted[id(value)] = new
        return converted[id(value)]

    for sub in module.modules():
        for name, value in [*sub._parameters.items(), *sub._buffers.items()]:
            if value is not None:
                setattr(sub, name, convert(value))
    return SegmentationModel(module, copy.deepcopy(model.info))


def new_model(info: ModelInfo, *, init: str = "none", allow_download: bool = False) -> SegmentationModel:
    """Build a model for ``info`` initialised from ``init``.

    ``none``: random trunk. ``imagenet``: VGG16 ImageNet weights for the trunk and FC6/FC7.
    ``voc``: torchvision's FCN-ResNet COCO-with-VOC-labels weights (ResNet backbones), whose
    21-class head is kept if ``info`` has 21 classes and re-created otherwise. Weights come
    from torch's hub cache; they are downloaded only with ``allow_download``.
    """
    if init not in INIT_CHOICES:
        raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INIT_CHOICES)}")
    module = build_model(
        info.variant, num_classes=info.num_classes, backbone=info.backbone, geometry=info.geometry
    )
    info = ModelInfo(**{**asdict(info), "classes": list(info.classes)})
    if init != "none" and info.variant == UNET:
        raise ValueError("no pretrained weights exist for the U-Net; it learns from scratch (init 'none')")
    if init == "imagenet":
        if not isinstance(module, FCN):
            raise ValueError(
                "ImageNet VGG16 weights initialise the vgg16 backbone; for ResNet use init 'voc'"
            )
        source = source_for_backbone("vgg16")
        module.load_vgg16_state_dict(load_pretrained_state(source, allow_download=allow_download))
        info.source, info.trained = f"ImageNet VGG16 ({source.filename})", False
    elif init == "voc":
        if isinstance(module, FCN):
            raise ValueError(
                "COCO-with-VOC-labels weights exist for resnet50/resnet101; for vgg16 use init 'imagenet'"
            )
        source = source_for_backbone(info.backbone)
        state = load_pretrained_state(source, allow_download=allow_download)
        replace_classifier(module, 21)
        _load_state(module, _torchvision_fcn_state(state), source.cache_path)
        if info.num_classes != 21:
            replace_classifier(module, info.num_classes)
        info.source, info.trained = f"torchvision {source.filename}", info.num_classes == 21
    return SegmentationModel(module.eval(), info)


def save_checkpoint(path: str | Path, model: SegmentationModel) -> None:
    """Write weights (always fp32) and metadata to ``path`` (safetensors), atomically."""
    module = getattr(model.module, "module", model.module)  # unwrap DistributedDataParallel
    state = {
        k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype).contiguous()
        for k, v in module.state_dict().items()
    }
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"fcn_gui": model.info.to_json()})


def load_checkpoint(
    path: str | Path, *, device: str | torch.device = "cpu", num_classes: int | None = None
) -> SegmentationModel:
    """Load a checkpoint: our ``.safetensors``, or a ``.pth``/``.pt`` torchvision state dict.

    With ``num_classes``, a checkpoint for another class count raises ``CheckpointError``.
    """
    path = Path(path)
    if path.suffix.lower() in (".pth", ".pt"):
        model = import_state_dict(path)
    else:
        info = read_info(path)
        with torch.device("meta"):  # no random initialisation, no second copy of the weights
            module = build_model(
                info.variant, num_classes=info.num_classes, backbone=info.backbone, geometry=info.geometry
            )
        with safe_open(str(path), framework="pt") as f:
            # Copies, so that no tensor keeps the memory-mapped file (and its pages) alive.
            state = {k: f.get_tensor(k).clone() for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
        check_finite(state, path)
        _load_state(module, state, path, info, assign=True)
        model = SegmentationModel(module.eval(), info)
    if num_classes is not None and model.info.num_classes != num_classes:
        raise CheckpointError(
            f"the checkpoint predicts {model.info.num_classes} classes but {num_classes} are needed; "
            "fine-tune it on this class list or pick a matching checkpoint",
            path,
        )
    model.module.to(device)
    return model


def import_state_dict(path: str | Path) -> SegmentationModel:
    """Turn a torchvision ``.pth`` (VGG16 ImageNet, FCN-ResNet, or one of our FCNs) into a model."""
    path = Path(path)
    state = load_tensor_file(path, what="checkpoint")
    if isinstance(state, dict):
        state = state.get("model", state.get("state_dict", state))
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError("does not hold a state dict of tensors", path)
    check_finite(state, path)
    keys = set(state)
    if "conv1_1.weight" in keys and "score_fr.weight" in keys:
        state = caffe_fcn_state(state)
        keys = set(state)
        n = state["score.weight"].shape[0]
        variant = next(v for v, final in CAFFE_FINAL.items() if f"{final}.weight" in keys)
        info = ModelInfo(
            variant, "vgg16", _classes_for(n), mean=CAFFE_MEAN_RGB, std=CAFFE_STD, trained=True,
            source=f"FCN paper weights ({path.name})", geometry="caffe",
        )  # fmt: skip
        module = build_model(variant, num_classes=n, geometry="caffe")
        _load_state(module, state, path, info)
        return SegmentationModel(module.eval(), info)
    if "classifier.0.weight" in keys and "features.0.weight" in keys:
        info = ModelInfo(source=f"ImageNet VGG16 ({path.name})")
        module = build_model("fcn8s", num_classes=info.num_classes)
        try:
            module.load_vgg16_state_dict(state)
        except (RuntimeError, KeyError) as exc:
            raise CheckpointError(f"not a VGG16 state dict ({exc})", path) from exc
        return SegmentationModel(module.eval(), info)
    if any(k.startswith("backbone.layer4") for k in keys):
        state = _torchvision_fcn_state(state)
        backbone = "resnet101" if any(k.startswith("net.backbone.layer3.22") for k in state) else "resnet50"
        n = state["net.classifier.4.weight"].shape[0]
        info = ModelInfo("fcn8s", backbone, _classes_for(n), trained=True, source=f"torchvision {path.name}")
    elif "fc6.weight" in keys and "score.weight" in keys:
        n = state["score.weight"].shape[0]
        info = ModelInfo(_vgg_variant(keys), "vgg16", _classes_for(n), trained=True, source=path.name)
    else:
        raise CheckpointError(
            "unrecognised state dict (expected torchvision VGG16, FCN-ResNet50/101 or an fcn-gui FCN)", path
        )
    module = build_model(
        info.variant, num_classes=info.num_classes, backbone=info.backbone, geometry=info.geometry
    )
    _load_state(module, state, path, info)
    return SegmentationModel(module.eval(), info)


def caffe_fcn_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchfcn's names for the FCN paper's models (``conv1_1`` ... ``score_fr``) as ours."""
    convs = [f"conv{b}_{i}" for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)) for i in range(1, n + 1)]
    index = [i for i, layer in enumerate(_VGG16_LAYERS) if layer == "conv"]
    names = {conv: f"backbone.features.{i}" for conv, i in zip(convs, index, strict=True)}
    names["score_fr"] = "score"
    out = {}
    for key, value in state.items():
        layer, _, kind = key.rpartition(".")
        out[f"{names.get(layer, layer)}.{kind}"] = value
    return out


def _torchvision_fcn_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision FCN-ResNet keys under our wrapper's ``net.`` prefix, auxiliary head dropped."""
    return {f"net.{k}": v for k, v in state.items() if not k.startswith("aux_classifier")}


def _load_state(
    module: nn.Module,
    state: dict[str, torch.Tensor],
    path: Path,
    info: ModelInfo | None = None,
    assign: bool = False,
) -> None:
    """Load ``state`` into ``module`` (``assign``: take the tensors over, for a module on meta)."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected.keys() & state.keys() if expected[k].shape != state[k].shape]
    if not (missing or unexpected or wrong):
        if assign:
            state = {k: v.to(expected[k].dtype) for k, v in state.items()}
        module.load_state_dict(state, assign=assign)
        return
    held = _describe_state(state)
    want = f"{info.variant}/{info.backbone} with {info.num_classes} classes" if info else "the model"
    details = []
    if wrong:
        k = sorted(wrong)[0]
        details.append(f"{k} is {tuple(state[k].shape)} but {tuple(expected[k].shape)} is expected")
    if missing:
        details.append(f"{len(missing)} tensors missing (e.g. {missing[0]})")
    if unexpected:
        details.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]})")
    raise CheckpointError(
        f"the file holds {held}, which does not fit {want}: {'; '.join(details)}; "
        "use a checkpoint saved for this variant, backbone and class list",
        path,
    )


def _vgg_variant(keys: set[str]) -> str:
    """Which of our VGG16 FCNs a state dict is, from its skip-score layers."""
    for variant, layer in (("fcn4s", "score_pool2"), ("fcn8s", "score_pool3"), ("fcn16s", "score_pool4")):
        if f"{layer}.weight" in keys:
            return variant
    return "fcn32s"


def _classes_for(n: int) -> list:
    """VOC's classes for a 21-class state dict, else numbered ones (a .pth has no names)."""
    return default_classes() if n == 21 else classes_from_names([f"class {i}" for i in range(n)])


def _describe_state(state: dict[str, torch.Tensor]) -> str:
    if "score.weight" in state:
        return f"{_vgg_variant(set(state))}/vgg16 with {state['score.weight'].shape[0]} classes"
    if "net.classifier.4.weight" in state:
        return f"an FCN-ResNet with {state['net.classifier.4.weight'].shape[0]} classes"
    return f"{len(state)} tensors of an unknown model"


def model_fingerprint(model: SegmentationModel) -> str:
    """A short digest of the model's metadata and weights: two models that predict alike share it.

    Each tensor counts by its shape and its sum in float64 (one pass, no copy of the weights),
    enough to tell a resumed run that its model changed.
    """
    source = getattr(model.module, "module", model.module)
    digest = hashlib.sha1(model.info.to_json().encode())
    with torch.no_grad():
        for name, tensor in source.state_dict().items():
            total = float(tensor.double().sum()) if tensor.is_floating_point() else float(tensor.sum())
            digest.update(f"{name}{tuple(tensor.shape)}{total!r}".encode())
    return digest.hexdigest()[:16]
