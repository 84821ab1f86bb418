"""FCN-32s/16s/8s on a VGG16 trunk, and torchvision's FCN-ResNet behind the same interface.

Every model maps ``(N, 3, H, W)`` normalised floats to ``(N, C, H, W)`` logits with the
input's own height and width, for any size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.base.choices import BACKBONES, UNET, VARIANTS
from core.model.unet import UNet

# "ours": conv1 padding 1, FC6 padding 3, bilinear final upsampling, outputs cropped at 0.
# "caffe": the FCN paper's released models (converted by torchfcn): 100 px of padding at
# conv1_1, FC6 unpadded, learnt final upsampling, skip scores cropped at fixed offsets, and
# BGR input (the module flips the channels itself; the mean/std in the metadata are RGB).
GEOMETRIES = ("ours", "caffe")
_CAFFE_CROPS = {"pool4": 5, "pool3": 9, "fcn32s": 19, "fcn16s": 27, "fcn8s": 31}
CAFFE_FINAL = {"fcn32s": "upscore", "fcn16s": "upscore16", "fcn8s": "upscore8"}

# VGG16 configuration "D": channels per conv, "M" for a 2x2 max-pool.
_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
# What each index of ``features`` holds (conv, relu, pool), as in torchvision's vgg16.
VGG16_LAYERS = tuple(x for v in _VGG16_CFG for x in (("pool",) if v == "M" else ("conv", "relu")))
# Indices in ``features`` of pool3, pool4 and pool5 (the same as torchvision's vgg16).
_POOL2, _POOL3, _POOL4, _POOL5 = 9, 16, 23, 30


def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """Weights for a ``ConvTranspose2d(channels, channels, kernel_size)`` that upsamples bilinearly.

    Each channel maps to itself with the separable bilinear filter; off-diagonal entries are 0.
    """
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = torch.arange(kernel_size, dtype=torch.float32)
    filt1d = 1 - (og - center).abs() / factor
    filt = filt1d[:, None] * filt1d[None, :]
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    idx = torch.arange(channels)
    weight[idx, idx] = filt
    return weight


class VGG16Trunk(nn.Module):
    """VGG16's 13 convolutions and 5 max-pools; returns pool2, pool3, pool4 and pool5.

    Pools round up (``ceil_mode``, as Caffe's FCN did), so any input of at least 1x1 keeps a
    pool5 map of at least 1x1: ``pool_k`` has ``ceil(H / 2**k)`` rows.
    Module names match torchvision's ``vgg16().features`` so its weights load directly.
    """

    def __init__(self, first_padding: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for v in _VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
            else:
                padding = first_padding if not layers else 1
                layers += [nn.Conv2d(in_ch, v, kernel_size=3, padding=padding), nn.ReLU(inplace=True)]
                in_ch = v
        self.features = nn.Sequential(*layers)
        for m in self.features:
            if isinstance(m, nn.Conv2d):  # torchvision's VGG initialisation for training from scratch
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in (_POOL2, _POOL3, _POOL4, _POOL5):
                taps.append(x)
        return taps[0], taps[1], taps[2], taps[3]


class FCN(nn.Module):
    """FCN-32s, FCN-16s or FCN-8s (Long, Shelhamer & Darrell) on VGG16, and FCN-4s.

    FC6 (7x7, pad 3, 4096) and FC7 (1x1, 4096) are VGG16's fully connected layers as
    convolutions, each followed by ReLU and dropout; a 1x1 conv scores ``num_classes``.
    FCN-16s/8s add 1x1 scores of pool4/pool3 after learnable x2 transposed convolutions
    initialised to bilinear upsampling; the last map is upsampled bilinearly to the input size.
    FCN-4s is the paper's skip taken one step further (pool2, stride 4): finer edges for
    small objects, for 0.01 % more weights (see README, "Learning while you annotate").
    """

    encoder_prefix = "backbone."  # what --freeze-backbone freezes

    def __init__(self, variant: str, num_classes: int, dropout: float = 0.5, geometry: str = "ours") -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown FCN variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        if geometry not in GEOMETRIES:
            raise ValueError(f"unknown geometry {geometry!r}; choose one of {', '.join(GEOMETRIES)}")
        if variant == UNET:
            raise ValueError("the U-Net is not built on VGG16; use build_model('unet', ...)")
        self.variant = variant
        self.geometry = geometry
        caffe = geometry == "caffe"
        self.backbone = VGG16Trunk(first_padding=100 if caffe else 1)
        self.fc6 = nn.Conv2d(512, 4096, kernel_size=7, padding=0 if caffe else 3)
        self.fc7 = nn.Conv2d(4096, 4096, kernel_size=1)
        self.drop6 = nn.Dropout(dropout)
        self.drop7 = nn.Dropout(dropout)
        for fc in (self.fc6, self.fc7):
            nn.init.normal_(fc.weight, std=0.01)
            nn.init.zeros_(fc.bias)
        if variant == "fcn4s" and caffe:
            raise ValueError("the FCN paper released no FCN-4s")
        self.build_head(num_classes)

    def build_head(self, num_classes: int) -> None:
        """(Re)create the class-specific layers for ``num_classes``, initialised by ``reset_head``:
        the score layers and the x2 upsamplers; the trunk, FC6 and FC7 are kept."""
        self.num_classes = n = num_classes
        pad = 0 if self.geometry == "caffe" else 1
        self.score = nn.Conv2d(4096, n, kernel_size=1)
        if self.variant in ("fcn16s", "fcn8s", "fcn4s"):
            self.score_pool4 = nn.Conv2d(512, n, kernel_size=1)
            self.upscore2 = nn.ConvTranspose2d(n, n, 4, stride=2, padding=pad, bias=False)
        if self.variant in ("fcn8s", "fcn4s"):
            self.score_pool3 = nn.Conv2d(256, n, kernel_size=1)
            self.upscore_pool4 = nn.ConvTranspose2d(n, n, 4, stride=2, padding=pad, bias=False)
        if self.variant == "fcn4s":
            self.score_pool2 = nn.Conv2d(128, n, kernel_size=1)
            self.upscore_pool3 = nn.ConvTranspose2d(n, n, 4, stride=2, padding=pad, bias=False)
        if self.geometry == "caffe":
            s = self.output_stride
            setattr(self, CAFFE_FINAL[self.variant], nn.ConvTranspose2d(n, n, 2 * s, stride=s, bias=False))
        self.reset_head()

    @property
    def output_stride(self) -> int:
        """Stride of the last score map before the final upsampling (32, 16, 8 or 4)."""
        return {"fcn32s": 32, "fcn16s": 16, "fcn8s": 8, "fcn4s": 4}[self.variant]

    def reset_head(self) -> None:
        """Initialise the class-specific layers as the FCN paper does.

        The score layers start at zero (the skip scores too, so a fresh FCN-8s predicts
        exactly what its FCN-32s path does) and the x2 upsamplers start bilinear.
        """
        for name, module in self.named_children():
            if name.startswith("score"):
                nn.init.zeros_(module.weight)
                nn.init.zeros_(module.bias)
            elif name.startswith("upscore"):
                with torch.no_grad():
                    module.weight.copy_(bilinear_kernel(self.num_classes, module.kernel_size[0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.geometry == "caffe":
            return self._caffe_forward(x.flip(1), h, w)  # RGB -> BGR, as Caffe's models expect
        pool2, pool3, pool4, pool5 = self.backbone(x)
        y = self.drop6(F.relu(self.fc6(pool5), inplace=True))
        y = self.drop7(F.relu(self.fc7(y), inplace=True))
        y = _full_precision(self.score, y)
        if self.variant != "fcn32s":
            p4 = _full_precision(self.score_pool4, pool4)
            y = self.upscore2(y)[..., : p4.shape[-2], : p4.shape[-1]] + p4
        if self.variant in ("fcn8s", "fcn4s"):
            p3 = _full_precision(self.score_pool3, pool3)
            y = self.upscore_pool4(y)[..., : p3.shape[-2], : p3.shape[-1]] + p3
        if self.variant == "fcn4s":
            p2 = _full_precision(self.score_pool2, pool2)
            y = self.upscore_pool3(y)[..., : p2.shape[-2], : p2.shape[-1]] + p2
        # Score pixel i covers input pixels [s*i, s*i + s): upsample by s, crop to the input.
        y = F.interpolate(y, scale_factor=self.output_stride, mode="bilinear", align_corners=False)
        return y[..., :h, :w]

    def _caffe_forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """The released FCN models' geometry: skip scores cropped at Caffe's fixed offsets."""
        _pool2, pool3, pool4, pool5 = self.backbone(x)
        y = self.drop6(F.relu(self.fc6(pool5), inplace=True))
        y = self.drop7(F.relu(self.fc7(y), inplace=True))
        y = _full_precision(self.score, y)
        if self.variant != "fcn32s":
            y = self.upscore2(y)
            y = y + _crop(_full_precision(self.score_pool4, pool4), _CAFFE_CROPS["pool4"], y)
        if self.variant == "fcn8s":
            y = self.upscore_pool4(y)
            y = y + _crop(_full_precision(self.score_pool3, pool3), _CAFFE_CROPS["pool3"], y)
        y = getattr(self, CAFFE_FINAL[self.variant])(y)
        offset = _CAFFE_CROPS[self.variant]
        return y[..., offset : offset + h, offset : offset + w]

    def load_vgg16_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Initialise the trunk, FC6 and FC7 from a torchvision ``vgg16`` state dict.

        The classifier's 4096x25088 and 4096x4096 matrices are reshaped into the 7x7 and 1x1
        convolutions they are equivalent to.
        """
        self.backbone.load_state_dict({k: v for k, v in state.items() if k.startswith("features.")})
        with torch.no_grad():
            self.fc6.weight.copy_(state["classifier.0.weight"].reshape(4096, 512, 7, 7))
            self.fc6.bias.copy_(state["classifier.0.bias"])
            self.fc7.weight.copy_(state["classifier.3.weight"].reshape(4096, 4096, 1, 1))
            self.fc7.bias.copy_(state["classifier.3.bias"])


def _crop(scores: torch.Tensor, offset: int, like: torch.Tensor) -> torch.Tensor:
    return scores[..., offset : offset + like.shape[-2], offset : offset + like.shape[-1]]


def _full_precision(layer: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """Run a 1x1 score layer outside autocast, in its weights' own dtype.

    oneDNN's bf16 weight gradient of a 1x1 convolution with many input and few output
    channels (4096 -> 2) corrupts the heap on CPUs with AMX (torch 2.14); the score layers
    cost under 1 % of the network, so they always run in the weights' precision.
    """
    x = x.to(layer.weight.dtype)
    if x.device.type in ("cpu", "cuda") and torch.is_autocast_enabled(x.device.type):
        with torch.autocast(x.device.type, enabled=False):
            return layer(x)
    return layer(x)


class TorchvisionFCN(nn.Module):
    """torchvision's FCN-ResNet50/101 (dilated, output stride 8) returning a logits tensor."""

    variant = "fcn8s"
    output_stride = 8
    encoder_prefix = "net.backbone."

    def __init__(self, backbone: str, num_classes: int) -> None:
        super().__init__()
        from torchvision.models import segmentation

        builder = {"resnet50": segmentation.fcn_resnet50, "resnet101": segmentation.fcn_resnet101}
        self.num_classes = num_classes
        self.net = builder[backbone](
            weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)["out"]

    def reset_head(self) -> None:
        """Re-initialise the final 1x1 class layer (used when the class list changes)."""
        last = self.net.classifier[-1]
        nn.init.normal_(last.weight, std=0.01)
        nn.init.zeros_(last.bias)


def build_model(
    variant: str = "fcn8s", *, num_classes: int, backbone: str = "vgg16", geometry: str = "ours"
) -> nn.Module:
    """Build an untrained FCN. Nothing is downloaded; see ``core.model.weights`` for pretrained weights.

    ``variant`` is ``fcn32s``, ``fcn16s``, ``fcn8s`` or ``fcn4s`` for VGG16. torchvision's dilated
    FCN-ResNet backbones (``resnet50``, ``resnet101``) predict at stride 8 and come as ``fcn8s``.
    ``unet`` is the small U-Net of ``core.model.unet``, with its own encoder.
    """
    if num_classes < 1 or num_classes > 255:
        raise ValueError(f"num_classes must be between 1 and 255 (255 is void), got {num_classes}")
    if UNET in (variant, backbone):
        if variant != UNET or backbone not in (UNET, "vgg16"):  # vgg16: the default backbone, unset
            raise ValueError(
                f"the U-Net has its own encoder: use variant 'unet' alone (got {variant}/{backbone})"
            )
        return UNet(num_classes)
    if backbone == "vgg16":
        return FCN(variant, num_classes, geometry=geometry)
    if backbone in ("resnet50", "resnet101"):
        if variant != "fcn8s":
            raise ValueError(
                f"the {backbone} backbone is torchvision's dilated FCN with output stride 8; "
                f"use variant 'fcn8s' (got {variant!r})"
            )
        return TorchvisionFCN(backbone, num_classes)
    raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")


def replace_classifier(model: nn.Module, num_classes: int) -> None:
    """Re-create the class-specific layers for a new class count, keeping everything else."""
    if isinstance(model, FCN):
        model.build_head(num_classes)
    elif isinstance(model, UNet):
        model.replace_head(num_classes)
    elif isinstance(model, TorchvisionFCN):
        old = model.net.classifier[-1]
        model.net.classifier[-1] = nn.Conv2d(old.in_channels, num_classes, kernel_size=1)
        model.num_classes = num_classes
        model.reset_head()
    else:
        raise TypeError(f"cannot replace the classifier of {type(model).__name__}")


def forward_scaled(net: nn.Module, x: torch.Tensor, scale: float) -> torch.Tensor:
    """Logits at ``x``'s size from a network that sees images resized by ``scale``."""
    if scale == 1.0:
        return net(x)
    size = x.shape[-2:]
    # In fp32: antialiased resizing has no bf16 kernel; three channels cost little.
    resized = F.interpolate(x.float(), scale_factor=scale, mode="bilinear", antialias=scale < 1)
    logits = net(resized.to(x.dtype))
    return F.interpolate(logits.float(), size=size, mode="bilinear")


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())
