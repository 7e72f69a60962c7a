"""The synthetic benchmark: layouts, determinism, exact masks, no shortcuts."""

import csv
import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from fbifpn.data.synthetic import SIZES, generate
from fbifpn.data.synthetic.audit import shortcut_aucs
from fbifpn.data.synthetic.methods import METHODS
from fbifpn.data.video import frame_count, read_frames

SMOKE = SIZES["smoke"]


@pytest.fixture(scope="session")
def smoke_tree(tmp_path_factory) -> Path:
    return generate(
        tmp_path_factory.mktemp("synth") / "smoke", size="smoke", seed=0, workers=1, progress=False
    )


def tree_digest(root: Path) -> dict[str, str]:
    """Hash of every decoded video and of every index file (videos decode identically even if a
    container's metadata differed)."""
    digests = {}
    for path in sorted(root.rglob("*")):
        if path.suffix == ".mp4":
            h = hashlib.sha256()
            for frame in read_frames(path):
                h.update(frame.tobytes())
            digests[str(path.relative_to(root))] = h.hexdigest()
        elif path.suffix in (".json", ".txt", ".csv") and path.name != "benchmark.json":
            digests[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def test_ff_layout(smoke_tree):
    ff = smoke_tree / "synth-ff"
    ids = [f"{i:03d}" for i in range(SMOKE.ff_ids)]
    for level in SMOKE.ff_levels:
        reals = sorted(p.stem for p in (ff / f"original_sequences/youtube/{level}/videos").glob("*.mp4"))
        assert reals == ids
        for method in METHODS:
            fakes = sorted(
                p.stem for p in (ff / f"manipulated_sequences/{method}/{level}/videos").glob("*.mp4")
            )
            assert len(fakes) == SMOKE.ff_ids and all(re.fullmatch(r"\d{3}_\d{3}", f) for f in fakes)
    splits = {k: json.loads((ff / f"splits/{k}.json").read_text()) for k in ("train", "val", "test")}
    assert all(splits.values()), "every split holds at least one pair"
    members = [v for pairs in splits.values() for pair in pairs for v in pair]
    assert sorted(members) == ids  # every identity in exactly one pair, one split
    split_of = {v: k for k, pairs in splits.items() for pair in pairs for v in pair}
    for method in METHODS:
        for path in (ff / f"manipulated_sequences/{method}/c23/videos").glob("*.mp4"):
            a, b = path.stem.split("_")
            assert split_of[a] == split_of[b]  # a fake lives in the split of its pair
            assert [a, b] in splits[split_of[a]] or [b, a] in splits[split_of[a]]
            mask = ff / f"manipulated_sequences/{method}/masks/videos/{path.name}"
            assert frame_count(mask) == frame_count(path) == SMOKE.frames


def test_sidecars_give_boxes_and_five_landmarks(smoke_tree):
    videos = list(smoke_tree.rglob("*.mp4"))
    videos = [v for v in videos if "/masks/" not in str(v)]
    assert videos
    for video in videos:
        sidecar = json.loads(video.with_suffix(".json").read_text())
        assert len(sidecar["frames"]) == frame_count(video)
        for frame in sidecar["frames"]:
            x0, y0, x1, y1 = frame["box"]
            assert 0 <= x0 < x1 <= SMOKE.frame and 0 <= y0 < y1 <= SMOKE.frame
            assert 0.3 <= (y1 - y0) / SMOKE.frame <= 0.7  # the face covers 40-60 % of the frame side
            lm = np.array(frame["landmarks"])
            assert lm.shape == (5, 2)
            assert (lm[:, 0] >= x0).all() and (lm[:, 0] <= x1).all() and (lm[:, 1] >= y0).all()
            assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]  # left/right eye, left/right mouth corner


def test_celebdf_layout_and_test_list(smoke_tree):
    cdf = smoke_tree / "synth-cdf"
    reals = sorted(p.name for p in (cdf / "Celeb-real").glob("*.mp4"))
    assert len(reals) == SMOKE.cdf_celebs * SMOKE.cdf_videos_per_celeb
    assert len(list((cdf / "YouTube-real").glob("*.mp4"))) == SMOKE.cdf_youtube
    for fake in (cdf / "Celeb-synthesis").glob("*.mp4"):
        i, j, k = re.fullmatch(r"id(\d+)_id(\d+)_(\d{4})", fake.stem).groups()
        assert i != j and (cdf / f"Celeb-real/id{i}_{k}.mp4").is_file()
    lines = (cdf / "List_of_testing_videos.txt").read_text().split("\n")
    entries = [line.split(" ", 1) for line in lines if line]
    assert entries
    for label, rel in entries:
        assert (cdf / rel).is_file()
        assert label == ("0" if rel.startswith("Celeb-synthesis/") else "1")  # Celeb-DF: 1 = real


