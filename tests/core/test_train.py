import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.base.errors import TrainingError
from core.base.progress import drain
from core.cli import main
from core.inference.predictor import Predictor
from core.io.images import read_image
from core.io.labels import classes_from_names, write_label
from core.model.checkpoints import load_checkpoint, new_model, read_info
from core.training.datasets import TrainData
from core.training.trainer import TrainConfig, Trainer, evaluate_model, last_path, start_model, train
from tests.conftest import run_generator, torchrun

ROOT = Path(__file__).parents[2]
CROPS = [
    (0, 0),
    (0, 128),
    (0, 256),
    (0, 384),
    (128, 0),
    (128, 128),
    (128, 256),
    (128, 384),
    (384, 0),
    (384, 256),
]


@pytest.fixture(scope="module")
def nuclei_voc(tmp_path_factory, data_dir) -> Path:
    """128x128 crops of the microscopy image as a 2-class VOC dataset (8 train, 2 val)."""
    root = tmp_path_factory.mktemp("nuclei") / "VOC"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True)
    image = read_image(data_dir / "nuclei/nuclei.tif")
    label = (np.asarray(Image.open(data_dir / "nuclei/nuclei_instances.tif")) > 0).astype(np.uint8)
    ids = []
    for i, (y, x) in enumerate(CROPS):
        Image.fromarray(image[y : y + 128, x : x + 128]).save(root / "JPEGImages" / f"crop{i}.png")
        write_label(root / "SegmentationClass" / f"crop{i}.png", label[y : y + 128, x : x + 128])
        ids.append(f"crop{i}")
    (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(ids[:8]))
    (root / "ImageSets/Segmentation/val.txt").write_text("\n".join(ids[8:]))
    (root / "class_names.txt").write_text("background\nnucleus\n")
    return root


def config(tmp_path, **kw) -> TrainConfig:
    """A short run of the small U-Net: these tests are about the trainer, not about FCN-8s."""
    base = dict(output=tmp_path / "model.safetensors", variant="unet", init="none", steps=2, batch_size=2,
                crop=64, workers=0)  # fmt: skip
    return TrainConfig(**{**base, **kw})


def test_a_few_dozen_steps_lower_the_loss_and_beat_the_untrained_model(nuclei_voc, tmp_path):
    data = TrainData.from_voc(nuclei_voc)
    assert (len(data.train), len(data.val)) == (8, 2)
    cfg = config(tmp_path, steps=30, batch_size=4, crop=96, val_every=30, lr=1e-3)
    model = start_model(cfg, data)
    untrained = evaluate_model(model.module, data, model.info, torch.device("cpu"))
    events, result = run_generator(train(cfg, data, model))
    losses = [e.loss for e in events]
    assert np.mean(losses[-8:]) < np.mean(losses[:3])
    assert result.best_miou > untrained + 0.05
    info = read_info(result.best)
    assert info.trained and [c.name for c in info.classes] == ["background", "nucleus"]
    assert info.training["best_val_miou"] == pytest.approx(result.best_miou)
    assert info.training["steps"] == 30 and last_path(result.best).exists()
    trained = load_checkpoint(result.best)
    fp32 = Predictor(copy.deepcopy(trained), device="cpu", precision="fp32")
    bf16 = Predictor(trained, device="cpu", precision="bf16")
    for sample in data.val:
        image = read_image(sample.image)
        assert (fp32.predict(image).label == bf16.predict(image).label).mean() >= 0.995


def test_void_pixels_are_ignored_and_fully_void_crops_skipped(nuclei_voc, tmp_path):
    data = TrainData.from_voc(nuclei_voc)
    partial = tmp_path / "partial.png"
    label = np.full((128, 128), 255, np.uint8)
    label[:64, :64] = 1  # the user labelled one corner: about half the crops miss it
    write_label(partial, label)
    data.train = [type(s)(s.image, partial, s.name) for s in data.train[:1]]
    events, result = run_generator(train(config(tmp_path, steps=6, batch_size=1, crop=32), data))
    # A batch of void only would have no loss (NaN, and "diverged"): every step had labels...
    assert len(events) == 6 and all(np.isfinite(e.loss) for e in events)
    assert result.skipped_batches > 0  # ...because the crops of unlabelled areas were skipped


