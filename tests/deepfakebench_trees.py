"""Small trees of DeepfakeBench-preprocessed crops with the JSON index in the nesting its
`preprocessing/rearrange.py` writes for each dataset, made from the format's description:

    FaceForensics++.json  {"FaceForensics++": {"FF-real"|"FF-DF"|...: {split: {level: {video: {label, frames, masks}}}}}}
    FF-DF.json            {"FF-DF": {"FF-real": ..., "FF-DF": ...}}                      one per method
    Celeb-DF-v2.json      {"Celeb-DF-v2": {"CelebDFv2_real"|"CelebDFv2_fake": {split: {video: ...}}}}
                          every video under train; the listed test videos again under test and val
    DFDC.json             {"DFDC": {"DFDC_Real"|"DFDC_Fake": {...}}}: val holds the train videos and,
                          beside them, the keys "label" and "frames" of the last test video
    DFDCP.json            {"DFDCP": {"DFDCP_Real"|"DFDCP_FakeA"|"DFDCP_FakeB": {...}}}: val is test

Frames are listed in a scrambled order, as a directory listing gives them. `style` writes the paths
relative to the data root ("relative"), absolute on a Linux machine ("posix": /data/rgb/...), or
absolute on Windows ("windows": T:\\rgb\\...), none of which exists here.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

FF_LABELS = {"Deepfakes": "FF-DF", "Face2Face": "FF-F2F", "FaceSwap": "FF-FS", "NeuralTextures": "FF-NT"}
PREFIX = {"relative": "", "posix": "/data/rgb/", "windows": "T:\\rgb\\"}


def scrambled(n: int) -> list[int]:
    """0..n-1 in a listing order that is neither sorted nor reversed (for 8: 1 6 3 0 5 2 7 4)."""
    return sorted(range(n), key=lambda i: (i * 5 + 3) % n if n > 1 else 0)


def _listed(rel: str, style: str) -> str:
    path = PREFIX[style] + rel
    return path.replace("/", "\\") if style == "windows" else path


def crops(root: Path, folder: str, n: int, style: str = "relative") -> list[str]:
    """Write n 8x8 PNG crops 000.png... under root/folder; their paths as the index lists them."""
    (root / folder).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(root / folder / f"{i:03d}.png"), np.full((8, 8, 3), i, np.uint8))
    return [_listed(f"{folder}/{i:03d}.png", style) for i in scrambled(n)]


def _write(path: Path, index: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(index))
    return path


def ffpp(
    root: Path, out: Path, pairs: dict, methods=tuple(FF_LABELS), levels=("c23",), n=4, style="relative"
):
    """FaceForensics++.json and the per-method FF-*.json; returns {name: path}."""
    split_of = {v: s for s, ps in pairs.items() for a, b in ps for v in (a, b, f"{a}_{b}", f"{b}_{a}")}
    by_label: dict = {"FF-real": {s: {lv: {} for lv in levels} for s in ("train", "test", "val")}}
    for lv in levels:
        for v in (v for v in split_of if "_" not in v):
            frames = crops(root, f"FaceForensics++/original_sequences/youtube/{lv}/frames/{v}", n, style)
            by_label["FF-real"][split_of[v]][lv][v] = {"label": "FF-real", "frames": frames}
    for method in methods:
        label = FF_LABELS[method]
        by_label[label] = {s: {lv: {} for lv in levels} for s in ("train", "test", "val")}
        for lv in levels:
            for v in (v for v in split_of if "_" in v):
                base = f"FaceForensics++/manipulated_sequences/{method}"
                frames = crops(root, f"{base}/{lv}/frames/{v}", n, style)
                masks = crops(root, f"{base}/c23/masks/{v}", n, style)  # one mask set for all levels
                by_label[label][split_of[v]][lv][v] = {"label": label, "frames": frames, "masks": masks}
    files = {"FaceForensics++": _write(out / "FaceForensics++.json", {"FaceForensics++": by_label})}
    for method in methods:
        label = FF_LABELS[method]
        files[label] = _write(
            out / f"{label}.json", {label: {"FF-real": by_label["FF-real"], label: by_label[label]}}
        )
    return files


def celebdf(root: Path, out: Path, n_ids: int = 12, n_youtube: int = 4, tests=(), n=4, style="relative"):
    """Celeb-DF-v2.json: every video under train, the `tests` (folder/name.mp4) under test and val."""
    names = {"Celeb-real": [f"id{i}_0000" for i in range(n_ids)]}
    names["YouTube-real"] = [f"{y:05d}" for y in range(n_youtube)]
    names["Celeb-synthesis"] = [f"id{i}_id{(i + 1) % n_ids}_0000" for i in range(n_ids)]
    index: dict = {}
    frames_of = {}
    for folder, videos in names.items():
        label = "CelebDFv2_fake" if folder == "Celeb-synthesis" else "CelebDFv2_real"
        index.setdefault(label, {"train": {}, "val": {}, "test": {}})
        for v in videos:
            frames_of[f"{folder}/{v}.mp4"] = crops(root, f"Celeb-DF-v2/{folder}/frames/{v}", n, style)
            index[label]["train"][v] = {"label": label, "frames": frames_of[f"{folder}/{v}.mp4"]}
    for rel in tests:
        label = "CelebDFv2_fake" if rel.startswith("Celeb-synthesis") else "CelebDFv2_real"
        v = rel.split("/")[-1].removesuffix(".mp4")
        for split in ("test", "val"):
            index[label][split][v] = {"label": label, "frames": list(reversed(frames_of[rel]))}
    return _write(out / "Celeb-DF-v2.json", {"Celeb-DF-v2": index})


def dfdc(root: Path, out: Path, parts: int = 10, per_part: int = 2, n_test: int = 4, n=4, style="relative"):
    """DFDC.json: parts under train/dfdc_train_part_N, val = the train videos plus stray keys."""
    index = {label: {"train": {}, "test": {}, "val": {}} for label in ("DFDC_Real", "DFDC_Fake")}
    for t in range(n_test):
        label = ("DFDC_Real", "DFDC_Fake")[t % 2]
        frames = crops(root, f"DFDC/test/frames/t{t:04d}", n, style)
        index[label]["test"][f"t{t:04d}"] = {"label": label, "frames": frames}
        index[label]["val"] = {"label": label, "frames": frames}  # replaces val: no videos, two stray keys
    for p in range(parts):
        for k in range(per_part):
            label = ("DFDC_Real", "DFDC_Fake")[k % 2]
            v = f"p{p}v{k}"
            frames = crops(root, f"DFDC/train/dfdc_train_part_{p}/frames/{v}", n, style)
            index[label]["train"][v] = index[label]["val"][v] = {"label": label, "frames": frames}
    return _write(out / "DFDC.json", {"DFDC": index})


def dfdcp(root: Path, out: Path, subjects: int = 20, test_from: int = 15, n=4, style="relative"):
    """DFDCP.json from a dataset.json whose `set` puts subjects >= test_from in test; val = test."""
    index = {
        label: {"train": {}, "test": {}, "val": {}} for label in ("DFDCP_Real", "DFDCP_FakeA", "DFDCP_FakeB")
    }
    for s in range(subjects):
        split = "test" if s >= test_from else "train"
        for folder, label, v in (
            ("original_videos", "DFDCP_Real", f"{1000 + s}_A_000"),
            ("method_A", "DFDCP_FakeA", f"{1000 + s}_A_001"),
            ("method_B", "DFDCP_FakeB", f"{1000 + s}_B_001"),
        ):
            index[label][split][v] = {
                "label": label,
                "frames": crops(root, f"DFDCP/{folder}/frames/{v}", n, style),
            }
    for label in index:
        index[label]["val"] = index[label]["test"]
    return _write(out / "DFDCP.json", {"DFDCP": index})
