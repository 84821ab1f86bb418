"""Reading tensors from files that may not be ours: never code, never NaN weights.

``.pth`` and ``.pt`` files are pickles; ``torch.load(weights_only=True)`` refuses everything but
tensors and plain containers, and a refusal is said as such, never with torch's advice to load
with ``weights_only=False``, which is exactly what must not be done with an untrusted file.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from core.base.errors import CheckpointError


def load_tensor_file(
    path: str | Path, *, map_location: str | torch.device = "cpu", what: str = "file", fix: str = ""
) -> object:
    """The tensors (and plain containers of them) pickled in ``path``; ``CheckpointError``
    naming the file when it is missing, damaged or holds anything else (``fix``: what to do
    about a damaged one)."""
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError as exc:
        raise CheckpointError(f"the {what} is not there; check the path", path) from exc
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"not a safe {what}: it holds Python objects, not only tensors, and fcn-gui never runs code "
            "from a file; use a file fcn-gui wrote, or re-save the weights as a plain state dict of tensors",
            path,
        ) from exc
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        fix = fix or "replace it with a good copy"
        damaged = f"the {what} cannot be read: it is damaged or not a PyTorch file; {fix}"
        raise CheckpointError(damaged, path) from exc


def check_finite(state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Refuse weights holding NaN or infinity (a run that diverged wrote them): naming the
    tensor, before they predict all-background labels without a word."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(
                f"the tensor {name} holds NaN or infinite values (weights of a training that diverged?); "
                "this checkpoint is not used: pick an earlier one",
                path,
            )
