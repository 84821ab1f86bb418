"""Annotations from labelme and X-AnyLabeling: their JSON files become a project.

Shapes are rasterised the way labelme's own ``labelme2voc`` does: in file order, later
shapes on top, unlabelled pixels background (0); polygons, rectangles, circles, lines (10 px
wide), line strips, points (radius 5) and masks (a base64 PNG placed at the shape's first
point). With labelme's class-file convention, ``__ignore__`` is void (255) and
``_background_`` is class 0. The image is ``imagePath`` (relative to the JSON) or, when that
file is missing, the image embedded as ``imageData``, which is written into the project.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from core.base.atomic import atomic_path
from core.base.errors import DatasetError, ImageReadError, ImageTooLargeError, LabelError
from core.base.progress import Progress
from core.formats.importing import ImportItem, ImportReport, import_items
from core.io.images import displayed_size, image_size, is_image_path, open_image
from core.io.labels import VOID, classes_from_names, read_class_file

LINE_WIDTH = 10
POINT_RADIUS = 5
IGNORE = "__ignore__"
BACKGROUND = "_background_"


@dataclass
class LabelmeFile:
    """One labelme JSON: its image (a file or embedded bytes), size and shapes."""

    path: Path
    image: Path | None
    image_data: bytes | None
    height: int
    width: int
    shapes: list[dict]


def is_labelme_folder(folder: str | Path) -> bool:
    """Does ``folder`` hold labelme JSON files (a ``shapes`` list)?"""
    for path in sorted(Path(folder).glob("*.json"))[:20]:
        try:
            if isinstance(json.loads(path.read_text(encoding="utf-8")).get("shapes"), list):
                return True
        except (OSError, ValueError, AttributeError):
            continue
    return False


def read_labelme(path: str | Path) -> LabelmeFile:
    """Parse one JSON file; a malformed one raises ``LabelError`` naming it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        shapes = data["shapes"]
        if not isinstance(shapes, list):
            raise TypeError("'shapes' is not a list")
        image = path.parent / data["imagePath"] if data.get("imagePath") else None
        embedded = base64.b64decode(data["imageData"]) if data.get("imageData") else None
        # labelme draws on the image as shown: an EXIF-rotated photo's displayed size.
        if image is not None and image.exists():
            width, height = image_size(image)
        elif embedded is not None:
            with open_image(embedded, name=f"{path} (its embedded image)") as img:
                width, height = displayed_size(img)
        else:
            raise FileNotFoundError(f"its image {data.get('imagePath')!r} is missing and none is embedded")
    except ImageTooLargeError:
        raise
    except (ImageReadError, OSError, ValueError, KeyError, TypeError) as exc:
        raise LabelError(f"not a usable labelme file ({str(exc).removeprefix(f'{path}: ')})", path) from exc
    stated = (data.get("imageHeight"), data.get("imageWidth"))
    if all(stated) and (int(stated[0]), int(stated[1])) != (height, width):
        raise LabelError(f"the JSON says {stated[1]}x{stated[0]} but its image is {width}x{height}", path)
    return LabelmeFile(path, image if image and image.exists() else None, embedded, height, width, shapes)


def shape_mask(shape: dict, height: int, width: int) -> np.ndarray:
    """The ``HxW bool`` pixels one labelme shape covers."""
    kind = shape.get("shape_type") or "polygon"
    points = [tuple(float(v) for v in p) for p in shape.get("points", [])]
    if kind == "mask":
        return _mask_shape(shape, points, height, width)
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    if kind == "circle" and len(points) == 2:
        (cx, cy), (px, py) = points
        r = math.hypot(cx - px, cy - py)
        draw.ellipse([(cx - r, cy - r), (cx + r, cy + r)], outline=1, fill=1)
    elif kind == "rectangle" and len(points) == 2:
        (x0, y0), (x1, y1) = points
        draw.rectangle([(min(x0, x1), min(y0, y1)), (max(x0, x1), max(y0, y1))], outline=1, fill=1)
    elif kind == "line" and len(points) == 2:
        draw.line(points, fill=1, width=LINE_WIDTH)
    elif kind == "linestrip" and len(points) >= 2:
        draw.line(points, fill=1, width=LINE_WIDTH, joint="curve")
    elif kind == "point" and len(points) == 1:
        (cx, cy), r = points[0], POINT_RADIUS
        draw.ellipse([(cx - r, cy - r), (cx + r, cy + r)], outline=1, fill=1)
    elif kind in ("polygon", "oriented_rectangle") and len(points) > 2:
        draw.polygon(points, outline=1, fill=1)
    else:
        raise ValueError(f"a {kind!r} shape with {len(points)} points cannot be drawn")
    return np.asarray(canvas, dtype=bool)


