import numpy as np
import pandas as pd
import pytest

from fbifpn import metrics


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


def test_tables_carry_their_protocol():
    protocol = metrics.Protocol(
        "synth-ff c23 (synthetic)", "synth-cdf (synthetic)", "c23", "video", "best val video AUC (epoch 3)"
    )
    text = metrics.table([{"method": "full", "auc": 0.9512}], protocol, ["method", "auc"])
    first = text.splitlines()[0]
    assert "synthetic" in first and "video" in first and "best val" in first
    assert "| full | 0.9512 |" in text
