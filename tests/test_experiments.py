"""The runs behind notebooks 03 and 04: ablations, cross-manipulation, cross-compression, their tables,
reuse of finished runs and saved evaluations, and figures-only mode (smoke profile, CPU)."""

import json
import math
import os
import shutil
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest

import fbifpn.engine.train as train_module
from fbifpn import load_config
from fbifpn.config import ConfigError
from fbifpn.data.cache import prepared_manifest
from fbifpn.data.manifest import load_manifest
from fbifpn.engine.train import without_methods
from fbifpn.experiments import (
    FIGURES_ONLY,
    ablation,
    ablation_table,
    cross_compression,
    cross_manipulation,
    evaluated,
    evaluation,
    finished,
    goals,
    learning_curve,
    learning_curves_of,
    plateau_step,
    prepared_sets,
    protocol_table,
    summarise,
    trained,
    training_protocols,
    with_overrides,
)

QUICK = {"train.epochs": 1}


@pytest.fixture(scope="module")
def smoke_manifest():
    return prepared_manifest(load_config("smoke"), progress=False)


@pytest.fixture(scope="module")
def base_run(smoke_manifest, tmp_path_factory):
    """One finished smoke run (1 epoch), shared by the tests below."""
    cfg = load_config("smoke", QUICK)
    run = tmp_path_factory.mktemp("base") / "train"
    return cfg, run, trained(cfg, run, progress=False)


def test_without_methods_keeps_reals_and_names_an_unknown_method(smoke_manifest):
    df = load_manifest(smoke_manifest)
    kept = without_methods(df, ["NeuralTextures"])
    assert "NeuralTextures" not in set(kept["method"])
    assert (kept["label"] == 0).sum() == (df["label"] == 0).sum()
    assert {"Deepfakes", "Face2Face", "FaceSwap"} <= set(kept["method"])
    with pytest.raises(ValueError, match="'NeuralTexture'"):
        without_methods(df, ["NeuralTexture"])


def test_notebook_settings_are_validated():
    with pytest.raises(
        ConfigError, match=r"notebooks\.ablation_variants\[1\]: 'no_atention' is not one of 'full'"
    ):
        load_config("smoke", {"notebooks.ablation_variants": ["full", "no_atention"]})
    with pytest.raises(ConfigError, match="notebooks.budget_s.trian"):
        load_config("smoke", {"notebooks.budget_s.trian": 3})
    cfg = load_config("demo")
    # + the benchmark's generation (~150 s at version 4): make demo in 15 minutes
    assert sum(vars(cfg.notebooks.budget_s).values()) <= 15 * 60 - 150
    study = load_config("study").notebooks.budget_s
    assert study.train + study.ablations + study.cross_dataset + study.robustness <= 120 * 60  # make study
    assert 0 < study.budget_curve <= 90 * 60  # make curve
    assert with_overrides(cfg, {"model.variant": "no_mask"}).model.variant == "no_mask"
    assert cfg.model.variant == "full"  # a copy, not a change


def test_a_finished_run_is_reused_not_retrained(base_run, monkeypatch):
    cfg, run, first = base_run
    assert finished(cfg, run)
    assert not finished(with_overrides(cfg, {"train.epochs": 2}), run)
    stamp = os.path.getmtime(run / "last.pt")
    loads = []
    real_load = train_module.ckpt.load
    monkeypatch.setattr(train_module.ckpt, "load", lambda *a, **k: loads.append(a[0]) or real_load(*a, **k))
    again = trained(cfg, run, progress=False)
    assert again.best_checkpoint == first.best_checkpoint
    assert os.path.getmtime(run / "last.pt") == stamp
    assert loads == [run / "last.pt"]  # checked before the data is made, and not read again by fit


