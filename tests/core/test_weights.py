"""Downloading pretrained weights, from a file:// mirror (no network here)."""

import hashlib

import pytest

from core.base.errors import CheckpointError
from core.model.weights import PretrainedSource, download, pretrained_source
from tests.conftest import run_generator


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """An empty mirror folder and an empty torch cache, both in ``tmp_path``."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    monkeypatch.setenv("FCN_GUI_WEIGHTS_MIRROR", folder.as_uri())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return folder


def _source_for(content: bytes) -> PretrainedSource:
    """A source whose file name carries ``content``'s hash prefix, as torchvision's do."""
    prefix = hashlib.sha256(content).hexdigest()[:8]
    return PretrainedSource("test", f"https://download.invalid/models/tiny-{prefix}.pth", "test", 1)


def test_a_download_from_a_mirror_lands_in_the_cache(mirror):
    content = bytes(range(256)) * 400
    source = _source_for(content)
    (mirror / source.filename).write_bytes(content)
    events, path = run_generator(download(source, chunk=10_000))
    assert path == source.cache_path and path.read_bytes() == content
    assert events[-1].done == len(content) and len(events) == 11


def test_a_file_with_the_wrong_hash_is_refused_and_not_kept(mirror):
    source = pretrained_source("vgg16-imagenet")
    (mirror / source.filename).write_bytes(b"not the VGG16 weights")
    with pytest.raises(CheckpointError, match="hash mismatch"):
        for _ in download(source):
            pass
    assert not source.cache_path.exists()
    assert list(source.cache_path.parent.iterdir()) == []  # no partial or temporary file either


def test_a_cancelled_download_leaves_no_partial_file(mirror):
    content = bytes(200_000)
    source = _source_for(content)
    (mirror / source.filename).write_bytes(content)
    gen = download(source, chunk=1000)
    first = next(gen)
    assert first.done == 1000 and first.total == len(content)
    gen.close()  # what Cancel does
    assert not source.cache_path.exists()
    assert list(source.cache_path.parent.iterdir()) == []
