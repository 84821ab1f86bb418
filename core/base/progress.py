"""The progress event that every long-running generator in core yields, and the one way to
drive such a generator to its result."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
E = TypeVar("E")


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` units finished; ``total`` is 0 when unknown."""

    done: int
    total: int
    message: str = ""


def drain(gen: Generator[E, None, T], on_event: Callable[[E], None] | None = None) -> T:
    """Run a progress generator to its end and return its result, handing every event it yields
    to ``on_event``. An exception from ``on_event`` stops the generator there (it is closed by
    the caller or when it is collected)."""
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_event is not None:
            on_event(event)


def relay(
    gen: Generator[E, None, T], convert: Callable[[E], Progress | None]
) -> Generator[Progress, None, T]:
    """Yield ``convert(event)`` for each event of ``gen`` (nothing where it returns ``None``) and
    return ``gen``'s result: an inner job's progress as the outer job's."""
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if (outer := convert(event)) is not None:
            yield outer
