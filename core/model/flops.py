"""Parameter and FLOP counts, computed on the meta device (no memory, no weights)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from core.model.networks import build_model, count_parameters


def count_flops(model: torch.nn.Module, height: int, width: int) -> int:
    """Floating-point operations of one forward pass on a ``height x width`` image."""
    device = next(model.parameters()).device
    x = torch.zeros(1, 3, height, width, device=device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return int(counter.get_total_flops())


def model_summary(
    variant: str, backbone: str, *, size: int, checkpoint: Path | None = None, num_classes: int = 21
) -> dict[str, Any]:
    """Variant, backbone, classes, parameters and GFLOPs at ``size x size``."""
    summary: dict[str, Any] = {}
    geometry = "ours"
    if checkpoint is not None:
        from core.model.checkpoints import import_state_dict, read_info

        is_pth = Path(checkpoint).suffix.lower() in (".pth", ".pt")
        info = import_state_dict(checkpoint).info if is_pth else read_info(checkpoint)
        variant, backbone, num_classes = info.variant, info.backbone, info.num_classes
        summary["geometry"] = geometry = info.geometry
        summary.update(checkpoint=str(checkpoint), trained=info.trained, source=info.source)
        summary["classes"] = ", ".join(c.name for c in info.classes)
    with torch.device("meta"):
        model = build_model(variant, num_classes=num_classes, backbone=backbone, geometry=geometry).eval()
    params = count_parameters(model)
    flops = count_flops(model, size, size)
    summary = {
        "variant": variant,
        "backbone": backbone,
        "num_classes": num_classes,
        "parameters": params,
        "parameters_millions": round(params / 1e6, 2),
        "input_size": f"{size}x{size}",
        "gflops": round(flops / 1e9, 2),
        **summary,
    }
    return summary
