"""Compute-device choice, mixed precision, and out-of-memory detection."""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import platform
import time
from collections.abc import Callable

import torch

from core.base.choices import DEVICE_CHOICES, PRECISION_CHOICES
from core.base.errors import DeviceError


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
        raise DeviceError(f"{name} was requested but no CUDA GPU is usable here; use --device cpu or auto")
    if kind == "cuda" and ":" in name:
        index, count = name.split(":", 1)[1], torch.cuda.device_count()
        if not index.isdigit() or int(index) >= count:
            raise DeviceError(
                f"{name} does not exist: this machine has {count} CUDA device{'s' * (count != 1)} "
                f"(cuda:0 to cuda:{count - 1}); pick one of them with --device"
            )
    if kind == "mps" and not mps_available():
        raise DeviceError("Apple MPS was requested but is not available here; use --device cpu or auto")
    return torch.device(name)


def describe_device(device: torch.device, dtype: torch.dtype = torch.float32) -> str:
    """A short human name: ``cpu (2 threads)``, ``cpu (2 threads, bf16)``, ``cuda:0 NVIDIA H100``.

    ``dtype`` is the one the weights are kept in; bf16 is named, fp32 is the default.
    """
    bf16 = dtype == torch.bfloat16
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} {torch.cuda.get_device_name(index)}" + (" (bf16)" if bf16 else "")
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads{', bf16' if bf16 else ''})"
    return device.type + (" (bf16)" if bf16 else "")


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """Mixed precision where it pays: fp16/bf16 autocast on CUDA, nothing elsewhere."""
    if device.type == "cuda" and enabled:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


@functools.cache
def cpu_bf16_is_faster() -> bool:
    """Does this CPU run the network faster in bf16 than in fp32? Decided once per process.

    CPUs with AMX: yes (4x for FCN-8s on the Xeon these figures come from). x86 CPUs without
    bf16 instructions: no, bf16 would be emulated. Otherwise (AVX512-BF16 only, ARM, or a
    torch without these queries) a 3x3 convolution is timed both ways: yes at 1.5x or more.
    """
    return bf16_decision(*_bf16_features(), _bf16_convolution_speed_up)


def _bf16_features() -> tuple[bool | None, bool | None, str]:
    """AMX, AVX512-BF16 (``None``: this torch cannot tell) and the machine's architecture."""
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    avx512_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return (
        amx() if amx is not None else None,
        avx512_bf16() if avx512_bf16 is not None else None,
        platform.machine(),
    )


@functools.cache
def cpu_bf16_trains_faster() -> bool:
    """Does this CPU take training steps faster under bf16 autocast than in fp32? Decided once
    per process, as ``cpu_bf16_is_faster`` but timing a training step (forward and backward):
    on an EPYC with AVX512-BF16 and no AMX the U-Net's step took 0.24 s in bf16 against 0.45 s
    in fp32 where inference alone gained too little to switch."""
    return bf16_decision(*_bf16_features(), _bf16_training_speed_up, threshold=TRAINING_SPEED_UP)


# bf16 steps learn as much as fp32 ones (docs/benchmarks.md: the same validation mIoU after 120
# steps), so any clear gain in steps per second is worth it.
TRAINING_SPEED_UP = 1.2


def bf16_decision(
    amx: bool | None, avx512_bf16: bool | None, machine: str, speed_up: Callable[[], float],
    *, threshold: float = 1.5,
) -> bool:  # fmt: skip
    """``cpu_bf16_is_faster`` from the CPU's features (``None``: torch cannot tell) and, only
    when those do not settle it, a measured bf16 speed-up of at least ``threshold``."""
    if amx:
        return True
    if machine.lower() in ("x86_64", "amd64") and avx512_bf16 is False:
        return False
    return speed_up() >= threshold


