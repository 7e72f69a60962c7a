"""The explorer's Python side (the browser test drives it in JupyterLab)."""

import shutil

import cv2
import numpy as np
import pytest
import torch

from fbifpn import build_model, load_config
from fbifpn.data.cache import prepared_manifest
from fbifpn.widgets import OVERLAYS, Explorer


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(load_config("smoke")).eval()


def test_controls_change_the_view_and_outputs_are_cached(model, tmp_path):
    explorer = Explorer(model, prepared_manifest(load_config("smoke"), progress=False), 64, split="test")
    first = explorer.image.value
    line = explorer.timeline.value
    explorer.frame.value = 1
    assert explorer.image.value != first and explorer.timeline.value != line
    cached = explorer.cache[explorer.video.value]
    for kind in OVERLAYS:
        explorer.kind.value = kind
        assert explorer.image.value
    explorer.level.value = 1
    assert explorer.cache[explorer.video.value] is cached  # no recomputation on control changes
    explorer.video.value = list(explorer.videos)[-1]
    assert explorer.frame.max == len(explorer.videos[explorer.video.value]) - 1
    snap = cv2.imread(str(explorer.snapshot(tmp_path / "snap.png")))
    assert snap is not None and snap.shape[1] >= 64


def test_a_plain_folder_of_videos(model, smoke_tree, tmp_path, monkeypatch):
    monkeypatch.setenv("FBIFPN_RUNS", str(tmp_path / "runs"))
    folder = tmp_path / "mine"
    folder.mkdir()
    source = smoke_tree / "synth-ff/original_sequences/youtube/c23/videos"
    for name in ("000", "001"):
        for suffix in (".mp4", ".json"):
            shutil.copy(source / f"{name}{suffix}", folder / f"{name}{suffix}")
    explorer = Explorer(model, folder, 64)
    assert sorted(explorer.videos) == ["folder/000", "folder/001"]
    assert np.isfinite(explorer.outputs("folder/000")["scores"]).all()
