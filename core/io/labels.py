"""Class lists, the VOC colour map, and label maps as VOC palette PNGs.

A label map is an ``HxW uint8`` array: 0..C-1 are classes, 255 is void. On disk it is a
"P"-mode PNG with the VOC colour map, the format of VOC's ``SegmentationClass`` folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from core.base.atomic import atomic_path
from core.base.errors import ImageReadError, ImageTooLargeError, LabelError
from core.io.images import DEFAULT_MAX_PIXELS, open_image

VOID = 255

VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)


def voc_colormap(n: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map: ``(n, 3) uint8``, index bits spread over R, G, B."""
    idx = np.arange(n, dtype=np.int64)
    cmap = np.zeros((n, 3), dtype=np.int64)
    for bit in range(8):
        for channel in range(3):
            cmap[:, channel] |= ((idx >> (3 * bit + channel)) & 1) << (7 - bit)
    return cmap.astype(np.uint8)


VOC_PALETTE = voc_colormap()


@dataclass(frozen=True)
class LabelClass:
    """One class: its display name and overlay colour."""

    name: str
    color: tuple[int, int, int]


def default_classes() -> list[LabelClass]:
    """The 21 PASCAL VOC classes with their VOC colours."""
    return classes_from_names(VOC_CLASSES)


def classes_from_names(names: list[str] | tuple[str, ...]) -> list[LabelClass]:
    """Classes named ``names`` coloured by the VOC colour map in order."""
    if not 1 <= len(names) <= VOID:
        raise ValueError(f"a class list needs 1 to 255 classes, got {len(names)}")
    return [LabelClass(n, tuple(int(c) for c in VOC_PALETTE[i])) for i, n in enumerate(names)]


def classes_to_data(classes: list[LabelClass]) -> list[dict]:
    """Classes as a project's manifest and a checkpoint's metadata store them."""
    return [{"name": c.name, "color": list(c.color)} for c in classes]


def classes_from_data(data: object) -> list[LabelClass]:
    """Classes from ``classes_to_data``'s form, every field checked; ``ValueError`` names the
    first one that is wrong (the caller adds the file)."""
    if not isinstance(data, list) or not 1 <= len(data) <= VOID:
        count = len(data) if isinstance(data, list) else type(data).__name__
        raise ValueError(f"'classes' must list 1 to 255 classes, not {count}")
    classes = []
    for i, entry in enumerate(data):
        name = entry.get("name") if isinstance(entry, dict) else None
        color = entry.get("color") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"class {i} has the name {name!r}; a name is a non-empty text")
        if not _is_colour(color):
            raise ValueError(f"class {i} ({name}) has the colour {color!r}; use 3 whole numbers 0-255")
        classes.append(LabelClass(name, tuple(color)))
    names = [c.name for c in classes]
    if repeated := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"class names repeat ({', '.join(repeated)}); each name must be unique")
    return classes


def _is_colour(value: object) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value)
    )


def read_class_file(path: str | Path) -> list[LabelClass]:
    """Read a class list: one name per line; blank lines and ``#`` comments are skipped."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LabelError(f"cannot read the class list ({exc.strerror})", path) from exc
    names = [line.strip() for line in text.splitlines()]
    names = [n for n in names if n and not n.startswith("#")]
    if not names:
        raise LabelError("the class list is empty; write one class name per line", path)
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise LabelError(f"class names repeat ({', '.join(dup)}); each name must be unique", path)
    if len(names) > VOID:
        raise LabelError(f"{len(names)} classes; at most 255 fit a label PNG", path)
    return classes_from_names(names)


def palette_for(classes: list[LabelClass] | None = None) -> np.ndarray:
    """A 256-entry palette: the VOC colour map with the classes' own colours in front."""
    pal = VOC_PALETTE.copy()
    for i, c in enumerate(classes or []):
        pal[i] = c.color
    return pal


def write_label(path: str | Path, label: np.ndarray, classes: list[LabelClass] | None = None) -> None:
    """Write ``label`` as a palette PNG, atomically (a crash keeps the previous file)."""
    if label.dtype != np.uint8 or label.ndim != 2:
        raise ValueError(f"a label map is HxW uint8, got {label.dtype} {label.shape}")
    img = Image.fromarray(label)  # mode "L"; putpalette turns it into "P"
    img.putpalette(palette_for(classes).tobytes())
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG", optimize=False, compress_level=6)


