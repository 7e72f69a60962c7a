"""Preprocessing throughput on one core: sampled frames per second through `process_video`.

    python benchmarks/prep_rate.py [--frames 32] [--detect-every 1]

Cases: (1) the demo synthetic benchmark's 256 px c23 videos with `precomputed` faces (generated
first if missing); (2) a 720p video made here from `skimage.data.astronaut()` moving across a
background (96 frames, 32 sampled) with `precomputed` (its true boxes), `yunet`, `haar` and `mtcnn`.
Everything runs in one process with OpenCV and torch limited to one thread.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from skimage import data

from fbifpn.data.faces import DetectorUnavailable, make_detector
from fbifpn.data.prep import PrepOptions, process_video
from fbifpn.data.sources import ffpp
from fbifpn.data.sources.base import ScanOptions, VideoEntry
from fbifpn.data.synthetic import generate


def astronaut_video(folder: Path, n: int = 96) -> Path:
    """1280x720: the portrait (face box known) sliding across a textured background."""
    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8), (0, 0), 9)
    path = folder / "astronaut_720p.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (1280, 720))
    frames = []
    for t in range(n):
        x, y = 80 + (6 * t) % 680, 100 + int(40 * np.sin(t / 10))
        frame = background.copy()
        frame[y : y + 512, x : x + 512] = photo
        writer.write(frame)
        frames.append(
            {
                "box": [x + 178, y + 63, x + 267, y + 175],
                "landmarks": [
                    [x + 200, y + 101],
                    [x + 247, y + 102],
                    [x + 220, y + 124],
                    [x + 198, y + 142],
                    [x + 239, y + 143],
                ],
            }
        )
    writer.release()
    path.with_suffix(".json").write_text(json.dumps({"fps": 25, "frames": frames}))
    return path


def rate(entries: list[VideoEntry], out: Path, options: PrepOptions) -> tuple[float, int]:
    detector = make_detector(options.detector)
    start, frames = time.perf_counter(), 0
    for entry in entries:
        frames += process_video(entry, out, options, detector)["frames_done"]
    return frames / (time.perf_counter() - start), frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--detect-every", type=int, default=1)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = generate(size="demo", seed=0, progress=False) / "synth-ff"
        videos = ffpp.scan(root, ScanOptions(dataset="synth-ff"))[:24]
        opts = PrepOptions(frames=args.frames, detector="precomputed")
        results["synthetic 256px, precomputed"] = rate(videos, tmp / "a", opts)
        video = astronaut_video(tmp)
        entry = VideoEntry("bench", "test", "", "real", 0, "bench/astronaut", video)
        for name in ("precomputed", "yunet", "haar", "mtcnn"):
            try:
                opts = PrepOptions(frames=args.frames, detector=name, detect_every=args.detect_every)
                results[f"720p astronaut, {name}"] = rate([entry], tmp / name, opts)
            except DetectorUnavailable as e:
                results[f"720p astronaut, {name}"] = str(e)
    for case, value in results.items():
        text = (
            f"{value[0]:.1f} sampled frames/s per core ({value[1]} frames)"
            if isinstance(value, tuple)
            else value
        )
        print(f"{case:<34} {text}")


if __name__ == "__main__":
    main()
