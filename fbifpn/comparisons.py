"""From the per-video test scores of trained runs to the paired tables the README's claims rest on.

The hand-off is one long table, `SCORE_COLUMNS`: a row per run, test set and video. The notebooks
write it to `<run_dir>/scores/` and the repository commits it (`results/<profile>/scores/`), so
every paired table can be recomputed from it without training (tests/test_results.py does).

Each variant is compared with a reference on the same test videos (`fbifpn.stats`):
- per seed, the two runs of that seed: a difference between two trained networks;
- across seeds (two or more), the seed-level test: the verdict on the method;
- the rows that carry verdicts are one family of tests, adjusted together by Holm; the per-seed
  rows of a table with seed-level rows are a second family, shown but never a verdict.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from fbifpn import atomic, metrics, stats
from fbifpn.metrics import Protocol

SCORE_COLUMNS = ["run", "variant", "seed", "steps", "test", "video_id", "family", "label", "score"]
ONE_SEED, ACROSS_SEEDS = "one seed", "across seeds"


# --------------------------------------------------------------------------- per-video scores


def evaluation_frames(scores_csv: Path | str) -> pd.DataFrame:
    """An evaluation's scores.csv, each frame with its video's family: from the scores, or for an
    evaluation made before scores carried one, from the manifest it was made from (a video that
    manifest lacks is its own family, with a warning). A blank family is an error naming the file."""
    scores_csv = Path(scores_csv)
    frames = pd.read_csv(scores_csv, dtype={"family": str})
    if "family" in frames.columns:
        if (missing := frames["family"].isna() | (frames["family"].str.strip() == "")).any():
            first = frames.loc[missing, "video_id"].iloc[0]
            videos = frames.loc[missing, "video_id"].nunique()
            raise ValueError(f"{scores_csv}: column family is empty for {videos} videos ({first} first)")
        return frames
    known = manifest_families(scores_csv)
    families = frames["video_id"].map(known)
    if families.isna().any() and known:
        warnings.warn(
            f"{scores_csv}: {frames.loc[families.isna(), 'video_id'].nunique()} videos are not in the "
            "manifest it was made from; each is its own family",
            stacklevel=2,
        )
    frames.insert(frames.columns.get_loc("video_id") + 1, "family", families.fillna(frames["video_id"]))
    return frames


def evaluation_videos(scores_csv: Path | str, beta: float = 0.0) -> pd.DataFrame:
    """The per-video scores of one evaluation with their families (`evaluation_frames`), rescored
    with `beta` when > 0."""
    frames = evaluation_frames(scores_csv)
    if beta:
        frames["score"] = (1 - beta) * frames["score"] + beta * frames["mask_score"]
    return metrics.video_scores(frames)


def manifest_families(scores_csv: Path) -> dict[str, str]:
    """video id -> family, from the manifest the evaluation beside `scores_csv` names; each video its
    own family (with a warning) when that manifest is gone or holds none."""
    from fbifpn.data.manifest import load_manifest

    report = scores_csv.parent / "metrics.json"
    try:
        manifest = load_manifest(Path(json.loads(report.read_text())["manifest"]))
    except (OSError, KeyError, ValueError) as e:
        warnings.warn(
            f"{scores_csv}: no family for its videos ({e}); each video is its own family", stacklevel=3
        )
        return {}
    return manifest.drop_duplicates("video_id").set_index("video_id")["family"].astype(str).to_dict()


def run_scores(rows: pd.DataFrame, runs_root: Path | str | None = None) -> pd.DataFrame:
    """The SCORE_COLUMNS table behind `rows`, one row per run and test set with its `scores`
    (scores.csv), `beta`, `checkpoint`, `variant`, `seed`, `steps` and `test` (as
    `experiments.ablation` gives them). `run` is the run's folder, relative to `runs_root`."""
    parts = []
    for row in rows.to_dict("records"):
        videos = evaluation_videos(row["scores"], float(row.get("beta") or 0.0))
        parts.append(
            videos.assign(
                run=relative_run(Path(row["checkpoint"]).parent, runs_root),
                variant=row["variant"],
                seed=int(row["seed"]),
                steps=int(row["steps"]),
                test=row["test"],
            )[SCORE_COLUMNS]
        )
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=SCORE_COLUMNS)


