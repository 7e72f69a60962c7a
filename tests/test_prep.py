"""Preprocessing: crops, masks, alignment, resume, shards, bad input, detectors."""

import json
import shutil
import warnings
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import write_cv_video
from skimage import data

import fbifpn.data.prep as prep_module
from fbifpn.cli import main
from fbifpn.data.faces import DetectorUnavailable, align_transform, make_detector, template, transform_points
from fbifpn.data.manifest import load_manifest
from fbifpn.data.prep import PrepOptions, prep
from fbifpn.data.sources import ffpp
from fbifpn.data.sources.base import ScanOptions

OPTS = PrepOptions(frames=4, detector="precomputed", size=64, scale=1.3)


def _sidecar(path, boxes):
    frames = [
        {
            "box": list(b),
            "landmarks": [
                [b[0] + 5, b[1] + 8],
                [b[2] - 5, b[1] + 8],
                [(b[0] + b[2]) / 2, b[1] + 14],
                [b[0] + 7, b[3] - 6],
                [b[2] - 7, b[3] - 6],
            ],
        }
        if b
        else []
        for b in boxes
    ]
    path.with_suffix(".json").write_text(json.dumps({"fps": 25, "frames": frames}))


def _face_frames(n, size=(96, 96), box=(30, 24, 66, 72), gray=False):
    frames = []
    for i in range(n):
        f = np.full((size[1], size[0], 3), 90 + 10 * i, np.uint8)
        cv2.ellipse(
            f,
            ((box[0] + box[2]) // 2, (box[1] + box[3]) // 2),
            ((box[2] - box[0]) // 2, (box[3] - box[1]) // 2),
            0,
            0,
            360,
            (120, 160, 210),
            -1,
        )
        frames.append(cv2.cvtColor(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR) if gray else f)
    return frames


def test_prep_on_the_synthetic_benchmark(smoke_tree, tmp_path):
    entries = ffpp.scan(smoke_tree / "synth-ff", ScanOptions(compression="c23", dataset="synth-ff"))
    report = prep(entries, tmp_path / "out", OPTS, progress=False)
    df = load_manifest(tmp_path / "out")
    assert report["videos"] == {"total": 30, "done": 30, "failed": 0, "skipped_already_done": 0}
    assert len(df) == 30 * 4 and report["frames"]["crops"] == len(df)
    assert (
        df.groupby("video_id").frame_idx.apply(list)
        == pd.Series([[0, 2, 3, 5]] * 30, index=df.video_id.unique())
    ).all()  # evenly spaced over 6 frames
    fakes, reals = df[df.label == 1], df[df.label == 0]
    assert (fakes["mask"] != "").all() and fakes.has_mask.all()
    assert (reals["mask"] == "").all() and reals.has_mask.all()  # reals: zero mask, still supervised
    crop = cv2.imread(df.image[0])
    assert crop.shape == (64, 64, 3)
    assert np.load(df.landmarks[0]).shape[1] == 2
    assert set(df.dataset) == {"synth-ff"} and set(df.split) == {"train", "val", "test"}


def test_prep_records_its_options_and_refuses_to_mix_crop_geometries(smoke_tree, tmp_path):
    entries = ffpp.scan(smoke_tree / "synth-ff", ScanOptions(compression="c23", dataset="synth-ff"))[:2]
    out = tmp_path / "out"
    prep(entries, out, OPTS, progress=False)
    assert prep_module.recorded_options(out) == OPTS
    assert prep_module.recorded_options(out / "manifest.csv") == OPTS  # a CSV's folder
    prep(entries, out, replace(OPTS, frames=6), progress=False)  # frames shape no crop: allowed
    with pytest.raises(ValueError, match=r"made with scale=1\.3.*ask for scale=1\.5"):
        prep(entries, out, replace(OPTS, scale=1.5), progress=False)
    assert prep_module.recorded_options(out).scale == 1.3  # the refusal changed nothing
    assert prep_module.recorded_options(tmp_path) is None
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / prep_module.OPTIONS_FILE).write_text('{"scale": -1}')
    with pytest.raises(ValueError, match="not a record of prep options"):
        prep_module.recorded_options(tmp_path / "bad")


def test_align_puts_the_eyes_on_the_template(smoke_tree):
    sidecar = json.loads((smoke_tree / "synth-ff/original_sequences/youtube/raw/videos/000.json").read_text())
    for size, scale in ((256, 1.3), (128, 1.0)):
        for f in sidecar["frames"]:
            lm = np.array(f["landmarks"])
            eyes = transform_points(lm, align_transform(lm, size, scale))[:2]
            assert np.linalg.norm(eyes - template(size, scale)[:2], axis=1).max() <= 3


@pytest.mark.parametrize(
    "options", [OPTS, replace(OPTS, size=80, scale=1.6, align=True)], ids=["box", "align-1.6"]
)
def test_crop_face_gives_the_crop_prep_writes_bit_for_bit(smoke_tree, tmp_path, options):
    """detect and the explorer cut faces with crop_face: it must be what prep wrote, byte for byte
    after the PNG round trip, the alignment and scale included."""
    from fbifpn.data.faces import PrecomputedDetector
    from fbifpn.data.video import read_sampled

    entry = ffpp.scan(smoke_tree / "synth-ff", ScanOptions(compression="c23", dataset="synth-ff"))[0]
    prep([entry], tmp_path / "out", options, progress=False)
    rows = load_manifest(tmp_path / "out")
    frames = read_sampled(entry.path, list(rows["frame_idx"]))
    faces = PrecomputedDetector().for_video(entry.path)
    for _, row in rows.iterrows():
        (face,) = faces.detect(frames[row["frame_idx"]], row["frame_idx"])
        crop, matrix = prep_module.crop_face(frames[row["frame_idx"]], face, options)
        written = cv2.imread(row["image"], cv2.IMREAD_COLOR)
        assert crop.dtype == np.uint8 and crop.shape == (options.size, options.size, 3)
        assert np.array_equal(written, crop)
        corners = transform_points(np.array([face.box[:2], face.box[2:]]), matrix)
        assert np.allclose(corners.ravel(), row[["crop_x0", "crop_y0", "crop_x1", "crop_y1"]].to_numpy(float))


def test_mask_square_lands_where_the_transform_puts_it(tmp_path):
    root = tmp_path / "ff"
    for split, pair in (("train", ["000", "001"]), ("val", []), ("test", [])):
        (root / "splits").mkdir(parents=True, exist_ok=True)
        (root / f"splits/{split}.json").write_text(json.dumps([pair] if pair else []))
    frames = _face_frames(3)
    box = (30, 24, 66, 72)
    for v in ("000", "001"):
        _sidecar(write_cv_video(root / f"original_sequences/youtube/c23/videos/{v}.mp4", frames), [box] * 3)
    fake = write_cv_video(root / "manipulated_sequences/Deepfakes/c23/videos/000_001.mp4", frames)
    _sidecar(fake, [box] * 3)
    mask = np.zeros((96, 96), np.uint8)
    mask[40:50, 44:54] = 255  # a white square
    write_cv_video(
        root / "manipulated_sequences/Deepfakes/masks/videos/000_001.mp4",
        [cv2.cvtColor(mask, cv2.COLOR_GRAY2BGR)] * 3,
        "FFV1",
    )
    prep(ffpp.scan(root), tmp_path / "out", OPTS, progress=False)
    df = load_manifest(tmp_path / "out")
    row = df[df.method == "Deepfakes"].iloc[0]
    crop_mask = cv2.imread(row["mask"], cv2.IMREAD_GRAYSCALE)
    m = prep_module.box_transform(box, OPTS.scale, OPTS.size)
    expected = transform_points(np.array([[44, 40], [54, 50]]), m).mean(0)
    ys, xs = np.nonzero(crop_mask > 127)
    assert np.hypot(xs.mean() - expected[0], ys.mean() - expected[1]) < 1.5
    assert (crop_mask > 127).sum() == pytest.approx((10 * m[0, 0]) ** 2, rel=0.25)


def test_resume_after_a_kill_gives_the_same_manifest(smoke_tree, tmp_path, monkeypatch):
    entries = ffpp.scan(smoke_tree / "synth-ff", ScanOptions(compression="c40", dataset="synth-ff"))
    prep(entries, tmp_path / "whole", OPTS, progress=False)
    real_process = prep_module.process_video
    calls = {"n": 0}

    def dies_on_the_sixth(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt  # as if the job were killed mid-run
        return real_process(*args, **kwargs)

    monkeypatch.setattr(prep_module, "process_video", dies_on_the_sixth)
    with pytest.raises(KeyboardInterrupt):
        prep(entries, tmp_path / "resumed", OPTS, progress=False)
    monkeypatch.setattr(prep_module, "process_video", real_process)
    report = prep(entries, tmp_path / "resumed", OPTS, progress=False)
    assert report["videos"]["skipped_already_done"] == 5
    a = pd.read_csv(tmp_path / "whole/manifest.csv")
    b = pd.read_csv(tmp_path / "resumed/manifest.csv")
    pd.testing.assert_frame_equal(a, b)


def test_shards_union_equals_the_whole_run(smoke_tree, tmp_path):
    entries = ffpp.scan(smoke_tree / "synth-ff", ScanOptions(compression="c23", dataset="synth-ff"))
    prep(entries, tmp_path / "whole", OPTS, progress=False)
    for i in range(3):
        prep(entries, tmp_path / "sharded", OPTS, shard=(i, 3), progress=False)
    shards = load_manifest(tmp_path / "sharded")  # the union of manifest.shard-*.csv
    whole = load_manifest(tmp_path / "whole")

    def strip(df, base):
        return df.assign(**{c: df[c].str.replace(str(base), "") for c in ("image", "mask", "landmarks")})  # noqa: E731

    pd.testing.assert_frame_equal(strip(shards, tmp_path / "sharded"), strip(whole, tmp_path / "whole"))
    assert main(["prep", "--merge", "--out", str(tmp_path / "sharded")]) == 0
    assert len(pd.read_csv(tmp_path / "sharded/manifest.csv")) == len(whole)


def test_bad_input_is_recorded_and_the_run_goes_on(tmp_path):
    root = tmp_path / "ff"
    pairs = [["000", "001"], ["002", "003"], ["004", "005"], ["006", "007"]]
    (root / "splits").mkdir(parents=True)
    (root / "splits/train.json").write_text(json.dumps(pairs))
    (root / "splits/val.json").write_text("[]")
    (root / "splits/test.json").write_text("[]")
    videos = root / "original_sequences/youtube/c23/videos"
    videos.mkdir(parents=True)
    box = (30, 24, 66, 72)
    (videos / "000.mp4").write_bytes(b"")  # zero bytes
    (videos / "001.mp4").write_bytes(np.random.default_rng(0).bytes(5000))  # not a video at all
    good = write_cv_video(tmp_path / "tmp.mp4", _face_frames(8))
    (videos / "002.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # truncated
    _sidecar(videos / "002.mp4", [box] * 8)
    _sidecar(write_cv_video(videos / "003.mp4", _face_frames(3)), [None] * 3)  # no face in any frame
    _sidecar(write_cv_video(videos / "004.mp4", _face_frames(3, gray=True)), [box] * 3)  # grayscale
    _sidecar(write_cv_video(videos / "005.mp4", _face_frames(3, size=(96, 160))), [box] * 3)  # vertical
    _sidecar(
        write_cv_video(videos / "006.mp4", _face_frames(2, size=(3840, 2160), box=(1500, 600, 2100, 1400))),
        [(1500, 600, 2100, 1400)] * 2,
    )  # 4K
    _sidecar(
        write_cv_video(videos / "007.mp4", _face_frames(3)), [box, None, box]
    )  # one frame without a face
    fakes = root / "manipulated_sequences/Deepfakes/c23/videos"
    masks = root / "manipulated_sequences/Deepfakes/masks/videos"
    for name in ("000_001", "001_000"):
        _sidecar(write_cv_video(fakes / f"{name}.mp4", _face_frames(3)), [box] * 3)
    write_cv_video(masks / "001_000.mp4", [np.zeros((96, 96, 3), np.uint8)] * 2, "FFV1")  # wrong length
    # 000_001's mask video is missing although the layout promises one
    report = prep(ffpp.scan(root), tmp_path / "out", PrepOptions(frames=4, size=32), progress=False)
    failures = {f["file"].split("/")[-1]: f["reason"] for f in report["failures"]}
    warnings = [(w["file"].split("/")[-1], w["reason"]) for w in report["warnings"]]
    assert "0 bytes" in failures["000.mp4"]
    assert "corrupt" in failures["001.mp4"] or "cannot" in failures["001.mp4"]
    assert "no face" in failures["003.mp4"]
    assert any(f == "002.mp4" and "unreadable" in r for f, r in warnings) or "002.mp4" in failures
    assert ("004.mp4", "grayscale video") in warnings
    assert any(f == "005.mp4" and "vertical" in r for f, r in warnings)
    assert any(f == "006.mp4" and "4K" in r for f, r in warnings)
    assert any(f == "007.mp4" and "no face" in r for f, r in warnings)
    assert any(f == "000_001.mp4" and "missing" in r for f, r in warnings)
    assert any(f == "001_000.mp4" and "frames" in r for f, r in warnings)
    df = load_manifest(tmp_path / "out")
    done = set(df.video_id.str.split("/").str[-1])
    assert {"004", "005", "006", "007", "000_001", "001_000"} <= done  # the rest went on
    assert not df[df.method == "Deepfakes"].has_mask.any()  # kept, but without a mask to learn from
    assert report["videos"]["failed"] >= 3


def test_wrong_root_fails_at_once(tmp_path, capsys):
    assert (
        main(["prep", "--layout", "ffpp", "--root", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
        == 2
    )
    assert "nope" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["haar", "mtcnn", "yunet"])
def test_detectors_find_the_astronaut(name):
    try:
        detector = make_detector(name)
    except DetectorUnavailable as e:
        pytest.skip(str(e))
    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    faces = detector.detect(photo, 0)
    assert faces
    x0, y0, x1, y1 = max(faces, key=lambda f: f.area).box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    assert 170 < cx < 280 and 70 < cy < 180  # her face, not the flag or the suit
    if name != "haar":
        lm = max(faces, key=lambda f: f.area).landmarks
        assert lm.shape == (5, 2) and lm[0, 0] < lm[1, 0]


def test_synthetic_default_out(smoke_tree, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(smoke_tree / "synth-cdf", runs / "data/smoke-seed0/synth-cdf")
    assert (
        main(
            [
                "prep",
                "--layout",
                "celebdf",
                "--root",
                str(runs / "data/smoke-seed0/synth-cdf"),
                "--frames",
                "2",
                "--size",
                "32",
            ]
        )
        == 0
    )
    df = load_manifest(runs / "prep/synth-cdf-smoke-seed0")
    assert set(df.dataset) == {"synth-cdf"} and not df[df.label == 1].has_mask.any()


@pytest.mark.parametrize("marker", ["missing", "another version"])
def test_a_prep_cache_of_an_unknown_or_other_benchmark_version_is_made_again(
    smoke_tree, tmp_path, monkeypatch, marker
):
    from fbifpn import load_config
    from fbifpn.data.cache import prepared_manifest
    from fbifpn.data.synthetic.generate import MARKER

    monkeypatch.setenv("FBIFPN_RUNS", str(tmp_path))
    shutil.copytree(smoke_tree, tmp_path / "data" / smoke_tree.name)  # a complete tree: reused
    cfg = load_config("smoke", ["data.dataset=synth-cdf"])
    out = prepared_manifest(cfg, progress=False)
    assert out.parent == tmp_path / "prep"
    if marker == "missing":  # a cache made before the marker existed
        (out / MARKER).unlink()
    else:
        (out / MARKER).write_text(json.dumps({"version": -1}))
    leftover = out / "crops" / "from-the-old-version.png"
    leftover.write_bytes(b"old")
    assert prepared_manifest(cfg, progress=False) == out
    assert not leftover.exists()
    assert (out / MARKER).read_text() == (smoke_tree / MARKER).read_text()
    assert len(load_manifest(out)) > 0


def _synthetic_cache(smoke_tree, tmp_path, monkeypatch, dataset):
    """A smoke benchmark under a runs/ of the test's own, prepared for `dataset`."""
    from fbifpn import load_config
    from fbifpn.data.cache import prepared_manifest

    monkeypatch.setenv("FBIFPN_RUNS", str(tmp_path))
    shutil.copytree(smoke_tree, tmp_path / "data/smoke-seed0")  # where the cache looks: reused
    cfg = load_config("smoke", [f"data.dataset={dataset}"])
    return cfg, prepared_manifest(cfg, progress=False)


@pytest.mark.parametrize("dataset", ["synth-cdf", "synth-dfdc"])
def test_the_prepared_synthetic_manifest_gives_each_video_its_scene(
    smoke_tree, tmp_path, monkeypatch, dataset
):
    from fbifpn.data.synthetic.generate import read_scenes

    _, out = _synthetic_cache(smoke_tree, tmp_path, monkeypatch, dataset)
    root = tmp_path / "data/smoke-seed0" / dataset
    scene_of = read_scenes(root)
    df = load_manifest(out)
    sources = df["source"].map(lambda s: Path(s).relative_to(root).as_posix())
    assert (df["family"] == sources.map(scene_of)).all()  # the scene, not the layout's own rule
    test = df[df.split == "test"].drop_duplicates("video_id")
    labels = test.groupby("family")["label"].apply(sorted).tolist()
    if dataset == "synth-dfdc":  # labels.csv names no original; the scene record pairs them
        assert labels and all(pair == [0, 1] for pair in labels)
    else:  # a celebrity's video and its synthesis are one scene, finer than the celebrity
        assert [0, 1] in labels and [0] in labels  # and a YouTube video is its own
        synthesis = df.loc[sources == "Celeb-synthesis/id0_id1_0000.mp4", "family"]
        assert set(synthesis) == {"synth-cdf/id0_0000"}


def test_an_old_synthetic_cache_gains_its_families_without_prep(smoke_tree, tmp_path, monkeypatch, capsys):
    import fbifpn.data.cache as cache_module

    cfg, out = _synthetic_cache(smoke_tree, tmp_path, monkeypatch, "synth-dfdc")
    prepared = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    old = prepared.drop(columns="family")
    old.to_csv(out / "manifest.csv", index=False)  # as prepared before manifests had families
    crops = {p: p.stat().st_mtime_ns for p in (out / "crops").rglob("*.png")}
    capsys.readouterr()
    monkeypatch.setattr(cache_module, "prep", lambda *a, **k: pytest.fail("the crops were prepared again"))
    assert cache_module.prepared_manifest(cfg, progress=False) == out
    said = capsys.readouterr().out.strip().splitlines()
    assert len(said) == 1 and "adding each video's family" in said[0] and "scenes.csv" in said[0]
    now = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(now, prepared)  # every other column and row as it was
    assert {p: p.stat().st_mtime_ns for p in crops} == crops
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no FamilyWarning: the families are recorded now
        load_manifest(out)
    assert cache_module.prepared_manifest(cfg, progress=False) == out  # and only once
    assert capsys.readouterr().out == ""
