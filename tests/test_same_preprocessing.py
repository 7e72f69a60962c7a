"""A face scores the same through `prep` + `eval`, through `detect` and in the explorer: all three
cut it with the checkpoint's recorded prep options, read it through the dataset's eval transform
and score it with `score_images` (flip TTA and the model's score rule)."""

import json
import shutil
from dataclasses import asdict

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import write_cv_video
from skimage import data

import fbifpn.detect as det
from fbifpn import build_model, load_config
from fbifpn.cli import main
from fbifpn.data.faces import DetectorUnavailable, make_detector
from fbifpn.data.prep import PrepOptions, prep
from fbifpn.data.sources import ffpp
from fbifpn.data.sources.base import ScanOptions, VideoEntry
from fbifpn.data.synthetic.methods import METHODS
from fbifpn.engine import checkpoint as ckpt
from fbifpn.engine.evaluate import evaluate_checkpoint, score_images
from fbifpn.widgets import Explorer

TOLERANCE = 1e-5
# Crops of 96 px fed to the smoke model at 64 px: the dataset's INTER_AREA resize is on the path.
GEOMETRIES = {
    "box": PrepOptions(frames=6, detector="precomputed", size=96),
    "align-1.5": PrepOptions(frames=6, detector="precomputed", size=96, scale=1.5, align=True),
}


def untrained_checkpoint(path, prep_options: PrepOptions | None, overrides=()):
    """A smoke checkpoint as fit saves it, untrained. fit records the manifest's prep options under
    `prep` (asdict, or None for an index of ready-made crops); here they are written by hand.
    Batch-norm statistics are measured on noise first: with their initial values every face scores
    the same to 1e-6, and equal scores would then prove nothing."""
    torch.manual_seed(0)
    cfg = load_config("smoke", list(overrides))
    model = build_model(cfg)
    for layer in model.modules():
        if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
            layer.reset_running_stats()
            layer.momentum = None  # a plain average over what it sees
    with torch.no_grad():
        model.train()(torch.randn(16, 3, 64, 64))
    model.eval()
    content = {"model": model.state_dict(), "config": cfg.to_dict(), "threshold": 0.5, "best_epoch": 0}
    if prep_options is not None:
        content["prep"] = asdict(prep_options)
    ckpt.save(path, **content)
    return path


def eval_frame_scores(checkpoint, manifest, out) -> dict[tuple[str, int], float]:
    evaluate_checkpoint(checkpoint, manifest, out, split="test", frames=6, device="cpu", progress=False)
    scores = pd.read_csv(out / "scores.csv")
    assert (scores["face_idx"] == 0).all()  # one face per frame: its score is the frame's
    keys = zip(scores["video_id"], scores["frame_idx"].astype(int), strict=True)
    return dict(zip(keys, scores["score"], strict=True))


def detect_frame_scores(results, video_ids) -> dict[tuple[str, int], float]:
    scores = {}
    for result, video_id in zip(results, video_ids, strict=True):
        assert "error" not in result, result
        for record in result["frames"]:
            (face,) = record["faces"]
            scores[(video_id, record["frame_idx"])] = face["score"]
    return scores


def explorer_frame_scores(explorer: Explorer) -> dict[tuple[str, int], float]:
    scores = {}
    for video_id, rows in explorer.videos.items():
        frame_scores = explorer.outputs(video_id)["scores"]
        for i, score in zip(rows["frame_idx"], frame_scores, strict=True):
            scores[(video_id, int(i))] = float(score)
    return scores


def largest_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys() and a
    return max(abs(a[k] - b[k]) for k in a)


def assert_scores_vary(scores: dict) -> None:
    """Equal scores mean something only where the model tells frames apart by far more than the
    tolerance."""
    values = list(scores.values())
    assert max(values) - min(values) > 100 * TOLERANCE


@pytest.fixture(scope="module")
def chosen_videos(smoke_tree):
    """The synthetic test split (reals and fakes, six frames each), with sidecars of face boxes."""
    every = ffpp.scan(smoke_tree / "synth-ff", ScanOptions(dataset="synth-ff", methods=METHODS))
    entries = [e for e in every if e.split == "test"]
    assert entries and all(e.path.with_suffix(".json").is_file() for e in entries)
    return entries


