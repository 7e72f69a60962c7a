"""Data already preprocessed by DeepfakeBench (Yan et al., NeurIPS 2023): 256 px face crops and the
JSON index its `preprocessing/rearrange.py` writes, read straight into our manifest without re-cropping.

    { <dataset>: { <label_name>: { train|val|test: { [c23|c40|raw:] { <video>: {"label": ..., "frames": [...]}}}}}}

Label names ending in "real" (FF-real, CelebDFv2_real, DFDC_Real, ...) are 0, all others 1. Video ids
are dataset/label_name[/level]/video, since FF++'s `000_003` exists once per method.

What the indexes hold is not always a split. `rearrange.py` lists every Celeb-DF video under train
and its test videos again under test and val; DFDCP's val is its test; DFDC's val is its train, with
`label` and `frames` keys beside the videos; DFD and UADFV list every video in all three. One rule
makes them safe: a video under `test` is test and nothing else (the official test list); val is the
index's own only when it shares no video with train or test (FF++'s official val), and is otherwise
carved out of the training videos by identity, as the raw adapters do. Every disagreement is said
as a `LayoutWarning` with its counts, which prep records in prep_report.json.

Frames are sorted by frame number before they are sampled evenly: the index lists them in the
order the filesystem gave. Paths may be relative to the data root, use Windows separators, or be
absolute on the machine that wrote the index (`T:\\rgb\\FaceForensics++\\...`, `/data/rgb/...`):
they are mapped onto `root` by their part from the dataset's folder down. Masks come from the
entry's `masks` list or lie next to the frames (`masks/<video>/<i>.png`, landmarks likewise as
`.npy`); a real without a mask file has an all-zero mask, a fake without one has no ground truth
(`has_mask` false). A video's family follows the raw adapter of its dataset (see `_family`).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from fbifpn.data.sources import celebdf, dfdc
from fbifpn.data.sources.base import (
    LayoutError,
    ScanOptions,
    VideoEntry,
    below,
    carve_val,
    frame_number,
    in_time_order,
    listed_parts,
    note,
    require,
    taken,
    video_id,
)
from fbifpn.data.video import evenly_spaced

LEVELS = ("c23", "c40", "raw")
SPLITS = ("train", "val", "test")
DFDC_PART = re.compile(r"dfdc_train_part_\d+")  # a training part folder of DFDC
STRAY = {"label", "frames", "masks"}  # what rearrange.py leaves beside DFDC's videos
PER_METHOD = {"FF-DF", "FF-F2F", "FF-FS", "FF-NT", "FF-FH"}  # FF-DF.json etc.: one method + FF-real
FOLDER = {"DeepFakeDetection": "FaceForensics++", "FaceShifter": "FaceForensics++"} | dict.fromkeys(
    PER_METHOD, "FaceForensics++"
)


def dataset_name(key: str) -> str:
    """The dataset a top-level key stands for: a per-method index (`FF-DF`) is FaceForensics++."""
    return "FaceForensics++" if key in PER_METHOD else key


class _Resolver:
    """Maps the index's frame paths onto `root`: the folder that holds the dataset's folder, that
    folder itself, or a renamed copy of it. A path becomes `root` joined with the path less its
    first k parts. k is found by looking for the first path of each prefix (what comes before the
    dataset's folder, absolute or not) and then reused without a look."""

    def __init__(self, root: Path, folder: str):
        self.root = root
        self.folder = folder
        self.drop: dict[tuple[bool, tuple[str, ...]], int] = {}

    def __call__(self, listed: str) -> Path:
        parts, absolute = listed_parts(listed)
        tail = below(parts, self.folder)
        at = None if tail is None else len(parts) - len(tail)
        if ".." in parts[at or 0 :]:
            raise LayoutError(f"{listed}: '..' below the dataset's folder would leave --root")
        key = (absolute, parts[:at]) if at is not None else None
        if key in self.drop:
            return self.root.joinpath(*parts[self.drop[key] :])
        # The dataset's folder under root; root as that folder; a relative path as it is; then
        # every shorter tail, for a copy whose folders were renamed.
        tries = [at, at + 1] if at is not None else [] if absolute else [0]
        for k in dict.fromkeys([*tries, *range(1, len(parts) - 1)]):
            if self.root.joinpath(*parts[k:]).exists():
                if key is not None:
                    self.drop[key] = k
                return self.root.joinpath(*parts[k:])
        return self.root.joinpath(*parts[tries[0] if tries else 0 :])  # missing: prep names it


def _read(json_path: Path) -> dict:
    if require(json_path, "DeepfakeBench JSON index").is_dir():
        raise LayoutError(f"{json_path}: a folder; --json is the index file (e.g. DFDC.json)")
    try:
        index = json.loads(json_path.read_text(encoding="utf-8-sig"))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise LayoutError(f"{json_path}: not valid JSON ({type(e).__name__}: {e})") from None
    if not isinstance(index, dict) or not index:
        raise LayoutError(
            f"{json_path}: expected a JSON object {{<dataset>: {{<label>: {{train|val|test: ...}}}}}}"
        )
    return index


def _object(json_path: Path, keys: tuple[str, ...], value, what: str) -> dict:
    if not isinstance(value, dict):
        raise LayoutError(
            f"{json_path}: {'/'.join(keys)} is a {type(value).__name__}, expected an object of {what}"
        )
    return value


def _listed(json_path: Path, top: str, by_label) -> tuple[dict, Counter]:
    """(label_name, level, video) -> {split: info}, and the stray keys found beside the videos."""
    videos: dict[tuple[str, str, str], dict[str, dict]] = {}
    stray: Counter = Counter()
    shapes: dict[str, str] = {}  # label name -> "levels" or "videos", the same in every split
    for label_name, by_split in _object(json_path, (top,), by_label, "label names").items():
        by_split = _object(json_path, (top, label_name), by_split, "splits (train, val, test)")
        for split, content in by_split.items():
            keys = (top, label_name, split)
            if split not in SPLITS:
                raise LayoutError(f"{json_path}: {'/'.join(keys)}: expected a split train, val or test")
            content = _object(json_path, keys, content, "videos")
            levelled = sorted(set(content) & set(LEVELS))
            others = sorted(
                k
                for k in content
                if k not in LEVELS and not (k in STRAY and not isinstance(content[k], dict))
            )
            if levelled and others:
                raise LayoutError(
                    f"{json_path}: {'/'.join(keys)} mixes compression levels ({', '.join(levelled)}) "
                    f"with videos ({others[0]}, ...)"
                )
            if content and (levelled or others):
                kind = "levels" if levelled else "videos"
                if shapes.setdefault(label_name, kind) != kind:
                    raise LayoutError(
                        f"{json_path}: {'/'.join(keys)} lists {kind}, other splits of {top}/{label_name} "
                        f"{shapes[label_name]}: one video would get two ids"
                    )
            groups = [(lv, content[lv]) for lv in levelled] if levelled else [("", content)]
            for level, by_video in groups:
                at = (*keys, level) if level else keys
                for name, info in _object(json_path, at, by_video, "videos").items():
                    if name in STRAY and not isinstance(info, dict):
                        stray["/".join((*at, name))] += 1
                        continue
                    _object(json_path, (*at, name), info, "frames and label")
                    frames = info.get("frames")
                    if not isinstance(frames, list) or not all(isinstance(f, str) for f in frames):
                        raise LayoutError(
                            f"{json_path}: {'/'.join((*at, name))}/frames: expected a list of paths"
                        )
                    masks = info.get("masks", [])
                    if not isinstance(masks, list) or not all(isinstance(m, str) for m in masks):
                        raise LayoutError(
                            f"{json_path}: {'/'.join((*at, name))}/masks: expected a list of paths"
                        )
                    videos.setdefault((label_name, level, name), {}).setdefault(split, info)
            if levelled and (extra := set(content) & STRAY):
                stray.update("/".join((*keys, k)) for k in extra)
    return videos, stray


def _identity(dataset: str, name: str, info: dict) -> str:
    """Whose face a video shows, so that carving val keeps a person (or a DFDC part) on one side:
    Celeb-DF's target celebrity as the raw adapter takes it, DFDC's training part from the frame
    paths, otherwise the first token of the name (DFDCP's subject, FF++'s target video)."""
    if dataset.startswith("Celeb-DF"):
        return celebdf.identity(name)
    if dataset == "DFDC" and info["frames"]:
        part = next((p for p in listed_parts(info["frames"][0])[0] if DFDC_PART.fullmatch(p)), None)
        if part:
            return part
    return name.split("_")[0]


# Datasets whose video names begin with the source they were made from: FF++'s target video (`000`
# of `000_003`, also in FaceShifter's and DeepFakeDetection's actor-first names) and DFDCP's subject.
SOURCE_FIRST = {"FaceForensics++", "FaceShifter", "DeepFakeDetection", "DFDCP"}


def _family(dataset: str, name: str, video: str) -> str:
    """The raw adapters' rules, by the dataset the index entry belongs to (`name`: what its entries
    are called): Celeb-DF's celebrity, the first token of the name where it names the source
    (SOURCE_FIRST), else "": the video is its own family (DFDC's index keeps no `original`, and an
    unknown dataset's names cannot be trusted to name one)."""
    if dataset.startswith("Celeb-DF"):
        return video_id(name, celebdf.identity(video))
    if dataset in SOURCE_FIRST:
        return video_id(name, video.split("_")[0])
    return ""


def _splits(top: str, dataset: str, videos: dict) -> dict[tuple[str, str, str], str]:
    """One split per video, by the module's rule, saying every change as a LayoutWarning."""
    listed = {key: set(by_split) for key, by_split in videos.items()}
    before = {s: sum(s in v for v in listed.values()) for s in SPLITS}
    test = {k for k, s in listed.items() if "test" in s}
    val = {k for k, s in listed.items() if "val" in s}
    train = {k for k, s in listed.items() if "train" in s}
    if leaked := test & train:
        note(
            f"{top}: {len(leaked)} videos listed under test are also listed under train: they are test "
            "only (the dataset's test list), never trained or validated on",
            dataset=top,
            change="test videos removed from train",
            videos=len(leaked),
        )
    own_val = bool(val) and not val & (test | train)
    split = {k: "test" if k in test else "val" if own_val and k in val else "train" for k in listed}
    if not own_val:
        pool = sorted(k for k, s in split.items() if s == "train")
        ident = {k: _identity(dataset, k[2], next(iter(videos[k].values()))) for k in pool}
        parts = set(ident.values())
        if dataset == "DFDC" and all(DFDC_PART.fullmatch(p) for p in parts):
            held, how = dfdc.held_out_parts(sorted(parts)), "the last ~10 % of training parts"
        else:
            held, how = carve_val(list(ident.values())), "~10 % of training identities, by CRC32"
        for k in pool:
            if ident[k] in held:
                split[k] = "val"
        carved = sum(s == "val" for s in split.values())
        if not val:
            why = "the index has no val"
        elif val & test:
            why = f"the index's val repeats {len(val & test)} test videos"
        else:
            why = f"the index's val repeats {len(val & train)} train videos"
        only_val = val - test - train
        if only_val:
            why += f"; its {len(only_val)} videos listed only under val join the training videos"
        done = f"validation is carved from training videos instead ({carved} videos, {how})"
        if not held:
            done = "no validation can be carved: the training videos have fewer than two identities"
        if val or pool:
            note(
                f"{top}: {why}; {done}",
                dataset=top,
                change="val carved from train",
                listed_val=len(val),
                carved=carved,
            )
    after = {s: sum(v == s for v in split.values()) for s in SPLITS}
    if before != after:
        note(
            f"{top}: the index lists train {before['train']}, val {before['val']}, test {before['test']}; "
            f"kept train {after['train']}, val {after['val']}, test {after['test']}, each video once",
            dataset=top,
            change="splits",
            listed=before,
            kept=after,
        )
    return split


def _choose_level(json_path: Path, top: str, videos: dict, compression: str | None) -> str | None:
    """The one compression level to read (of an index that has levels), said when it is chosen or
    when it lacks a split that another level has."""
    levels = sorted({level for _, level, _ in videos} - {""})
    if not levels:
        if compression:
            note(
                f"{top}: the index has no compression levels; --compression {compression} is ignored",
                dataset=top,
                change="compression ignored",
            )
        return None
    if compression and compression not in levels:
        raise LayoutError(
            f"{json_path}: {top} has no video at compression {compression} (it has {', '.join(levels)})"
        )
    level = compression or ("c23" if "c23" in levels else levels[0])
    if not compression and len(levels) > 1:
        note(
            f"{top}: the index holds compression levels {', '.join(levels)}; reading {level} "
            "(choose with --compression)",
            dataset=top,
            change="compression chosen",
            level=level,
        )
    have = {s for (_, lv, _), by in videos.items() if lv == level for s in by}
    for split in SPLITS:
        elsewhere = sum(split in by for (_, lv, _), by in videos.items() if lv != level)
        if split not in have and elsewhere:
            note(
                f"{top}: no {split} video at {level}, though {elsewhere} are listed at other levels",
                dataset=top,
                change="split missing at this level",
                split=split,
                level=level,
            )
    return level


def _sibling(frame: Path, kind: str, suffix: str) -> Path:
    """frames/<video>/<i>.png -> <kind>/<video>/<i><suffix>, swapping the nearest 'frames' folder."""
    parts = list(frame.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "frames":
            parts[i] = kind
            return Path(*parts).with_suffix(suffix)
    return frame.with_name(frame.stem + f"_{kind}{suffix}")


def _frame_key(path) -> int | str:
    """What pairs a mask with its frame: the frame number, or the name when there is none."""
    n = frame_number(path)
    return n if n is not None else listed_parts(str(path))[0][-1].rsplit(".", 1)[0]


def _entry(dataset, split, label_name, level, name, info, resolve, frames, json_path, family) -> VideoEntry:
    label = 0 if label_name.lower().endswith("real") else 1
    listed = in_time_order(info["frames"])
    keep = [resolve(listed[i]) for i in evenly_spaced(len(listed), frames)]
    listed_masks = {_frame_key(m): m for m in info.get("masks", [])}
    masks = []
    for p in keep:
        candidates = [resolve(listed_masks[n])] if (n := _frame_key(p)) in listed_masks else []
        masks.append(next((m for m in [*candidates, _sibling(p, "masks", ".png")] if m.is_file()), None))
    landmarks = tuple(m if (m := _sibling(p, "landmarks", ".npy")).is_file() else None for p in keep)
    return VideoEntry(
        dataset,
        split,
        level,
        label_name if label else "real",
        label,
        video_id(dataset, label_name, level, name),
        keep[0].parent if keep else json_path,
        has_mask=label == 0 or all(m is not None for m in masks),
        in_place=True,
        frames=tuple(keep),
        masks=tuple(masks),
        landmarks=landmarks,
        family=family,
    )


def _apart_from_test(top: str, entries: list[VideoEntry]) -> list[VideoEntry]:
    """A train or val video whose crops are a test video's (one video under two names or labels)
    would train on the test set: it is left out."""
    tested = {p for e in entries if e.split == "test" for p in e.frames}
    kept = [e for e in entries if e.split == "test" or not tested.intersection(e.frames)]
    if dropped := len(entries) - len(kept):
        note(
            f"{top}: {dropped} train or val videos share crops with test videos (one video under two "
            "names): they are left out",
            dataset=top,
            change="videos sharing test crops dropped",
            videos=dropped,
        )
    return kept


def _once(json_path: Path, entries: list[VideoEntry]) -> list[VideoEntry]:
    """Two top-level keys can name one dataset (FF-DF and FF-F2F both hold FF-real): a video they
    share is kept once, and one they place in different splits is an error."""
    first: dict[str, VideoEntry] = {}
    for e in entries:
        if e.video_id in first and first[e.video_id].split != e.split:
            raise LayoutError(
                f"{json_path}: {e.video_id} is listed as {first[e.video_id].split} and as {e.split} "
                "under two dataset keys"
            )
        first.setdefault(e.video_id, e)
    return list(first.values())


# The level a layout reads by default; None where levels are not separate folders.
DEFAULT_COMPRESSION = None
TAKES = frozenset(["compression", "dataset", "frames", "index"])


def scan(root: Path, options: ScanOptions | None = None) -> list[VideoEntry]:
    """The index's videos with one split each (see the module's rule); `dataset` renames them."""
    options = taken(options, TAKES, "deepfakebench")
    if options.index is None:
        raise LayoutError("the deepfakebench layout needs its JSON index (the index option, --json)")
    json_path, root = Path(options.index), Path(root)
    frames, compression, dataset = options.frames, options.compression, options.dataset
    index = _read(json_path)
    if not require(root, "DeepfakeBench data root").is_dir():
        raise LayoutError(f"{root}: not a folder; --root is the folder that holds the dataset's folder")
    entries = []
    for top, by_label in index.items():
        videos, stray = _listed(json_path, top, by_label)
        if stray:
            note(
                f"{top}: ignored {sum(stray.values())} keys that are not videos beside the videos "
                f"({', '.join(sorted(stray))})",
                dataset=top,
                change="stray keys ignored",
                keys=sorted(stray),
            )
        level = _choose_level(json_path, top, videos, compression)
        if level:
            videos = {k: v for k, v in videos.items() if k[1] in ("", level)}
        name = dataset or dataset_name(top)
        resolve = _Resolver(root, FOLDER.get(top, top))
        found = []
        for key, split in _splits(top, dataset_name(top), videos).items():
            label_name, lv, video = key
            info = videos[key].get(split) or next(iter(videos[key].values()))
            family = _family(dataset_name(top), name, video)
            found.append(_entry(name, split, label_name, lv, video, info, resolve, frames, json_path, family))
        if empty := sum(not e.frames for e in found):
            note(
                f"{top}: {empty} videos list no frame; prep reports each as failed",
                dataset=top,
                change="videos without frames",
                videos=empty,
            )
        entries += _apart_from_test(top, found)
    if not entries:
        raise LayoutError(f"{json_path}: no video found in the index")
    entries = _once(json_path, entries)
    firsts = [e.frames[0] for e in entries if e.frames]
    if firsts and not any(p.is_file() for p in firsts):
        raise LayoutError(
            f"{json_path}: none of the listed frames is under {root}; the first would be {firsts[0]} "
            "(--root is the folder that holds the dataset's folder, e.g. DeepfakeBench's datasets/rgb)"
        )
    return sorted(entries, key=lambda e: e.video_id)
