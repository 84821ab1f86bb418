"""The continuous learner's models on disk, bounded: the best few adopted ones and the latest.

```
PROJECT/learning/
  adopted-0007.safetensors   models that replaced the one in use (the best KEEP by score,
                             and always the newest), each with its score in the metadata
  latest.safetensors         the learner's weights when it last stopped or rested
  latest.optim.pt            its optimizer state (only the latest has one)
  state.json                 which reviewed images are held out, and how many have arrived
  cache/                     reviewed images the learner holds mapped from disk while it runs
                             (``core.training.example_memory``), deleted when it stops
```

Everything is written atomically; a crash leaves the previous files.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.base.atomic import atomic_path, atomic_write_text
from core.base.errors import FcnGuiError
from core.model.info import read_info

if TYPE_CHECKING:
    from core.model.checkpoints import SegmentationModel

KEEP = 3
_ADOPTED = re.compile(r"adopted-(\d+)\.safetensors$")


@dataclass(frozen=True)
class HistoryEntry:
    """One kept adopted model."""

    path: Path
    number: int
    score: float | None
    heldout: int
    step: int

    def describe(self) -> str:
        score = (
            "no held-out score" if self.score is None else f"mIoU {self.score:.3f} on {self.heldout} held out"
        )
        return f"model {self.number}: {score}, step {self.step}"


class LearningHistory:
    """Adopted and latest models of one project's learner, in ``folder``."""

    def __init__(self, folder: str | Path, keep: int = KEEP) -> None:
        self.folder = Path(folder)
        self.keep = keep

    @classmethod
    def of(cls, project_root: str | Path) -> LearningHistory:
        """The history of the project in ``project_root``: its ``learning`` folder."""
        return cls(Path(project_root) / "learning")

    @property
    def latest_path(self) -> Path:
        return self.folder / "latest.safetensors"

    @property
    def optimizer_path(self) -> Path:
        return self.folder / "latest.optim.pt"

    @property
    def cache_folder(self) -> Path:
        return self.folder / "cache"

    @property
    def state_path(self) -> Path:
        return self.folder / "state.json"

    def entries(self) -> list[HistoryEntry]:
        """Kept adopted models, oldest first (unreadable files are skipped)."""
        out = []
        for path in self.folder.glob("adopted-*.safetensors"):
            match = _ADOPTED.search(path.name)
            if not match:
                continue
            try:
                t = read_info(path).training
            except FcnGuiError:
                continue
            out.append(
                HistoryEntry(
                    path, int(match.group(1)), t.get("heldout_miou"), t.get("heldout", 0), t.get("steps", 0)
                )
            )
        return sorted(out, key=lambda e: e.number)

    def save_adopted(self, model: SegmentationModel, score: float | None, heldout: int, step: int) -> Path:
        """Write an adopted model, then delete all but the best ``keep`` and the newest."""
        self.folder.mkdir(parents=True, exist_ok=True)
        entries = self.entries()
        number = (entries[-1].number + 1) if entries else 1
        info = copy.deepcopy(model.info)
        info.trained = True
        info.source = f"learnt from corrections (model {number})"
        info.training = {**info.training, "heldout_miou": score, "heldout": heldout, "steps": step}
        path = self.folder / f"adopted-{number:04d}.safetensors"
        from core.model.checkpoints import SegmentationModel, save_checkpoint  # torch: only where weights are

        save_checkpoint(path, SegmentationModel(model.module, info))
        self.prune()
        return path

    def prune(self) -> None:
        entries = self.entries()
        if len(entries) <= self.keep:
            return
        # The newest (normally the model in use) always stays; the rest are ranked by score.
        ranked = sorted(entries[:-1], key=lambda e: (e.score is not None, e.score or 0.0, e.number))
        for e in ranked[: len(entries) - self.keep]:
            e.path.unlink(missing_ok=True)

    def save_latest(self, model: SegmentationModel, optimizer_state: dict, state: dict) -> None:
        """The learner's weights, optimizer state and held-out split, to resume later."""
        import torch

        from core.model.checkpoints import save_checkpoint

        self.folder.mkdir(parents=True, exist_ok=True)
        save_checkpoint(self.latest_path, model)
        with atomic_path(self.optimizer_path) as tmp:
            torch.save(optimizer_state, tmp)
        atomic_write_text(self.state_path, json.dumps(state, indent=1) + "\n")

    def load_latest(self, num_classes: int) -> tuple[SegmentationModel, dict | None, dict] | None:
        """``(model, optimizer state or None, state)`` saved by ``save_latest``, or ``None``.

        A latest model for another class count (classes were edited since) is ignored.
        """
        if not self.latest_path.exists():
            return None
        from core.model.checkpoints import load_checkpoint
        from core.model.tensor_files import load_tensor_file

        try:
            model = load_checkpoint(self.latest_path, num_classes=num_classes)
            state = json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
            optim = load_tensor_file(self.optimizer_path) if self.optimizer_path.exists() else None
        except (FcnGuiError, OSError, ValueError, RuntimeError):
            return None
        return model, optim, state

    def load_state(self) -> dict:
        """The held-out split ``save_latest`` kept (empty if none), even when its weights are not used."""
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def disk_bytes(self) -> int:
        """Bytes the history uses on disk."""
        if not self.folder.exists():
            return 0
        return sum(p.stat().st_size for p in self.folder.iterdir() if p.is_file())
