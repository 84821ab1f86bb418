import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from core.base.errors import CheckpointError, WeightsNotAvailableError
from core.io.labels import classes_from_names
from core.model.checkpoints import ModelInfo, load_checkpoint, new_model, read_info, save_checkpoint
from core.model.weights import pretrained_source


@pytest.fixture(scope="module")
def two_class_model():
    torch.manual_seed(3)
    info = ModelInfo(
        variant="fcn16s",
        classes=classes_from_names(["bg", "cell"]),
        trained=True,
        training={"steps": 12, "best_val_miou": 0.5, "data": "nuclei"},
    )
    model = new_model(info)
    torch.nn.init.normal_(model.module.score.weight, std=0.01)
    return model


@pytest.fixture(scope="module")
def saved(two_class_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "model.safetensors"
    save_checkpoint(path, two_class_model)
    return path


def test_round_trip_keeps_weights_and_metadata(two_class_model, saved):
    loaded = load_checkpoint(saved)
    assert loaded.info == two_class_model.info
    assert read_info(saved).training["best_val_miou"] == 0.5
    x = torch.randn(1, 3, 40, 52)
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), two_class_model.module.eval()(x))
    assert not list(saved.parent.glob(".*tmp"))


def test_class_count_mismatch_says_what_the_file_holds(saved):
    with pytest.raises(CheckpointError, match="predicts 2 classes but 21 are needed"):
        load_checkpoint(saved, num_classes=21)


def test_tensor_shapes_that_do_not_fit_are_explained(two_class_model, tmp_path):
    state = {k: v.contiguous() for k, v in two_class_model.module.state_dict().items()}
    wrong_info = ModelInfo(variant="fcn16s", trained=True)  # claims 21 classes, holds 2
    save_file(state, str(tmp_path / "w.safetensors"), metadata={"fcn_gui": wrong_info.to_json()})
    with pytest.raises(CheckpointError, match=r"holds fcn16s/vgg16 with 2 classes.*21 classes.*score"):
        load_checkpoint(tmp_path / "w.safetensors")


def test_malformed_files(tmp_path):
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match=r"junk\.safetensors.*not a safetensors"):
        load_checkpoint(tmp_path / "junk.safetensors")
    save_file({"x": torch.zeros(2)}, str(tmp_path / "bare.safetensors"))
    with pytest.raises(CheckpointError, match="without fcn-gui metadata"):
        load_checkpoint(tmp_path / "bare.safetensors")
    save_file({"x": torch.zeros(2)}, str(tmp_path / "bad.safetensors"), metadata={"fcn_gui": "{not json"})
    with pytest.raises(CheckpointError, match="malformed"):
        load_checkpoint(tmp_path / "bad.safetensors")
    newer = ModelInfo().to_json().replace('"version": 1', '"version": 99')
    save_file({"x": torch.zeros(2)}, str(tmp_path / "new.safetensors"), metadata={"fcn_gui": newer})
    with pytest.raises(CheckpointError, match="newer fcn-gui"):
        load_checkpoint(tmp_path / "new.safetensors")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "none.safetensors")


class Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_pth_with_code_is_refused(tmp_path, capsys):
    with (tmp_path / "evil.pth").open("wb") as f:
        pickle.dump({"weight": Payload()}, f, protocol=2)
    with pytest.raises(CheckpointError, match="not a safe checkpoint.*never runs code"):
        load_checkpoint(tmp_path / "evil.pth")
    assert "code ran" not in capsys.readouterr().out


def test_import_our_fcn_as_pth(two_class_model, tmp_path):
    torch.save(two_class_model.module.state_dict(), tmp_path / "fcn.pth")
    loaded = load_checkpoint(tmp_path / "fcn.pth")
    assert (loaded.info.variant, loaded.info.num_classes) == ("fcn16s", 2)
    for name, tensor in two_class_model.module.state_dict().items():
        assert torch.equal(loaded.module.state_dict()[name], tensor), name  # the weights, not just the names


def test_an_fcn4s_round_trips_through_both_formats(tmp_path):
    torch.manual_seed(3)
    model = new_model(ModelInfo(variant="fcn4s", classes=classes_from_names(["bg", "cell"])))
    with torch.no_grad():
        model.module.score_pool2.weight.normal_()  # not the zeros it starts with
    save_checkpoint(tmp_path / "m.safetensors", model)
    torch.save(model.module.state_dict(), tmp_path / "m.pth")
    for path in (tmp_path / "m.safetensors", tmp_path / "m.pth"):
        loaded = load_checkpoint(path)
        assert loaded.info.variant == "fcn4s", path
        assert torch.equal(loaded.module.score_pool2.weight, model.module.score_pool2.weight)


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


def test_imagenet_vgg16_found_in_the_hub_cache(torch_home):
    from torchvision.models import vgg16

    source = pretrained_source("vgg16-imagenet")
    with pytest.raises(WeightsNotAvailableError, match=r"not downloaded.*--download"):
        new_model(ModelInfo(variant="fcn32s"), init="imagenet")
    torch.manual_seed(5)
    state = vgg16(weights=None).state_dict()
    source.cache_path.parent.mkdir(parents=True)
    torch.save(state, source.cache_path)
    assert str(source.cache_path).startswith(str(torch_home))
    model = new_model(ModelInfo(variant="fcn32s"), init="imagenet")
    assert torch.equal(model.module.fc6.weight, state["classifier.0.weight"].reshape(4096, 512, 7, 7))
    assert torch.equal(model.module.backbone.features[28].weight, state["features.28.weight"])
    assert "ImageNet" in model.info.source and not model.info.trained


def test_torchvision_fcn_resnet_weights_with_aux_head(torch_home, tmp_path):
    from torchvision.models.segmentation import fcn_resnet50

    torch.manual_seed(6)
    reference = fcn_resnet50(weights=None, weights_backbone=None, num_classes=21, aux_loss=True).eval()
    source = pretrained_source("resnet50-voc")
    source.cache_path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), source.cache_path)
    model = new_model(ModelInfo(variant="fcn8s", backbone="resnet50"), init="voc")
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(model.module(x), reference(x)["out"])
    assert model.info.trained
    imported = load_checkpoint(source.cache_path)
    assert imported.info.backbone == "resnet50" and imported.info.num_classes == 21
    two = new_model(
        ModelInfo(variant="fcn8s", backbone="resnet50", classes=classes_from_names(["a", "b"])), init="voc"
    )
    assert two.module(x).shape[1] == 2 and not two.info.trained
    assert np.isfinite(two.module(x).detach().numpy()).all()


def test_reading_model_descriptions_never_imports_torch(local_model, tmp_path):
    """The app lists kept models and checks a project's checkpoint on the GUI thread."""
    import subprocess
    import sys
    from pathlib import Path

    from core.training.history import LearningHistory

    history = LearningHistory(tmp_path / "learning")
    history.save_adopted(local_model, 0.5, 3, 10)
    code = (
        "import sys\n"
        "from core.training.history import LearningHistory\n"
        "from core.model.info import read_info\n"
        f"entries = LearningHistory({str(history.folder)!r}).entries()\n"
        "assert [e.score for e in entries] == [0.5], entries\n"
        "assert read_info(entries[0].path).num_classes == 21\n"
        "assert 'torch' not in sys.modules\n"
    )
    root = Path(__file__).parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