def _mask_shape(shape: dict, points: list, height: int, width: int) -> np.ndarray:
    with open_image(base64.b64decode(shape["mask"]), name="its embedded mask") as img:
        patch = np.asarray(img).astype(bool)
    if patch.ndim == 3:
        patch = patch.any(axis=2)
    (x1, y1) = (round(points[0][0]), round(points[0][1]))
    out = np.zeros((height, width), bool)
    ys = slice(max(y1, 0), min(y1 + patch.shape[0], height))
    xs = slice(max(x1, 0), min(x1 + patch.shape[1], width))
    if ys.start < ys.stop and xs.start < xs.stop:
        out[ys, xs] = patch[ys.start - y1 : ys.stop - y1, xs.start - x1 : xs.stop - x1]
    return out


def rasterise(doc: LabelmeFile, class_index: dict[str, int]) -> np.ndarray:
    """The ``HxW uint8`` label map of ``doc``: shapes in order, later on top, unlabelled 0."""
    label = np.zeros((doc.height, doc.width), np.uint8)
    for i, shape in enumerate(doc.shapes):
        name = str(shape.get("label", ""))
        if name not in class_index:
            raise LabelError(
                f"shape {i + 1} is labelled {name!r}, which is not in the class list; "
                "add it to --classes or fix the label",
                doc.path,
            )
        try:
            label[shape_mask(shape, doc.height, doc.width)] = class_index[name]
        except ImageReadError as exc:  # a mask shape's embedded PNG: too large, or not a PNG
            raise type(exc)(f"shape {i + 1} ({name!r}): {exc}", doc.path) from exc
        except (ValueError, KeyError, OSError) as exc:
            raise LabelError(f"shape {i + 1} ({name!r}) is malformed ({exc})", doc.path) from exc
    return label


def class_index_for(names: list[str]) -> dict[str, int]:
    """labelme's convention: ``__ignore__`` is void, the rest are classes in order."""
    index = {n: i for i, n in enumerate(n for n in names if n != IGNORE)}
    index[IGNORE] = VOID
    if BACKGROUND not in index:
        index[BACKGROUND] = 0
    return index


def import_labelme(
    folder: str | Path, project_dir: str | Path, class_file: str | Path | None = None
) -> Generator[Progress, None, ImportReport]:
    """Make a project from a folder of labelme JSON files (and the images beside them).

    Labelled images become ``reviewed``; images without a JSON become ``new``; a broken JSON
    is reported by name and the rest imported. A shape label missing from ``class_file``
    stops the import, naming the file and the label.
    """
    folder = Path(folder)
    docs, broken = [], []
    for path in sorted(folder.glob("*.json")):
        try:
            docs.append(read_labelme(path))
        except LabelError as exc:
            broken.append((path, str(exc).removeprefix(f"{path}: ")))
    if not docs:
        reasons = "; ".join(f"{p.name}: {why}" for p, why in broken[:5])
        more = f" (and {len(broken) - 5} more)" if len(broken) > 5 else ""
        found = f": {reasons}{more}" if broken else "; pick the folder with the .json files"
        raise DatasetError(f"no usable labelme JSON file here{found}", folder)
    if class_file is not None:
        names = [c.name for c in read_class_file(class_file)]
    else:
        labels = {str(s.get("label", "")) for d in docs for s in d.shapes}
        names = ["background", *sorted(labels - {IGNORE, BACKGROUND})]
    index = class_index_for(names)
    if class_file is None:
        index[BACKGROUND] = 0
    classes = classes_from_names([n for n in names if n != IGNORE])
    used = {d.image.resolve() for d in docs if d.image is not None}
    others = [p for p in sorted(folder.iterdir()) if is_image_path(p) and p.resolve() not in used]
    embedded = Path(project_dir) / "images"  # inside the project: an import that fails removes it

    def items() -> Iterator[ImportItem]:
        for doc in docs:  # the id is the JSON's name, as labelme2voc gives it
            label = rasterise(doc, index)
            yield ImportItem(doc.image or _write_embedded(doc, embedded), doc.path.stem, label, doc.path)
        for image in others:
            yield ImportItem(image, image.stem)

    return (yield from import_items(project_dir, classes, items(), len(docs) + len(others), broken))


def _write_embedded(doc: LabelmeFile, folder: Path) -> Path:
    """Save an image that exists only inside its JSON as ``folder/<json stem>.png``, turned as
    it is shown (labelme's shapes are drawn on the displayed image)."""
    with open_image(doc.image_data, name=f"{doc.path} (its embedded image)") as img:
        shown = ImageOps.exif_transpose(img)
        path, n = folder / f"{doc.path.stem}.png", 2
        while path.exists():  # a file already there is not ours to replace
            path, n = folder / f"{doc.path.stem}-{n}.png", n + 1
        with atomic_path(path) as tmp:
            shown.save(tmp, format="PNG")
    return path