def test_dfdc_layout(smoke_tree):
    dfdc = smoke_tree / "synth-dfdc"
    parts = sorted(dfdc.glob("dfdc_train_part_*"))
    assert len(parts) == SMOKE.dfdc_parts
    for part in parts:
        meta = json.loads((part / "metadata.json").read_text())
        assert sorted(meta) == sorted(p.name for p in part.glob("*.mp4"))
        for entry in meta.values():
            if entry["label"] == "FAKE":
                assert meta[entry["original"]]["label"] == "REAL"
    with open(dfdc / "test/labels.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["filename"] for r in rows) == sorted(p.name for p in (dfdc / "test").glob("*.mp4"))
    assert {r["label"] for r in rows} == {"0", "1"}


def test_the_scene_record_is_the_plans(smoke_tree):
    from fbifpn.data.synthetic.generate import PLANS, SCENES, read_scenes, scenes

    for name, plan in PLANS.items():
        record = read_scenes(smoke_tree / name)
        assert record == scenes(plan(SMOKE, 0)[0]), name
        with open(smoke_tree / name / SCENES) as f:
            assert len(list(csv.reader(f))) == len(record) + 1  # one row per video: one scene each
        videos = {
            p.relative_to(smoke_tree / name).as_posix()
            for p in (smoke_tree / name).rglob("*.mp4")
            if "masks" not in p.parts
        }
        assert set(record) == videos, name  # every video in exactly one scene, no mask among them
    ff = read_scenes(smoke_tree / "synth-ff")
    for level in SMOKE.ff_levels:
        real = ff[f"original_sequences/youtube/{level}/videos/000.mp4"]
        made = [
            v for v in ff if v.startswith("manipulated_sequences/") and v.split("/")[-1].startswith("000_")
        ]
        assert len(made) == len(METHODS) * len(SMOKE.ff_levels)
        assert {ff[v] for v in made} == {real} == {"synth-ff/000"}
    dfdc = read_scenes(smoke_tree / "synth-dfdc")
    with open(smoke_tree / "synth-dfdc/test/labels.csv") as f:
        labels = {f"test/{r['filename']}": r["label"] for r in csv.DictReader(f)}
    by_scene = {}
    for video, label in labels.items():
        by_scene.setdefault(dfdc[video], []).append(label)
    assert sorted(map(sorted, by_scene.values())) == [["0", "1"]] * SMOKE.dfdc_test_reals  # a real, its fake


def test_writing_the_scene_record_changes_no_video(smoke_tree):
    """A tree generated before the record existed gains it on the next `generate`, which changes
    nothing else: every file keeps its bytes and its mtime, and the version stays."""
    from fbifpn.data.synthetic.generate import DATASETS, SCENES

    def files():
        return {
            p: (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(smoke_tree.rglob("*"))
            if p.is_file() and p.name != SCENES
        }

    before, records = files(), {name: (smoke_tree / name / SCENES).read_text() for name in DATASETS}
    for name in DATASETS:
        (smoke_tree / name / SCENES).unlink()
    assert generate(smoke_tree, size="smoke", seed=0, workers=1, progress=False) == smoke_tree
    assert {name: (smoke_tree / name / SCENES).read_text() for name in DATASETS} == records
    assert files() == before


def test_same_seed_same_frames_whatever_the_workers(smoke_tree, tmp_path):
    again = generate(tmp_path / "again", size="smoke", seed=0, workers=2, progress=False)
    assert tree_digest(again) == tree_digest(smoke_tree)
    other = generate(
        tmp_path / "other", size="smoke", seed=1, workers=2, progress=False, datasets=("synth-ff",)
    )
    a, b = tree_digest(other), tree_digest(smoke_tree)
    assert (
        a["synth-ff/original_sequences/youtube/raw/videos/000.mp4"]
        != b["synth-ff/original_sequences/youtube/raw/videos/000.mp4"]
    )


# The smoke benchmark's tree_digest as made where results/ was made (AMD EPYC, fbifpn/numerics.py's
# AVX2 pin). A machine whose OpenCV or numpy runs other kernels makes other pixels (OpenCV capped
# below AVX2 changes 12 of its files: benchmarks/isa_probe.py), and every number downstream moves;
# this says so before any table is compared. A new benchmark version changes it on purpose.
SMOKE_DIGEST = "eb32b2c5c3de25f89adc8f91f1d5b09b7bceff80fd894b9eca62dc7bf6876e95"


def test_the_smoke_benchmark_is_the_one_the_results_were_made_from(smoke_tree):
    digests = tree_digest(smoke_tree)
    assert len(digests) == 235
    combined = hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()
    assert combined == SMOKE_DIGEST, (
        "this machine generates other benchmark pixels than the committed results' machine: see "
        "fbifpn/numerics.py and benchmarks/isa_probe.py"
    )


def test_complete_tree_is_reused(smoke_tree):
    stamp = (smoke_tree / "benchmark.json").stat().st_mtime_ns
    assert generate(smoke_tree, size="smoke", seed=0, workers=1, progress=False) == smoke_tree
    assert (smoke_tree / "benchmark.json").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("method", METHODS)
def test_raw_fake_differs_from_its_real_exactly_inside_the_mask(smoke_tree, method):
    """Lossless level. Tolerance: none outside the mask (the stored 8-bit mask is the one blended
    with); inside, where the mask exceeds 0.5, at least 90 % of pixels differ (swap methods) or 50 %
    (re-enactment, whose content is the same person and partly identical)."""
    ff = smoke_tree / "synth-ff"
    checked = 0
    for fake_path in sorted((ff / f"manipulated_sequences/{method}/raw/videos").glob("*.mp4")):
        target = fake_path.stem.split("_")[0]
        real = np.stack(read_frames(ff / f"original_sequences/youtube/raw/videos/{target}.mp4")).astype(int)
        fake = np.stack(read_frames(fake_path)).astype(int)
        mask = np.stack(read_frames(ff / f"manipulated_sequences/{method}/masks/videos/{fake_path.name}"))[
            ..., 0
        ]
        diff = np.abs(fake - real).max(-1)
        assert (diff[mask == 0] == 0).all()
        inside = mask > 127
        assert inside.any()
        changed = (diff[inside] > 0).mean()
        assert changed >= (0.9 if method in ("Deepfakes", "FaceSwap") else 0.5), changed
        checked += 1
    assert checked == SMOKE.ff_ids


def test_unknown_size_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="unknown size 'huge'"):
        generate(tmp_path, size="huge")


@pytest.mark.slow
def test_no_global_statistic_separates_real_from_fake():
    """Demo size, seed 0, synth-ff c23, video level: every shortcut AUC stays below 0.65."""
    root = generate(size="demo", seed=0, workers=os.cpu_count(), progress=False, datasets=("synth-ff",))
    aucs = shortcut_aucs(root, "c23")
    assert set(aucs) == {"brightness", "colour_balance", "bytes_per_frame", "sharpness"}
    assert all(auc < 0.65 for auc in aucs.values()), aucs


def test_a_tree_of_another_benchmark_version_is_regenerated(tmp_path):
    from fbifpn.data.synthetic.generate import MARKER, VERSION

    root = generate(tmp_path / "b", size="smoke", seed=0, workers=1, progress=False)
    marker = json.loads((root / MARKER).read_text())
    (root / MARKER).write_text(json.dumps(marker | {"version": VERSION - 1}))
    stale = root / "synth-cdf" / "Celeb-real" / "from-the-old-version.mp4"
    stale.write_bytes(b"old")
    generate(tmp_path / "b", size="smoke", seed=0, workers=1, progress=False)
    assert not stale.exists()
    assert json.loads((root / MARKER).read_text())["version"] == VERSION
    assert (root / "synth-cdf" / "List_of_testing_videos.txt").is_file()


def test_without_pyav_opencv_writes_every_level(tmp_path, monkeypatch):
    """A lean GPU image has no PyAV: the benchmark still writes (and records the encoder)."""
    import importlib.util

    from fbifpn.data import video

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "av" else real_find_spec(name, *a)
    )
    assert video.encoder() == "opencv-mp4v"
    frames = [np.full((32, 32, 3), 40 * i, np.uint8) for i in range(4)]
    for level in ("raw", "c23", "c40"):
        video.write_video(tmp_path / f"{level}.mp4", frames, level)
        assert frame_count(tmp_path / f"{level}.mp4") == 4
    masks = [np.full((32, 32), 255 * (i % 2), np.uint8) for i in range(4)]
    video.write_video(tmp_path / "mask.mp4", masks, "raw", gray=True)
    assert [int(f.mean()) for f in read_frames(tmp_path / "mask.mp4")] == [0, 255, 0, 255]  # lossless
    root = generate(tmp_path / "b", size="smoke", seed=0, workers=1, progress=False, datasets=("synth-ff",))
    assert json.loads((root / "benchmark.json").read_text())["encoder"] == "opencv-mp4v"


