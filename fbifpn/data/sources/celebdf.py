"""Celeb-DF-v2 (Li et al., CVPR 2020).

    <root>/Celeb-real/id0_0000.mp4  <root>/YouTube-real/00000.mp4  <root>/Celeb-synthesis/id0_id1_0000.mp4
    <root>/List_of_testing_videos.txt   "1 YouTube-real/00170.mp4": 1 = REAL, 0 = FAKE

Test is the list; a listed video missing on disk stays a test entry, which prep reports as missing
(all of them missing is a wrong root, an error). Train is every other video, and never a listed test video, even when a
`train_list` (another project's index) names it. Celeb-DF has no validation split: one is carved out
of train by identity (the target celebrity `idN`, or the YouTube video), about 10 %, deterministically.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from fbifpn.data.sources.base import (
    LayoutError,
    ScanOptions,
    VideoEntry,
    below,
    carve_val,
    listed_parts,
    note,
    require,
    taken,
    unmasked_entry,
    video_id,
)

FOLDERS = {"Celeb-real": ("real", 0), "YouTube-real": ("real", 0), "Celeb-synthesis": ("Celeb-synthesis", 1)}


def identity(rel: str) -> str:
    """The target celebrity (`id0` of id0_id1_0000 and id0_0000), or the YouTube video."""
    name = Path(rel).stem
    m = re.match(r"(id\d+)_", name)
    return m.group(1) if m else f"youtube-{name}"


def read_test_list(path: Path) -> dict[str, int]:
    """Relative path -> label in our convention (1 = fake), from Celeb-DF's 1 = real list."""
    tests = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        flag, _, rel = line.strip().partition(" ")
        if flag not in ("0", "1") or not rel:
            raise LayoutError(f"{path}:{n}: expected '<1 real | 0 fake> <folder>/<video>.mp4', got {line!r}")
        if rel.strip().split("/")[0] not in FOLDERS:
            raise LayoutError(f"{path}:{n}: {rel.strip()!r} is in none of the folders {', '.join(FOLDERS)}")
        tests[rel.strip()] = 1 - int(flag)
    return tests


# The level a layout reads by default; None where levels are not separate folders.
DEFAULT_COMPRESSION = None
TAKES = frozenset(["dataset", "train_list"])


def scan(root: Path, options: ScanOptions | None = None) -> list[VideoEntry]:
    options = taken(options, TAKES, "celebdf")
    dataset, train_list = options.dataset or "Celeb-DF-v2", options.train_list
    root = Path(root)
    require(root, "Celeb-DF-v2 root")
    tests = read_test_list(require(root / "List_of_testing_videos.txt", "Celeb-DF-v2 test list"))
    videos: dict[str, int] = {}
    for folder, (_, label) in FOLDERS.items():
        for p in sorted(require(root / folder, f"Celeb-DF-v2 {folder} folder").glob("*.mp4")):
            videos[f"{folder}/{p.name}"] = label
    missing = [rel for rel in tests if rel not in videos]
    if missing and len(missing) == len(tests):
        raise LayoutError(
            f"Celeb-DF-v2 test list names {root / missing[0]} and none of its videos exists under {root}"
        )
    train = [rel for rel in videos if rel not in tests]
    if train_list is not None:
        listed = _read_list(Path(train_list))
        train = [rel for rel in train if rel in listed]  # listed test videos are dropped: no leak
        if leaked := listed & set(tests):
            note(
                f"{train_list}: {len(leaked)} of its {len(listed)} videos are on Celeb-DF's test list: "
                "they are test only, never trained or validated on",
                dataset=dataset,
                change="test videos removed from train",
                videos=len(leaked),
            )
    val_ids = carve_val([identity(rel) for rel in train])
    splits = {rel: ("val" if identity(rel) in val_ids else "train") for rel in train} | dict.fromkeys(
        tests, "test"
    )
    entries = []
    for rel, split in splits.items():
        folder = rel.split("/")[0]
        method, label = FOLDERS[folder]
        entries.append(
            unmasked_entry(
                dataset,
                split,
                method,
                label,
                video_id(dataset, folder, Path(rel).stem),
                root / rel,
                # the celebrity: a synthesis is made from that celebrity's videos (YouTube: the video)
                family=video_id(dataset, identity(rel)),
            )
        )
    return sorted(entries, key=lambda e: e.video_id)


def _read_list(path: Path) -> set[str]:
    """A train index as a JSON list of paths or a text file of one path per line. A path is taken
    from its Celeb-DF folder on, so absolute ones written elsewhere (`T:\\...`, `/data/...`) match."""
    text = require(path, "Celeb-DF-v2 train list").read_text()
    try:
        items = json.loads(text)
    except ValueError:
        items = [line.split()[-1] for line in text.splitlines() if line.strip()]
    if not isinstance(items, list):
        raise LayoutError(f"{path}: expected a list of video paths, found a {type(items).__name__}")
    rels = set()
    for item in items:
        parts, _ = listed_parts(str(item))
        tail = next((t for f in FOLDERS if (t := below(parts, f)) is not None), parts)
        rels.add("/".join(tail))
    return rels
