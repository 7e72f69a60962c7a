"""The seven perturbations of DeeperForensics-1.0 (Jiang et al., CVPR 2020), five levels each.

They apply to a face track: the saved crops of one face of one video, in frame order, as prep wrote
them (BGR uint8). Six act on each crop alone; video compression re-encodes the whole track with
x264, since a codec's damage depends on its neighbouring frames. Level 0 is the identity for every
type: the input comes back untouched, not round-tripped.

Level parameters are those of the paper's released code (`LEVELS`); the README's robustness section
tabulates them and says where our operations differ from theirs. Every random draw (block positions,
noise) comes from the seed given, so a perturbed test set is the same on every run.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

# type -> parameter at levels 1..5 (DeeperForensics-1.0's `get_distortion_parameter`, except jpeg).
LEVELS: dict[str, tuple[float, ...]] = {
    "saturation": (0.4, 0.3, 0.2, 0.1, 0.0),  # chroma factor (1 = unchanged)
    "contrast": (0.85, 0.725, 0.6, 0.475, 0.35),  # contrast factor (1 = unchanged)
    "block": (16, 32, 48, 64, 80),  # grey 8x8 blocks per 256 px of the shorter side
    "noise": (0.001, 0.002, 0.005, 0.01, 0.05),  # variance of white Gaussian noise, intensities in [0, 1]
    "blur": (7, 9, 13, 17, 21),  # Gaussian kernel size in pixels, sigma = size / 6
    # JPEG quality. DeeperForensics' code implements "JPEG compression" as down- and up-sampling by
    # 2..6 (pixelation); here it is a real JPEG round trip at ImageNet-C's five qualities.
    "jpeg": (25, 18, 15, 10, 7),
    "video": (30, 32, 35, 38, 40),  # x264 constant rate factor
}
KINDS = tuple(LEVELS)
# Raised whenever a perturbation's output changes, so that saved robustness evaluations are redone.
# 2: video compression through x264's C code.
VERSION = 2
LABELS = {
    "saturation": "colour saturation",
    "contrast": "colour contrast",
    "block": "local block-wise",
    "noise": "white Gaussian noise",
    "blur": "Gaussian blur",
    "jpeg": "JPEG compression",
    "video": "video compression (x264)",
}
BLOCK = 8  # side of one grey block, pixels
GREY = 128
FPS = 25  # the rate the track is encoded at; x264's rate control depends on it


def perturb_rng(seed: int, kind: str, level: int, video_id: str, frame_idx: int, face_idx: int):
    """The generator of one crop's random draws: fixed by (seed, type, level, video, frame, face), so
    a crop is perturbed alike in every run, DataLoader worker and figure."""
    video = zlib.crc32(str(video_id).encode())
    return np.random.default_rng([seed, KINDS.index(kind), level, video, int(frame_idx), int(face_idx)])


def parameter(kind: str, level: int) -> float | None:
    """The parameter of `kind` at `level` (1..5); None at level 0, the identity."""
    if kind not in LEVELS:
        raise ValueError(f"perturbation {kind!r}: not one of {', '.join(KINDS)}")
    if not 0 <= level <= len(LEVELS[kind]):
        raise ValueError(f"perturbation {kind}: level {level} is not in 0..{len(LEVELS[kind])}")
    return None if level == 0 else LEVELS[kind][level - 1]


def _tensor(bgr: np.ndarray):
    """BGR uint8 [H, W, 3] -> RGB uint8 [3, H, W], as torchvision's ops take images."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1].transpose(2, 0, 1)))


def _array(rgb) -> np.ndarray:
    return np.ascontiguousarray(rgb.numpy().transpose(1, 2, 0)[..., ::-1])


