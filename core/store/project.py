"""Annotation projects: a folder with a JSON manifest, one palette-PNG label per image, a lock.

```
PROJECT/
  project.json       manifest: format version, classes, images with state and history
  labels.vN/<id>.png label maps (the folder is versioned so class removals switch atomically)
  .lock              held while a program has the project open
```

Every label and the manifest are written to a temporary file and renamed into place, so a
crash at any moment leaves the last good label and manifest readable.

Nothing the user made is ever deleted or overwritten because the manifest, a setting or a
file looks wrong: clean-up removes only what it can prove is its own leftover (a labels
folder the manifest recorded as a class removal's unfinished work, the files an import that
failed had just created). A folder that holds a project's files without its manifest is
never taken for an image folder: opening it says what is missing and how to recover.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import platformdirs

from core.base.atomic import atomic_write_text
from core.base.errors import ProjectError
from core.io.files import collect_images
from core.io.images import image_size
from core.io.labels import (
    LabelClass,
    check_label_indices,
    check_label_size,
    classes_to_data,
    default_classes,
    read_label,
    write_label,
)
from core.store.class_edits import ClassEdits
from core.store.lock import ProjectLock
from core.store.manifest import FORMAT, MANIFEST, STATES, VERSION, ImageEntry, read_manifest

DEFAULT_SUBFOLDER = "fcn-gui-project"


def now() -> str:
    """The current time as an ISO-8601 UTC string."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Project(ClassEdits):
    """An open annotation project. Use ``open``/``create``/``open_path`` and ``close`` (or ``with``)."""

    root: Path
    classes: list[LabelClass] = field(default_factory=default_classes)
    images: list[ImageEntry] = field(default_factory=list)
    labels_dir: str = "labels.v1"
    checkpoint: str | None = None
    _pending: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _dirty: bool = field(default=False, repr=False)
    _lock: ProjectLock | None = field(default=None, repr=False)
    _mutex: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _write_mutex: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _saved: dict | None = field(default=None, repr=False)  # the manifest as last written or read
    _found: frozenset[str] | None = field(default=None, repr=False)  # what ``create`` found in root
    skipped: list[tuple[Path, str]] = field(default_factory=list, repr=False)  # folders not scanned, why

    # --- opening and closing -------------------------------------------------------------
    @classmethod
    def create(
        cls, root: str | Path, images: list[str | Path] = (), classes: list[LabelClass] | None = None
    ) -> Project:
        """Make a new project in ``root`` (created if missing) listing ``images``."""
        root = Path(root).absolute()
        if (root / MANIFEST).exists():
            raise ProjectError("a project already exists here; open it instead", root)
        if parts := project_parts(root):
            raise orphaned(root, parts)
        try:
            root.mkdir(parents=True, exist_ok=True)
            found = frozenset(p.name for p in root.iterdir())
        except OSError as exc:
            raise ProjectError(f"cannot create the project folder ({exc.strerror})", root) from exc
        project = cls(root=root, classes=list(classes or default_classes()), _found=found)
        project._acquire()
        (root / project.labels_dir).mkdir(exist_ok=True)
        project.add_images(images)
        project._dirty = True
        project.flush()
        return project

    @classmethod
    def open(cls, root: str | Path) -> Project:
        """Open the project whose manifest is in ``root``."""
        root = Path(root).absolute()
        if not (root / MANIFEST).exists() and (parts := project_parts(root)):
            raise orphaned(root, parts)
        manifest = read_manifest(root / MANIFEST)
        project = cls(
            root=root,
            classes=manifest.classes,
            images=manifest.images,
            labels_dir=manifest.labels_dir,
            checkpoint=manifest.checkpoint,
        )
        project._saved = manifest.data
        project._acquire()
        try:
            project._check_labels_dir(manifest.pending_labels_dir)
        except BaseException:
            project._lock.release()
            raise
        return project

    @classmethod
    def open_path(cls, path: str | Path, classes: list[LabelClass] | None = None) -> Project:
        """Open what a user picked: a project folder, or an image folder (making its project).

        An image folder's project lives in ``FOLDER/fcn-gui-project`` when the folder is
        writable, else in the per-user data folder. ``classes`` is the class list a new
        project starts with (default: the 21 VOC classes).
        """
        path = Path(path).absolute()
        if (path / MANIFEST).exists():
            return cls.open(path)
        if path.name == MANIFEST and path.is_file():
            return cls.open(path.parent)
        if not path.is_dir():
            raise ProjectError("not a folder; pick a project or image folder", path)
        if parts := project_parts(path):
            raise orphaned(path, parts)
        home = project_home_for(path)
        if (home / MANIFEST).exists() or project_parts(home):
            return cls.open(home)
        images, rejected = collect_images([path], recursive=True)
        if not images:
            raise ProjectError("holds no images (JPEG, PNG, TIFF, BMP, WebP); pick another folder", path)
        project = cls.create(home, [i.path for i in images], classes)
        project.skipped = [(p, why) for p, why in rejected if "symbolic link" in why]
        return project

    def close(self) -> None:
        """Save pending changes and release the lock."""
        try:
            self.flush()
        finally:
            if self._lock is not None:
                self._lock.release()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _acquire(self) -> None:
        self._lock = ProjectLock(self.root)
        self._lock.acquire()

    # --- images -------------------------------------------------------------------------
    def add_images(self, paths: list[str | Path]) -> list[ImageEntry]:
        """Add images (skipping ones already listed); return the new entries."""
        with self._mutex:
            return self._add_images(paths)

    def _add_images(self, paths: list[str | Path]) -> list[ImageEntry]:
        known = {self.image_path(e).resolve() for e in self.images}
        ids = {e.id for e in self.images}
        added = []
        for raw in paths:
            path = Path(raw).absolute()
            if path.resolve() in known:
                continue
            entry = ImageEntry(id=_unique_id(self._id_for(path), ids), path=self._stored_path(path))
            ids.add(entry.id)
            known.add(path.resolve())
            self.images.append(entry)
            added.append(entry)
        if added:
            self._dirty = True
        return added

    def _stored_path(self, path: Path) -> str:
        """Relative to the project (``../x.jpg`` for its own image folder), else absolute."""
        base = self.root.parent
        if base != base.parent and path.is_relative_to(base):
            return Path(os.path.relpath(path, self.root)).as_posix()
        return str(path)

    def _id_for(self, path: Path) -> str:
        try:
            rel = path.relative_to(self.root.parent).with_suffix("")
        except ValueError:
            rel = Path(path.stem)
        parts = [p for p in rel.parts if p not in ("..", ".")]
        return safe_id("_".join(parts[-3:]))

    def rename_image(self, entry: ImageEntry, wanted: str) -> bool:
        """Give ``entry`` the id ``wanted`` (made file-name safe) unless another image has it."""
        wanted = safe_id(wanted)
        with self._mutex:
            if any(e.id == wanted for e in self.images if e is not entry):
                return False
            entry.id = wanted
            self._dirty = True
            return True

    def discard(self) -> None:
        """Delete what ``create`` and later saves wrote (an import that failed or was cancelled),
        and only that: whatever the folder held before ``create`` stays. The folder itself goes
        too when nothing else is left in it."""
        if self._found is None:
            raise ProjectError("only a project just created can be discarded", self.root)
        with self._mutex:
            self._pending.clear()
            self._dirty = False
        if self._lock is not None:
            self._lock.release()
        made = ("predictions", "learning", "images")  # images: those a labelme import unpacked
        own = (MANIFEST, *(p.name for p in self.root.glob("labels.v*")), *made, ".lock", ".lock.owner")
        for path in (self.root / name for name in own if name not in self._found):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.root.rmdir()

    def image_path(self, entry: ImageEntry) -> Path:
        """Where the entry's image file is."""
        p = Path(entry.path)
        return p if p.is_absolute() else Path(os.path.normpath(self.root / p))

    def entry(self, image_id: str) -> ImageEntry:
        for e in self.images:
            if e.id == image_id:
                return e
        raise ProjectError(f"no image with id {image_id!r} in this project", self.root)

    def missing_images(self) -> list[ImageEntry]:
        """Entries whose image file is gone (moved or deleted)."""
        return [e for e in self.images if not self.image_path(e).exists()]

    def corrections(self) -> list[float]:
        """The share of pixels the user corrected on each reviewed image, oldest review first."""
        done = [e for e in self.images if e.state == "reviewed" and e.changed_fraction is not None]
        return [e.changed_fraction for e in sorted(done, key=lambda e: e.modified or "")]

    def counts(self) -> dict[str, int]:
        """Number of images in each state."""
        out = dict.fromkeys(STATES, 0)
        for e in self.images:
            out[e.state] += 1
        return out

    # --- labels -------------------------------------------------------------------------
    def label_path(self, entry: ImageEntry) -> Path:
        return self.root / self.labels_dir / f"{entry.id}.png"

    def load_label(self, entry: ImageEntry) -> np.ndarray | None:
        """The entry's label (pending edits first), or ``None`` if it has none yet.

        A label whose size differs from its image, or with indices that are not classes,
        raises ``LabelError``.
        """
        if entry.id in self._pending:
            return self._pending[entry.id]
        path = self.label_path(entry)
        if not path.exists():
            return None
        label = read_label(path, num_classes=len(self.classes))
        image = self.image_path(entry)
        if image.exists():
            check_label_size(label, image_size(image), path, image)
        return label

    def set_label(
        self, entry: ImageEntry, label: np.ndarray, state: str, *, checkpoint: str | None = None
    ) -> None:
        """Stage a new label for ``entry``; ``flush`` (or autosave) writes it."""
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}")
        check_label_indices(label, len(self.classes), self.label_path(entry))
        with self._mutex:
            self._pending[entry.id] = label
            entry.state = state
            entry.modified = now()
            if checkpoint is not None:
                entry.checkpoint = checkpoint
            self._dirty = True

    def set_state(self, entry: ImageEntry, state: str, **extra: object) -> None:
        """Change an entry's state (and fields like ``changed_fraction``) without a new label."""
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}")
        with self._mutex:
            entry.state = state
            entry.modified = now()
            for key, value in extra.items():
                setattr(entry, key, value)
            self._dirty = True

    def set_checkpoint(self, checkpoint: str | None) -> None:
        """Record the checkpoint the project's predictions come from."""
        with self._mutex:
            self.checkpoint = checkpoint
            self._dirty = True

    @property
    def has_unsaved_changes(self) -> bool:
        return self._dirty or bool(self._pending)

    def flush(self) -> list[Path]:
        """Write staged labels, then the manifest; only what changed. Returns the labels written.

        Safe to call from a worker thread while the GUI thread stages more edits: it writes a
        snapshot, and an edit staged meanwhile stays pending for the next flush.
        """
        with self._write_mutex:
            with self._mutex:
                pending = dict(self._pending)
                paths = {i: self.label_path(self.entry(i)) for i in pending}
                classes = list(self.classes)
                saved = self._saved
            if pending and saved is not None and len(classes) > len(saved["classes"]):
                # Labels may use the new classes: the manifest must list them before any label
                # does, or a crash in between leaves labels the old manifest cannot read.
                self._write_manifest({**saved, "classes": classes_to_data(classes)})
            written = []
            for image_id, label in pending.items():
                try:
                    write_label(paths[image_id], label, classes)
                except OSError as exc:
                    raise ProjectError(
                        f"cannot save the label ({exc.strerror}); free disk space or check permissions "
                        "(your edit is still in memory)",
                        paths[image_id],
                    ) from exc
                with self._mutex:
                    if self._pending.get(image_id) is label:
                        del self._pending[image_id]
                written.append(paths[image_id])
            with self._mutex:
                data = self._manifest_data() if (self._dirty or written) else None
                self._dirty = False
            if data is not None:
                self._write_manifest(data)
            return written

    def _manifest_data(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "classes": classes_to_data(self.classes),
            "labels_dir": self.labels_dir,
            "checkpoint": self.checkpoint,
            "images": [asdict(e) for e in self.images],
        }

    def _write_manifest(self, data: dict | None = None) -> None:
        data = self._manifest_data() if data is None else data
        try:
            atomic_write_text(self.root / MANIFEST, json.dumps(data, indent=1) + "\n")
            self._saved = data
        except OSError as exc:
            with self._mutex:
                self._dirty = True
            raise ProjectError(
                f"cannot save the manifest ({exc.strerror}); check disk space and permissions",
                self.root / MANIFEST,
            ) from exc

    # --- predictions kept to measure how much the user corrected ---------------------------
    def prediction_path(self, entry: ImageEntry) -> Path:
        return self.root / "predictions" / f"{entry.id}.png"

    def save_prediction(self, entry: ImageEntry, label: np.ndarray) -> None:
        """Keep the model's raw prediction (to measure the user's corrections later)."""
        write_label(self.prediction_path(entry), label, self.classes)

    def load_prediction(self, entry: ImageEntry) -> np.ndarray | None:
        path = self.prediction_path(entry)
        return read_label(path) if path.exists() else None


