"""``project.json``: reading it field by field, so that a damaged one is one line naming the
field, its value and the fix, never a crash or a project opened half-understood.

No schema library: the manifest has a handful of fields, and each check below says in words
what the user can do about it, which a generic validator's message does not.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from core.base.errors import ProjectError
from core.io.labels import LabelClass, classes_from_data

MANIFEST = "project.json"
FORMAT = "fcn-gui-project"
VERSION = 1
STATES = ("new", "predicted", "edited", "reviewed")
LABELS_DIR = re.compile(r"labels\.v[1-9][0-9]*")
SAFE_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,119}")
RESTORE = f"correct it, or restore {MANIFEST} from a backup"


@dataclass
class ImageEntry:
    """One image of a project and the state of its label."""

    id: str
    path: str
    state: str = "new"
    checkpoint: str | None = None
    modified: str | None = None
    changed_fraction: float | None = None
    confidence: float | None = None  # mean confidence of its latest prediction
    width: int | None = None
    height: int | None = None
    missing: bool = False  # its file was gone at the last scan
    row: int = 0  # its place in the project's order (the database's row number; 0: not stored yet)


@dataclass
class Manifest:
    """What ``project.json`` says, checked."""

    classes: list[LabelClass]
    images: list[ImageEntry]
    labels_dir: str
    checkpoint: str | None
    pending_labels_dir: str | None  # a class removal's new labels folder, until it switches
    data: dict  # the JSON as read


def read_manifest(path: Path) -> Manifest:
    """Read and check ``path``; raises ``ProjectError`` naming the first wrong field."""
    data = _load(path)
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ProjectError(f"the manifest's version is {version!r}, not a format number; {RESTORE}", path)
    if version > VERSION:
        raise ProjectError(
            f"the project was saved by a newer fcn-gui (format {version}, this one reads {VERSION}); "
            "update fcn-gui to open it",
            path,
        )
    try:
        classes = classes_from_data(data.get("classes"))
    except ValueError as exc:
        raise ProjectError(f"the manifest's classes are wrong: {exc}; {RESTORE}", path) from exc
    labels_dir = data.get("labels_dir", "labels.v1")
    pending = data.get("pending_labels_dir")
    for field, value in (("labels_dir", labels_dir), ("pending_labels_dir", pending)):
        if value is not None and not (isinstance(value, str) and LABELS_DIR.fullmatch(value)):
            raise ProjectError(
                f"the manifest's {field} is {value!r}, not a labels folder name like 'labels.v1'; {RESTORE}",
                path,
            )
    checkpoint = data.get("checkpoint")
    if checkpoint is not None and not isinstance(checkpoint, str):
        raise ProjectError(f"the manifest's checkpoint is {checkpoint!r}, not a file path; {RESTORE}", path)
    images = data.get("images")
    if not isinstance(images, list):
        raise ProjectError(f"the manifest's images are {type(images).__name__}, not a list; {RESTORE}", path)
    entries = [_entry(i, e, path) for i, e in enumerate(images)]
    ids = [e.id for e in entries]
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})[:3]
        raise ProjectError(f"the manifest lists image ids twice ({', '.join(repeated)}); {RESTORE}", path)
    return Manifest(classes, entries, labels_dir, checkpoint, pending, data)


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ProjectError(f"no project here ({MANIFEST} is missing)", path.parent) from exc
    except PermissionError as exc:
        raise ProjectError("permission denied reading the manifest", path) from exc
    except (OSError, ValueError) as exc:
        raise ProjectError(f"the manifest is not valid JSON ({exc}); restore it from a backup", path) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ProjectError("not an fcn-gui project manifest", path)
    return data


def _entry(index: int, data: object, path: Path) -> ImageEntry:
    """One image's record, each field checked."""
    if not isinstance(data, dict):
        raise ProjectError(f"the manifest's image {index} is {data!r}, not a record; {RESTORE}", path)
    where = f"image {index} ({data.get('id')!r})"
    for field in ("id", "path"):
        if not isinstance(data.get(field), str) or not data[field]:
            raise ProjectError(f"the manifest's {where} has the {field} {data.get(field)!r}; {RESTORE}", path)
    if not SAFE_ID.fullmatch(data["id"]):  # ids are file names in the labels folder
        raise ProjectError(
            f"the manifest's {where} is not a file-name-safe id (letters, digits, '.', '_', '-'); {RESTORE}",
            path,
        )
    if data.get("state", "new") not in STATES:
        raise ProjectError(
            f"the manifest's {where} has the state {data.get('state')!r}; use one of {', '.join(STATES)}",
            path,
        )
    for field in ("checkpoint", "modified"):
        if data.get(field) is not None and not isinstance(data[field], str):
            raise ProjectError(f"the manifest's {where} has the {field} {data[field]!r}; {RESTORE}", path)
    fraction = data.get("changed_fraction")
    if fraction is not None and (isinstance(fraction, bool) or not isinstance(fraction, int | float)):
        raise ProjectError(f"the manifest's {where} has the changed_fraction {fraction!r}; {RESTORE}", path)
    known = {k: data[k] for k in ImageEntry.__dataclass_fields__ if k in data}
    return ImageEntry(**known)
