import copy
import itertools

import numpy as np
import pytest
import torch
from torch import nn

from core.base.errors import DeviceError
from core.inference.predictor import PredictionError, Predictor
from core.inference.tiling import axis_tiles, blend_window, make_grid
from core.model.checkpoints import SegmentationModel, load_checkpoint, save_checkpoint
from tests.conftest import run_generator


def test_tiled_and_whole_image_agree(local_model, small_image):
    whole = Predictor(local_model, device="cpu").predict(small_image)
    assert len(np.unique(whole.label)) >= 3  # a real, varied prediction
    predictor = Predictor(local_model, device="cpu", tile=96, overlap=32)
    assert len(predictor.plan(128, 128)) == 4
    tiled = predictor.predict(small_image)
    assert (tiled.label == whole.label).mean() >= 0.99
    assert np.abs(tiled.confidence.astype(np.float32) - whole.confidence).max() < 0.05


@pytest.mark.parametrize(("h", "w", "tile"), [(37, 53, 64), (101, 67, 64), (20, 130, 48)])
def test_exact_output_size_for_odd_and_small_images(local_model, small_image, h, w, tile):
    image = np.ascontiguousarray(np.resize(small_image, (h, w, 3)))
    pred = Predictor(local_model, device="cpu", tile=tile, overlap=16).predict(image)
    assert pred.label.shape == (h, w) and pred.label.dtype == np.uint8
    assert pred.confidence.shape == (h, w) and pred.confidence.dtype == np.float16
    conf = pred.confidence.astype(np.float32)
    assert conf.min() >= 0 and conf.max() <= 1
    assert pred.label.max() < 21


def test_grid_covers_every_pixel_with_the_last_tile_flush():
    for length in (100, 500, 1025, 4096, 8193):
        size, starts = axis_tiles(length, 512, 64)
        assert starts[0] == 0 and starts[-1] + size == length and size <= 512
        covered = np.zeros(length, bool)
        for s in starts:
            covered[s : s + size] = True
        assert covered.all()
        assert all(b - a <= size - 32 for a, b in itertools.pairwise(starts))
    grid = make_grid(300, 100, 128, 32)
    assert grid.tile_w == 100 and len(grid.xs) == 1 and len(grid.ys) == 3
    assert sum(rows for _, rows, _ in grid.bands()) == 300
    window = blend_window(64, 48)
    assert window.shape == (64, 48) and window.min() > 0 and window.max() == 1


def test_cancel_between_tiles_stops_promptly(local_model, small_image):
    predictor = Predictor(local_model, device="cpu", tile=64, overlap=16)
    passes = []
    predictor.model.module.register_forward_hook(lambda *_: passes.append(1))
    gen = predictor.iter_predict(small_image)
    first = next(gen)
    assert first.done == 1 and first.total == 9 and len(passes) == 1
    gen.close()
    assert len(passes) == 1  # none of the 8 other tiles ran
    with pytest.raises(StopIteration):
        next(gen)


def test_the_tile_is_the_whole_image_when_it_fits_else_the_largest_that_fits(local_model):
    from core.compute.devices import device_memory_budget
    from core.inference.predictor import TILE_CHOICES

    predictor = Predictor(local_model, device="cpu", precision="fp32")
    whole = predictor.plan(1024, 1024)  # a photo runs whole, even in fp32
    assert len(whole) == 1 and (whole.tile_h, whole.tile_w) == (1024, 1024)
    big = predictor.plan(8192, 8192)
    budget = device_memory_budget(torch.device("cpu"))
    fits = [t for t in TILE_CHOICES if predictor._cost(t, t, 8192, 8192) <= budget]
    assert fits and max(fits) < TILE_CHOICES[0]  # not even the largest standard tile fits
    assert big == make_grid(8192, 8192, max(fits), predictor.overlap)  # the largest that fits
    wide = predictor.plan(300, 20000)
    assert wide.tile_h == 300 and wide.tile_w < 20000  # a short image keeps its height in one tile
    predictor.tile = 200
    assert predictor.plan(8192, 8192).tile_h == 200  # an explicit tile always wins


class SmallGpu(nn.Module):
    """Wraps a real model and runs out of memory, as a small GPU would, above a pixel count."""

    def __init__(self, inner: nn.Module, max_pixels: int) -> None:
        super().__init__()
        self.inner = inner
        self.max_pixels = max_pixels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] * x.shape[-2] * x.shape[-1] > self.max_pixels:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner(x)


def test_out_of_memory_retries_with_smaller_tiles(local_model, small_image):
    model = SegmentationModel(SmallGpu(local_model.module, 64 * 64), local_model.info)
    predictor = Predictor(model, device="cpu", min_tile=32, overlap=16)
    events, result = run_generator(predictor.iter_predict(small_image))
    assert predictor.tile == 64
    assert any("retrying with 64 px tiles" in e.message for e in events)
    assert predictor.warnings and result.label.shape == (128, 128)
    direct = Predictor(local_model, device="cpu", tile=64, overlap=16).predict(small_image)
    np.testing.assert_array_equal(result.label, direct.label)


def test_out_of_memory_on_a_single_tile_shrinks_the_tile_not_the_batch(local_model, small_image):
    # Found on an H200 (bench/gpu_check.py): a whole image is one tile, yet three retries
    # halved a batch of 8 before the tile shrank.
    model = SegmentationModel(SmallGpu(local_model.module, 64 * 64), local_model.info)
    predictor = Predictor(model, device="cpu", batch_size=8, min_tile=32, overlap=16)
    result = predictor.predict(small_image)
    assert "retrying with 64 px tiles" in predictor.warnings[0]
    assert predictor.warnings[1:] == ["out of memory on cpu: retrying with 1 tiles per batch"]
    direct = Predictor(local_model, device="cpu", tile=64, overlap=16).predict(small_image)
    np.testing.assert_array_equal(result.label, direct.label)


