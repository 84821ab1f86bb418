"""The assist loop (``core.training.assist``) and the simulated annotator of ``bench/strokes.py``:
strokes train before any review, painted pixels never change, a model that has learnt nothing
shows nothing, and the annotator's rules on cases whose strokes are counted by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from bench.strokes import Manual, annotate, edge_band, next_stroke, stroke
from core.io.labels import VOID, classes_from_names
from core.model.checkpoints import ModelInfo, new_model
from core.training.assist import Assistant
from core.training.learner import LearnerConfig

CONFIG = LearnerConfig(device="cpu", precision="fp32", crop=32, batch_size=2, rest_after_steps=10**9)


def squares(*placed: tuple[int, int, int, int], size: int = 40, fill: int = 0) -> np.ndarray:
    """A truth of ``fill`` with squares ``(class, top, left, side)`` on it."""
    truth = np.full((size, size), fill, np.uint8)
    for c, top, left, side in placed:
        truth[top : top + side, left : left + side] = c
    return truth


def test_a_stroke_is_the_disk_around_the_innermost_pixel_inside_its_component():
    component = np.zeros((20, 20), bool)
    component[5:12, 5:12] = True  # 7x7: the centre is 4 px from the outside
    painted = stroke(component)
    assert painted[8, 8] and painted[8, 12 - 1] and not painted[5, 5]  # the corners are 4.24 px away
    assert painted.sum() == 49 - 4 and not (painted & ~component).any()


def test_the_band_is_the_layer_either_side_of_an_edge_and_void_is_no_class():
    truth = squares((1, 10, 10, 7))
    truth[:, 30:] = VOID
    band = edge_band(truth)
    assert band[9, 12] and band[10, 12] and not band[11, 12] and not band[8, 12]
    assert not band[5, 29] and not band[5, 30]  # next to void only


def test_manual_annotation_paints_the_largest_error_first_and_stops_below_ten_pixels():
    """Class 2's 9x9 square (7x7 outside the band) comes first and leaves four one-pixel corners;
    class 1's 7x7 (5x5) is painted whole; the 4x4 square (2x2 outside the band) is never worth
    a stroke. Two strokes, counted by hand."""
    truth = squares((2, 2, 2, 9), (1, 20, 20, 7), (1, 32, 5, 4))
    band = edge_band(truth)
    label = np.zeros_like(truth)
    first = next_stroke(label, truth, band, None)
    assert first[0] == 2 and first[1].sum() == 49 - 4
    done = annotate(Manual(), "squares", np.zeros((40, 40, 3), np.uint8), truth, 0.0)
    assert done.strokes == 2
    assert done.iou == pytest.approx((45 + 25) / (49 + 25 + 4))


def test_while_nothing_is_predicted_each_class_gets_an_opening_stroke_in_turn():
    """Two 7x7 squares of classes 0 and 1 on void, and an assistant that never learns (no time
    to): round one paints each square but its four corners, round two one corner of each; then
    every error is a single pixel. Four strokes, counted by hand; manual needs one."""
    truth = squares((0, 5, 5, 7), (1, 20, 20, 7), fill=VOID)
    image = np.zeros((40, 40, 3), np.uint8)
    model = new_model(ModelInfo(variant="unet", classes=classes_from_names(["background", "a"])))
    assistant = Assistant(model, CONFIG)
    opening = annotate(assistant, "squares", image, truth, learn_s=0.0)
    assistant.close()
    assert opening.strokes == 4
    assert annotate(Manual(), "squares", image, truth, 0.0).strokes == 1


@pytest.fixture
def tile(data_dir):
    from PIL import Image

    from core.io.images import read_image

    image = read_image(data_dir / "nuclei/nuclei.tif")[:64, :64]
    truth = (np.asarray(Image.open(data_dir / "nuclei/nuclei_instances.tif"))[:64, :64] > 0).astype(np.uint8)
    return image, truth


def painted_strokes(truth: np.ndarray) -> np.ndarray:
    """A few pixels of each class, as strokes would paint them."""
    painted = np.full(truth.shape, VOID, np.uint8)
    for c in (0, 1):
        ys, xs = np.nonzero(truth == c)
        assert ys.size, "a tile with both classes"
        pick = np.linspace(0, ys.size - 1, 12).astype(int)
        painted[ys[pick], xs[pick]] = c
    return painted


def test_an_untrained_model_shows_nothing_and_strokes_train_before_any_review(tile):
    image, truth = tile
    torch.manual_seed(0)
    model = new_model(ModelInfo(variant="unet", classes=classes_from_names(["background", "nucleus"])))
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    assistant = Assistant(model, CONFIG)
    assistant.start("tile", image)
    assert (assistant.predict() == VOID).all()  # no guesses from a model that has learnt nothing
    painted = painted_strokes(truth)
    assistant.paint(painted)
    for _ in range(20):  # steps, not seconds: a slow CPU takes more calls
        if assistant.learn(0.2) and assistant.learner.steps >= 3:
            break
    assert assistant.learner.steps >= 3  # no review yet: the strokes alone were trained on
    label = assistant.predict()
    assistant.close()
    assert not (label == VOID).any()  # the unpainted pixels are predicted
    np.testing.assert_array_equal(label[painted != VOID], painted[painted != VOID])
    assert all(torch.equal(before[k], v) for k, v in model.module.state_dict().items())  # the caller's own


@pytest.mark.parametrize("stopping", [False, True])
def test_a_refresh_of_the_painted_image_with_the_network_stops_when_the_learner_is_stopping(
    tile, tmp_path, stopping
):
    """Closing the app during a refresh of a 24-megapixel photo waited a minute for it."""
    from core.store.project import Project
    from core.training.assist import REFRESH_AFTER_STEPS, LivePrediction
    from core.training.project_learner import learn
    from core.training.review_feed import ReviewFeed

    image, truth = tile
    torch.manual_seed(0)
    model = new_model(ModelInfo(variant="unet", classes=classes_from_names(["background", "nucleus"])))
    feed, learners, lives = ReviewFeed(), [], []
    with Project.create(tmp_path / "proj", classes=model.info.classes) as project:
        gen = learn(project, model, CONFIG, feed, started=learners.append, stopping=lambda: stopping)
        feed.live("tile", image, painted_strokes(truth))
        for event in gen:
            lives += [event] if isinstance(event, LivePrediction) else []
            if learners[0].steps > REFRESH_AFTER_STEPS[0]:
                break
        gen.close()
    # the quick fill-in (after its first steps and after all), then the network's refresh after
    # the network's first steps, unless stopping
    assert len(lives) == (2 if stopping else 3)


def test_the_app_fills_in_after_the_quick_classifiers_first_steps_then_as_it_would_at_once(tile):
    from core.training.assist import LivePrediction

    image, truth = tile
    at_once, _painted = painting(image, truth)
    at_once.learn(1e-9)  # all the quick classifier's steps, no time for the network's
    expected = at_once.predict()
    at_once.close()
    in_app, _painted = painting(image, truth)
    events = in_app.events()
    first, then = itertools.islice((e for e in events if isinstance(e, LivePrediction)), 2)
    events.close()
    in_app.close()
    assert in_app.learner.steps == 0  # both before the network's first step
    assert not np.array_equal(first.label, then.label)  # the first is of fewer steps
    np.testing.assert_array_equal(then.label, expected)


def painting(image: np.ndarray, truth: np.ndarray, **kw) -> tuple[Assistant, np.ndarray]:
    """An assistant of a U-Net from random weights, started on ``image`` with a few strokes."""
    torch.manual_seed(0)
    model = new_model(ModelInfo(variant="unet", classes=classes_from_names(["background", "nucleus"])))
    assistant = Assistant(model, CONFIG, **kw)
    assistant.start("tile", image)
    painted = painted_strokes(truth)
    assistant.paint(painted)
    return assistant, painted


def test_with_a_spare_core_strokes_fill_in_on_one_thread_fewer_then_on_all_again(tile):
    """A window shares the CPU: from a stroke to the network's last refresh after it, the
    learner's thread leaves it a core (on 2 cores the window's longest stall at 24 megapixels
    was 46-66 ms, 37-39 with a core spared); then it trains on all of them again."""
    from core.training.assist import REFRESH_AFTER_STEPS

    image, truth = tile
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assistant, painted = painting(image, truth, spare_core=True)
        events, seen = assistant.events(), []
        for _event in events:
            seen.append((assistant.learner.steps, torch.get_num_threads()))
            if assistant.learner.steps > REFRESH_AFTER_STEPS[-1] + 1:
                break
        assert {n for steps, n in seen if steps <= REFRESH_AFTER_STEPS[-1]} == {1}
        assert seen[-1][1] == 2  # filled in: all the cores again
        painted[0, 0] = 1 - painted[0, 0] if painted[0, 0] != VOID else 1  # one more stroke
        assistant.paint(painted)
        next(events)
        assert torch.get_num_threads() == 1
        events.close()
        assert torch.get_num_threads() == 2  # stopping gives them back
        assistant.close()
        plain, _painted = painting(image, truth)  # without a window to spare a core for
        plain_events = plain.events()
        next(plain_events)
        assert torch.get_num_threads() == 2
        plain_events.close()
        plain.close()
    finally:
        torch.set_num_threads(before)


def test_painted_pixels_never_change_even_where_the_network_disagrees(tile):
    image, truth = tile
    assistant, painted = painting(image, truth)
    while assistant.learner.steps < 3:
        assistant.learn(0.2)
    contrary = np.where(painted == VOID, VOID, 1 - painted).astype(np.uint8)  # every stroke flipped
    assistant.start("tile", image, painted=contrary)
    label = assistant.predict()
    assistant.close()
    np.testing.assert_array_equal(label[contrary != VOID], contrary[contrary != VOID])


def test_the_image_being_painted_is_never_held_out_until_it_is_reviewed(tiles_of_nuclei):
    model = new_model(ModelInfo(variant="unet", classes=classes_from_names(["background", "nucleus"])))
    assistant = Assistant(model, CONFIG)
    learner = assistant.learner
    for i, (image, truth) in enumerate(tiles_of_nuclei):
        assistant.start(f"t{i}", image)
        assistant.paint(painted_strokes(truth))
        train, heldout = learner._split()
        assert f"t{i}" in {e.id for e in train} and f"t{i}" not in {e.id for e in heldout}
        assistant.review(truth)
    assistant.close()
    assert learner.state()["heldout"] == ["t2"]  # the third reviewed image, as without strokes
    assert learner.state()["seen"] == ["t0", "t1", "t2", "t3"]


@pytest.fixture
def tiles_of_nuclei(data_dir):
    from PIL import Image

    from core.io.images import read_image

    image = read_image(data_dir / "nuclei/nuclei.tif")
    truth = (np.asarray(Image.open(data_dir / "nuclei/nuclei_instances.tif")) > 0).astype(np.uint8)
    return [(image[y : y + 64, x : x + 64], truth[y : y + 64, x : x + 64]) for y, x in
            [(0, 0), (0, 64), (64, 0), (64, 64)]]  # fmt: skip


def test_the_quick_classifier_fills_in_the_image_before_the_network_has_taken_a_step(tile):
    image, truth = tile
    assistant, painted = painting(image, truth)
    assistant.learn(1e-9)  # the quick classifier's steps, then no time for the network's
    assert assistant.learner.steps == 0 and assistant.quick_share == 1.0
    label = assistant.predict()
    network_only, _ = painting(image, truth, quick=False)
    network_only.learn(1e-9)
    unfilled = network_only.predict()
    assistant.close()
    network_only.close()
    assert (unfilled[painted == VOID] == VOID).all()  # nothing learnt: nothing shown
    assert not (label == VOID).any()
    np.testing.assert_array_equal(label[painted != VOID], painted[painted != VOID])
    assert np.mean(label == truth) > 0.8  # 24 painted pixels of 4,096


def test_learning_without_the_network_takes_the_quick_steps_whatever_the_time(tile):
    """``learn(network=False)``, the benchmark's measure that does not depend on the CPU: the
    quick classifier's steps after a change of the strokes, never a network step."""
    image, truth = tile
    assistant, _ = painting(image, truth)
    assert assistant.learn(30.0, network=False) == 0  # returns at once
    label = assistant.predict()
    assert assistant.learner.steps == 0 and not (label == VOID).any()
    assistant.close()