def evaluations_of(runs: pd.DataFrame, runs_root: Path | str | None = None) -> pd.DataFrame:
    """The SCORE_COLUMNS table of every test-split evaluation (at the checkpoint's own beta) saved
    in the run folders of `runs` (a `run` folder, a `protocol` label as the variant and `steps` per
    row, as notebook 04's protocol table gives them): every set each run was tested on."""
    rows = []
    for run in runs.to_dict("records"):
        for report_path in sorted(Path(run["run"]).glob("eval-*/metrics.json")):
            report = json.loads(report_path.read_text())
            if report.get("split", "test") != "test" or "-beta" in report_path.parent.name:
                continue
            rows.append(
                {
                    "variant": run["protocol"],
                    "seed": report["config"]["train"]["seed"],
                    "steps": run["steps"],
                    "test": report_path.parent.name.removeprefix("eval-"),
                    "checkpoint": report["checkpoint"],
                    "scores": str(report_path.parent / "scores.csv"),
                    "beta": 0.0,  # scores.csv's `score` is the checkpoint's own beta already
                }
            )
    return run_scores(pd.DataFrame(rows), runs_root)


def relative_run(path: Path, root: Path | str | None) -> str:
    try:
        return str(path.resolve().relative_to(Path(root).resolve())) if root else str(path)
    except ValueError:
        return str(path)


def write_scores(scores: pd.DataFrame, path: Path | str) -> Path:
    """A scores table as gzip CSV, byte for byte the same for the same scores: `gzip.compress`
    writes neither a time nor a file name (pandas' gzip stores the temporary's name)."""
    import gzip

    text = scores.to_csv(index=False, float_format="%.8g")
    with atomic.replacing(path) as tmp:
        tmp.write_bytes(gzip.compress(text.encode(), mtime=0))
    return Path(path)


def read_scores(path: Path | str) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"family": str, "video_id": str, "run": str, "test": str})


# --------------------------------------------------------------------------- paired rows


def aligned(of_variant: pd.DataFrame, of_reference: pd.DataFrame, seeds: list[int]):
    """Labels, families and the (seeds, videos) scores of a variant and its reference, videos in one
    order; an error naming the run when any run of either was scored on other videos, or gives a
    video another label or family, than the reference's first seed."""
    runs = [
        frame[frame["seed"] == s].set_index("video_id").sort_index()
        for s in seeds
        for frame in (of_variant, of_reference)
    ]
    first = runs[1]  # the reference's first seed
    for run in runs:
        name, test = run["run"].iloc[0], run["test"].iloc[0]
        if run.index.has_duplicates:
            raise ValueError(f"{name}: a video scored twice on {test}")
        if not run.index.equals(first.index):
            raise ValueError(
                f"paired comparison on {test}: {name} and {first['run'].iloc[0]} were not scored on "
                f"the same videos ({len(run)} and {len(first)} videos, "
                f"{len(run.index.symmetric_difference(first.index))} not in both)"
            )
        for column in ("label", "family"):
            if not run[column].astype(str).equals(first[column].astype(str)):
                video = run.index[(run[column].astype(str) != first[column].astype(str)).to_numpy()][0]
                raise ValueError(
                    f"paired comparison on {test}: {name} gives video {video} another {column} than "
                    f"{first['run'].iloc[0]}"
                )
    a = np.stack([r["score"].to_numpy(float) for r in runs[0::2]])
    b = np.stack([r["score"].to_numpy(float) for r in runs[1::2]])
    return first["label"].to_numpy(int), first["family"].to_numpy(), a, b