def _bf16_convolution_speed_up() -> float:
    """fp32 time / bf16 time of a VGG-sized 3x3 convolution (about 50 ms to measure)."""
    conv = torch.nn.Conv2d(128, 128, 3, padding=1).to(memory_format=torch.channels_last)
    x = torch.randn(1, 128, 64, 64).contiguous(memory_format=torch.channels_last)
    conv16, x16 = copy.deepcopy(conv).to(torch.bfloat16), x.to(torch.bfloat16)

    def seconds(module: torch.nn.Module, data: torch.Tensor) -> float:
        start = time.perf_counter()
        module(data)
        return time.perf_counter() - start

    with torch.inference_mode():
        conv(x), conv16(x16)  # oneDNN picks and caches its kernels on the first call
        fp32, bf16 = [], []
        for _ in range(7):  # alternating, best of seven: a busy machine slows some runs, rarely all
            fp32.append(seconds(conv, x))
            bf16.append(seconds(conv16, x16))
    return min(fp32) / min(bf16)


def _bf16_training_speed_up() -> float:
    """fp32 time / bf16-autocast time of a training step (forward and backward) of a VGG-sized
    3x3 convolution, best of five each (about 0.2 s to measure)."""
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(memory_format=torch.channels_last)
    x = torch.randn(2, 64, 64, 64).contiguous(memory_format=torch.channels_last)

    def seconds(bf16: bool) -> float:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = conv(x).float().square().mean()
        loss.backward()
        return time.perf_counter() - start

    seconds(False), seconds(True)  # oneDNN picks and caches its kernels on the first call
    fp32, bf16 = [], []
    for _ in range(5):
        fp32.append(seconds(False))
        bf16.append(seconds(True))
    return min(fp32) / min(bf16)


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


def training_autocast(device: torch.device, precision: str = "auto") -> contextlib.AbstractContextManager:
    """Mixed precision for a training step.

    CUDA: bf16/fp16 autocast unless ``fp32``. CPU: bf16 autocast where a training step measures
    faster in it (``auto``: ``cpu_bf16_trains_faster``) or when forced (``bf16``); the weights
    and optimizer state stay fp32.
    """
    if device.type == "cuda":
        return autocast(device, enabled=_known(precision) != "fp32")
    if training_precision_name(device, precision) == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def training_precision_name(device: torch.device, precision: str = "auto") -> str:
    """``bf16``, ``fp16`` or ``fp32``: what ``training_autocast`` runs the network in on ``device``."""
    if device.type == "cuda":
        return (
            "fp32" if _known(precision) == "fp32" else ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
        )
    if _known(precision) == "bf16" and device.type == "cpu":
        return "bf16"
    return "bf16" if precision == "auto" and device.type == "cpu" and cpu_bf16_trains_faster() else "fp32"


def _known(precision: str) -> str:
    if precision not in PRECISION_CHOICES:
        raise DeviceError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISION_CHOICES)}")
    return precision


def prepare_device(device: torch.device, *, deterministic: bool = False) -> None:
    """Per-device settings for the process: on CUDA, cuDNN autotuning and TF32 matmuls for speed;
    with ``deterministic``, neither, and torch's deterministic algorithms instead.

    What a seed then fixes: on the CPU a run is repeatable bit for bit either way (same machine,
    thread count and torch). On CUDA, autotuning and TF32 make runs differ in the last bits;
    ``deterministic`` makes them repeatable on the same GPU, driver and torch, slower, except in
    operations torch has no deterministic CUDA kernel for, which it names in a warning (they run
    as before: ``warn_only``).
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cuda.matmul.allow_tf32 = not deterministic
        torch.backends.cudnn.allow_tf32 = not deterministic
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS' repeatable workspace
        torch.use_deterministic_algorithms(True, warn_only=True)


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
    """Bytes the predictor may use: activations on a GPU; on the CPU also the image, outputs
    and blending buffers.

    On the CPU, 1.1 GiB runs 1024x1024 photos whole even in fp32 and keeps FCN-8s on an
    8192x8192 image, with torch and the model, under 2.5 GB resident (bench/inference.py).
    """
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free * 0.6)
    return 1100 * 1024**2
