"""`fbifpn detect` on awkward inputs and outputs: colliding names, unwritable destinations, interrupted
runs, empty folders, foreign JSON next to a video and videos with fewer frames than asked."""

import json
from dataclasses import asdict

import cv2
import numpy as np
import pytest
import torch
from conftest import noise_frames, write_cv_video

import fbifpn.detect as det
from fbifpn import build_model, load_config
from fbifpn.cli import main
from fbifpn.data.faces import Face, FaceDetector, PrecomputedDetector, SidecarError, sidecar_problem
from fbifpn.data.prep import PrepOptions
from fbifpn.engine import checkpoint as ckpt


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(load_config("smoke")).eval()
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    ckpt.save(
        path,
        model=model.state_dict(),
        config=load_config("smoke").to_dict(),
        threshold=0.5,
        best_epoch=0,
        prep=asdict(PrepOptions(size=64)),  # as fit records its manifest's prep options
    )
    return path


class FixedFace(FaceDetector):
    """One face in the middle of every frame: each file gets a score, with no real detector."""

    name = "fixed"

    def detect(self, frame, frame_idx):
        h, w = frame.shape[:2]
        return [Face((w / 4, h / 4, 3 * w / 4, 3 * h / 4))]


@pytest.fixture
def fixed_face(monkeypatch):
    monkeypatch.setattr(det, "make_detector", lambda name: FixedFace())


@pytest.fixture
def count_work(monkeypatch):
    """How often the checkpoint was loaded and a file scored."""
    calls = {"load": 0, "score": 0}
    scorer, detect_file = det.FaceScorer, det.detect_file

    def loading(*a, **k):
        calls["load"] += 1
        return scorer(*a, **k)

    def scoring(*a, **k):
        calls["score"] += 1
        return detect_file(*a, **k)

    monkeypatch.setattr(det, "FaceScorer", loading)
    monkeypatch.setattr(det, "detect_file", scoring)
    return calls


def image(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), noise_frames(1, 32, seed)[0])
    return path


def run(checkpoint, *args):
    return main(["detect", *map(str, args), "--checkpoint", str(checkpoint), "--detector", "haar"])


# --------------------------------------------------------------------------- 1. overlay names


def test_same_named_inputs_in_two_folders_get_two_overlays(checkpoint, fixed_face, tmp_path):
    a = write_cv_video(tmp_path / "in/a/clip.mp4", noise_frames(3))
    b = write_cv_video(tmp_path / "in/b/clip.mp4", noise_frames(3, seed=1))
    photo = image(tmp_path / "in/b/photo.jpg")
    ov = tmp_path / "ov"
    assert run(checkpoint, a, b, photo, "--frames", "2", "--overlay", ov, "--json", tmp_path / "r.json") == 0
    results = json.loads((tmp_path / "r.json").read_text())
    assert [r["overlay"] for r in results] == [
        str(ov / "a/clip.mp4.overlay.mp4"),
        str(ov / "b/clip.mp4.overlay.mp4"),
        str(ov / "b/photo.jpg.overlay.png"),
    ]
    for r in results:
        assert cv2.VideoCapture(r["overlay"]).read()[0] or cv2.imread(r["overlay"]) is not None
    assert not [p for p in ov.rglob(".*")]  # no temporary file left behind


def test_one_input_keeps_the_overlay_name_it_was_given(checkpoint, fixed_face, tmp_path):
    photo = image(tmp_path / "photo.png")
    assert run(checkpoint, photo, "--overlay", tmp_path / "out/mine.jpg") == 0
    assert cv2.imread(str(tmp_path / "out/mine.jpg")).shape == (32, 32, 3)


# --------------------------------------------------------------------------- 2. checked overlay writes


class Unopened:
    def __init__(self, *a, **k):
        pass

    def isOpened(self):  # noqa: N802 - OpenCV's name
        return False


class Silent(Unopened):
    """Opens, takes every frame and writes nothing: what a full disk looks like to OpenCV."""

    def isOpened(self):  # noqa: N802
        return True

    def write(self, frame):
        pass

    def release(self):
        pass


