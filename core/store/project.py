"""Annotation projects: a folder with a database, one palette-PNG label per image, a lock.

```
PROJECT/
  project.db             images (one row each), classes, settings (core.store.database)
  project.json.v1-backup the manifest of a format-1 project, kept when it was migrated
  labels.vN/<id>.png     label maps (the folder is versioned so class removals switch atomically)
  predictions/<id>.png   the model's predictions, to measure the user's corrections against
  painted/<id>.png       which pixels of the label the user set (one bit each; core.store.painted)
  backups/               rolling copies of project.db, one taken at each open
  .lock                  held while a program has the project open
```

Edits are staged in memory (``set_label``, ``set_state``) and written by ``flush``: each label
to a temporary file renamed into place, then the rows that point to them in one short
transaction, so ``kill -9`` at any moment leaves a project that opens with every committed
change and no row pointing at a half-written label. No code path rewrites the whole project:
a save costs the same at 100 images and at 100,000, and every lookup is an indexed query.

Nothing the user made is ever deleted or overwritten because the database, a setting or a
file looks wrong: clean-up removes only what it can prove is its own leftover (a labels
folder recorded as a class removal's unfinished work, the files an import that failed had
just created). A folder that holds a project's files without its database or manifest is
never taken for an image folder: opening it says what is missing and how to recover.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import platformdirs

from core.base.errors import ProjectError
from core.base.progress import drain
from core.io.images import image_size
from core.io.labels import (
    LabelClass,
    check_label_indices,
    check_label_size,
    default_classes,
    read_label,
    write_label,
)
from core.store.class_edits import ClassEdits, check_labels_dir
from core.store.database import DATABASE, ProjectDatabase, backups
from core.store.label_tiles import SUFFIX as TILES_SUFFIX
from core.store.label_tiles import LabelTiles
from core.store.lock import ProjectLock
from core.store.manifest import MANIFEST, STATES, ImageEntry, read_manifest
from core.store.painted import FOLDER as PAINTED_FOLDER
from core.store.painted import read_painted, write_painted

DEFAULT_SUBFOLDER = "fcn-gui-project"
MIGRATED = "project.json.v1-backup"
COLUMNS = tuple(f.name for f in dataclasses.fields(ImageEntry))  # an image's row
ORDERS = {
    "order": "row",
    "name": "id",
    "state": "CASE state WHEN 'new' THEN 0 WHEN 'predicted' THEN 1 WHEN 'edited' THEN 2 ELSE 3 END, row",
    "least confident": "confidence IS NULL, confidence, row",
}
PREDICT = {
    "stale": "(state = 'new' OR (state = 'predicted' AND IFNULL(checkpoint, '') != ?))",
    "unlabelled": "state IN ('new', 'predicted')",
    "new": "state = 'new'",
}


def now() -> str:
    """The current time as an ISO-8601 UTC string."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class _Staged:
    """An image's edits not yet on disk: its new label (or none) and changed fields."""

    fields: dict = field(default_factory=dict)
    label: np.ndarray | None = None
    painted: np.ndarray | None = None  # the pixels of ``label`` the user set
    base_state: str = "new"  # its state on disk, to keep the counts right meanwhile


