"""Class edits of a project: add, rename and recolour in memory; removal rewrites every label.

A mixin of ``core.store.project.Project`` (it uses the project's lock, labels folder and flush).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Generator

import numpy as np

from core.base.errors import ProjectError
from core.base.progress import Progress, drain
from core.io.labels import VOID, LabelClass, classes_to_data, read_label, write_label


class ClassEdits:
    """The class-list half of ``Project``."""

    def add_class(self, name: str, color: tuple[int, int, int] | None = None) -> LabelClass:
        """Append a class; its colour defaults to the next VOC colour."""
        from core.io.labels import VOC_PALETTE

        name = name.strip()
        if not name or name in {c.name for c in self.classes}:
            raise ProjectError(f"class name {name!r} is empty or taken; pick another", self.root)
        if len(self.classes) >= VOID:
            raise ProjectError("a project holds at most 255 classes", self.root)
        cls = LabelClass(
            name, tuple(color) if color else tuple(int(v) for v in VOC_PALETTE[len(self.classes)])
        )
        with self._mutex:
            self.classes.append(cls)
            self._dirty = True
        return cls

    def rename_class(self, index: int, name: str) -> None:
        name = name.strip()
        if not name or any(c.name == name for i, c in enumerate(self.classes) if i != index):
            raise ProjectError(f"class name {name!r} is empty or taken; pick another", self.root)
        with self._mutex:
            self.classes[index] = LabelClass(name, self.classes[index].color)
            self._dirty = True

    def recolor_class(self, index: int, color: tuple[int, int, int]) -> None:
        with self._mutex:
            self.classes[index] = LabelClass(self.classes[index].name, tuple(int(c) for c in color))
            self._dirty = True

    def remove_class(self, index: int, remap_to: int = VOID) -> None:
        """Remove class ``index``; its pixels become ``remap_to`` (see ``iter_remove_class``)."""
        drain(self.iter_remove_class(index, remap_to))

    def iter_remove_class(self, index: int, remap_to: int = VOID) -> Generator[Progress, None, None]:
        """Remove class ``index``, yielding progress per label; its pixels become ``remap_to``
        (a remaining class or void).

        Higher class indices shift down by one in every label. All labels are rewritten into
        a new ``labels.vN+1`` folder and the manifest switches to it in one atomic rename, so
        a crash or a cancel leaves either the old project or the new one, never a mix.
        """
        if len(self.classes) <= 1:
            raise ProjectError("cannot remove the last class", self.root)
        if not 0 <= index < len(self.classes):
            raise ProjectError(f"no class {index}", self.root)
        if remap_to != VOID and (remap_to == index or not 0 <= remap_to < len(self.classes)):
            raise ProjectError(
                f"cannot remap class {index} to {remap_to}; pick another class or void", self.root
            )
        lut = np.arange(256, dtype=np.uint8)
        lut[index] = remap_to
        lut[index + 1 : len(self.classes)] -= 1
        if remap_to != VOID and remap_to > index:
            lut[index] = remap_to - 1
        self.flush()
        with self._write_mutex:  # no save may write labels of the old class list meanwhile
            yield from self._rewrite_without(index, lut)

    def _rewrite_without(self, index: int, lut: np.ndarray) -> Generator[Progress, None, None]:
        new_classes = [c for i, c in enumerate(self.classes) if i != index]
        version = int(re.sub(r"\D", "", self.labels_dir) or 1) + 1
        while (self.root / f"labels.v{version}").exists():  # not ours to overwrite: the next free name
            version += 1
        new_dir = f"labels.v{version}"
        with self._mutex:
            data = self._manifest_data()
        # Recorded before anything is written there: after a crash, the next open knows the
        # folder as this removal's unfinished work, and only then deletes it.
        self._write_manifest({**data, "pending_labels_dir": new_dir})
        switched = False
        try:
            (self.root / new_dir).mkdir()
            for done, entry in enumerate(self.images):
                old = self.label_path(entry)
                if old.exists():
                    write_label(self.root / new_dir / old.name, lut[read_label(old)], new_classes)
                yield Progress(done + 1, len(self.images), f"Rewriting {entry.id}")
            old_dir = self.labels_dir
            with self._mutex:
                data = self._manifest_data()
            data["classes"] = classes_to_data(new_classes)
            data["labels_dir"] = new_dir
            self._write_manifest(data)
            with self._mutex:
                self.classes, self.labels_dir = new_classes, new_dir
            switched = True
        finally:
            if not switched:  # cancelled or failed: the old project stays as it was
                shutil.rmtree(self.root / new_dir, ignore_errors=True)
                with self._mutex:
                    self._write_manifest(self._manifest_data())
        shutil.rmtree(self.root / old_dir, ignore_errors=True)  # superseded: every label is in new_dir
        shutil.rmtree(self.root / "predictions", ignore_errors=True)  # kept predictions use old indices

    def _check_labels_dir(self, pending: str | None) -> None:
        """On open: delete the labels folder of a class removal that a crash interrupted (the
        manifest recorded it as such before it was written), and nothing else; refuse to open
        when the manifest's own labels folder is missing but labels exist."""
        if pending is not None and pending != self.labels_dir:
            shutil.rmtree(self.root / pending, ignore_errors=True)
            with self._mutex:
                self._write_manifest(self._manifest_data())
        if (self.root / self.labels_dir).is_dir():
            return
        others = sorted(p.name for p in self.root.glob("labels.v*") if p.is_dir())
        labelled = sum(e.state != "new" for e in self.images)
        if others or labelled:
            here = f" ({', '.join(others)} is here)" if others else ""
            raise ProjectError(
                f"the manifest names the labels folder {self.labels_dir}, which is missing{here}, and "
                f"{labelled} images have labels; restore project.json from a backup, or give the labels "
                f"folder that name (nothing was changed)",
                self.root,
            )
        (self.root / self.labels_dir).mkdir()
