"""The continuous learner: reviews join and leave while it runs, adoption only on a better
held-out score, bounded history, both precisions, and the crop sampler."""

import copy
import itertools
import time

import numpy as np
import pytest
import torch
from PIL import Image

from core.inference.predictor import Predictor
from core.io.images import read_image
from core.io.labels import VOID, classes_from_names
from core.model.checkpoints import ModelInfo, SegmentationModel, new_model, read_info
from core.training.example_memory import ExampleMemory, usable_memory
from core.training.history import LearningHistory
from core.training.learner import SCORING_EVERY, Adopted, ContinuousLearner, LearnerConfig
from core.training.sampling import CropSampler, Example, PixelPool, object_scale
from core.training.step import StepRunner, build_optimizer
from core.training.weight_average import averaged_model

CLASSES = classes_from_names(["background", "nucleus"])


@pytest.fixture(scope="module")
def tiles(data_dir) -> list[tuple[np.ndarray, np.ndarray]]:
    """Six 64x64 tiles of the microscopy image with their 2-class truth."""
    image = read_image(data_dir / "nuclei/nuclei.tif")
    truth = (np.asarray(Image.open(data_dir / "nuclei/nuclei_instances.tif")) > 0).astype(np.uint8)
    return [(image[y : y + 64, x : x + 64], truth[y : y + 64, x : x + 64]) for y, x in
            [(0, 0), (0, 64), (64, 0), (64, 64), (128, 0), (128, 64)]]  # fmt: skip


@pytest.fixture(scope="module")
def base_model() -> SegmentationModel:
    torch.manual_seed(0)
    return new_model(ModelInfo(variant="fcn32s", classes=CLASSES))


@pytest.fixture(scope="module")
def unet() -> SegmentationModel:
    """The app's small network, for the tests whose subject is the learner's rules, not the FCN
    (a step of the 134 M-weight FCN-32s costs seconds)."""
    torch.manual_seed(0)
    return new_model(ModelInfo(variant="unet", classes=CLASSES))


def constant_model(base: SegmentationModel, cls: int) -> SegmentationModel:
    """A model that predicts class ``cls`` everywhere (through its last layer's bias)."""
    model = copy.deepcopy(base)
    last = model.module.head if model.info.variant == "unet" else model.module.score
    with torch.no_grad():
        last.bias.zero_()
        last.bias[cls] = 10.0
    return model


def small_config(**kw) -> LearnerConfig:
    """A learner that trains on small crops and never rests on its own (the tests about resting
    set it themselves)."""
    base = dict(crop=64, batch_size=2, device="cpu", precision="fp32", frozen=("fc6", "fc7"),
                eval_every_s=0.0, budget_steps=0, rest_after_steps=10**9)  # fmt: skip
    return LearnerConfig(**{**base, **kw})


def examples(tiles, n: int) -> list[Example]:
    return [Example(f"t{i}", image, label) for i, (image, label) in enumerate(tiles[:n])]


def test_a_review_joins_and_leaves_training_without_a_restart(base_model, tiles):
    learner = ContinuousLearner(base_model, small_config(budget_steps=10**9))
    run = learner.run()
    assert next(run).state == "idle"
    first, second = examples(tiles, 2)
    learner.add(first)
    event = next(run)
    assert (event.state, event.train_images, event.step) == ("training", 1, 1)
    learner.add(second)
    event = next(run)
    assert (event.train_images, event.step) == (2, 2)  # the same run, one step later
    learner.remove("t0")
    assert next(run).train_images == 1
    run.close()


def test_the_third_review_is_held_out_and_never_trained_on(base_model, tiles):
    learner = ContinuousLearner(base_model, small_config())
    for e in examples(tiles, 6):
        learner.add(e)
    train, heldout = learner._split()
    assert [e.id for e in heldout] == ["t2"]  # the third, then every fifth (the eighth...)
    assert "t2" not in {e.id for e in train} and len(train) == 5
    # The split survives a restart through the saved state.
    again = ContinuousLearner(base_model, small_config(), state=learner.state())
    for e in examples(tiles, 6):
        again.add(e)
    assert [e.id for e in again._split()[1]] == ["t2"]