@pytest.mark.parametrize(
    "failure",
    [
        ("imwrite", lambda *a, **k: False),
        ("VideoWriter", Unopened),
        ("VideoWriter", Silent),
    ],
    ids=["imwrite-false", "writer-not-opened", "writer-wrote-nothing"],
)
def test_a_failed_overlay_keeps_the_score(checkpoint, fixed_face, tmp_path, monkeypatch, capsys, failure):
    name, fake = failure
    media = (
        image(tmp_path / "in.png")
        if name == "imwrite"
        else write_cv_video(tmp_path / "in.mp4", noise_frames(3))
    )
    target = tmp_path / ("out.png" if name == "imwrite" else "out.mp4")
    monkeypatch.setattr(det.cv2, name, fake)
    assert run(checkpoint, media, "--overlay", target, "--json", tmp_path / "r.json") == 0
    (entry,) = json.loads((tmp_path / "r.json").read_text())
    assert 0 <= entry["score"] <= 1 and "fake" in entry and entry["frames"]
    assert "overlay" not in entry and str(target) in entry["overlay_error"]
    assert not target.exists() and not [p for p in tmp_path.glob(".*")]
    assert f"{media}: overlay not written: " in capsys.readouterr().out


def test_an_overlay_of_the_wrong_kind_is_an_overlay_error(checkpoint, tmp_path):
    """The writer checks the suffix itself too (detect_file is public): the score stays."""
    scorer = det.FaceScorer(checkpoint)
    entry = det.detect_file(image(tmp_path / "in.png"), scorer, 1, FixedFace(), tmp_path / "out.txt")
    assert entry["score"] is not None and "overlay" not in entry
    assert "out.txt" in entry["overlay_error"] and ".png" in entry["overlay_error"]


# --------------------------------------------------------------------------- 3. outputs checked first


@pytest.mark.parametrize(
    ("inputs", "overlay", "expected"),
    [
        (["in.png"], "out.txt", ".png, .jpg"),
        (["in.mp4"], "out.png", ".mp4, .avi"),
        (["in.png", "in.mp4"], "blocker/ov", "is a file, not a folder"),
        (["in.png"], "blocker/out.png", "is a file, not a folder"),
    ],
    ids=["image-to-txt", "video-to-png", "folder-under-a-file", "file-under-a-file"],
)
def test_a_bad_overlay_fails_before_any_work(
    checkpoint, tmp_path, capsys, count_work, inputs, overlay, expected
):
    image(tmp_path / "in.png")
    write_cv_video(tmp_path / "in.mp4", noise_frames(3))
    (tmp_path / "blocker").write_text("a regular file")
    args = [tmp_path / p for p in inputs]
    assert run(checkpoint, *args, "--overlay", tmp_path / overlay) == 2
    err = capsys.readouterr().err
    assert "error: " in err and str(tmp_path / overlay.split("/")[0]) in err and expected in err
    assert count_work == {"load": 0, "score": 0}


@pytest.mark.parametrize("where", ["blocker/r.json", "blocker/deeper/r.json", "folder"])
def test_an_unwritable_json_fails_before_any_work(checkpoint, tmp_path, capsys, count_work, where):
    (tmp_path / "blocker").write_text("a regular file")
    (tmp_path / "folder").mkdir()
    photo = image(tmp_path / "in.png")
    assert run(checkpoint, photo, "--json", tmp_path / where) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / where.split("/")[0]) in err
    assert count_work == {"load": 0, "score": 0}


# --------------------------------------------------------------------------- 4. results as they go


