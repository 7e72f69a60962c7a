"""Sets of runs that each answer one question: which parts of the model matter (the ablation table),
and how a detector travels to other datasets, to unseen manipulations and to stronger compression.

Every run is a plain `fit` into its own folder with `resume=True`, so a finished run is reused and an
interrupted one continues. Every test is `evaluate_checkpoint`, whose metrics.json is reused while it
is newer than its checkpoint. Checkpoints are chosen on validation only, as everywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from fbifpn import metrics
from fbifpn.config import Config, replace_dotted
from fbifpn.metrics import Protocol


def with_overrides(cfg: Config, overrides: dict) -> Config:
    """A copy of `cfg` with dotted overrides (validated like any config)."""
    from fbifpn.config import config_from_dict

    return config_from_dict(replace_dotted(cfg, overrides).to_dict())


def prepared_sets(cfg: Config, data_root: str | Path = "") -> dict[str, Path]:
    """The prepared manifests the notebooks compare, by name: every sub-folder of `data_root` that
    holds a manifest.csv (real data, prepared with `python -m fbifpn prep ... --out <data_root>/<name>`),
    or, without `data_root`, synth-ff, synth-cdf and synth-dfdc (generated and prepared on first use)."""
    from fbifpn.data.cache import prepared_manifest
    from fbifpn.data.synthetic.generate import DATASETS

    if not data_root:
        return {name: prepared_manifest(cfg, dataset=name) for name in DATASETS}
    root = Path(data_root)
    if not root.is_dir():
        raise FileNotFoundError(f"data_root: {root} is not a folder (one prepared manifest per sub-folder)")
    found = {p.name: p for p in sorted(root.iterdir()) if (p / "manifest.csv").is_file()}
    if not found:
        raise FileNotFoundError(
            f"data_root: no prepared manifest under {root} (a sub-folder holding manifest.csv); "
            f"make one with `python -m fbifpn prep --layout ... --root ... --out {root}/<name>`"
        )
    return found


FIGURES_ONLY = "FBIFPN_FIGURES_ONLY"  # set by `notebooks run --figures-only` (make figures)


def finished(cfg: Config, run_dir: Path) -> bool:
    """Whether `run_dir` holds a run of `cfg` that has used its whole training budget."""
    from fbifpn.engine import checkpoint as ckpt

    last = Path(run_dir) / "last.pt"
    if not last.is_file():
        return False
    saved = ckpt.load(last)
    if cfg.train.max_steps:
        return saved["step"] >= cfg.train.max_steps
    return saved["epoch"] >= cfg.train.epochs


def trained(cfg: Config, run_dir: Path, progress: bool = True, notebook: str = ""):
    """`fit` with resume: a finished run is reused, an interrupted one continues. Returns the
    RunResult. When figures only are wanted (`make figures`), a run that is not finished is an error
    naming the notebook that trains it, never a silent retraining."""
    import os

    from fbifpn.engine import fit

    if os.environ.get(FIGURES_ONLY) == "1" and not finished(cfg, run_dir):
        where = f" (run notebooks/{notebook}.ipynb, or make demo)" if notebook else " (run make demo)"
        raise FileNotFoundError(
            f"{run_dir}: no finished training run, and figures only were asked for{where}"
        )
    result = fit(cfg, run_dir, resume=True, progress=progress)
    if result.best_checkpoint is None:
        raise RuntimeError(f"{run_dir}: training finished without a validation-chosen checkpoint")
    return result


def evaluated(
    checkpoint: Path, manifest: Path, out: Path, beta: float | None = None, progress: bool = True
) -> dict:
    """`evaluate_checkpoint` on the test split, or its saved report when that is newer than the
    checkpoint and was made from the same checkpoint, manifest and beta."""
    from fbifpn.engine.evaluate import evaluate_checkpoint

    checkpoint, manifest, out = Path(checkpoint), Path(manifest), Path(out)
    saved = out / "metrics.json"
    if saved.is_file() and saved.stat().st_mtime > checkpoint.stat().st_mtime:
        report = json.loads(saved.read_text())
        if (
            report.get("checkpoint") == str(checkpoint)
            and report.get("manifest") == str(manifest)
            and report.get("beta") == beta
        ):
            return report
    return evaluate_checkpoint(checkpoint, manifest, out, beta=beta, progress=progress)


def metrics_row(report: dict) -> dict:
    """The headline numbers of one evaluation report, flat."""
    video, frame = report["metrics"]["video"], report["metrics"]["frame"]
    low, high = video["auc_ci95"]
    return {
        "video_auc": video["auc"],
        "ci_low": low,
        "ci_high": high,
        "video_ap": video["ap"],
        "frame_auc": frame["auc"],
        "frame_ap": frame["ap"],
        "videos": video["n"],
        "compression": report["protocol"]["compression"],
    }


def level_weights(checkpoint: Path) -> list[float] | None:
    """The neck's normalised level weights v_l (finest level first); None without an F-BiFPN neck."""
    from fbifpn.engine.checkpoint import load_model
    from fbifpn.models.fbifpn import normalized

    model, _, _ = load_model(Path(checkpoint))
    neck = getattr(model, "neck", None)
    if neck is None:
        return None
    return [float(w) for w in normalized(neck.level_weight.detach(), neck.eps)]


