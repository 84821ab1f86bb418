"""Pretrained weights from torchvision: found in torch's hub cache, downloaded only on request.

Downloads stream to a temporary file with progress, are checked against the hash prefix in
torchvision's file name, and are renamed into the cache, exactly where
``torch.hub.load_state_dict_from_url`` would have put them.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch

from core.base.atomic import atomic_path
from core.base.errors import CheckpointError, WeightsNotAvailableError
from core.base.progress import Progress, drain
from core.model.tensor_files import check_finite, load_tensor_file


@dataclass(frozen=True)
class PretrainedSource:
    """A torchvision weights file: where it comes from and what it initialises."""

    key: str
    url: str
    description: str
    size_mb: int

    @property
    def filename(self) -> str:
        return Path(urlparse(self.url).path).name

    @property
    def download_url(self) -> str:
        """``url``, or the same file name under ``$FCN_GUI_WEIGHTS_MIRROR`` (an in-house mirror)."""
        mirror = os.environ.get("FCN_GUI_WEIGHTS_MIRROR")
        return f"{mirror.rstrip('/')}/{self.filename}" if mirror else self.url

    @property
    def cache_path(self) -> Path:
        """Where torch's hub cache keeps this file (``$TORCH_HOME/hub/checkpoints``)."""
        return Path(torch.hub.get_dir()) / "checkpoints" / self.filename


def _sources() -> dict[str, PretrainedSource]:
    from torchvision.models import VGG16_Weights
    from torchvision.models.segmentation import FCN_ResNet50_Weights, FCN_ResNet101_Weights

    return {
        "vgg16-imagenet": PretrainedSource(
            "vgg16-imagenet",
            VGG16_Weights.IMAGENET1K_V1.url,
            "VGG16 ImageNet classifier (backbone, FC6 and FC7 for FCN-32s/16s/8s)",
            528,
        ),
        "resnet50-voc": PretrainedSource(
            "resnet50-voc",
            FCN_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1.url,
            "FCN-ResNet50 trained on COCO with the 21 VOC classes",
            135,
        ),
        "resnet101-voc": PretrainedSource(
            "resnet101-voc",
            FCN_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1.url,
            "FCN-ResNet101 trained on COCO with the 21 VOC classes",
            208,
        ),
    }


def pretrained_source(key: str) -> PretrainedSource:
    """The source named ``key`` (``vgg16-imagenet``, ``resnet50-voc``, ``resnet101-voc``)."""
    sources = _sources()
    if key not in sources:
        raise ValueError(f"unknown pretrained weights {key!r}; choose one of {', '.join(sources)}")
    return sources[key]


def source_for_backbone(backbone: str) -> PretrainedSource:
    """The pretrained weights that initialise ``backbone``."""
    return pretrained_source({"vgg16": "vgg16-imagenet"}.get(backbone, f"{backbone}-voc"))


def download(source: PretrainedSource, *, chunk: int = 1 << 20) -> Generator[Progress, None, Path]:
    """Download ``source`` into torch's hub cache, yielding byte progress; returns the path.

    Stopping the iteration (or a failure) leaves no partial file in the cache. An unreachable
    host raises ``WeightsNotAvailableError`` saying which file to put where by hand.
    """
    dest = source.cache_path
    if dest.exists():
        return dest
    match = re.search(r"-([a-f0-9]+)\.", source.filename)
    digest = hashlib.sha256()
    url = source.download_url
    with atomic_path(dest) as tmp, _network_errors(source, url):
        with urllib.request.urlopen(url, timeout=60) as response, tmp.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while block := response.read(chunk):
                out.write(block)
                digest.update(block)
                done += len(block)
                yield Progress(done, total, f"downloading {source.filename}")
        if match and not digest.hexdigest().startswith(match.group(1)):
            raise CheckpointError(
                "downloaded file is corrupt (hash mismatch); try the download again", source.url
            )
    return dest


@contextlib.contextmanager
def _network_errors(source: PretrainedSource, url: str) -> Iterator[None]:
    """Turn a failed or broken-off download into one line naming the file and the way round it."""
    try:
        yield
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        host = urlparse(url).netloc or url
        raise WeightsNotAvailableError(
            f"cannot download {source.filename} from {host} ({reason}); check the network, or download "
            f"{source.url} elsewhere and copy it to {source.cache_path}",
            url,
        ) from exc


def load_pretrained_state(source: PretrainedSource, *, allow_download: bool = False) -> dict:
    """The state dict of ``source`` from the cache, downloading it first if allowed."""
    path = source.cache_path
    if not path.exists():
        if not allow_download:
            raise WeightsNotAvailableError(
                f"{source.description} ({source.size_mb} MB) is not downloaded; allow the download "
                f"(--download, or Model > Download pretrained weights) or copy {source.filename} there",
                path,
            )
        drain(download(source))
    state = load_tensor_file(path, what="pretrained weights file", fix="delete it and download again")
    if isinstance(state, dict):
        check_finite({k: v for k, v in state.items() if isinstance(v, torch.Tensor)}, path)
    return state
