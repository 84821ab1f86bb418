"""Loads the model off the GUI thread and owns the predictor the prediction jobs use."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from core.base.choices import SCRATCH_VARIANT
from core.io.labels import LabelClass

from .runner import Runner


class ModelManager(QObject):
    """Holds the ``Predictor`` in use; ``model`` is its model (the only copy the app keeps).

    ``load`` builds or reads the model on a worker thread (importing torch there too, so the
    window appears first) and emits ``ready(info, device_name)`` or ``failed(message)``.
    """

    ready = Signal(object, str)
    failed = Signal(str)
    loading = Signal(str)

    def __init__(self, runner: Runner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._runner = runner
        self.predictor = None
        self.checkpoint: Path | None = None
        self.device = "auto"
        self.tile: int | None = None
        self.pending = False  # a model is being built or read (``ready`` or ``failed`` follows)

    @property
    def model(self):
        """The model in use: the predictor's own copy (in its device's precision)."""
        return None if self.predictor is None else self.predictor.model

    @property
    def info(self):
        return None if self.predictor is None else self.predictor.model.info

    def load(
        self, checkpoint: Path | None, classes: list[LabelClass], variant: str = SCRATCH_VARIANT
    ) -> None:
        """Load ``checkpoint``, or build an untrained ``variant`` for ``classes``."""

        def build():
            from core.model.checkpoints import ModelInfo, load_checkpoint, new_model

            if checkpoint is not None:
                return load_checkpoint(checkpoint)
            return new_model(ModelInfo(variant=variant, classes=list(classes)))

        self._start(
            build,
            checkpoint,
            f"Loading {checkpoint.name if checkpoint else 'an untrained ' + variant.upper()}…",
        )

    def load_pretrained(self, backbone: str, classes: list[LabelClass]) -> None:
        """Build a model from torchvision's downloaded weights for ``backbone``."""

        def build():
            from core.model.checkpoints import ModelInfo, new_model

            init = "imagenet" if backbone == "vgg16" else "voc"
            return new_model(ModelInfo(variant="fcn8s", backbone=backbone, classes=list(classes)), init=init)

        self._start(build, None, f"Loading pretrained {backbone}…")

    def use(self, model, checkpoint: Path | None) -> None:
        """Predict with ``model`` (the predictor takes its own copy), saved at ``checkpoint``."""
        self._start(lambda: model, checkpoint, "Switching to the improved model…")

    def _start(self, build, checkpoint: Path | None, text: str) -> None:
        device, tile = self.device, self.tile

        def work():
            from core.inference.predictor import Predictor

            return Predictor(build(), device=device, tile=tile), checkpoint

        self.pending = True
        self.loading.emit(text)
        self._runner.call(work, "model-loader", on_result=self._on_loaded, on_error=self._on_failed)

    def _on_loaded(self, value) -> None:
        self.predictor, self.checkpoint = value
        self.pending = False
        self.ready.emit(self.info, self.predictor.device_name)

    def _on_failed(self, message: str) -> None:
        self.pending = False
        self.failed.emit(message)

    def set_tile(self, tile: int | None) -> None:
        self.tile = tile
        if self.predictor is not None:
            self.predictor.tile = tile
