"""Audit the benchmark for shortcuts: global statistics that would separate real from fake videos
without looking at the manipulation. A detector's AUC is only meaningful if these stay near 0.5."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from fbifpn.data.video import read_frames

STATISTICS = ("brightness", "colour_balance", "bytes_per_frame", "sharpness")


def video_statistics(path: Path) -> dict[str, float]:
    """Whole-frame statistics of one video, averaged over its frames."""
    frames = read_frames(path)
    f = np.stack(frames).astype(np.float32)
    b, g, r = f[..., 0].mean(), f[..., 1].mean(), f[..., 2].mean()
    sharp = [cv2.Laplacian(cv2.cvtColor(x, cv2.COLOR_BGR2GRAY), cv2.CV_32F).var() for x in frames]
    return {
        "brightness": float(f.mean()),
        "colour_balance": float((r - b) / (r + g + b + 1e-6)),
        "bytes_per_frame": path.stat().st_size / len(frames),
        "sharpness": float(np.mean(sharp)),
    }


def ff_videos(root: Path, level: str = "c23") -> list[tuple[Path, int]]:
    """Every synth-ff video at one compression level with its label (fake 1)."""
    ff = Path(root) / "synth-ff"
    reals = sorted((ff / "original_sequences/youtube" / level / "videos").glob("*.mp4"))
    fakes = sorted((ff / "manipulated_sequences").glob(f"*/{level}/videos/*.mp4"))
    return [(p, 0) for p in reals] + [(p, 1) for p in fakes]


def shortcut_aucs(root: Path, level: str = "c23") -> dict[str, float]:
    """Video-level AUC of each statistic as a real/fake score, folded to >= 0.5 (either direction
    of a shortcut counts)."""
    from sklearn.metrics import roc_auc_score

    videos = ff_videos(root, level)
    labels = [y for _, y in videos]
    stats = [video_statistics(p) for p, _ in videos]
    out = {}
    for name in STATISTICS:
        auc = roc_auc_score(labels, [s[name] for s in stats])
        out[name] = float(max(auc, 1 - auc))
    return out


if __name__ == "__main__":
    import sys

    print(json.dumps(shortcut_aucs(Path(sys.argv[1])), indent=1))
