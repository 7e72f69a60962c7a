"""How a detector holds up when its test videos are degraded (DeeperForensics-1.0's seven
perturbations, `fbifpn.data.perturb`), and whether two detectors differ in that.

Every model is scored on the same test videos, and the same frames of them, under every (type,
level) and clean. The perturbations act on the saved face crops, each face's crops of a video as one
sequence (video compression re-encodes it), not on the frames before face detection: what is measured
is the detector, with the same faces in every condition, not the face finder. Each evaluation is
written beside its checkpoint (`<run>/robust-<test set>/<type>-<level>/scores.csv, metrics.json`) and
read back while it is newer than the checkpoint and was made on the same videos, frames and seed; so
`make figures` re-renders without scoring anything.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from fbifpn import atomic, metrics
from fbifpn.config import Config
from fbifpn.data.dataset import FrameDataset
from fbifpn.data.manifest import load_manifest
from fbifpn.data.perturb import LABELS, VERSION, parameter, perturb_crop, perturb_rng, perturb_track
from fbifpn.metrics import Protocol

CLEAN = ("clean", 0)
SPLIT = "test"


def conditions(kinds, levels) -> list[tuple[str, int]]:
    """Clean first, then every (type, level)."""
    return [CLEAN] + [(kind, int(level)) for kind in kinds for level in levels]


def chosen_videos(manifest: pd.DataFrame, count: int = 0, seed: int = 0, split: str = SPLIT) -> list[str]:
    """The ids of the test videos scored: all of them (count 0), or `count` of them, half reals and
    half fakes, the fakes taken from each method in turn, each group in a seeded random order. Fixed
    by the seed alone, never by any score."""
    videos = manifest[manifest["split"] == split].drop_duplicates("video_id")
    if videos.empty:
        raise ValueError(f"robustness: the manifest has no {split} videos")
    if not count or count >= len(videos):
        return sorted(videos["video_id"])
    rng = np.random.default_rng(seed)

    def shuffled(ids) -> list[str]:
        ids = sorted(ids)
        return [ids[i] for i in rng.permutation(len(ids))]

    reals = shuffled(videos.loc[videos["label"] == 0, "video_id"])
    fakes = videos[videos["label"] == 1]
    by_method = [shuffled(g["video_id"]) for _, g in sorted(fakes.groupby("method"))]
    round_robin = [
        ids[i] for i in range(max(map(len, by_method), default=0)) for ids in by_method if i < len(ids)
    ]
    n_reals = min(len(reals), count // 2)
    chosen = reals[:n_reals] + round_robin[: count - n_reals]
    return sorted(chosen)


class PerturbedFrames(FrameDataset):
    """The eval dataset of a manifest, every crop read through one perturbation at one level
    (`kind` "clean" with level 0: the crops as they are). Random draws come from
    `perturb.perturb_rng`: the same on every run and in every DataLoader worker. Video compression
    encodes the crops of one face of one video (the manifest's, in frame order) together, and keeps
    the current video's encoded tracks for its next frames and faces."""

    def __init__(self, manifest, *args, kind: str, level: int, perturb_seed: int = 0, **kwargs):
        if (kind, level) != CLEAN:
            parameter(kind, level)  # an unknown type or level fails here, before any crop is read
        super().__init__(manifest, *args, **kwargs)
        self.kind, self.level, self.perturb_seed = kind, level, perturb_seed
        self._by_id = {rows["video_id"].iloc[0]: rows for rows in self.videos}
        self._video: str | None = None
        self._tracks: dict[int, dict[int, np.ndarray]] = {}  # face -> frame -> encoded crop

    def _rng(self, row) -> np.random.Generator:
        return perturb_rng(
            self.perturb_seed, self.kind, self.level, row["video_id"], row["frame_idx"], row["face_idx"]
        )

    def read(self, row: pd.Series) -> np.ndarray | None:
        if self.kind == "clean" or self.level == 0:
            return super().read(row)
        if self.kind == "video":
            return self._from_track(row)
        image = super().read(row)
        return None if image is None else perturb_crop(image, self.kind, self.level, self._rng(row))

    def _from_track(self, row: pd.Series) -> np.ndarray | None:
        if self._video != row["video_id"]:
            self._video, self._tracks = row["video_id"], {}
        face = int(row["face_idx"])
        if face not in self._tracks:
            rows = self._by_id[row["video_id"]]
            track = rows[rows["face_idx"] == face].sort_values("frame_idx")
            crops = {int(r["frame_idx"]): super(PerturbedFrames, self).read(r) for _, r in track.iterrows()}
            crops = {frame: crop for frame, crop in crops.items() if crop is not None}  # unreadable: left out
            encoded = (
                perturb_track(list(crops.values()), self.kind, self.level, self._rng(row)) if crops else []
            )
            self._tracks[face] = dict(zip(crops, encoded, strict=True))
        return self._tracks[face].get(int(row["frame_idx"]))


def evaluation_folder(checkpoint: Path, test: str, kind: str, level: int) -> Path:
    return Path(checkpoint).parent / f"robust-{test}" / f"{kind}-{level}"


def _settings(checkpoint, manifest, videos, frames, seed, kind, level) -> dict:
    """What one robustness evaluation was made from; a saved one is reused only when all agree."""
    return {
        "checkpoint": str(Path(checkpoint).resolve()),
        "manifest": str(Path(manifest).resolve()),
        "split": SPLIT,
        "videos": len(videos),
        "videos_crc32": zlib.crc32("\n".join(videos).encode()),
        "frames_per_video": frames,
        "perturb_seed": seed,
        "perturb_version": VERSION,
        "kind": kind,
        "level": level,
        "parameter": parameter(kind, level) if kind != "clean" else None,
    }


def _saved(folder: Path, settings: dict, checkpoint: Path) -> dict | None:
    saved = folder / "metrics.json"
    if not (saved.is_file() and (folder / "scores.csv").is_file()):
        return None
    if saved.stat().st_mtime <= Path(checkpoint).stat().st_mtime:
        return None
    report = json.loads(saved.read_text())
    return report if report.get("settings") == settings else None


def robustness(
    cfg: Config, models: dict[str, Path], test: str, manifest: Path, progress: bool = True
) -> pd.DataFrame:
    """Every model of `models` (name -> checkpoint) on the test split of `manifest` (named `test`)
    under clean and every (type, level) of `cfg.notebooks`: one row per model and condition, with
    its video AUC, 95 % bootstrap interval and the path of its frame scores. Each condition's crops are
    perturbed once, for all the models that still need it."""
    from fbifpn.engine import checkpoint as ckpt
    from fbifpn.engine.device import resolve_device
    from fbifpn.engine.evaluate import predict
    from fbifpn.experiments import FIGURES_ONLY

    book = cfg.notebooks
    manifest = Path(manifest)
    table = load_manifest(manifest)
    videos = chosen_videos(table, book.robustness_videos, cfg.train.seed)
    frames = book.robustness_frames or cfg.eval.frames_per_video
    subset = table[table["video_id"].isin(videos)]
    families = subset.drop_duplicates("video_id").set_index("video_id")["family"]
    device = resolve_device(cfg.train.device)
    loaded: dict[str, tuple] = {}
    rows = []
    grid = conditions(book.robustness_kinds, book.robustness_levels)
    for kind, level in tqdm(grid, desc="robustness", unit="condition", disable=not progress):
        reports, pending = {}, {}
        for name, checkpoint in models.items():
            folder = evaluation_folder(checkpoint, test, kind, level)
            settings = _settings(checkpoint, manifest, videos, frames, cfg.train.seed, kind, level)
            reports[name] = _saved(folder, settings, checkpoint)
            if reports[name] is None:
                pending[name] = (folder, settings)
        if pending and os.environ.get(FIGURES_ONLY) == "1":
            folder = next(iter(pending.values()))[0]
            raise FileNotFoundError(
                f"{folder}: no saved robustness evaluation, and figures only were asked for "
                "(run notebooks/07_robustness.ipynb, or make demo)"
            )
        by_form: dict[tuple, list[str]] = {}  # models that read one input format share its crops
        for name in pending:
            if name not in loaded:
                loaded[name] = ckpt.load_model(models[name])
                loaded[name][0].to(device)
            model, model_cfg, _ = loaded[name]
            by_form.setdefault((model_cfg.data.image_size, tuple(model.mean), tuple(model.std)), []).append(
                name
            )
        for (size, mean, std), names in by_form.items():
            dataset = PerturbedFrames(
                subset,
                size,
                mean,
                std,
                split=SPLIT,
                frames_per_video=frames,
                strict=loaded[names[0]][1].data.strict,
                kind=kind,
                level=level,
                perturb_seed=cfg.train.seed,
            )
            # one pass over the perturbed crops, each batch scored by every model, then dropped
            parts: dict[str, list[pd.DataFrame]] = {name: [] for name in names}
            for batch in _loader(dataset, cfg):
                for name in names:
                    model, model_cfg, _ = loaded[name]
                    scored = predict(
                        model,
                        [batch],
                        device,
                        tta_flip=model_cfg.eval.tta_flip,
                        progress=False,
                        channels_last=model_cfg.train.channels_last,
                    )
                    parts[name].append(scored)
            for name in names:
                folder, settings = pending[name]
                scores = pd.concat(parts[name], ignore_index=True)
                scores = scores.drop_duplicates(["video_id", "frame_idx", "face_idx"])
                _, model_cfg, saved = loaded[name]
                reports[name] = _report(scores, settings, saved, model_cfg, frames, families)
                atomic.write_csv(scores, folder / "scores.csv")
                atomic.write_text(folder / "metrics.json", json.dumps(reports[name], indent=1))
        for name, report in reports.items():
            video = report["metrics"]["video"]
            rows.append(
                {
                    "model": name,
                    "checkpoint": str(models[name]),
                    "test": test,
                    "kind": kind,
                    "level": level,
                    "parameter": report["settings"]["parameter"],
                    "video_auc": video["auc"],
                    "ci_low": video["auc_ci95"][0],
                    "ci_high": video["auc_ci95"][1],
                    "frame_auc": report["metrics"]["frame"]["auc"],
                    "videos": video["n"],
                    "scores": str(evaluation_folder(models[name], test, kind, level) / "scores.csv"),
                }
            )
    return pd.DataFrame(rows)


def _loader(dataset: FrameDataset, cfg: Config):
    """Batches no larger than an equal share per worker: a condition's perturbing (x264 above all)
    then runs on every worker at once, where full eval batches would leave one worker with it all."""
    import math

    import torch

    workers = cfg.data.num_workers
    share = math.ceil(len(dataset) / workers) if workers else len(dataset)
    return torch.utils.data.DataLoader(
        dataset, batch_size=max(1, min(cfg.eval.batch_size, share)), num_workers=workers
    )


def _report(
    scores: pd.DataFrame, settings: dict, saved: dict, model_cfg: Config, frames: int, families: pd.Series
) -> dict:
    from fbifpn.engine.evaluate import describe_training
    from fbifpn.provenance import git_commit

    kind, level = settings["kind"], settings["level"]
    threshold = float(saved.get("threshold", 0.5))
    videos = metrics.video_scores(scores)
    video = metrics.summary(videos["label"], videos["score"], threshold)
    # AUC's interval only: AP's bootstrap calls scikit-learn once per resample, seconds per condition
    video["auc_ci95"] = metrics.bootstrap_ci(
        videos,
        n=model_cfg.eval.bootstrap,
        seed=model_cfg.train.seed,
        families=videos["video_id"].map(families),
    )
    video["ci_unit"] = "family"
    return {
        "settings": settings,
        "metrics": {
            "frame": metrics.summary(scores["label"], scores["score"], threshold),
            "video": video,
            "per_method_video_auc": metrics.per_method(videos),
        },
        "condition": "clean"
        if kind == "clean"
        else f"{LABELS[kind]}, level {level} ({settings['parameter']:g})",
        "train_data": describe_training(model_cfg),
        "frames_per_video": frames,
        "git_commit": git_commit(),
    }


def robustness_scores(
    rows: pd.DataFrame, families: dict[str, str], runs_root: Path | None = None
) -> pd.DataFrame:
    """The per-video scores behind `robustness`'s rows: comparisons.SCORE_COLUMNS with the model as
    `variant`, plus each row's perturbation `kind` and `level`. `families` maps each video id to
    its family (from the test manifest)."""
    from fbifpn.comparisons import SCORE_COLUMNS, relative_run
    from fbifpn.engine import checkpoint as ckpt
    from fbifpn.experiments import trained_steps

    parts, trained = [], {}
    for row in rows.to_dict("records"):
        videos = metrics.video_scores(pd.read_csv(row["scores"]))
        checkpoint = Path(row["checkpoint"])
        if checkpoint not in trained:  # a checkpoint is read (and its digest checked) once
            trained[checkpoint] = ckpt.load(checkpoint)
        saved = trained[checkpoint]
        parts.append(
            videos.assign(
                run=relative_run(checkpoint.parent, runs_root),
                variant=row["model"],
                seed=int(saved["config"]["train"]["seed"]),
                steps=trained_steps(checkpoint),
                test=row["test"],
                family=[_family(families, v, row["scores"]) for v in videos["video_id"]],
                kind=row["kind"],
                level=int(row["level"]),
            )[[*SCORE_COLUMNS, "kind", "level"]]
        )
    return pd.concat(parts, ignore_index=True)


def _family(families: dict[str, str], video: str, where: str) -> str:
    if video not in families:
        raise ValueError(f"{where}: video {video} is not in the test manifest, so it has no family")
    return families[video]


def video_matrix(scores: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """One model's videos (id-indexed, with label and family) and its scores under each of its
    conditions (conditions, videos), in (kind, level) order, videos in one order for all; an error
    naming the condition when one was scored on other videos."""
    groups = scores.groupby(["kind", "level"], sort=True)
    tables = {condition: g.set_index("video_id").sort_index() for condition, g in groups}
    (first_condition, first), *_ = tables.items()
    for condition, other in tables.items():
        if not other.index.equals(first.index):
            raise ValueError(f"robustness: {condition} was scored on other videos than {first_condition}")
    return first[["label", "family"]], np.stack([t["score"].to_numpy(float) for t in tables.values()])


def paired_robustness(
    scores: pd.DataFrame, model: str, reference: str, n_resamples: int = 9999, seed: int = 0
) -> pd.DataFrame:
    """Per perturbation type, and over every perturbed condition ("all"), the mean video AUC over its
    levels of `model` and of `reference`, and their paired difference on the same videos
    (`stats.compare_auc` over levels x videos, resampling families and swapping the models on whole
    families under every level at once); clean first, as the one-condition baseline. `scores` is
    `robustness_scores`' table. The rows are one family of tests, adjusted together by Holm."""
    from fbifpn import stats
    from fbifpn.comparisons import adjust

    stats.check_resamples(n_resamples)
    out = []
    perturbed = scores[scores["kind"] != "clean"]
    groups = [("clean", scores[scores["kind"] == "clean"])]
    groups += [(kind, g) for kind, g in perturbed.groupby("kind", sort=False)]
    groups += [("all", perturbed)]
    for kind, group in groups:
        a, b = group[group["variant"] == model], group[group["variant"] == reference]
        if a.empty or b.empty:
            continue
        conditions_a = sorted(set(zip(a["kind"], a["level"], strict=True)))
        if conditions_a != sorted(set(zip(b["kind"], b["level"], strict=True))):
            raise ValueError(f"robustness: {model} and {reference} were not scored under the same conditions")
        videos, scores_a = video_matrix(a)
        videos_b, scores_b = video_matrix(b)
        if not videos.index.equals(videos_b.index):
            raise ValueError(f"robustness: {model} and {reference} were not scored on the same videos")
        labels, families = videos["label"].to_numpy(int), videos["family"].to_numpy()
        test = stats.compare_auc(
            labels, scores_a, scores_b, families=families, n_resamples=n_resamples, seed=seed
        )
        out.append(
            {
                "perturbation": kind,
                "levels": ",".join(str(v) for v in sorted(a["level"].unique()))
                if kind != "all"
                else f"{len(conditions_a)} conditions",
                model: float(np.mean([stats.rank_auc(labels, x) for x in scores_a])),
                reference: float(np.mean([stats.rank_auc(labels, x) for x in scores_b])),
                "delta": test["delta"],
                "low": test["low"],
                "high": test["high"],
                "p": test["p"],
                "agree": test["agree"],
                "unit": test["unit"],
                "units": test["units"],
                "videos": test["n"],
            }
        )
    return adjust(pd.DataFrame(out), n_resamples)


def robustness_table(
    paired: pd.DataFrame, model: str, reference: str, rows: pd.DataFrame, cfg: Config
) -> str:
    """`paired_robustness` as Markdown, with the protocol it was made under."""
    from fbifpn import stats
    from fbifpn.engine.evaluate import describe_training

    book = cfg.notebooks
    first = json.loads((Path(rows["scores"].iloc[0]).parent / "metrics.json").read_text())
    protocol = Protocol(
        train_data=describe_training(cfg),
        test_data=f"{first['settings']['manifest']} [test split], {paired['videos'].iloc[0]} videos, "
        f"{first['frames_per_video']} frames each, perturbed crops (levels {', '.join(map(str, book.robustness_levels))})",
        compression="as prepared, then each perturbation",
        level="video (mean of frame scores, max over faces); AUC averaged over the levels of each type",
        selection=(
            f"best validation {cfg.eval.select_on} of each run; one seed of each model: a difference "
            f"between two trained networks; delta = mean AUC({model}) - mean AUC({reference}) on the "
            f"same videos ({_units(paired)}); 95 % paired BCa bootstrap over families; p: paired "
            "permutation test swapping the models on whole families under every level at once "
            f"({int(paired['n_resamples'].iloc[0])} resamples each); Holm over the {len(paired)} rows, "
            "the verdict reads the adjusted p"
        ),
    )
    table = pd.DataFrame(
        {
            "perturbation": [LABELS.get(k, k) for k in paired["perturbation"]],
            "levels": paired["levels"],
            f"AUC {model}": paired[model],
            f"AUC {reference}": paired[reference],
            "ΔAUC": paired["delta"],
            "95 % CI": [
                f"[{lo:+.3f}, {hi:+.3f}]" for lo, hi in zip(paired["low"], paired["high"], strict=True)
            ],
            "p": [stats.format_p(p, int(n)) for p, n in zip(paired["p"], paired["n_resamples"], strict=True)],
            "p (Holm)": [stats.format_p(p) for p in paired["p_holm"]],
            "verdict": [
                v + (f"; {n}" if n else "") for v, n in zip(paired["verdict"], paired["note"], strict=True)
            ],
        }
    )
    return metrics.table(table.to_dict("records"), protocol, list(table.columns), digits=3)


def _units(paired: pd.DataFrame) -> str:
    from fbifpn.comparisons import units_text

    row = paired.iloc[0]
    return units_text(row["unit"], row["units"], row["videos"])
