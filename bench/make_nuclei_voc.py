"""Write the nuclei test image as a small 2-class VOC dataset: ``python bench/make_nuclei_voc.py DIR``."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.io.images import read_image  # noqa: E402
from core.io.labels import write_label  # noqa: E402


def main(out: Path, size: int = 128) -> None:
    for sub in ("JPEGImages", "SegmentationClass"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    image = read_image(ROOT / "tests/data/nuclei/nuclei.tif")
    label = (np.asarray(Image.open(ROOT / "tests/data/nuclei/nuclei_instances.tif")) > 0).astype(np.uint8)
    for y in range(0, 512, size):
        for x in range(0, 512, size):
            name = f"nuclei_{y}_{x}"
            Image.fromarray(image[y : y + size, x : x + size]).save(out / "JPEGImages" / f"{name}.png")
            write_label(out / "SegmentationClass" / f"{name}.png", label[y : y + size, x : x + size])
    (out / "class_names.txt").write_text("background\nnucleus\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
