"""Training crops drawn where the user's labels are, and more often where the model was wrong.

Continuous learning replays every reviewed image from memory: each crop picks an image,
then a centre pixel among the labelled pixels or, for a share of the crops, among the
pixels the model had predicted wrongly before the user corrected them. Image and mask get
the same random scale and flips (torchvision ``transforms.v2`` functional ops on
``tv_tensors``, masks resized with half-pixel-centred nearest neighbour); areas outside the
image are void.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import ndimage
from torchvision import tv_tensors
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from core.io.labels import VOID

STRIDE = 32  # crops are multiples of the network's stride
# Masks are resized with half-pixel-centred nearest neighbour, as the image is resampled:
# plain NEAREST picks the source pixel at floor(i * ratio), which moves a resized mask about
# half a pixel down and right of its image (measured: 0.38-0.45 px for factors 0.8-1.25).
EXACT = InterpolationMode.NEAREST_EXACT
BLOCK = 16  # side of the blocks in which labelled pixels are counted
SMALL_OBJECT_PX = 24  # objects narrower than three score pixels (stride 8) are learnt at 2x


def object_scale(labels: list[np.ndarray], stride: int = 8) -> float:
    """The input scale for objects like those labelled: 2 when their median width is under
    ``SMALL_OBJECT_PX`` (FCN-8s scores at stride 8, so narrower objects lose their edges),
    else 1, and always 1 for a network that scores every pixel (``stride`` 1: the U-Net).
    An object is a connected region of one non-background class (0 is background).
    """
    if stride == 1:
        return 1.0
    widths = []
    for label in labels:
        for cls in np.unique(label):
            if cls in (0, VOID):
                continue
            inside = label == cls
            regions, n = ndimage.label(inside)
            if n:
                depth = ndimage.distance_transform_edt(inside)
                widths.extend(2 * np.asarray(ndimage.maximum(depth, regions, range(1, n + 1))))
    return 2.0 if widths and float(np.median(widths)) < SMALL_OBJECT_PX else 1.0


class PixelPool:
    """Draws pixels uniformly from a boolean mask, holding one count per ``BLOCK`` x ``BLOCK`` block.

    A flat index of every labelled pixel took 8 bytes a pixel, more than the image itself
    (a reviewed 24-megapixel photo held 270 MB of them); these counts take a 32nd of a byte
    a pixel. A draw picks a block by its count, then a pixel of the block: still uniform.
    """

    def __init__(self, mask: np.ndarray) -> None:
        h, w = mask.shape
        rows = np.empty((-(-h // BLOCK), w), np.int32)
        for i, y in enumerate(range(0, h, BLOCK)):  # a tenth of reduceat's time down the rows
            np.sum(mask[y : y + BLOCK], axis=0, dtype=np.int32, out=rows[i])
        counts = np.add.reduceat(rows, np.arange(0, w, BLOCK), axis=1)
        self._blocks_across = counts.shape[1]
        self._cumulative = np.cumsum(counts.ravel(), dtype=np.int64)

    @property
    def size(self) -> int:
        """How many pixels the mask holds."""
        return int(self._cumulative[-1]) if self._cumulative.size else 0

    @property
    def nbytes(self) -> int:
        return self._cumulative.nbytes

    def densest_window(self, side: int) -> tuple[int, int]:
        """The top-left pixel of the ``side`` x ``side`` window (in whole blocks) holding the most."""
        counts = np.diff(self._cumulative, prepend=0).reshape(-1, self._blocks_across)
        kh, kw = (max(1, min(side // BLOCK, n)) for n in counts.shape)
        table = np.pad(counts.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        sums = table[kh:, kw:] - table[:-kh, kw:] - table[kh:, :-kw] + table[:-kh, :-kw]
        by, bx = np.unravel_index(int(np.argmax(sums)), sums.shape)
        return int(by) * BLOCK, int(bx) * BLOCK

    def draw(
        self, rng: np.random.Generator, mask_of: Callable[[slice, slice], np.ndarray]
    ) -> tuple[int, int]:
        """A uniformly drawn pixel ``(y, x)``; ``mask_of(rows, cols)`` gives the mask of a block."""
        k = int(rng.integers(self.size))
        block = int(np.searchsorted(self._cumulative, k, side="right"))
        rank = k - (int(self._cumulative[block - 1]) if block else 0)
        by, bx = divmod(block, self._blocks_across)
        rows, cols = slice(by * BLOCK, (by + 1) * BLOCK), slice(bx * BLOCK, (bx + 1) * BLOCK)
        y, x = np.nonzero(mask_of(rows, cols))
        return by * BLOCK + int(y[rank]), bx * BLOCK + int(x[rank])


@dataclass
class Example:
    """One reviewed image: ``image`` HxWx3 uint8, ``label`` HxW uint8 (255 void), ``wrong`` HxW
    bool (or ``None``): where the model's prediction differed from the label. Arrays in RAM or
    mapped from files (``core.training.example_memory``)."""

    id: str
    image: np.ndarray
    label: np.ndarray
    wrong: np.ndarray | None = None
    labelled: PixelPool = field(init=False, repr=False)
    wrong_pool: PixelPool | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.label.shape != self.image.shape[:2]:
            raise ValueError(f"{self.id}: label {self.label.shape} and image {self.image.shape[:2]} differ")
        self.labelled = PixelPool(self.label != VOID)
        self.wrong_pool = None
        if self.wrong is not None:
            pool = PixelPool((self.label != VOID) & self.wrong)
            self.wrong_pool = pool if pool.size else None

    @property
    def has_labels(self) -> bool:
        return self.labelled.size > 0

    def labelled_in(self, rows: slice, cols: slice) -> np.ndarray:
        return self.label[rows, cols] != VOID

    def wrong_in(self, rows: slice, cols: slice) -> np.ndarray:
        return self.wrong[rows, cols] & (self.label[rows, cols] != VOID)


class CropSampler:
    """Builds ``(images NCHW float, masks NHW int64)`` batches from ``Example`` s.

    ``crop`` is the largest side; a batch of smaller images uses their smallest side (rounded
    down to the stride) so that no compute goes into padding. ``wrong_share`` of the crops
    centre on a pixel the model got wrong (when the example records any). ``all_orientations``
    adds vertical flips and 90-degree turns (microscopy, aerial), else only horizontal flips.
    ``zoom`` is the model's input scale: crops are resized by it times a random factor in ``scale``.
    """

    def __init__(
        self,
        crop: int,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        *,
        wrong_share: float = 0.5,
        scale: tuple[float, float] = (0.8, 1.25),
        all_orientations: bool = False,
        seed: int = 0,
    ) -> None:
        self.crop = crop
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)
        self.wrong_share = wrong_share
        self.scale = scale
        self.all_orientations = all_orientations
        self.zoom = 1.0
        self.rng = np.random.default_rng(seed)

    def side_for(self, examples: list[Example]) -> int:
        """The crop side: ``crop``, or the smallest image's side if smaller. Not multiplied by
        the zoom: measured on bench/session.py, 128 px crops of 2x-zoomed 128 px tiles learn
        faster per CPU-second than 256 px ones (fp32: 64 vs 23 steps a minute, effort on the
        second image 39 % vs 98 %)."""
        smallest = min(min(e.label.shape) for e in examples)
        return max(STRIDE, min(self.crop, smallest) // STRIDE * STRIDE)

    def batch(self, examples: list[Example], batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``batch_size`` crops, each from an example chosen uniformly (every image is replayed)."""
        usable = [e for e in examples if e.has_labels]
        if not usable:
            raise ValueError("no example has labelled pixels")
        side = self.side_for(usable)
        picks = self.rng.integers(len(usable), size=batch_size)
        images, masks = zip(*(self._crop(usable[i], side) for i in picks), strict=True)
        x = torch.stack(images).float().div_(255).sub_(self.mean).div_(self.std)
        return x, torch.stack(masks).long()

    def _centre(self, e: Example) -> tuple[int, int]:
        if e.wrong_pool is not None and self.rng.random() < self.wrong_share:
            return e.wrong_pool.draw(self.rng, e.wrong_in)
        return e.labelled.draw(self.rng, e.labelled_in)

    def _crop(self, e: Example, side: int) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = e.label.shape
        factor = self.zoom * float(np.exp(self.rng.uniform(np.log(self.scale[0]), np.log(self.scale[1]))))
        src = max(8, round(side / factor))
        cy, cx = self._centre(e)
        jitter = self.rng.integers(-(src // 4), src // 4 + 1, size=2)
        top = int(np.clip(cy - src // 2 + jitter[0], min(0, h - src), max(0, h - src)))
        left = int(np.clip(cx - src // 2 + jitter[1], min(0, w - src), max(0, w - src)))
        image = np.zeros((src, src, 3), np.uint8)
        mask = np.full((src, src), VOID, np.uint8)
        y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + src, h), min(left + src, w)
        image[y0 - top : y1 - top, x0 - left : x1 - left] = e.image[y0:y1, x0:x1]
        mask[y0 - top : y1 - top, x0 - left : x1 - left] = e.label[y0:y1, x0:x1]
        img = tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1))
        msk = tv_tensors.Mask(torch.from_numpy(mask))
        if src != side:
            img = TF.resize(img, [side, side], antialias=True)
            msk = TF.resize(msk, [side, side], interpolation=EXACT)
        if self.rng.random() < 0.5:
            img, msk = TF.horizontal_flip(img), TF.horizontal_flip(msk)
        if self.all_orientations:
            if self.rng.random() < 0.5:
                img, msk = TF.vertical_flip(img), TF.vertical_flip(msk)
            turns = int(self.rng.integers(4))
            if turns:
                img, msk = torch.rot90(img, turns, (1, 2)), torch.rot90(msk, turns, (0, 1))
        return img.as_subclass(torch.Tensor), msk.as_subclass(torch.Tensor)
