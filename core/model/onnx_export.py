"""Export a checkpoint as an ONNX graph for deployment: raw RGB bytes in, class labels out.

The graph takes an ``HxWx3 uint8`` image of any height and width, normalises it and applies
the model's input scale inside the graph, and returns ``labels`` (``HxW uint8`` class
indices) and ``logits`` (``1xCxHxW float32``). Class names, colours, variant and the
normalisation travel in the model's metadata (``fcn_gui`` key, the checkpoint's own JSON).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from core.base.atomic import atomic_path
from core.base.errors import FcnGuiError
from core.io.files import output_folder
from core.model.checkpoints import SegmentationModel
from core.model.networks import forward_scaled

OPSET = 18


class DeployedModel(nn.Module):
    """The network with its input pipeline: uint8 HWC RGB -> (labels, logits)."""

    def __init__(self, model: SegmentationModel) -> None:
        super().__init__()
        self.net = model.module.float().eval()
        self.scale = float(model.info.scale)
        self.register_buffer("mean", torch.tensor(model.info.mean).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(model.info.std).view(1, 3, 1, 1) * 255)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (image.permute(2, 0, 1).unsqueeze(0).float() - self.mean) / self.std
        logits = forward_scaled(self.net, x, self.scale).float()
        return logits.argmax(1)[0].to(torch.uint8), logits


def export_onnx(model: SegmentationModel, out: str | Path) -> Path:
    """Write ``model`` as ONNX to ``out`` (atomically) with dynamic height and width."""
    import onnx

    out = Path(out)
    if out.is_dir():
        raise FcnGuiError("is a folder; --out names the .onnx file to write (e.g. model.onnx)", out)
    output_folder(out.parent, "folder of the ONNX file")
    deployed = DeployedModel(model)
    example = torch.zeros(96, 128, 3, dtype=torch.uint8)
    height, width = (
        torch.export.Dim("height", min=32, max=16384),
        torch.export.Dim("width", min=32, max=16384),
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on its own internals
            program = torch.onnx.export(
                deployed,
                (example,),
                dynamo=True,
                opset_version=OPSET,
                input_names=["image"],
                output_names=["labels", "logits"],
                dynamic_shapes=({0: height, 1: width},),
                verbose=False,
            )
    except Exception as exc:  # the exporter's own errors are many and internal
        raise FcnGuiError(f"the ONNX export failed ({type(exc).__name__}: {exc})", out) from exc
    proto = program.model_proto
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = "fcn_gui", model.info.to_json()
    with atomic_path(out) as tmp:
        onnx.save_model(proto, str(tmp))
    return out