def test_an_interrupted_run_keeps_its_finished_lines(checkpoint, fixed_face, tmp_path, monkeypatch):
    photos = [image(tmp_path / f"in/{k}.png", k) for k in range(3)]
    out = tmp_path / "r.json"
    out.write_text("old results")
    real, calls = det.detect_file, []

    def dies_on_the_second(*a, **k):
        calls.append(a[0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(det, "detect_file", dies_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        det.detect(photos, checkpoint, detector="haar", json_out=out, progress=False)
    lines = (tmp_path / "r.json.partial").read_text().splitlines()
    assert [json.loads(line)["path"] for line in lines] == [str(photos[0])]
    assert out.read_text() == "old results"  # never half-written

    monkeypatch.setattr(det, "detect_file", real)
    replaced, os_replace = [], det.os.replace
    monkeypatch.setattr(det.os, "replace", lambda a, b: replaced.append(b) or os_replace(a, b))
    results = det.detect(photos, checkpoint, detector="haar", json_out=out, progress=False)
    assert json.loads(out.read_text()) == results and len(results) == 3
    assert replaced == [out] and not (tmp_path / "r.json.partial").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "r.json"]


# --------------------------------------------------------------------------- 5. empty folders


def test_a_folder_without_media_is_an_entry_with_its_reason(checkpoint, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no media here")
    assert run(checkpoint, empty, "--json", tmp_path / "r.json") == 1
    (entry,) = json.loads((tmp_path / "r.json").read_text())
    assert entry["path"] == str(empty) and entry["score"] is None
    assert entry["error"].startswith("no video or image in this folder (looked for .avi, .mkv, .mov, .mp4")
    assert f"{empty}: error: no video or image in this folder" in capsys.readouterr().out


# --------------------------------------------------------------------------- 6. sidecars


@pytest.mark.parametrize(
    ("content", "reason"),
    [('{"title": "my holiday", "tags": []}', "no 'frames' list"), ("{not json", "not valid JSON")],
    ids=["other-shape", "not-json"],
)
def test_a_json_that_is_no_sidecar_is_ignored_with_a_warning(
    checkpoint, fixed_face, tmp_path, capsys, content, reason
):
    clip = write_cv_video(tmp_path / "clip.mp4", noise_frames(3))
    (tmp_path / "clip.json").write_text(content)
    assert run(checkpoint, clip, "--json", tmp_path / "r.json") == 0
    (entry,) = json.loads((tmp_path / "r.json").read_text())
    assert entry["detector"] == "fixed" and 0 <= entry["score"] <= 1
    (warning,) = [w for w in entry["warnings"] if "sidecar" in w]
    assert warning.startswith(f"{tmp_path / 'clip.json'}: not a face-box sidecar (")
    assert reason in warning and warning.endswith("; faces found by fixed instead")
    assert f"{clip}: warning: {warning}" in capsys.readouterr().out


def test_every_synthetic_sidecar_passes_the_check(smoke_tree):
    sidecars = [v.with_suffix(".json") for v in smoke_tree.rglob("*.mp4") if v.with_suffix(".json").is_file()]
    assert sidecars
    for path in sidecars:
        assert sidecar_problem(json.loads(path.read_text())) is None, path


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ([], "not an object"),
        ({"frames": {}}, "'frames' is not a list"),
        ({"frames": [{"box": [1, 2, 3]}]}, "frames[0]: 'box' is not a list of 4 numbers"),
        ({"frames": [[], [{"box": [1, 2, 3, "x"]}]]}, "frames[1]: 'box'"),
        (
            {"frames": [{"box": [0, 0, 9, 9], "landmarks": [[1, 2, 3]]}]},
            "'landmarks' is not a list of [x, y]",
        ),
        ({"frames": [{"box": [0, 0, 9, 9], "score": "high"}]}, "'score' is not a number"),
        ({"frames": ["face"]}, "frames[0] is neither a face"),
    ],
)
def test_the_sidecar_check_names_the_problem(data, reason):
    assert reason in sidecar_problem(data)


def test_valid_sidecars_pass_the_check():
    face = {"box": [0, 0, 9.5, 9], "landmarks": [[1, 2]] * 5, "contour": [[0, 0], [1, 1.5]], "score": 0.9}
    assert sidecar_problem({"frames": [face, [face, {"box": [1, 1, 2, 2]}], []], "fps": 25}) is None


def test_prep_refuses_a_bad_sidecar_by_name(tmp_path):
    from fbifpn.data.prep import prepare_folder

    clip = write_cv_video(tmp_path / "in/clip.mp4", noise_frames(3))
    (tmp_path / "in/clip.json").write_text('{"frames": [{"bbox": [0, 0, 9, 9]}]}')
    with pytest.raises(SidecarError, match=r"clip\.json: not a face-box sidecar \(frames\[0\]: 'box'"):
        PrecomputedDetector().for_video(clip)
    out = prepare_folder(tmp_path / "in", tmp_path / "out", detector="precomputed", size=32, progress=False)
    (failure,) = json.loads((out / "prep_report.json").read_text())["failures"]
    assert "clip.json: not a face-box sidecar" in failure["reason"]


def test_prepare_folder_uses_sidecars_only_when_all_pass(tmp_path, monkeypatch):
    import fbifpn.data.prep as prep

    chosen = []
    monkeypatch.setattr(prep, "prep", lambda entries, out, options, **k: chosen.append(options.detector))
    for name in ("a", "b"):
        write_cv_video(tmp_path / f"{name}.mp4", noise_frames(2))
        (tmp_path / f"{name}.json").write_text('{"frames": [{"box": [0, 0, 9, 9]}]}')
    prep.prepare_folder(tmp_path, tmp_path / "out", progress=False)
    (tmp_path / "b.json").write_text('{"title": "not a sidecar"}')
    with pytest.warns(UserWarning, match=r"b\.json: not a face-box sidecar, ignored"):
        prep.prepare_folder(tmp_path, tmp_path / "out", progress=False)
    assert chosen == ["precomputed", "mtcnn"]


# --------------------------------------------------------------------------- 7. fewer frames


def test_a_truncated_video_says_how_many_frames_decoded(
    checkpoint, fixed_face, tmp_path, monkeypatch, capsys
):
    clip = write_cv_video(tmp_path / "clip.mp4", noise_frames(16))
    real = det.read_sampled
    # The container says 16 frames; only the first 4 decode, as when the file's tail is cut off.
    monkeypatch.setattr(
        det, "read_sampled", lambda path, idx: {i: f for i, f in real(path, idx).items() if i < 4}
    )
    assert run(checkpoint, clip, "--frames", "16", "--json", tmp_path / "r.json") == 0
    (entry,) = json.loads((tmp_path / "r.json").read_text())
    assert len(entry["frames"]) == 4 and entry["score"] is not None
    assert entry["warnings"] == ["only 4 of 16 sampled frames could be decoded (truncated video?)"]
    assert f"{clip}: warning: only 4 of 16 sampled frames" in capsys.readouterr().out


def test_a_short_video_says_it_has_fewer_frames_than_asked(checkpoint, fixed_face, tmp_path):
    clip = write_cv_video(tmp_path / "clip.mp4", noise_frames(3))
    assert run(checkpoint, clip, "--frames", "8", "--json", tmp_path / "r.json") == 0
    (entry,) = json.loads((tmp_path / "r.json").read_text())
    assert len(entry["frames"]) == 3
    assert entry["warnings"] == ["the video has 3 frames, fewer than the 8 asked"]


def test_a_full_read_has_no_warning(checkpoint, fixed_face, tmp_path):
    clip = write_cv_video(tmp_path / "clip.mp4", noise_frames(6))
    assert run(checkpoint, clip, "--frames", "3", "--json", tmp_path / "r.json") == 0
    (entry,) = json.loads((tmp_path / "r.json").read_text())
    assert len(entry["frames"]) == 3 and entry["warnings"] == []
    assert np.isfinite(entry["score"])


def test_a_really_truncated_video_is_scored_with_a_warning(checkpoint, fixed_face, tmp_path):
    """An MJPG AVI keeps its header's frame count when its tail is cut; the frames left still count."""
    clip = write_cv_video(tmp_path / "clip.avi", noise_frames(16, 64), "MJPG")
    clip.write_bytes(clip.read_bytes()[: clip.stat().st_size // 3])
    assert run(checkpoint, clip, "--frames", "16", "--json", tmp_path / "r.json") == 0
    (entry,) = json.loads((tmp_path / "r.json").read_text())
    (warning,) = entry["warnings"]
    decoded = len(entry["frames"])
    assert 0 < decoded < 16 and entry["score"] is not None
    assert warning == f"only {decoded} of 16 sampled frames could be decoded (truncated video?)"


def test_detect_reports_the_probability_of_the_calibration_eval_names(checkpoint, fixed_face, tmp_path):
    """A Platt map of the checkpoint (fitted on val videos) maps the video's score; a checkpoint
    saved before checkpoints held one falls back to its temperature, and says so."""
    from fbifpn.calibration import apply

    saved = ckpt.load(checkpoint)
    platt = {"method": "platt", "slope": 2.0, "bias": -1.5}
    isotonic = {"method": "isotonic", "x": [0.0, 1.0], "y": [0.2, 0.3]}
    with_maps = tmp_path / "maps.pt"
    ckpt.save(with_maps, **saved, temperature=2.0, calibrations={"platt": platt, "isotonic": isotonic})
    (entry,) = det.detect([image(tmp_path / "in/photo.jpg")], with_maps, frames=1, progress=False)
    assert entry["calibration"] == "platt"
    assert entry["probability"] == pytest.approx(float(apply(platt, [entry["score"]])[0]))
    old = tmp_path / "old.pt"
    ckpt.save(old, **saved, temperature=2.0)
    with pytest.warns(UserWarning, match="holds no usable platt calibration"):
        (entry,) = det.detect([tmp_path / "in/photo.jpg"], old, frames=1, progress=False)
    assert entry["calibration"] == "temperature"
    face = entry["frames"][0]["faces"][0]
    assert entry["probability"] == pytest.approx(
        float(apply({"method": "temperature", "temperature": 2.0}, [face["score"]])[0])
    )