def paired(
    scores: pd.DataFrame, reference: str = "full", n_resamples: int = 9999, seed: int = 0
) -> pd.DataFrame:
    """Every variant of `scores` (SCORE_COLUMNS) against `reference` on each test set: one row per
    seed (`stats.compare_auc` over families) and, with two or more seeds, a seed-level row
    (`stats.compare_auc_over_seeds`); then Holm over each family of rows (`adjust`)."""
    stats.check_resamples(n_resamples)
    out = []
    for test, of_test in scores.groupby("test", sort=False):
        ref = of_test[of_test["variant"] == reference]
        for variant, of_variant in of_test[of_test["variant"] != reference].groupby("variant", sort=False):
            seeds = sorted(set(of_variant["seed"]) & set(ref["seed"]))
            if dropped := sorted(set(of_variant["seed"]) ^ set(ref["seed"])):
                warnings.warn(
                    f"{variant} against {reference} on {test}: seeds {dropped} have no run of both, "
                    "so they are left out of its rows",
                    stacklevel=2,
                )
            if not seeds:
                continue
            labels, families, a, b = aligned(of_variant, ref, seeds)
            row = {"variant": variant, "test": test}
            for i, s in enumerate(seeds):
                test_result = stats.compare_auc(
                    labels, a[i], b[i], families=families, n_resamples=n_resamples, seed=seed
                )
                out.append(row | {"seeds": str(s), "level": ONE_SEED} | _result(test_result))
            if len(seeds) > 1:
                over = stats.compare_auc_over_seeds(
                    labels, a, b, families=families, n_resamples=n_resamples, seed=seed
                )
                out.append(
                    row
                    | {"seeds": ",".join(map(str, seeds)), "level": ACROSS_SEEDS}
                    | _result(over)
                    | {"df": over["df"], "seed_sd": float(np.std(over["per_seed"], ddof=1))}
                )
    frame = pd.DataFrame(out)
    return adjust(frame, n_resamples) if not frame.empty else frame


def _result(r: dict) -> dict:
    return {
        "delta": r["delta"],
        "low": r["low"],
        "high": r["high"],
        "p": r["p"],
        "agree": bool(r.get("agree", True)),
        "unit": r["unit"],
        "units": r["units"],
        "videos": r["n"],
    }


def adjust(frame: pd.DataFrame, n_resamples: int) -> pd.DataFrame:
    """Holm's adjusted p (`p_holm`) within each family of rows, and the verdicts. The verdict rows
    are the seed-level rows where the table has any, else its per-seed rows (one seed: a
    difference between two trained networks). A row whose interval and permutation test disagree
    (one excludes 0 at 0.05, the other does not) says so in `note`."""
    frame = frame.copy()
    if "level" not in frame.columns:
        frame["level"] = ONE_SEED
    verdict_level = ACROSS_SEEDS if (frame["level"] == ACROSS_SEEDS).any() else ONE_SEED
    frame["p_holm"] = np.nan
    frame["holm_rows"] = 0
    for _, rows in frame.groupby("level", sort=False):
        frame.loc[rows.index, "p_holm"] = stats.holm(rows["p"])
        frame.loc[rows.index, "holm_rows"] = int(rows["p"].notna().sum())
    frame["verdict"] = [
        stats.verdict(r.p_holm, r.holm_rows) if r.level == verdict_level else "per seed: no verdict"
        for r in frame.itertuples()
    ]
    frame["note"] = np.where(frame["agree"], "", "interval and test disagree")
    frame["n_resamples"] = n_resamples
    return frame


# --------------------------------------------------------------------------- tables


def paired_table(frame: pd.DataFrame, cfg, reference: str = "full", selection: str | None = None) -> str:
    """`paired` as Markdown, with the protocol it was made under and the unit of each row;
    `selection` says how each run's model was chosen when it was not the val-chosen best.pt."""
    from fbifpn.engine.evaluate import describe_training

    train_data = describe_training(cfg)
    selection = selection or f"best validation {cfg.eval.select_on} of each run"
    seeds_level = (frame["level"] == ACROSS_SEEDS).any()
    families = frame.drop_duplicates("test")
    units = "; ".join(f"{r.test}: {_units(r)}" for r in families.itertuples())
    n = int(frame["n_resamples"].iloc[0])
    how = (
        f"delta = AUC(variant) - AUC({reference}) on the same videos; {units}. Per seed: 95 % paired "
        f"BCa bootstrap over families, p a permutation test swapping the two models on whole "
        f"families ({n} resamples each). "
    )
    if seeds_level:
        how += (
            "Across seeds (the verdicts): the mean of the per-seed deltas, its interval and p from "
            "one t procedure whose error adds the spread between seeds to the family bootstrap's "
            "(fbifpn.stats.compare_auc_over_seeds). "
        )
    else:
        how += "One seed per model: a difference between two trained networks, not yet between methods. "
    how += "Holm adjusts the verdict rows together; the verdict reads the adjusted p"
    protocol = Protocol(
        train_data=train_data,
        test_data=", ".join(frame["test"].unique()) + " [test splits]",
        compression="as in the ablation table",
        level="video (mean of frame scores, max over faces)",
        selection=f"{selection}; {how}",
    )
    table = pd.DataFrame(
        {
            "variant": frame["variant"],
            "test": frame["test"],
            "seeds": frame["seeds"],
            f"ΔAUC vs {reference}": frame["delta"],
            "95 % CI": [_interval(r) for r in frame.itertuples()],
            "p": [_p(r) for r in frame.itertuples()],
            "p (Holm)": [stats.format_p(p) for p in frame["p_holm"]],
            "verdict": [
                v + (f"; {note}" if note else "")
                for v, note in zip(frame["verdict"], frame["note"], strict=True)
            ],
            "videos": frame["videos"],
        }
    )
    return metrics.table(table.to_dict("records"), protocol, list(table.columns), digits=3)