@dataclass
class Project(ClassEdits):
    """An open annotation project. Use ``open``/``create``/``open_path`` and ``close`` (or ``with``)."""

    root: Path
    db: ProjectDatabase
    classes: list[LabelClass] = field(default_factory=default_classes)
    labels_dir: str = "labels.v1"
    checkpoint: str | None = None
    skipped: list[tuple[Path, str]] = field(default_factory=list, repr=False)  # folders not scanned, why
    _pending: dict[str, _Staged] = field(default_factory=dict, repr=False)
    _lock: ProjectLock | None = field(default=None, repr=False)
    _mutex: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _write_mutex: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _found: frozenset[str] | None = field(default=None, repr=False)  # what ``create`` found in root
    _disk_counts: dict[str, int] | None = field(default=None, repr=False)

    # --- opening and closing -------------------------------------------------------------
    @classmethod
    def create(
        cls, root: str | Path, images: list[str | Path] = (), classes: list[LabelClass] | None = None
    ) -> Project:
        """Make a new project in ``root`` (created if missing) listing ``images``."""
        root = Path(root).absolute()
        if (root / DATABASE).exists() or (root / MANIFEST).exists():
            raise ProjectError("a project already exists here; open it instead", root)
        if parts := project_parts(root):
            raise orphaned(root, parts)
        try:
            root.mkdir(parents=True, exist_ok=True)
            found = frozenset(p.name for p in root.iterdir())
        except OSError as exc:
            raise ProjectError(f"cannot create the project folder ({exc.strerror})", root) from exc
        lock = ProjectLock(root)
        lock.acquire()
        try:
            classes = list(classes or default_classes())
            db = ProjectDatabase.create(
                root / DATABASE, {"labels_dir": "labels.v1"}, lambda con: _insert_classes(con, classes)
            )
            (root / "labels.v1").mkdir(exist_ok=True)
        except BaseException:
            lock.release()
            raise
        project = cls(root=root, db=db, classes=classes, _lock=lock, _found=found)
        project.add_images(images)
        return project

    @classmethod
    def open(cls, root: str | Path) -> Project:
        """Open the project in ``root`` (a format-1 ``project.json`` is migrated, and kept)."""
        root = Path(root).absolute()
        has_db, has_manifest = (root / DATABASE).exists(), (root / MANIFEST).exists()
        if not has_db and not has_manifest:
            if parts := project_parts(root):
                raise orphaned(root, parts)
            raise ProjectError(f"no project here ({DATABASE} is missing)", root)
        lock = ProjectLock(root)
        lock.acquire()
        try:
            if not has_db:
                _migrate(root)
            elif has_manifest:  # migrated, then stopped before the manifest was put aside
                (root / MANIFEST).replace(root / MIGRATED)
            db = ProjectDatabase.open(root / DATABASE)
            project = cls(root=root, db=db, _lock=lock)
            project._load_settings()
            project._check_labels_dir()
            db.backup()
        except BaseException:
            lock.release()
            raise
        return project

    @classmethod
    def open_path(
        cls, path: str | Path, classes: list[LabelClass] | None = None, *, scan: bool = True
    ) -> Project:
        """Open what a user picked: a project folder, or an image folder (making its project).

        An image folder's project lives in ``FOLDER/fcn-gui-project`` when the folder is
        writable, else in the per-user data folder. ``classes`` is the class list a new
        project starts with (default: the 21 VOC classes). With ``scan`` the folder's images
        are listed now; without, a new project starts empty and the caller scans it
        (``core.store.scan``, on a worker, so that a folder of 100,000 images shows at once).
        """
        path = Path(path).absolute()
        if is_project(path):
            return cls.open(path)
        if path.name in (MANIFEST, DATABASE) and path.is_file():
            return cls.open(path.parent)
        if not path.is_dir():
            raise ProjectError("not a folder; pick a project or image folder", path)
        if parts := project_parts(path):
            raise orphaned(path, parts)
        home = project_home_for(path)
        if is_project(home) or project_parts(home):
            return cls.open(home)
        project = cls.create(home, [], classes)
        with project.db.write() as con:  # the folder a rescan looks at again
            project.db.set_meta(con, "folder", str(path))
        if not scan:
            return project
        from core.store.scan import scan_folder  # which imports this module

        report = drain(scan_folder(project, path))
        if report.added == 0:
            project.discard()
            raise ProjectError("holds no images (JPEG, PNG, TIFF, BMP, WebP); pick another folder", path)
        project.skipped = report.skipped
        return project

    @property
    def folder(self) -> Path | None:
        """The image folder this project lists (a rescan adds what appeared there), if any."""
        if (recorded := self.db.meta("folder")) is not None:
            return Path(recorded)
        if self.root.name == DEFAULT_SUBFOLDER and is_project(self.root):  # a format-1 project
            return self.root.parent
        return None

    def close(self) -> None:
        """Save pending changes, close the database and release the lock."""
        try:
            self.flush()
        finally:
            self.db.close()
            if self._lock is not None:
                self._lock.release()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _load_settings(self) -> None:
        rows = self.db.read("SELECT idx, name, r, g, b FROM classes ORDER BY idx")
        if not rows or [r[0] for r in rows] != list(range(len(rows))):
            raise ProjectError(
                "the project database holds no class list, or one with gaps; restore it from backups/",
                self.root / DATABASE,
            )
        self.classes = [LabelClass(name, (r, g, b)) for _, name, r, g, b in rows]
        self.labels_dir = self.db.meta("labels_dir") or "labels.v1"
        self.checkpoint = self.db.meta("checkpoint")

    def discard(self) -> None:
        """Delete what ``create`` and later saves wrote (an import that failed or was cancelled),
        and only that: whatever the folder held before ``create`` stays. The folder itself goes
        too when nothing else is left in it."""
        if self._found is None:
            raise ProjectError("only a project just created can be discarded", self.root)
        with self._mutex:
            self._pending.clear()
        self.db.close()
        if self._lock is not None:
            self._lock.release()
        made = ("predictions", "learning", "images", "backups")  # images: those a labelme import unpacked
        own = (DATABASE, f"{DATABASE}-wal", f"{DATABASE}-shm", *(p.name for p in self.root.glob("labels.v*")),
               *made, ".lock", ".lock.owner")  # fmt: skip
        for path in (self.root / name for name in own if name not in self._found):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.root.rmdir()

    # --- images -------------------------------------------------------------------------
    def add_images(
        self, paths: list[str | Path], *, taken: set[str] | None = None, ids: list[str] | None = None
    ) -> list[ImageEntry]:
        """Add the images not listed yet (by path), in one transaction; return their entries.

        ``taken``: the ids in use, kept up to date by a caller that adds many batches (a scan);
        without it they are read from the database. ``ids``: the id each image should have
        (an import's names; numbered when taken), else one made from its path.
        """
        # Not under the project's mutex: staging an edit on the GUI thread must not wait for
        # this transaction (a scan's batch, its commit synced to disk).
        stored = [self._stored_path(os.path.abspath(p)) for p in paths]
        listed = self._listed(stored)
        if taken is None:
            taken = {r[0] for r in self.db.read("SELECT id FROM images")}
        entries = []
        for i, name in enumerate(stored):
            if name in listed:
                continue
            wanted = safe_id(ids[i]) if ids is not None else self._id_for(name)
            entry = ImageEntry(id=_unique_id(wanted, taken), path=name)
            taken.add(entry.id)
            listed.add(name)
            entries.append(entry)
        if entries:
            rows = [(e.id, e.path) for e in entries]
            with self.db.write() as con:
                con.executemany("INSERT INTO images (id, path) VALUES (?, ?)", rows)
            with self._mutex:
                if self._disk_counts is not None:
                    self._disk_counts["new"] += len(entries)
        return entries

    def _listed(self, stored: list[str]) -> set[str]:
        """Which of these stored paths the project lists already (indexed, a chunk at a time)."""
        found: set[str] = set()
        for start in range(0, len(stored), 500):
            chunk = stored[start : start + 500]
            sql = f"SELECT path FROM images WHERE path IN ({','.join('?' * len(chunk))})"
            found.update(r[0] for r in self.db.read(sql, chunk))
        return found

    def _stored_path(self, path: str) -> str:
        """``path`` (absolute, normalised) as the project stores it: relative to the project
        (``../x.jpg`` for its own image folder), else absolute. String operations: a scan
        stores 100,000 of these, and ``pathlib`` would cost it seconds."""
        base = os.path.dirname(str(self.root))
        if base != os.path.dirname(base) and path.startswith(base + os.sep):
            return "../" + path[len(base) + 1 :].replace(os.sep, "/")
        return path

    @staticmethod
    def _id_for(stored: str) -> str:
        """An id from a stored path: its last three parts below the project's folder, or the
        file's stem for an image elsewhere."""
        if stored.startswith("../"):
            parts = os.path.splitext(stored[3:])[0].split("/")
        else:
            parts = [os.path.splitext(os.path.basename(stored))[0]]
        return safe_id("_".join(p for p in parts[-3:] if p not in ("..", ".")))

    def rename_image(self, entry: ImageEntry, wanted: str) -> bool:
        """Give ``entry`` the id ``wanted`` (made file-name safe) unless another image has it."""
        wanted = safe_id(wanted)
        if wanted == entry.id:
            return True
        with self._mutex:
            if self.db.value("SELECT 1 FROM images WHERE id = ?", (wanted,)) or entry.id in self._pending:
                return False
            with self.db.write() as con:
                con.execute("UPDATE images SET id = ? WHERE id = ?", (wanted, entry.id))
            entry.id = wanted
            return True

    def image_path(self, entry: ImageEntry) -> Path:
        """Where the entry's image file is."""
        return Path(self.file_of(entry.path))

    def file_of(self, stored: str) -> str:
        """The file a stored path names (absolute, normalised)."""
        return stored if os.path.isabs(stored) else os.path.normpath(os.path.join(self.root, stored))

    def paths_after(self, row: int, limit: int) -> list[tuple[int, str, str, bool]]:
        """``(row, id, stored path, missing)`` of up to ``limit`` images after row number
        ``row``, in order: a scan's page, read by the primary key."""
        sql = "SELECT row, id, path, missing FROM images WHERE row > ? ORDER BY row LIMIT ?"
        return [(r, i, p, bool(m)) for r, i, p, m in self.db.read(sql, (row, limit))]

    def find(self, image_id: str) -> ImageEntry | None:
        """The entry of ``image_id`` with its staged edits, or ``None``."""
        rows = self.db.read(f"SELECT {', '.join(COLUMNS)} FROM images WHERE id = ?", (image_id,))
        return self._merged(rows[0]) if rows else None

    def entry(self, image_id: str) -> ImageEntry:
        """The entry of ``image_id`` with its staged edits; ``ProjectError`` if there is none."""
        found = self.find(image_id)
        if found is None:
            raise ProjectError(f"no image with id {image_id!r} in this project", self.root)
        return found

    def _merged(self, row: tuple) -> ImageEntry:
        entry = ImageEntry(**dict(zip(COLUMNS, row, strict=True)))
        entry.missing = bool(entry.missing)
        staged = self._pending.get(entry.id)
        return dataclasses.replace(entry, **staged.fields) if staged is not None else entry

    @property
    def images(self) -> list[ImageEntry]:
        """Every entry, in the project's order. Reads them all: for scripts, exports and small
        projects; the app asks the indexed queries below."""
        return self.entries()

    def entries(
        self, states: tuple[str, ...] | None = None, *, search: str = "", order: str = "order",
        after_row: int = 0, limit: int | None = None,
    ) -> list[ImageEntry]:  # fmt: skip
        """Entries in ``states`` whose id contains ``search``, sorted by ``order`` (``ORDERS``).
        Paging, in the project's order only: ``limit`` entries after row number ``after_row``
        (the last one's ``row``), so a page costs the same at the end of a project as at its
        start."""
        where, args = self._where(states, search)
        if after_row:
            if order != "order":
                raise ValueError("pages follow the project's order")
            where += (" AND " if where else " WHERE ") + "row > ?"
            args.append(int(after_row))
        page = f" LIMIT {int(limit)}" if limit is not None else ""
        sql = f"SELECT {', '.join(COLUMNS)} FROM images{where} ORDER BY {ORDERS[order]}{page}"
        return [self._merged(row) for row in self.db.read(sql, args)]

    def between(self, first: int, last: int) -> list[ImageEntry]:
        """The entries whose row number (their place in the project's order) is in
        ``[first, last]``: a page of the list, by the primary key."""
        sql = f"SELECT {', '.join(COLUMNS)} FROM images WHERE row BETWEEN ? AND ? ORDER BY row"
        return [self._merged(row) for row in self.db.read(sql, (first, last))]

    def last_row(self) -> int:
        """The highest row number (rows are numbered 1, 2, ... as images are added)."""
        return int(self.db.value("SELECT COALESCE(MAX(row), 0) FROM images"))

    def sort_keys(
        self, states: tuple[str, ...] | None = None, *, search: str = "", order: str = "order"
    ) -> list[tuple[tuple, str]]:
        """``(sort key, id)`` of ``entries(states, search=, order=)``, in that order: what a
        filtered list keeps to place an image whose state changes (``sort_key``)."""
        where, args = self._where(states, search)
        sql = f"SELECT id, row, state, confidence FROM images{where} ORDER BY {ORDERS[order]}"
        with self._mutex:  # staged states and confidences place an image as if written
            staged = {i: dict(s.fields) for i, s in self._pending.items()}
        rows = self.db.read(sql, args)  # after: a save between the two is seen in one or both
        if not staged:
            return [(sort_key(order, *row), row[0]) for row in rows]
        keyed = []
        for image_id, row, state, confidence in rows:
            fields = staged.get(image_id, {})
            state, confidence = fields.get("state", state), fields.get("confidence", confidence)
            keyed.append((sort_key(order, image_id, row, state, confidence), image_id))
        keyed.sort()
        return keyed

    def set_size(self, entry: ImageEntry, width: int, height: int) -> None:
        """Record the image's size (read with its header, when a thumbnail is made)."""
        self._stage(entry, {"width": int(width), "height": int(height)})

    def ids(
        self, states: tuple[str, ...] | None = None, *, search: str = "", order: str = "order"
    ) -> list[str]:
        """The ids of ``entries(states, search=, order=)``, in one query (the list's rows)."""
        where, args = self._where(states, search)
        return [r[0] for r in self.db.read(f"SELECT id FROM images{where} ORDER BY {ORDERS[order]}", args)]

    def _where(self, states: tuple[str, ...] | None, search: str) -> tuple[str, list]:
        """The filter as SQL. A staged state change counts before it is written: images staged
        into or out of ``states`` are added or left out by id."""
        clauses, args = [], []
        if states is not None:
            with self._mutex:
                moved = {i: s.fields["state"] for i, s in self._pending.items()
                         if s.fields.get("state", s.base_state) != s.base_state}  # fmt: skip
            into = [i for i, state in moved.items() if state in states]
            out = [i for i, state in moved.items() if state not in states]
            clause = f"state IN ({','.join('?' * len(states))})"
            args += list(states)
            if out:
                clause = f"({clause} AND id NOT IN ({','.join('?' * len(out))}))"
                args += out
            if into:
                clause = f"({clause} OR id IN ({','.join('?' * len(into))}))"
                args += into
            clauses.append(clause)
        if search:
            clauses.append("instr(lower(id), ?) > 0")
            args.append(search.lower())
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), args

    def count(self, states: tuple[str, ...] | None = None, *, search: str = "", missing: bool = False) -> int:
        """How many entries ``entries(states, search=)`` holds (``missing``: of those whose file
        was gone at the last scan)."""
        if states is None and not search and not missing:
            return int(self.db.value("SELECT COUNT(*) FROM images"))
        where, args = self._where(states, search)
        if missing:
            where += (" AND " if where else " WHERE ") + "missing = 1"
        return int(self.db.value(f"SELECT COUNT(*) FROM images{where}", args))

    def mark_missing(self, changed: dict[str, bool]) -> None:
        """Record which images' files are gone (``True``) or back (``False``), in one transaction."""
        rows = [(int(gone), image_id) for image_id, gone in changed.items()]
        with self.db.write() as con:
            con.executemany("UPDATE images SET missing = ? WHERE id = ?", rows)

    def counts(self) -> dict[str, int]:
        """Number of images in each state (staged changes included)."""
        with self._mutex:
            if self._disk_counts is None:
                rows = self.db.read("SELECT state, COUNT(*) FROM images GROUP BY state")
                self._disk_counts = dict.fromkeys(STATES, 0) | dict(rows)
            out = dict(self._disk_counts)
            for staged in self._pending.values():
                out[staged.base_state] -= 1
                out[staged.fields.get("state", staged.base_state)] += 1
        return out

    def neighbour(self, image_id: str | None, step: int, states: tuple[str, ...] | None = None) -> str | None:
        """The id ``step`` (1 or -1) after/before ``image_id`` in the project's order among
        ``states`` (the first or last when ``image_id`` is ``None``)."""
        where, args = self._where(states, "")
        row = self.db.value("SELECT row FROM images WHERE id = ?", (image_id,)) if image_id else None
        if row is not None:
            where += (" AND " if where else " WHERE ") + f"row {'>' if step > 0 else '<'} ?"
            args.append(row)
        direction = "" if step > 0 else " DESC"
        return self.db.value(f"SELECT id FROM images{where} ORDER BY row{direction} LIMIT 1", args)

    def next_to_predict(
        self, kind: str, checkpoint: str | None, after: int, before: int | None = None
    ) -> tuple[int, str] | None:
        """``(row, id)`` of the first image after row ``after`` (and before ``before``) whose file
        is there and that ``kind`` wants predicted: ``stale`` (new, or predicted by another model
        than ``checkpoint``), ``unlabelled`` (new or predicted) or ``new``."""
        condition = PREDICT[kind]
        bound, args = "row > ?", [after]
        if before is not None:
            bound, args = "row > ? AND row < ?", [after, before]
        if kind == "stale":
            args.insert(0, checkpoint or "")
        sql = f"SELECT row, id FROM images WHERE {condition} AND missing = 0 AND {bound} ORDER BY row LIMIT 1"
        rows = self.db.read(sql, args)
        return rows[0] if rows else None

    def least_confident(self, exclude: str | None = None) -> str | None:
        """The image not reviewed whose prediction is least sure (``None`` if none is scored);
        staged states and confidences count."""
        with self._mutex:
            staged = [i for i, s in self._pending.items() if {"state", "confidence"} & set(s.fields)]
        skip = [exclude or "", *staged]
        sql = (
            "SELECT confidence, id FROM images WHERE state IN ('new', 'predicted', 'edited') AND confidence "
            f"IS NOT NULL AND id NOT IN ({','.join('?' * len(skip))}) ORDER BY confidence LIMIT 1"
        )
        candidates = [tuple(r) for r in self.db.read(sql, skip)]
        for image_id in staged:
            entry = self.find(image_id)
            if entry and image_id != exclude and entry.state != "reviewed" and entry.confidence is not None:
                candidates.append((entry.confidence, image_id))
        return min(candidates)[1] if candidates else None

    def corrections(self) -> list[float]:
        """The share of pixels the user corrected on each reviewed image, oldest review first."""
        rows = self.db.read(
            "SELECT changed_fraction FROM images WHERE state = 'reviewed' AND changed_fraction IS NOT NULL "
            "ORDER BY modified"
        )
        return [r[0] for r in rows]

    # --- labels -------------------------------------------------------------------------
    def label_path(self, entry: ImageEntry) -> Path:
        return self.root / self.labels_dir / f"{entry.id}.png"

    def load_label(self, entry: ImageEntry) -> np.ndarray | None:
        """The entry's label (staged edits first), or ``None`` if it has none yet.

        A label whose size differs from its image, or with indices that are not classes,
        raises ``LabelError``.
        """
        staged = self._pending.get(entry.id)
        if staged is not None and staged.label is not None:
            return staged.label
        path = self.label_path(entry)
        if not path.exists():
            return None
        label = read_label(path, num_classes=len(self.classes))
        image = self.image_path(entry)
        if image.exists():
            check_label_size(label, image_size(image), path, image)
        return label

    def set_label(
        self, entry: ImageEntry, label: np.ndarray, state: str, *, checkpoint: str | None = None,
        painted: np.ndarray | None = None,
    ) -> None:  # fmt: skip
        """Stage a new label for ``entry`` (``painted``: which of its pixels the user set);
        ``flush`` (or autosave) writes it."""
        check_label_indices(label, len(self.classes), self.label_path(entry))
        if painted is not None and painted.shape != label.shape:
            raise ValueError(f"{entry.id}: painted mask {painted.shape}, label {label.shape}")
        fields = {"state": state, "modified": now()}
        if checkpoint is not None:
            fields["checkpoint"] = checkpoint
        self._stage(entry, fields, label, painted)

    def slide_tiles(self, entry: ImageEntry) -> LabelTiles:
        """The tile store of a whole-slide image's label (its tiles are saved as they are
        painted), in the labels folder: a class removal rewrites it with the labels."""
        return LabelTiles(self.root / self.labels_dir / f"{entry.id}{TILES_SUFFIX}")

    def painted_path(self, entry: ImageEntry) -> Path:
        return self.root / PAINTED_FOLDER / f"{entry.id}.png"

    def load_painted(self, entry: ImageEntry, shape: tuple[int, int]) -> np.ndarray | None:
        """Which pixels of the entry's label the user set (staged edits first); ``None`` when
        that was never recorded or its file is damaged."""
        staged = self._pending.get(entry.id)
        if staged is not None and staged.painted is not None:
            return staged.painted
        return read_painted(self.painted_path(entry), shape)

    def set_state(self, entry: ImageEntry, state: str, **extra: object) -> None:
        """Change an entry's state (and fields like ``changed_fraction``) without a new label."""
        self._stage(entry, {"state": state, "modified": now(), **extra})

    def set_confidence(self, entry: ImageEntry, confidence: float) -> None:
        """Record the mean confidence of the entry's latest prediction (least-confident-next)."""
        self._stage(entry, {"confidence": float(confidence)})

    def _stage(
        self,
        entry: ImageEntry,
        fields: dict,
        label: np.ndarray | None = None,
        painted: np.ndarray | None = None,
    ) -> None:
        if fields.get("state", entry.state) not in STATES:
            raise ValueError(f"unknown state {fields['state']!r}")
        unknown = set(fields) - set(COLUMNS) | ({"id", "row"} & set(fields))
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}")
        with self._mutex:
            staged = self._pending.get(entry.id)
            if staged is None:
                disk = self.db.value("SELECT state FROM images WHERE id = ?", (entry.id,))
                if disk is None:
                    raise ProjectError(f"no image with id {entry.id!r} in this project", self.root)
                staged = self._pending[entry.id] = _Staged(base_state=disk)
            staged.fields.update(fields)
            if label is not None:
                staged.label = label
                staged.painted = painted
        for key, value in fields.items():  # the caller's copy shows the change too
            setattr(entry, key, value)

    def set_checkpoint(self, checkpoint: str | None) -> None:
        """Record the checkpoint the project's predictions come from."""
        with self.db.write() as con:
            self.db.set_meta(con, "checkpoint", checkpoint)
        self.checkpoint = checkpoint

    @property
    def has_unsaved_changes(self) -> bool:
        return bool(self._pending)

    def flush(self) -> list[Path]:
        """Write staged labels, then the rows that point to them; only what changed. Returns
        the labels written.

        Safe to call from a worker thread while the GUI thread stages more edits: it writes a
        snapshot, and an edit staged meanwhile stays pending for the next flush.
        """
        with self._write_mutex:
            with self._mutex:
                pending = {i: dataclasses.replace(s, fields=dict(s.fields)) for i, s in self._pending.items()}
                classes = list(self.classes)
            written = []
            for image_id, staged in pending.items():
                if staged.label is None:
                    continue
                path = self.root / self.labels_dir / f"{image_id}.png"
                try:
                    write_label(path, staged.label, classes)
                    if staged.painted is not None:
                        write_painted(self.root / PAINTED_FOLDER / f"{image_id}.png", staged.painted)
                except OSError as exc:
                    raise ProjectError(
                        f"cannot save the label ({exc.strerror}); free disk space or check permissions "
                        "(your edit is still in memory)",
                        path,
                    ) from exc
                written.append(path)
            if pending:
                with self.db.write() as con:  # after the labels: no row points at a label not yet whole
                    for image_id, staged in pending.items():
                        sets = ", ".join(f"{name} = ?" for name in staged.fields)
                        values = [*staged.fields.values(), image_id]
                        con.execute(f"UPDATE images SET {sets} WHERE id = ?", values)
                with self._mutex:
                    for image_id, written_now in pending.items():
                        current = self._pending.get(image_id)
                        if current is None:
                            continue
                        if current.label is written_now.label:
                            current.label = current.painted = None  # on disk now
                        current.base_state = written_now.fields.get("state", written_now.base_state)
                        if current.label is None and current.fields == written_now.fields:
                            del self._pending[image_id]  # nothing staged since
                    if self._disk_counts is not None:  # kept up to date, never counted again
                        for written_now in pending.values():
                            self._disk_counts[written_now.base_state] -= 1
                            self._disk_counts[written_now.fields.get("state", written_now.base_state)] += 1
            return written

    # --- predictions kept to measure how much the user corrected ---------------------------
    def prediction_path(self, entry: ImageEntry) -> Path:
        return self.root / "predictions" / f"{entry.id}.png"

    def save_prediction(self, entry: ImageEntry, label: np.ndarray) -> None:
        """Keep the model's raw prediction (to measure the user's corrections later)."""
        write_label(self.prediction_path(entry), label, self.classes)

    def load_prediction(self, entry: ImageEntry) -> np.ndarray | None:
        path = self.prediction_path(entry)
        return read_label(path) if path.exists() else None


