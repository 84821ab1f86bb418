"""Per-pixel filter features, as ilastik's live classifiers use: multiscale intensity, edges
and texture of every channel, from separable Gaussian filters in torch.

At each of ``SIGMAS`` (0.5 to 16 pixels, doubling) and for each channel: the smoothed
intensity, the gradient magnitude (Sobel's) and the two eigenvalues of the Hessian (the last
three scaled by sigma so that the scales compare), and the square roots of the two
eigenvalues of the structure tensor (the outer products of the image's own gradient, averaged
over sigma: how much, and how one-sidedly, the image changes around the pixel; the unsmoothed
gradient took fewer strokes than one at sigma 0.5, bench/strokes.py). 36 features per
channel, in float16 to halve their memory (a 1000 x 750 RGB photo: 162 MB).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

SIGMAS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
PER_SIGMA = 6  # intensity, gradient magnitude, two Hessian and two structure tensor eigenvalues
FFT_RADIUS = 16  # longer kernels blur by FFT (measured on a 1000 x 750 photo)


def feature_count(channels: int) -> int:
    """Features per pixel of an image with ``channels`` channels."""
    return channels * len(SIGMAS) * PER_SIGMA


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of ``x`` (N, 1, H, W), the border pixels repeated outside: a sum of shifted
    copies for short kernels, by FFT for long ones (``F.conv2d`` with one channel in and out
    ran at under a tenth of these speeds on a CPU)."""
    radius = math.ceil(4 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-t * t / (2 * sigma * sigma))
    kernel = kernel / kernel.sum()
    for axis in (-1, -2):
        size = x.shape[axis]
        padded = F.pad(x, (radius, radius, 0, 0) if axis == -1 else (0, 0, radius, radius), mode="replicate")
        if radius <= FFT_RADIUS:
            out = padded.narrow(axis, 0, size) * kernel[0]
            for i in range(1, 2 * radius + 1):
                out.add_(padded.narrow(axis, i, size), alpha=float(kernel[i]))
        else:  # the full linear convolution, long enough not to wrap round, and its middle
            n = padded.shape[axis] + 2 * radius
            spectrum = torch.fft.rfft(kernel, n=n).view(-1, *([1] if axis == -2 else []))
            out = torch.fft.irfft(torch.fft.rfft(padded, n=n, dim=axis) * spectrum, n=n, dim=axis)
            out = out.narrow(axis, 2 * radius, size)
        x = out
    return x


def _derivatives(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences along x and y (one-sided at the borders)."""
    if min(x.shape[-2:]) < 2:
        return torch.zeros_like(x), torch.zeros_like(x)
    dy, dx = torch.gradient(x, dim=(-2, -1))
    return dx, dy


def _sobel(x: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude: central differences smoothed across by (1, 2, 1) / 4."""
    dx, dy = _derivatives(x)
    px, py = F.pad(dx, (0, 0, 1, 1), mode="replicate"), F.pad(dy, (1, 1, 0, 0), mode="replicate")
    dx = (px[..., :-2, :] + 2 * px[..., 1:-1, :] + px[..., 2:, :]) / 4
    dy = (py[..., :-2] + 2 * py[..., 1:-1] + py[..., 2:]) / 4
    return torch.sqrt((dx * dx + dy * dy) / 2)


def _eigenvalues(xx: torch.Tensor, xy: torch.Tensor, yy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The larger and the smaller eigenvalue of the symmetric 2x2 matrices ``[[xx, xy], [xy, yy]]``."""
    half_trace = (xx + yy) / 2
    spread = torch.sqrt(((xx - yy) / 2) ** 2 + xy**2)
    return half_trace + spread, half_trace - spread


def pixel_features(image: np.ndarray) -> torch.Tensor:
    """``(H, W, F)`` float16 features of an ``HxWxC`` uint8 image (``feature_count(C)`` each)."""
    if image.ndim == 2:
        image = image[..., None]
    h, w, channels = image.shape
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255)[:, None]
    out = torch.empty((h, w, feature_count(channels)), dtype=torch.float16)
    with torch.inference_mode():
        gx, gy = _derivatives(x)
        tensor = torch.cat([gx * gx, gx * gy, gy * gy])  # (3 x channels, 1, h, w)
        for i, sigma in enumerate(SIGMAS):
            smooth = _blur(x, sigma)
            dx, dy = _derivatives(smooth)
            dxx, dxy = _derivatives(dx)
            _, dyy = _derivatives(dy)
            hessian = _eigenvalues(dxx, dxy, dyy)
            structure = _eigenvalues(*_blur(tensor, sigma).split(channels))
            parts = (
                smooth,
                _sobel(smooth) * sigma,
                hessian[0] * sigma * sigma,
                hessian[1] * sigma * sigma,
                structure[0].clamp(min=0).sqrt(),
                structure[1].clamp(min=0).sqrt(),
            )
            for j, part in enumerate(parts):  # channel-major within each sigma
                first = (i * PER_SIGMA + j) * channels
                out[..., first : first + channels] = part[:, 0].permute(1, 2, 0)
    return out
