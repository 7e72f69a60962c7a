"""Grad-CAM, model maps, localisation scores and the detect command."""

import gc
import json

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import write_cv_video
from skimage import data

from fbifpn import build_model, load_config
from fbifpn.cli import main
from fbifpn.data.sources.base import ScanOptions
from fbifpn.engine import checkpoint as ckpt
from fbifpn.explain import (
    backbone_layer,
    energy_inside,
    gradcam,
    iou,
    localisation,
    localisation_table,
    model_maps,
    neck_layer,
    overlay,
    pointing_game,
)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(load_config("smoke")).eval()


@pytest.mark.parametrize("where", ["neck", "backbone"])
@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_cam_is_input_sized_finite_and_non_negative(model, where, method):
    layer = neck_layer(model, 0) if where == "neck" else backbone_layer(model)
    cams = gradcam(model, torch.randn(3, 3, 64, 64), layer, method)
    assert cams.shape == (3, 64, 64)
    assert np.isfinite(cams).all() and (cams >= 0).all()


@pytest.mark.filterwarnings("ignore::FutureWarning")  # gc.get_objects touches deprecated torch aliases
def test_cam_releases_its_hooks_and_tensors(model):
    layer = neck_layer(model, 0)
    x = torch.randn(1, 3, 32, 32)
    gradcam(model, x, layer)

    def live_tensors():
        gc.collect()
        return sum(1 for o in gc.get_objects() if torch.is_tensor(o))

    before = live_tensors()
    for _ in range(100):
        gradcam(model, x, layer)
    hooks = [m for m in model.modules() if m._forward_hooks or m._backward_hooks or m._forward_pre_hooks]
    assert not hooks
    assert live_tensors() <= before + 5


def test_model_maps(model):
    maps = model_maps(model, torch.randn(2, 3, 64, 64))
    assert set(maps) == {"mask", "attention/0", "attention/1", "attention/2"}
    assert all(m.shape == (2, 64, 64) and (m >= 0).all() and (m <= 1).all() for m in maps.values())


def test_localisation_scores_on_hand_made_maps():
    mask = np.zeros((10, 10))
    mask[2:6, 2:6] = 1  # 16 pixels
    heat = np.zeros((10, 10))
    heat[4:8, 4:8] = 1.0  # overlaps the mask on 4 pixels
    assert iou(heat, mask) == pytest.approx(4 / 28)
    assert energy_inside(heat, mask) == pytest.approx(4 / 16)
    peak = np.zeros((10, 10))
    peak[3, 3] = 1
    assert pointing_game(peak, mask) == 1
    peak[3, 3], peak[9, 9] = 0, 1
    assert pointing_game(peak, mask) == 0
    assert energy_inside(mask, mask) == 1 and iou(mask, mask) == 1


def test_localisation_table_per_method(smoke_tree, model, tmp_path):
    from fbifpn.data.dataset import FrameDataset
    from fbifpn.data.manifest import load_manifest
    from fbifpn.data.prep import PrepOptions, prep
    from fbifpn.data.sources import ffpp

    prep(
        ffpp.scan(smoke_tree / "synth-ff", ScanOptions(dataset="synth-ff")),
        tmp_path,
        PrepOptions(frames=2, size=64),
        progress=False,
    )
    ds = FrameDataset(load_manifest(tmp_path), 64, model.mean, model.std, split="test", frames_per_video=1)
    rows = localisation(model, torch.utils.data.DataLoader(ds, batch_size=8), progress=False)
    table = localisation_table(rows)
    assert set(table["map"]) == {
        "cam_neck",
        "cam_backbone",
        "mask",
        "attention/0",
        "attention/1",
        "attention/2",
    }
    assert set(table["method"]) == {"Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"}
    assert table[["pointing", "energy"]].apply(lambda c: c.between(0, 1)).all().all()


def test_overlay_keeps_the_image_size():
    out = overlay(np.zeros((32, 48, 3), np.uint8), np.ones((32, 48)) * 0.5)
    assert out.shape == (32, 48, 3) and out.dtype == np.uint8


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, model):
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    ckpt.save(
        path, model=model.state_dict(), config=load_config("smoke").to_dict(), threshold=0.5, best_epoch=0
    )
    return path


