"""FaceForensics++ (Rössler et al., ICCV 2019).

    <root>/original_sequences/youtube/<comp>/videos/000.mp4
    <root>/manipulated_sequences/<method>/<comp>/videos/000_003.mp4
    <root>/manipulated_sequences/<method>/masks/videos/000_003.mp4   (not for FaceShifter)
    <root>/splits/{train,val,test}.json                               lists of [a, b] pairs

A pair [a, b] puts reals a and b and fakes a_b and b_a in its split. Videos in no split are left out;
a listed video missing on disk is still an entry, and prep reports it as missing.
"""

from __future__ import annotations

import json
from pathlib import Path

from fbifpn.data.sources.base import LayoutError, VideoEntry, require, video_id

METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter")
MASKED = {"Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"}
SPLITS = ("train", "val", "test")


def scan(
    root: Path,
    compression: str = "c23",
    splits: tuple[str, ...] = SPLITS,
    dataset: str = "FF++",
    methods: tuple[str, ...] | None = None,
) -> list[VideoEntry]:
    root = Path(root)
    require(root, "FaceForensics++ root")
    split_of: dict[str, str] = {}
    pairs: dict[str, list[tuple[str, str]]] = {}
    for split in splits:
        path = require(root / "splits" / f"{split}.json", f"FF++ {split} split list")
        try:
            pairs[split] = [(str(a), str(b)) for a, b in json.loads(path.read_text())]
        except (ValueError, TypeError) as e:
            raise LayoutError(f"{path}: expected a JSON list of [a, b] pairs ({e})") from e
        for a, b in pairs[split]:
            split_of[a] = split_of[b] = split
    # Entries come from the split lists, not from the folders: a listed video that is missing on disk
    # stays an entry, so prep reports it ("video file not found") instead of silently counting one less.
    real_dir = require(root / "original_sequences/youtube" / compression / "videos", "FF++ real videos")
    entries = [
        VideoEntry(
            dataset,
            split,
            compression,
            "real",
            0,
            video_id(dataset, "real", compression, name),
            real_dir / f"{name}.mp4",
        )
        for name, split in sorted(split_of.items())
    ]
    manip = require(root / "manipulated_sequences", "FF++ manipulated videos")
    present = [m for m in (methods or METHODS) if (manip / m).is_dir()]
    if not present:
        raise LayoutError(f"FF++ methods: expected one of {', '.join(METHODS)} under {manip}")
    fake_split = {f"{a}_{b}": s for s, ps in pairs.items() for a, b in ps} | {
        f"{b}_{a}": s for s, ps in pairs.items() for a, b in ps
    }
    for method in present:
        folder = require(manip / method / compression / "videos", f"FF++ {method} videos")
        masked = method in MASKED
        for name, split in sorted(fake_split.items()):
            entries.append(
                VideoEntry(
                    dataset,
                    split,
                    compression,
                    method,
                    1,
                    video_id(dataset, method, compression, name),
                    folder / f"{name}.mp4",
                    mask_path=manip / method / "masks/videos" / f"{name}.mp4" if masked else None,
                    has_mask=masked,
                )
            )
    if not any(e.path.is_file() for e in entries):
        raise LayoutError(f"{root}: no FF++ video of the split lists was found at compression {compression}")
    return entries
