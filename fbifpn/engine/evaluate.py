"""Scoring crops: one row per crop, with the cls score and the mask-based score; flip TTA."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import torch
from tqdm.auto import tqdm

from fbifpn import atomic, calibration, metrics
from fbifpn.config import with_overrides
from fbifpn.data.dataset import FrameDataset
from fbifpn.data.manifest import load_manifest
from fbifpn.engine import checkpoint as ckpt
from fbifpn.engine.device import resolve_device
from fbifpn.models.net import topk_mean
from fbifpn.paths import writable_dir
from fbifpn.provenance import environment, git_commit


class ImageScores(NamedTuple):
    score: torch.Tensor  # [B] fake probability by model.score's rule, float32 on the CPU
    mask_score: torch.Tensor  # [B] top-k mean of the predicted mask (NaN without a mask head), CPU
    mask: torch.Tensor | None  # [B, H/4, W/4] predicted mask of the unmirrored view, on x's device


@torch.no_grad()
def score_images(
    model,
    x: torch.Tensor,
    tta_flip: bool = False,
    autocast_dtype: torch.dtype | None = None,
) -> ImageScores:
    """The one scoring rule of `predict`, `detect` and the explorer, for a batch of model inputs:
    model.score and the top-k mean of the predicted mask, each averaged over the image and its
    mirror with `tta_flip`. Only the heads these read run: the consistency head is for training."""
    views = [x, x.flip(-1)] if tta_flip else [x]
    scores, mask_scores, mask = [], [], None
    for k, view in enumerate(views):
        with torch.autocast(x.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            out = model(view, heads=("cls", "mask"))
        scores.append(model.score(out).float())
        if out.mask_logit is not None:
            probability = torch.sigmoid(out.mask_logit.float())
            mask_scores.append(topk_mean(probability, model.score_topk))
            if k == 0:
                mask = probability[:, 0]
    score = torch.stack(scores).mean(0).cpu()
    mask_score = (
        torch.stack(mask_scores).mean(0).cpu() if mask_scores else torch.full_like(score, float("nan"))
    )
    return ImageScores(score, mask_score, mask)


@torch.no_grad()
def predict(
    model,
    loader,
    device: torch.device | str = "cpu",
    tta_flip: bool = False,
    progress: bool = True,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    sink: Callable[[list[dict]], None] | None = None,
) -> pd.DataFrame:
    """`model` is a built detector (not DDP-wrapped). Scores are probabilities of fake: `score` is
    the weighted discrimination of `model.score` (the cls probability when beta = 0), `mask_score`
    the top-k mean of the predicted mask (NaN without a mask head); with `tta_flip`, both average
    the image and its mirror. `sink` receives each batch's rows as soon as they are scored."""
    model.eval()
    rows = []
    device = torch.device(device)
    # A bar that never holds the loader: tqdm(loader) keeps the DataLoader iterator (and its worker
    # processes) alive after the loop, and a Jupyter kernel then waited 10 s to reap them later.
    bar = tqdm(total=len(loader), desc="predict", disable=not progress, leave=False)
    for batch in loader:
        bar.update()
        x = batch["image"].to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        score, mask, _ = score_images(model, x, tta_flip, autocast_dtype)
        batch_rows = [
            {
                "dataset": batch["dataset"][i],
                "method": batch["method"][i],
                "video_id": batch["video_id"][i],
                "frame_idx": int(batch["frame_idx"][i]),
                "face_idx": int(batch["face_idx"][i]),
                "label": int(batch["label"][i]),
                "score": float(score[i]),
                "mask_score": float(mask[i]),
            }
            for i in range(len(score))
        ]
        rows += batch_rows
        if sink is not None:
            sink(batch_rows)
    bar.close()
    return pd.DataFrame(rows)


def calibration_report(frames: pd.DataFrame, temperature: float | None) -> dict:
    """Expected calibration error of the raw scores, and of the calibrated probabilities when the
    checkpoint holds a temperature, at frame and video level (video: the scores' own aggregation)."""
    columns = {"raw": "score"} | ({"calibrated": "probability"} if temperature is not None else {})
    return {"temperature": temperature, "bins": calibration.BINS, **calibration.errors(frames, columns)}


def describe_training(cfg) -> str:
    d = cfg.data
    without = f" without {', '.join(d.exclude_methods)}" if d.exclude_methods else ""
    if d.manifest:
        return f"manifest {d.manifest}{without}"
    level = f" {d.compression}" if d.dataset == "synth-ff" else ""
    return f"{d.dataset}{level}{without} (synthetic, {d.synthetic}-seed{d.seed})"