def test_detect_scores_the_astronaut(checkpoint, tmp_path, capsys):
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    assert (
        main(
            [
                "detect",
                str(photo),
                "--checkpoint",
                str(checkpoint),
                "--detector",
                "yunet",
                "--json",
                str(tmp_path / "r.json"),
                "--overlay",
                str(tmp_path / "o.png"),
            ]
        )
        == 0
    )
    (result,) = json.loads((tmp_path / "r.json").read_text())
    assert len(result["frames"][0]["faces"]) == 1
    assert 0 <= result["score"] <= 1
    assert result["model"]["sha256"] and result["seconds"] > 0
    assert cv2.imread(str(tmp_path / "o.png")).shape == (512, 512, 3)


def test_detect_on_bad_and_mixed_inputs(checkpoint, smoke_tree, tmp_path):
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(b"not a video" * 50)
    assert (
        main(["detect", str(bad), "--checkpoint", str(checkpoint), "--json", str(tmp_path / "a.json")]) == 1
    )
    (entry,) = json.loads((tmp_path / "a.json").read_text())
    assert entry["score"] is None and "cannot decode" in entry["error"]

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "broken.png").write_bytes(b"\x89PNG garbage")
    write_cv_video(mixed / "blank.mp4", [np.zeros((64, 64, 3), np.uint8)] * 3)  # no face
    video = smoke_tree / "synth-ff/original_sequences/youtube/c23/videos/000.mp4"
    for suffix in (".mp4", ".json"):  # a synthetic video with its sidecar of face boxes
        (mixed / f"real{suffix}").write_bytes(video.with_suffix(suffix).read_bytes())
    assert (
        main(
            [
                "detect",
                str(mixed),
                "--checkpoint",
                str(checkpoint),
                "--detector",
                "haar",
                "--frames",
                "4",
                "--json",
                str(tmp_path / "b.json"),
                "--overlay",
                str(tmp_path / "ov"),
            ]
        )
        == 0
    )
    results = {r["path"].split("/")[-1]: r for r in json.loads((tmp_path / "b.json").read_text())}
    assert "error" in results["broken.png"]
    assert results["blank.mp4"]["score"] is None and results["blank.mp4"]["reason"] == "no face found"
    assert results["real.mp4"]["detector"] == "precomputed" and 0 <= results["real.mp4"]["score"] <= 1
    assert len(results["real.mp4"]["frames"]) == 4
    assert (tmp_path / "ov/real.mp4.overlay.mp4").is_file()  # mirrors mixed/real.mp4


def test_explain_command_writes_the_table_and_the_grid(checkpoint, tmp_path, capsys):
    from fbifpn.data.cache import prepared_manifest

    manifest = prepared_manifest(load_config("smoke"), progress=False)
    assert (
        main(
            [
                "explain",
                "--checkpoint",
                str(checkpoint),
                "--manifest",
                str(manifest),
                "--out",
                str(tmp_path),
                "--frames",
                "1",
            ]
        )
        == 0
    )
    table = pd.read_csv(tmp_path / "localisation.csv")
    assert {"map", "method", "iou", "pointing", "energy"} <= set(table)
    grid = cv2.imread(str(tmp_path / "grid.png"))
    assert grid is not None and grid.shape[0] > 128  # a header and at least one method row
    assert "localisation" in capsys.readouterr().out


def test_method_tiles_one_row_per_method_with_every_map(model):
    from fbifpn.data.cache import prepared_manifest
    from fbifpn.data.dataset import FrameDataset
    from fbifpn.explain import method_grid, method_tiles

    cfg = load_config("smoke")
    data = FrameDataset(
        prepared_manifest(cfg, progress=False), 64, model.mean, model.std, split="test", frames_per_video=1
    )
    tiles = method_tiles(model, data, level=1)
    assert sorted(tiles) == ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"]
    columns = list(tiles["Deepfakes"])
    assert columns[:3] == ["crop", "ground truth", "predicted mask"]
    assert [c for c in columns if c.startswith("attention")] == [
        "attention P2",
        "attention P3",
        "attention P4",
    ]
    assert columns[-2:] == ["Grad-CAM P3", "Grad-CAM backbone"]
    for row in tiles.values():
        assert all(tile.shape == (64, 64, 3) and tile.dtype == np.uint8 for tile in row.values())
    fig = method_grid(model, data)
    assert fig.axes[0].get_title() == "crop" and len(fig.axes) == 4 * len(columns)
    only_reals = [v for v in data.videos if v["label"].iloc[0] == 0]
    with pytest.raises(ValueError, match="no fake with a ground-truth mask"):
        method_tiles(
            model, FrameDataset(pd.concat(only_reals), 64, model.mean, model.std, frames_per_video=1)
        )
