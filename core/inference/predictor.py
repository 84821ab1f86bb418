"""Whole-image and tiled inference with bounded memory, progress, cancellation and OOM fallback.

Large images are cut into overlapping tiles (see ``core.inference.tiling``) whose softmax
probabilities are blended with Gaussian weights (``core.inference.blending``): only one tile and the
rows the next band of tiles shares are held, so memory grows with the image's width times
the overlap, never with width x height x classes; a streamed slide (``iter_predict_rows``)
is predicted in panels of columns, so not even with its width.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import torch

from core.base.errors import FcnGuiError
from core.base.progress import Progress, drain
from core.compute.devices import (
    autocast,
    choose_device,
    describe_device,
    device_memory_budget,
    free_device_memory,
    inference_dtype,
    is_out_of_memory,
    prepare_device,
)
from core.inference.blending import BLEND_DTYPE, RowSink, TileBlender
from core.inference.tiling import ALIGN, TileGrid, blend_window, make_grid
from core.model.checkpoints import SegmentationModel, copy_model
from core.model.networks import forward_scaled

# Peak bytes per input pixel of one tile's forward pass in fp32, with its softmax copied to
# the host: measured 0.76 GiB for a 1024x1024 tile (conv1 maps of the 100-pixel padded input).
BYTES_PER_PIXEL = 750
TILE_CHOICES = (1024, 896, 768, 640, 512, 384, 256)
DEFAULT_OVERLAP = 64
MIN_TILE = 256
# The class scores two bands of a streamed image share (``iter_predict_rows``): at most this
# many bytes, so a slide is predicted in panels of columns when it is wider than they allow.
CARRY_BYTES = 256 * 2**20


class PredictionError(FcnGuiError):
    """Inference failed in a way a retry with less memory cannot fix."""


@dataclass
class Prediction:
    """The label map (``HxW uint8``) and the max softmax probability (``HxW float16`` in [0, 1])."""

    label: np.ndarray
    confidence: np.ndarray


class Predictor:
    """Runs a ``SegmentationModel`` on images of any size, with its own copy of the model
    (``model``) in the device's dtype and layout: the caller's model is left as it was.

    ``tile`` is the largest tile side in pixels (default: the whole image when it fits the
    device's memory budget, else 1024); ``overlap`` is the number of pixels neighbouring tiles
    share. On CUDA, tiles of a band go through the network in batches under mixed precision;
    on CPUs with fast bf16 (AMX) the model runs in bf16 (``precision="fp32"`` turns both off,
    see ``core.compute.devices.inference_dtype``). Out of memory, the predictor retries with smaller
    batches and tiles, then on the CPU.
    """

    def __init__(
        self,
        model: SegmentationModel,
        *,
        device: str | torch.device = "auto",
        tile: int | None = None,
        overlap: int = DEFAULT_OVERLAP,
        batch_size: int | None = None,
        channels_last: bool | None = None,
        min_tile: int = MIN_TILE,
        precision: str = "auto",
    ) -> None:
        self.model = model
        self.device = device if isinstance(device, torch.device) else choose_device(device)
        self.tile = tile
        self.overlap = overlap
        self.batch_size = batch_size
        self.min_tile = min_tile
        self.warnings: list[str] = []
        self.channels_last = channels_last
        self.precision = precision
        self._place_model()

    def _place_model(self) -> None:
        prepare_device(self.device)
        if self.channels_last is None:
            # Measured: 0.86 s vs 1.20 s for FCN-8s at 500x500 on 2 CPU cores (oneDNN); always on CUDA.
            self.channels_last = self.device.type in ("cuda", "cpu")
        self.dtype = inference_dtype(self.device, self.precision)
        # The predictor's own copy in its device, dtype and layout: the caller's model is never
        # changed (it may be training, or predicting elsewhere in another precision).
        self.model = copy_model(
            self.model, device=self.device, dtype=self.dtype, channels_last=self.channels_last
        )
        self.model.module.eval()
        info = self.model.info
        self._mean = torch.tensor(info.mean, device=self.device).view(1, 3, 1, 1) * 255
        self._std = torch.tensor(info.std, device=self.device).view(1, 3, 1, 1) * 255

    @property
    def device_name(self) -> str:
        """``cpu (2 threads, bf16)``, ``cuda:0 NVIDIA H100``: the device, and bf16 if the model runs in it."""
        return describe_device(self.device, self.dtype)

    def predict(self, image: np.ndarray) -> Prediction:
        """Predict ``image`` (``HxWx3 uint8``) to the end."""
        return drain(self.iter_predict(image))

    def plan(self, height: int, width: int) -> TileGrid:
        """The tile grid for an image of that size.

        Without an explicit ``tile``, the whole image when its activations (and, on the CPU,
        the image, the outputs and the blending buffers) fit the device's memory budget;
        otherwise the largest standard tile that fits.
        """
        tile = self.tile
        if tile is None:
            whole = self._cost(height, width, height, width) <= device_memory_budget(self.device)
            tile = max(height, width) if whole else self.largest_tile(height, width, held=True)
        return make_grid(height, width, tile, self.overlap)

    def plan_rows(self, height: int, width: int) -> TileGrid:
        """The tile grid for an image streamed band by band (``iter_predict_rows``): neither the
        image nor its outputs are held, so only a tile and the rows bands share count."""
        tile = self.tile or self.largest_tile(height, width, held=False)
        return make_grid(height, width, tile, self.overlap)

    def largest_tile(self, height: int, width: int, *, held: bool) -> int:
        """The largest standard tile whose cost fits the budget (``held``: the image and its
        outputs share the memory too); the smallest when none does."""
        budget = device_memory_budget(self.device)
        rows, carried = (height, width) if held else (0, min(width, self.carry_columns()))
        fits = [t for t in TILE_CHOICES if self._cost(min(t, height), min(t, width), rows, carried) <= budget]
        return fits[0] if fits else TILE_CHOICES[-1]

    def carry_columns(self) -> int:
        """The most image columns one ``iter_predict_rows`` call should cover: the class scores
        (and weights) that consecutive bands share, ``overlap`` rows of them held twice while a
        band is blended, stay within ``CARRY_BYTES``."""
        per_column = 2 * (self.model.info.num_classes + 1) * BLEND_DTYPE.itemsize * (self.overlap + ALIGN)
        return CARRY_BYTES // per_column

    def _cost(self, tile_h: int, tile_w: int, height: int, width: int) -> int:
        """Bytes for one tile's forward pass and, when they share the memory, the image (3 bytes
        per pixel; ``height`` 0 when it is not held), the outputs (3) and the blending buffers
        (the rows two bands share, ``width`` wide)."""
        activations = self._activations(tile_h, tile_w)
        if self.device.type == "cuda":
            return activations  # the rest lives in host memory
        per_pixel = self.model.info.num_classes * BLEND_DTYPE.itemsize + 4  # + the fp32 weight sum
        blending = per_pixel * (tile_h * tile_w + 2 * self.overlap * width)
        return activations + blending + 6 * height * width

    def _activations(self, tile_h: int, tile_w: int) -> int:
        """Bytes of one tile's forward pass at the model's input scale, in its precision."""
        activations = int(tile_h * tile_w * BYTES_PER_PIXEL * self.model.info.scale**2)
        half = self.device.type == "cuda" or self.dtype == torch.bfloat16  # fp16/bf16 activations
        return activations // 2 if half else activations

    def _batch_for(self, grid: TileGrid) -> int:
        """Tiles per forward pass: never more than a band of the grid holds."""
        if self.batch_size is not None:
            return max(1, min(self.batch_size, len(grid.xs)))
        if self.device.type != "cuda":
            return 1
        fits = device_memory_budget(self.device) // max(self._activations(grid.tile_h, grid.tile_w), 1)
        return int(max(1, min(8, len(grid.xs), fits)))

    def iter_predict(self, image: np.ndarray) -> Generator[Progress, None, Prediction]:
        """Yield ``Progress`` per batch of tiles; return the ``Prediction``.

        Tiles are cut from the image at its own size; a model whose ``info.scale`` is not 1
        sees each tile resized by it, and its scores come back bilinearly to the tile's size
        before the softmax (``core.model.networks.forward_scaled``, as in evaluation), so edges keep
        their sub-pixel position. Stopping the iteration between tiles cancels the work.
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 image, got {image.dtype} {image.shape}")
        return (yield from self._iter_predict(image))

    def _iter_predict(self, image: np.ndarray) -> Generator[Progress, None, Prediction]:
        while True:
            grid = self.plan(*image.shape[:2])
            try:
                return (yield from self._run_grid(image, grid))
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                message = self._shrink_after_oom(grid)
                self.warnings.append(message)
                yield Progress(0, len(grid), message)

    def _shrink_after_oom(self, grid: TileGrid) -> str:
        free_device_memory(self.device)
        batch = self._batch_for(grid)
        side = max(grid.tile_h, grid.tile_w)
        if batch > 1:
            self.batch_size = batch // 2
            return f"out of memory on {self.device.type}: retrying with {self.batch_size} tiles per batch"
        if side > self.min_tile:
            self.tile = max(self.min_tile, side // 2)
            return f"out of memory on {self.device.type}: retrying with {self.tile} px tiles"
        if self.device.type != "cpu":
            self.device, self.tile, self.batch_size = torch.device("cpu"), None, None
            self._place_model()
            return "out of GPU memory even with small tiles: continuing on the CPU (slower)"
        raise PredictionError(
            f"out of memory even with {side} px tiles on the CPU; close other programs or use a smaller image"
        )

    def iter_predict_rows(
        self,
        source,
        sink: RowSink,
        *,
        start_row: int = 0,
        tile: int | None = None,
        columns: tuple[int, int] | None = None,
    ) -> Generator[Progress, None, TileGrid]:
        """Predict a lazily read ``source`` (a ``core.io.slides.Slide``, or any ``HxWx3 uint8``
        array) band by band: ``sink(y, label_rows, confidence_rows)`` gets each band's final rows.

        Tiles are read from the source as they are needed and nothing of the image's size is
        held. ``start_row`` resumes: bands before it are skipped (the one above is run again for
        the rows it shares, so the labels equal an uninterrupted run's, bit for bit). ``tile``
        fixes the tile side (a resumed run keeps its first grid). ``columns`` (``start, end``)
        predicts only those image columns, from the tiles of the whole image's grid that touch
        them, so a panel of columns equals the same columns of the whole, bit for bit: an image
        wider than ``carry_columns`` is predicted panel by panel. Returns the grid used.
        """
        height, width = source.shape[:2]
        start, end = columns or (0, width)
        given = start_row

        def counted(y: int, label: np.ndarray, confidence: np.ndarray) -> None:
            nonlocal given
            sink(y, label, confidence)
            given = max(given, y + len(label))

        while True:
            whole = make_grid(height, width, tile, self.overlap) if tile else self.plan_rows(height, width)
            grid, x0 = whole.columns(start, end)

            def cropped(y: int, label: np.ndarray, confidence: np.ndarray, x0: int = x0) -> None:
                counted(y, label[:, start - x0 : end - x0], confidence[:, start - x0 : end - x0])

            bands = list(grid.bands())
            pending = [i for i, (_y, _rows, next_y) in enumerate(bands) if next_y > given]
            if not pending:
                return whole
            try:
                start_band = max(0, pending[0] - 1)
                yield from self._run_grid(source, grid, sink=cropped, start_band=start_band, x0=x0)
                return whole
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                message = self._shrink_after_oom(grid)
                tile = None
                self.warnings.append(message)
                yield Progress(0, len(grid), message)

    def _run_grid(
        self, image, grid: TileGrid, sink: RowSink | None = None, start_band: int = 0, x0: int = 0
    ) -> Generator[Progress, None, Prediction]:
        window_cpu = torch.from_numpy(blend_window(grid.tile_h, grid.tile_w))
        window = window_cpu.to(self.device)
        blender = TileBlender(grid, self.model.info.num_classes, window_cpu, sink=sink, start_band=start_band)
        batch = self._batch_for(grid)
        done, total = start_band * len(grid.xs), len(grid)
        for y, _rows_final, _next_y in list(grid.bands())[start_band:]:
            for start in range(0, len(grid.xs), batch):
                xs = grid.xs[start : start + batch]
                for probs in self._forward(image, y, tuple(x0 + x for x in xs), grid, window).cpu():
                    blender.add(probs)
                done += len(xs)
                yield Progress(done, total, "predicting")
        return Prediction(blender.label, blender.confidence)

    def _forward(
        self, image, y: int, xs: tuple[int, ...], grid: TileGrid, window: torch.Tensor
    ) -> torch.Tensor:
        """Softmax probabilities of a batch of tiles, already scaled by the blending window."""
        tiles = np.stack([image[y : y + grid.tile_h, x : x + grid.tile_w] for x in xs])
        with torch.inference_mode(), autocast(self.device, enabled=self.precision != "fp32"):
            batch = torch.from_numpy(tiles).to(self.device, non_blocking=True).permute(0, 3, 1, 2)
            batch = ((batch.float() - self._mean) / self._std).to(self.dtype)
            if self.channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            logits = forward_scaled(self.model.module, batch, self.model.info.scale)
            return torch.softmax(logits.float(), dim=1).mul_(window)