@pytest.mark.parametrize("geometry", list(GEOMETRIES), ids=list(GEOMETRIES))
def test_prep_and_eval_score_each_frame_as_detect_does(chosen_videos, tmp_path, geometry):
    options = GEOMETRIES[geometry]
    manifest = tmp_path / "prep"
    prep(chosen_videos, manifest, options, progress=False)
    checkpoint = untrained_checkpoint(tmp_path / "best.pt", options)
    evaluated = eval_frame_scores(checkpoint, manifest, tmp_path / "eval")

    results = det.detect(
        [e.path for e in chosen_videos], checkpoint, frames=6, detector="precomputed", progress=False
    )
    detected = detect_frame_scores(results, [e.video_id for e in chosen_videos])
    assert_scores_vary(evaluated)
    assert largest_difference(evaluated, detected) <= TOLERANCE
    crop = {"size": options.size, "scale": options.scale, "align": options.align, "source": "checkpoint"}
    assert all(r["model"]["crop"] == crop for r in results)

    # Without its record, a checkpoint trained on the synthetic benchmark is cut as that benchmark
    # is always prepared; one trained on a manifest without a record, with prep's defaults (and
    # then scores otherwise).
    synthetic = det.FaceScorer(untrained_checkpoint(tmp_path / "synthetic.pt", None))
    assert synthetic.identity["crop"]["source"] == "synthetic benchmark"
    assert synthetic.prep_options == PrepOptions(frames=synthetic.cfg.data.prep_frames, size=64)
    elsewhere = ["data.manifest=" + str(tmp_path / "elsewhere" / "manifest.csv")]
    unrecorded = untrained_checkpoint(tmp_path / "unrecorded.pt", None, elsewhere)
    with pytest.warns(UserWarning, match=rf"{unrecorded}: records no prep options") as caught:
        defaults = det.detect(
            [e.path for e in chosen_videos], unrecorded, frames=6, detector="precomputed", progress=False
        )
    assert sum("records no prep options" in str(w.message) for w in caught) == 1  # said once per run
    assert all(r["model"]["crop"]["source"] == "defaults" for r in defaults)
    ignored = detect_frame_scores(defaults, [e.video_id for e in chosen_videos])
    assert largest_difference(evaluated, ignored) > 100 * TOLERANCE


def astronaut_clip(path, seed: int):
    """A real photo, moving: YuNet and MTCNN find her face in every frame, a little elsewhere."""
    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(6):
        dx, dy, angle = rng.uniform(-12, 12), rng.uniform(-8, 8), rng.uniform(-6, 6)
        m = cv2.getRotationMatrix2D((256, 256), angle, 1.0)
        m[:, 2] += (dx, dy)
        frames.append(cv2.warpAffine(photo, m, (512, 512), borderMode=cv2.BORDER_REFLECT))
    return write_cv_video(path, frames)


@pytest.mark.parametrize("detector", ["yunet", "mtcnn"])
@pytest.mark.parametrize("geometry", list(GEOMETRIES), ids=list(GEOMETRIES))
def test_a_real_detector_gives_prep_and_detect_the_same_scores(tmp_path, detector, geometry):
    """The issue's case: `prep --detector D` then eval against `detect --detector D`."""
    try:
        make_detector(detector)
    except DetectorUnavailable as e:
        pytest.skip(str(e))
    options = PrepOptions(**(asdict(GEOMETRIES[geometry]) | {"detector": detector}))
    clips = [astronaut_clip(tmp_path / f"in/{name}.mp4", seed) for seed, name in enumerate(("a", "b"))]
    entries = [
        VideoEntry("mine", "test", "", method, label, f"mine/{clip.stem}", clip, has_mask=False)
        for clip, (method, label) in zip(clips, (("real", 0), ("fake", 1)), strict=True)
    ]
    prep(entries, tmp_path / "prep", options, progress=False)
    checkpoint = untrained_checkpoint(tmp_path / "best.pt", options)
    evaluated = eval_frame_scores(checkpoint, tmp_path / "prep", tmp_path / "eval")
    results = det.detect(clips, checkpoint, frames=6, detector=detector, progress=False)
    detected = detect_frame_scores(results, [e.video_id for e in entries])
    assert_scores_vary(evaluated)
    assert largest_difference(evaluated, detected) <= TOLERANCE