def test_better_weights_are_adopted_and_worse_ones_are_not(unet, tiles, tmp_path):
    background, nucleus = constant_model(unet, 0), constant_model(unet, 1)
    # lr 0: the weights stay what they are, so the held-out comparison alone decides.
    worse = ContinuousLearner(nucleus, small_config(lr=0.0), in_use=background)
    better = ContinuousLearner(
        background, small_config(lr=0.0), in_use=nucleus, history=LearningHistory(tmp_path / "h")
    )
    for learner in (worse, better):
        for e in examples(tiles, 3):
            learner.add(e)
    run = worse.run()
    events = [next(run) for _ in range(8)]
    run.close()
    assert not any(isinstance(e, Adopted) for e in events)
    assert worse.score is not None and worse.score < worse._in_use_score[1]  # it was scored, and lost
    run = better.run()
    adopted = next(e for e in (next(run) for _ in range(4)) if isinstance(e, Adopted))
    run.close()
    assert adopted.before < adopted.after and adopted.heldout_images == 1
    assert "held-out image" in adopted.describe()
    assert read_info(adopted.path).training["heldout_miou"] == pytest.approx(adopted.after)
    prediction = adopted.model.module(torch.zeros(1, 3, 32, 32)).argmax(1)
    assert (prediction == 0).all()  # the caller got the adopted weights
    assert LearningHistory(tmp_path / "h").latest_path.exists()  # closing kept what it learnt


def test_a_model_in_use_for_another_class_list_loses_at_the_first_score(base_model, tiles):
    torch.manual_seed(1)
    voc = new_model(ModelInfo(variant="fcn32s"))  # 21 classes; the project now has 2
    learner = ContinuousLearner(base_model, small_config(lr=0.0), in_use=voc)
    for e in examples(tiles, 3):
        learner.add(e)
    run = learner.run()
    adopted = next(e for e in (next(run) for _ in range(4)) if isinstance(e, Adopted))
    run.close()
    assert np.isnan(adopted.before) and "mIoU ? ->" in adopted.describe()


def test_it_rests_without_improvement_keeps_what_it_learnt_and_a_new_review_wakes_it(unet, tiles, tmp_path):
    history = LearningHistory(tmp_path / "learning")
    learner = ContinuousLearner(unet, small_config(budget_steps=10**9, rest_after_steps=3), history=history)
    first, second = examples(tiles, 2)
    learner.add(first)
    run = learner.run()
    states = []
    while "resting" not in states:
        states.append(next(run).state)
        assert len(states) < 500, "never rested"
    steps = learner.steps
    assert states[0] == "training" and steps > 0
    assert history.latest_path.exists()  # resting keeps the weights, as quitting does
    assert next(run).state == "resting" and learner.steps == steps  # no training while resting
    learner.add(second)
    event = next(run)
    assert (event.state, event.train_images, learner.steps) == ("training", 2, steps + 1)
    run.close()


def test_it_never_rests_before_scoring_what_it_trained_since_the_last_review(unet, tiles):
    background, nucleus = constant_model(unet, 0), constant_model(unet, 1)
    # Scores come only every 0.5 s of training; the rest is due at once. lr 0: the model in use
    # keeps winning, so nothing is adopted and only a score can let it rest.
    config = small_config(lr=0.0, eval_every_s=0.5, budget_steps=10**9, rest_after_steps=0)
    learner = ContinuousLearner(nucleus, config, in_use=background)
    for e in examples(tiles, 3):
        learner.add(e)
    run = learner.run()
    for review in examples(tiles, 5)[3:]:
        scoring_seconds = learner.scoring_seconds
        while (event := next(run)).state != "resting":
            assert event.state == "training" and learner.train_seconds < 30, "adopted or never rested"
        assert learner.scoring_seconds > scoring_seconds, "rested before scoring its training"
        learner.add(review)
        assert next(run).state == "training"  # the review woke it
    run.close()


def test_with_fewer_than_three_reviews_it_adopts_after_each_budget(base_model, tiles):
    learner = ContinuousLearner(base_model, small_config(budget_steps=0))
    learner.add(examples(tiles, 1)[0])
    run = learner.run()
    events = [next(run) for _ in range(4)]
    run.close()
    adopted = [e for e in events if isinstance(e, Adopted)]
    assert adopted and adopted[0].after is None and "trained" in adopted[0].describe()


