"""Data already preprocessed by DeepfakeBench (Yan et al., NeurIPS 2023): 256 px face crops and a
JSON index, read straight into our manifest without re-cropping.

    { <dataset>: { <label_name>: { train|val|test: { [c23|c40|raw:] { <video>: {"label": ..., "frames": [...]}}}}}}

Label names ending in "real" (FF-real, CelebDFv2_real, DFDC_Real, ...) are 0, all others 1. Frame
paths are relative to the data root and may use Windows separators. Next to `frames/<video>/<i>.png`
may lie `masks/<video>/<i>.png` and `landmarks/<video>/<i>.npy`; a real without a mask file has an
all-zero mask, a fake without one has no ground truth (`has_mask` false). Video ids are
dataset/label_name/video, since FF++'s `000_003` exists once per method.
"""

from __future__ import annotations

import json
from pathlib import Path, PureWindowsPath

from fbifpn.data.sources.base import LayoutError, VideoEntry, require, video_id
from fbifpn.data.video import evenly_spaced

LEVELS = {"raw", "c23", "c40"}


def _path(root: Path, listed: str) -> Path:
    return root / Path(*PureWindowsPath(listed).parts) if "\\" in listed else root / listed


def _sibling(frame: Path, kind: str, suffix: str) -> Path:
    """frames/<video>/<i>.png -> <kind>/<video>/<i><suffix>, swapping the nearest 'frames' folder."""
    parts = list(frame.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "frames":
            parts[i] = kind
            return Path(*parts).with_suffix(suffix)
    return frame.with_name(frame.stem + f"_{kind}{suffix}")


def scan(
    json_path: Path, root: Path, frames: int | None = 32, compression: str | None = None
) -> list[VideoEntry]:
    json_path, root = Path(json_path), Path(root)
    index = json.loads(require(json_path, "DeepfakeBench JSON index").read_text())
    require(root, "DeepfakeBench data root")
    entries = []
    for dataset, by_label in index.items():
        for label_name, by_split in by_label.items():
            label = 0 if label_name.lower().endswith("real") else 1
            for split, content in by_split.items():
                groups = content.items() if set(content) and set(content) <= LEVELS else [("", content)]
                for level, videos in groups:
                    if compression and level and level != compression:
                        continue
                    for name, info in videos.items():
                        listed = info.get("frames")
                        if not isinstance(listed, list):
                            raise LayoutError(
                                f"{json_path}: {dataset}/{label_name}/{split}/{name} has no frame list"
                            )
                        paths = [_path(root, f) for f in listed]
                        keep = [paths[i] for i in evenly_spaced(len(paths), frames)]
                        masks = tuple(
                            m if (m := _sibling(p, "masks", ".png")).is_file() else None for p in keep
                        )
                        lms = tuple(
                            m if (m := _sibling(p, "landmarks", ".npy")).is_file() else None for p in keep
                        )
                        has_mask = label == 0 or all(m is not None for m in masks)
                        entries.append(
                            VideoEntry(
                                dataset,
                                split,
                                level,
                                label_name if label else "real",
                                label,
                                video_id(dataset, label_name, level, name),
                                keep[0].parent if keep else root,
                                has_mask=has_mask,
                                frames=tuple(keep),
                                masks=masks,
                                landmarks=lms,
                            )
                        )
    if not entries:
        raise LayoutError(f"{json_path}: no video found in the index")
    return entries
