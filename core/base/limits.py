"""The valid range of every numeric option, one definition for the command line and the app.

``LIMITS[name].parse`` is an argparse ``type=``: a value out of range stops the command at
once with a usage error that states the range. The app's spin boxes take ``low``/``high``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    """``low <= value <= high`` (``low`` excluded when ``above``, ``high`` when ``below``)."""

    kind: type
    low: float
    high: float
    above: bool = False
    below: bool = False
    unit: str = ""

    def describe(self) -> str:
        left = f"greater than {_fmt(self.low)}" if self.above else f"at least {_fmt(self.low)}"
        right = f"less than {_fmt(self.high)}" if self.below else f"at most {_fmt(self.high)}"
        kind = "a whole number" if self.kind is int else "a number"
        return f"{kind} {left} and {right}{' ' + self.unit if self.unit else ''}"

    def check(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        low_ok = value > self.low if self.above else value >= self.low
        high_ok = value < self.high if self.below else value <= self.high
        return low_ok and high_ok

    def parse(self, text: str):
        """argparse ``type=``: the value, or ``ArgumentTypeError`` naming the range."""
        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {self.describe()}") from None
        if not self.check(value):
            raise argparse.ArgumentTypeError(f"{text} is out of range: use {self.describe()}")
        return value


def _fmt(v: float) -> str:
    return f"{v:g}"


LIMITS: dict[str, Limit] = {
    "tile": Limit(int, 32, 16384, unit="pixels"),  # at least the network's stride
    "overlap": Limit(int, 0, 1024, unit="pixels (and under half the tile)"),
    "crop": Limit(int, 32, 4096, unit="pixels"),
    "batch_size": Limit(int, 1, 512),
    "steps": Limit(int, 1, 10**8),
    "epochs": Limit(int, 1, 10**6),
    "val_every": Limit(int, 1, 10**8),
    "time_budget": Limit(float, 0, 10**7, above=True, unit="seconds"),
    "lr": Limit(float, 0, 1, above=True),
    "val_fraction": Limit(float, 0, 1, below=True),
    "size": Limit(int, 32, 8192, unit="pixels"),
    "workers": Limit(int, 0, 64),
    "seed": Limit(int, 0, 2**32 - 1),
    "max_pixels": Limit(int, 1, 2**40),
}


def check_overlap(overlap: int, tile: int | None) -> str | None:
    """Why ``overlap`` does not fit ``tile``, or ``None``."""
    if tile is not None and overlap * 2 >= tile:
        return (
            f"--overlap {overlap} must be under half of --tile {tile}; use a smaller overlap or a larger tile"
        )
    return None
