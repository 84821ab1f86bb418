import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.base.progress import drain
from core.cli import main
from core.compute.devices import choose_device, describe_device
from core.inference.predictor import Predictor
from core.inference.segment import SegmentOptions, output_paths, segment_paths
from core.io.files import collect_images
from core.io.labels import read_label
from tests.conftest import run_generator, torchrun

ROOT = Path(__file__).parents[2]


@pytest.fixture
def folder(tmp_path, small_image):
    src = tmp_path / "images"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(small_image[:64, :96]).save(src / "a.jpg", quality=90)
    Image.fromarray(small_image[10:73, 5:80]).save(src / "b.png")
    Image.fromarray(small_image[:50, :50]).save(src / "sub" / "c.tif")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (src / "readme.txt").write_text("not an image")
    return src


def test_folder_with_bad_files_is_reported_and_the_rest_done(local_model, folder, tmp_path):
    out = tmp_path / "out"
    predictor = Predictor(local_model, device="cpu")
    gen = segment_paths(
        predictor, [folder], SegmentOptions(out, recursive=True, overlay=True, confidence=True)
    )
    events, report = run_generator(gen)
    assert [e.done for e in events] == [1, 2, 3, 4] and events[-1].total == 4
    assert sorted(p.name for p in report.written) == ["a.png", "b.png", "c.png"]
    failed = {p.name: reason for p, reason in report.failed}
    assert set(failed) == {"broken.jpg", "readme.txt"} and "damaged" in failed["broken.jpg"]
    with Image.open(out / "sub" / "c.png") as label:
        assert label.mode == "P" and label.size == (50, 50)
    with Image.open(out / "b_overlay.jpg") as ov, Image.open(out / "b_confidence.png") as conf:
        assert ov.size == (75, 63) and conf.mode == "L" and conf.size == (75, 63)


def test_cli_segment_resumes_and_exits_nonzero_on_failures(folder, tmp_path, checkpoint, capsys):
    out = tmp_path / "out"
    assert (
        main(["segment", str(folder), "--out", str(out), "--checkpoint", str(checkpoint), "--device", "cpu"])
        == 1
    )
    err = capsys.readouterr().err
    assert "2 segmented, 0 already done, 2 failed" in err and "broken.jpg" in err
    first = (out / "a.png").stat().st_mtime_ns
    (folder / "broken.jpg").unlink()
    (folder / "readme.txt").unlink()
    assert main(["segment", str(folder), "--out", str(out), "--checkpoint", str(checkpoint)]) == 0
    assert "0 segmented, 2 already done" in capsys.readouterr().out
    assert (out / "a.png").stat().st_mtime_ns == first
    assert (
        main(
            [
                "segment",
                str(folder / "a.jpg"),
                "--out",
                str(out),
                "--checkpoint",
                str(checkpoint),
                "--overwrite",
            ]
        )
        == 0
    )
    assert (out / "a.png").stat().st_mtime_ns != first


def test_cancel_leaves_only_complete_files(local_model, folder, tmp_path):
    (folder / "broken.jpg").unlink()
    out = tmp_path / "out"
    gen = segment_paths(Predictor(local_model, device="cpu"), [folder], SegmentOptions(out, recursive=True))
    next(gen)
    gen.close()
    files = [p for p in out.rglob("*") if p.is_file()]
    assert files and len(files) < 3
    assert not [p for p in files if p.name.startswith(".")]
    for path in files:
        with Image.open(path) as img:
            img.load()


def test_same_output_name_is_reported(tmp_path, small_image):
    for name in ("x.jpg", "x.png"):
        Image.fromarray(small_image).save(tmp_path / name)
    items, rejected = collect_images([tmp_path])
    assert len(items) == 1 and "same output name" in rejected[0][1]
    assert output_paths(tmp_path / "o", items[0])["label"] == tmp_path / "o" / "x.png"


