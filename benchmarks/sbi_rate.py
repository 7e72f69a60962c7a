"""SBI throughput on one core: self-blended images per second at 256 px.

    python benchmarks/sbi_rate.py [--size 256] [--images 500]

Runs on `skimage.data.astronaut()` resized to the given size, with a 24-point face contour, in one
process with OpenCV limited to one thread: the rate a single DataLoader worker can sustain.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import cv2
import numpy as np
from skimage import data

from fbifpn.data.sbi import self_blend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--images", type=int, default=500)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    image = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (args.size, args.size))
    s = args.size / 512  # the astronaut's face box, (150, 60)-(330, 260) at 512 px
    x0, y0, x1, y1 = 150 * s, 60 * s, 330 * s, 260 * s
    t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    contour = np.stack(
        [(x0 + x1) / 2 + (x1 - x0) / 2 * np.cos(t), (y0 + y1) / 2 + (y1 - y0) / 2 * np.sin(t)], 1
    )
    rng = np.random.default_rng(0)
    for _ in range(20):  # warm-up
        self_blend(image, rng, landmarks=contour)
    start = time.perf_counter()
    for _ in range(args.images):
        self_blend(image, rng, landmarks=contour)
    rate = args.images / (time.perf_counter() - start)
    print(
        json.dumps(
            {
                "sbi_images_per_s_per_core": round(rate, 1),
                "size": args.size,
                "images": args.images,
                "cpu": platform.processor() or platform.machine(),
                "opencv": cv2.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
