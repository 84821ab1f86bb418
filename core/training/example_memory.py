"""Where the learner holds reviewed images: in RAM up to a budget, past it in mapped files.

The learner replays every reviewed image, so it holds them all. Decoded, a 24-megapixel
photo takes 120 MB with its label and mistakes; a folder of them would fill a laptop's
memory. Past ``budget`` bytes, an example's arrays are written once to ``folder`` and read
back memory-mapped: the operating system keeps the parts that crops touch in its page cache
and drops them under pressure instead of running out of memory. A mapped example's files are
deleted when it leaves, and all of them when the learner stops or the next one starts.
"""

from __future__ import annotations

import contextlib
import itertools
from pathlib import Path

import numpy as np
import psutil

from core.training.sampling import Example

RAM_SHARE = 0.25  # of the machine's memory, for reviewed images held in RAM
# A container's memory limit (cgroup v2, v1): psutil reports the whole machine's memory.
CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


def usable_memory(cgroup_limits: tuple[Path, ...] = CGROUP_LIMITS) -> int:
    """Bytes of memory this process may use: the machine's, or its container's limit if lower."""
    total = psutil.virtual_memory().total
    for path in cgroup_limits:
        with contextlib.suppress(OSError, ValueError):
            total = min(total, int(path.read_text().strip()))  # "max": no limit, ValueError
    return total


def default_budget() -> int:
    """Bytes of reviewed images to hold in RAM: a quarter of the memory this process may use."""
    return int(usable_memory() * RAM_SHARE)


def example_bytes(example: Example) -> int:
    """Bytes of an example's image, label and mistakes."""
    arrays = (example.image, example.label, example.wrong)
    return sum(a.nbytes for a in arrays if a is not None)


class ExampleMemory:
    """The learner's examples by id: in RAM while they fit ``budget`` bytes, the rest mapped
    from files in ``folder``. ``folder`` None: everything stays in RAM. Not thread-safe: the
    learner calls it under its lock."""

    def __init__(self, folder: str | Path | None, budget: int | None = None) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.budget = default_budget() if budget is None else budget
        self._examples: dict[str, Example] = {}
        self._names = itertools.count()
        self.delete_files()  # left by a learner that did not stop cleanly

    def values(self) -> list[Example]:
        return list(self._examples.values())

    @property
    def ram_bytes(self) -> int:
        return sum(example_bytes(e) for e in self._examples.values() if not _files(e))

    def mapped(self, image_id: str) -> bool:
        return image_id in self._examples and bool(_files(self._examples[image_id]))

    def keep(self, example: Example) -> Example:
        """Hold ``example`` (replacing one with its id), its arrays mapped from files if RAM is
        past the budget with it."""
        self.forget(example.id)
        if self.folder is not None and self.ram_bytes + example_bytes(example) > self.budget:
            self._map(example)
        self._examples[example.id] = example
        return example

    def _map(self, example: Example) -> None:
        stem = f"{next(self._names):06d}"  # a new name each time: a mapped file may still be open
        arrays = {n: a for n in ("image", "label", "wrong") if (a := getattr(example, n)) is not None}
        paths = [self.folder / f"{stem}-{n}.npy" for n in arrays]
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for path, array in zip(paths, arrays.values(), strict=True):
                np.save(path, array)
            mapped = {n: np.load(path, mmap_mode="r") for n, path in zip(arrays, paths, strict=True)}
        except OSError:  # a full or read-only disk: hold it in RAM rather than stop learning
            _delete(paths)
            return
        for name, array in mapped.items():
            setattr(example, name, array)

    def forget(self, image_id: str) -> None:
        """An example left: its RAM no longer counts, its files go."""
        example = self._examples.pop(image_id, None)
        if example is not None:
            _delete(_files(example))

    def delete_files(self) -> None:
        """Delete every file in ``folder`` (examples already mapped stay readable on POSIX)."""
        if self.folder is not None and self.folder.is_dir():
            _delete(self.folder.glob("*.npy"))


def _files(example: Example) -> list[Path]:
    """The files an example's arrays are mapped from (none when they are in RAM)."""
    arrays = (example.image, example.label, example.wrong)
    return [Path(a.filename) for a in arrays if isinstance(a, np.memmap) and a.filename]


def _delete(paths) -> None:
    for path in paths:
        with contextlib.suppress(OSError):  # Windows keeps a file that is still mapped
            Path(path).unlink(missing_ok=True)
