import numpy as np
import pandas as pd
import pytest

from fbifpn import metrics, stats


def test_auc_ap_eer_on_a_hand_computed_case():
    labels, scores = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    assert metrics.auc(labels, scores) == pytest.approx(0.75)  # 3 of 4 (fake, real) pairs ordered
    assert metrics.average_precision(labels, scores) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert metrics.eer(labels, scores) == pytest.approx(0.5)  # at 0.4: FPR = FNR = 1/2
    assert metrics.eer([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(0.0)
    assert metrics.accuracy(labels, scores, 0.5) == pytest.approx(0.75)
    assert np.isnan(metrics.auc([1, 1], [0.2, 0.3]))  # one class: undefined, not a crash


def test_threshold_is_chosen_between_the_classes():
    t = metrics.choose_threshold([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9])
    assert 0.2 < t <= 0.7
    assert metrics.accuracy([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9], t) == 1


def test_video_scores_key_on_the_full_id_and_take_max_over_faces():
    frames = pd.DataFrame(
        [
            # the same name under two methods must stay two videos
            ("FF/Deepfakes/c23/000_003", 0, 0, 0.2, 1, "Deepfakes"),
            ("FF/Deepfakes/c23/000_003", 0, 1, 0.6, 1, "Deepfakes"),  # a second face: the max counts
            ("FF/Deepfakes/c23/000_003", 5, 0, 0.4, 1, "Deepfakes"),
            ("FF/FaceSwap/c23/000_003", 0, 0, 0.9, 1, "FaceSwap"),
            ("FF/real/c23/000", 0, 0, 0.1, 0, "real"),
        ],
        columns=["video_id", "frame_idx", "face_idx", "score", "label", "method"],
    ).assign(dataset="FF")
    videos = metrics.video_scores(frames).set_index("video_id")
    assert len(videos) == 3
    assert videos.loc["FF/Deepfakes/c23/000_003", "score"] == pytest.approx((0.6 + 0.4) / 2)
    assert videos.loc["FF/Deepfakes/c23/000_003", "frames"] == 2
    assert metrics.per_method(videos.reset_index()) == {"Deepfakes": 1.0, "FaceSwap": 1.0}


def test_bootstrap_ci_contains_the_point_estimate():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 40)
    videos = pd.DataFrame({"label": labels, "score": labels * 0.6 + rng.uniform(0, 1, 80)})
    point = metrics.auc(videos["label"], videos["score"])
    lo, hi = metrics.bootstrap_ci(videos, n=500, seed=1)
    assert lo <= point <= hi and hi - lo > 0.01
    assert metrics.bootstrap_ci(videos, n=500, seed=1) == (lo, hi)  # seeded


def test_bootstrap_auc_path_is_roc_auc_with_ties():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 60)
    scores = rng.integers(0, 5, 60) / 4  # many ties
    assert stats.rank_auc(labels, scores) == pytest.approx(metrics.auc(labels, scores))
    assert stats.WeightedAUC(labels, scores)(np.ones((1, 60)))[0] == pytest.approx(
        metrics.auc(labels, scores)
    )
    ap = metrics.bootstrap_ci(
        pd.DataFrame({"label": labels, "score": scores}), n=200, metric=metrics.average_precision
    )
    assert ap[0] <= metrics.average_precision(labels, scores) <= ap[1]


def test_compare_auc_identical_scores():
    rng = np.random.default_rng(0)
    labels, scores = np.repeat([0, 1], 50), rng.uniform(size=100)
    out = metrics.compare_auc(labels, scores, scores.copy(), n_resamples=500)
    assert out == {"delta": 0.0, "low": 0.0, "high": 0.0, "p": 1.0, "agree": True, "unit": "video"} | {
        "units": 100,
        "n": 100,
    }


def test_compare_auc_a_strictly_better_model_is_significant():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], 100)
    better = labels + rng.normal(0, 0.3, 200)  # AUC about 0.99
    worse = labels + rng.normal(0, 1.5, 200)  # about 0.68
    out = metrics.compare_auc(labels, better, worse, n_resamples=1000, seed=0)
    assert out["delta"] == pytest.approx(metrics.auc(labels, better) - metrics.auc(labels, worse))
    assert out["p"] < 0.01 and 0 < out["low"] < out["delta"] < out["high"]
    swapped = metrics.compare_auc(labels, worse, better, n_resamples=1000, seed=0)
    assert swapped["delta"] == pytest.approx(-out["delta"]) and swapped["p"] < 0.01
    assert metrics.compare_auc(labels, better, worse, n_resamples=1000, seed=0) == out  # seeded


