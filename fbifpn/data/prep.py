"""Preprocessing: videos -> sampled frames -> faces -> crops (+ masks, landmarks) -> manifest.

Each video is one unit of work. Its result (manifest rows, or the reasons it failed) is written
atomically to `parts/<hash>.json` when it is finished, so a run is idempotent and resumable:
finished videos are skipped. The manifest and `prep_report.json` are then rebuilt from the parts of
the run's video list, so an interrupted-then-resumed run gives the same files as an uninterrupted
one. `--shard i/N` takes every N-th video of the sorted list; shard runs write
`manifest.shard-i-of-N.csv`, and `--merge` (or `load_manifest` on the folder) gives their union.

Bad input never stops the run: an unreadable video, a frame that will not decode, a frame without a
face, or a mask video that is missing or has the wrong length is recorded with its reason in the
report, and the other files go on. Crops are PNG: a lossy re-encode would add a second compression
on top of the dataset's own (c23/c40), which is exactly what detectors must not learn from.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from fbifpn import atomic
from fbifpn.config import Range
from fbifpn.data.faces import (
    DetectorUnavailable,
    Face,
    Tracker,
    align_transform,
    box_transform,
    make_detector,
    transform_points,
    warp_crop,
)
from fbifpn.data.manifest import frame
from fbifpn.data.sources.base import VideoEntry, frame_number
from fbifpn.data.video import evenly_spaced, frame_count, read_sampled
from fbifpn.paths import writable_dir


@dataclass(frozen=True)
class PrepOptions:
    frames: int = 32  # sampled per video, evenly spaced
    detector: str = "precomputed"
    size: int = 256  # crop side
    scale: float = 1.3  # crop side / face size
    align: bool = False  # 5-point similarity alignment instead of a box crop
    all_faces: bool = False  # keep every face above min_score, not only the largest
    min_score: float = 0.9
    detect_every: int = 1  # run the detector on every k-th sampled frame; track in between

    def __post_init__(self) -> None:
        bounds = {
            "frames": Range(1),
            "size": Range(1),
            "detect_every": Range(1),
            "scale": Range(0, low_open=True),
        }
        for name, bound in bounds.items():
            if reason := bound.problem(getattr(self, name)):
                raise ValueError(f"prep option {name}: {reason}")


MISSING = "video file not found"
OPTIONS_FILE = "prep_options.json"
# What shapes a crop: a folder whose crops were cut one way must not gain crops cut another way, and
# whatever scores a face later (`detect`, the explorer) must cut it the same way.
CROP_GEOMETRY = ("size", "scale", "align")


def recorded_options(manifest: Path | str) -> PrepOptions | None:
    """The options a manifest's crops were made with: `prep_options.json` in its folder (the folder
    itself, or a manifest CSV's parent). None where prep did not crop them (an index of crops)."""
    manifest = Path(manifest)
    path = (manifest if manifest.is_dir() else manifest.parent) / OPTIONS_FILE
    if not path.is_file():
        return None
    try:
        return PrepOptions(**json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a record of prep options ({e})") from None


def geometry_change(before: dict, now: dict) -> tuple[str, str] | None:
    """How two records of prep options (as dicts) cut crops differently, as ("size=256", "size=128"),
    or None when their crops are cut alike."""
    changed = [k for k in CROP_GEOMETRY if before.get(k) != now.get(k)]
    if not changed:
        return None
    return tuple(", ".join(f"{k}={record.get(k)!r}" for k in changed) for record in (before, now))


def record_options(out: Path, options: PrepOptions) -> None:
    """Write `options` into `out`, or refuse when crops already there were cut another way."""
    before = recorded_options(out)
    if before is not None and (change := geometry_change(asdict(before), asdict(options))):
        was, now = change
        raise ValueError(
            f"{out} holds crops made with {was}; these options ask for {now}. "
            "Prepare into another folder, or pass the same options"
        )
    atomic.write_text(out / OPTIONS_FILE, json.dumps(asdict(options), indent=1))


def part_path(out: Path, video_id: str) -> Path:
    return out / "parts" / f"{hashlib.sha1(video_id.encode()).hexdigest()[:20]}.json"


def _row(entry: VideoEntry, source: str) -> dict:
    return {
        "dataset": entry.dataset,
        "split": entry.split,
        "compression": entry.compression,
        "method": entry.method,
        "label": entry.label,
        "video_id": entry.video_id,
        "family": entry.family,
        "source": source,
    }


def _keep(faces: list[Face], options: PrepOptions) -> list[Face]:
    if options.all_faces:
        return [f for f in faces if f.score >= options.min_score]
    return [max(faces, key=lambda f: f.area)] if faces else []


def _crop_matrix(face: Face, options: PrepOptions) -> np.ndarray:
    if options.align and face.landmarks is not None:
        return align_transform(face.landmarks, options.size, options.scale)
    return box_transform(face.box, options.scale, options.size)


def crop_face(frame: np.ndarray, face: Face, options: PrepOptions) -> tuple[np.ndarray, np.ndarray]:
    """The crop of `face` exactly as prep writes it (options.size square, cut with options.scale and
    options.align; BGR like the frame), and the 2x3 frame-to-crop matrix that also carries the
    face's mask and landmarks. Everything that scores a face (`detect`, the explorer) cuts it here,
    so that a model sees faces as it saw them in training. ValueError: landmarks too degenerate
    to align."""
    matrix = _crop_matrix(face, options)
    return warp_crop(frame, matrix, options.size), matrix


def process_video(entry: VideoEntry, out: Path, options: PrepOptions, detector=None) -> dict:
    """Crop one video's sampled faces; return its part (rows, failures, warnings, counts)."""
    part = {
        "video_id": entry.video_id,
        "split": entry.split,
        "status": "failed",
        "rows": [],
        "failures": [],
        "warnings": [],
        "frames_done": 0,
        "frames_failed": 0,
    }
    path = str(entry.path)

    def fail(reason: str) -> dict:
        part["failures"].append({"file": path, "reason": reason})
        return part

    def warn(file: str, reason: str) -> None:
        part["warnings"].append({"file": file, "reason": reason})

    if entry.in_place:  # already cropped (DeepfakeBench): read in place
        return _index_crops(entry, part)
    if not entry.path.is_file():
        return fail(MISSING)
    if entry.path.stat().st_size == 0:
        return fail("empty file (0 bytes)")
    cap = cv2.VideoCapture(path)
    opened = cap.isOpened()
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if opened else 0
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    if not opened or n <= 0:
        return fail("cannot decode: corrupt or truncated video (no readable frame count)")
    if h > w:
        warn(path, f"vertical video ({w}x{h})")
    if max(w, h) >= 2160:
        warn(path, f"4K video ({w}x{h}): faces are detected on a downscaled copy")
    indices = evenly_spaced(n, options.frames)
    frames = read_sampled(entry.path, indices)
    if not frames:
        return fail("cannot decode any frame: corrupt or truncated video")
    unread = [i for i in indices if i not in frames]
    if unread:
        warn(
            path,
            f"{len(unread)} of {len(indices)} sampled frames unreadable (from frame {unread[0]}): truncated?",
        )
        part["frames_failed"] += len(unread)
    chroma = cv2.cvtColor(frames[min(frames)], cv2.COLOR_BGR2YCrCb)[..., 1:].astype(np.float32) - 128
    if np.abs(chroma).mean() < 3:  # lossy codecs leave a grey video's chroma near, not exactly at, neutral
        warn(path, "grayscale video")

    masks: dict[int, np.ndarray] = {}
    has_mask = entry.has_mask
    if entry.mask_path is not None:
        if not entry.mask_path.is_file():
            warn(
                str(entry.mask_path), "mask video missing: this fake is kept without a mask (has_mask false)"
            )
            has_mask = False
        elif (m := frame_count(entry.mask_path)) != n:
            warn(str(entry.mask_path), f"mask video has {m} frames, its fake {n}: kept without a mask")
            has_mask = False
        else:
            masks = {i: f[..., 0] for i, f in read_sampled(entry.mask_path, list(frames)).items()}

    detector = (detector or make_detector(options.detector)).for_video(entry.path)
    tracker = Tracker()
    crops_dir = Path(entry.video_id)
    faces: list[Face] = []
    for k, i in enumerate(sorted(frames)):
        if k % options.detect_every == 0 or not faces:
            faces = _keep(detector.detect(frames[i], i), options)
        if not faces:
            part["frames_failed"] += 1
            warn(path, f"frame {i}: no face found")
            continue
        for face, face_idx in zip(faces, tracker.assign(faces), strict=True):
            crop, m = crop_face(frames[i], face, options)
            name = f"{i:05d}_{face_idx}"
            image_rel = Path("crops") / crops_dir / f"{name}.png"
            atomic.write_image(out / image_rel, crop)
            mask_rel = ""
            if masks.get(i) is not None:
                mask_rel = str(Path("masks") / crops_dir / f"{name}.png")
                atomic.write_image(out / mask_rel, warp_crop(masks[i], m, options.size))
            points = face.contour if face.contour is not None else face.landmarks
            lm_rel = ""
            if points is not None:
                lm_rel = str(Path("landmarks") / crops_dir / f"{name}.npy")
                (out / lm_rel).parent.mkdir(parents=True, exist_ok=True)
                np.save(out / lm_rel, transform_points(points, m).astype(np.float32))
            x0, y0, x1, y1 = face.box
            corners = transform_points(np.array([[x0, y0], [x1, y1]]), m)
            part["rows"].append(
                _row(entry, path)
                | {
                    "frame_idx": i,
                    "face_idx": face_idx,
                    "image": str(image_rel),
                    "mask": mask_rel,
                    "landmarks": lm_rel,
                    "has_mask": bool(has_mask and (entry.label == 0 or mask_rel)),
                    "box_x0": x0,
                    "box_y0": y0,
                    "box_x1": x1,
                    "box_y1": y1,
                    "crop_x0": corners[0, 0],
                    "crop_y0": corners[0, 1],
                    "crop_x1": corners[1, 0],
                    "crop_y1": corners[1, 1],
                }
            )
        part["frames_done"] += 1
    if not part["rows"]:
        return fail("no face found in any sampled frame")
    part["status"] = "done"
    return part


def _index_crops(entry: VideoEntry, part: dict) -> dict:
    for k, (img, mask, lm) in enumerate(zip(entry.frames, entry.masks, entry.landmarks, strict=True)):
        if not img.is_file():
            part["frames_failed"] += 1
            part["warnings"].append({"file": str(img), "reason": "listed crop not found"})
            continue
        idx = frame_number(img)
        idx = k if idx is None else idx
        part["rows"].append(
            _row(entry, str(entry.path))
            | {
                "frame_idx": idx,
                "face_idx": 0,
                "image": str(img.resolve()),
                "mask": str(mask.resolve()) if mask else "",
                "landmarks": str(lm.resolve()) if lm else "",
                "has_mask": entry.has_mask,
                **dict.fromkeys(
                    ["box_x0", "box_y0", "box_x1", "box_y1", "crop_x0", "crop_y0", "crop_x1", "crop_y1"],
                    float("nan"),
                ),
            }
        )
        part["frames_done"] += 1
    if not part["rows"]:
        reason = "none of the listed crops exists" if entry.frames else "the index lists no frame for it"
        part["failures"].append({"file": str(entry.path), "reason": reason})
        return part
    part["status"] = "done"
    return part


_DETECTORS: dict = {}  # one detector per process and backend: MTCNN takes a while to build


def _work(args: tuple[VideoEntry, str, PrepOptions]) -> tuple[str, dict]:
    entry, out, options = args
    if options.detector not in _DETECTORS:
        _DETECTORS[options.detector] = make_detector(options.detector)
    try:
        part = process_video(entry, Path(out), options, _DETECTORS[options.detector])
    except Exception as e:  # noqa: BLE001 - one bad file must not end a batch; the reason is kept
        part = {
            "video_id": entry.video_id,
            "split": entry.split,
            "status": "failed",
            "rows": [],
            "warnings": [],
            "frames_done": 0,
            "frames_failed": 0,
            "failures": [{"file": str(entry.path), "reason": f"{type(e).__name__}: {e}"}],
        }
    atomic.write_text(part_path(Path(out), entry.video_id), json.dumps(part))
    return entry.video_id, part


def _finished(out: Path, entry: VideoEntry) -> bool:
    """A video with a part is finished, unless it was missing then and is on disk now (a download
    that completed after the first run): that one is done again, not reported missing for ever;
    likewise a part whose rows name another split or label than the entry now has."""
    path = part_path(out, entry.video_id)
    if not path.is_file():
        return False
    part = json.loads(path.read_text())
    missing = part["status"] == "failed" and any(f["reason"] == MISSING for f in part["failures"])
    if missing and entry.path.is_file():
        return False
    # A part made when the adapter gave this video another split or label (an index read before
    # its test videos were kept out of train) is made again: its rows would carry the old split.
    if part.get("split", entry.split) != entry.split:
        return False
    now = _row(entry, "")
    return all(row[k] == now[k] for row in part["rows"][:1] for k in ("dataset", "split", "method", "label"))


def _record_family(out: Path, entry: VideoEntry) -> None:
    """Give a finished part's rows the entry's family: a part made before rows had one (or under
    another rule) keeps its crops, which the family does not shape, and gains the column."""
    path = part_path(out, entry.video_id)
    part = json.loads(path.read_text())
    if any(row.get("family") != entry.family for row in part["rows"]):
        part["rows"] = [row | {"family": entry.family} for row in part["rows"]]
        atomic.write_text(path, json.dumps(part))


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected i/N, e.g. 0/4") from None
    if not 0 <= i < n:
        raise ValueError(f"--shard {text!r}: need 0 <= i < N")
    return i, n


def shard_entries(entries: list[VideoEntry], shard: tuple[int, int] | None) -> list[VideoEntry]:
    ordered = sorted(entries, key=lambda e: e.video_id)
    return ordered if shard is None else ordered[shard[0] :: shard[1]]


def prep(
    entries: list[VideoEntry],
    out: Path,
    options: PrepOptions = PrepOptions(),  # noqa: B008 - frozen, so a shared default is safe
    workers: int = 1,
    shard: tuple[int, int] | None = None,
    progress: bool = True,
    notes: list[dict] = (),
) -> dict:
    """Crop every video (skipping finished ones), then write the manifest and the report. `notes`
    are what the adapter changed where its layout disagreed (`sources.scan`), kept in the report."""
    out = writable_dir(out, "prep output folder")
    seen: dict[str, str] = {}
    for e in entries:  # one part per id: a second copy would overwrite the first, or be counted twice
        if e.video_id in seen:
            raise ValueError(
                f"video {e.video_id} is listed twice ({seen[e.video_id]} and {e.split}): "
                "each video must have one entry and one split"
            )
        seen[e.video_id] = e.split
    if not all(e.in_place for e in entries):  # an index of ready crops: prep cuts none
        record_options(out, options)
    atomic.write_text(out / "layout_notes.json", json.dumps(list(notes)))
    if options.detector != "precomputed" and not any(e.in_place for e in entries):
        make_detector(options.detector)  # fail at once if the backend is missing, not once per video
    todo = shard_entries(entries, shard)
    pending = [e for e in todo if not _finished(out, e)]
    waiting = {e.video_id for e in pending}
    for e in todo:
        if e.video_id not in waiting:
            _record_family(out, e)
    args = [(e, str(out), options) for e in pending]
    bar = tqdm(
        total=len(todo), initial=len(todo) - len(pending), desc="prep", unit="video", disable=not progress
    )
    if workers <= 1:
        for a in args:
            _work(a)
            bar.update()
    else:
        with ProcessPoolExecutor(
            workers, mp_context=get_context("fork"), initializer=cv2.setNumThreads, initargs=(1,)
        ) as pool:
            for _ in pool.map(_work, args, chunksize=1):
                bar.update()
    bar.close()
    suffix = "" if shard is None else f".shard-{shard[0]}-of-{shard[1]}"
    return write_outputs(out, [e.video_id for e in todo], suffix, options, skipped=len(todo) - len(pending))


def _split_of(part: dict) -> str:
    """A part's split; parts written before parts recorded it have it in their rows, if any."""
    return part.get("split") or next((r["split"] for r in part["rows"]), "unknown")


def write_outputs(
    out: Path, video_ids: list[str] | None, suffix: str, options: PrepOptions | None, skipped: int = 0
) -> dict:
    """Rebuild `manifest{suffix}.csv` and `prep_report{suffix}.json` from the parts of these videos
    (all parts in the folder when `video_ids` is None: the merge of shards)."""
    paths = (
        [part_path(out, v) for v in video_ids]
        if video_ids is not None
        else sorted((out / "parts").glob("*.json"))
    )
    loaded = {p: json.loads(p.read_text()) for p in paths if p.is_file()}
    if old := next((p for p, part in loaded.items() if any("family" not in r for r in part["rows"])), None):
        # Only a merge meets one: prep gives the parts of its own videos their family first.
        raise ValueError(
            f"{old}: a part written before prep recorded video families; run each shard's "
            f"`python -m fbifpn prep` on {out} again to add them (finished videos are not cropped again)"
        )
    parts = list(loaded.values())
    rows = [r for p in parts for r in p["rows"]]
    atomic.write_csv(frame(rows), out / f"manifest{suffix}.csv")
    report = {
        "videos": {
            "total": len(parts),
            "done": sum(p["status"] == "done" for p in parts),
            "failed": sum(p["status"] == "failed" for p in parts),
            "skipped_already_done": skipped,
        },
        "frames": {
            "done": sum(p["frames_done"] for p in parts),
            "failed": sum(p["frames_failed"] for p in parts),
            "crops": len(rows),
        },
        "splits": {
            split: {
                "videos": sum(_split_of(p) == split for p in parts),
                "done": sum(_split_of(p) == split and p["status"] == "done" for p in parts),
            }
            for split in sorted({_split_of(p) for p in parts})
        },
        "layout": json.loads(notes.read_text()) if (notes := out / "layout_notes.json").is_file() else [],
        "failures": [f for p in parts for f in p["failures"]],
        "warnings": [w for p in parts for w in p["warnings"]],
        "options": asdict(options) if options else None,
    }
    atomic.write_text(out / f"prep_report{suffix}.json", json.dumps(report))
    return report


__all__ = [
    "DetectorUnavailable",
    "PrepOptions",
    "crop_face",
    "parse_shard",
    "prep",
    "process_video",
    "recorded_options",
    "write_outputs",
]


VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}