def _selection(checkpoint, saved: dict, cfg) -> str:
    if checkpoint.stem == "best":
        step = f"step {saved['best_step']}, " if saved.get("best_step", -1) >= 0 else ""
        chosen = f"best validation {cfg.eval.select_on} ({step}epoch {saved.get('best_epoch')})"
    else:
        chosen = f"{checkpoint.name} as saved at step {saved.get('step')}, no selection"
    return chosen + "; test never seen in training"


def evaluate_checkpoint(
    checkpoint,
    manifest,
    out,
    split: str = "test",
    frames: int | None = None,
    tta_flip: bool | None = None,
    device: str = "auto",
    progress: bool = True,
    beta: float | None = None,
) -> dict:
    """Score a manifest split with a checkpoint; write scores.csv and metrics.json into `out`.
    `beta` overrides the checkpoint's weighted-discrimination beta (mask evidence in the score)."""
    checkpoint, out = Path(checkpoint), Path(out)
    writable_dir(out, "eval output folder")  # before the work, which an unwritable --out would lose
    model, cfg, saved = ckpt.load_model(checkpoint)
    if beta is not None:  # metrics.json's config then states the beta that scored
        model.beta = beta
        cfg = with_overrides(cfg, {"model.beta": beta})
    dev = resolve_device(device)
    model.to(dev)
    if cfg.train.channels_last:
        model.to(memory_format=torch.channels_last)
    frames = frames or cfg.eval.frames_per_video
    tta = cfg.eval.tta_flip if tta_flip is None else tta_flip
    df = load_manifest(Path(manifest))
    dataset = FrameDataset(
        df,
        cfg.data.image_size,
        model.mean,
        model.std,
        split=split,
        frames_per_video=frames,
        strict=cfg.data.strict,
    )
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=cfg.eval.batch_size, num_workers=cfg.data.num_workers
    )
    # Rows land in scores.partial.csv as they are scored, so an interrupted run keeps what it did;
    # scores.csv and metrics.json then appear whole, or not at all.
    partial = out / "scores.partial.csv"
    partial.unlink(missing_ok=True)

    def sink(rows: list[dict]) -> None:
        pd.DataFrame(rows).to_csv(partial, mode="a", header=not partial.exists(), index=False)

    scores = predict(
        model,
        loader,
        dev,
        tta_flip=tta,
        progress=progress,
        channels_last=cfg.train.channels_last,
        sink=sink,
    )
    scores = scores.drop_duplicates(["video_id", "frame_idx", "face_idx"])  # short videos repeat frames
    # each video's family from the manifest: what statistics on these scores resample together
    family_of = df.drop_duplicates("video_id").set_index("video_id")["family"]
    scores.insert(scores.columns.get_loc("video_id") + 1, "family", scores["video_id"].map(family_of))
    threshold = float(saved.get("threshold", 0.5))
    result = metrics.evaluate_scores(
        scores, threshold=threshold, bootstrap=cfg.eval.bootstrap, seed=cfg.train.seed
    )
    test_sets = sorted(set(scores["dataset"]))
    synthetic = all(s.startswith("synth-") for s in test_sets)
    protocol = metrics.Protocol(
        train_data=describe_training(cfg),
        test_data=", ".join(test_sets) + (" (synthetic)" if synthetic else "") + f" [{split} split]",
        compression=", ".join(
            sorted({c or "as distributed" for c in df[df["split"] == split]["compression"]})
        ),
        level="frame and video (video = mean over frames of the max over faces)",
        selection=_selection(checkpoint, saved, cfg),
    )
    # fitted on the checkpoint's own scores: another beta scores otherwise, so it is not calibrated
    same_beta = beta is None or beta == ckpt.config_of(saved).model.beta
    temperature = calibration.temperature_of(saved) if same_beta else None
    if temperature is not None:  # the raw score stays; the calibrated probability goes beside it
        scores["probability"] = calibration.calibrated(scores["score"], temperature)
    report = {
        "protocol": protocol.__dict__,
        "metrics": result,
        "calibration": calibration_report(scores, temperature),
        "threshold_from_val": threshold,
        "frames_per_video": frames,
        "tta_flip": tta,
        "skipped_rows": dataset.skipped,
        "checkpoint": str(checkpoint),
        "manifest": str(manifest),
        "split": split,
        "beta": beta,
        "score": f"(1 - beta) p_cls + beta topk_mean(mask), beta = {model.beta:g}",
        "git_commit": git_commit(),
        **environment(dev),
        "config": cfg.to_dict(),
    }
    atomic.write_csv(scores, out / "scores.csv")
    atomic.write_text(out / "metrics.json", json.dumps(report, indent=1))
    partial.unlink(missing_ok=True)
    return report