def test_compare_auc_tests_ranks_so_a_model_on_another_scale_is_judged_by_its_ranking():
    """b ranks the videos a little better than a, consistently, but on a 100x wider scale (as a
    beta-mixed score against a probability): swapping raw scores between them mixes the scales, and
    that permutation null is wide enough to hide the difference; within-model ranks are not."""
    rng = np.random.default_rng(3)
    labels = np.repeat([0, 1], 150)
    base = labels + rng.normal(0, 0.6, 300)
    a = base + rng.normal(0, 0.6, 300)
    b = 100 * (base + rng.normal(0, 0.2, 300)) + 50
    out = metrics.compare_auc(labels, b, a, n_resamples=1000, seed=0)  # raw swaps: p = 0.24 here
    assert out["delta"] == pytest.approx(metrics.auc(labels, b) - metrics.auc(labels, a))
    assert out["delta"] > 0 and out["low"] > 0 and out["p"] < 0.05
    again = metrics.compare_auc(labels, np.log(b - b.min() + 1), a, n_resamples=1000, seed=0)
    assert again["delta"] == pytest.approx(out["delta"]) and again["p"] == pytest.approx(out["p"])


def test_compare_auc_interval_covers_the_true_difference_about_95_percent():
    """Two correlated models on 200 videos, drawn 200 times from populations whose AUCs are known:
    model x's score is a shared per-video signal plus its own noise, so AUC_x = Phi(mu / sqrt(2 var_x))."""
    from scipy.stats import norm

    mu, shared, noise = 1.0, 1.0, {"a": 0.5, "b": 1.0}
    true = {k: norm.cdf(mu / np.sqrt(2 * (shared**2 + s**2))) for k, s in noise.items()}
    delta = true["a"] - true["b"]
    rng = np.random.default_rng(7)
    labels = np.repeat([0, 1], 100)
    covered = 0
    for trial in range(200):
        base = mu * labels + rng.normal(0, shared, 200)
        a, b = base + rng.normal(0, noise["a"], 200), base + rng.normal(0, noise["b"], 200)
        out = metrics.compare_auc(labels, a, b, n_resamples=400, seed=trial)
        covered += out["low"] <= delta <= out["high"]
    assert 0.90 <= covered / 200 <= 0.99  # 95 % nominal; a binomial sd of 1.5 points at 200 trials


def test_one_video_of_a_class_has_no_interval():
    videos = pd.DataFrame({"label": [0, 1, 1, 1], "score": [0.1, 0.5, 0.7, 0.9]})
    assert all(np.isnan(metrics.bootstrap_ci(videos, n=100)))
    out = metrics.compare_auc(videos["label"], videos["score"], [0.6, 0.5, 0.7, 0.9], n_resamples=100)
    assert out["delta"] == pytest.approx(1 - 2 / 3) and np.isnan(out["low"]) and 0 < out["p"] <= 1


def test_compare_auc_refuses_what_is_not_one_score_per_video():
    with pytest.raises(ValueError, match="differ in length"):
        metrics.compare_auc([0, 1, 1], [0.1, 0.2, 0.3], [0.1, 0.2])
    with pytest.raises(ValueError, match="both 0"):
        metrics.compare_auc([1, 1], [0.1, 0.2], [0.3, 0.4])


def test_tables_carry_their_protocol():
    protocol = metrics.Protocol(
        "synth-ff c23 (synthetic)", "synth-cdf (synthetic)", "c23", "video", "best val video AUC (epoch 3)"
    )
    text = metrics.table([{"method": "full", "auc": 0.9512}], protocol, ["method", "auc"])
    first = text.splitlines()[0]
    assert "synthetic" in first and "video" in first and "best val" in first
    assert "| full | 0.9512 |" in text


def test_a_perfect_detector_has_a_point_interval_not_nan(recwarn):
    labels = np.repeat([0, 1], 20)
    videos = pd.DataFrame({"label": labels, "score": labels + np.linspace(0, 0.5, 40)})
    assert metrics.bootstrap_ci(videos, n=200) == (1.0, 1.0)  # every resample: AUC 1, where BCa is undefined
    out = metrics.compare_auc(labels, videos["score"], videos["score"][::-1].to_numpy(), n_resamples=200)
    assert np.isfinite([out["low"], out["high"]]).all()
    assert not [w for w in recwarn if "degenerate" in str(w.message)]
