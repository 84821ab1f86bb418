"""Background fine-tuning rounds on the project's reviewed images."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from .workers import GeneratorThread


class TrainingController(QObject):
    """Runs ``core.train.train`` on a worker thread with a snapshot of the reviewed labels.

    Signals: ``step(done, total, loss, val_miou or -1)``, ``finished(result)``, ``failed(text)``.
    Each round writes ``PROJECT/checkpoints/roundN.safetensors`` (best) and its ``.last`` sibling.
    """

    step = Signal(int, int, float, float)
    finished = Signal(object)
    failed = Signal(str)
    running_changed = Signal(bool)

    def __init__(self, session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._thread: GeneratorThread | None = None
        self.crop = 320
        self.batch_size = 4

    @property
    def running(self) -> bool:
        return self._thread is not None

    def checkpoints_dir(self) -> Path:
        return self.session.project.root / "checkpoints"

    def rounds(self) -> list[tuple[Path, str]]:
        """``(path, description)`` of each round's best checkpoint, oldest first."""
        from core.checkpoints import read_info
        from core.errors import FcnGuiError

        out = []
        folder = self.checkpoints_dir()
        paths = (
            sorted(folder.glob("round*.safetensors"), key=lambda p: p.stat().st_mtime)
            if folder.exists()
            else []
        )
        for path in paths:
            if ".last" in path.name:
                continue
            try:
                t = read_info(path).training
            except FcnGuiError:
                continue
            miou = t.get("best_val_miou")
            score = "no validation" if miou is None else f"mIoU {miou:.3f}"
            out.append(
                (
                    path,
                    f"{path.stem}: {score}, {t.get('steps', '?')} steps, {t.get('train_images', '?')} images",
                )
            )
        return out

    def start(self, steps: int, minutes: int) -> None:
        """Start a round: snapshot reviewed labels now, then train on the worker thread."""
        from core.datasets import TrainData
        from core.train import TrainConfig, train
        from core.weights import source_for_backbone

        session = self.session
        if self.running or session.project is None:
            return
        session.save_and_wait()
        n = (
            len(list(self.checkpoints_dir().glob("round*.last.safetensors"))) + 1
            if self.checkpoints_dir().exists()
            else 1
        )
        output = self.checkpoints_dir() / f"round{n}.safetensors"
        data = TrainData.from_project(
            session.project, val_fraction=0.2, snapshot_dir=self.checkpoints_dir() / f"round{n}_labels"
        )
        if session.models.checkpoint is not None and session.model_mismatch() is None:
            init = str(session.models.checkpoint)
        elif source_for_backbone("vgg16").cache_path.exists():
            init = "imagenet"
        else:
            init = "none"
        config = TrainConfig(
            output=output,
            init=init,
            steps=steps,
            time_budget_s=minutes * 60 if minutes else None,
            val_every=max(10, steps // 5),
            workers=0,
            device=session.models.device,
            batch_size=self.batch_size,
            crop=self.crop,
        )
        thread = GeneratorThread(lambda: train(config, data), "training", self)
        thread.yielded.connect(self._on_event)
        thread.result.connect(self.finished)
        thread.error.connect(self.failed)
        thread.cancelled.connect(
            lambda: self.failed.emit("Training stopped; the last state is kept for resuming.")
        )
        thread.finished.connect(lambda: self._done(thread))
        self._thread = thread
        self.running_changed.emit(True)
        thread.start()

    def _on_event(self, event) -> None:
        val = -1.0 if event.val_miou is None else float(event.val_miou)
        self.step.emit(event.done, event.total, float(event.loss), val)

    def _done(self, thread: GeneratorThread) -> None:
        if self._thread is thread:
            self._thread = None
        thread.deleteLater()
        self.running_changed.emit(False)

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.cancel()

    def wait(self) -> None:
        thread = self._thread
        if thread is not None:
            thread.wait()
            self._done(thread)
