"""Score your own files: videos, images and folders of them, with a trained checkpoint.

Per input: each face's score per frame, the video score (mean over frames of the maximum over
faces), the model and checkpoint identity and the time taken. Faces are cut as prep cut the
checkpoint's training crops (its recorded prep options: crop size, scale, alignment) and scored as
`eval` scores a manifest (the dataset's eval transform, then `score_images`), so the same face gets
the same score here as through prep and eval. A file that cannot be read becomes an
error entry with its reason and the others still run; a file without a face gets a null score with
a reason, and so does a folder without any video or image. A video with a sidecar of face boxes next
to it (as the synthetic benchmark writes) uses it; a JSON there of another shape is ignored with a
warning. Output paths are checked before any work, every write is checked, and results reach the JSON
file as they go (`FILE.partial`, one line per input) and atomically at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm.auto import tqdm

from fbifpn import atomic
from fbifpn.calibration import apply, checked, temperature_of
from fbifpn.data.cache import synthetic_prep_options
from fbifpn.data.dataset import model_input
from fbifpn.data.faces import Face, FaceDetector, PrecomputedDetector, SidecarError, make_detector
from fbifpn.data.prep import CROP_GEOMETRY, PrepOptions, crop_face, recorded_options
from fbifpn.data.video import evenly_spaced, read_sampled
from fbifpn.engine import checkpoint as ckpt
from fbifpn.engine.device import resolve_device
from fbifpn.engine.evaluate import score_images
from fbifpn.paths import writable_dir, writable_file

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
# What the overlay writers can produce: OpenCV's image codecs, and mp4v in the containers that take it
# (not .webm, which wants VP8/VP9).
OVERLAY_SUFFIXES = {
    "image": (".png", ".jpg", ".jpeg", ".bmp", ".webp"),
    "video": (".mp4", ".avi", ".mkv", ".mov"),
}
NO_MEDIA = "no video or image in this folder (looked for {})".format(
    ", ".join(sorted(VIDEO_SUFFIXES) + sorted(IMAGE_SUFFIXES))
)


def expand(paths: list[Path]) -> list[Path]:
    """Files as given, and the videos and images inside folders (sorted). A folder without any stays
    in the list as itself, so that it gets an entry saying why nothing in it was scored."""
    out = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES | IMAGE_SUFFIXES)
            out += found or [path]
        else:
            out.append(path)
    once: dict[Path, Path] = {}  # the same path given twice (or inside a given folder) is one input
    for p in out:
        once.setdefault(Path(os.path.abspath(p)), p)
    return list(once.values())


def kind_of(path: Path) -> str:
    """`image` or `video`, as `_read` will treat the file (anything not an image is tried as a video)."""
    return "image" if path.suffix.lower() in IMAGE_SUFFIXES else "video"


def checkpoint_prep_options(saved: dict, path: Path) -> PrepOptions | None:
    """The prep options a checkpoint's training crops were cut with (its `prep` key, which fit
    writes from the manifest's record), or None where it records none: a checkpoint from before
    they were recorded, or one trained on ready-made crops."""
    record = saved.get(ckpt.PREP)
    if record is None:
        return None
    try:
        return PrepOptions(**record)
    except (TypeError, ValueError) as e:
        raise ckpt.CheckpointError(
            f"{path}: refused, its prep options {record!r} are not valid: {e}"
        ) from None


def training_crops(saved: dict, cfg, path: Path) -> tuple[PrepOptions, str]:
    """How a checkpoint's training crops were cut, and where that is known from: its own record
    (`checkpoint`); for one saved before checkpoints carried it, the record beside its config's
    manifest (`manifest`), or the options the synthetic benchmark is always prepared with
    (`synthetic benchmark`); else prep's defaults (`defaults`), which may not be how it trained."""
    if (recorded := checkpoint_prep_options(saved, path)) is not None:
        return recorded, "checkpoint"
    if not cfg.data.manifest:
        return synthetic_prep_options(cfg), "synthetic benchmark"
    if (beside := recorded_options(cfg.data.manifest)) is not None:
        return beside, "manifest"
    return PrepOptions(), "defaults"


def calibration_of(saved: dict, method: str) -> dict | None:
    """The checkpoint's calibration map of `method` (`eval.calibration`); for a checkpoint saved
    before it held Platt and isotonic maps, its temperature (said so); None when it holds neither."""
    stored = checked((saved.get("calibrations") or {}).get(method))
    if stored is not None:
        return stored
    temperature = temperature_of(saved)
    if temperature is None:
        return None
    if method != "temperature":
        warnings.warn(
            f"the checkpoint holds no usable {method} calibration (saved before checkpoints held one, "
            "or not one that gives probabilities): its probabilities use its temperature instead",
            stacklevel=3,
        )
    return {"method": "temperature", "temperature": temperature}