@pytest.mark.parametrize("geometry", list(GEOMETRIES), ids=list(GEOMETRIES))
def test_the_explorer_scores_crops_as_eval_and_detect_do(chosen_videos, tmp_path, monkeypatch, geometry):
    monkeypatch.setenv("FBIFPN_RUNS", str(tmp_path / "runs"))
    options = GEOMETRIES[geometry]
    prep(chosen_videos, tmp_path / "prep", options, progress=False)
    checkpoint = untrained_checkpoint(tmp_path / "best.pt", options)
    evaluated = eval_frame_scores(checkpoint, tmp_path / "prep", tmp_path / "eval")

    explored = explorer_frame_scores(Explorer.from_checkpoint(checkpoint, tmp_path / "prep", split="test"))
    assert_scores_vary(explored)
    assert largest_difference(evaluated, explored) <= TOLERANCE

    # A plain folder of videos is cut by prep with the checkpoint's geometry: detect's scores again.
    folder = tmp_path / "mine"
    folder.mkdir()
    chosen = chosen_videos[:2]
    for e in chosen:
        for suffix in (".mp4", ".json"):
            shutil.copy(e.path.with_suffix(suffix), folder / f"{e.path.stem}{suffix}")
    on_folder = explorer_frame_scores(Explorer.from_checkpoint(checkpoint, folder))
    results = det.detect(
        [folder / f"{e.path.stem}.mp4" for e in chosen], checkpoint, frames=32, progress=False
    )
    detected = detect_frame_scores(results, [f"folder/{e.path.stem}" for e in chosen])
    assert largest_difference(on_folder, detected) <= TOLERANCE


def test_the_cli_offers_no_scale_and_its_json_says_how_faces_were_cut(tmp_path, capsys):
    options = PrepOptions(size=80, scale=1.5, align=True)
    checkpoint = untrained_checkpoint(tmp_path / "best.pt", options)
    photo = tmp_path / "in.png"
    cv2.imwrite(str(photo), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    base = ["detect", str(photo), "--checkpoint", str(checkpoint), "--detector", "haar"]
    with pytest.raises(SystemExit) as exit_:
        main([*base, "--scale", "1.3"])  # the crop geometry is the checkpoint's, not a flag's
    assert exit_.value.code == 2 and "--scale" in capsys.readouterr().err
    assert main([*base, "--json", str(tmp_path / "r.json")]) == 0
    (entry,) = json.loads((tmp_path / "r.json").read_text())
    assert entry["model"]["crop"] == {"size": 80, "scale": 1.5, "align": True, "source": "checkpoint"}
    assert entry["score"] is not None


def test_a_checkpoint_with_invalid_prep_options_is_refused_by_name(tmp_path):
    path = untrained_checkpoint(tmp_path / "best.pt", None)
    saved = ckpt.load(path)
    saved["prep"] = {"size": 64, "scale": -1.0}
    ckpt.save(path, **saved)
    with pytest.raises(ckpt.CheckpointError, match=rf"{path}: refused, its prep options .* scale"):
        det.FaceScorer(path)


def test_score_images_is_predicts_rule(tmp_path):
    """One batch through score_images gives what predict writes for it, TTA or not."""
    from fbifpn.engine.evaluate import predict

    torch.manual_seed(0)
    model = build_model(load_config("smoke")).eval()
    x = torch.randn(4, 3, 64, 64)
    batch = {
        "image": x,
        "dataset": ["d"] * 4,
        "method": ["m"] * 4,
        "video_id": list("abcd"),
        "frame_idx": torch.zeros(4),
        "face_idx": torch.zeros(4),
        "label": torch.zeros(4),
    }
    for tta in (False, True):
        rows = predict(model, [batch], tta_flip=tta, progress=False)
        scored = score_images(model, x, tta)
        assert np.array_equal(rows["score"].to_numpy(), scored.score.numpy().astype(float))
        assert np.array_equal(rows["mask_score"].to_numpy(), scored.mask_score.numpy().astype(float))
        assert scored.mask.shape == (4, 16, 16) and 0 <= float(scored.mask.min()) <= 1


def test_a_face_that_cannot_be_aligned_costs_only_its_own_score(tmp_path):
    """Degenerate landmarks (all on one point) cannot be aligned: that face goes unscored with a
    warning, and the rest of the file is scored."""
    from fbifpn.data.faces import Face, FaceDetector

    class OneGoodOneDegenerate(FaceDetector):
        name = "two"

        def detect(self, frame, frame_idx):
            good = np.array([[40, 50], [80, 50], [60, 70], [45, 90], [75, 90]], np.float32)
            return [Face((20, 20, 100, 110), good), Face((10, 10, 30, 30), np.full((5, 2), 20, np.float32))]

    options = PrepOptions(size=64, align=True)
    checkpoint = untrained_checkpoint(tmp_path / "best.pt", options)
    photo = tmp_path / "in.png"
    cv2.imwrite(str(photo), np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8))
    entry = det.detect_file(photo, det.FaceScorer(checkpoint), 1, OneGoodOneDegenerate())
    (record,) = entry["frames"]
    assert len(record["faces"]) == 1 and 0 <= entry["score"] <= 1
    (warning,) = entry["warnings"]
    assert warning.startswith("frame 0: face at [10.0, 10.0, 30.0, 30.0] not scored: alignment failed")
    json.dumps(entry)  # the entry stays JSON