def test_the_quick_classifier_follows_how_often_each_class_is_painted_where_features_agree():
    """Pixels that look alike, painted background nine times in ten: the quick classifier calls
    them background (weighting the classes by rarity made them a toss-up, and the rarer class
    spilled over its edges)."""
    from core.training.quick_classifier import QuickClassifier

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(5000, 6, generator=generator) * 0.01  # nothing to tell them apart
    y = (torch.arange(5000) % 10 == 0).long()
    quick = QuickClassifier(6, 2, seed=0)
    quick.fit(x, y, 150)
    p_rare = quick.probabilities(x)[:, 1]
    assert 0.02 < float(p_rare.mean()) < 0.25


@pytest.mark.parametrize("shape", [(1, 1, 2), (1, 5, 3), (4, 1, 1), (37, 53, 4)])
def test_the_quick_probabilities_neighbourhood_mean_is_avg_pool_over_the_pixels_inside(shape):
    import torch.nn.functional as F

    from core.training.assist import _neighbourhood_mean

    values = torch.rand(*shape)
    expected = F.avg_pool2d(values.permute(2, 0, 1)[None], 3, stride=1, padding=1, count_include_pad=False)
    torch.testing.assert_close(_neighbourhood_mean(values), expected[0].permute(1, 2, 0))