def test_demo_test_splits_have_power_and_leave_train_and_val_as_they_were():
    """Every demo test split holds >= 150 videos, >= 50 of them real. The videos added for that are
    test-only identities planned after every other draw: without them the plan is the same prefix."""
    import dataclasses

    from fbifpn.data.synthetic.generate import PLANS, SIZES

    demo = SIZES["demo"]
    _, ff = PLANS["synth-ff"](demo, 0)
    reals = 2 * len(ff["splits/test.json"])
    assert reals >= 50 and reals * 5 >= 150  # each real with its four fakes
    _, cdf = PLANS["synth-cdf"](demo, 0)
    lines = cdf["List_of_testing_videos.txt"].split("\n")
    assert len([x for x in lines if x]) >= 150 and sum(x.startswith("1 ") for x in lines) >= 50
    _, dfdc = PLANS["synth-dfdc"](demo, 0)
    rows = dfdc["test/labels.csv"].strip().split("\n")[1:]
    assert len(rows) >= 150 and sum(r.endswith(",0") for r in rows) >= 50
    without = dataclasses.replace(
        demo, ff_extra_test_pairs=0, cdf_extra_test_celebs=0, dfdc_test_reals=10, ff_extra_val_pairs=0
    )
    for name, plan in PLANS.items():
        small_jobs, small_files = plan(without, 0)
        jobs, files = plan(demo, 0)
        assert jobs[: len(small_jobs)] == small_jobs, name
        for key in small_files:
            if key in (
                "splits/test.json",
                "splits/val.json",
                "List_of_testing_videos.txt",
                "test/labels.csv",
            ):
                continue
            assert files[key] == small_files[key], (name, key)  # the train list unchanged
    assert ff["splits/train.json"] == PLANS["synth-ff"](without, 0)[1]["splits/train.json"]


