"""What every layout adapter returns: a list of videos (or, for DeepfakeBench, of crop sequences)
with label, split, method and compression, found without decoding anything."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path


class LayoutError(FileNotFoundError):
    """The tree does not have the layout its adapter expects; the message names what is missing."""


@dataclass(frozen=True)
class VideoEntry:
    dataset: str
    split: str  # train | val | test
    compression: str  # raw | c23 | c40 | "" where the dataset has no levels
    method: str  # "real" or the manipulation's name
    label: int  # 0 real, 1 fake
    video_id: str  # globally unique: dataset/method[/compression]/name
    path: Path  # the video file (or, for DeepfakeBench, the crop folder)
    mask_path: Path | None = None  # a mask video the layout promises
    has_mask: bool = True  # False: a fake whose dataset gives no mask
    frames: tuple[Path, ...] = field(default=())  # DeepfakeBench: the listed crops
    masks: tuple[Path | None, ...] = field(default=())
    landmarks: tuple[Path | None, ...] = field(default=())


def unmasked_entry(dataset: str, split: str, method: str, label: int, vid: str, path: Path) -> VideoEntry:
    """A video of a dataset that ships no masks and no compression levels (Celeb-DF, DFDC, DFDCP):
    a real's mask is known to be empty, a fake's is unknown, so only reals have one."""
    return VideoEntry(dataset, split, "", method, label, vid, path, has_mask=label == 0)


def require(path: Path, what: str) -> Path:
    if not path.exists():
        raise LayoutError(f"{what}: expected {path}, which does not exist")
    return path


def video_id(*parts: str) -> str:
    return "/".join(p for p in parts if p)


def carve_val(keys: list[str], fraction: float = 0.1) -> set[str]:
    """A deterministic validation subset of identity (or part) keys: those whose CRC32 falls in the
    lowest `fraction`, and at least one key when there are two or more. Stable when keys are added."""
    ranked = sorted(set(keys), key=lambda k: (zlib.crc32(k.encode()), k))
    n = max(1 if len(ranked) >= 2 else 0, round(fraction * len(ranked)))
    return set(ranked[:n])


def read_index(path: Path) -> dict[str, dict]:
    """A JSON index of video name -> {"label": ..., ...} (DFDC's metadata.json, DFDCP's dataset.json)."""
    try:
        index = json.loads(path.read_text())
    except ValueError as e:
        raise LayoutError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(index, dict):
        raise LayoutError(
            f"{path}: expected a JSON object of video name -> {{label, ...}}, found a {type(index).__name__}"
        )
    bad = next((name for name, info in index.items() if not isinstance(info, dict)), None)
    if bad is not None:
        raise LayoutError(f"{path}: entry {bad!r} is {index[bad]!r}, expected an object with a label")
    return index