def test_pixel_features_see_intensity_edges_blobs_and_structure_at_every_scale():
    from core.training.pixel_features import PER_SIGMA, SIGMAS, feature_count, pixel_features

    flat = pixel_features(np.full((40, 50, 3), 100, np.uint8)).float()
    assert flat.shape == (40, 50, feature_count(3)) == (40, 50, 108)
    intensity = [i * PER_SIGMA * 3 + c for i in range(len(SIGMAS)) for c in range(3)]
    assert torch.allclose(flat[..., intensity], torch.tensor(100 / 255), atol=1e-3)
    others = [f for f in range(108) if f not in intensity]  # nothing else on a flat image
    assert flat[..., others].abs().max() < 1e-3
    step = np.zeros((40, 50), np.uint8)
    step[:, 25:] = 200
    grey = pixel_features(step).float()  # one channel
    edges = grey[..., 1]  # sigma 0.5's gradient
    assert edges[20].argmax() in (24, 25) and edges[20, 5] < 1e-3
    # the structure tensor at sigma 2: strong across the edge, none along it, nothing far away
    strong, weak = grey[..., 2 * PER_SIGMA + 4], grey[..., 2 * PER_SIGMA + 5]
    assert strong[20, 23:27].min() > 0.05 and weak[20].max() < 1e-2 and strong[20, 5] < 1e-3
    corner = np.zeros((40, 50), np.uint8)
    corner[20:, 25:] = 200
    assert pixel_features(corner).float()[20, 25, 2 * PER_SIGMA + 5] > 0.02  # changes both ways at a corner
    # each channel its own: an edge in the second channel only is not in the first's features
    two = np.zeros((40, 50, 2), np.uint8)
    two[:, 25:, 1] = 200
    features = pixel_features(two).float()
    first, second = (2 * PER_SIGMA + 4) * 2, (2 * PER_SIGMA + 4) * 2 + 1
    assert features[20, 25, first] < 1e-3 < 0.05 < features[20, 25, second]
    tiny = pixel_features(np.zeros((1, 3, 3), np.uint8))
    assert tiny.shape == (1, 3, 108) and torch.isfinite(tiny.float()).all()


