"""Decompression bombs: a small file whose header claims 100,000 x 100,000 pixels is refused at
once, naming the file, by every reader, without allocating the image.

Each reader runs in a fresh process whose address space is capped at 1.5 GB: a reader that
started to decode would fail with a MemoryError (or be killed) instead of the clear message.
"""

from __future__ import annotations

import base64
import json
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).parents[2]
SIDE = 100_000


def bomb_png(path: Path, mode: str = "L") -> Path:
    """A valid tiny PNG whose header says it is SIDE x SIDE pixels."""
    Image.new(mode, (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = 12  # 8-byte signature, then the IHDR chunk: length (4), type (4), data (13), CRC (4)
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", SIDE, SIDE)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])))
    path.write_bytes(bytes(data))
    return path


READERS = {
    "image": "from core.io.images import read_image; read_image(p)",
    "image size": "from core.io.images import image_size; image_size(p)",
    "label": "from core.io.labels import read_label; read_label(p)",
    "thumbnail": "from core.io.thumbnails import thumbnail; thumbnail(p, 64)",
    "index mask": "from core.formats.masks import read_index_mask; read_index_mask(p, 3)",
    "mask import": "from core.formats.masks import import_masks; from core.base.progress import drain; "
    "drain(import_masks(p.parent.parent, p.parent.parent / 'project'))",
    "labelme image": "from core.formats.labelme import read_labelme; read_labelme(p)",
    "labelme mask": "from core.formats.labelme import read_labelme, rasterise, class_index_for; "
    "rasterise(read_labelme(p), class_index_for(['background', 'cell']))",
}

RUN = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    resource.setrlimit(resource.RLIMIT_AS, (1536 * 2**20, 1536 * 2**20))
    p = Path(sys.argv[1])
    try:
        exec(sys.argv[2])
        outcome = {"error": None}
    except Exception as exc:
        outcome = {"error": type(exc).__name__, "message": str(exc)}
    print(json.dumps(outcome))
    """
)


@pytest.fixture
def bombs(tmp_path) -> dict[str, Path]:
    """The file each reader is given, all of them claiming SIDE x SIDE pixels somewhere."""
    png = bomb_png(tmp_path / "bomb.png")
    masks = tmp_path / "dataset"
    (masks / "masks").mkdir(parents=True)
    (masks / "images").mkdir()
    Image.new("RGB", (8, 8)).save(masks / "images" / "cell.png")
    (masks / "classes.txt").write_text("background\ncell\n")
    mask = bomb_png(masks / "masks" / "cell.png")
    image = {"shapes": [], "imageData": base64.b64encode(png.read_bytes()).decode(), "imagePath": "gone.png"}
    (tmp_path / "embedded.json").write_text(json.dumps(image))
    Image.new("RGB", (8, 8)).save(tmp_path / "small.png")
    shape = {"label": "cell", "points": [[0, 0]], "shape_type": "mask",
             "mask": base64.b64encode(png.read_bytes()).decode()}  # fmt: skip
    (tmp_path / "shape.json").write_text(json.dumps({"shapes": [shape], "imagePath": "small.png"}))
    files = dict.fromkeys(("image", "image size", "label", "thumbnail", "index mask"), png)
    return files | {
        "mask import": mask,
        "labelme image": tmp_path / "embedded.json",
        "labelme mask": tmp_path / "shape.json",
    }


@pytest.mark.parametrize("reader", sorted(READERS))
def test_every_reader_refuses_a_bomb_at_once_and_names_the_file(bombs, reader):
    path = bombs[reader]
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(path), READERS[reader]], cwd=ROOT, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["error"] == "ImageTooLargeError", outcome
    assert str(path) in outcome["message"] and "10000 megapixels" in outcome["message"], outcome


def test_pillows_own_guard_stays_for_the_rest_of_the_process(tmp_path):
    """Importing the readers, and reading with a limit above Pillow's, leave Pillow's guard as it was."""
    from PIL import Image as PILImage

    from core.base.errors import ImageTooLargeError
    from core.io.images import DEFAULT_MAX_PIXELS, read_image

    before = PILImage.MAX_IMAGE_PIXELS
    assert before and 2 * before < DEFAULT_MAX_PIXELS  # ours is the higher: the lifted case
    with pytest.raises(ImageTooLargeError):
        read_image(bomb_png(tmp_path / "bomb.png"))
    assert before == PILImage.MAX_IMAGE_PIXELS
    with pytest.raises(PILImage.DecompressionBombError):
        PILImage.open(tmp_path / "bomb.png")  # anyone else's Pillow call is still guarded


def test_pillows_guard_survives_images_opened_on_several_threads_at_once(tmp_path):
    """The app opens images on several workers at once (the image, the next one, thumbnails).
    A header read that came while another had lifted Pillow's guard used to restore the lifted
    value, leaving Pillow unguarded for the rest of the process."""
    import threading

    from PIL import Image as PILImage

    from core.io.images import open_image

    path = tmp_path / "small.png"
    PILImage.new("RGB", (8, 8)).save(path)
    before = PILImage.MAX_IMAGE_PIXELS

    def read_many() -> None:
        for _ in range(400):
            open_image(path).close()

    threads = [threading.Thread(target=read_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert before == PILImage.MAX_IMAGE_PIXELS
