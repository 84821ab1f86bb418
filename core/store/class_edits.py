"""Class edits of a project: add, rename and recolour at once; removal rewrites every label.

A mixin of ``core.store.project.Project`` (it uses the project's database, labels folder and
flush). A removal rewrites every label into a new ``labels.vN`` folder, recorded in the
database before the first label is written, and switches the project to it in one
transaction. Cancelled, it deletes its folder; cut short by a crash, it is resumed from the
labels already written (``removal_pending``, ``iter_resume_removal``). Only a folder so recorded
is ever deleted.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Generator
from pathlib import Path

import numpy as np

from core.base.errors import ProjectError
from core.base.progress import Progress, drain
from core.io.labels import VOID, LabelClass, read_label, write_label
from core.store.label_tiles import SUFFIX as TILES_SUFFIX
from core.store.label_tiles import LabelTiles

PAGE = 1000  # images read from the database at a time during a removal


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
        with self._mutex, self.db.write() as con:  # before any label that uses it is written
            con.execute("INSERT INTO classes VALUES (?, ?, ?, ?, ?)", (len(self.classes), name, *cls.color))
            self.classes.append(cls)
        return cls

    def rename_class(self, index: int, name: str) -> None:
        name = name.strip()
        if not name or any(c.name == name for i, c in enumerate(self.classes) if i != index):
            raise ProjectError(f"class name {name!r} is empty or taken; pick another", self.root)
        with self._mutex, self.db.write() as con:
            con.execute("UPDATE classes SET name = ? WHERE idx = ?", (name, index))
            self.classes[index] = LabelClass(name, self.classes[index].color)

    def recolor_class(self, index: int, color: tuple[int, int, int]) -> None:
        color = tuple(int(c) for c in color)
        with self._mutex, self.db.write() as con:
            con.execute("UPDATE classes SET r = ?, g = ?, b = ? WHERE idx = ?", (*color, index))
            self.classes[index] = LabelClass(self.classes[index].name, color)

    def remove_class(self, index: int, remap_to: int = VOID) -> None:
        """Remove class ``index``; its pixels become ``remap_to`` (see ``iter_remove_class``)."""
        drain(self.iter_remove_class(index, remap_to))

    def iter_remove_class(self, index: int, remap_to: int = VOID) -> Generator[Progress, None, None]:
        """Remove class ``index``, yielding progress per label; its pixels become ``remap_to``
        (a remaining class or void). Higher class indices shift down by one in every label."""
        if len(self.classes) <= 1:
            raise ProjectError("cannot remove the last class", self.root)
        if not 0 <= index < len(self.classes):
            raise ProjectError(f"no class {index}", self.root)
        if remap_to != VOID and (remap_to == index or not 0 <= remap_to < len(self.classes)):
            raise ProjectError(
                f"cannot remap class {index} to {remap_to}; pick another class or void", self.root
            )
        self.flush()
        version = int(re.sub(r"\D", "", self.labels_dir) or 1) + 1
        while (self.root / f"labels.v{version}").exists():  # not ours to overwrite: the next free name
            version += 1
        removal = {"index": index, "remap_to": remap_to, "labels_dir": f"labels.v{version}"}
        with self.db.write() as con:  # recorded before anything is written there
            self.db.set_meta(con, "removal", json.dumps(removal))
        yield from self._rewrite(removal, cancel_deletes=True)

    @property
    def removal_pending(self) -> dict | None:
        """The class removal a crash cut short (``iter_resume_removal`` finishes it), or ``None``."""
        text = self.db.meta("removal")
        return json.loads(text) if text else None

    def iter_resume_removal(self) -> Generator[Progress, None, None]:
        """Finish the class removal a crash cut short, keeping the labels it had written."""
        removal = self.removal_pending
        if removal is not None:
            yield from self._rewrite(removal, cancel_deletes=False)

    def _rewrite(self, removal: dict, *, cancel_deletes: bool) -> Generator[Progress, None, None]:
        index, remap_to, new_dir = removal["index"], removal["remap_to"], removal["labels_dir"]
        lut = np.arange(256, dtype=np.uint8)
        lut[index] = remap_to
        lut[index + 1 : len(self.classes)] -= 1
        if remap_to != VOID and remap_to > index:
            lut[index] = remap_to - 1
        new_classes = [c for i, c in enumerate(self.classes) if i != index]
        target = self.root / new_dir
        total = self.count()
        switched = False
        with self._write_mutex:  # no save may write labels of the old class list meanwhile
            try:
                target.mkdir(exist_ok=True)
                done = 0
                while ids := [r[0] for r in self.db.read(
                    "SELECT id FROM images ORDER BY row LIMIT ? OFFSET ?", (PAGE, done)
                )]:  # fmt: skip
                    for image_id in ids:
                        old, new = self.root / self.labels_dir / f"{image_id}.png", target / f"{image_id}.png"
                        if old.exists() and not new.exists():  # written before a crash: kept
                            write_label(new, lut[read_label(old)], new_classes)
                        tiles = LabelTiles(old.with_suffix(TILES_SUFFIX))
                        if tiles.folder.is_dir():  # a slide's label, tile by tile
                            tiles.remap(lut, LabelTiles(new.with_suffix(TILES_SUFFIX)))
                        done += 1
                        yield Progress(done, total, f"Rewriting {image_id}")
                old_dir = self.labels_dir
                with self.db.write() as con:
                    con.execute("DELETE FROM classes")
                    con.executemany(
                        "INSERT INTO classes VALUES (?, ?, ?, ?, ?)",
                        [(i, c.name, *c.color) for i, c in enumerate(new_classes)],
                    )
                    self.db.set_meta(con, "labels_dir", new_dir)
                    self.db.set_meta(con, "removal", None)
                with self._mutex:
                    self.classes, self.labels_dir = new_classes, new_dir
                switched = True
            finally:
                if not switched and cancel_deletes:  # cancelled or failed: the old project stays
                    shutil.rmtree(target, ignore_errors=True)
                    with self.db.write() as con:
                        self.db.set_meta(con, "removal", None)
        shutil.rmtree(self.root / old_dir, ignore_errors=True)  # superseded: every label is in new_dir
        shutil.rmtree(self.root / "predictions", ignore_errors=True)  # kept predictions use old indices

    def _check_labels_dir(self) -> None:
        """On open: delete a format-1 class removal's unfinished labels folder (recorded as
        such before it was written), and nothing else; refuse to open when the project's own
        labels folder is missing but labels exist."""
        pending = self.db.meta("pending_labels_dir")
        if pending is not None:
            if pending != self.labels_dir:
                shutil.rmtree(self.root / pending, ignore_errors=True)
            with self.db.write() as con:
                self.db.set_meta(con, "pending_labels_dir", None)
        check_labels_dir(self.root, self.labels_dir, self.count(("predicted", "edited", "reviewed")))
        (self.root / self.labels_dir).mkdir(exist_ok=True)


def check_labels_dir(root: Path, labels_dir: str, labelled: int) -> None:
    """Refuse a project whose labels folder is missing while labels exist (it would open with
    every label gone); a project without labels yet gets the folder made."""
    if (root / labels_dir).is_dir():
        return
    others = sorted(p.name for p in root.glob("labels.v*") if p.is_dir())
    if others or labelled:
        here = f" ({', '.join(others)} is here)" if others else ""
        raise ProjectError(
            f"the project's labels folder {labels_dir} is missing{here}, and {labelled} images have "
            "labels; restore the folder or give the labels folder that name (nothing was changed)",
            root,
        )
