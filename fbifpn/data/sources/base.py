"""What every layout adapter returns: a list of videos (or, for DeepfakeBench, of crop sequences)
with label, split, method and compression, found without decoding anything."""

from __future__ import annotations

import json
import re
import warnings
import zlib
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePosixPath, PureWindowsPath


class LayoutError(FileNotFoundError):
    """The tree does not have the layout its adapter expects; the message names what is missing."""


class LayoutWarning(UserWarning):
    """What an adapter did where a tree or an index disagrees with the official layout (a method
    not downloaded, a test video also listed under train). `details` holds the counts that
    prep_report.json records beside the message."""

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details


def note(message: str, **details) -> None:
    warnings.warn(LayoutWarning(message, **details), stacklevel=3)


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
    in_place: bool = False  # DeepfakeBench: already cropped, `frames` lists the crops to read
    frames: tuple[Path, ...] = field(default=())
    masks: tuple[Path | None, ...] = field(default=())
    landmarks: tuple[Path | None, ...] = field(default=())
    # The videos made from one source (a real and its fakes; see each adapter for its rule), which
    # statistics resample together: globally unique, prefixed by the dataset like `video_id`. Left
    # empty, the video is its own family (a source that is not recorded can only be assumed apart).
    family: str = field(default="", kw_only=True)

    def __post_init__(self) -> None:
        if not self.family:
            object.__setattr__(self, "family", self.video_id)


@dataclass(frozen=True)
class ScanOptions:
    """What every adapter's `scan(root, options)` may be told besides the root. Each adapter names
    the options its layout has a use for in `TAKES` and refuses the others by name."""

    dataset: str | None = None  # the name its entries carry; None: the layout's own
    compression: str | None = None  # FF++: the level's folder; DeepfakeBench: the level to read
    methods: tuple[str, ...] | None = None  # FF++: the manipulations required (None: those present)
    splits_dir: Path | None = None  # FF++: the folder of train/val/test.json
    train_list: Path | None = None  # Celeb-DF: an index that names the train videos
    index: Path | None = None  # DeepfakeBench: its JSON index of crops
    frames: int | None = 32  # DeepfakeBench: crops read per video, evenly spaced (None: all listed)

    def given(self) -> set[str]:
        """The options set to something other than their default."""
        default = ScanOptions()
        return {f.name for f in fields(self) if getattr(self, f.name) != getattr(default, f.name)}


def taken(options: ScanOptions | None, takes: frozenset[str], layout: str) -> ScanOptions:
    """`options` (the defaults when None) once none is one that `layout` has no use for."""
    options = options or ScanOptions()
    if unused := sorted(options.given() - takes):
        raise LayoutError(
            f"the {layout} layout takes no {unused[0]} option (it takes: {', '.join(sorted(takes)) or 'none'})"
        )
    return options


def unmasked_entry(
    dataset: str, split: str, method: str, label: int, vid: str, path: Path, family: str = ""
) -> VideoEntry:
    """A video of a dataset that ships no masks and no compression levels (Celeb-DF, DFDC, DFDCP):
    a real's mask is known to be empty, a fake's is unknown, so only reals have one."""
    return VideoEntry(dataset, split, "", method, label, vid, path, has_mask=label == 0, family=family)


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


def frame_number(path: Path | str) -> int | None:
    """The frame number in a crop's name (`056.png`, `frame_0056.png`), the last run of digits."""
    digits = re.findall(r"\d+", PurePosixPath(str(path).replace("\\", "/")).stem)
    return int(digits[-1]) if digits else None


def in_time_order(paths: list[str]) -> list[str]:
    """Crops sorted by frame number, not by name or by the filesystem's listing order."""

    def key(p: str) -> tuple:
        n = frame_number(p)
        return (n is None, n or 0, p)

    return sorted(paths, key=key)


def listed_parts(listed: str) -> tuple[tuple[str, ...], bool]:
    """The parts of a path written on Windows (`T:\\data\\x.png`, `a\\b.png`) or on POSIX, and
    whether it was absolute where it was written."""
    if "\\" in listed or re.match(r"^[A-Za-z]:", listed):
        win = PureWindowsPath(listed)
        absolute = bool(win.drive or win.root)
        return win.parts[1:] if absolute else win.parts, absolute
    posix = PurePosixPath(listed)
    return (posix.parts[1:] if posix.is_absolute() else posix.parts), posix.is_absolute()


def below(parts: tuple[str, ...], folder: str) -> tuple[str, ...] | None:
    """The part of a path from the last `folder` among its directories on, e.g. from
    /data/rgb/Celeb-DF-v2/Celeb-real/frames/x/0.png the part from Celeb-DF-v2; None if absent."""
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == folder:
            return parts[i:]
    return None