@contextlib.contextmanager
def building(root: str | Path, classes: list[LabelClass]) -> Iterator[Project]:
    """A new project that an import fills: saved when the block ends, discarded (nothing left
    behind) when it raises or the importing generator is closed."""
    project = Project.create(root, [], classes)
    try:
        yield project
        project.flush()
    except BaseException:
        project.discard()
        raise


def safe_id(text: str) -> str:
    """A file-name-safe id: letters, digits, ``-``, ``_`` and ``.``; never empty or hidden."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "image"
    return cleaned[:120]


def _unique_id(base: str, taken: set[str]) -> str:
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


PROJECT_PARTS = ("labels.v*", "learning", "predictions", ".lock.owner")


def project_parts(folder: Path) -> list[str]:
    """The names in ``folder`` that only an fcn-gui project holds (its labels folders, its
    learner's history, its kept predictions)."""
    if not folder.is_dir():
        return []
    return sorted({p.name for pattern in PROJECT_PARTS for p in folder.glob(pattern)})


def orphaned(folder: Path, parts: list[str]) -> ProjectError:
    """The error for a project folder whose manifest is gone: what is there, and what to do."""
    return ProjectError(
        f"holds an fcn-gui project's files ({', '.join(parts)}) but its {MANIFEST} is missing; "
        f"restore {MANIFEST} from a backup to open it (nothing here was changed), or move these "
        "folders away to start a new project",
        folder,
    )


def project_home_for(image_folder: Path) -> Path:
    """Where the project of a plain image folder lives: inside it if writable, else per user."""
    if os.access(image_folder, os.W_OK):
        return image_folder / DEFAULT_SUBFOLDER
    digest = hashlib.sha1(str(image_folder.resolve()).encode()).hexdigest()[:8]
    return Path(platformdirs.user_data_dir("fcn-gui")) / "projects" / f"{safe_id(image_folder.name)}-{digest}"