@pytest.mark.parametrize("sigma", [0.5, 2.0, 4.0, 8.0, 16.0])
def test_the_features_gaussian_blur_is_the_convolution_with_repeated_borders(sigma):
    """Both ways of blurring (shifted sums, FFT) give the plain convolution of the image padded
    with its border pixels."""
    import math

    import torch.nn.functional as F

    from core.training.pixel_features import _blur

    x = torch.rand(2, 1, 37, 90)
    radius = math.ceil(4 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-t * t / (2 * sigma * sigma))
    kernel = kernel / kernel.sum()
    expected = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    expected = F.conv2d(F.pad(expected, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    torch.testing.assert_close(_blur(x, sigma), expected, atol=1e-5, rtol=1e-4)


def test_a_trained_fcn_predicts_at_once_and_learns_from_strokes_as_itself(tile):
    """From a checkpoint (an FCN marked trained that says background everywhere): the image is
    predicted before any stroke, by the network alone until a review shows the quick classifier
    predicts better; its strokes train the FCN itself, and stay as painted."""
    image, truth = tile
    torch.manual_seed(0)
    info = ModelInfo(variant="fcn32s", classes=classes_from_names(["background", "nucleus"]), trained=True)
    model = new_model(info)
    with torch.no_grad():
        model.module.score.bias.copy_(torch.tensor([10.0, 0.0]))
    assistant = Assistant(model, LearnerConfig(device="cpu", precision="fp32", crop=64, batch_size=2))
    assistant.start("tile", image)
    assert (assistant.predict() == 0).all() and assistant.quick_share == 0.0
    painted = painted_strokes(truth)
    assistant.paint(painted)
    while assistant.learner.steps < 2:
        assistant.learn(0.2)
    label = assistant.predict()
    assistant.close()
    np.testing.assert_array_equal(label[painted != VOID], painted[painted != VOID])
    assert not (label == VOID).any()
    assert not torch.equal(assistant.learner.net.score.bias.detach(), model.module.score.bias)  # it learnt
