"""Finding image files in the paths a user gives, and where each one's outputs go."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.base.errors import FcnGuiError
from core.io.images import is_image_path

PROJECT_FILES = ("project.db", "project.json")  # a folder holding one is an fcn-gui project, not images


def output_folder(path: str | Path, what: str = "output folder") -> Path:
    """``path`` as a folder the program can write into (created if missing), or a clear error:
    a file in the way, a folder that cannot be created, or one that is read-only."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FcnGuiError(f"is a file, not a folder; choose another path for the {what}", path)
    existing = next((p for p in path.parents if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise FcnGuiError(f"{existing} is a file in the way of the {what}; choose another path", path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FcnGuiError(
            f"cannot create the {what} ({exc.strerror}); choose a folder you can write to", path
        ) from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise FcnGuiError(f"the {what} is read-only; choose a folder you can write to", path)
    return path


@dataclass(frozen=True)
class InputImage:
    """An image file and its output path relative to the output folder, without suffix."""

    path: Path
    relative: Path


def collect_images(
    inputs: list[str | Path], *, recursive: bool = False, extra_suffixes: frozenset[str] = frozenset()
) -> tuple[list[InputImage], list[tuple[Path, str]]]:
    """Expand files and folders into images; return them and the ``(path, reason)`` rejected.

    ``extra_suffixes`` adds file types to take from folders (slide formats, for ``segment``).

    A folder contributes its image files (and its subfolders' with ``recursive``), keeping
    their path relative to the folder; a file given directly keeps only its stem. Two
    images that would write the same output are reported, and the later one is left out.
    """
    found: list[InputImage] = []
    rejected: list[tuple[Path, str]] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            files = _walk(path, rejected) if recursive else sorted(f for f in path.iterdir() if f.is_file())
            for f in files:
                if f.name.startswith("."):
                    continue
                if is_image_path(f) or f.suffix.lower() in extra_suffixes:
                    found.append(InputImage(f, f.relative_to(path).with_suffix("")))
                elif f.parent == path:
                    rejected.append((f, "not an image file (by its suffix); skipped"))
        elif path.is_file():
            found.append(InputImage(path, Path(path.stem)))
        else:
            rejected.append((path, "no such file or folder"))
    unique: dict[Path, InputImage] = {}
    for item in found:
        if item.relative in unique:
            first = unique[item.relative].path
            rejected.append((item.path, f"has the same output name as {first}; rename one of them"))
        else:
            unique[item.relative] = item
    return list(unique.values()), rejected


def _walk(root: Path, rejected: list[tuple[Path, str]]) -> list[Path]:
    return [Path(f) for f in walk_files(root, rejected)]


def walk_files(root: Path, rejected: list[tuple[Path, str]]) -> Iterator[str]:
    """Every file under ``root``, folder by folder in name order, as it is found (a folder of
    100,000 images yields its first at once), as a string (a ``Path`` each would cost a scan
    of 100,000 files a second). Symbolic links to folders are followed; a link
    back to a folder already scanned (a loop) is reported in ``rejected`` and not followed.
    Hidden entries and fcn-gui projects (their labels are not images to label) are left out."""
    seen = {root.resolve()}
    stack = [root]
    while stack:
        here = stack.pop()
        try:
            with os.scandir(here) as it:
                entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
        except OSError as exc:
            rejected.append((here, f"cannot be read ({exc.strerror}); skipped"))
            continue
        folders = []
        for entry in entries:
            if entry.is_dir():
                sub = Path(entry.path)
                if any((sub / name).exists() for name in PROJECT_FILES):
                    continue
                real = sub.resolve()
                if real in seen:
                    why = f"links to {real}, a folder already scanned (a symbolic link loop); skipped"
                    rejected.append((sub, why))
                    continue
                seen.add(real)
                folders.append(sub)
            elif entry.is_file():
                yield entry.path
        stack.extend(reversed(folders))  # the first subfolder is scanned next