def sort_key(order: str, image_id: str, row: int, state: str, confidence: float | None) -> tuple:
    """An image's place under ``order`` (``ORDERS``), as a tuple that sorts as the query does."""
    if order == "name":
        return (image_id,)
    if order == "state":
        return (STATES.index(state), row)
    if order == "least confident":
        return (confidence is None, confidence or 0.0, row)
    return (row,)


def _insert_classes(con, classes: list[LabelClass]) -> None:
    con.executemany(
        "INSERT INTO classes VALUES (?, ?, ?, ?, ?)", [(i, c.name, *c.color) for i, c in enumerate(classes)]
    )


def _migrate(root: Path) -> None:
    """A format-1 project (``project.json``) as a database: every field checked, everything
    written to the new file before it takes the database's name; the manifest is kept beside
    it as ``project.json.v1-backup``."""
    manifest = read_manifest(root / MANIFEST)
    check_labels_dir(root, manifest.labels_dir, sum(e.state != "new" for e in manifest.images))

    def fill(con) -> None:
        _insert_classes(con, manifest.classes)
        con.executemany(
            "INSERT INTO images (id, path, state, checkpoint, modified, changed_fraction) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(e.id, e.path, e.state, e.checkpoint, e.modified, e.changed_fraction) for e in manifest.images],
        )

    meta = {"labels_dir": manifest.labels_dir, "migrated_from": MANIFEST}
    if manifest.checkpoint is not None:
        meta["checkpoint"] = manifest.checkpoint
    if manifest.pending_labels_dir is not None:
        meta["pending_labels_dir"] = manifest.pending_labels_dir
    ProjectDatabase.create(root / DATABASE, meta, fill).close()
    (root / MANIFEST).replace(root / MIGRATED)


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


