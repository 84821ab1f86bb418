"""Thumbnails: decoded small, kept on disk between sessions, a damaged cache only remade."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from core.io.thumbnails import ThumbnailStore, file_stamp, thumbnail_and_size

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"


def test_a_thumbnail_fits_its_side_and_reports_the_image_size(tmp_path):
    pixels, size = thumbnail_and_size(SAMPLES / "rocket.jpg", 64)
    with Image.open(SAMPLES / "rocket.jpg") as img:
        assert size == img.size
    assert max(pixels.shape[:2]) == 64 and pixels.dtype == np.uint8 and pixels.shape[2] == 3


def test_kept_thumbnails_survive_a_reopen_and_a_changed_file_is_made_again(tmp_path):
    image = tmp_path / "a.png"
    Image.new("RGB", (80, 60), (200, 30, 30)).save(image)
    pixels, _ = thumbnail_and_size(image, 32)
    store = ThumbnailStore(tmp_path / "cache" / "thumbnails.db")
    stamp = file_stamp(image)
    store.put("a", stamp, pixels)
    store.close()
    again = ThumbnailStore(tmp_path / "cache" / "thumbnails.db")
    kept = again.get("a", stamp)
    assert kept is not None and kept.shape == pixels.shape
    assert np.abs(kept.astype(int) - pixels).max() < 20  # a JPEG of it
    Image.new("RGB", (90, 60), (0, 0, 255)).save(image)
    os.utime(image, ns=(1, 1))
    assert again.get("a", file_stamp(image)) is None  # the file changed: made again


def test_a_damaged_cache_is_replaced_and_an_unwritable_one_only_costs_speed(tmp_path):
    cache = tmp_path / "cache" / "thumbnails.db"
    cache.parent.mkdir()
    cache.write_bytes(b"this is not a database" * 100)
    store = ThumbnailStore(cache)
    assert store.get("a", "1:1") is None
    store.put("a", "1:1", np.zeros((8, 8, 3), np.uint8))
    assert store.get("a", "1:1") is not None
    store.close()
    blocked = tmp_path / "a file where the cache folder would be"
    blocked.write_text("")
    elsewhere = ThumbnailStore(blocked / "cache" / "thumbnails.db")
    elsewhere.put("a", "1:1", np.zeros((8, 8, 3), np.uint8))  # no error: thumbnails are remade
    assert elsewhere.get("a", "1:1") is None
