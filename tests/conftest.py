"""Shared test set-up: offscreen Qt, real data files, and small real models."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
import torch

ROOT = Path(__file__).parents[1]
DATA = Path(__file__).parent / "data"
# Under pytest-xdist (`make test` runs two workers) the cores are shared between the workers.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, (os.cpu_count() or 1) // WORKERS))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow-steps",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="every training step sleeps this long: runs the suite as on a slow CPU",
    )


def pytest_configure(config: pytest.Config) -> None:
    if slow := config.getoption("--slow-steps"):
        os.environ["FCN_GUI_SLOW_STEP_S"] = str(slow)  # subprocesses (torchrun, the app) inherit it


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def _local_model_original():
    from core.model.checkpoints import ModelInfo, new_model

    torch.manual_seed(0)
    model = new_model(ModelInfo(variant="fcn8s"))
    torch.nn.init.normal_(model.module.score_pool3.weight, std=0.05)
    return model


@pytest.fixture
def local_model(_local_model_original):
    """A real FCN-8s whose predictions vary from pixel to pixel.

    The trunk has torchvision's random initialisation; only the pool3 score layer is
    non-zero, which gives a model with a local receptive field (like a trained one), so
    tiled and whole-image predictions can be compared. The weights are shared between tests
    (a predictor copies them, nothing changes them); the metadata is each test's own.
    """
    from core.model.checkpoints import SegmentationModel

    return SegmentationModel(_local_model_original.module, copy.deepcopy(_local_model_original.info))


@pytest.fixture
def small_image(data_dir: Path) -> np.ndarray:
    """The astronaut photo shrunk to 128x128."""
    from PIL import Image

    with Image.open(Path(__file__).parents[1] / "resources/samples/astronaut.png") as img:
        return np.asarray(img.convert("RGB").resize((128, 128), Image.BILINEAR))


@pytest.fixture(scope="session")
def checkpoint(_local_model_original, tmp_path_factory) -> Path:
    """``local_model`` saved as an fcn-gui checkpoint."""
    from core.model.checkpoints import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "local.safetensors"
    save_checkpoint(path, _local_model_original)
    return path


@pytest.fixture(scope="session")
def unet_checkpoint(tmp_path_factory) -> Path:
    """A small U-Net (1.1 M weights, the 21 VOC classes, random weights) saved as an fcn-gui
    checkpoint: what the app's tests run, where the 134 M-parameter FCN-8s is not the subject.
    Marked trained, as a stand-in for a trained model: an untrained one predicts nothing in the
    app (tested on its own)."""
    from core.model.checkpoints import ModelInfo, new_model, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("unet") / "unet.safetensors"
    save_checkpoint(path, new_model(ModelInfo(variant="unet", trained=True)))
    return path


def run_generator(gen):
    """Drive a core progress generator to its end: ``(events, result)``."""
    from core.base.progress import drain

    events = []
    return events, drain(gen, events.append)


def torchrun(port: int, *args: str, timeout: int) -> subprocess.CompletedProcess:
    """Run ``args`` under ``torch.distributed.run`` as two CPU processes, from the repository root."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    cmd = [*launcher, "--master_port", str(port), *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
