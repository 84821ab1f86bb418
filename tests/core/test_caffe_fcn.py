"""The FCN paper's released models in torchfcn's layout load everywhere a checkpoint does and
reproduce torchfcn's forward pass (Caffe geometry, BGR mean-subtracted input)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from core.cli import main
from core.inference.predictor import Predictor
from core.model.checkpoints import load_checkpoint, save_checkpoint

ROOT = Path(__file__).parents[2]
MEAN_BGR = (104.00698793, 116.66876762, 122.67891434)
BLOCKS = ((1, 3, 64, 2), (2, 64, 128, 2), (3, 128, 256, 3), (4, 256, 512, 3), (5, 512, 512, 3))
FINAL = {  # the last upsampling layer: name, kernel, stride, crop offset
    "fcn32s": ("upscore", 64, 32, 19),
    "fcn16s": ("upscore16", 32, 16, 27),
    "fcn8s": ("upscore8", 16, 8, 31),
}


class TorchfcnReference(nn.Module):
    """torchfcn's FCN-32s/16s/8s written out plainly with its layer names (the reference)."""

    def __init__(self, variant: str, n: int = 21) -> None:
        super().__init__()
        self.variant = variant
        for block, cin, cout, count in BLOCKS:
            for i in range(1, count + 1):
                pad = 100 if (block, i) == (1, 1) else 1
                setattr(self, f"conv{block}_{i}", nn.Conv2d(cin if i == 1 else cout, cout, 3, padding=pad))
        self.fc6, self.fc7 = nn.Conv2d(512, 4096, 7), nn.Conv2d(4096, 4096, 1)
        self.score_fr = nn.Conv2d(4096, n, 1)
        if variant != "fcn32s":
            self.score_pool4 = nn.Conv2d(512, n, 1)
            self.upscore2 = nn.ConvTranspose2d(n, n, 4, stride=2, bias=False)
        if variant == "fcn8s":
            self.score_pool3 = nn.Conv2d(256, n, 1)
            self.upscore_pool4 = nn.ConvTranspose2d(n, n, 4, stride=2, bias=False)
        name, kernel, stride, _ = FINAL[variant]
        setattr(self, name, nn.ConvTranspose2d(n, n, kernel, stride=stride, bias=False))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.normal_(m.bias, std=0.1)
        for m in (self.score_fr, getattr(self, "score_pool4", None), getattr(self, "score_pool3", None)):
            if m is not None:
                nn.init.normal_(m.weight, std=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, pools = x, {}
        for block, _cin, _cout, count in BLOCKS:
            for i in range(1, count + 1):
                h = torch.relu(getattr(self, f"conv{block}_{i}")(h))
            h = nn.functional.max_pool2d(h, 2, stride=2, ceil_mode=True)
            pools[block] = h
        h = torch.relu(self.fc7(torch.relu(self.fc6(h))))
        h = self.score_fr(h)
        if self.variant != "fcn32s":
            h = self.upscore2(h)
            h = h + self.score_pool4(pools[4])[:, :, 5 : 5 + h.size(2), 5 : 5 + h.size(3)]
        if self.variant == "fcn8s":
            h = self.upscore_pool4(h)
            h = h + self.score_pool3(pools[3])[:, :, 9 : 9 + h.size(2), 9 : 9 + h.size(3)]
        name, _k, _s, offset = FINAL[self.variant]
        h = getattr(self, name)(h)
        return h[:, :, offset : offset + x.size(2), offset : offset + x.size(3)]


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    with Image.open(ROOT / "resources/samples/chelsea.png") as img:
        return np.asarray(img.convert("RGB").resize((180, 120)))


@pytest.mark.parametrize("variant", ["fcn32s", "fcn16s", "fcn8s"])
def test_fcn_paper_weights_reproduce_torchfcn(variant, photo, tmp_path, capsys):
    torch.manual_seed(0)
    reference = TorchfcnReference(variant).eval()
    pth = tmp_path / f"{variant}_from_caffe.pth"
    torch.save(reference.state_dict(), pth)
    with torch.no_grad():
        bgr = photo[:, :, ::-1].astype(np.float64) - MEAN_BGR
        x = torch.from_numpy(bgr.copy()).permute(2, 0, 1)[None].float()
        expected = reference(x).argmax(1)[0].numpy()
    assert len(np.unique(expected)) > 1  # labels that vary, so agreement means something

    model = load_checkpoint(pth)
    assert (model.info.variant, model.info.geometry, model.info.num_classes) == (variant, "caffe", 21)
    labels = Predictor(model, device="cpu", precision="fp32").predict(photo).label
    assert np.mean(labels == expected) >= 0.995
    if variant != "fcn8s":
        return  # the round trip below does not depend on the variant: once is enough

    saved = tmp_path / "imported.safetensors"  # our format keeps the geometry and normalisation
    save_checkpoint(saved, load_checkpoint(pth))
    again = load_checkpoint(saved)
    assert again.info.geometry == "caffe" and again.info.mean == model.info.mean
    np.testing.assert_array_equal(
        Predictor(again, device="cpu", precision="fp32").predict(photo).label, labels
    )

    capsys.readouterr()
    assert main(["info", "--checkpoint", str(pth)]) == 0
    out = capsys.readouterr().out
    assert "caffe" in out and variant in out
