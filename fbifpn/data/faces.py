"""Faces: detection backends, a simple tracker, and the crop / alignment transforms.

Backends (`--detector`):
- `precomputed`: boxes and landmarks from the sidecar JSON next to a video (the synthetic
  benchmark's, or any tool's output in that format); no detector runs.
- `mtcnn`: facenet-pytorch's MTCNN (its weights ship in the wheel), thresholds [0.6, 0.7, 0.9],
  box + 5 landmarks.
- `haar`: OpenCV's frontal-face Haar cascade (ships with opencv-python-headless), box only.
- `yunet`: YuNet through the `yuface` package when it is installed, box + 5 landmarks.
Real detectors run on a copy of the frame downscaled to at most `max_side` pixels.

Every crop is an affine map from the frame: a box crop with a margin, or a 5-point similarity
alignment. The same matrix is applied to the mask frame and to the landmarks.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# Five-point template (eyes, nose tip, mouth corners) on a unit square, for an aligned face at
# scale 1; `--scale` shrinks it around the centre to keep context around the face.
TEMPLATE = np.array(
    [[0.3419, 0.4616], [0.6565, 0.4598], [0.5002, 0.6405], [0.3710, 0.8247], [0.6315, 0.8233]]
)


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in frame pixels
    landmarks: np.ndarray | None = None  # [5, 2]: eyes, nose, mouth corners
    contour: np.ndarray | None = None  # [N, 2] face outline, when known (sidecars)
    score: float = 1.0

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])


class DetectorUnavailable(RuntimeError):
    """The backend's package is not installed; the message says what to install."""


class FaceDetector:
    name = "base"

    def detect(self, frame: np.ndarray, frame_idx: int) -> list[Face]:
        raise NotImplementedError

    def for_video(self, video: Path) -> FaceDetector:
        """Backends that read per-video data (sidecars) return a bound copy."""
        return self