def prepare_folder(
    folder: Path,
    out: Path | None = None,
    detector: str | None = None,
    frames: int = 32,
    size: int = 256,
    progress: bool = True,
    scale: float = 1.3,
    align: bool = False,
) -> Path:
    """Crop the faces of a folder of unlabelled videos (label -1, split "") into a manifest folder,
    by default a cache under runs/cache/folders/. Videos with sidecars use them unless `detector` is set.
    `size`, `scale` and `align` are a model's training crop geometry (its checkpoint's prep options)."""
    from fbifpn.data.faces import is_sidecar
    from fbifpn.paths import cache_dir

    folder = Path(folder).resolve()
    videos = sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise FileNotFoundError(f"{folder}: no video ({', '.join(sorted(VIDEO_SUFFIXES))}) in this folder")
    if detector is None:
        # A clip.json of another tool's shape is no sidecar: "precomputed" would fail on that video.
        foreign = [j for j in (v.with_suffix(".json") for v in videos) if j.is_file() and not is_sidecar(j)]
        for j in foreign:
            warnings.warn(f"{j}: not a face-box sidecar, ignored; faces are found by mtcnn", stacklevel=2)
        detector = (
            "precomputed"
            if not foreign and all(v.with_suffix(".json").is_file() for v in videos)
            else "mtcnn"
        )
    out = (
        Path(out)
        if out is not None
        else cache_dir()
        / "folders"
        / hashlib.sha1(f"{folder}|{detector}|{frames}|{size}|{scale}|{align}".encode()).hexdigest()[:16]
    )
    entries = [
        VideoEntry(
            "folder",
            "",
            "",
            "unknown",
            -1,
            f"folder/{v.relative_to(folder).with_suffix('')}",
            v,
            has_mask=False,
        )
        for v in videos
    ]
    options = PrepOptions(frames=frames, detector=detector, size=size, scale=scale, align=align)
    prep(entries, out, options, progress=progress)
    return out
