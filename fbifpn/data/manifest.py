"""The manifest: one CSV row per face crop, the hand-off from prep to datasets and metrics.

Paths in it are relative to the manifest's folder (crops that prep wrote) or absolute (crops read in
place, such as DeepfakeBench's). `load_manifest` resolves both and reads a folder of shard manifests
as their union.

`family` names the videos made from one source (a real and its fakes), which statistics resample
together; each adapter says how its layout records it. A manifest written before the column existed
reads with one `FamilyWarning`, each video its own family.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd

from fbifpn.config import one_line

COLUMNS = [
    "dataset",
    "split",
    "compression",
    "method",
    "label",
    "video_id",
    "family",
    "frame_idx",
    "face_idx",
    "image",
    "mask",
    "landmarks",
    "has_mask",
    "box_x0",
    "box_y0",
    "box_x1",
    "box_y1",
    "crop_x0",
    "crop_y0",
    "crop_x1",
    "crop_y1",
    "source",
]
SORT = ["video_id", "frame_idx", "face_idx"]
# What the readers of a manifest need; the face boxes and `source` are for provenance only, and
# `family` is filled in where a manifest predates it.
REQUIRED = [c for c in COLUMNS[:13] if c != "family"]


class FamilyWarning(UserWarning):
    """A manifest written before manifests recorded video families: each video is its own family."""


def warn_without_family(where: str) -> None:
    warnings.warn(
        FamilyWarning(
            f"{where}: written before manifests recorded video families (no family column); each video "
            "is its own family (family = video_id), so statistics resample single videos. Run the "
            "`python -m fbifpn prep` that made it again to record them (finished videos are not "
            "cropped again)"
        ),
        stacklevel=3,
    )


def frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.sort_values(SORT, kind="stable").reset_index(drop=True)


def read_csv(path: Path, warn: bool = True) -> pd.DataFrame:
    """One manifest CSV, checked. Without a family column (an older manifest) each video is its own
    family, said with a FamilyWarning unless `warn` is False; `attrs["family_recorded"]` says which."""
    try:
        df = pd.read_csv(
            path,
            dtype={"compression": str, "family": str, "mask": str, "landmarks": str},
            keep_default_na=False,
        )
    except (ValueError, UnicodeDecodeError) as e:  # pandas' parser and empty-data errors are ValueErrors
        raise ValueError(f"{path}: not a readable manifest CSV ({one_line(e)})") from None
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(
            f"{path}: not a manifest, it has no column {', '.join(missing)} (written by `fbifpn prep`?)"
        )
    for column, allowed in (("label", {-1, 0, 1}), ("frame_idx", None), ("face_idx", None)):
        values = pd.to_numeric(df[column], errors="coerce")
        bad = values.isna() | (values != values.round())
        if allowed is not None:
            bad |= ~values.isin(allowed)
        if bad.any():
            row = int(bad.to_numpy().argmax())
            wanted = "0 (real), 1 (fake) or -1 (unlabelled)" if allowed else "an integer"
            raise ValueError(
                f"{path}: row {row + 2}, column {column} is {str(df[column].iloc[row])!r}, expected {wanted}"
            )
        df[column] = values.astype(int)
    recorded = "family" in df.columns
    if recorded:
        _check_families(path, df)
    else:
        if warn:
            warn_without_family(str(path))
        df.insert(df.columns.get_loc("video_id") + 1, "family", df["video_id"].astype(str))
    df.attrs["family_recorded"] = recorded
    return df


def _check_families(path: Path, df: pd.DataFrame) -> None:
    """Every row names its family (`load_manifest` checks that all rows of a video name one)."""
    # read as text (keep_default_na=False): a family written as NaN or None is a missing one, not a name
    empty = df["family"].str.strip().isin(["", "nan", "NaN", "None", "NA", "<NA>"])
    if empty.any():
        row = int(empty.to_numpy().argmax())
        raise ValueError(
            f"{path}: row {row + 2}, column family is {df['family'].iloc[row]!r}, expected the family of video "
            f"{df['video_id'].iloc[row]} (every row of a manifest names one)"
        )


def load_manifest(path: Path) -> pd.DataFrame:
    """A manifest CSV, or a prep folder (its manifest.csv, else the union of its shard manifests),
    with `image`, `mask` and `landmarks` made absolute."""
    path = Path(path)
    if path.is_dir():
        files = (
            [path / "manifest.csv"]
            if (path / "manifest.csv").is_file()
            else sorted(path.glob("manifest.shard-*.csv"))
        )
        if not files:
            raise FileNotFoundError(
                f"{path}: no manifest.csv or manifest.shard-*.csv (run `python -m fbifpn prep`)"
            )
        base = path
    else:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such manifest")
        files, base = [path], path.parent
    tables = [read_csv(f, warn=False) for f in files]
    if old := [f for f, t in zip(files, tables, strict=True) if not t.attrs["family_recorded"]]:
        warn_without_family(
            str(old[0]) if len(old) == 1 else f"{path} ({len(old)} of its {len(files)} shards)"
        )
    df = pd.concat(tables, ignore_index=True)
    if df.empty:  # one empty shard is fine, all of them are not
        raise ValueError(f"{path}: the manifest has no rows (did every video fail? see prep_report.json)")
    splits = df.groupby("video_id")["split"].nunique()
    if (splits > 1).any():  # a test video that is also trained on: every number made from it is wrong
        vid = splits.index[splits.to_numpy().argmax()]
        found = sorted(df.loc[df["video_id"] == vid, "split"].unique())
        raise ValueError(f"{path}: video {vid} is in more than one split ({', '.join(found)})")
    families = df.groupby("video_id")["family"].nunique()
    if (families > 1).any():  # resampling by family would split one video's crops between draws
        vid = families.index[families.to_numpy().argmax()]
        found = sorted(df.loc[df["video_id"] == vid, "family"].unique())
        raise ValueError(f"{path}: video {vid} is in more than one family ({', '.join(found)})")
    for col in ("image", "mask", "landmarks"):
        df[col] = [str(base / v) if v and not os.path.isabs(v) else v for v in df[col]]
    df["has_mask"] = df["has_mask"].astype(str).str.lower().isin(["true", "1"])
    return df.sort_values(SORT, kind="stable").reset_index(drop=True)
