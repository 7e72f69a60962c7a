"""DFDC Preview (Dolhansky et al., 2019), a different benchmark from the full DFDC.

    <root>/dataset.json  {"method_A/1224068/1224068_A_001/x.mp4": {"label": "fake"|"real", "set": "train"|"test", ...}}

No validation split exists: about 10 % of training identities (the folder after the method) are held
out as val, deterministically.
"""

from __future__ import annotations

from pathlib import Path

from fbifpn.data.sources.base import (
    LayoutError,
    ScanOptions,
    VideoEntry,
    carve_val,
    read_index,
    require,
    taken,
    unmasked_entry,
    video_id,
)


def _identity(rel: str) -> str:
    """The subject filmed: the folder after the method (`method_A/<subject>/...`, and likewise
    `original_videos/<subject>/...`), or the name of a video filed directly under its method."""
    parts = Path(rel).parts
    return parts[1] if len(parts) > 2 else Path(rel).stem


# The level a layout reads by default; None where levels are not separate folders.
DEFAULT_COMPRESSION = None
TAKES = frozenset(["dataset"])


def scan(root: Path, options: ScanOptions | None = None) -> list[VideoEntry]:
    options = taken(options, TAKES, "dfdcp")
    dataset = options.dataset or "DFDCP"
    root = Path(root)
    index_path = require(require(root, "DFDCP root") / "dataset.json", "DFDCP index")
    index = read_index(index_path)
    rows = []
    for rel, info in sorted(index.items()):
        label = {"real": 0, "fake": 1}.get(str(info.get("label", "")).lower())
        split = str(info.get("set", "")).lower()
        if label is None or split not in ("train", "test"):
            raise LayoutError(
                f"{index_path}: {rel} has label {info.get('label')!r} and set {info.get('set')!r}; "
                "expected real|fake and train|test"
            )
        rows.append((rel.replace("\\", "/"), label, split))
    val_ids = carve_val([_identity(rel) for rel, _, split in rows if split == "train"])
    entries = []
    for rel, label, split in rows:
        if split == "train" and _identity(rel) in val_ids:
            split = "val"
        method = "real" if label == 0 else Path(rel).parts[0]
        entries.append(
            unmasked_entry(
                dataset,
                split,
                method,
                label,
                video_id(dataset, rel.removesuffix(".mp4")),
                root / rel,
                # the subject: a fake is filed under the subject whose footage it was made from
                family=video_id(dataset, _identity(rel)),
            )
        )
    return entries
