"""Training data: (image, label) pairs from a project or a VOC folder, with joint augmentation.

Augmentation uses torchvision ``transforms.v2`` on ``tv_tensors`` so that the image and its
mask get the same random scale, crop and flip (masks resized with half-pixel-centred nearest
neighbour and padded with 255, void).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from core.base.errors import DatasetError, FcnGuiError
from core.formats.voc import dataset_classes, find_image, find_voc_root, split_ids
from core.io.images import read_image
from core.io.labels import VOID, LabelClass, check_label_size, read_class_file, read_label
from core.io.slides import open_slide
from core.store.label_tiles import LabelTiles
from core.store.project import DEFAULT_SUBFOLDER, Project, is_project, project_parts
from core.training.sampling import EXACT


@dataclass(frozen=True)
class Sample:
    """One training pair on disk. ``region`` ``(y, x, h, w)``: a slide's tile, read from the
    slide ``image`` there, its label the tile file ``label`` (class and painted marks)."""

    image: Path
    label: Path
    name: str
    region: tuple[int, int, int, int] | None = None


@dataclass
class TrainData:
    """Train and validation samples and the class list they use."""

    train: list[Sample]
    val: list[Sample]
    classes: list[LabelClass]
    description: str

    @classmethod
    def from_path(
        cls, path: str | Path, *, val_fraction: float = 0.2, seed: int = 0, snapshot_dir: Path | None = None
    ) -> TrainData:
        """A VOC-layout folder, or a project (its reviewed labels only)."""
        path = Path(path)
        if is_project(path) or is_project(path / DEFAULT_SUBFOLDER) or project_parts(path):
            with Project.open_path(path) as project:
                return cls.from_project(
                    project, val_fraction=val_fraction, seed=seed, snapshot_dir=snapshot_dir
                )
        return cls.from_voc(path, val_fraction=val_fraction, seed=seed)

    @classmethod
    def from_voc(cls, path: str | Path, *, val_fraction: float = 0.2, seed: int = 0) -> TrainData:
        root = find_voc_root(path)
        sets = root / "ImageSets" / "Segmentation"
        samples = {}
        for label in sorted((root / "SegmentationClass").glob("*.png")):
            image = find_image(root / "JPEGImages", label.stem)
            if image is not None:
                samples[label.stem] = Sample(image, label, label.stem)
        if not samples:
            raise DatasetError("no image has a label in SegmentationClass", root)
        if (sets / "train.txt").exists() and (sets / "val.txt").exists():
            train_ids = (sets / "train.txt").read_text().split()
            val_ids = (sets / "val.txt").read_text().split()
        else:
            train_ids, val_ids = split_ids(list(samples), val_fraction, seed)
        pick = lambda ids: [samples[i] for i in ids if i in samples]  # noqa: E731
        return cls(pick(train_ids), pick(val_ids), dataset_classes(root), f"VOC {root}")

    @classmethod
    def from_project(
        cls, project, *, val_fraction: float = 0.2, seed: int = 0, snapshot_dir: Path | None = None
    ) -> TrainData:
        """Reviewed images only; with ``snapshot_dir``, labels are copied there first so later
        edits in the app cannot change a running training."""
        project.flush()
        entries = project.entries(("reviewed",))
        reviewed = [e for e in entries if project.label_path(e).exists()]
        labelled = {e.id for e in reviewed}
        slides = [e for e in entries if e.id not in labelled and project.slide_tiles(e).on_disk()]
        if not reviewed and not slides:
            raise DatasetError(
                "no reviewed images to train on: mark corrected labels reviewed first", project.root
            )
        samples: dict[str, list[Sample]] = {}
        for e in reviewed:
            label = project.label_path(e)
            if snapshot_dir is not None:
                snapshot_dir.mkdir(parents=True, exist_ok=True)
                label = Path(shutil.copy2(label, snapshot_dir / label.name))
            samples[e.id] = [Sample(project.image_path(e), label, e.id)]
        for e in slides:
            samples[e.id] = _slide_samples(project, e, snapshot_dir)
        # A slide's tiles stay on one side of the split: neighbours would leak into val.
        train_ids, val_ids = split_ids(list(samples), val_fraction, seed)
        return cls(
            [x for i in train_ids for x in samples[i]],
            [x for i in val_ids for x in samples[i]],
            list(project.classes),
            f"project {project.root} ({len(reviewed) + len(slides)} reviewed)",
        )

    def with_classes(self, class_file: Path | None) -> TrainData:
        if class_file is not None:
            self.classes = read_class_file(class_file)
        return self


def _slide_samples(project: Project, entry, snapshot_dir: Path | None) -> list[Sample]:
    """A reviewed slide's tiles the user painted in, as samples read region by region."""
    tiles = project.slide_tiles(entry)
    with open_slide(project.image_path(entry)) as slide:
        height, width = slide.levels[0]
    samples = []
    for (row, col), region, _label, _painted in tiles.painted_in(height, width):
        label = tiles.path(row, col)
        if snapshot_dir is not None:
            snapshot_dir.mkdir(parents=True, exist_ok=True)
            label = Path(shutil.copy2(label, snapshot_dir / f"{entry.id}#{label.name}"))
        samples.append(Sample(project.image_path(entry), label, f"{entry.id}#{row}_{col}", region))
    return samples


