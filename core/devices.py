"""Compute-device choice, mixed precision, and out-of-memory detection."""

from __future__ import annotations

import contextlib
import functools
import time

import torch

from .errors import DeviceError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
PRECISION_CHOICES = ("auto", "fp32", "bf16")


def mps_available() -> bool:
    """True on Apple silicon with a PyTorch built for Metal."""
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def choose_device(preference: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; ``cuda:1`` style names are accepted."""
    name = (preference or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_available() else torch.device("cpu")
    kind = name.split(":")[0]
    if kind not in DEVICE_CHOICES:
        raise DeviceError(f"unknown device {preference!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise DeviceError("CUDA was requested but no CUDA GPU is usable here; use --device cpu or auto")
    if kind == "mps" and not mps_available():
        raise DeviceError("Apple MPS was requested but is not available here; use --device cpu or auto")
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    """A short human name: ``cpu (2 threads)``, ``cuda:0 NVIDIA H100``, ``mps``."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} {torch.cuda.get_device_name(index)}"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """Mixed precision where it pays: fp16/bf16 autocast on CUDA, nothing elsewhere."""
    if device.type == "cuda" and enabled:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


@functools.cache
def cpu_bf16_is_faster() -> bool:
    """Measured once per process: is a VGG-sized 3x3 convolution at least 1.5x faster in bf16?

    On CPUs with AMX or AVX512-BF16 it is several times faster (9x on the Xeon these figures
    come from); on others bf16 is emulated and slower. Takes about 30 ms.
    """
    conv = torch.nn.Conv2d(128, 128, 3, padding=1).to(memory_format=torch.channels_last)
    x = torch.randn(1, 128, 64, 64).contiguous(memory_format=torch.channels_last)

    def best_of_three(module: torch.nn.Module, data: torch.Tensor) -> float:
        module(data)  # oneDNN picks and caches its kernel on the first call
        times = []
        for _ in range(3):
            start = time.perf_counter()
            module(data)
            times.append(time.perf_counter() - start)
        return min(times)

    with torch.inference_mode():
        fp32 = best_of_three(conv, x)
        bf16 = best_of_three(conv.to(torch.bfloat16), x.to(torch.bfloat16))
    return fp32 >= 1.5 * bf16


def inference_dtype(device: torch.device, precision: str = "auto") -> torch.dtype:
    """The dtype the predictor keeps weights and activations in.

    ``auto``: bf16 on CPUs where it measures faster (``cpu_bf16_is_faster``), else fp32; CUDA
    keeps fp32 weights and gets half precision from ``autocast``. ``fp32`` and ``bf16`` force it.
    """
    if precision not in PRECISION_CHOICES:
        raise DeviceError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISION_CHOICES)}")
    if precision == "bf16" and device.type != "cuda":
        return torch.bfloat16
    if precision == "auto" and device.type == "cpu" and cpu_bf16_is_faster():
        return torch.bfloat16
    return torch.float32


def prepare_device(device: torch.device) -> None:
    """Per-device speed settings: cuDNN autotuning and TF32 matmuls on CUDA."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA/MPS/CPU allocation failures, which can be retried with less memory."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def free_device_memory(device: torch.device) -> None:
    """Return cached blocks to the driver after an out-of-memory error."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


def device_memory_budget(device: torch.device) -> int:
    """Bytes the predictor may use for activations (and, on the CPU, its probability band).

    On the CPU this keeps FCN-8s on an 8192x8192 image, with the model, the image and the
    outputs, under 2.5 GB resident (bench/inference.py).
    """
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free * 0.6)
    return 900 * 1024**2
