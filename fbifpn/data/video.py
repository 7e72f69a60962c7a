"""Video files: writing at FaceForensics++'s compression levels, reading sampled frames.

Levels follow FF++: `raw` is lossless (FFV1, RGB), `c23` and `c40` are H.264 (x264) at CRF 23 and 40.
Writing uses PyAV (FFmpeg with libx264), imported only here, when a video is written; reading uses
OpenCV, which decodes all of these. Where PyAV is missing (a lean GPU image), OpenCV writes instead:
FFV1 stays lossless, but every cNN level becomes MPEG-4 Part 2 at OpenCV's fixed quality, so c23 and
c40 no longer differ. `encoder()` says which one runs; the benchmark records it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from fbifpn import atomic

FPS = 25
LEVELS = ("raw", "c23", "c40")


def crf_of(level: str) -> int | None:
    """`raw` -> None (lossless); `cNN` -> x264 CRF NN (c23, c40, and other domains' levels)."""
    if level == "raw":
        return None
    if not (level.startswith("c") and level[1:].isdigit()):
        raise ValueError(f"compression level {level!r}: expected raw or cNN (c23, c40, ...)")
    return int(level[1:])


def encoder() -> str:
    """`pyav-x264` (the FF++ levels), or `opencv-mp4v` where PyAV is not installed."""
    import importlib.util

    return "pyav-x264" if importlib.util.find_spec("av") is not None else "opencv-mp4v"


def _write_opencv(tmp: Path, frames: Iterable[np.ndarray], crf: int | None, gray: bool) -> None:
    writer = None
    for frame in frames:
        if writer is None:
            h, w = frame.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*("FFV1" if crf is None else "mp4v"))
            writer = cv2.VideoWriter(str(tmp), fourcc, FPS, (w, h), not gray)
            if not writer.isOpened():
                raise OSError(f"{tmp}: OpenCV cannot write this video (and PyAV is not installed)")
        writer.write(np.ascontiguousarray(frame))
    if writer is not None:
        writer.release()


def write_video(path: Path, frames: Iterable[np.ndarray], level: str = "c23", gray: bool = False) -> None:
    """Write BGR uint8 frames (or single-channel masks with `gray`) at a compression level.

    One encoder thread: the output is then byte-identical whatever else runs in parallel.
    """
    crf = crf_of(level)
    with atomic.replacing(path) as tmp:  # a crash mid-write never leaves a truncated video under its name
        if encoder() == "opencv-mp4v":
            _write_opencv(tmp, frames, crf, gray)
        else:
            _write_pyav(tmp, frames, crf, gray)


def _write_pyav(tmp: Path, frames: Iterable[np.ndarray], crf: int | None, gray: bool) -> None:
    import av  # heavy and only needed to write videos

    with av.open(str(tmp), "w") as container:
        if crf is None:
            stream = container.add_stream("ffv1", rate=FPS)
            stream.pix_fmt = "gray" if gray else "bgr0"
        else:
            stream = container.add_stream("libx264", rate=FPS, options={"crf": str(crf), "preset": "medium"})
            stream.pix_fmt = "yuv420p"
        stream.thread_count = 1
        first = True
        for frame in frames:
            if first:
                stream.height, stream.width = frame.shape[:2]
                first = False
            if gray:
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="gray")
            else:
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="bgr24")
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def frame_count(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise OSError(f"{path}: cannot open video")
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()


def evenly_spaced(n: int, k: int | None) -> list[int]:
    """k indices spread evenly over n items, first and last included (all of them when k >= n)."""
    if k is None or k >= n:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, k).round().astype(int).tolist()))


def read_sampled(path: Path, indices: Sequence[int]) -> dict[int, np.ndarray]:
    """Decode the frames at `indices`, skipping the others with grab() so they are never converted.
    Returns what could be read: a truncated or damaged video yields fewer frames, not an error."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise OSError(f"{path}: cannot open video")
    wanted = set(indices)
    last = max(wanted, default=-1)
    frames: dict[int, np.ndarray] = {}
    try:
        for i in range(last + 1):
            if i in wanted:
                ok, frame = cap.read()
                if not ok:
                    break
                frames[i] = frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
            elif not cap.grab():
                break
    finally:
        cap.release()
    return frames


def read_frames(path: Path, indices: Sequence[int] | None = None) -> list[np.ndarray]:
    """Decode BGR frames: all of them, or exactly those at `indices` (an error if any is missing)."""
    if indices is None:
        indices = range(frame_count(path))
    frames = read_sampled(path, indices)
    missing = sorted(set(indices) - set(frames))
    if missing:
        raise OSError(f"{path}: cannot read frame {missing[0]}")
    return [frames[i] for i in sorted(frames)]