def test_figures_only_never_trains(base_run, tmp_path, monkeypatch):
    cfg, run, _ = base_run
    monkeypatch.setenv(FIGURES_ONLY, "1")
    trained(cfg, run, progress=False)  # finished: fine
    with pytest.raises(FileNotFoundError, match="02_train"):
        trained(cfg, tmp_path / "nothing", progress=False, notebook="02_train")
    assert not (tmp_path / "nothing").exists()


def test_evaluations_are_reused_while_newer_than_their_checkpoint(base_run, smoke_manifest, tmp_path):
    _, _, result = base_run
    first = evaluated(result.best_checkpoint, smoke_manifest, tmp_path / "eval", progress=False)
    saved = tmp_path / "eval" / "metrics.json"
    stamp = saved.stat().st_mtime
    again = evaluated(result.best_checkpoint, smoke_manifest, tmp_path / "eval", progress=False)
    assert saved.stat().st_mtime == stamp and again == json.loads(saved.read_text())
    assert first["metrics"]["video"]["auc"] == again["metrics"]["video"]["auc"]
    # beta None means the checkpoint's own (0 here): the same evaluation as beta = 0, not a new one
    assert first["beta"] == 0.0
    evaluated(result.best_checkpoint, smoke_manifest, tmp_path / "eval", beta=0.0, progress=False)
    assert saved.stat().st_mtime == stamp
    beta = evaluated(result.best_checkpoint, smoke_manifest, tmp_path / "eval", beta=0.5, progress=False)
    assert beta["beta"] == 0.5 and saved.stat().st_mtime > stamp  # another beta: evaluated again


def test_an_evaluation_lives_next_to_its_checkpoint_and_is_read_by_every_notebook(
    base_run, smoke_manifest, tmp_path, monkeypatch
):
    import fbifpn.engine.evaluate as evaluate_module

    _, _, result = base_run
    calls = []
    real = evaluate_module.evaluate_checkpoint
    monkeypatch.setattr(
        evaluate_module, "evaluate_checkpoint", lambda *a, **k: calls.append(a) or real(*a, **k)
    )
    ck = result.best_checkpoint
    shutil.rmtree(ck.parent / "eval-reuse-probe", ignore_errors=True)
    first = evaluation(ck, "reuse-probe", smoke_manifest, beta=0.0, progress=False)  # as notebook 03 asks
    again = evaluation(ck, "reuse-probe", smoke_manifest, progress=False)  # as notebook 04 asks
    assert len(calls) == 1 and calls[0][2] == ck.parent / "eval-reuse-probe"
    assert again["metrics"]["video"]["auc"] == first["metrics"]["video"]["auc"]
    assert again == json.loads((ck.parent / "eval-reuse-probe" / "metrics.json").read_text())


def test_ablation_reuses_the_given_run_and_trains_the_rest(base_run, smoke_manifest, tmp_path):
    cfg, _, result = base_run
    cfg = with_overrides(
        cfg, {"notebooks.ablation_variants": ["full", "backbone_only"], "notebooks.ablation_seeds": [0]}
    )
    tests = {"synth-ff": smoke_manifest}
    rows = ablation(cfg, tmp_path / "abl", tests, reuse={("full", 0): result.best_checkpoint}, progress=False)
    assert list(rows["variant"]) == ["full", "full (beta=0.5)", "backbone_only"]
    assert not (tmp_path / "abl" / "full-seed0" / "last.pt").exists()  # reused, not retrained
    assert (tmp_path / "abl" / "backbone_only-seed0" / "best.pt").is_file()
    weights = rows.set_index("variant")["level_weights"]
    assert len(weights["full"]) == 4 and math.isclose(sum(weights["full"]), 1.0, rel_tol=1e-3)
    assert weights["backbone_only"] is None
    assert rows["video_auc"].between(0, 1).all() and (rows["ci_low"] <= rows["ci_high"]).all()
    text = ablation_table(summarise(rows), cfg)
    assert text.startswith("*train data: synth-ff c23 (synthetic")
    assert "seeds 0" in text and "| backbone_only | synth-ff | 0 |" in text


