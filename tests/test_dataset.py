"""FrameDataset: the batch dict, masks, augmentations, sampling, determinism, SBI, workers."""

import os

import cv2
import numpy as np
import pytest
import torch

from fbifpn.data.dataset import Augment, FrameDataset, model_input, slot_positions
from fbifpn.data.manifest import load_manifest
from fbifpn.data.prep import PrepOptions, prep
from fbifpn.data.sources import ffpp
from fbifpn.data.sources.base import ScanOptions

NO_AUG = Augment(flip=0, crop_jitter=0, colour=0, jpeg=0)


@pytest.fixture(scope="module")
def manifest(smoke_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("prep")
    prep(
        ffpp.scan(smoke_tree / "synth-ff", ScanOptions(dataset="synth-ff")),
        out,
        PrepOptions(frames=6, size=64),
        progress=False,
    )
    return load_manifest(out)


def test_batch_dict(manifest):
    ds = FrameDataset(manifest, 48, split="train", frames_per_video=4)
    sample = ds[0]
    assert sample["image"].shape == (3, 48, 48) and sample["image"].dtype == torch.float32
    assert sample["mask"].shape == (1, 48, 48) and sample["mask"].dtype == torch.float32
    assert sample["label"].dtype == torch.float32 and sample["has_mask"].dtype == torch.bool
    assert {"video_id", "frame_idx", "face_idx", "dataset", "method"} <= set(sample)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=5)))
    assert batch["image"].shape == (5, 3, 48, 48) and len(batch["video_id"]) == 5
    assert len(ds) == len(ds.videos) * 4


def test_masks_are_zero_for_reals_and_present_for_fakes(manifest):
    ds = FrameDataset(manifest, 48, frames_per_video=2)
    for i in range(len(ds)):
        s = ds[i]
        if s["label"] == 0:
            assert s["mask"].eq(0).all() and s["has_mask"]
        else:
            assert s["mask"].max() > 0.5


def test_flip_moves_image_and_mask_together(manifest):
    plain = FrameDataset(manifest, 48, frames_per_video=2, augment=NO_AUG)
    flipped = FrameDataset(
        manifest, 48, frames_per_video=2, augment=Augment(flip=1.0, crop_jitter=0, colour=0, jpeg=0)
    )
    i = next(i for i in range(len(plain)) if plain[i]["label"] == 1)
    a, b = plain[i], flipped[i]
    torch.testing.assert_close(b["image"], a["image"].flip(-1))
    torch.testing.assert_close(b["mask"], a["mask"].flip(-1))
    assert not torch.equal(a["mask"], a["mask"].flip(-1))  # the mask is not symmetric: the test can fail


def test_sampling_is_evenly_spaced():
    assert slot_positions(12, 4) == [0, 4, 7, 11]
    assert slot_positions(3, 5) == [0, 1, 2, 0, 1]  # short videos repeat
    shifted = slot_positions(12, 4, offset=0.5)
    assert shifted == [1, 4, 7, 10]
    assert all(j * 3 <= p < (j + 1) * 3 for j, p in enumerate(slot_positions(12, 4, offset=0.99)))


def test_eval_frames_are_evenly_spaced(manifest):
    ds = FrameDataset(manifest, 32, frames_per_video=3)
    frames = [ds[i]["frame_idx"] for i in range(3)]
    available = sorted(ds.videos[0]["frame_idx"])
    assert frames == [available[p] for p in slot_positions(len(available), 3)]


