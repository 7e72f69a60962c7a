"""DFDC, the full Deepfake Detection Challenge dataset (Dolhansky et al., 2020).

    <root>/dfdc_train_part_{0..49}/metadata.json  {"abc.mp4": {"label": "FAKE"|"REAL", "split": "train", "original": "xyz.mp4"}}
    <root>/test/labels.csv                         filename,label (1 = fake)   <root>/test/*.mp4

The parts may also sit in a `train/` folder (`<root>/train/dfdc_train_part_0/`), as DeepfakeBench
keeps them. DFDC has no validation split: the last ~10 % of training parts (at least one, when there
are two or more) are held out as val, so identities filmed within a part do not straddle train and val.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from fbifpn.data.sources.base import (
    LayoutError,
    ScanOptions,
    VideoEntry,
    read_index,
    require,
    taken,
    unmasked_entry,
    video_id,
)


def _part_number(name: str) -> int:
    return int(re.sub(r"\D", "", name) or 0)


def held_out_parts(names: list[str]) -> set[str]:
    """The validation parts: the last ~10 % by part number, at least one when there are two or more."""
    ordered = sorted(names, key=_part_number)
    n_val = max(1, round(0.1 * len(ordered))) if len(ordered) >= 2 else 0
    return set(ordered[len(ordered) - n_val :])


def _family(dataset: str, name: str, label: int, info: dict, vid: str) -> str:
    """metadata.json's `original`: a fake names the real it was made from, and a real is its own
    original. Names are unique across parts, so a family may span them. A fake that names no
    original is its own family."""
    source = info.get("original") or (name if label == 0 else None)
    return video_id(dataset, Path(str(source)).stem) if source else vid


# The level a layout reads by default; None where levels are not separate folders.
DEFAULT_COMPRESSION = None
TAKES = frozenset(["dataset"])


def scan(root: Path, options: ScanOptions | None = None) -> list[VideoEntry]:
    options = taken(options, TAKES, "dfdc")
    dataset = options.dataset or "DFDC"
    root = Path(root)
    require(root, "DFDC root")
    parts = [p for p in root.glob("dfdc_train_part_*") if p.is_dir()] or [
        p for p in root.glob("train/dfdc_train_part_*") if p.is_dir()
    ]
    parts.sort(key=lambda p: _part_number(p.name))
    if not parts:
        raise LayoutError(
            f"DFDC training parts: expected {root}/dfdc_train_part_0/metadata.json "
            f"(or {root}/train/dfdc_train_part_0/metadata.json), found no part"
        )
    val_parts = held_out_parts([p.name for p in parts])
    entries = []
    for part in parts:
        meta_path = require(part / "metadata.json", "DFDC part metadata")
        meta = read_index(meta_path)
        for name, info in sorted(meta.items()):
            label = {"REAL": 0, "FAKE": 1}.get(str(info.get("label", "")).upper())
            if label is None:
                raise LayoutError(
                    f"{meta_path}: {name} has label {info.get('label')!r}, expected REAL or FAKE"
                )
            split = "val" if part.name in val_parts else "train"
            method = "real" if label == 0 else "DFDC"
            vid = video_id(dataset, part.name, Path(name).stem)
            family = _family(dataset, name, label, info, vid)
            entries.append(unmasked_entry(dataset, split, method, label, vid, part / name, family))
    labels_path = require(root / "test" / "labels.csv", "DFDC test labels")
    with open(labels_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and not {"filename", "label"} <= set(rows[0]):
        raise LayoutError(f"{labels_path}: expected the columns filename,label")
    for n, row in enumerate(rows, 2):
        try:
            label = int(float(row["label"]) >= 0.5)
        except (TypeError, ValueError):
            raise LayoutError(
                f"{labels_path}:{n}: label {row['label']!r} is not a number (1 = fake)"
            ) from None
        method = "real" if label == 0 else "DFDC"
        vid = video_id(dataset, "test", Path(row["filename"]).stem)
        # labels.csv records no original: each test video is its own family (the entry's default)
        entries.append(unmasked_entry(dataset, "test", method, label, vid, root / "test" / row["filename"]))
    return entries
