import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from core.base.choices import VARIANTS
from core.model.checkpoints import new_model
from core.model.info import ModelInfo
from core.model.networks import FCN, bilinear_kernel, build_model, count_parameters, replace_classifier

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {v: build_model(v, num_classes=5).eval() for v in VARIANTS}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("size", [(1, 1), (31, 45), (97, 66), (64, 64)])
def test_output_has_the_input_size(models, variant, size):
    with torch.no_grad():
        out = models[variant](torch.randn(2, 3, *size))
    assert out.shape == (2, 5, *size)


def test_resnet_backbone_output_size():
    model = build_model("fcn8s", num_classes=3, backbone="resnet50").eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 45, 67))
    assert out.shape == (1, 3, 45, 67)
    with pytest.raises(ValueError, match="stride 8"):
        build_model("fcn32s", num_classes=3, backbone="resnet50")


def test_the_unet_is_small_and_has_its_own_encoder(models):
    unet = models["unet"]
    assert 0.5e6 < count_parameters(unet) < 0.01 * 134e6
    assert ModelInfo(variant="unet").backbone == "unet"  # "vgg16", the unset default, means nothing here
    assert ModelInfo(variant="unet").describe().startswith("UNET, 21 classes")  # no backbone to name
    assert ModelInfo(variant="fcn8s").describe().startswith("FCN8S vgg16, 21 classes")
    with pytest.raises(ValueError, match="own encoder"):
        build_model("unet", num_classes=2, backbone="resnet50")
    with pytest.raises(ValueError, match="own encoder"):
        build_model("fcn8s", num_classes=2, backbone="unet")
    with pytest.raises(ValueError, match="no pretrained weights"):
        new_model(ModelInfo(variant="unet"), init="imagenet")


def test_the_unet_class_layer_is_replaced_and_the_encoder_kept(models):
    unet = copy.deepcopy(models["unet"])
    encoder = {k: v.clone() for k, v in unet.down.state_dict().items()}
    replace_classifier(unet, 7)
    with torch.no_grad():
        assert unet(torch.randn(1, 3, 20, 30)).shape == (1, 7, 20, 30)
    assert all(torch.equal(v, unet.down.state_dict()[k]) for k, v in encoder.items())


def test_fcn8s_vgg16_has_about_134m_parameters():
    with torch.device("meta"):
        model = build_model("fcn8s", num_classes=21)
    assert 134.0e6 < count_parameters(model) < 134.6e6


def test_skip_branches_per_variant(models):
    names = {v: {n for n, _ in m.named_children()} for v, m in models.items()}
    assert not {"score_pool4", "score_pool3"} & names["fcn32s"]
    assert "score_pool4" in names["fcn16s"] and "score_pool3" not in names["fcn16s"]
    assert {"score_pool4", "score_pool3", "upscore2", "upscore_pool4"} <= names["fcn8s"]
    assert "score_pool2" not in names["fcn8s"]
    assert {"score_pool4", "score_pool3", "score_pool2", "upscore_pool3"} <= names["fcn4s"]
    assert [m.output_stride for m in models.values()] == [32, 16, 8, 4, 1]
    assert models["fcn8s"].fc6.kernel_size == (7, 7) and models["fcn8s"].fc6.padding == (3, 3)
    assert models["fcn8s"].fc7.kernel_size == (1, 1) and models["fcn8s"].fc7.out_channels == 4096


def test_fc6_fc7_from_vgg16_classifier_match_the_linear_layers():
    from torchvision.models import vgg16

    torch.manual_seed(1)
    reference = vgg16(weights=None).eval()
    model = FCN("fcn32s", num_classes=2).eval()
    model.load_vgg16_state_dict(reference.state_dict())
    pool5 = torch.randn(1, 512, 7, 7)
    with torch.no_grad():
        expected = reference.classifier[:5](pool5.flatten(1))  # fc6, relu, dropout, fc7, relu
        conv = F.relu(model.fc7(F.relu(model.fc6(pool5))))
    # The centre of the 7x7 map is where FC6's 7x7 window sees the whole pool5 map.
    torch.testing.assert_close(conv[0, :, 3, 3], expected[0], rtol=1e-4, atol=1e-5)
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.backbone(image)[-1], reference.features(image))


def test_transposed_convs_start_bilinear(models):
    model = models["fcn4s"]
    for up in (model.upscore2, model.upscore_pool4, model.upscore_pool3):
        torch.testing.assert_close(up.weight.data, bilinear_kernel(5, 4))
        assert up.stride == (2, 2) and up.bias is None
    x = torch.randn(1, 5, 8, 8)
    with torch.no_grad():
        up = model.upscore2(x)
    reference = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert up.shape == reference.shape
    torch.testing.assert_close(up[..., 1:-1, 1:-1], reference[..., 1:-1, 1:-1])


def test_bilinear_kernel_values():
    k = bilinear_kernel(2, 4)
    row = torch.tensor([0.25, 0.75, 0.75, 0.25])
    torch.testing.assert_close(k[0, 0], row[:, None] * row[None, :])
    assert k[0, 1].abs().sum() == 0


def test_score_layers_start_at_zero_as_in_the_paper(models):
    model = models["fcn4s"]
    for layer in (model.score, model.score_pool4, model.score_pool3, model.score_pool2):
        assert layer.weight.abs().sum() == 0 and layer.bias.abs().sum() == 0
    assert model.fc6.weight.std() > 0


def test_replace_classifier_keeps_the_trunk(models):
    model = build_model("fcn16s", num_classes=5)
    before = model.fc7.weight.clone()
    replace_classifier(model, 2)
    assert model.score.out_channels == 2 and model.score_pool4.out_channels == 2
    assert torch.equal(model.fc7.weight, before)
    assert model(torch.randn(1, 3, 40, 40)).shape == (1, 2, 40, 40)


REPLACE_HEAD = """
import resource
from core.model.networks import build_model, replace_classifier
model = build_model("fcn8s", num_classes=21)
trunk, before = model.fc6.weight, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
replace_classifier(model, 3)
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(f"{grown:.0f}", model.fc6.weight is trunk, model.score.out_channels, model.upscore2.out_channels)
"""


def test_a_new_class_list_builds_only_the_new_head():
    """Not a whole 134 M-parameter FCN (0.5 GB) to take its score layers from: the peak memory
    stays where it was, measured in a fresh process."""
    result = subprocess.run([sys.executable, "-c", REPLACE_HEAD], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    grown_mb, kept, score, upscore = result.stdout.split()
    assert (kept, score, upscore) == ("True", "3", "3")
    assert int(grown_mb) < 50, f"peak memory grew by {grown_mb} MB"


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="unknown FCN variant"):
        build_model("fcn2s", num_classes=2)
    with pytest.raises(ValueError, match="released no FCN-4s"):
        build_model("fcn4s", num_classes=2, geometry="caffe")
    with pytest.raises(ValueError, match="unknown backbone"):
        build_model("fcn8s", num_classes=2, backbone="vgg19")
    with pytest.raises(ValueError, match="between 1 and 255"):
        build_model("fcn8s", num_classes=256)