# --------------------------------------------------------------------------- ablations


def ablation(
    cfg: Config,
    root: Path,
    test_sets: dict[str, Path],
    reuse: dict[tuple[str, int], Path] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Train every variant of `cfg.notebooks.ablation_variants` for every seed of
    `cfg.notebooks.ablation_seeds` with `cfg`'s budget, and test each on every set of `test_sets`.
    `reuse` maps (variant, seed) to a checkpoint trained with the same budget (notebook 02's run).
    One row per variant, seed and test set; the full model is also scored with beta > 0."""
    reuse = reuse or {}
    book = cfg.notebooks
    rows = []
    for variant in book.ablation_variants:
        for seed in book.ablation_seeds:
            run = Path(root) / f"{variant}-seed{seed}"
            checkpoint = reuse.get((variant, seed))
            if checkpoint is None:
                run_cfg = with_overrides(cfg, {"model.variant": variant, "train.seed": seed})
                checkpoint = trained(run_cfg, run, progress, "03_ablations").best_checkpoint
            weights = level_weights(checkpoint)
            mixed = variant == "full" and book.ablation_beta > 0
            reports = {}
            for name, manifest in test_sets.items():
                folder = run / f"eval-{name}"
                reports[(variant, name)] = evaluated(
                    checkpoint, manifest, folder, beta=0.0, progress=progress
                )
                if mixed:
                    beta = book.ablation_beta
                    reports[(f"{variant} (beta={beta:g})", name)] = with_mask_evidence(folder, beta)
            for (label, name), report in sorted(reports.items(), key=lambda kv: kv[0][0] != variant):
                rows.append(
                    {
                        "variant": label,
                        "seed": seed,
                        "test": name,
                        **metrics_row(report),
                        "level_weights": weights,
                        "checkpoint": str(checkpoint),
                        "scores": str(run / f"eval-{name}" / "scores.csv"),
                        "beta": report["beta"],
                    }
                )
    return pd.DataFrame(rows)


def with_mask_evidence(folder: Path, beta: float) -> dict:
    """The report of an evaluation made with beta = 0, rescored with the mask evidence:
    s = (1 - beta) p_cls + beta topk_mean(mask). Exact without running the model again: scores.csv
    holds both terms, each already averaged over the flip views, and s is linear in them."""
    folder = Path(folder)
    report = json.loads((folder / "metrics.json").read_text())
    if report.get("beta") != 0.0:
        raise ValueError(f"{folder}: rescoring needs an evaluation made with beta = 0")
    frames = pd.read_csv(folder / "scores.csv")
    if frames["mask_score"].isna().all():
        raise ValueError(f"{folder}: this model has no mask head, so there is no mask evidence")
    frames["score"] = (1 - beta) * frames["score"] + beta * frames["mask_score"]
    config = report["config"]
    report |= {
        "metrics": metrics.evaluate_scores(
            frames,
            threshold=None,  # the val threshold was chosen for the cls score alone
            bootstrap=config["eval"]["bootstrap"],
            seed=config["train"]["seed"],
        ),
        "beta": beta,
        "score": f"(1 - beta) p_cls + beta topk_mean(mask), beta = {beta:g} (rescored from {folder})",
    }
    (folder / f"metrics-beta{beta:g}.json").write_text(json.dumps(report, indent=1))
    return report


def summarise(rows: pd.DataFrame, by: tuple[str, ...] = ("variant", "test")) -> pd.DataFrame:
    """Mean over seeds of each metric; the spread across seeds (sd, NaN with one seed) next to the
    mean of the per-seed 95 % bootstrap intervals over videos. Keeps the first-seen row order."""
    keys = list(by)
    grouped = rows.groupby(keys, sort=False)
    out = grouped.agg(
        seeds=("seed", lambda s: ",".join(str(v) for v in sorted(set(s)))),
        video_auc=("video_auc", "mean"),
        video_auc_sd=("video_auc", lambda s: float(np.std(s, ddof=1)) if len(s) > 1 else float("nan")),
        ci_low=("ci_low", "mean"),
        ci_high=("ci_high", "mean"),
        video_ap=("video_ap", "mean"),
        frame_auc=("frame_auc", "mean"),
        videos=("videos", "first"),
        compression=("compression", "first"),
    )
    return out.reset_index()


def run_videos(row) -> pd.DataFrame:
    """The per-video scores behind one row of `ablation`: its scores.csv, rescored with its beta."""
    frames = pd.read_csv(row["scores"])
    beta = float(row.get("beta") or 0.0)
    if beta:
        frames["score"] = (1 - beta) * frames["score"] + beta * frames["mask_score"]
    return metrics.video_scores(frames)


def _seed_mean(runs: list[pd.DataFrame]) -> pd.DataFrame:
    """Each video's score averaged over runs (seeds): a seed ensemble."""
    return (
        pd.concat(runs)
        .groupby("video_id", as_index=False)
        .agg(score=("score", "mean"), label=("label", "first"))
    )


def _delta(reference: pd.DataFrame, other: pd.DataFrame, n_resamples: int, seed: int) -> dict:
    both = reference.merge(other, on="video_id", suffixes=("_ref", ""), validate="one_to_one")
    if len(both) != len(reference) or len(both) != len(other):
        raise ValueError("paired comparison: the two runs were not tested on the same videos")
    return metrics.compare_auc(
        both["label"], both["score"], both["score_ref"], n_resamples=n_resamples, seed=seed
    )


def paired(
    rows: pd.DataFrame, reference: str = "full", n_resamples: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """Each variant against `reference` on the same test videos: delta = AUC(variant) - AUC(reference),
    its 95 % paired bootstrap interval and a paired permutation p (`metrics.compare_auc`). One row per
    seed, and with several seeds a "pooled" row: each video's score averaged over the seeds (a seed
    ensemble of either model), then one paired test over the videos."""
    out = []
    for test, of_test in rows.groupby("test", sort=False):
        ref_rows = of_test[of_test["variant"] == reference]
        ref = {r["seed"]: run_videos(r) for _, r in ref_rows.iterrows()}
        for variant, of_variant in of_test[of_test["variant"] != reference].groupby("variant", sort=False):
            runs = {r["seed"]: run_videos(r) for _, r in of_variant.iterrows() if r["seed"] in ref}
            for s, videos in runs.items():
                out.append(
                    {
                        "variant": variant,
                        "test": test,
                        "seeds": str(s),
                        **_delta(ref[s], videos, n_resamples, seed),
                    }
                )
            if len(runs) > 1:
                seeds = sorted(runs)
                out.append(
                    {
                        "variant": variant,
                        "test": test,
                        "seeds": ",".join(map(str, seeds)) + " pooled",
                        **_delta(
                            _seed_mean([ref[k] for k in seeds]),
                            _seed_mean([runs[k] for k in seeds]),
                            n_resamples,
                            seed,
                        ),
                    }
                )
    frame = pd.DataFrame(out)
    if not frame.empty:
        frame["verdict"] = np.where(frame["p"] < 0.05, "significant at 0.05", "not significant")
    return frame


def takeaway(row, reference: str = "full") -> str:
    """One line a reader can quote: 'no_attention - full on synth-cdf: -0.021 [-0.060, +0.015],
    p = 0.27, not significant (seed 0)'."""
    seeds = row["seeds"] if "pooled" in str(row["seeds"]) else f"seed {row['seeds']}"
    return (
        f"{row['variant']} - {reference} on {row['test']}: {row['delta']:+.3f} "
        f"[{row['low']:+.3f}, {row['high']:+.3f}], p = {row['p']:.3f}, {row['verdict']} ({seeds})"
    )


def paired_table(frame: pd.DataFrame, cfg: Config, reference: str = "full") -> str:
    """`paired` as Markdown, with the protocol it was made under."""
    from fbifpn.engine.evaluate import describe_training

    protocol = Protocol(
        train_data=describe_training(cfg),
        test_data=", ".join(frame["test"].unique()) + " [test splits]",
        compression="as in the ablation table",
        level="video (mean of frame scores, max over faces)",
        selection=(
            f"best validation {cfg.eval.select_on} of each run; delta = AUC(variant) - AUC({reference}) "
            "on the same videos; 95 % paired bootstrap (BCa, reals and fakes resampled separately); p: "
            "two-sided paired permutation test; pooled: scores averaged over seeds per video"
        ),
    )
    table = pd.DataFrame(
        {
            "variant": frame["variant"],
            "test": frame["test"],
            "seeds": frame["seeds"],
            f"ΔAUC vs {reference}": frame["delta"],
            "95 % CI": [
                f"[{lo:+.3f}, {hi:+.3f}]" for lo, hi in zip(frame["low"], frame["high"], strict=True)
            ],
            "p": frame["p"],
            "verdict": frame["verdict"],
            "videos": frame["n"],
        }
    )
    return _markdown(table, protocol)


def _ci(row) -> str:
    return "-" if np.isnan(row["ci_low"]) else f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def _markdown(frame: pd.DataFrame, protocol: Protocol) -> str:
    return metrics.table(frame.to_dict("records"), protocol, list(frame.columns), digits=3)


def ablation_table(summary: pd.DataFrame, cfg: Config) -> str:
    """The ablation summary as Markdown, with the protocol it was made under."""
    from fbifpn.engine.evaluate import describe_training

    tests = summary.drop_duplicates("test")
    protocol = Protocol(
        train_data=describe_training(cfg),
        test_data=", ".join(tests["test"]) + " [test splits]",
        compression="; ".join(f"{t}: {c}" for t, c in zip(tests["test"], tests["compression"], strict=True)),
        level="video (mean of frame scores, max over faces)",
        selection=(
            f"best validation {cfg.eval.select_on} of each run; every variant with notebook 02's budget "
            f"({cfg.train.epochs} epochs, batch {cfg.train.batch_size}); seeds "
            f"{', '.join(map(str, cfg.notebooks.ablation_seeds))}; CI: 95 % bootstrap over test videos, "
            "mean over seeds; sd: across seeds"
        ),
    )
    table = pd.DataFrame(
        {
            "variant": summary["variant"],
            "test": summary["test"],
            "seeds": summary["seeds"],
            "video AUC": summary["video_auc"],
            "95 % CI": summary.apply(_ci, axis=1),
            "sd over seeds": summary["video_auc_sd"].map(lambda v: "-" if np.isnan(v) else f"{v:.3f}"),
            "video AP": summary["video_ap"],
            "frame AUC": summary["frame_auc"],
            "videos": summary["videos"],
        }
    )
    return _markdown(table, protocol)


def cross_dataset_table(reports: dict[str, dict]) -> str:
    """One row per test set (frame and video AUC / AP), as Markdown with its protocol."""
    rows = protocol_rows(reports)
    first = next(iter(reports.values()))["protocol"]
    protocol = Protocol(
        train_data=first["train_data"],
        test_data=", ".join(rows["test"]) + " [test splits]",
        compression="; ".join(f"{t}: {c}" for t, c in zip(rows["test"], rows["compression"], strict=True)),
        level="frame and video (video = mean of frame scores, max over faces)",
        selection=first["selection"],
    )
    table = pd.DataFrame(
        {
            "test": rows["test"],
            "video AUC": rows["video_auc"],
            "95 % CI": rows.apply(_ci, axis=1),
            "video AP": rows["video_ap"],
            "frame AUC": rows["frame_auc"],
            "frame AP": rows["frame_ap"],
            "videos": rows["videos"],
        }
    )
    return _markdown(table, protocol)


# --------------------------------------------------------------------------- generalisation protocols


def cross_manipulation(cfg: Config, root: Path, manifest: Path, progress: bool = True) -> pd.DataFrame:
    """The FF++ leave-one-out protocol: for each method of `cfg.notebooks.cross_manipulation`, train
    without its fakes (train and val), then test on the test split. `held_out_auc` is that method's
    fakes against all test reals: the number the protocol is about; `seen_auc` is the other methods'."""
    rows = []
    for method in cfg.notebooks.cross_manipulation:
        run = Path(root) / f"without-{method}"
        held_out = with_overrides(cfg, {"data.exclude_methods": [method]})
        checkpoint = trained(held_out, run, progress, "04_cross_dataset").best_checkpoint
        report = evaluated(checkpoint, manifest, run / "eval", progress=progress)
        per_method = report["metrics"]["per_method_video_auc"]
        seen = [v for m, v in per_method.items() if m != method]
        rows.append(
            {
                "held_out": method,
                "held_out_auc": per_method.get(method, float("nan")),
                "seen_auc": float(np.mean(seen)) if seen else float("nan"),
                "all_video_auc": report["metrics"]["video"]["auc"],
                "checkpoint": str(checkpoint),
            }
        )
    return pd.DataFrame(rows)


def cross_compression(cfg: Config, checkpoint: Path, root: Path, progress: bool = True) -> pd.DataFrame:
    """The checkpoint on the test split of its own training set at its own compression level and at
    each level of `cfg.notebooks.cross_compression`. Synthetic FF++ layout only (the benchmark has
    every level of every video); empty, with a message, for a training manifest of real data."""
    from fbifpn.data.cache import prepared_manifest

    if cfg.data.manifest:
        print(
            "cross-compression runs on the synthetic benchmark; with real data, prepare FF++ c40 into "
            "data_root and it appears in the cross-dataset table"
        )
        return pd.DataFrame()
    rows = []
    for level in dict.fromkeys((cfg.data.compression, *cfg.notebooks.cross_compression)):
        manifest = prepared_manifest(with_overrides(cfg, {"data.compression": level}), progress=progress)
        report = evaluated(checkpoint, manifest, Path(root) / level, progress=progress)
        rows.append({"trained on": cfg.data.compression, "tested on": level, **metrics_row(report)})
    return pd.DataFrame(rows).drop(columns="compression")


def protocol_rows(reports: dict[str, dict]) -> pd.DataFrame:
    """One row per test set: its protocol fields next to its headline metrics."""
    rows = []
    for name, report in reports.items():
        protocol = report["protocol"]
        rows.append(
            {
                "test": name,
                **metrics_row(report),
                "train_data": protocol["train_data"],  # metrics_row carries the compression
                "selection": protocol["selection"],
            }
        )
    return pd.DataFrame(rows)


def per_method_table(reports: dict[str, dict]) -> pd.DataFrame:
    """Video AUC of each manipulation against the reals of its own test set, per test set."""
    table = {name: r["metrics"]["per_method_video_auc"] for name, r in reports.items()}
    return pd.DataFrame(table).T.rename_axis("test")


__all__ = [
    "ablation",
    "ablation_table",
    "cross_compression",
    "cross_dataset_table",
    "cross_manipulation",
    "evaluated",
    "finished",
    "level_weights",
    "metrics_row",
    "per_method_table",
    "prepared_sets",
    "protocol_rows",
    "summarise",
    "trained",
    "with_mask_evidence",
    "with_overrides",
]