def _scaled(frame: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    h, w = frame.shape[:2]
    s = min(1.0, max_side / max(h, w))
    if s < 1:
        frame = cv2.resize(frame, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    return frame, s


class SidecarError(ValueError):
    """A JSON next to a video that is not a face-box sidecar; the message names the file and why."""


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _points_problem(points: object) -> str | None:
    if not isinstance(points, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(map(_is_number, p)) for p in points
    ):
        return "not a list of [x, y] pairs"
    return None


def sidecar_problem(data: object) -> str | None:
    """Why `data` (a parsed JSON) is not a face-box sidecar, or None when it is one.

    The synthetic benchmark's shape, which other tools may write too: a dict with a `frames` list, one
    element per frame, each a face or a list of faces (empty: no face); a face is a dict with a `box`
    [x0, y0, x1, y1], optional `landmarks` and `contour` lists of [x, y] and an optional `score`.
    Checked up front so that a JSON of another shape is refused by name, not as a KeyError mid-video.
    """
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not an object with a 'frames' list"
    if not isinstance(data.get("frames"), list):
        return "no 'frames' list" if "frames" not in data else "'frames' is not a list"
    for i, element in enumerate(data["frames"]):
        where = f"frames[{i}]"
        for face in element if isinstance(element, list) else [element]:
            if not isinstance(face, dict):
                return f"{where} is neither a face (an object) nor a list of faces"
            box = face.get("box")
            if not (isinstance(box, list) and len(box) == 4 and all(map(_is_number, box))):
                return f"{where}: 'box' is not a list of 4 numbers"
            for key in ("landmarks", "contour"):
                if face.get(key) is not None and (problem := _points_problem(face[key])):
                    return f"{where}: {key!r} is {problem}"
            if "score" in face and not _is_number(face["score"]):
                return f"{where}: 'score' is not a number"
    return None


def load_sidecar(path: Path) -> list:
    """The checked `frames` of the sidecar at `path`; SidecarError names the file and the reason."""
    try:
        data = json.loads(Path(path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SidecarError(f"{path}: not a face-box sidecar (not valid JSON: {e})") from e
    if problem := sidecar_problem(data):
        raise SidecarError(f"{path}: not a face-box sidecar ({problem})")
    return data["frames"]


def is_sidecar(path: Path) -> bool:
    """Whether `path` is a readable face-box sidecar (False for a missing file or another JSON)."""
    try:
        load_sidecar(path)
    except (OSError, SidecarError):
        return False
    return True


class PrecomputedDetector(FaceDetector):
    name = "precomputed"

    def __init__(self, sidecar: Path | None = None):
        self.sidecar = sidecar
        self.frames: list = []
        if sidecar is not None:
            if not sidecar.is_file():
                raise FileNotFoundError(f"{sidecar}: no sidecar of precomputed faces next to the video")
            self.frames = load_sidecar(sidecar)

    def for_video(self, video: Path) -> PrecomputedDetector:
        return PrecomputedDetector(video.with_suffix(".json"))

    def detect(self, frame: np.ndarray, frame_idx: int) -> list[Face]:
        if frame_idx >= len(self.frames):
            return []
        entry = self.frames[frame_idx]
        faces = entry if isinstance(entry, list) else [entry]  # one face, or a list of faces
        return [
            Face(
                tuple(f["box"]),
                np.asarray(f["landmarks"], np.float32) if f.get("landmarks") else None,
                np.asarray(f["contour"], np.float32) if f.get("contour") else None,
                float(f.get("score", 1.0)),
            )
            for f in faces
        ]


class HaarDetector(FaceDetector):
    name = "haar"

    def __init__(self, max_side: int = 480):
        self.max_side = max_side
        self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")

    def detect(self, frame: np.ndarray, frame_idx: int) -> list[Face]:
        small, s = _scaled(frame, self.max_side)
        gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        found = self.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=6, minSize=(24, 24))
        return [Face((x / s, y / s, (x + w) / s, (y + h) / s)) for x, y, w, h in found]


class MTCNNDetector(FaceDetector):
    name = "mtcnn"

    def __init__(self, max_side: int = 480):
        try:
            from facenet_pytorch import MTCNN
        except ImportError as e:
            raise DetectorUnavailable(
                "--detector mtcnn needs facenet-pytorch: make venv installs it "
                "(pip install --no-deps facenet-pytorch==2.6.0)"
            ) from e
        self.max_side = max_side
        self.mtcnn = MTCNN(keep_all=True, thresholds=[0.6, 0.7, 0.9], device="cpu")

    def detect(self, frame: np.ndarray, frame_idx: int) -> list[Face]:
        small, s = _scaled(frame, self.max_side)
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        boxes, probs, points = self.mtcnn.detect(rgb, landmarks=True)
        if boxes is None:
            return []
        return [
            Face(tuple(float(v) / s for v in b), np.asarray(p, np.float32) / s, None, float(q))
            for b, q, p in zip(boxes, probs, points, strict=True)
        ]


class YuNetDetector(FaceDetector):
    name = "yunet"

    def __init__(self, max_side: int = 480):
        try:
            import yuface
        except ImportError as e:
            raise DetectorUnavailable(
                "--detector yunet needs the yuface package (pip install yuface; "
                "wheels exist for CPython <= 3.11)"
            ) from e
        self.yuface = yuface
        self.max_side = max_side

    def detect(self, frame: np.ndarray, frame_idx: int) -> list[Face]:
        small, s = _scaled(frame, self.max_side)
        confs, boxes, points = self.yuface.detect(small, conf=0.5)
        faces = []
        for conf, (x, y, w, h), pts in zip(confs, boxes, points, strict=True):
            lm = np.asarray(pts, np.float32).reshape(5, 2) / s
            faces.append(Face((x / s, y / s, (x + w) / s, (y + h) / s), lm, None, float(conf) / 100))
        return faces


DETECTORS = {
    "precomputed": PrecomputedDetector,
    "haar": HaarDetector,
    "mtcnn": MTCNNDetector,
    "yunet": YuNetDetector,
}


def make_detector(name: str) -> FaceDetector:
    if name not in DETECTORS:
        raise ValueError(f"--detector: unknown detector {name!r} (detectors: {', '.join(DETECTORS)})")
    return DETECTORS[name]()


# --------------------------------------------------------------------------- tracking


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class Tracker:
    """Gives each face a stable `face_idx` across sampled frames by greedy IoU matching."""

    def __init__(self, min_iou: float = 0.2):
        self.min_iou = min_iou
        self.last: dict[int, tuple[float, ...]] = {}
        self.next_id = 0

    def assign(self, faces: list[Face]) -> list[int]:
        ids, free = [], dict(self.last)
        for face in faces:
            best = max(free, key=lambda k: iou(free[k], face.box), default=None)
            if best is not None and iou(free[best], face.box) >= self.min_iou:
                ids.append(best)
                del free[best]
            else:
                ids.append(self.next_id)
                self.next_id += 1
        for i, face in zip(ids, faces, strict=True):
            self.last[i] = face.box
        return ids


# --------------------------------------------------------------------------- crops


def box_transform(box: tuple[float, ...], scale: float, size: int) -> np.ndarray:
    """2x3 affine taking the square of side `scale * max(w, h)` around the box centre to size x size."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * scale
    s = size / side
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return np.array([[s, 0, size / 2 - s * cx], [0, s, size / 2 - s * cy]], np.float64)


def template(size: int, scale: float) -> np.ndarray:
    return ((TEMPLATE - 0.5) / scale + 0.5) * size


def align_transform(landmarks: np.ndarray, size: int, scale: float) -> np.ndarray:
    """Least-squares similarity taking the 5 landmarks onto the template."""
    m, _ = cv2.estimateAffinePartial2D(
        np.asarray(landmarks, np.float32), template(size, scale).astype(np.float32), method=cv2.LMEDS
    )
    if m is None:
        raise ValueError("alignment failed: degenerate landmarks")
    return m


def warp_crop(
    image: np.ndarray, m: np.ndarray, size: int, interpolation: int = cv2.INTER_LINEAR
) -> np.ndarray:
    return cv2.warpAffine(image, m, (size, size), flags=interpolation, borderMode=cv2.BORDER_CONSTANT)


def transform_points(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    return np.asarray(points, np.float64) @ m[:, :2].T + m[:, 2]
