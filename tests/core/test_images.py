import io
import shutil

import numpy as np
import pytest
from PIL import Image

from core.base.errors import ImageReadError, ImageTooLargeError
from core.io.images import image_size, read_image


@pytest.fixture
def rgb():
    rng = np.random.default_rng(0)
    img = np.zeros((40, 60, 3), dtype=np.uint8)
    img[:, :30] = (200, 30, 30)
    img[:, 30:] = (20, 40, 220)
    img[:5, :5] = rng.integers(0, 255, (5, 5, 3))
    return img


def _check_rgb(arr, shape):
    assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape == (*shape, 3)


@pytest.mark.parametrize(
    ("fmt", "suffix"), [("PNG", "png"), ("BMP", "bmp"), ("TIFF", "tif"), ("WEBP", "webp")]
)
def test_lossless_formats_read_exactly(tmp_path, rgb, fmt, suffix):
    path = tmp_path / f"img.{suffix}"
    Image.fromarray(rgb).save(path, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    np.testing.assert_array_equal(read_image(path), rgb)


def test_jpeg_with_exif_orientation_is_rotated(tmp_path, rgb):
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    arr = read_image(tmp_path / "rot.jpg")
    _check_rgb(arr, (60, 40))
    assert image_size(tmp_path / "rot.jpg") == (40, 60)
    # After rotating clockwise the red half (left) is on top.
    assert arr[5, 20, 0] > 150 and arr[-5, 20, 2] > 150


def test_grey_palette_alpha_and_cmyk(tmp_path, rgb):
    grey_source = np.asarray(Image.fromarray(rgb).convert("L"))
    Image.fromarray(grey_source).save(tmp_path / "grey.png")
    grey = read_image(tmp_path / "grey.png")
    _check_rgb(grey, (40, 60))
    for channel in range(3):  # grey becomes equal R, G and B, the grey level itself
        np.testing.assert_array_equal(grey[..., channel], grey_source)
    Image.fromarray(rgb).convert("P").save(tmp_path / "pal.png")
    pal = read_image(tmp_path / "pal.png")
    assert abs(int(pal[20, 10, 0]) - 200) < 10
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[:, :10, 3] = 0  # transparent strip composites on white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    arr = read_image(tmp_path / "alpha.png")
    assert arr[0, 0].tolist() == [255, 255, 255] and arr[20, 20].tolist() == [200, 30, 30]
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    cmyk = read_image(tmp_path / "cmyk.jpg")
    assert cmyk[20, 15, 0] > 150 and cmyk[20, 45, 2] > 150
    Image.fromarray(rgb).convert("LA").save(tmp_path / "la.png")  # opaque grey with alpha
    la = read_image(tmp_path / "la.png")
    _check_rgb(la, (40, 60))
    np.testing.assert_array_equal(la[..., 0], grey_source)


def test_16_bit_png_and_tiff_are_stretched(tmp_path):
    ramp = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 1000) + 100
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    Image.fromarray(ramp).save(tmp_path / "deep.tif")
    for name in ("deep.png", "deep.tif"):
        arr = read_image(tmp_path / name)
        _check_rgb(arr, (64, 64))
        assert arr.min() <= 2 and arr.max() >= 253  # full range used, not 100/65535 of it


def test_real_microscopy_tiff(data_dir, tmp_path):
    arr = read_image(data_dir / "nuclei/nuclei.tif")
    _check_rgb(arr, (512, 512))
    assert arr.max() == 255 and 10 < arr.mean() < 128
    with Image.open(data_dir / "nuclei/nuclei.tif") as raw:
        bright = np.asarray(raw) > 100
    assert arr[..., 0][bright].mean() > arr[..., 0][~bright].mean() + 50


def test_truncated_and_non_image_files_name_the_file(tmp_path, rgb):
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageReadError, match=r"cut\.jpg.*truncated"):
        read_image(tmp_path / "cut.jpg")
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(ImageReadError, match=r"notes\.png.*not an image"):
        read_image(tmp_path / "notes.png")
    with pytest.raises(ImageReadError, match="not found"):
        read_image(tmp_path / "missing.jpg")


def test_pixel_limit(tmp_path, data_dir):
    shutil.copy(data_dir / "voc/2007_000129.jpg", tmp_path / "v.jpg")
    with pytest.raises(ImageTooLargeError, match=r"v\.jpg.*megapixels.*--max-pixels"):
        read_image(tmp_path / "v.jpg", max_pixels=100_000)
    _check_rgb(read_image(tmp_path / "v.jpg", max_pixels=200_000), (500, 334))