def perturb_crop(crop: np.ndarray, kind: str, level: int, rng: np.random.Generator) -> np.ndarray:
    """One BGR uint8 crop under a per-image perturbation (every type but `video`)."""
    p = parameter(kind, level)
    if p is None:
        return crop
    if kind == "video":
        raise ValueError("video compression acts on a track: use perturb_track")
    if kind == "block":
        return _blocks(crop, int(p), rng)
    import torch
    from torchvision.transforms.v2 import functional as F

    image = _tensor(crop)
    if kind == "saturation":
        out = F.adjust_saturation(image, p)
    elif kind == "contrast":
        out = F.adjust_contrast(image, p)
    elif kind == "blur":
        out = F.gaussian_blur(image, [int(p), int(p)], [p / 6, p / 6])
    elif kind == "jpeg":
        out = F.jpeg(image, int(p))
    else:  # noise: torchvision draws it from torch's global generator, so that is seeded and restored
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(rng.integers(2**63)))
            noisy = F.gaussian_noise(image.float() / 255, sigma=float(np.sqrt(p)), clip=True)
        out = (noisy * 255).round().to(torch.uint8)
    return _array(out)


def _blocks(crop: np.ndarray, per_256: int, rng: np.random.Generator) -> np.ndarray:
    """DeeperForensics' local block-wise distortion: grey 8x8 squares at random places, as many as
    the level's count for every 256 px of the shorter side. Their rule rounds that down (a frame
    under 256 px gets none); at least one unit here, since face crops are often smaller."""
    h, w = crop.shape[:2]
    count = per_256 * max(1, min(h, w) // 256)
    out = crop.copy()
    ys = rng.integers(0, max(1, h - BLOCK + 1), count)
    xs = rng.integers(0, max(1, w - BLOCK + 1), count)
    for y, x in zip(ys, xs, strict=True):
        out[y : y + BLOCK, x : x + BLOCK] = GREY
    return out


def perturb_track(
    crops: Sequence[np.ndarray], kind: str, level: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """A face track (BGR uint8 crops in frame order) under one perturbation at one level."""
    if parameter(kind, level) is None:
        return list(crops)
    if kind == "video":
        return _reencoded(crops, int(parameter(kind, level)))
    return [perturb_crop(c, kind, level, rng) for c in crops]


def _reencoded(crops: Sequence[np.ndarray], crf: int) -> list[np.ndarray]:
    """The track through x264 at constant rate factor `crf` (yuv420p, in memory) and back. A video
    has one frame size: crops of another size than the first are resized to it for the encoder and
    back after. yuv420p needs even sides: an odd row or column is repeated, then cut off again."""
    import av
    import cv2

    h, w = crops[0].shape[:2]
    sizes = [c.shape[:2] for c in crops]
    crops = [
        c if c.shape[:2] == (h, w) else cv2.resize(c, (w, h), interpolation=cv2.INTER_AREA) for c in crops
    ]
    eh, ew = h + h % 2, w + w % 2
    buffer = io.BytesIO()
    # A raw H.264 stream, no container: through an mp4 in memory, frames came back shifted now and then
    with av.open(buffer, "w", format="h264") as container:
        # x264's C code, one thread: its output then depends on the input alone. With its assembly,
        # the same frames gave one of two streams in some processes (a 2-core Xeon, PyAV 18.1); the C
        # path is bit-identical on every run and CPU, at about 4x the encoding time (0.15 s a track).
        stream = container.add_stream("libx264", rate=FPS, options={"crf": str(crf), "x264-params": "asm=0"})
        stream.codec_context.thread_count = 1
        stream.width, stream.height, stream.pix_fmt = ew, eh, "yuv420p"
        for i, crop in enumerate(crops):
            padded = np.pad(crop, ((0, eh - h), (0, ew - w), (0, 0)), mode="edge")
            # OpenCV converts to and from yuv420p (PyAV would go through swscale)
            frame = av.VideoFrame.from_ndarray(cv2.cvtColor(padded, cv2.COLOR_BGR2YUV_I420), format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    buffer.seek(0)
    with av.open(buffer, format="h264") as container:
        container.streams.video[0].codec_context.thread_count = 1
        decoded = [
            cv2.cvtColor(f.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2BGR_I420)[:h, :w]
            for f in container.decode(video=0)
        ]
    if len(decoded) != len(crops):
        raise RuntimeError(f"video compression: {len(crops)} frames encoded, {len(decoded)} decoded")
    return [
        np.ascontiguousarray(
            d if d.shape[:2] == size else cv2.resize(d, size[::-1], interpolation=cv2.INTER_AREA)
        )
        for d, size in zip(decoded, sizes, strict=True)
    ]
