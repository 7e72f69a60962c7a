"""The committed tables are what the committed per-video scores give: every paired table in
results/<profile>/ is recomputed from results/<profile>/scores/ (no training, no model) and must
come out equal, so a reader can check any row without training."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fbifpn.comparisons import SCORE_COLUMNS, auc_intervals, paired, read_scores
from fbifpn.robustness import paired_robustness

RESULTS = Path(__file__).resolve().parent.parent / "results"
PROFILES = sorted(p.name for p in RESULTS.iterdir() if (p / "scores").is_dir())


def settings(profile: str) -> tuple[int, int]:
    config = json.loads((RESULTS / profile / "config.json").read_text())
    return config["notebooks"]["paired_resamples"], config["train"]["seed"]


def assert_same_table(recomputed: pd.DataFrame, committed_csv: Path) -> None:
    committed = pd.read_csv(committed_csv, keep_default_na=False, na_values=[""])
    recomputed = pd.read_csv(_as_csv(recomputed), keep_default_na=False, na_values=[""])
    assert list(recomputed.columns) == list(committed.columns), committed_csv
    assert len(recomputed) == len(committed), committed_csv
    for column in committed.columns:
        a, b = recomputed[column], committed[column]
        if a.dtype.kind in "fi" and b.dtype.kind in "fi":
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=f"{committed_csv}: {column}")
        else:
            assert a.astype(str).tolist() == b.astype(str).tolist(), f"{committed_csv}: {column}"


def _as_csv(frame: pd.DataFrame):
    import io

    text = io.StringIO()
    frame.to_csv(text, index=False)
    text.seek(0)
    return text


def test_every_profile_with_tables_commits_its_scores():
    assert {"demo", "study"} <= set(PROFILES)
    for profile in PROFILES:
        scores = read_scores(RESULTS / profile / "scores" / "03_ablations.csv.gz")
        assert list(scores.columns) == SCORE_COLUMNS
        assert scores["family"].notna().all() and scores["family"].ne("").all()
        assert not scores.duplicated(["run", "variant", "test", "video_id"]).any()


@pytest.mark.parametrize("profile", PROFILES)
def test_the_ablation_paired_table_is_its_scores(profile):
    n, seed = settings(profile)
    scores = read_scores(RESULTS / profile / "scores" / "03_ablations.csv.gz")
    assert_same_table(paired(scores, n_resamples=n, seed=seed), RESULTS / profile / "03_paired.csv")


@pytest.mark.parametrize("profile", PROFILES)
def test_the_central_claim_table_is_its_scores(profile):
    n, seed = settings(profile)
    scores = read_scores(RESULTS / profile / "scores" / "03_ablations.csv.gz")
    pair = scores[scores["variant"].isin(["full", "backbone_only"])]
    recomputed = paired(pair, reference="backbone_only", n_resamples=n, seed=seed)
    assert_same_table(recomputed, RESULTS / profile / "04_full_vs_backbone.csv")


@pytest.mark.parametrize("profile", PROFILES)
def test_the_ablation_intervals_are_its_scores(profile):
    n, seed = settings(profile)
    scores = read_scores(RESULTS / profile / "scores" / "03_ablations.csv.gz")
    committed = pd.read_csv(RESULTS / profile / "03_ablations.csv")
    mean = auc_intervals(scores, n, seed).groupby(["variant", "test"], sort=False)[
        ["video_auc", "ci_low", "ci_high"]
    ]
    recomputed = mean.mean().reset_index()
    merged = committed.merge(
        recomputed, on=["variant", "test"], suffixes=("", "_scores"), validate="one_to_one"
    )
    assert len(merged) == len(committed)
    for column in ("video_auc", "ci_low", "ci_high"):
        np.testing.assert_allclose(merged[column], merged[f"{column}_scores"], rtol=1e-9, err_msg=column)


@pytest.mark.parametrize("profile", [p for p in PROFILES if (RESULTS / p / "07_robustness.csv").is_file()])
def test_the_robustness_table_is_its_scores(profile):
    n, seed = settings(profile)
    scores = read_scores(RESULTS / profile / "scores" / "07_robustness.csv.gz")
    recomputed = paired_robustness(scores, "full", "backbone_only", n_resamples=n, seed=seed)
    assert_same_table(recomputed, RESULTS / profile / "07_robustness.csv")


CURVES = [p for p in PROFILES if (RESULTS / p / "08_budget_curve.csv").is_file()]


@pytest.mark.parametrize("profile", CURVES)
def test_the_budget_curve_is_its_scores(profile):
    from fbifpn.experiments import paired_over_budgets

    n, _ = settings(profile)
    scores = read_scores(RESULTS / profile / "scores" / "08_budget_curve.csv.gz")
    assert_same_table(paired_over_budgets(scores, "full", n), RESULTS / profile / "08_budget_curve.csv")