def test_out_of_memory_at_the_smallest_tile_on_cpu_is_a_clear_error(local_model, small_image):
    model = SegmentationModel(SmallGpu(local_model.module, 10), local_model.info)
    with pytest.raises(PredictionError, match="out of memory even with 32 px tiles on the CPU"):
        Predictor(model, device="cpu", min_tile=32).predict(small_image)


def test_bad_image_array_is_refused(local_model):
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        Predictor(local_model, device="cpu").predict(np.zeros((8, 8), np.uint8))


def test_bf16_and_fp32_predictions_agree_and_checkpoints_stay_fp32(local_model, small_image, tmp_path):
    reference = Predictor(local_model, device="cpu", precision="fp32")
    assert reference.dtype == torch.float32 and "bf16" not in reference.device_name
    fast = Predictor(local_model, device="cpu", precision="bf16")
    assert fast.device_name.endswith("bf16)") and fast.model.module.fc6.weight.dtype == torch.bfloat16
    # The caller's model is the caller's: neither predictor cast it or took its tensors.
    weight = local_model.module.fc6.weight
    assert weight.dtype == torch.float32 and weight.data_ptr() != reference.model.module.fc6.weight.data_ptr()
    a, b = reference.predict(small_image), fast.predict(small_image)
    # Near-uniform probabilities (max ~0.06 over 21 classes) are the worst case for bf16 rounding;
    # the trained model in test_train agrees on >= 99.5%.
    assert len(np.unique(a.label)) >= 3 and (a.label == b.label).mean() >= 0.98
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, fast.model)
    assert load_checkpoint(path).module.fc6.weight.dtype == torch.float32


def test_unknown_precision_is_refused(local_model):
    with pytest.raises(DeviceError, match="unknown precision 'fp8'; choose one of auto, fp32, bf16"):
        Predictor(local_model, device="cpu", precision="fp8")


@pytest.mark.parametrize(
    ("amx", "avx512_bf16", "machine", "speed_up", "expected", "measured"),
    [
        (True, True, "x86_64", 0.5, True, False),  # AMX: bf16, without timing anything
        (False, False, "x86_64", 9.0, False, False),  # x86 without bf16 instructions: emulated, slow
        (False, False, "AMD64", 9.0, False, False),
        (False, True, "x86_64", 1.7, True, True),  # AVX512-BF16 alone: measured, and faster
        (False, True, "x86_64", 1.2, False, True),  # ... measured, not enough faster
        (None, None, "arm64", 2.0, True, True),  # torch cannot tell: measured
        (None, None, "aarch64", 1.0, False, True),
        (None, False, "arm64", 1.6, True, True),  # "no AVX512" says nothing about ARM
    ],
)
def test_the_bf16_decision(amx, avx512_bf16, machine, speed_up, expected, measured):
    from core.compute.devices import bf16_decision

    timed = []
    result = bf16_decision(amx, avx512_bf16, machine, lambda: timed.append(1) or speed_up)
    assert result is expected and bool(timed) is measured


def test_training_decides_bf16_by_timing_a_training_step_with_its_own_threshold():
    """AVX512-BF16 without AMX: a 1.3x faster training step switches training to bf16 where the
    same gain in inference would not; the timing measured is a real forward and backward."""
    from core.compute.devices import TRAINING_SPEED_UP, _bf16_training_speed_up, bf16_decision

    assert bf16_decision(False, True, "x86_64", lambda: 1.3, threshold=TRAINING_SPEED_UP)
    assert not bf16_decision(False, True, "x86_64", lambda: 1.3)
    assert not bf16_decision(False, True, "x86_64", lambda: 1.1, threshold=TRAINING_SPEED_UP)
    assert 0.05 < _bf16_training_speed_up() < 50


def test_a_scaled_model_predicts_what_its_evaluation_scores(local_model, small_image):
    """At an input scale of 2 the scores come back to the image's size before the argmax, the
    way ``core.training.evaluate`` (the learner's held-out check) and the ONNX export compute them."""
    from core.training.evaluate import confusion

    reference = copy.deepcopy(local_model)
    local_model.info.scale = reference.info.scale = 2.0
    label = Predictor(local_model, device="cpu", precision="fp32").predict(small_image).label
    matrix = confusion(reference.module, [(small_image, label)], reference.info, torch.device("cpu")).matrix
    agreement = np.trace(matrix) / matrix.sum()
    assert agreement > 0.999, f"prediction and evaluation agree on only {agreement:.2%} of pixels"


def test_a_shrinking_scale_runs_in_bf16(local_model, small_image):
    local_model.info.scale = 0.5  # antialiased resizing, which has no bf16 kernel
    fast = Predictor(local_model, device="cpu", precision="bf16")
    assert fast.dtype == torch.bfloat16 and fast.model.module.fc6.weight.dtype == torch.bfloat16
    prediction = fast.predict(small_image)
    reference = Predictor(local_model, device="cpu", precision="fp32").predict(small_image)
    assert prediction.label.shape == small_image.shape[:2]
    assert len(np.unique(reference.label)) >= 3 and (prediction.label == reference.label).mean() >= 0.95