def from_worker(exc: FcnGuiError) -> FcnGuiError:
    """``exc`` as the process that read the data raised it. A DataLoader worker's error reaches
    the main process with the worker's whole traceback as its message; the user needs its last
    line, the one the main process would have printed."""
    text = str(exc)
    if "Original Traceback" not in text:
        return exc
    last = text.strip().splitlines()[-1]
    clean = type(exc).__new__(type(exc))
    FcnGuiError.__init__(clean, last.split(": ", 1)[1] if ": " in last else last)
    return clean


def _read_slide_tile(sample: Sample) -> tuple[np.ndarray, np.ndarray]:
    """A slide tile sample: its region of the slide and its label (void where not painted
    counts: the tile was reviewed whole)."""
    y, x, h, w = sample.region
    data = LabelTiles(sample.label.parent).read_file(sample.label)
    if data is None:
        raise DatasetError("the tile's label cannot be read; mark the slide reviewed again", sample.label)
    with open_slide(sample.image) as slide:
        image = slide.read(0, y, x, h, w)
    return image, np.ascontiguousarray(data[0][:h, :w])


class RandomScale(v2.Transform):
    """Resize image and mask together by a random factor in ``[low, high]``."""

    def __init__(self, low: float = 0.5, high: float = 2.0) -> None:
        super().__init__()
        self.low, self.high = low, high

    def make_params(self, flat_inputs: list) -> dict:
        h, w = v2.query_size(flat_inputs)
        factor = float(torch.empty(1).uniform_(self.low, self.high))
        return {"size": [max(1, round(h * factor)), max(1, round(w * factor))]}

    def transform(self, inpt, params: dict):
        if isinstance(inpt, tv_tensors.Mask):
            return TF.resize(inpt, params["size"], interpolation=EXACT)
        return TF.resize(inpt, params["size"], antialias=True)


def train_transform(crop: int, mean, std, scale: tuple[float, float] = (0.5, 2.0)) -> v2.Compose:
    """Random scale, crop (padding with void) and horizontal flip, then normalisation."""
    return v2.Compose(
        [
            RandomScale(*scale),
            v2.RandomCrop(crop, pad_if_needed=True, fill={tv_tensors.Image: 0, tv_tensors.Mask: VOID}),
            v2.RandomHorizontalFlip(),
            v2.ToDtype({tv_tensors.Image: torch.float32, tv_tensors.Mask: torch.int64}, scale=True),
            v2.Normalize(mean, std),
        ]
    )


def eval_transform(mean, std) -> v2.Compose:
    return v2.Compose(
        [
            v2.ToDtype({tv_tensors.Image: torch.float32, tv_tensors.Mask: torch.int64}, scale=True),
            v2.Normalize(mean, std),
        ]
    )


class SegmentationDataset(Dataset):
    """Reads samples as ``(image float CxHxW, mask int64 HxW)`` after ``transform``."""

    def __init__(self, samples: list[Sample], num_classes: int, transform) -> None:
        self.samples = samples
        self.num_classes = num_classes
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
        s = self.samples[index]
        if s.region is not None:
            image, label = _read_slide_tile(s)
        else:
            image = read_image(s.image)
            label = read_label(s.label, num_classes=self.num_classes)
        check_label_size(label, (image.shape[1], image.shape[0]), s.label, s.image)
        return (
            tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1)),
            tv_tensors.Mask(torch.from_numpy(label)),
        )

    def __getitem__(self, index: int):
        image, mask = self.load(index)
        return self.transform(image, mask)