def test_version_5_adds_val_only_identities_and_leaves_train_and_test_as_they_were():
    """At demo size synth-ff val holds >= 100 videos, >= 50 of them real, so that it can still tell
    checkpoints apart; the identities added for it come after every other, so version 4's plan (the
    same size without them) is a prefix of the jobs, and its train and test lists are unchanged."""
    import dataclasses

    from fbifpn.data.synthetic.generate import PLANS, SIZES

    demo = SIZES["demo"]
    v4 = dataclasses.replace(demo, ff_extra_val_pairs=0)
    jobs, files = PLANS["synth-ff"](demo, 0)
    old_jobs, old_files = PLANS["synth-ff"](v4, 0)
    assert jobs[: len(old_jobs)] == old_jobs  # every train and test video is filmed as before
    assert files["splits/train.json"] == old_files["splits/train.json"]
    assert files["splits/test.json"] == old_files["splits/test.json"]
    val = [v for pair in files["splits/val.json"] for v in pair]  # the real videos of val
    assert len(val) == 50 and sum(len(j.fakes) + 1 for j in jobs if f"{j.identity:03d}" in val) == 250
    assert files["splits/val.json"][: len(old_files["splits/val.json"])] == old_files["splits/val.json"]
    new = set(val) - {v for pair in old_files["splits/val.json"] for v in pair}
    others = {v for k in ("train", "test") for pair in files[f"splits/{k}.json"] for v in pair}
    assert new and not new & others  # val-only: in no other split
    named = {job.identity for job in jobs[len(old_jobs) :]}
    assert {f"{i:03d}" for i in named} == new  # one new job per new val identity, nothing else