def test_start_checkpoint_with_another_class_list_keeps_the_trunk(
    local_model, checkpoint, nuclei_voc, tmp_path
):
    data = TrainData.from_voc(nuclei_voc)
    model = start_model(config(tmp_path, init=str(checkpoint)), data)
    assert model.info.num_classes == 2 and model.module.score.out_channels == 2
    assert torch.equal(model.module.fc6.weight, local_model.module.fc6.weight.cpu())  # FCN-8s: its trunk
    assert not model.info.trained


def test_diverging_loss_stops_and_keeps_the_last_good_checkpoint(nuclei_voc, tmp_path):
    data = TrainData.from_voc(nuclei_voc)
    drain(train(config(tmp_path, steps=1, val_every=1), data))
    good = (tmp_path / "model.safetensors").read_bytes()
    with pytest.raises(TrainingError, match="diverged.*lower --lr"):
        drain(train(config(tmp_path, steps=20, lr=1e3, optimizer="sgd", val_every=100), data))
    assert (tmp_path / "model.safetensors").read_bytes() == good


@pytest.mark.parametrize("name", ["model.safetensors", "model.ckpt"])
def test_resume_continues_from_the_last_checkpoint_and_its_optimizer_state(nuclei_voc, tmp_path, name):
    data = TrainData.from_voc(nuclei_voc)
    output = tmp_path / name
    drain(train(config(tmp_path, output=output, steps=2, val_every=2), data))
    assert read_info(last_path(output)).training["steps"] == 2
    assert [p.name for p in tmp_path.glob("*.optim.pt")] == ["model.last.optim.pt"]
    resumed = config(tmp_path, output=output, steps=3, val_every=10, resume=True)
    events, _ = run_generator(train(resumed, data))
    assert [e.done for e in events] == [3]
    # The poly schedule went on from step 2 of 3 (a fresh one would still be at 2/3 of its rate).
    assert events[-1].lr == 0


def test_stopping_keeps_what_was_learnt(nuclei_voc, tmp_path):
    data = TrainData.from_voc(nuclei_voc)
    gen = train(config(tmp_path, steps=50, val_every=100), data)
    next(gen)
    gen.close()
    assert read_info(last_path(tmp_path / "model.safetensors")).training["steps"] == 1


def test_too_little_disk_space_fails_before_the_first_step(nuclei_voc, tmp_path, monkeypatch):
    data = TrainData.from_voc(nuclei_voc)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=2**30))
    with pytest.raises(TrainingError, match=f"not enough disk space in {tmp_path}.*need 3.0 GB and 1.0 GB"):
        drain(train(config(tmp_path / "run", variant="fcn8s"), data))  # 0.5 GB a checkpoint
    assert list((tmp_path / "run").iterdir()) == []


def test_project_trains_on_reviewed_labels_only(tmp_path, nuclei_voc):
    from core.store.project import Project

    images = sorted((nuclei_voc / "JPEGImages").glob("*.png"))[:3]
    with Project.create(tmp_path / "proj", images, classes_from_names(["background", "nucleus"])) as project:
        for entry, state in zip(project.images, ("reviewed", "edited", "reviewed"), strict=True):
            project.set_label(entry, np.zeros((128, 128), np.uint8), state)
    data = TrainData.from_path(tmp_path / "proj", val_fraction=0.5, snapshot_dir=tmp_path / "snap")
    assert len(data.train) + len(data.val) == 2
    assert all(s.label.parent == tmp_path / "snap" for s in data.train + data.val)