def test_history_keeps_the_best_few_and_the_newest(tmp_path):
    base_model = new_model(ModelInfo(variant="unet", classes=CLASSES))  # the history keeps any network
    history = LearningHistory(tmp_path / "learning", keep=3)
    scores = [0.5, 0.9, 0.4, 0.8, 0.3, 0.2]
    for step, score in enumerate(scores):
        history.save_adopted(base_model, score, heldout=2, step=step)
    kept = history.entries()
    assert [e.score for e in kept] == [0.9, 0.8, 0.2]  # the two best, and the newest
    opt = build_optimizer(base_model.module, lr=1e-4)
    history.save_latest(base_model, opt.state_dict(), {"heldout": ["a"], "seen": ["a"]})
    history.save_latest(base_model, opt.state_dict(), {"heldout": ["a"], "seen": ["a", "b"]})
    files = sorted(p.name for p in history.folder.iterdir())
    assert files == [*(e.path.name for e in kept), "latest.optim.pt", "latest.safetensors", "state.json"]
    model_bytes = history.latest_path.stat().st_size
    assert history.disk_bytes() < 5 * model_bytes
    _model, optim, state = history.load_latest(num_classes=2)
    assert state["seen"] == ["a", "b"] and optim is not None
    assert history.load_latest(num_classes=5) is None  # classes changed since: start afresh


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_both_precisions_lower_the_loss(unet, tiles, precision):
    torch.manual_seed(0)
    net = copy.deepcopy(unet.module).train()
    step = StepRunner(net, build_optimizer(net, lr=1e-3), torch.device("cpu"), precision)
    sampler = CropSampler(64, unet.info.mean, unet.info.std)
    images, masks = sampler.batch(examples(tiles, 2), 4)
    losses = [step(images, masks) for _ in range(4)]
    assert max(losses[-2:]) < 0.9 * losses[0]


def test_crops_centre_on_pixels_the_model_got_wrong(tiles):
    _image, label = tiles[0]
    wrong = np.zeros_like(label, bool)
    wrong[60:64, 0:4] = True  # one corner, the only bright part of the image
    image = np.zeros((64, 64, 3), np.uint8)
    image[wrong] = 255
    example = Example("a", image, label, wrong)
    sampler = CropSampler(32, (0.0,) * 3, (1.0,) * 3, wrong_share=1.0, scale=(1.0, 1.0), seed=1)
    x, y = sampler.batch([example], 12)
    assert x.shape == (12, 3, 32, 32) and y.shape == (12, 32, 32) and y.dtype == torch.int64
    assert all(crop.max() == 1.0 for crop in x)  # the corner is inside every crop
    sampler.wrong_share = 0.0
    x, _ = sampler.batch([example], 12)
    assert not all(crop.max() == 1.0 for crop in x)  # centred on any labelled pixel instead
    void_only = Example("v", image, np.full_like(label, VOID))
    with pytest.raises(ValueError, match="no example has labelled pixels"):
        sampler.batch([void_only], 1)


def test_small_objects_are_learnt_at_twice_the_size(base_model, tiles, local_model, small_image):
    nuclei = [label for _image, label in tiles]
    assert object_scale(nuclei) == 2.0  # nuclei are about 15 px wide: under three score pixels
    assert object_scale(nuclei, stride=1) == 1.0  # a network that scores every pixel needs no zoom
    big = np.zeros((128, 128), np.uint8)
    big[20:100, 30:110] = 3
    big[0:5] = VOID
    assert object_scale([big]) == 1.0 and object_scale([np.zeros((8, 8), np.uint8)]) == 1.0
    learner = ContinuousLearner(base_model, small_config())  # untrained: the labels decide
    learner.add(examples(tiles, 1)[0])
    run = learner.run()
    next(run)
    run.close()
    assert learner.model.info.scale == 2.0 and learner.sampler.zoom == 2.0
    # The predictor honours the scale: the output has the image's size, and differs from x1.
    plain = Predictor(copy.deepcopy(local_model), device="cpu", precision="fp32").predict(small_image)
    local_model.info.scale = 2.0
    zoomed = Predictor(local_model, device="cpu", precision="fp32").predict(small_image)
    assert zoomed.label.shape == plain.label.shape == small_image.shape[:2]
    assert zoomed.confidence.shape == small_image.shape[:2] and zoomed.confidence.dtype == np.float16
    assert 0.05 < np.mean(zoomed.label != plain.label) < 0.95