def test_ranks_share_the_files_without_overlap(local_model, folder, tmp_path):
    out = tmp_path / "out"
    predictor = Predictor(local_model, device="cpu")
    reports = [
        drain(segment_paths(predictor, [folder], SegmentOptions(out, recursive=True, rank=r, world_size=2)))
        for r in range(2)
    ]
    written = [sorted(p.name for p in r.written) for r in reports]
    assert all(written) and not set(written[0]) & set(written[1])  # both worked, never on one file
    assert sorted(written[0] + written[1]) == ["a.png", "b.png", "c.png"]  # every image once
    failed = [p.name for r in reports for p, _ in r.failed]
    assert failed.count("broken.jpg") == 1


def test_cancel_stops_between_the_tiles_of_an_image(local_model, folder, tmp_path):
    out = tmp_path / "out"
    passes = []
    predictor = Predictor(local_model, device="cpu", tile=64, overlap=16)
    predictor.model.module.register_forward_hook(lambda *_: passes.append(1))
    gen = segment_paths(predictor, [folder / "a.jpg"], SegmentOptions(out))
    first = next(gen)
    assert first.done == 0 and "tiles" in first.message and len(passes) == 1
    gen.close()
    assert len(passes) == 1 and not list(out.rglob("*.png"))  # nothing more ran, nothing half-written


def test_torchrun_two_processes_do_each_file_once(folder, tmp_path, unet_checkpoint):
    (folder / "broken.jpg").unlink()
    (folder / "readme.txt").unlink()
    for i in range(3):
        shutil.copy(folder / "a.jpg", folder / f"copy{i}.jpg")
    out = tmp_path / "out"
    args = ["-m", "fcn_gui", "segment", str(folder), "--recursive", "--out", str(out)]
    result = torchrun(29531, *args, "--checkpoint", str(unet_checkpoint), "--device", "cpu", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    counts = [
        int(line.split("] ")[1].split()[0]) for line in result.stdout.splitlines() if "segmented" in line
    ]
    assert sorted(counts) == [3, 3]
    assert sorted(p.name for p in out.rglob("*.png")) == [
        "a.png",
        "b.png",
        "c.png",
        "copy0.png",
        "copy1.png",
        "copy2.png",
    ]


def test_cli_info_json(capsys):
    assert main(["info", "--variant", "fcn8s", "--size", "500", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"] == 134_376_863 and info["gflops"] == 215.67  # counted, so exact
    assert info["device"] == describe_device(choose_device("auto"))


def test_cli_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "bad.safetensors").write_text("nope")
    assert (
        main(
            [
                "segment",
                str(tmp_path),
                "--out",
                str(tmp_path / "o"),
                "--checkpoint",
                str(tmp_path / "bad.safetensors"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.safetensors" in err[0] and "error" in err[0]
    # A device no machine has (on one with CUDA too): one line naming it.
    assert main(["segment", str(tmp_path), "--out", str(tmp_path / "o"), "--device", "cuda:99"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cuda:99" in err[0] and "--device" in err[0]


def test_label_written_has_image_size(folder, tmp_path, checkpoint):
    assert (
        main(
            [
                "segment",
                str(folder / "b.png"),
                "--out",
                str(tmp_path / "o"),
                "--checkpoint",
                str(checkpoint),
                "--tile",
                "48",
            ]
        )
        == 0
    )
    label = np.asarray(Image.open(tmp_path / "o" / "b.png"))
    assert label.shape == (63, 75)


def test_cli_segment_precision_is_chosen_and_named(folder, tmp_path, checkpoint, capsys):
    labels = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        args = ["segment", str(folder / "a.jpg"), "--out", str(out), "--checkpoint", str(checkpoint)]
        assert main([*args, "--device", "cpu", "--precision", precision]) == 0
        err = capsys.readouterr().err
        assert "model on cpu (" in err and ("bf16)" in err) == (precision == "bf16")
        labels[precision] = read_label(out / "a.png")
    assert (labels["fp32"] == labels["bf16"]).mean() >= 0.98
    with pytest.raises(SystemExit):
        main(["segment", str(folder), "--out", str(tmp_path / "x"), "--precision", "fp16"])
    assert "invalid choice: 'fp16'" in capsys.readouterr().err
