"""Notebook 07's parts: the seven DeeperForensics-1.0 perturbations, robustness evaluations (cached,
paired), calibration measures and temperature scaling, and calibrated probabilities in eval and detect."""

import json
import os
from dataclasses import asdict

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

import fbifpn.robustness as robustness_module
from fbifpn import build_model, load_config
from fbifpn import calibration as cal
from fbifpn.data.cache import prepared_manifest
from fbifpn.data.dataset import FrameDataset
from fbifpn.data.manifest import load_manifest
from fbifpn.data.perturb import KINDS, LEVELS, parameter, perturb_crop, perturb_track
from fbifpn.data.prep import PrepOptions
from fbifpn.engine import checkpoint as ckpt
from fbifpn.experiments import FIGURES_ONLY
from fbifpn.metrics import auc, compare_auc
from fbifpn.robustness import PerturbedFrames, chosen_videos, paired_robustness, robustness, robustness_scores


def face_like(size: int = 96, seed: int = 0) -> np.ndarray:
    """A colourful, smooth BGR image with edges: every perturbation has something to damage."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    image = np.stack(
        [120 + 90 * np.sin(6 * x + 1), 110 + 80 * np.cos(5 * y), 140 + 70 * np.sin(4 * (x + y))], -1
    )
    for _ in range(6):
        (cx, cy), r = rng.uniform(0.2, 0.8, 2) * size, rng.uniform(0.05, 0.2) * size
        inside = (x * size - cx) ** 2 + (y * size - cy) ** 2 < r**2
        image[inside] = rng.uniform(20, 235, 3)
    return np.clip(image, 0, 255).astype(np.uint8)


def track_of(n: int = 6, size: int = 96) -> list[np.ndarray]:
    """A short moving sequence: the pattern shifts a pixel per frame."""
    base = face_like(size + n)
    return [np.ascontiguousarray(base[i : i + size, i : i + size]) for i in range(n)]


# --------------------------------------------------------------------------- the perturbations


@pytest.mark.parametrize("kind", KINDS)
def test_level_zero_returns_the_input_unchanged(kind):
    track = track_of()
    out = perturb_track(track, kind, 0, np.random.default_rng(0))
    assert all(a is b for a, b in zip(track, out, strict=True))  # not even a round trip
    if kind != "video":
        assert perturb_crop(track[0], kind, 0, np.random.default_rng(0)) is track[0]


@pytest.mark.parametrize("kind", KINDS)
def test_severity_grows_with_the_level(kind):
    track = track_of()
    psnr = []
    for level in range(1, 6):
        out = perturb_track(track, kind, level, np.random.default_rng(0))
        assert [o.shape for o in out] == [t.shape for t in track] and out[0].dtype == np.uint8
        psnr.append(np.mean([cv2.PSNR(t, o) for t, o in zip(track, out, strict=True)]))
    assert all(a > b for a, b in zip(psnr, psnr[1:], strict=False)), psnr
    assert psnr[-1] < 40  # level 5 is visible damage, not rounding


@pytest.mark.parametrize("kind", KINDS)
def test_perturbations_are_deterministic_for_a_seed(kind):
    track = track_of()
    a = perturb_track(track, kind, 3, np.random.default_rng(7))
    b = perturb_track(track, kind, 3, np.random.default_rng(7))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    if kind in ("block", "noise"):  # the random ones draw from the seed, nothing else
        c = perturb_track(track, kind, 3, np.random.default_rng(8))
        assert not np.array_equal(a[0], c[0])


def test_noise_leaves_the_global_torch_generator_alone():
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    perturb_crop(face_like(), "noise", 2, np.random.default_rng(0))
    assert torch.equal(torch.rand(3), expected)


def test_levels_follow_the_papers_parameters_and_bad_ones_are_named():
    assert LEVELS["video"] == (30, 32, 35, 38, 40) and LEVELS["blur"] == (7, 9, 13, 17, 21)
    assert (
        parameter("contrast", 5) == 0.35 and parameter("noise", 1) == 0.001 and parameter("jpeg", 0) is None
    )
    with pytest.raises(ValueError, match="'pixelate'"):
        parameter("pixelate", 1)
    with pytest.raises(ValueError, match="level 6"):
        parameter("blur", 6)
    with pytest.raises(ValueError, match="perturb_track"):
        perturb_crop(face_like(), "video", 1, np.random.default_rng(0))


def test_video_compression_keeps_odd_sizes_mixed_sizes_and_frame_count():
    track = [c[:95, :93] for c in track_of(5)]
    out = perturb_track(track, "video", 2, np.random.default_rng(0))
    assert len(out) == 5 and all(o.shape == (95, 93, 3) for o in out)
    mixed = [track[0], np.ascontiguousarray(track[1][:90, :80]), track[2]]  # a crop clipped at the frame edge
    out = perturb_track(mixed, "video", 2, np.random.default_rng(0))
    assert [o.shape for o in out] == [m.shape for m in mixed]
    assert cv2.PSNR(mixed[1], out[1]) > 20  # resized back into place, not garbled


def test_a_checkpoint_temperature_must_be_a_positive_number():
    assert cal.temperature_of({"temperature": 1.5}) == 1.5 and cal.temperature_of({}) is None
    for bad in (float("nan"), 0.0, -2.0, float("inf"), "2"):
        with pytest.warns(UserWarning, match="not a positive number"):
            assert cal.temperature_of({"temperature": bad}) is None
    with pytest.raises(ValueError, match="NaN"):
        cal.expected_calibration_error([0, 1], [0.2, float("nan")])


def test_block_distortion_greys_the_papers_count_of_blocks():
    crop = np.zeros((64, 64, 3), np.uint8)
    out = perturb_crop(crop, "block", 1, np.random.default_rng(0))  # 16 blocks for a side under 256
    grey = (out == 128).all(-1)
    assert grey.any() and grey.sum() <= 16 * 64 and set(np.unique(out)) == {0, 128}


# --------------------------------------------------------------------------- calibration


def test_ece_is_zero_for_calibrated_scores_and_grows_when_they_are_distorted():
    # 15 bins of 30 scores at each bin's centre, with exactly that share of fakes
    p, y = [], []
    for b in range(15):
        centre = (2 * b + 1) / 30
        p += [centre] * 30
        y += [1] * (2 * b + 1) + [0] * (30 - 2 * b - 1)
    p, y = np.array(p), np.array(y)
    assert cal.expected_calibration_error(y, p) == pytest.approx(0, abs=1e-12)
    errors = [cal.expected_calibration_error(y, cal.calibrated(p, t)) for t in (1, 0.8, 0.5, 0.25)]
    assert errors[0] == pytest.approx(0, abs=1e-12) and all(
        a < b for a, b in zip(errors, errors[1:], strict=False)
    )
    table = cal.reliability(y, p)
    assert len(table) == 15 and table["count"].sum() == len(p)


@pytest.mark.parametrize("true_temperature", [0.3, 1.0, 2.5, 8.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_temperature_scaling_never_raises_the_validation_nll(true_temperature, seed):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 3, 400)
    y = (rng.uniform(size=400) < 1 / (1 + np.exp(-z / true_temperature))).astype(int)
    scores = 1 / (1 + np.exp(-z))
    t = cal.fit_temperature(y, scores)
    assert t > 0
    assert cal.nll(y, cal.calibrated(scores, t)) <= cal.nll(y, scores)
    if true_temperature != 1.0:  # it finds the temperature the labels were drawn with, roughly
        assert abs(np.log(t / true_temperature)) < 0.5
    assert auc(y, cal.calibrated(scores, t)) == pytest.approx(auc(y, scores))  # never reorders


def test_one_class_or_saturated_scores_get_a_finite_temperature():
    assert cal.fit_temperature([1, 1, 1], [0.2, 0.9, 1.0]) == 1.0
    t = cal.fit_temperature([0, 1, 0, 1], [0.0, 1.0, 0.0, 1.0])  # float32 saturation: clipped logits
    assert np.isfinite(t) and t > 0
    assert np.array_equal(cal.calibrated([0.1, 0.7], None), [0.1, 0.7])


def test_rates_at_a_threshold():
    rates = cal.rates_at([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], 0.5)
    assert rates == {"threshold": 0.5, "accuracy": 0.5, "fpr": 0.5, "tpr": 0.5}


def frames_of(scores, labels, prefix="v"):
    return pd.DataFrame(
        {
            "dataset": "d",
            "method": ["real" if y == 0 else "m" for y in labels],
            "video_id": [f"{prefix}{i}" for i in range(len(labels))],
            "frame_idx": 0,
            "face_idx": 0,
            "label": labels,
            "score": scores,
        }
    )


def test_travel_reports_ece_raw_and_under_each_map_fitted_on_val_and_both_thresholds():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(60), np.ones(60)].astype(int)
    shifted = 1 / (1 + np.exp(-(rng.normal(size=120) + 2 * y + 1.5)))  # every score pushed up: reals near 0.8
    again = 1 / (1 + np.exp(-(rng.normal(size=120) + 2 * y + 1.5)))  # the same shift, other videos
    val, test = frames_of(shifted, y), frames_of(again, y, "t")
    maps = cal.fitted_maps(val, cal.fit_temperature(val["label"], val["score"]))
    table = cal.travel(val, {"test": test}, maps, 0.5, n_resamples=200)
    assert list(table["set"]) == ["val", "test"]
    row = table.iloc[1]
    for label in ("raw", "temperature", "platt", "isotonic"):
        # BCa may leave a biased statistic's estimate just outside; the interval is there and ordered
        assert 0 <= row[f"video_ece_{label}_low"] < row[f"video_ece_{label}_high"] <= 1
    # a temperature cannot move a shifted score; Platt's bias and isotonic regression can
    assert (
        row["video_ece_platt"] < 0.5 * row["video_ece_raw"]
        and row["video_ece_isotonic"] < row["video_ece_raw"]
    )
    assert row["video_ece_temperature"] > 0.5 * row["video_ece_raw"]
    assert row["accuracy_at_val_threshold"] == cal.rates_at(y, again, 0.5)["accuracy"]
    # every set is calibrated with the maps given (val's), never ones refitted on itself
    other = frames_of(1 / (1 + np.exp(-(rng.normal(size=120) + y - 0.5))), y, "s")
    row = cal.travel(val, {"other": other}, maps, 0.5, n_resamples=200).iloc[1]
    assert row["video_ece_platt"] == cal.expected_calibration_error(
        y, cal.apply(maps["platt"], other["score"])
    )
    from fbifpn.metrics import choose_threshold, video_scores

    videos = video_scores(other)
    best = choose_threshold(videos["label"], videos["score"])
    assert row["threshold_at_own_threshold"] == best and row["threshold_at_val_threshold"] == 0.5


def test_platt_and_isotonic_maps_are_scikit_learns_models_applied():
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    y = (rng.uniform(size=200) < 0.5).astype(int)
    s = 1 / (1 + np.exp(-(rng.normal(size=200) + 2 * y)))
    probe = np.linspace(0.0, 1.0, 41)
    platt = LogisticRegression(C=np.inf).fit(cal.logits(s)[:, None], y)
    assert np.allclose(
        cal.apply(cal.fit("platt", y, s), probe), platt.predict_proba(cal.logits(probe)[:, None])[:, 1]
    )
    iso = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(s, y)
    assert np.allclose(cal.apply(cal.fit("isotonic", y, s), probe), iso.predict(probe))
    assert cal.apply(cal.fit("temperature", y, s), probe) == pytest.approx(
        cal.calibrated(probe, cal.fit_temperature(y, s))
    )
    separated = cal.fit("platt", [0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])  # no maximum-likelihood fit exists
    assert 0 < separated["slope"] < 10 and 0.05 < cal.apply(separated, [0.9])[0] < 0.95
    for method in cal.CALIBRATIONS:  # one class: the identity, not an error
        assert cal.apply(cal.fit(method, [1, 1], [0.2, 0.9]), [0.3]) == pytest.approx([0.3])
    with pytest.raises(ValueError, match="unknown method 'beta'"):
        cal.fit("beta", y, s)
    with pytest.warns(UserWarning, match="cannot be used"):
        assert cal.checked({"method": "platt", "slope": "x"}) is None


def test_ece_interval_is_the_ece_with_families_resampled():
    rng = np.random.default_rng(4)
    y = np.r_[np.zeros(40), np.ones(40)].astype(int)
    families = np.arange(80) % 8  # 8 families of 10, each miscalibrated its own way
    p = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.15, 8)[families] + rng.normal(0, 0.02, 80), 0, 1)
    videos = cal.ece_interval(y, p, n_resamples=300)
    assert videos["ece"] == cal.expected_calibration_error(y, p) and videos["unit"] == "video"
    assert videos["low"] <= videos["ece"] <= videos["high"]
    clustered = cal.ece_interval(y, p, families, n_resamples=300)
    assert clustered["units"] == 8 and clustered["high"] - clustered["low"] > videos["high"] - videos["low"]


# --------------------------------------------------------------------------- paired AUC over conditions


def test_compare_auc_over_conditions_is_the_mean_of_the_per_condition_deltas():
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(30), np.ones(30)].astype(int)
    a, b = rng.normal(size=(3, 60)) + y, rng.normal(size=(3, 60)) + 0.3 * y
    both = compare_auc(y, a, b, n_resamples=200)
    assert both["delta"] == pytest.approx(np.mean([auc(y, a[k]) - auc(y, b[k]) for k in range(3)]))
    assert both["low"] <= both["delta"] <= both["high"] and 0 < both["p"] <= 1
    # one condition repeated is that condition's test: a video's scores are swapped under all at once
    assert compare_auc(y, np.repeat(a[:1], 4, 0), np.repeat(b[:1], 4, 0), n_resamples=200) == compare_auc(
        y, a[0], b[0], n_resamples=200
    )
    with pytest.raises(ValueError, match="differ in length"):
        compare_auc(y, a, b[:2])


# --------------------------------------------------------------------------- robustness evaluations


@pytest.fixture(scope="module")
def manifest():
    return prepared_manifest(load_config("smoke"), progress=False)


def saved_model(path, seed, temperature=None):
    torch.manual_seed(seed)
    cfg = load_config("smoke")
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt.save(
        path,
        model=build_model(cfg).eval().state_dict(),
        config=cfg.to_dict(),
        threshold=0.5,
        best_epoch=0,
        temperature=temperature,
        prep=asdict(PrepOptions(size=64)),
    )
    return path


@pytest.fixture
def models(tmp_path):
    return {"a": saved_model(tmp_path / "a/best.pt", 0), "b": saved_model(tmp_path / "b/best.pt", 1)}


ROBUST = {
    "notebooks.robustness_kinds": ["noise", "video"],
    "notebooks.robustness_levels": [1, 5],
    "notebooks.robustness_videos": 8,
    "notebooks.robustness_frames": 2,
}


def test_the_video_subset_is_balanced_spread_over_methods_and_fixed_by_the_seed(manifest):
    table = load_manifest(manifest)
    ids = chosen_videos(table, 8, seed=0)
    chosen = table[table.video_id.isin(ids)].drop_duplicates("video_id")
    reals = table[(table.split == "test") & (table.label == 0)].video_id.nunique()
    assert len(ids) == 8 and (chosen.label == 0).sum() == min(4, reals)  # fakes fill in for missing reals
    assert chosen[chosen.label == 1].method.nunique() == min(4, table[table.label == 1].method.nunique())
    assert ids == chosen_videos(table, 8, seed=0) and set(ids) <= set(table[table.split == "test"].video_id)
    assert chosen_videos(table, 0) == sorted(table[table.split == "test"].video_id.unique())


def test_clean_perturbed_frames_are_the_eval_datasets_and_perturbed_ones_differ(manifest):
    table = load_manifest(manifest)
    common = dict(image_size=64, split="test", frames_per_video=2)
    plain = FrameDataset(table, **common)
    clean = PerturbedFrames(table, **common, kind="clean", level=0)
    video = PerturbedFrames(table, **common, kind="video", level=5)
    assert len(plain) == len(clean) == len(video)
    for i in (0, len(plain) - 1):
        assert torch.equal(plain[i]["image"], clean[i]["image"])
        assert not torch.equal(plain[i]["image"], video[i]["image"])
        assert video[i]["video_id"] == plain[i]["video_id"] and video[i]["frame_idx"] == plain[i]["frame_idx"]


@pytest.fixture
def count_work(monkeypatch):
    """Evaluations made (one per model and condition) and crops read (and perturbed)."""
    calls = {"evaluations": 0, "reads": 0}
    report, read = robustness_module._report, PerturbedFrames.read

    def reporting(*a, **k):
        calls["evaluations"] += 1
        return report(*a, **k)

    def reading(self, row):
        calls["reads"] += 1
        return read(self, row)

    monkeypatch.setattr(robustness_module, "_report", reporting)
    monkeypatch.setattr(PerturbedFrames, "read", reading)
    return calls


def test_robustness_scores_each_condition_once_and_reads_it_back(manifest, models, count_work):
    cfg = load_config("smoke", ROBUST)
    rows = robustness(cfg, models, "smoke-ff", manifest, progress=False)
    calls = count_work
    assert calls["evaluations"] == 2 * 5 and len(rows) == 10  # clean + 2 types x 2 levels, for each model
    assert calls["reads"] == 5 * 8 * 2  # each crop read (and perturbed) once for both models
    assert list(rows.kind.unique()) == ["clean", "noise", "video"] and rows.videos.eq(8).all()
    assert rows.video_auc.between(0, 1).all()
    again = robustness(cfg, models, "smoke-ff", manifest, progress=False)
    assert calls["evaluations"] == 10 and again.drop(columns="scores").equals(rows.drop(columns="scores"))
    # a retrained (newer) checkpoint is scored again, the other model's evaluations are kept
    os.utime(models["b"])
    robustness(cfg, models, "smoke-ff", manifest, progress=False)
    assert calls["evaluations"] == 15
    # other videos are another evaluation, never a stale one
    robustness(
        load_config("smoke", ROBUST | {"notebooks.robustness_videos": 6}),
        models,
        "smoke-ff",
        manifest,
        progress=False,
    )
    assert calls["evaluations"] == 25
    report = json.loads((models["a"].parent / "robust-smoke-ff/video-5/metrics.json").read_text())
    assert report["settings"]["parameter"] == 40 and report["settings"]["videos"] == 6


def test_figures_only_never_scores(manifest, models, monkeypatch, count_work):
    monkeypatch.setenv(FIGURES_ONLY, "1")
    with pytest.raises(FileNotFoundError, match="figures only.*07_robustness"):
        robustness(load_config("smoke", ROBUST), models, "smoke-ff", manifest, progress=False)
    assert count_work == {"evaluations": 0, "reads": 0}


def test_paired_robustness_is_per_type_and_over_all_types(manifest, models):
    rows = robustness(load_config("smoke", ROBUST), models, "smoke-ff", manifest, progress=False)
    table = load_manifest(manifest).drop_duplicates("video_id").set_index("video_id")["family"]
    scores = robustness_scores(rows, table.to_dict())
    assert (
        len(scores) == len(rows) * 8 and scores.family.nunique() == table[scores.video_id.unique()].nunique()
    )
    paired = paired_robustness(scores, "a", "b", n_resamples=100)
    assert list(paired.perturbation) == ["clean", "noise", "video", "all"]
    noise = rows[rows.kind == "noise"]
    expected = noise[noise.model == "a"].video_auc.mean() - noise[noise.model == "b"].video_auc.mean()
    assert paired.set_index("perturbation").loc["noise", "delta"] == pytest.approx(expected)
    assert set(paired.verdict) <= {"significant at 0.05 (Holm over 4 rows)", "not significant"}
    assert paired.videos.eq(8).all() and paired.unit.eq("family").all()
    assert (paired.p_holm >= paired.p).all()
    other = scores.assign(video_id=np.where(scores.variant == "b", scores.video_id + "x", scores.video_id))
    with pytest.raises(ValueError, match="not scored on the same videos"):
        paired_robustness(other, "a", "b", n_resamples=100)
    with pytest.raises(ValueError, match="not in the test manifest"):
        robustness_scores(rows, {})


# --------------------------------------------------------------------------- calibrated eval and detect


def test_eval_writes_calibrated_probabilities_beside_the_raw_score(manifest, tmp_path):
    from fbifpn.engine.evaluate import evaluate_checkpoint

    report = evaluate_checkpoint(
        saved_model(tmp_path / "t/best.pt", 0, 2.0), manifest, tmp_path / "e", progress=False
    )
    scores = pd.read_csv(tmp_path / "e/scores.csv")
    assert np.allclose(scores["probability"], cal.calibrated(scores["score"], 2.0))
    c = report["calibration"]
    assert c["temperature"] == 2.0 and {
        "frame_ece_raw",
        "frame_ece_calibrated",
        "video_ece_calibrated",
    } <= set(c)
    plain = evaluate_checkpoint(
        saved_model(tmp_path / "u/best.pt", 0), manifest, tmp_path / "f", progress=False
    )
    assert plain["calibration"]["temperature"] is None and "frame_ece_calibrated" not in plain["calibration"]
    assert "probability" not in pd.read_csv(tmp_path / "f/scores.csv")


def test_detect_reports_the_calibrated_probability_and_keeps_the_score(tmp_path, monkeypatch):
    import fbifpn.detect as det
    from fbifpn.data.faces import Face, FaceDetector

    class Middle(FaceDetector):
        name = "middle"

        def detect(self, frame, frame_idx):
            h, w = frame.shape[:2]
            return [Face((w / 4, h / 4, 3 * w / 4, 3 * h / 4))]

    monkeypatch.setattr(det, "make_detector", lambda name: Middle())
    picture = tmp_path / "face.png"
    cv2.imwrite(str(picture), face_like(64))
    # a checkpoint with a temperature and no Platt map (saved before checkpoints held one): its
    # temperature, said so
    with pytest.warns(UserWarning, match="holds no usable platt calibration"):
        [entry] = det.detect([picture], saved_model(tmp_path / "t/best.pt", 0, 3.0), progress=False)
    assert entry["model"]["calibration"] == {"method": "temperature", "temperature": 3.0}
    assert entry["probability"] == pytest.approx(float(cal.calibrated(entry["score"], 3.0)))
    face = entry["frames"][0]["faces"][0]
    assert face["probability"] == pytest.approx(float(cal.calibrated(face["score"], 3.0)))
    [plain] = det.detect([picture], saved_model(tmp_path / "u/best.pt", 0), progress=False)
    assert "probability" not in plain and plain["score"] == pytest.approx(entry["score"])