def test_the_weight_average_follows_weights_and_batch_norm_statistics_and_shares_frozen_ones():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 2, 1))
    net[2].requires_grad_(False)  # frozen layers are shared, not averaged
    average = averaged_model(net, 0.5)
    assert average.module[2].weight is net[2].weight and average.module[0].weight is not net[0].weight
    start = net[0].weight.detach().clone()
    for _ in range(20):
        with torch.no_grad():
            net[0].weight.add_(1.0)
            net[1].running_mean.add_(1.0)
        average.update_parameters(net)
    # Behind the latest weights (each step adds 1: a decay of 0.5 lags by one step), ahead of the start.
    averaged = average.module[0].weight
    assert torch.allclose(averaged, net[0].weight - 1.0, atol=1e-3) and (averaged > start + 15).all()
    # Batch norm's statistics are averaged with the weights they belong to (the old average
    # paired averaged weights with the latest statistics).
    assert torch.allclose(average.module[1].running_mean, net[1].running_mean - 1.0, atol=1e-3)
    with pytest.raises(ValueError, match="between 0 and 1"):
        averaged_model(net, 1.0)


def test_the_learner_adopts_its_weight_average(base_model, tiles):
    learner = ContinuousLearner(base_model, small_config(average=0.9))
    learner.add(examples(tiles, 1)[0])
    run = learner.run()
    adoptions = (e for e in run if isinstance(e, Adopted))
    next(adoptions)  # after the first step the average is that step's weights
    adopted = next(adoptions)
    averaged = learner.average.module.state_dict()
    for name, value in adopted.model.module.state_dict().items():
        assert torch.equal(value, averaged[name].float().cpu()), name
    assert not torch.equal(adopted.model.module.score.weight, learner.net.score.weight.cpu())  # not latest
    assert adopted.model.module.score.weight.data_ptr() != averaged["score.weight"].data_ptr()  # its own copy
    run.close()


def test_the_learner_holds_one_copy_of_frozen_weights(base_model, tiles):
    """FC6/FC7 are frozen and hold most of an FCN's weights: the average the learner scores and
    the model in use it compares with share them with the network it trains."""
    learner = ContinuousLearner(base_model, small_config(average=0.9))
    fc6 = learner.net.fc6.weight
    assert not fc6.requires_grad
    assert learner.average.module.fc6.weight is fc6 and learner._scorer.fc6.weight is fc6
    assert learner._scorer.score.weight is not learner.net.score.weight  # what training changes: copied
    learner.add(examples(tiles, 1)[0])
    run = learner.run()
    next(e for e in run if isinstance(e, Adopted))
    run.close()
    assert learner._scorer.fc6.weight is fc6  # still shared after an adoption
    other = constant_model(base_model, 1)
    with torch.no_grad():
        other.module.fc6.weight.mul_(2)  # a model in use whose frozen layers differ: copied, not shared
    learner = ContinuousLearner(base_model, small_config(average=0.9), in_use=other)
    assert learner._scorer.fc6.weight is not learner.net.fc6.weight
    assert torch.equal(learner._scorer.fc6.weight, other.module.fc6.weight)


def test_fcn4s_learns_21_classes_from_scratch_without_diverging(data_dir):
    """The x2 upsamplers mix every class into every other: at the score layers' 100x rate,
    three of them in a row blew a 21-class FCN-4s up within three steps (loss 544), as in
    bench/gui_latency.py's window, which paints nuclei as class 15 of the VOC list. Adam's
    first steps still spike (9.5 at step 3 here); learning goes on and recovers. Crops of 128
    are enough: with the upsamplers at 100x this diverges at step 3 as at 256."""
    torch.manual_seed(0)
    names = ["background"] + [f"class {i}" for i in range(1, 21)]
    model = new_model(ModelInfo(variant="fcn4s", classes=classes_from_names(names)))
    image = read_image(data_dir / "nuclei/nuclei.tif")[:256]
    label = (np.asarray(Image.open(data_dir / "nuclei/nuclei_instances.tif"))[:256] > 0).astype(np.uint8) * 15
    learner = ContinuousLearner(model, small_config(crop=128, batch_size=2, budget_steps=10**9))
    learner.add(Example("cells", image, label))
    run = learner.run()
    steps = (event for event in run if event.state == "training")
    losses = [next(steps).loss for _ in range(6)]  # a diverging loss would raise TrainingError
    run.close()
    assert losses[-1] < 0.5 * losses[0], losses


