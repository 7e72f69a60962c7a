"""Score your own files: videos, images and folders of them, with a trained checkpoint.

Per input: each face's score per frame, the video score (mean over frames of the maximum over
faces), the model and checkpoint identity and the time taken. A file that cannot be read becomes an
error entry with its reason and the others still run; a file without a face gets a null score with
a reason. A video with a sidecar of face boxes next to it (as the synthetic benchmark writes) uses it.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm.auto import tqdm

from fbifpn.data.faces import Detector, PrecomputedDetector, box_transform, make_detector, warp_crop
from fbifpn.data.video import evenly_spaced, read_sampled
from fbifpn.engine import checkpoint as ckpt

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


def expand(paths: list[Path]) -> list[Path]:
    """Files as given, and the videos and images inside folders (sorted)."""
    out = []
    for path in map(Path, paths):
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES | IMAGE_SUFFIXES)
        else:
            out.append(path)
    return out


class FaceScorer:
    """A checkpoint, ready to score face crops."""

    def __init__(self, checkpoint: Path, device: str = "cpu", scale: float = 1.3):
        self.model, self.cfg, saved = ckpt.load_model(checkpoint)
        self.model.to(device)
        self.device = device
        self.scale = scale
        self.threshold = float(saved.get("threshold", 0.5))
        self.identity = {
            "checkpoint": str(checkpoint),
            "sha256": hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()[:16],
            "profile": self.cfg.profile,
            "variant": self.cfg.model.variant,
            "backbone": self.cfg.model.backbone.name,
            "val_threshold": self.threshold,
        }

    def crops(
        self, frame: np.ndarray, boxes: list[tuple[float, ...]]
    ) -> tuple[torch.Tensor, list[np.ndarray]]:
        size = self.cfg.data.image_size
        mats = [box_transform(b, self.scale, size) for b in boxes]
        rgb = [cv2.cvtColor(warp_crop(frame, m, size), cv2.COLOR_BGR2RGB) for m in mats]
        x = (np.stack(rgb).astype(np.float32) / 255 - np.asarray(self.model.mean)) / np.asarray(
            self.model.std
        )
        return torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float32)).to(self.device), mats

    @torch.no_grad()
    def score(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        out = self.model(x)
        flipped = self.model(x.flip(-1)) if self.cfg.eval.tta_flip else None
        p = (
            self.model.score(out)
            if flipped is None
            else (self.model.score(out) + self.model.score(flipped)) / 2
        )
        mask = torch.sigmoid(out.mask_logit)[:, 0].cpu().numpy() if out.mask_logit is not None else None
        return p.cpu().numpy(), mask


def _read(path: Path, frames: int) -> tuple[str, dict[int, np.ndarray]]:
    if path.suffix.lower() in IMAGE_SUFFIXES:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise OSError("cannot read the image (corrupt or not an image)")
        return "image", {0: image}
    if path.stat().st_size == 0:
        raise OSError("empty file (0 bytes)")
    cap = cv2.VideoCapture(str(path))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    cap.release()
    if n <= 0:
        raise OSError("cannot decode the video (corrupt, truncated or not a video)")
    decoded = read_sampled(path, evenly_spaced(n, frames))
    if not decoded:
        raise OSError("no frame could be decoded")
    return "video", decoded


def detect_file(
    path: Path, scorer: FaceScorer, frames: int, detector: Detector, overlay: Path | None = None
) -> dict:
    """The result entry of one file (never raises for a bad file: the reason goes in the entry)."""
    start = time.perf_counter()
    entry: dict = {"path": str(path), "model": scorer.identity}
    try:
        if not path.is_file():
            raise OSError("no such file")
        kind, decoded = _read(path, frames)
        sidecar = path.with_suffix(".json")
        finder = PrecomputedDetector(sidecar) if kind == "video" and sidecar.is_file() else detector
        entry |= {"type": kind, "detector": finder.name, "frames": []}
        heat_frames = []
        for i, frame in sorted(decoded.items()):
            faces = finder.detect(frame, i)
            record = {"frame_idx": i, "faces": []}
            if faces:
                x, mats = scorer.crops(frame, [f.box for f in faces])
                probs, masks = scorer.score(x)
                record["faces"] = [
                    {"box": [round(float(v), 1) for v in f.box], "score": float(p)}
                    for f, p in zip(faces, probs, strict=True)
                ]
                if overlay is not None:
                    heat_frames.append(_heat(frame, mats, masks, probs, scorer.cfg.data.image_size))
            elif overlay is not None:
                heat_frames.append(frame)
            entry["frames"].append(record)
        maxima = [max(f["score"] for f in r["faces"]) for r in entry["frames"] if r["faces"]]
        entry["score"] = float(np.mean(maxima)) if maxima else None
        if entry["score"] is None:
            entry["reason"] = "no face found"
        else:
            entry["fake"] = entry["score"] >= scorer.threshold
        if overlay is not None and heat_frames:
            _write_overlay(overlay, heat_frames, kind)
            entry["overlay"] = str(overlay)
    except Exception as e:  # noqa: BLE001 - one bad file must not end the batch; its reason is kept
        entry["error"] = f"{type(e).__name__}: {e}"
        entry["score"] = None
    entry["seconds"] = round(time.perf_counter() - start, 3)
    return entry


def _heat(frame: np.ndarray, mats: list[np.ndarray], masks, probs, size: int) -> np.ndarray:
    """The predicted mask of each face warped back onto the frame, with its score written on it."""
    out = frame.copy()
    for k, m in enumerate(mats):
        if masks is not None:
            heat = cv2.resize(masks[k], (size, size))
            back = cv2.warpAffine(heat, m, (frame.shape[1], frame.shape[0]), flags=cv2.WARP_INVERSE_MAP)
            colour = cv2.applyColorMap((back * 255).astype(np.uint8), cv2.COLORMAP_JET)
            out = np.where(back[..., None] > 0.05, (0.55 * out + 0.45 * colour).astype(np.uint8), out)
        x0, y0 = (np.linalg.inv(np.vstack([m, [0, 0, 1]])) @ np.array([0, 0, 1]))[:2]
        cv2.putText(
            out,
            f"fake {probs[k]:.2f}",
            (int(x0), max(12, int(y0))),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
    return out


def _write_overlay(path: Path, frames: list[np.ndarray], kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "image":
        cv2.imwrite(str(path), frames[0])
        return
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()


def detect(
    paths: list[Path],
    checkpoint: Path,
    frames: int = 32,
    detector: str = "mtcnn",
    overlay: Path | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> list[dict]:
    """Score every file; `overlay` names the PNG / MP4 for a single input, or a folder for several."""
    scorer = FaceScorer(Path(checkpoint), device)
    finder = make_detector(detector)  # built once: MTCNN takes a while
    files = expand(paths)
    results = []
    for path in tqdm(files, desc="detect", unit="file", disable=not progress or len(files) < 2):
        target = None
        if overlay is not None:
            target = (
                Path(overlay)
                if len(files) == 1
                else Path(overlay)
                / (path.stem + (".png" if path.suffix.lower() in IMAGE_SUFFIXES else ".mp4"))
            )
        results.append(detect_file(path, scorer, frames, finder, target))
    return results