def read_label(
    path: str | Path,
    num_classes: int | None = None,
    palette: np.ndarray | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Read a label map as ``HxW uint8``.

    Palette and greyscale PNGs give their indices. RGB label images are converted through
    ``palette`` (default: the VOC colour map); unknown colours raise ``LabelError`` listing
    them. With ``num_classes``, indices other than 0..C-1 and 255 raise ``LabelError``.
    """
    path = Path(path)
    try:
        with open_image(path, max_pixels=max_pixels) as img:
            img.load()
            mode = img.mode
            if mode in ("P", "L"):
                label = np.array(img, dtype=np.uint8)
            elif mode in ("RGB", "RGBA"):
                label = rgb_to_label(np.asarray(img.convert("RGB")), palette, path)
            elif mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.array(img)
                if arr.max(initial=0) > VOID:
                    raise LabelError(
                        f"values up to {arr.max()} do not fit a label map (0..254 classes, 255 void); "
                        "for an instance mask, convert it to classes first",
                        path,
                    )
                label = arr.astype(np.uint8)
            else:
                raise LabelError(f"unsupported label image mode {mode}; save it as a palette PNG", path)
    except ImageTooLargeError:
        raise
    except ImageReadError as exc:
        reason = str(exc).removeprefix(f"{path}: ")
        raise LabelError(f"cannot read the label: {reason}", path) from exc
    except (OSError, SyntaxError) as exc:
        raise LabelError(f"not a readable label image ({exc}); re-export it as a palette PNG", path) from exc
    if num_classes is not None:
        check_label_indices(label, num_classes, path)
    return label


def rgb_to_label(rgb: np.ndarray, palette: np.ndarray | None, path: str | Path | None = None) -> np.ndarray:
    """Map each colour of an ``HxWx3`` image to its palette index; unknown colours raise."""
    pal = VOC_PALETTE if palette is None else palette
    codes = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    pal_codes = (pal[:, 0].astype(np.uint32) << 16) | (pal[:, 1].astype(np.uint32) << 8) | pal[:, 2]
    uniq, inverse = np.unique(codes, return_inverse=True)
    first_index = {int(c): i for i, c in reversed(list(enumerate(pal_codes)))}
    lut = np.array([first_index.get(int(c), -1) for c in uniq], dtype=np.int32)
    unknown = uniq[lut < 0]
    if len(unknown):
        shown = ", ".join(f"#{int(c):06x}" for c in unknown[:8])
        more = f" and {len(unknown) - 8} more" if len(unknown) > 8 else ""
        raise LabelError(
            f"RGB label has colours that are not in the class palette: {shown}{more}; "
            "save it as a palette PNG or add classes with those colours",
            path,
        )
    return lut[inverse].reshape(rgb.shape[:2]).astype(np.uint8)


def check_label_size(
    label: np.ndarray, image_size: tuple[int, int], label_path: str | Path, image_path: str | Path
) -> None:
    """Raise ``LabelError`` unless ``label`` (``HxW``) has the ``(width, height)`` of its image."""
    w, h = image_size
    if label.shape != (h, w):
        raise LabelError(
            f"the label is {label.shape[1]}x{label.shape[0]} but its image {Path(image_path).name} is "
            f"{w}x{h}; fix the label or remove it",
            label_path,
        )


def check_label_indices(label: np.ndarray, num_classes: int, path: str | Path | None = None) -> None:
    """Raise ``LabelError`` if ``label`` holds an index that is neither a class nor void."""
    if label.size == 0 or label.max() < num_classes:
        return
    if label.dtype == np.uint8 and num_classes <= VOID and not _beyond_classes(label, num_classes):
        return
    present = np.flatnonzero(np.bincount(label.ravel(), minlength=256))
    bad = [int(v) for v in present if v >= num_classes and v != VOID]
    if bad:
        raise LabelError(
            f"label values {bad[:10]} are not classes (the project has {num_classes} classes, "
            "0..{} and 255 for void); add the missing classes or fix the label".format(num_classes - 1),
            path,
        )


def _beyond_classes(label: np.ndarray, num_classes: int, chunk: int = 1 << 18) -> bool:
    """Whether a uint8 ``label`` holds a value in ``[num_classes, VOID)``. In uint8, v - num_classes
    wraps round for the classes and is 255 - num_classes for void: one pass, a chunk at a time
    that stays in the cache, where a histogram took a tenth of a second at 24 megapixels."""
    flat = label.reshape(-1)
    scratch = np.empty(min(chunk, flat.size), np.uint8)
    for start in range(0, flat.size, chunk):
        part = flat[start : start + chunk]
        shifted = np.subtract(part, num_classes, out=scratch[: part.size], dtype=np.uint8)
        if (shifted < VOID - num_classes).any():
            return True
    return False


def colorize(label: np.ndarray, classes: list[LabelClass] | None = None) -> np.ndarray:
    """An ``HxWx3`` RGB picture of ``label`` in the class colours."""
    return palette_for(classes)[label]
