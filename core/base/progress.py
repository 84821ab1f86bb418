"""The progress event that every long-running generator in core yields."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` units finished; ``total`` is 0 when unknown."""

    done: int
    total: int
    message: str = ""


def drain(gen: Generator[object, None, T]) -> T:
    """Run a progress generator to its end and return its result."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
