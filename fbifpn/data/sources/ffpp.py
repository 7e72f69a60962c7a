"""FaceForensics++ (Rössler et al., ICCV 2019).

    <root>/original_sequences/youtube/<comp>/videos/000.mp4
    <root>/manipulated_sequences/<method>/<comp>/videos/000_003.mp4
    <root>/manipulated_sequences/<method>/masks/videos/000_003.mp4   (not for FaceShifter)
    <root>/splits/{train,val,test}.json                               lists of [a, b] pairs

A pair [a, b] puts reals a and b and fakes a_b and b_a in its split. Videos in no split are left out;
a listed video missing on disk is still an entry, and prep reports it as missing.

The split lists are looked for in `splits_dir` when given, else in `<root>/splits/` (the official
repository's `dataset/splits/` copied in), `<root>/` (where DeepfakeBench and SBI keep them) and
`<root>/dataset/splits/`. The methods are `methods` when given (each must be there), else those
whose folder holds this compression level; each absent one is named once in a LayoutWarning.
"""

from __future__ import annotations

import json
from pathlib import Path

from fbifpn.data.sources.base import (
    LayoutError,
    ScanOptions,
    VideoEntry,
    note,
    require,
    taken,
    video_id,
)

METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter")
MASKED = {"Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"}
SPLITS = ("train", "val", "test")


def split_folder(root: Path, splits_dir: Path | None = None) -> Path:
    """Where train/val/test.json are: `splits_dir`, or the first usual place that has train.json."""
    if splits_dir is not None:
        return require(Path(splits_dir), "FF++ split folder (--splits)")
    places = [root / "splits", root, root / "dataset" / "splits"]
    for place in places:
        if (place / "train.json").is_file():
            return place
    raise LayoutError(
        f"FF++ split lists: expected train.json, val.json and test.json in one of "
        f"{', '.join(str(p) for p in places)} (or name their folder with --splits)"
    )


def _methods(manip: Path, compression: str, methods: tuple[str, ...] | None, dataset: str) -> list[str]:
    if methods:
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise LayoutError(f"FF++ method {unknown[0]!r}: expected one of {', '.join(METHODS)}")
        for m in methods:
            require(manip / m / compression / "videos", f"FF++ {m} videos")
        return list(methods)
    present = [m for m in METHODS if (manip / m / compression / "videos").is_dir()]
    if not present:
        raise LayoutError(
            f"FF++ methods: expected one of {', '.join(METHODS)} with {compression}/videos under {manip}"
        )
    for m in METHODS:
        if m not in present:
            note(
                f"{dataset} {m}: no {manip / m / compression / 'videos'}, so this method is left out "
                "(name the methods with --methods to require them)",
                dataset=dataset,
                change="method absent",
                method=m,
            )
    return present


def family(dataset: str, name: str) -> str:
    """The target video: fake `000_003` puts face 003 into video 000, so it is made from 000 (the
    same at every method and compression level, so one family spans them all)."""
    return video_id(dataset, name.split("_")[0])


# The level a layout reads by default; None where levels are not separate folders.
DEFAULT_COMPRESSION = "c23"
TAKES = frozenset(["compression", "dataset", "methods", "splits_dir"])


def scan(root: Path, options: ScanOptions | None = None) -> list[VideoEntry]:
    options = taken(options, TAKES, "ffpp")
    compression, dataset = options.compression or DEFAULT_COMPRESSION, options.dataset or "FF++"
    methods, splits_dir = options.methods, options.splits_dir
    root = Path(root)
    require(root, "FaceForensics++ root")
    lists = split_folder(root, splits_dir)
    split_of: dict[str, str] = {}
    pairs: dict[str, list[tuple[str, str]]] = {}
    for split in SPLITS:  # test last: a video it lists is test
        path = require(lists / f"{split}.json", f"FF++ {split} split list")
        try:
            pairs[split] = [(str(a), str(b)) for a, b in json.loads(path.read_text())]
        except (ValueError, TypeError) as e:
            raise LayoutError(f"{path}: expected a JSON list of [a, b] pairs ({e})") from e
        for a, b in pairs[split]:
            for v in (a, b):
                if split_of.get(v, split) != split:
                    note(
                        f"{path}: video {v} is also in {split_of[v]}.json: it is {split} only",
                        dataset=dataset,
                        change="video in two split lists",
                        video=v,
                    )
                split_of[v] = split
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
            family=family(dataset, name),
        )
        for name, split in sorted(split_of.items())
    ]
    manip = require(root / "manipulated_sequences", "FF++ manipulated videos")
    present = _methods(manip, compression, methods, dataset)
    fake_split = {f"{a}_{b}": s for s, ps in pairs.items() for a, b in ps} | {
        f"{b}_{a}": s for s, ps in pairs.items() for a, b in ps
    }
    for method in present:
        folder = manip / method / compression / "videos"
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
                    family=family(dataset, name),
                )
            )
    if not any(e.path.is_file() for e in entries):
        raise LayoutError(f"{root}: no FF++ video of the split lists was found at compression {compression}")
    return entries