def test_same_seed_epoch_index_same_sample_and_epochs_resample(manifest):
    a = FrameDataset(manifest, 32, split="train", frames_per_video=2, train=True, seed=3)
    b = FrameDataset(manifest, 32, split="train", frames_per_video=2, train=True, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    for i in (0, 5, len(a) - 1):
        torch.testing.assert_close(a[i]["image"], b[i]["image"])
        assert a[i]["frame_idx"] == b[i]["frame_idx"]
    drawn = set()
    for epoch in range(4):
        a.set_epoch(epoch)
        drawn.add(tuple(a.frame_row(item)["frame_idx"] for item in a.items))
    assert len(drawn) > 1  # frames are drawn anew across epochs


def test_sbi_fakes_from_reals(manifest):
    ds = FrameDataset(manifest, 48, split="train", frames_per_video=2, train=True, fakes="sbi")
    samples = [ds[i] for i in range(len(ds))]
    assert {s["method"] for s in samples} == {"real", "SBI"}
    for s in samples:
        if s["method"] == "SBI":
            assert s["label"] == 1 and s["has_mask"] and s["mask"].max() > 0.2
        else:
            assert s["label"] == 0 and s["mask"].eq(0).all()
    both = FrameDataset(manifest, 48, split="train", frames_per_video=2, fakes="both")
    assert len(both) == len(FrameDataset(manifest, 48, split="train", frames_per_video=2)) + len(ds) // 2
    with pytest.raises(ValueError, match="fakes"):
        FrameDataset(manifest, 48, fakes="gan")


def test_workers_give_the_same_batches(manifest):
    ds = FrameDataset(manifest, 32, split="train", frames_per_video=2, train=True, fakes="both", seed=1)
    serial = list(torch.utils.data.DataLoader(ds, batch_size=8))
    parallel = list(torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2))
    for x, y in zip(serial, parallel, strict=True):
        torch.testing.assert_close(x["image"], y["image"])
        torch.testing.assert_close(x["mask"], y["mask"])


@pytest.mark.slow
@pytest.mark.benchmark
def test_demo_benchmark_is_learnable():
    """Demo size, seed 0, synth-ff c23: a small model trained for at most a minute reaches video AUC
    >= 0.85 on the test split (with the shortcut audit: learnable, and only from the faces)."""
    from fbifpn.data.cache import default_prep_out
    from fbifpn.data.synthetic import generate
    from fbifpn.sanity import learnability

    root = (
        generate(size="demo", seed=0, workers=os.cpu_count(), progress=False, datasets=("synth-ff",))
        / "synth-ff"
    )
    out = default_prep_out(root, "c23")
    prep(
        ffpp.scan(root, ScanOptions(dataset="synth-ff")),
        out,
        PrepOptions(),
        workers=os.cpu_count(),
        progress=False,
    )
    result = learnability(out, steps=40)  # 40 steps: under a minute on 2 cores
    assert result["chosen_videos"] == 250
    assert result["video_auc"] >= 0.85, result
    assert np.isfinite(result["video_auc"])


@pytest.mark.parametrize("train", [False, True])
def test_crops_and_masks_come_out_at_the_input_size(manifest, train):
    """Geometry runs once, straight to the input size (bigger or smaller than the crop)."""
    for size in (32, 96):
        ds = FrameDataset(manifest, size, frames_per_video=2, train=train, seed=3)
        fake = next(ds[i] for i in range(len(ds)) if ds[i]["label"] == 1)
        assert fake["image"].shape == (3, size, size) and fake["mask"].shape == (1, size, size)
        assert float(fake["mask"].min()) >= 0 and float(fake["mask"].max()) <= 1
        assert fake["mask"].mean() > 0.01  # a fake's mask survives the resize


@pytest.mark.parametrize("size", [48, 64, 96], ids=["shrink", "as-is", "enlarge"])
def test_an_eval_sample_is_model_input_of_its_crop(manifest, size):
    """What detect and the explorer feed the model (model_input of a crop array) is, bit for bit,
    what the dataset gives eval for the crop file prep wrote (PNG, read back BGR uint8)."""
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    ds = FrameDataset(manifest, size, mean, std, frames_per_video=2)
    for index in range(0, len(ds), 7):
        sample = ds[index]
        crop = cv2.imread(ds.frame_row(ds.items[index])["image"], cv2.IMREAD_COLOR)
        expected = model_input(crop, size, mean, std)
        assert expected.dtype == torch.float32 and expected.shape == (3, size, size)
        assert torch.equal(sample["image"], expected)


def test_model_input_is_rgb_normalised_and_area_resized():
    crop = np.zeros((64, 64, 3), np.uint8)
    crop[..., 0] = 255  # blue in OpenCV's BGR
    crop[::2, ::2, 1] = 255  # a green grid that INTER_AREA averages to 1/4, not skips or keeps
    x = model_input(crop, 32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert torch.equal(x[2], torch.ones(32, 32)) and torch.equal(x[0], torch.zeros(32, 32))
    assert torch.allclose(x[1], torch.full((32, 32), 0.25), atol=1 / 255)