def test_summary_averages_seeds_and_reports_their_spread():
    rows = pd.DataFrame(
        {
            "variant": ["full", "full", "cls_only"],
            "seed": [0, 1, 0],
            "test": ["a", "a", "a"],
            "video_auc": [0.8, 0.9, 0.7],
            "ci_low": [0.7, 0.8, 0.6],
            "ci_high": [0.9, 1.0, 0.8],
            "video_ap": [0.8, 0.9, 0.7],
            "frame_auc": [0.8, 0.9, 0.7],
            "videos": [10, 10, 10],
            "compression": ["c23"] * 3,
        }
    )
    summary = summarise(rows).set_index("variant")
    assert list(summary.index) == ["full", "cls_only"]  # first-seen order
    assert summary.loc["full", "seeds"] == "0,1"
    assert summary.loc["full", "video_auc"] == pytest.approx(0.85)
    assert summary.loc["full", "video_auc_sd"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert np.isnan(summary.loc["cls_only", "video_auc_sd"])


def test_cross_manipulation_holds_the_method_out_of_training(smoke_manifest, tmp_path):
    cfg = with_overrides(load_config("smoke", QUICK), {"notebooks.cross_manipulation": ["FaceSwap"]})
    rows = cross_manipulation(cfg, tmp_path, smoke_manifest)
    assert list(rows["held_out"]) == ["FaceSwap"]
    assert 0 <= rows["held_out_auc"].iloc[0] <= 1 and 0 <= rows["seen_auc"].iloc[0] <= 1
    saved = json.loads((tmp_path / "without-FaceSwap" / "config.json").read_text())
    assert saved["data"]["exclude_methods"] == ["FaceSwap"]
    report = json.loads((tmp_path / "without-FaceSwap" / "eval-synth-ff" / "metrics.json").read_text())
    assert "without FaceSwap" in report["protocol"]["train_data"]


def test_cross_compression_tests_the_same_videos_at_c40(base_run, tmp_path):
    cfg, _, result = base_run
    rows = cross_compression(cfg, result.best_checkpoint, progress=False)
    assert list(rows["tested on"]) == ["c23", "c40"]
    assert rows["videos"].nunique() == 1  # the same test videos at both levels
    home = result.best_checkpoint.parent
    assert (home / "eval-synth-ff" / "scores.csv").is_file()  # c23: the in-domain evaluation itself
    c40 = json.loads((home / "eval-synth-ff-c40" / "metrics.json").read_text())
    assert c40["protocol"]["compression"] == "c40"
    assert "synth-ff-c40-smoke-seed0" in c40["manifest"]


def test_a_set_only_tested_on_is_cut_for_its_test_split_alone(smoke_manifest):
    """FF++ at another level is only tested on, so only its test videos are cut (in a folder of their
    own), crop for crop as the whole set's; once the whole set is prepared, that is what is used."""
    cfg = with_overrides(load_config("smoke"), {"data.compression": "c40"})
    only = prepared_manifest(cfg, progress=False, split="test")
    tested = load_manifest(only)
    assert only.name.endswith("-test") and set(tested["split"]) == {"test"}
    whole = prepared_manifest(cfg, progress=False)
    assert whole != only and set(load_manifest(whole)["split"]) == {"train", "val", "test"}
    full = load_manifest(whole)
    full = full[full["split"] == "test"]
    key = ["video_id", "frame_idx", "face_idx"]
    a, b = tested.sort_values(key).reset_index(drop=True), full.sort_values(key).reset_index(drop=True)
    assert a[key].equals(b[key]) and len(a) > 0
    assert all(
        Path(x).read_bytes() == Path(y).read_bytes() for x, y in zip(a["image"], b["image"], strict=True)
    )
    assert prepared_manifest(cfg, progress=False, split="test") == whole


def test_prepared_sets_from_data_root(smoke_manifest, tmp_path):
    cfg = load_config("smoke")
    synthetic = prepared_sets(cfg)
    assert list(synthetic) == ["synth-ff", "synth-cdf", "synth-dfdc"]
    (tmp_path / "real" / "ffpp-c23").mkdir(parents=True)
    (tmp_path / "real" / "ffpp-c23" / "manifest.csv").write_text("x")
    (tmp_path / "real" / "notes").mkdir()
    assert list(prepared_sets(cfg, tmp_path / "real")) == ["ffpp-c23"]
    with pytest.raises(FileNotFoundError, match="no prepared manifest"):
        prepared_sets(cfg, tmp_path / "real" / "notes")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        prepared_sets(cfg, tmp_path / "missing")


def test_mask_evidence_rescoring_equals_evaluating_with_beta(base_run, smoke_manifest, tmp_path):
    from fbifpn.experiments import with_mask_evidence

    _, _, result = base_run
    evaluated(result.best_checkpoint, smoke_manifest, tmp_path / "b0", beta=0.0, progress=False)
    mixed = with_mask_evidence(tmp_path / "b0", 0.5)
    direct = evaluated(result.best_checkpoint, smoke_manifest, tmp_path / "b5", beta=0.5, progress=False)
    direct_scores = pd.read_csv(tmp_path / "b5" / "scores.csv")["score"]
    rescored = 0.5 * pd.read_csv(tmp_path / "b0" / "scores.csv")[["score", "mask_score"]].sum(axis=1)
    np.testing.assert_allclose(rescored, direct_scores, atol=1e-6)
    assert mixed["metrics"]["video"]["auc"] == pytest.approx(direct["metrics"]["video"]["auc"])
    assert mixed["beta"] == 0.5 and (tmp_path / "b0" / "metrics-beta0.5.json").is_file()
    with pytest.raises(ValueError, match="beta = 0"):
        with_mask_evidence(tmp_path / "b5", 0.5)


def _scores_csv(path, labels, scores, mask=None):
    frames = pd.DataFrame(
        {
            "video_id": [f"synth/v{i:03d}" for i in range(len(labels))],
            "frame_idx": 0,
            "score": scores,
            "mask_score": scores if mask is None else mask,
            "label": labels,
            "method": np.where(labels == 1, "Deepfakes", "real"),
            "dataset": "synth-ff",
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frames.to_csv(path, index=False)
    return str(path)


def _run_row(tmp_path, variant: str, seed: int, labels, scores, families=None) -> dict:
    path = _scores_csv(tmp_path / f"{variant}-seed{seed}" / "eval-t" / "scores.csv", labels, scores)
    if families is not None:
        frame = pd.read_csv(path).assign(family=families)
        frame.to_csv(path, index=False)
    checkpoint = str(tmp_path / f"{variant}-seed{seed}" / "best.pt")
    return {"variant": variant, "seed": seed, "steps": 45, "test": "t", "beta": 0.0, "scores": path} | {
        "checkpoint": checkpoint
    }


def test_paired_rows_per_seed_and_across_seeds(tmp_path):
    from fbifpn.comparisons import ACROSS_SEEDS, SCORE_COLUMNS, paired, paired_table, run_scores, takeaway

    rng = np.random.default_rng(0)
    labels = np.tile([0, 1, 1], 40)
    families = np.repeat([f"synth-ff/{i:03d}" for i in range(40)], 3)
    rows = []
    for seed in (0, 1, 2):
        good = labels + rng.normal(0, 0.4, 120)
        rows.append(_run_row(tmp_path, "full", seed, labels, good, families))
        rows.append(_run_row(tmp_path, "same", seed, labels, good, families))
        rows.append(_run_row(tmp_path, "worse", seed, labels, labels + rng.normal(0, 3.0, 120), families))
    scores = run_scores(pd.DataFrame(rows), runs_root=tmp_path)
    assert list(scores.columns) == SCORE_COLUMNS and len(scores) == 9 * 120
    assert set(scores["run"]) == {f"{v}-seed{s}" for v in ("full", "same", "worse") for s in (0, 1, 2)}
    out = paired(scores, n_resamples=500).set_index(["variant", "seeds"])
    assert list(out.index) == [(v, s) for v in ("same", "worse") for s in ("0", "1", "2", "0,1,2")]
    assert (out.loc["same", "delta"] == 0).all() and (out.loc["same", "p"] == 1).all()
    assert (out.loc["same", "verdict"].isin(["not significant", "per seed: no verdict"])).all()
    worse = out.loc[("worse", "0")]
    assert worse["delta"] < 0 and worse["p"] < 0.01 and worse["verdict"] == "per seed: no verdict"
    assert worse["unit"] == "family" and worse["units"] == 40 and worse["videos"] == 120
    across = out.loc[("worse", "0,1,2")]
    assert across["level"] == ACROSS_SEEDS and across["p_holm"] == pytest.approx(min(1, 2 * across["p"]))
    assert across["verdict"] == "significant at 0.05 (Holm over 2 rows)" and across["holm_rows"] == 2
    line = takeaway(out.reset_index().iloc[7])
    assert line.startswith("worse - full on t: -0.") and "(seeds 0,1,2)" in line
    table = paired_table(out.reset_index(), load_config("smoke"))
    assert (
        "ΔAUC vs full" in table and "| worse | t | 0,1,2 |" in table and "40 families of 120 videos" in table
    )
    assert "p (Holm)" in table


def test_one_seed_rows_carry_the_verdict_and_old_scores_get_the_manifest_families(tmp_path):
    from fbifpn.comparisons import paired, paired_table, run_scores

    labels = np.tile([0, 1], 30)
    rng = np.random.default_rng(1)
    rows = pd.DataFrame(
        [
            _run_row(tmp_path, "full", 0, labels, labels + rng.normal(0, 0.5, 60)),
            _run_row(tmp_path, "x", 0, labels, labels + rng.normal(0, 0.5, 60)),
        ]
    )
    manifest = tmp_path / "manifest.csv"
    ids = [f"synth-ff/v{i:03d}" for i in range(60)]
    pd.DataFrame({"video_id": ids, "family": [f"s{i // 2}" for i in range(60)]}).to_csv(manifest, index=False)
    for path in rows["scores"]:  # scores made before they carried families: the manifest has them
        frame = pd.read_csv(path).assign(video_id=ids)
        frame.to_csv(path, index=False)
        (Path(path).parent / "metrics.json").write_text(json.dumps({"manifest": str(tmp_path)}))
    with mock.patch("fbifpn.data.manifest.load_manifest", return_value=pd.read_csv(manifest)):
        scores = run_scores(rows)
    assert scores[scores.variant == "x"].groupby("family").size().eq(2).all()
    out = paired(scores, n_resamples=200)
    assert list(out["seeds"]) == ["0"] and out["units"].iloc[0] == 30
    assert out["verdict"].iloc[0] in {"significant at 0.05", "not significant"}
    own = paired(scores.assign(family=scores["video_id"]), n_resamples=200)
    assert "60 videos, each its own family (no source recorded)" in paired_table(own, load_config("smoke"))


def test_paired_refuses_runs_tested_on_other_videos(tmp_path):
    from fbifpn.comparisons import paired, run_scores

    labels = np.repeat([0, 1], 10)
    rows = pd.DataFrame(
        [
            _run_row(tmp_path, "full", 0, labels, labels * 1.0, np.arange(20)),
            _run_row(tmp_path, "x", 0, labels[:-1], labels[:-1] * 1.0, np.arange(19)),
        ]
    )
    with pytest.raises(ValueError, match="same videos"):
        paired(run_scores(rows), n_resamples=100)


def test_paired_refuses_runs_that_disagree_on_a_label_or_lack_a_family(tmp_path):
    from fbifpn.comparisons import paired, run_scores

    labels = np.repeat([0, 1], 10)
    flipped = labels.copy()
    flipped[3] = 1
    rows = pd.DataFrame(
        [
            _run_row(tmp_path, "full", 0, labels, labels * 1.0, np.arange(20)),
            _run_row(tmp_path, "x", 0, flipped, labels * 1.0, np.arange(20)),
        ]
    )
    with pytest.raises(ValueError, match=r"x-seed0 gives video synth/v003 another label"):
        paired(run_scores(rows, runs_root=tmp_path), n_resamples=100)
    blank = pd.read_csv(rows["scores"][1], dtype={"family": str}).assign(label=labels)
    blank.loc[5, "family"] = ""
    blank.to_csv(rows["scores"][1], index=False)
    with pytest.raises(ValueError, match="column family is empty for 1 videos"):
        run_scores(rows)


def test_learning_curve_keeps_the_last_record_of_a_step_and_plateau_is_the_first_near_best(tmp_path):
    records = [
        {"kind": "train", "step": 5, "total": 1.0},
        {"kind": "val", "step": 5, "epoch": 0, "frame_auc": 0.6, "video_auc": 0.70},
        {"kind": "val", "step": 10, "epoch": 0, "frame_auc": 0.7, "video_auc": 0.50},
        {"kind": "val", "step": 10, "epoch": 0, "frame_auc": 0.8, "video_auc": 0.905},  # resumed
        {"kind": "val", "step": 15, "epoch": 1, "frame_auc": 0.9, "video_auc": 0.91},
        {"kind": "val", "step": 20, "epoch": 1, "frame_auc": 0.9, "video_auc": 0.90},
    ]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    curve = learning_curve(tmp_path)
    assert list(curve["step"]) == [5, 10, 15, 20]
    assert curve.loc[1, "video_auc"] == 0.905
    assert plateau_step(curve) == 10  # 0.905 is within 0.01 of the best, 0.91
    assert plateau_step(curve, tol=0.0) == 15
    (tmp_path / "metrics.jsonl").write_text(json.dumps(records[0]) + "\n")
    with pytest.raises(ValueError, match="no validation record"):
        learning_curve(tmp_path)


def test_training_protocols_train_sbi_beside_dataset_fakes_and_test_every_set(base_run, tmp_path):
    cfg, _, result = base_run
    cfg = with_overrides(
        cfg,
        {
            "notebooks.protocol_steps": 4,
            "notebooks.curve_steps": 6,
            "train.val_every": 2,
            "notebooks.cross_manipulation": ["FaceSwap"],
        },
    )
    tests = prepared_sets(cfg)
    manip = cross_manipulation(cfg, tmp_path / "loo", tests["synth-ff"])
    rows = training_protocols(
        cfg, tmp_path / "protocols", result.best_checkpoint, tests, manip, progress=False
    )
    assert list(rows["protocol"]) == [
        "dataset fakes",
        "dataset fakes without FaceSwap",
        "SBI only",
        "dataset fakes",
        "SBI only",
    ]
    assert list(rows["held out"]) == ["none", "FaceSwap", "all", "none", "all"]
    assert list(rows["steps"])[2:] == [4, 6, 6]
    sbi = json.loads((tmp_path / "protocols" / "sbi" / "config.json").read_text())
    assert sbi["train"]["fakes"] == "sbi" and sbi["train"]["max_steps"] == 4
    for r in rows.to_dict("records"):
        assert r["chosen step"] in set(learning_curve(r["run"])["step"])
        assert 0 <= r["synth-ff"] <= 1 and 0 <= r["Deepfakes"] <= 1
    assert np.isnan(rows.loc[1, "synth-cdf"]) and 0 <= rows.loc[2, "synth-cdf"] <= 1  # LOO: in-domain only
    assert rows.attrs["methods"] == ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"]
    curve_runs = learning_curves_of(rows)
    points = [len(curve) for curve, _ in curve_runs.values()]
    assert len(points) == 4 and min(points[1:]) >= 2  # the base run validated once, without val_every
    text = protocol_table(rows, cfg)
    assert text.startswith("*train data: synth-ff c23 (synthetic") and "| SBI only | all | 4 |" in text
    assert "| - |" in text  # the leave-one-out run's untested sets
    assert list(rows.columns).index("synth-ff 95 % CI") == list(rows.columns).index("synth-ff") + 1
    assert rows.attrs["home"] == "synth-ff"
    lines = goals(rows, None, cfg)
    assert (
        lines[0].startswith("in-domain synth-ff under dataset-fake training") and "goal >= 0.99" in lines[0]
    )
    assert "synthetic, video level, test split, checkpoint chosen on val" in lines[0]
    assert lines[0].endswith("not met")  # smoke: far below 0.99
    sbi_lines = [line for line in lines if line.startswith("SBI only (")]
    assert len(sbi_lines) == 2 and sum(line.startswith("in-domain") for line in lines) == 2
    assert "NeuralTextures" in sbi_lines[0] and "synth-dfdc" in sbi_lines[0]
    assert lines[-1] == "full against backbone_only: not run in this profile"


def test_no_method_held_out_is_an_empty_table_with_its_columns(smoke_manifest, tmp_path):
    cfg = with_overrides(load_config("smoke", QUICK), {"notebooks.cross_manipulation": []})
    rows = cross_manipulation(cfg, tmp_path, smoke_manifest)
    assert rows.empty and "checkpoint" in rows.columns
    assert rows.drop(columns="checkpoint").empty  # what notebook 04 shows
    assert list(tmp_path.iterdir()) == []  # nothing trained


def test_evaluation_folders_keep_betas_apart(base_run):
    from fbifpn.experiments import beta_of, evaluation_dir

    _, _, result = base_run
    ck = result.best_checkpoint
    assert beta_of(ck) == 0.0 and beta_of(ck, 0.5) == 0.5
    assert (
        evaluation_dir(ck, "synth-cdf")
        == evaluation_dir(ck, "synth-cdf", 0.0)
        == ck.parent / "eval-synth-cdf"
    )
    assert evaluation_dir(ck, "synth-cdf", 0.5) == ck.parent / "eval-synth-cdf-beta0.5"


def test_the_in_domain_set_of_real_data_is_named_as_data_root_names_it(smoke_manifest, tmp_path):
    from fbifpn.experiments import home_set

    cfg = load_config("smoke")
    assert home_set(cfg, {"synth-ff": smoke_manifest, "synth-cdf": tmp_path})[0] == "synth-ff"
    real = with_overrides(cfg, {"data.manifest": str(smoke_manifest)})
    name, manifest = home_set(real, {"ffpp-c23": smoke_manifest, "celebdf": tmp_path})
    assert (name, manifest) == ("ffpp-c23", smoke_manifest)
    (tmp_path / "my-ffpp").mkdir()
    shutil.copy(smoke_manifest / "manifest.csv", tmp_path / "my-ffpp" / "manifest.csv")
    elsewhere = with_overrides(cfg, {"data.manifest": str(tmp_path / "my-ffpp" / "manifest.csv")})
    assert home_set(elsewhere, {"celebdf": tmp_path})[0] == "my-ffpp"  # not a test set: its folder's name


def test_under_sbi_training_a_left_out_method_is_held_out_like_all_the_others(smoke_manifest, tmp_path):
    """A profile that trains on SBI (the paper's): its leave-one-out runs differ only in val, so their
    rows say so, and every method counts as held out; the second protocol is then dataset fakes."""
    cfg = with_overrides(
        load_config("smoke", QUICK),
        {"train.fakes": "sbi", "notebooks.cross_manipulation": ["FaceSwap"], "notebooks.protocol_steps": 4},
    )
    tests = {"synth-ff": smoke_manifest}
    home = trained(cfg, tmp_path / "train", progress=False).best_checkpoint
    manip = cross_manipulation(cfg, tmp_path / "loo", smoke_manifest)
    rows = training_protocols(cfg, tmp_path / "protocols", home, tests, manip, progress=False)
    assert list(rows["protocol"]) == ["SBI only", "SBI only (val without FaceSwap)", "dataset fakes"]
    assert list(rows["held out"]) == ["all", "all", "none"]
    assert [label.split(",")[0] for label in learning_curves_of(rows)] == ["SBI only", "dataset fakes"]


def test_the_same_scores_write_the_same_bytes(tmp_path):
    from fbifpn.comparisons import read_scores, write_scores

    scores = pd.DataFrame({"run": ["r"], "video_id": ["v"], "family": ["f"], "score": [0.123456789]})
    first, second = write_scores(scores, tmp_path / "a.csv.gz"), write_scores(scores, tmp_path / "b.csv.gz")
    assert first.read_bytes() == second.read_bytes()
    assert read_scores(first)["score"].iloc[0] == pytest.approx(0.12345679)


def test_the_level_weight_bound_is_the_sum_of_the_learning_rates():
    from fbifpn.experiments import level_weight_bound

    cfg = load_config("demo", {"optim.schedule": "constant", "optim.warmup_steps": 0, "optim.lr": 0.001})
    assert level_weight_bound(cfg, 0, 360) == (0.25, 0.25)
    low, high = level_weight_bound(cfg, 20, 360)  # d = 0.02: v_l within [0.98/3.98, 1.02/3.96]
    assert low == pytest.approx(0.98 / (0.98 + 3 * 1.02)) and high == pytest.approx(1.02 / (1.02 + 3 * 0.98))
    demo = load_config("demo")  # warm-up and cosine decay: a band that widens ever more slowly
    widths = [np.subtract(*level_weight_bound(demo, s, 360)[::-1]) for s in (45, 90, 180, 360)]
    assert widths == sorted(widths) and widths[3] - widths[2] < widths[1] - widths[0] + widths[2] - widths[1]


def test_paired_over_budgets_adjusts_every_budget_together_and_keeps_the_steps_apart():
    from fbifpn.comparisons import SCORE_COLUMNS
    from fbifpn.experiments import paired_over_budgets

    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(30), np.ones(30)].astype(int)
    parts = []
    for steps in (45, 90):
        for variant, shift in (("full", 1.5), ("backbone_only", 1.0 if steps == 45 else 1.5)):
            for seed in (0, 1):
                parts.append(
                    pd.DataFrame(
                        {
                            "run": f"{variant}-seed{seed}",
                            "variant": variant,
                            "seed": seed,
                            "steps": steps,
                            "test": "synth-ff",
                            "video_id": [f"v{i}" for i in range(60)],
                            "family": [f"f{i // 2}" for i in range(60)],
                            "label": labels,
                            "score": rng.normal(size=60) + shift * labels,
                        }
                    )[SCORE_COLUMNS]
                )
    rows = paired_over_budgets(pd.concat(parts, ignore_index=True), "full", 200)
    assert set(rows["steps"]) == {45, 90} and set(rows["test"]) == {"synth-ff"}
    across = rows[rows["level"] != "one seed"]
    assert len(across) == 2
    # Holm over both budgets' verdict rows: the smaller p is doubled (or capped at 1)
    smaller = across["p"].min()
    assert across.loc[across["p"] == smaller, "p_holm"].iloc[0] == pytest.approx(min(1.0, 2 * smaller))


def test_a_kept_steps_evaluations_never_share_a_folder_with_best_pt():
    from fbifpn.experiments import evaluation_dir

    assert evaluation_dir(Path("run/best.pt"), "synth-ff", 0.0) == Path("run/eval-synth-ff")
    assert evaluation_dir(Path("run/step-45.pt"), "synth-ff", 0.0) == Path("run/step-45-eval-synth-ff")
    assert evaluation_dir(Path("run/step-45.pt"), "synth-ff", 0.5, split="val") == Path(
        "run/step-45-eval-synth-ff-beta0.5-val"
    )
