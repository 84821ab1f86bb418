"""A small U-Net: the network the app learns with when it starts from random weights.

The FCNs' skips stop at stride 8 (FCN-8s) or 4 (FCN-4s); their upsampled scores cannot
follow an object's edge to the pixel, and a VGG16 trunk is slow to train on a laptop CPU.
A U-Net (Ronneberger, Fischer & Brox, 2015) is the FCN idea carried to stride 1: every
pooling stage has a decoder stage that upsamples and concatenates the encoder's maps of the
same size. Narrow (24 channels at full resolution, 1.1M weights against FCN-8s' 134M), it learns
pixel-accurate masks from a few reviewed images within a minute of CPU time
(README, "Learning while you annotate").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

UNET_WIDTH = 24
UNET_DEPTH = 3  # pooling stages: a receptive field of about 90 pixels


def _block(in_ch: int, out_ch: int) -> nn.Sequential:
    """Two 3x3 convolutions, each followed by batch normalisation and ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Maps ``(N, 3, H, W)`` normalised images to ``(N, C, H, W)`` logits, for any H and W.

    ``depth`` 2x2 max-pools, channels doubling from ``width``; each decoder stage upsamples
    with a 2x2 transposed convolution and concatenates the encoder's maps of the same size.
    Inputs are padded (edge pixels repeated) to a multiple of ``2**depth`` and the logits cropped.
    """

    variant = "unet"
    output_stride = 1
    encoder_prefix = "down."  # what --freeze-backbone freezes

    def __init__(self, num_classes: int, width: int = UNET_WIDTH, depth: int = UNET_DEPTH) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.depth = depth
        channels = [width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList(_block(i, o) for i, o in zip([3, *channels[:-1]], channels, strict=True))
        self.up = nn.ModuleList(nn.ConvTranspose2d(c * 2, c, 2, stride=2) for c in reversed(channels[:-1]))
        self.merge = nn.ModuleList(_block(c * 2, c) for c in reversed(channels[:-1]))
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = 2**self.depth
        x = F.pad(x, (0, -w % m, 0, -h % m), mode="replicate")
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips[:-1]), strict=True):
            x = merge(torch.cat([up(x), skip], dim=1))
        return self.head(x)[..., :h, :w]

    def replace_head(self, num_classes: int) -> None:
        """A new class layer for ``num_classes``; everything else is kept."""
        self.head = nn.Conv2d(self.head.in_channels, num_classes, 1)
        self.num_classes = num_classes
