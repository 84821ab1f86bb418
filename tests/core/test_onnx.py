"""ONNX export for deployment: uint8 RGB in, labels out, any size; checked with onnxruntime."""

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from core.cli import main
from core.io.labels import read_label


def test_onnx_labels_match_segment_on_a_real_photo(checkpoint, tmp_path, capsys):
    photo = tmp_path / "photos" / "chelsea.png"
    photo.parent.mkdir()
    with Image.open(Path(__file__).parents[2] / "resources/samples/chelsea.png") as img:
        img.convert("RGB").resize((225, 150)).save(photo)  # not the export's example size
    out = tmp_path / "model.onnx"
    assert main(["export-model", str(checkpoint), "--out", str(out)]) == 0
    assert "labels" in capsys.readouterr().out
    session = ort.InferenceSession(str(out))
    image = np.asarray(Image.open(photo).convert("RGB"))
    labels, logits = session.run(None, {"image": image})
    assert labels.shape == image.shape[:2] and labels.dtype == np.uint8 and logits.shape == (1, 21, 150, 225)
    assert main(["segment", str(photo), "--out", str(tmp_path / "seg"), "--checkpoint", str(checkpoint),
                 "--precision", "fp32"]) == 0  # fmt: skip
    expected = read_label(tmp_path / "seg" / "chelsea.png")
    assert np.mean(labels == expected) >= 0.995
    assert len(np.unique(expected)) > 1  # a model whose labels vary, so agreement means something
    meta = json.loads(session.get_modelmeta().custom_metadata_map["fcn_gui"])
    assert (
        meta["variant"] == "fcn8s"
        and len(meta["classes"]) == 21
        and meta["classes"][0]["name"] == "background"
    )
    assert not list(tmp_path.glob(".*.tmp"))


def test_export_model_to_a_folder_is_refused(checkpoint, tmp_path, capsys):
    assert main(["export-model", str(checkpoint), "--out", str(tmp_path)]) == 1
    assert "is a folder" in capsys.readouterr().err


def test_a_unet_exports_for_any_size_and_agrees_with_segment(tmp_path, capsys):
    """The U-Net pads its input to a multiple of 8 and crops the logits: that too must export."""
    import torch

    from core.io.labels import classes_from_names
    from core.model.checkpoints import ModelInfo, new_model, save_checkpoint

    torch.manual_seed(0)
    model = new_model(ModelInfo(variant="unet", classes=classes_from_names(["bg", "a", "b"])))
    with torch.no_grad():  # labels that vary over the photo, so that agreement means something
        model.module.head.weight.normal_(std=3.0)
        model.module.head.bias.zero_()
    save_checkpoint(tmp_path / "unet.safetensors", model)
    out = tmp_path / "unet.onnx"
    assert main(["export-model", str(tmp_path / "unet.safetensors"), "--out", str(out)]) == 0
    photo = tmp_path / "photos" / "chelsea.png"
    photo.parent.mkdir()
    with Image.open(Path(__file__).parents[2] / "resources/samples/chelsea.png") as img:
        img.convert("RGB").resize((61, 45)).save(photo)
    image = np.asarray(Image.open(photo))
    labels, logits = ort.InferenceSession(str(out)).run(None, {"image": image})
    assert labels.shape == (45, 61) and logits.shape == (1, 3, 45, 61)
    assert main(["segment", str(photo), "--out", str(tmp_path / "seg"), "--checkpoint",
                 str(tmp_path / "unet.safetensors"), "--precision", "fp32"]) == 0  # fmt: skip
    expected = read_label(tmp_path / "seg" / "chelsea.png")
    assert np.mean(labels == expected) >= 0.995 and len(np.unique(expected)) > 1
    capsys.readouterr()