def test_the_unet_learns_small_nuclei_at_their_own_scale_with_its_recipe(tiles):
    """Nuclei narrower than 24 px make an FCN learn at 2x; the U-Net scores every pixel and
    stays at 1x. Its recipe (many small crops, a higher learning rate) fills the unset knobs."""
    torch.manual_seed(0)
    assert object_scale([label for _, label in tiles]) == 2.0
    model = new_model(ModelInfo(variant="unet", classes=CLASSES))
    learner = ContinuousLearner(model, small_config(crop=None, batch_size=None, lr=None, budget_steps=10**9))
    assert (learner.config.crop, learner.config.batch_size, learner.config.lr) == (96, 8, 1e-3)
    for e in examples(tiles, 2):
        learner.add(e)
    run = learner.run()
    losses = [next(run).loss for _ in range(40)]
    run.close()
    assert learner.model.info.scale == 1.0
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses
    image, truth = tiles[0]
    label = Predictor(SegmentationModel(learner.net, learner.model.info), device="cpu").predict(image).label
    assert (label != truth).sum() < 0.5 * (truth > 0).sum()  # fewer corrections than painting from scratch


def test_crop_centres_are_drawn_uniformly_from_labelled_pixels_without_an_index_of_them():
    rng = np.random.default_rng(3)
    label = np.where(rng.random((41, 53)) < 0.3, 1, VOID).astype(np.uint8)  # blocks cut at the edges
    label[20:, 30:] = VOID  # whole blocks with nothing labelled
    known = label != VOID
    pool = PixelPool(known)
    assert pool.size == known.sum()
    hits = np.zeros(label.shape, np.int64)
    for _ in range(60 * pool.size):
        y, x = pool.draw(rng, lambda rows, cols: known[rows, cols])
        hits[y, x] += 1
    assert not hits[~known].any()
    counts = hits[known]
    assert counts.min() > 25 and counts.max() < 100  # about 60 each (binomial sd about 8)
    chi2 = float(((counts - 60) ** 2 / 60).sum())
    assert chi2 < 1.3 * counts.size  # uniform: a pool that favours some blocks fails this
    big = np.ones((2000, 3000), bool)
    assert PixelPool(big).nbytes <= big.size / 30  # 8 bytes a pixel before


def test_reviews_past_the_memory_budget_are_mapped_from_files_gone_when_it_stops(unet, tiles, tmp_path):
    history = LearningHistory(tmp_path / "learning")
    history.cache_folder.mkdir(parents=True)
    (history.cache_folder / "000000-image.npy").write_bytes(b"left by a learner that crashed")
    tile = 64 * 64 * 4  # image and label
    config = small_config(budget_steps=10**9, memory_budget_mb=1.5 * tile / 2**20)
    learner = ContinuousLearner(unet, config, history=history)
    assert not any(history.cache_folder.iterdir())
    for e in examples(tiles, 4):  # the third is held out
        learner.add(e)
    assert len(list(history.cache_folder.glob("*.npy"))) == 6  # the first fits; three more, mapped
    run = learner.run()
    losses = [e.loss for e in (next(run) for _ in range(6)) if e.state == "training"]
    assert losses and np.isfinite(losses).all()
    learner.remove("t3")
    assert len(list(history.cache_folder.glob("*.npy"))) == 4
    run.close()
    assert not list(history.cache_folder.glob("*.npy"))


def test_example_memory_maps_the_same_arrays_and_holds_in_ram_when_the_disk_refuses(tiles, tmp_path):
    image, label = tiles[0]
    wrong = label == 1
    memory = ExampleMemory(tmp_path / "cache", budget=0)
    kept = memory.keep(Example("a", image.copy(), label.copy(), wrong.copy()))
    assert memory.mapped("a") and memory.ram_bytes == 0
    assert all(isinstance(a, np.memmap) for a in (kept.image, kept.label, kept.wrong))
    assert (kept.image == image).all() and (kept.label == label).all() and (kept.wrong == wrong).all()
    memory.forget("a")
    assert not list((tmp_path / "cache").iterdir())
    (tmp_path / "blocked").write_text("a file where the folder should be")
    memory = ExampleMemory(tmp_path / "blocked", budget=0)
    kept = memory.keep(Example("b", image, label))
    assert not memory.mapped("b") and kept.image is image and memory.ram_bytes == image.nbytes + label.nbytes
    memory = ExampleMemory(tmp_path / "roomy", budget=10**9)
    assert memory.keep(Example("c", image, label)).image is image and not (tmp_path / "roomy").exists()


