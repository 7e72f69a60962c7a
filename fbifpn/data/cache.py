"""The data a run trains on: a given manifest, or the synthetic benchmark generated and prepared on
first use into runs/data/<size>-seed<N>/ and runs/prep/<dataset>-<size>-seed<N>/, shared by every
entry point (CLI, make demo, notebooks).

A synthetic video's family is its scene, from the benchmark's scene record: finer than what the
layout's own rule can read (Celeb-DF's celebrity) and known where the layout records nothing
(DFDC's test folder)."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd

from fbifpn import atomic
from fbifpn.config import Config
from fbifpn.data.prep import PrepOptions, prep, record_options, recorded_options
from fbifpn.data.sources import LAYOUTS, ScanOptions, VideoEntry
from fbifpn.data.synthetic import generate
from fbifpn.data.synthetic.generate import MARKER, SCENES, read_scenes
from fbifpn.data.synthetic.methods import METHODS

LAYOUT_OF = {"synth-ff": "ffpp", "synth-cdf": "celebdf", "synth-dfdc": "dfdc"}


def default_prep_out(root: Path, compression: str | None = None) -> Path | None:
    """runs/data/<size>-seed<N>/<dataset> -> runs/prep/<dataset>[-<compression>]-<size>-seed<N>
    (the compression for the FF++ layout, whose levels are separate videos); None elsewhere."""
    root = Path(root).resolve()
    if root.parent.parent.name == "data" and root.name.startswith("synth-"):
        name = f"{root.name}-{compression}" if compression else root.name
        return root.parent.parent.parent / "prep" / f"{name}-{root.parent.name}"
    return None


def synthetic_prep_options(cfg: Config) -> PrepOptions:
    """The options the synthetic benchmark is prepared with: sidecar faces, prep's box crops."""
    return PrepOptions(frames=cfg.data.prep_frames, size=cfg.data.crop_size)


def in_scenes(entries: list[VideoEntry], root: Path) -> list[VideoEntry]:
    """The entries of generated dataset `root`, each with its scene as its family."""
    scene_of = read_scenes(root)
    found = []
    for e in entries:
        rel = e.path.relative_to(root).as_posix()
        if rel not in scene_of:
            raise ValueError(f"{root / SCENES}: no scene for {rel} (a video the plans do not have)")
        found.append(replace(e, family=scene_of[rel]))
    return found


def add_families(manifest: Path, entries: list[VideoEntry]) -> None:
    """Give a manifest prepared before manifests had families its entries' families, in place: its
    crops (and the runs trained on them) stay valid, and every other cell is kept as written."""
    df = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    family_of = {e.video_id: e.family for e in entries}
    if unknown := sorted(set(df["video_id"]) - set(family_of)):
        raise ValueError(f"{manifest}: video {unknown[0]} is not in the benchmark; prepare it again")
    df.insert(df.columns.get_loc("video_id") + 1, "family", df["video_id"].map(family_of))
    atomic.write_csv(df, manifest)


def prepared_manifest(
    cfg: Config, dataset: str | None = None, progress: bool = True, split: str | None = None
) -> Path:
    """The manifest folder for `cfg.data` (made if missing). `dataset` picks another synthetic set
    of the same benchmark, e.g. synth-cdf for a cross-dataset test. `split` cuts only that split's
    videos, into a folder of its own, for a set that is only tested on (FF++ at another compression
    level: 250 of its 680 videos at demo size); where the whole set is prepared already, that is
    used."""
    if cfg.data.manifest and dataset is None:
        path = Path(cfg.data.manifest)
        if not path.exists():
            raise FileNotFoundError(
                f"data.manifest: {path} does not exist (run `python -m fbifpn prep` first)"
            )
        return path
    name = dataset or cfg.data.dataset
    root = (
        generate(size=cfg.data.synthetic, seed=cfg.data.seed, workers=os.cpu_count(), progress=progress)
        / name
    )
    layout = LAYOUTS[LAYOUT_OF[name]]
    # The FF++ layout keeps each level in its own folder, and its methods are the benchmark's four
    # (FF++'s FaceShifter is not missing from it); the other layouts take neither option.
    extra = {"compression": cfg.data.compression, "methods": METHODS} if LAYOUT_OF[name] == "ffpp" else {}
    out = default_prep_out(root, extra.get("compression"))
    if split is not None and not (out / "manifest.csv").is_file():
        out = out.with_name(f"{out.name}-{split}")
    marker = (root.parent / MARKER).read_text()
    # A cache without the marker predates it: its version is unknown, so it is made again too.
    made_from = (out / MARKER).read_text() if (out / MARKER).is_file() else None
    if out.exists() and made_from != marker:
        print(f"{out}: prepared from another version of the benchmark; preparing it again")
        shutil.rmtree(out)
    options = synthetic_prep_options(cfg)
    manifest = out / "manifest.csv"
    if not manifest.is_file():
        entries = in_scenes(layout.scan(root, ScanOptions(dataset=name, **extra)), root)
        if split is not None:
            entries = [e for e in entries if e.split == split]
        prep(entries, out, options, workers=os.cpu_count() or 1, progress=progress)
        (out / MARKER).write_text(marker)
        return out
    if recorded_options(out) is None:  # a cache prepared before prep recorded its options
        record_options(out, options)
    if "family" not in pd.read_csv(manifest, nrows=0).columns:  # prepared before families
        print(f"{manifest}: adding each video's family from {root / SCENES} (crops kept)")
        add_families(manifest, in_scenes(layout.scan(root, ScanOptions(dataset=name, **extra)), root))
    return out
