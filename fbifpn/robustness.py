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
                reports[name] = _report(scores, settings, saved, model_cfg, frames)
                atomic.write_csv(scores, folder / "scores.csv")
                atomic.write_text(folder / "metrics.json", json.dumps(reports[name], indent=1))
        for name, report in reports.items():
            video = report["metrics"]["video"]
            rows.append(
                {
                    "model": name,
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


def _report(scores: pd.DataFrame, settings: dict, saved: dict, model_cfg: Config, frames: int) -> dict:
    from fbifpn.engine.evaluate import describe_training
    from fbifpn.provenance import git_commit

    kind, level = settings["kind"], settings["level"]
    threshold = float(saved.get("threshold", 0.5))
    videos = metrics.video_scores(scores)
    video = metrics.summary(videos["label"], videos["score"], threshold)
    # AUC's interval only: AP's bootstrap calls scikit-learn once per resample, seconds per condition
    video["auc_ci95"] = metrics.bootstrap_ci(videos, n=model_cfg.eval.bootstrap, seed=model_cfg.train.seed)
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


def video_matrix(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The labels of the videos and their scores under each of `rows`' conditions: (conditions,
    videos), videos in one order for all; an error when the conditions were scored on other videos."""
    tables = [metrics.video_scores(pd.read_csv(path)).set_index("video_id") for path in rows["scores"]]
    ids = tables[0].index
    for path, other in zip(rows["scores"], tables, strict=True):
        if not other.index.equals(ids):
            raise ValueError(f"{path}: scored on other videos than {rows['scores'].iloc[0]}")
    return tables[0]["label"].to_numpy(), np.stack([t["score"].to_numpy() for t in tables])


def paired_robustness(
    rows: pd.DataFrame, model: str, reference: str, n_resamples: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Per perturbation type, and over every perturbed condition ("all"), the mean video AUC over its
    levels of `model` and of `reference`, and their paired difference on the same videos
    (`metrics.compare_auc` over levels x videos); clean first, as the one-condition baseline."""
    out = []
    perturbed = rows[rows["kind"] != "clean"]
    groups = [("clean", rows[rows["kind"] == "clean"])]
    groups += [(kind, g) for kind, g in perturbed.groupby("kind", sort=False)]
    groups += [("all", perturbed)]
    for kind, group in groups:
        a = group[group["model"] == model].sort_values(["kind", "level"])
        b = group[group["model"] == reference].sort_values(["kind", "level"])
        if a.empty or b.empty:
            continue
        if a[["kind", "level"]].values.tolist() != b[["kind", "level"]].values.tolist():
            raise ValueError(f"robustness: {model} and {reference} were not scored under the same conditions")
        labels, scores_a = video_matrix(a)
        labels_b, scores_b = video_matrix(b)
        if not np.array_equal(labels, labels_b):
            raise ValueError(f"robustness: {model} and {reference} were not scored on the same videos")
        test = metrics.compare_auc(labels, scores_a, scores_b, n_resamples=n_resamples, seed=seed)
        out.append(
            {
                "perturbation": kind,
                "levels": ",".join(str(v) for v in a["level"].unique())
                if kind != "all"
                else f"{len(a)} conditions",
                model: a["video_auc"].mean(),
                reference: b["video_auc"].mean(),
                "delta": test["delta"],
                "low": test["low"],
                "high": test["high"],
                "p": test["p"],
                "verdict": "significant at 0.05" if test["p"] < 0.05 else "not significant",
                "videos": test["n"],
            }
        )
    return pd.DataFrame(out)


def robustness_table(
    paired: pd.DataFrame, model: str, reference: str, rows: pd.DataFrame, cfg: Config
) -> str:
    """`paired_robustness` as Markdown, with the protocol it was made under."""
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
            f"best validation {cfg.eval.select_on} of each run; delta = mean AUC({model}) - mean "
            f"AUC({reference}) on the same videos; 95 % paired bootstrap over videos; p: paired "
            "permutation test (a video's scores swapped under every level at once)"
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
            "p": paired["p"],
            "verdict": paired["verdict"],
        }
    )
    return metrics.table(table.to_dict("records"), protocol, list(table.columns), digits=3)