def test_scoring_held_out_images_takes_at_most_a_fifth_of_the_learners_time(tiles, data_dir):
    """After a score that took s seconds, the next comes after at least SCORING_EVERY * s seconds
    of training, so scoring is at most a fifth of the learner's time, however many held-out images
    there are: checked on the learner's own clocks, which a busy machine slows alike."""
    image = read_image(data_dir / "nuclei/nuclei.tif")
    truth = (np.asarray(Image.open(data_dir / "nuclei/nuclei_instances.tif")) > 0).astype(np.uint8)
    large = [Example(f"h{i}", image[i * 256 : i * 256 + 256, :256], truth[i * 256 : i * 256 + 256, :256])
             for i in range(2)]  # fmt: skip
    small = examples(tiles, 4)
    model = new_model(ModelInfo(variant="unet", classes=CLASSES))
    learner = ContinuousLearner(model, small_config(crop=32, frozen=(), holdout_every=3, scale=1.0))
    for e in [*small[:2], large[0], *small[2:], large[1]]:  # the third and sixth are held out
        learner.add(e)
    run = learner.run()
    scorings, scored = [], 0.0  # (training seconds when it scored, the scoring's own seconds)
    for _ in range(200):
        trained = learner.train_seconds  # a score comes before the next step
        assert next(run).heldout_images == 2
        if learner.scoring_seconds > scored:
            scored = learner.scoring_seconds
            scorings.append((trained, learner._last_scoring))
    run.close()
    assert len(scorings) >= 2
    for (trained, took), (trained_next, _) in itertools.pairwise(scorings):
        assert trained_next - trained >= SCORING_EVERY * took - 1e-9


def test_a_large_held_out_image_is_scored_where_it_is_labelled(tiles):
    pool_mask = np.zeros((200, 300), bool)
    pool_mask[150:190, 240:280] = True
    top, left = PixelPool(pool_mask).densest_window(64)
    assert top <= 150 and top + 64 >= 190 and left <= 240 and left + 64 >= 280
    image = np.zeros((2200, 2200, 3), np.uint8)
    label = np.full((2200, 2200), VOID, np.uint8)  # the user labelled one corner only
    label[2000:, 2000:] = tiles[0][1][:64, :64].repeat(4, 0).repeat(4, 1)[:200, :200]
    image[2000:, 2000:][label[2000:, 2000:] == 1] = 200
    model = new_model(ModelInfo(variant="unet", classes=CLASSES))
    learner = ContinuousLearner(model, small_config(crop=32, frozen=(), scale=1.0))
    for e in [*examples(tiles, 2), Example("large", image, label)]:  # the third is held out
        learner.add(e)
    run = learner.run()
    scored = next(e for e in run if e.score is not None)
    run.close()
    assert scored.heldout_images == 1 and np.isfinite(scored.score)  # its central 1024 px are void


def test_the_ram_budget_follows_a_containers_memory_limit(tmp_path):
    machine = usable_memory(())
    v2, v1 = tmp_path / "memory.max", tmp_path / "memory.limit_in_bytes"
    v2.write_text("max\n")  # cgroup v2 without a limit
    v1.write_text(f"{2**30}\n")
    assert usable_memory((v2, v1)) == min(machine, 2**30)
    v1.write_text("9223372036854771712\n")  # cgroup v1 without a limit
    assert usable_memory((v2, v1, tmp_path / "absent")) == machine


def test_waiting_for_a_prediction_or_a_pause_never_counts_towards_a_rest(tiles):
    model = new_model(ModelInfo(variant="unet", classes=CLASSES))  # steps of a few ms: waits dominate
    learner = ContinuousLearner(model, small_config(budget_steps=10**9, rest_after_steps=3))
    learner.add(examples(tiles, 1)[0])
    waiting = True
    learner.yield_to = lambda: waiting
    run = learner.run()
    started = time.monotonic()
    while time.monotonic() - started < 2.0:  # longer than the rest time, waiting for a prediction
        assert next(run).state == "waiting"
    waiting = False
    assert next(run).state == "training"
    learner.pause()
    started = time.monotonic()
    while time.monotonic() - started < 2.0:
        assert next(run).state == "paused"
    learner.resume()
    assert next(run).state == "training", f"rested after {learner.train_seconds:.2f} s of training"
    while next(run).state != "resting":  # its own seconds still bring the rest
        assert learner.train_seconds < 10, "never rested"
    run.close()
