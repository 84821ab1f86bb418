"""A pixel classifier that learns from a few strokes in a fraction of a second.

A network learning from random weights needs hundreds of steps before its guesses help; a
small perceptron on per-pixel filter features (``core.training.pixel_features``) separates
what a few strokes show within tens of steps, as ilastik's random forest does. The assistant
shows it while the network learns and blends the two by how well each predicted the user's
newest strokes (``core.training.assist``). Measured with ``bench/strokes.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

HIDDEN = 32
BATCH = 4096  # pixels per step
LR = 1e-2
# Half of each batch from the strokes of the image being painted (the first ``focus`` pixels):
# drawn at random from everything, they were diluted by the reviewed images' pixels as those
# grew, and the same mistake took stroke after stroke (bench/strokes.py: 90 strokes on images
# 1..8 against 94; with 20,000 pixels a reviewed image instead of 5,000, 131).
FOCUS_SHARE = 0.5


class QuickClassifier:
    """A one-hidden-layer perceptron over standardized pixel features, trained warm: each
    ``fit`` goes on from the weights of the last."""

    def __init__(self, features: int, classes: int, *, seed: int = 0) -> None:
        self.classes = classes
        self._generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.net = torch.nn.Sequential(
                torch.nn.Linear(features, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, classes)
            )
        self.opt = torch.optim.Adam(self.net.parameters(), LR, weight_decay=1e-4, foreach=True)
        self.mean = torch.zeros(features)
        self.std = torch.ones(features)
        self.fitted = False

    def fit(self, x: torch.Tensor, y: torch.Tensor, steps: int, focus: int = 0) -> float:
        """``steps`` Adam steps on pixels ``x`` (N, F) with classes ``y`` (N,); returns the last
        loss. The classes are not weighted by their rarity: that made the rarer class (nuclei)
        spill a rim around itself, and most strokes went to trimming rims of one or two pixels
        (bench/strokes.py)."""
        x = x.float()
        self.mean, self.std = x.mean(0), x.std(0, unbiased=False) + 1e-6
        x = (x - self.mean) / self.std
        loss = torch.tensor(float("nan"))
        size = min(BATCH, x.shape[0])
        focused = int(size * FOCUS_SHARE) if 0 < focus < x.shape[0] else 0
        for _ in range(steps):
            take = torch.randint(0, x.shape[0], (size - focused,), generator=self._generator)
            if focused:
                take = torch.cat([take, torch.randint(0, focus, (focused,), generator=self._generator)])
            # index_select, not x[take]: a millisecond of the step's five less
            loss = F.cross_entropy(self.net(x.index_select(0, take)), y[take])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        self.fitted = True
        return float(loss.detach())

    def probabilities(self, x: torch.Tensor, chunk: int = 1 << 16) -> torch.Tensor:
        """Class probabilities (N, classes) of pixels ``x`` (N, F), in chunks that stay in the
        CPU's cache, with the standardization folded into the first layer (elementwise passes
        over a whole photo's features took longer than the layers themselves)."""
        first, last = self.net[0], self.net[2]
        with torch.inference_mode():
            weight = first.weight / self.std
            bias = first.bias - weight @ self.mean
            out = torch.empty((x.shape[0], self.classes))
            for start in range(0, x.shape[0], chunk):
                hidden = torch.addmm(bias, x[start : start + chunk].float(), weight.t()).relu_()
                logits = torch.addmm(last.bias, hidden, last.weight.t())
                out[start : start + chunk] = torch.softmax(logits, dim=1)
        return out