def units_text(unit: str, units: int, videos: int) -> str:
    """What a test resampled, for a protocol line; a family per video means the layout recorded no
    source (DFDC's test folder) or no families were given, and the line says so."""
    if unit == "video" or units == videos:
        return f"{videos} videos, each its own family (no source recorded)"
    return f"{units} families of {videos} videos"


def _units(row) -> str:
    return units_text(row.unit, row.units, row.videos)


def _interval(row) -> str:
    if row.low != row.low:
        return "-"
    return f"[{row.low:+.3f}, {row.high:+.3f}]"


def _p(row) -> str:
    """A permutation p with its floor; a seed-level p (a t test) has none."""
    return stats.format_p(row.p, None if row.level == ACROSS_SEEDS else int(row.n_resamples))


def takeaway(row, reference: str = "full") -> str:
    """One line a reader can quote: 'no_attention - full on synth-cdf: -0.021 [-0.060, +0.015],
    p = 0.27 (Holm 0.81), not significant (seeds 0,1,2)'."""
    seeds = f"seeds {row['seeds']}" if row["level"] == ACROSS_SEEDS else f"seed {row['seeds']}"
    return (
        f"{row['variant']} - {reference} on {row['test']}: {row['delta']:+.3f} "
        f"[{row['low']:+.3f}, {row['high']:+.3f}], p = {_p(pd.Series(row))} "
        f"(Holm {stats.format_p(row['p_holm'])}), {row['verdict']} ({seeds})"
    )


def verdict_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of a paired table that carry its verdicts (seed-level where there are any)."""
    level = ACROSS_SEEDS if (frame["level"] == ACROSS_SEEDS).any() else ONE_SEED
    return frame[frame["level"] == level]


# --------------------------------------------------------------------------- one model's AUC


def auc_intervals(scores: pd.DataFrame, n_resamples: int, seed: int = 0) -> pd.DataFrame:
    """Per run (variant, seed) and test set: the video AUC and its 95 % BCa interval over families."""
    rows = []
    for (variant, s, test), of_run in scores.groupby(["variant", "seed", "test"], sort=False):
        out = stats.bootstrap_auc(
            of_run["label"], of_run["score"], of_run["family"], n_resamples=n_resamples, seed=seed
        )
        rows.append(
            {"variant": variant, "seed": s, "test": test, "video_auc": out["auc"], "ci_low": out["low"]}
            | {"ci_high": out["high"], "ci_unit": out["unit"], "ci_units": out["units"]}
        )
    return pd.DataFrame(rows)


def with_intervals(rows: pd.DataFrame, scores: pd.DataFrame, n_resamples: int, seed: int = 0) -> pd.DataFrame:
    """`rows` (one per run and test set, as `experiments.ablation` gives) with their evaluations'
    AUC intervals replaced by `auc_intervals` over families, at the tables' number of resamples."""
    keys = ["variant", "seed", "test"]
    intervals = auc_intervals(scores, n_resamples, seed)[[*keys, "ci_low", "ci_high", "ci_unit"]]
    out = rows.drop(columns=["ci_low", "ci_high"]).merge(
        intervals, on=keys, how="left", validate="one_to_one"
    )
    return out[[*rows.columns, "ci_unit"]]