def test_cli_train_and_eval(nuclei_voc, tmp_path, capsys):
    out = tmp_path / "cli.safetensors"
    args = [
        "train",
        str(nuclei_voc),
        "--output",
        str(out),
        "--variant",
        "unet",
        "--steps",
        "2",
        "--crop",
        "64",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--val-every",
        "2",
    ]
    assert main(args) == 0
    assert "best validation mIoU" in capsys.readouterr().out
    assert main(["eval", str(nuclei_voc), "--checkpoint", str(out), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert set(scores["per_class_iou"]) == {"background", "nucleus"} and scores["images"] == 2
    assert 0 <= scores["mean_iou"] <= 1 and 0 <= scores["pixel_accuracy"] <= 1
    assert main(["train", str(tmp_path), "--output", str(out)]) == 1
    assert "not a VOC dataset" in capsys.readouterr().err


def test_cli_trains_a_unet_from_scratch_without_being_told_to(nuclei_voc, tmp_path, capsys):
    out = tmp_path / "unet.safetensors"
    args = ["train", str(nuclei_voc), "--output", str(out), "--variant", "unet", "--steps", "2",
            "--crop", "64", "--batch-size", "2", "--workers", "0", "--val-every", "2"]  # fmt: skip
    assert main(args) == 0  # no --init: the U-Net has no pretrained weights to look for
    info = read_info(out)
    assert (info.variant, info.backbone, info.training["steps"]) == ("unet", "unet", 2)
    assert main([*args, "--init", "imagenet"]) == 1
    assert "no pretrained weights exist for the U-Net" in capsys.readouterr().err
    assert main([*args, "--freeze-backbone"]) == 0
    torch.manual_seed(0)  # the run's seed: the same random initialisation
    start = dict(new_model(info).module.named_parameters())
    trained = dict(load_checkpoint(out).module.named_parameters())
    assert all(torch.equal(p, start[k]) for k, p in trained.items() if k.startswith("down."))
    assert not torch.equal(trained["head.weight"], start["head.weight"])


def test_the_time_budget_stops_at_the_first_step_past_it(nuclei_voc, tmp_path):
    """Every step but the last ends inside the budget and the last one past it, whatever the
    CPU's speed: the budget is checked after each step, against the run's own clock."""
    budget = 2.0
    trainer = Trainer(config(tmp_path, variant="unet", steps=10**6, val_every=10**6, time_budget_s=budget),
                      TrainData.from_voc(nuclei_voc))  # fmt: skip
    run = trainer.run()
    started = time.monotonic()  # just before the run's own clock starts
    ended = []
    result = drain(run, lambda _: ended.append(time.monotonic() - started))
    assert result.steps == len(ended) >= 1
    assert ended[-1] > budget  # it did not stop early...
    if len(ended) > 1:
        assert ended[-2] <= budget + 0.25  # ...nor go on past the first step beyond the budget
    assert read_info(result.best).training["steps"] == result.steps and last_path(result.best).exists()


def test_cli_time_budget_still_writes_both_checkpoints(nuclei_voc, tmp_path, capsys):
    out = tmp_path / "budget.safetensors"
    args = ["train", str(nuclei_voc), "--output", str(out), "--variant", "unet", "--steps", "100000",
            "--crop", "64", "--batch-size", "2", "--workers", "0", "--val-every", "100000",
            "--time-budget", "1", "--precision", "bf16"]  # fmt: skip
    assert main(args) == 0
    steps = read_info(out).training["steps"]
    assert last_path(out).exists() and read_info(last_path(out)).training["steps"] == steps
    assert f"{steps} steps" in capsys.readouterr().out


DDP_SCRIPT = textwrap.dedent(
    """
    import hashlib, os, sys
    from pathlib import Path
    import torch
    from core.training.datasets import TrainData
    from core.base.progress import drain
    from core.training.trainer import TrainConfig, train
    data = TrainData.from_voc(sys.argv[1])
    out = Path(sys.argv[2])
    cfg = TrainConfig(output=out / "ddp.safetensors", variant="unet", init="none", steps=2, batch_size=1,
                      crop=48, workers=0, val_every=2, device="cpu",
                      seed=int(os.environ["RANK"]))  # different seeds on purpose
    result = drain(train(cfg, data))
    digest = hashlib.sha1()
    for t in result.model.module.parameters():  # batch norm's statistics are each rank's own
        digest.update(t.detach().cpu().numpy().tobytes())
    (out / f"rank{os.environ['RANK']}.txt").write_text(digest.hexdigest())
    """
)


def test_two_process_ddp_ranks_end_with_identical_weights(nuclei_voc, tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    result = torchrun(29533, str(script), str(nuclei_voc), str(tmp_path), timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    digests = {(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)}
    assert len(digests) == 1
    assert (tmp_path / "ddp.safetensors").exists()
    saved = load_checkpoint(tmp_path / "ddp.safetensors")
    digest = hashlib.sha1()
    for t in saved.module.parameters():
        digest.update(t.detach().cpu().numpy().tobytes())
    assert digest.hexdigest() == digests.pop()  # rank 0 wrote the weights both ranks ended with
    assert saved.info.training["steps"] == 2


COLLECTIVE_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    import numpy as np
    from core.base.errors import TrainingError
    from core.base.progress import drain
    from core.io.labels import write_label
    from core.training.datasets import TrainData
    from core.training.trainer import TrainConfig, train
    rank, out = int(os.environ["RANK"]), Path(sys.argv[2])
    data = TrainData.from_voc(sys.argv[1])
    # Rank 1's only image is entirely void: every batch it draws has no labelled pixel.
    void = out / f"void{rank}.png"
    write_label(void, np.full((128, 128), 255, np.uint8))
    sample = data.train[0]
    data.train = [type(sample)(sample.image, void if rank == 1 else sample.label, sample.name)]
    base = dict(variant="unet", init="none", batch_size=1, crop=32, workers=0, device="cpu", val_every=10**6)
    report = out / f"rank{rank}.txt"  # one file a rank: lines on a shared stdout interleave
    try:
        drain(train(TrainConfig(output=out / "void.safetensors", steps=10**6, **base), data))
        lines = ["void run finished"]
    except TrainingError as exc:
        lines = [f"stopped: {exc}"]
    # Rank 1 steps ten times slower: its clock reaches the time budget first.
    data.train = [sample]
    if rank == 1:
        os.environ["FCN_GUI_SLOW_STEP_S"] = "0.4"
    started = time.monotonic()
    result = drain(train(TrainConfig(output=out / "budget.safetensors", steps=10**6, time_budget_s=2, **base),
                         data))
    lines.append(f"budget steps {result.steps} in {time.monotonic() - started:.1f} s")
    report.write_text("\\n".join(lines))
    """
)


def test_ddp_ranks_decide_together_on_void_batches_and_the_time_budget(nuclei_voc, tmp_path):
    """A rank that skips a batch, stops at its own clock or raises while the other waits in a
    collective hangs DistributedDataParallel for ever; the subprocess timeout fails the test then."""
    script = tmp_path / "collective.py"
    script.write_text(COLLECTIVE_SCRIPT)
    result = torchrun(29541, str(script), str(nuclei_voc), str(tmp_path), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for r in (0, 1) for line in (tmp_path / f"rank{r}.txt").read_text().splitlines()]
    stopped = [line for line in lines if "stopped:" in line]
    assert len(stopped) == 2, lines
    assert all("50 batches in a row held no labelled pixel on at least one of the 2 processes" in s
               for s in stopped)  # fmt: skip
    budget = [line.split("budget steps ")[1].split()[0] for line in lines if "budget steps" in line]
    assert len(budget) == 2 and budget[0] == budget[1], lines  # the same step on both ranks


LEAVE_SCRIPT = textwrap.dedent(
    """
    import atexit
    import torch.distributed as dist
    from core.compute.distributed import join_process_group
    # registered first, so it runs last (atexit is last in, first out): after the group's handler
    atexit.register(lambda: print("joined at exit:", dist.is_initialized(), flush=True))
    join_process_group("gloo")
    join_process_group("gloo")  # a second run in the same process keeps the group
    print("joined:", dist.is_initialized(), flush=True)
    """
)


def test_a_process_that_joined_the_process_group_leaves_it_at_exit(tmp_path):
    """Ending with the group still made, gloo's threads can abort the process as Python shuts
    down (SIGABRT after the work is done; torchrun then fails the run)."""
    import socket

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
           "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}  # fmt: skip
    script = tmp_path / "leave.py"
    script.write_text(LEAVE_SCRIPT)
    command = [sys.executable, str(script)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["joined:", "True", "joined", "at", "exit:", "False"]


def _digest(model) -> str:
    digest = hashlib.sha1()
    for t in model.module.state_dict().values():
        digest.update(t.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def test_a_seeded_run_repeats_bit_for_bit_on_the_cpu(nuclei_voc, tmp_path):
    data = TrainData.from_voc(nuclei_voc)
    runs = [drain(train(config(tmp_path / str(i), steps=3, val_every=3, seed=7), data)) for i in range(2)]
    other = drain(train(config(tmp_path / "other", steps=3, val_every=3, seed=8), data))
    assert _digest(runs[0].model) == _digest(runs[1].model) != _digest(other.model)


def test_deterministic_turns_the_cuda_speed_settings_off(monkeypatch):
    """The flags are the process's; set here without a GPU (nothing runs on one)."""
    from core.compute.devices import prepare_device

    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = (cudnn.benchmark, cudnn.deterministic, matmul.allow_tf32, cudnn.allow_tf32)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    try:
        prepare_device(torch.device("cuda"))
        assert (cudnn.benchmark, matmul.allow_tf32) == (True, True)
        prepare_device(torch.device("cuda"), deterministic=True)
        assert (cudnn.benchmark, cudnn.deterministic, matmul.allow_tf32, cudnn.allow_tf32) == (
            False, True, False, False)  # fmt: skip
        assert torch.are_deterministic_algorithms_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.use_deterministic_algorithms(False)
        cudnn.benchmark, cudnn.deterministic, matmul.allow_tf32, cudnn.allow_tf32 = saved