def video_probability(entry: dict, calibration: dict) -> float:
    """A temperature acts on face logits, so the video's probability aggregates its faces' as the
    score does; Platt and isotonic maps were fitted on video scores and map the video's score."""
    if calibration["method"] != "temperature":
        return float(apply(calibration, [entry["score"]])[0])
    maxima = [max(f["probability"] for f in r["faces"]) for r in entry["frames"] if r["faces"]]
    return float(np.mean(maxima))


class FaceScorer:
    """A checkpoint, ready to cut and score faces as its training and `eval` did."""

    def __init__(self, checkpoint: Path, device: str = "cpu"):
        self.model, self.cfg, saved = ckpt.load_model(checkpoint)
        self.model.to(device)
        self.channels_last = self.cfg.train.channels_last
        if self.channels_last:  # as eval runs it, so that both compute the same sums
            self.model.to(memory_format=torch.channels_last)
        self.device = device
        self.threshold = float(saved.get("threshold", 0.5))
        self.calibration = calibration_of(saved, self.cfg.eval.calibration)  # None: uncalibrated
        self.prep_options, source = training_crops(saved, self.cfg, checkpoint)
        geometry = {k: getattr(self.prep_options, k) for k in CROP_GEOMETRY}
        if source == "defaults":
            defaults = ", ".join(f"{k}={v!r}" for k, v in geometry.items())
            warnings.warn(
                f"{checkpoint}: records no prep options (saved before checkpoints carried them, or "
                f"trained on ready-made crops), so faces are cut with prep's defaults ({defaults}); "
                "if its training crops were cut otherwise, its scores here are not those of eval",
                stacklevel=2,
            )
        self.identity = {
            "checkpoint": str(checkpoint),
            "sha256": hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()[:16],
            "profile": self.cfg.profile,
            "variant": self.cfg.model.variant,
            "backbone": self.cfg.model.backbone.name,
            "val_threshold": self.threshold,
            "calibration": self.calibration,
            "crop": geometry | {"source": source},
        }

    def crop(self, frame: np.ndarray, face: Face) -> tuple[np.ndarray, np.ndarray]:
        """The face as prep would have written it for this checkpoint, and its frame-to-crop matrix.
        ValueError: landmarks too degenerate to align."""
        return crop_face(frame, face, self.prep_options)

    def inputs(self, crops: list[np.ndarray]) -> torch.Tensor:
        """Crops as the model's input batch, through the dataset's eval transform."""
        size, mean, std = self.cfg.data.image_size, self.model.mean, self.model.std
        return torch.stack([model_input(c, size, mean, std) for c in crops]).to(self.device)

    def score(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """Fake probabilities [B] and predicted masks [B, h, w] (None without a mask head)."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        scores = score_images(self.model, x, self.cfg.eval.tta_flip)
        return scores.score.numpy(), None if scores.mask is None else scores.mask.cpu().numpy()


def _read(path: Path, frames: int | None) -> tuple[str, dict[int, np.ndarray], list[str]]:
    """The kind, the decoded frames by index, and warnings when fewer frames came than were asked."""
    if kind_of(path) == "image":
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise OSError("cannot read the image (corrupt or not an image)")
        return "image", {0: image}, []
    if path.stat().st_size == 0:
        raise OSError("empty file (0 bytes)")
    cap = cv2.VideoCapture(str(path))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    cap.release()
    if n <= 0:
        raise OSError("cannot decode the video (corrupt, truncated or not a video)")
    wanted = evenly_spaced(n, frames)
    decoded = read_sampled(path, wanted)
    if not decoded:
        raise OSError("no frame could be decoded")
    # A score over 4 frames is not a score over 32: say so, rather than let it pass for a full one.
    warnings = []
    if frames is not None and n < frames:
        warnings.append(f"the video has {n} frames, fewer than the {frames} asked")
    if len(decoded) < len(wanted):
        warnings.append(
            f"only {len(decoded)} of {len(wanted)} sampled frames could be decoded (truncated video?)"
        )
    return "video", decoded, warnings


def detect_file(
    path: Path, scorer: FaceScorer, frames: int, detector: FaceDetector, overlay: Path | None = None
) -> dict:
    """The result entry of one file (never raises for a bad file: the reason goes in the entry)."""
    start = time.perf_counter()
    path = Path(path)
    entry: dict = {"path": str(path), "model": scorer.identity, "warnings": []}
    if path.is_dir():  # only a folder without media reaches here (see expand)
        entry |= {"error": NO_MEDIA, "score": None}
        entry["seconds"] = round(time.perf_counter() - start, 3)
        return entry
    heat_frames: list[np.ndarray] | None = [] if overlay is not None else None
    try:
        if not path.exists():
            raise OSError("no such file")
        if not path.is_file():
            raise OSError("not a regular file (a FIFO, a device or a socket)")
        kind, decoded, warnings = _read(path, frames)
        entry["warnings"] += warnings
        finder = detector
        sidecar = path.with_suffix(".json")
        if kind == "video" and sidecar.is_file():
            # Any tool may leave a clip.json next to clip.mp4; only one of the sidecar's shape counts.
            try:
                finder = PrecomputedDetector(sidecar)
            except SidecarError as e:
                entry["warnings"].append(f"{e}; faces found by {detector.name} instead")
        entry |= {"type": kind, "detector": finder.name, "frames": []}
        for i, frame in sorted(decoded.items()):
            faces, crops, mats = [], [], []
            for face in finder.detect(frame, i):
                try:
                    crop, matrix = scorer.crop(frame, face)
                except ValueError as e:  # one face that cannot be aligned costs only its own score
                    entry["warnings"].append(f"frame {i}: face at {_rounded(face.box)} not scored: {e}")
                    continue
                faces.append(face)
                crops.append(crop)
                mats.append(matrix)
            record = {"frame_idx": i, "faces": []}
            if faces:
                probs, masks = scorer.score(scorer.inputs(crops))
                record["faces"] = [
                    {"box": _rounded(f.box), "score": float(p)} for f, p in zip(faces, probs, strict=True)
                ]
                if heat_frames is not None:
                    heat_frames.append(_heat(frame, mats, masks, probs, scorer.prep_options.size))
            elif heat_frames is not None:
                heat_frames.append(frame)
            entry["frames"].append(record)
        maxima = [max(f["score"] for f in r["faces"]) for r in entry["frames"] if r["faces"]]
        entry["score"] = float(np.mean(maxima)) if maxima else None
        if entry["score"] is None:
            entry["reason"] = "no face found"
        else:
            entry["fake"] = entry["score"] >= scorer.threshold
            if scorer.calibration is not None:
                faces = [f for r in entry["frames"] for f in r["faces"]]
                for face, p in zip(
                    faces, apply(scorer.calibration, [f["score"] for f in faces]), strict=True
                ):
                    face["probability"] = float(p)
                entry["probability"] = video_probability(entry, scorer.calibration)
                entry["calibration"] = scorer.calibration["method"]
    except Exception as e:  # noqa: BLE001 - one bad file must not end the batch; its reason is kept
        entry["error"] = f"{type(e).__name__}: {e}"
        entry["score"] = None
        heat_frames = None
    if heat_frames:
        # Apart from the scoring: a picture that cannot be saved must not cost the score.
        try:
            _write_overlay(overlay, heat_frames, entry["type"])
            entry["overlay"] = str(overlay)
        except Exception as e:  # noqa: BLE001 - the reason is kept in the entry
            entry["overlay_error"] = f"{type(e).__name__}: {e}"
    entry["seconds"] = round(time.perf_counter() - start, 3)
    return entry


def _rounded(box: tuple[float, ...]) -> list[float]:
    return [round(float(v), 1) for v in box]


def _heat(frame: np.ndarray, mats: list[np.ndarray], masks, probs, size: int) -> np.ndarray:
    """The predicted mask of each face warped back onto the frame (`mats` map the frame to crops of
    side `size`), with its score written on it."""
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


# --------------------------------------------------------------------------- writing


def _check_overlay_suffix(path: Path, kind: str) -> None:
    allowed = OVERLAY_SUFFIXES[kind]
    if path.suffix.lower() not in allowed:
        article = "an" if kind == "image" else "a"
        found = f"not {path.suffix}" if path.suffix else "it has no suffix"
        raise ValueError(
            f"--overlay {path}: {article} {kind} overlay must end in one of {', '.join(allowed)} ({found})"
        )


def _write_overlay(path: Path, frames: list[np.ndarray], kind: str) -> None:
    """Write the overlay or raise with the reason; OpenCV reports failures by return values only."""
    _check_overlay_suffix(path, kind)
    if kind == "image":
        atomic.write_image(path, frames[0])
        return
    with atomic.replacing(path) as tmp:
        h, w = frames[0].shape[:2]
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), 5, (w, h))
        if not writer.isOpened():
            raise OSError(f"{path}: OpenCV cannot open a {path.suffix} video for writing")
        try:
            for f in frames:
                writer.write(f)
        finally:
            writer.release()
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise OSError(f"{path}: the writer reported success but left no data (disk full?)")


def overlay_targets(paths: list[Path], files: list[Path], overlay: Path | None) -> list[Path | None]:
    """The overlay of each file, after checking that it can be written.

    One file given: `overlay` is its PNG / MP4 (or another suffix of its kind). Otherwise `overlay` is a
    folder that mirrors the files' paths under their common ancestor, with the overlay's suffix added
    to the full name (a/clip.mp4 -> ov/a/clip.mp4.overlay.mp4), so two inputs never share a name.
    """
    if overlay is None:
        return [None] * len(files)
    overlay = Path(overlay)
    if len(paths) == 1 and not Path(paths[0]).is_dir():
        writable_file(overlay, "--overlay")
        _check_overlay_suffix(overlay, kind_of(files[0]))
        return [overlay]
    if overlay.exists() and not overlay.is_dir():
        raise NotADirectoryError(f"--overlay {overlay}: several inputs need a folder, and this is a file")
    writable_dir(overlay, f"--overlay {overlay}")
    # Absolute paths as given, not resolved: a symlink and its target are two inputs, two overlays.
    media = [Path(os.path.abspath(p)) for p in files if p.is_file()]
    if not media:
        return [None] * len(files)
    root = Path(os.path.commonpath([p.parent for p in media]))
    ext = {"image": ".overlay.png", "video": ".overlay.mp4"}
    return [
        overlay / f"{Path(os.path.abspath(p)).relative_to(root)}{ext[kind_of(p)]}" if p.is_file() else None
        for p in files
    ]


def writable_target(path: Path, what: str, protected: set[Path]) -> Path:
    """Where writing `path` may go: through a symlink to the file it names, never onto a device, a
    FIFO or a folder (a rename would replace them), and never onto an input or the checkpoint."""
    real = Path(os.path.realpath(path))
    if real.exists() and not real.is_file():
        raise ValueError(f"{what} {path}: exists and is not a regular file; refusing to replace it")
    if real in protected:
        raise ValueError(f"{what} {path}: is one of the inputs (or the checkpoint); refusing to overwrite it")
    return real


def detect(
    paths: list[Path],
    checkpoint: Path,
    frames: int = 32,
    detector: str = "mtcnn",
    overlay: Path | None = None,
    device: str = "cpu",
    progress: bool = True,
    json_out: Path | None = None,
) -> list[dict]:
    """Score every file; `overlay` names the PNG / MP4 for a single input, or a folder for several.

    With `json_out`, each entry is appended to `json_out.partial` (one JSON line) as soon as its file
    is done, so a run that dies keeps what it finished; the full list then replaces `json_out`
    atomically and the .partial goes. Output paths are checked first: a bad one raises OSError /
    ValueError before the checkpoint is loaded.
    """
    files = expand(paths)
    protected = {Path(os.path.realpath(p)) for p in [*files, checkpoint]}
    targets = [
        None if t is None else writable_target(t, "--overlay", protected)
        for t in overlay_targets(list(paths), files, overlay)
    ]
    if len({t for t in targets if t is not None}) < sum(t is not None for t in targets):
        raise ValueError("--overlay: two inputs would share one overlay file")  # mirrored names prevent it
    partial_path = None
    if json_out is not None:
        writable_file(json_out, "--json")
        json_out = writable_target(Path(json_out), "--json", protected)
        partial_path = writable_target(json_out.with_name(json_out.name + ".partial"), "--json", protected)
    scorer = FaceScorer(Path(checkpoint), str(resolve_device(device)))
    finder = make_detector(detector)  # built once: MTCNN takes a while
    results = []
    with partial_path.open("w") if partial_path is not None else contextlib.nullcontext() as partial:
        for path, target in tqdm(
            list(zip(files, targets, strict=True)),
            desc="detect",
            unit="file",
            disable=not progress or len(files) < 2,
        ):
            entry = detect_file(path, scorer, frames, finder, target)
            results.append(entry)
            if partial is not None:
                partial.write(json.dumps(entry) + "\n")
                partial.flush()
    if json_out is not None:
        atomic.write_text(json_out, json.dumps(results, indent=1))
        partial_path.unlink(missing_ok=True)
    return results
