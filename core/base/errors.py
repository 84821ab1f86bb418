"""Exceptions raised at the edges: each message names the file and what to do."""

from __future__ import annotations

from pathlib import Path


class FcnGuiError(Exception):
    """Base of every error the user can act on; ``str(err)`` is one readable line."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        super().__init__(f"{path}: {message}" if path is not None else message)


class ImageReadError(FcnGuiError):
    """An image file is missing, damaged or not an image."""


class ImageTooLargeError(ImageReadError):
    """An image has more pixels than the configured limit (decompression-bomb guard)."""


class LabelError(FcnGuiError):
    """A label map is malformed, has unknown colours, or does not fit its image."""


class CheckpointError(FcnGuiError):
    """A checkpoint is unreadable or does not fit the model that was asked for."""


class WeightsNotAvailableError(FcnGuiError):
    """Pretrained weights are not in the cache and downloading was not allowed."""


class DeviceError(FcnGuiError):
    """The requested compute device does not exist on this machine."""


class ProjectError(FcnGuiError):
    """An annotation project cannot be opened, saved or changed as asked."""


class DatasetError(FcnGuiError):
    """A VOC dataset is malformed or cannot be written."""


class TrainingError(FcnGuiError):
    """Training cannot go on (diverged, nothing to train on, bad settings)."""
