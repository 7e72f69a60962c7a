"""fbifpn.stats: the vectorised AUC, family-aware paired tests, the seed-level test, Holm, and the
errors each refuses with."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from fbifpn import metrics, stats


def scenes(n_scenes: int = 40, fakes: int = 4, seed: int = 0, shared: float = 0.0, effect: float = 0.0):
    """A synth-ff-like test set: each scene is a real and `fakes` fakes made from it. Each scene's
    fakes share a difficulty that differs by model (sd `shared`); model a is better by `effect`."""
    rng = np.random.default_rng(seed)
    labels = np.tile([0] + [1] * fakes, n_scenes)
    families = np.repeat([f"scene{i:03d}" for i in range(n_scenes)], fakes + 1)
    scene = np.repeat(np.arange(n_scenes), fakes + 1)
    hard_a, hard_b = rng.normal(0, shared, n_scenes), rng.normal(0, shared, n_scenes)
    a = labels * (1 + effect + hard_a[scene]) + rng.normal(0, 1, len(labels))
    b = labels * (1 + hard_b[scene]) + rng.normal(0, 1, len(labels))
    return labels, families, a, b


# --------------------------------------------------------------------------- AUC


def test_rank_auc_is_roc_auc_with_ties_and_works_on_batches():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 50)
    scores = rng.integers(0, 4, (3, 7, 50)) / 3  # many ties
    batched = stats.rank_auc(labels, scores)
    assert batched.shape == (3, 7)
    assert batched[2, 5] == pytest.approx(roc_auc_score(labels, scores[2, 5]))


def test_a_weighted_auc_is_the_auc_of_the_videos_repeated():
    rng = np.random.default_rng(1)
    labels, scores = rng.integers(0, 2, 40), np.round(rng.normal(size=40), 1)
    counts = rng.integers(0, 3, (5, 40)).astype(float)
    got = stats.WeightedAUC(labels, scores)(counts)
    for row, value in zip(counts.astype(int), got, strict=True):
        idx = np.repeat(np.arange(40), row)
        assert value == pytest.approx(roc_auc_score(labels[idx], scores[idx]))


# --------------------------------------------------------------------------- one pair


def test_identical_models_have_delta_0_and_p_1():
    labels, families, a, _ = scenes()
    out = stats.compare_auc(labels, a, a.copy(), families=families, n_resamples=500)
    assert (out["delta"], out["p"], out["unit"], out["units"], out["n"]) == (0.0, 1.0, "family", 40, 200)


def test_a_clearly_better_model_reaches_the_floor_of_p_and_prints_it():
    labels, families, a, b = scenes(effect=3.0)
    out = stats.compare_auc(labels, a, b, families=families, n_resamples=999, seed=0)
    assert out["delta"] == pytest.approx(roc_auc_score(labels, a) - roc_auc_score(labels, b))
    assert out["p"] == pytest.approx(1 / 1000) and 0 < out["low"] < out["delta"] < out["high"]
    assert stats.format_p(out["p"], 999) == "< 1/1000" and out["agree"]
    assert stats.compare_auc(labels, a, b, families=families, n_resamples=999, seed=0) == out  # seeded
    swapped = stats.compare_auc(labels, b, a, families=families, n_resamples=999, seed=0)
    assert swapped["delta"] == pytest.approx(-out["delta"]) and swapped["p"] == out["p"]


def test_one_family_per_video_is_the_video_level_test():
    labels, _, a, b = scenes(effect=0.3)
    per_video = stats.compare_auc(labels, a, b, n_resamples=300, seed=4)
    own = stats.compare_auc(labels, a, b, families=np.arange(len(labels)), n_resamples=300, seed=4)
    assert own | {"unit": "video"} == per_video


def test_the_permutation_swaps_whole_families():
    """Three families of 10 videos: swapping the models on whole families allows 2^3 = 8
    arrangements, of which the observed one and its mirror are the most extreme, so p >= 2/8
    however much better a is; swapping single videos finds the difference."""
    labels = np.tile(np.repeat([0, 1], 5), 3)
    families = np.repeat(["x", "y", "z"], 10)
    rng = np.random.default_rng(2)
    a, b = labels * 3 + rng.normal(0, 1, 30), labels * 0.3 + rng.normal(0, 1, 30)
    assert stats.compare_auc(labels, a, b, families=families, n_resamples=500)["p"] >= 0.25
    assert stats.compare_auc(labels, a, b, n_resamples=500)["p"] < 0.01


def test_one_family_has_no_interval_and_a_p_of_1():
    labels, _, a, b = scenes(n_scenes=1, effect=3.0)
    out = stats.compare_auc(labels, a, b, families=["one"] * len(labels), n_resamples=200)
    assert out["p"] == 1.0 and np.isnan(out["low"]) and out["units"] == 1


def test_a_seed_level_test_without_a_test_set_term_says_so_rather_than_p_0():
    labels = np.array([0, 1, 1, 1, 1, 1, 1, 1, 1])
    families = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])  # one family holds the only real
    a = np.tile(np.linspace(0, 1, 9), (3, 1))
    out = stats.compare_auc_over_seeds(labels, a, a[:, ::-1], families=families, n_resamples=200)
    assert np.isnan(out["p"]) and np.isnan(out["low"])


def test_families_that_share_a_difficulty_widen_the_interval():
    labels, families, a, b = scenes(n_scenes=50, shared=2.0, seed=5)
    by_family = stats.compare_auc(labels, a, b, families=families, n_resamples=2000, seed=0)
    by_video = stats.compare_auc(labels, a, b, n_resamples=2000, seed=0)
    assert by_family["delta"] == by_video["delta"]
    assert by_family["high"] - by_family["low"] > 1.2 * (by_video["high"] - by_video["low"])


def test_conditions_share_the_resampled_families():
    labels, families, a, b = scenes(effect=0.5)
    one = stats.compare_auc(labels, a, b, families=families, n_resamples=300, seed=1)
    repeated = stats.compare_auc(
        labels, np.stack([a, a]), np.stack([b, b]), families=families, n_resamples=300, seed=1
    )
    assert repeated == one


def test_bootstrap_ci_resamples_families_when_given_them():
    labels, families, a, _ = scenes(n_scenes=50, shared=1.0, seed=3)
    videos = pd.DataFrame({"label": labels, "score": a, "family": families})
    lo, hi = metrics.bootstrap_ci(videos, n=1000, families=videos["family"])
    vlo, vhi = metrics.bootstrap_ci(videos, n=1000)
    assert lo <= metrics.auc(labels, a) <= hi and hi - lo > vhi - vlo


@pytest.mark.parametrize(
    "call, phrase",
    [
        (lambda y, f, a, b: stats.compare_auc(y, a, b[:-1], families=f, n_resamples=200), "differ in length"),
        (lambda y, f, a, b: stats.compare_auc(y, a, b, families=f[:-1], n_resamples=200), "one per video"),
        (
            lambda y, f, a, b: stats.compare_auc(y, a, b, families=np.where(np.arange(len(f)) == 3, None, f)),
            "have no family",
        ),
        (
            lambda y, f, a, b: stats.compare_auc(y, a, b, families=np.where(np.arange(len(f)) == 3, "", f)),
            "no family",
        ),
        (lambda y, f, a, b: stats.compare_auc(y, a, b, families=f, n_resamples=99), "at least 100"),
        (
            lambda y, f, a, b: metrics.bootstrap_ci(pd.DataFrame({"label": y, "score": a}), n=50),
            "at least 100",
        ),
        (lambda y, f, a, b: stats.compare_auc(y, np.where(y == 1, np.nan, a), b), "NaN"),
        (lambda y, f, a, b: stats.bootstrap_auc(y, a[:-1], f), "differ in length"),
        (lambda y, f, a, b: stats.bootstrap_auc(y, np.where(y == 1, np.nan, a), f), "NaN"),
        (
            lambda y, f, a, b: stats.compare_auc_over_seeds(y, a[None], b[None], families=f),
            "at least two seeds",
        ),
        (
            lambda y, f, a, b: stats.compare_auc_over_seeds(y, np.stack([a, a]), np.stack([b, b])[:, :-1]),
            "expected",
        ),
    ],
)
def test_bad_input_gets_one_clear_error(call, phrase):
    labels, families, a, b = scenes(n_scenes=10)
    with pytest.raises(ValueError, match=phrase):
        call(labels, families, a, b)


# --------------------------------------------------------------------------- across seeds


def seeds_of(n_seeds: int, spread: float, effect: float = 0.0, seed: int = 0, shifts=None):
    """Per-seed scores of two models on one test set: each seed adds its own shift of a's fakes
    (sd `spread`, or the given `shifts`), as another training run would."""
    labels, families, a, b = scenes(seed=seed, effect=effect)
    rng = np.random.default_rng(seed + 100)
    shifts = rng.normal(0, spread, n_seeds) if shifts is None else shifts
    a_s = np.stack([a + labels * shift + rng.normal(0, 0.3, len(a)) for shift in shifts])
    b_s = np.stack([b + rng.normal(0, 0.3, len(b)) for _ in range(n_seeds)])
    return labels, families, a_s, b_s


def test_the_seed_level_delta_is_the_mean_of_the_per_seed_deltas():
    labels, families, a, b = seeds_of(3, 0.5)
    out = stats.compare_auc_over_seeds(labels, a, b, families=families, n_resamples=500)
    singles = [
        stats.compare_auc(labels, a[s], b[s], families=families, n_resamples=200)["delta"] for s in range(3)
    ]
    assert out["per_seed"] == pytest.approx(singles) and out["delta"] == pytest.approx(np.mean(singles))
    assert out["seeds"] == 3 and out["unit"] == "family" and out["df"] <= 60


def test_seeds_that_disagree_are_not_a_verdict_where_one_seed_would_be():
    """Three seeds whose deltas scatter widely: the seed-level test has about 2 degrees of freedom
    and no verdict, though each seed alone is significant by its own permutation test."""
    labels, families, a, b = seeds_of(3, spread=0, seed=3, shifts=[2.0, -1.5, 1.0])
    singles = [
        stats.compare_auc(labels, a[s], b[s], families=families, n_resamples=999)["p"] for s in range(3)
    ]
    out = stats.compare_auc_over_seeds(labels, a, b, families=families, n_resamples=999)
    assert min(singles) < 0.01 and out["p"] > 0.05 and out["df"] < 3
    assert out["low"] < 0 < out["high"]


def test_the_seed_level_interval_and_p_come_from_one_procedure():
    for trial in range(6):
        labels, families, a, b = seeds_of(4, spread=0.3, effect=0.25 * trial, seed=trial)
        out = stats.compare_auc_over_seeds(labels, a, b, families=families, n_resamples=300, seed=trial)
        assert (out["p"] < 0.05) == (out["low"] > 0 or out["high"] < 0)
        assert out["low"] < out["delta"] < out["high"]


# --------------------------------------------------------------------------- families of rows


def test_holm_adjusts_a_family_and_keeps_nan_out_of_it():
    adjusted = stats.holm([0.01, 0.04, np.nan, 0.03])
    assert (
        adjusted[:2] == pytest.approx([0.03, 0.06])
        and np.isnan(adjusted[2])
        and adjusted[3] == pytest.approx(0.06)
    )
    assert stats.verdict(0.03, 3) == "significant at 0.05 (Holm over 3 rows)"
    assert stats.verdict(0.06, 3) == "not significant"
    assert (
        stats.format_p(0.0312) == "0.031"
        and stats.format_p(2 / 2001) == "0.0010"
        and stats.format_p(0.00002) == "2.0e-05"
    )


def test_family_sums_give_the_ranked_deltas_exactly():
    """The quadratic forms used for few families against the direct computation (rank the mixed
    scores of every swap, weight every video), on tied scores under three conditions."""
    labels, families, a, b = scenes(n_scenes=12)
    rng = np.random.default_rng(8)
    a = stats._ranked(np.round(np.stack([a, a + rng.normal(0, 1, a.size), -a]), 1))
    b = stats._ranked(np.round(np.stack([b, b, b + rng.normal(0, 1, b.size)]), 1))
    units = stats.families_of(labels, families)
    swaps = rng.random((6, units.n)) < 0.5
    by_video = swaps[:, units.codes][:, None, :]
    ranked = stats.rank_auc(labels, np.where(by_video, b, a)) - stats.rank_auc(
        labels, np.where(by_video, a, b)
    )
    np.testing.assert_allclose(stats._family_sums(labels, a, b, units)(swaps.astype(float)), ranked.mean(-1))
    counts = rng.integers(0, 3, (5, units.n)).astype(float)
    weights = counts[:, units.codes]
    direct = np.mean(
        [
            stats.WeightedAUC(labels, x)(weights) - stats.WeightedAUC(labels, y)(weights)
            for x, y in zip(a, b, strict=True)
        ],
        0,
    )
    np.testing.assert_allclose(stats._resampled_delta(labels, a, b, units)(counts), direct)


def test_many_families_take_the_ranked_path_to_the_same_result(monkeypatch):
    labels, families, a, b = scenes(n_scenes=30, effect=0.5)
    fast = stats.compare_auc(labels, a, b, families=families, n_resamples=300, seed=2)
    monkeypatch.setattr(stats, "FAMILY_SUMS_UP_TO", 0)  # every test set counts as large
    slow = stats.compare_auc(labels, a, b, families=families, n_resamples=300, seed=2)
    assert slow["p"] == fast["p"] and slow["delta"] == pytest.approx(fast["delta"])
    assert (slow["low"], slow["high"]) == pytest.approx((fast["low"], fast["high"]), abs=1e-9)