def is_project(folder: Path) -> bool:
    """Does ``folder`` hold a project (its database, or a format-1 manifest)?"""
    return (folder / DATABASE).is_file() or (folder / MANIFEST).is_file()


PROJECT_PARTS = ("labels.v*", "learning", "predictions", ".lock.owner", "backups", MIGRATED)


def project_parts(folder: Path) -> list[str]:
    """The names in ``folder`` that only an fcn-gui project holds (its labels folders, its
    learner's history, its kept predictions, its backups)."""
    if not folder.is_dir():
        return []
    return sorted({p.name for pattern in PROJECT_PARTS for p in folder.glob(pattern)})


def orphaned(folder: Path, parts: list[str]) -> ProjectError:
    """The error for a project folder whose database is gone: what is there, and what to do."""
    saved = backups(folder)
    restore = (
        f"copy its newest backup {saved[0]} to {folder / DATABASE} to open it" if saved
        else f"restore {DATABASE} (or a format-1 {MANIFEST}) from a backup to open it"
    )  # fmt: skip
    return ProjectError(
        f"holds an fcn-gui project's files ({', '.join(parts)}) but its {DATABASE} is missing; "
        f"{restore} (nothing here was changed), or move these folders away to start a new project",
        folder,
    )


def project_home_for(image_folder: Path) -> Path:
    """Where the project of a plain image folder lives: inside it if writable, else per user."""
    if os.access(image_folder, os.W_OK):
        return image_folder / DEFAULT_SUBFOLDER
    digest = hashlib.sha1(str(image_folder.resolve()).encode()).hexdigest()[:8]
    return Path(platformdirs.user_data_dir("fcn-gui")) / "projects" / f"{safe_id(image_folder.name)}-{digest}"
