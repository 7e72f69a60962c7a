"""The data a run trains on: a given manifest, or the synthetic benchmark generated and prepared on
first use into runs/data/<size>-seed<N>/ and runs/prep/<dataset>-<size>-seed<N>/, shared by every
entry point (CLI, make demo, notebooks)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from fbifpn.config import Config
from fbifpn.data.prep import PrepOptions, prep, record_options, recorded_options
from fbifpn.data.sources import LAYOUTS, ScanOptions
from fbifpn.data.synthetic import generate
from fbifpn.data.synthetic.generate import MARKER
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


def prepared_manifest(cfg: Config, dataset: str | None = None, progress: bool = True) -> Path:
    """The manifest folder for `cfg.data` (made if missing). `dataset` picks another synthetic set
    of the same benchmark, e.g. synth-cdf for a cross-dataset test."""
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
    marker = (root.parent / MARKER).read_text()
    # A cache without the marker predates it: its version is unknown, so it is made again too.
    made_from = (out / MARKER).read_text() if (out / MARKER).is_file() else None
    if out.exists() and made_from != marker:
        print(f"{out}: prepared from another version of the benchmark; preparing it again")
        shutil.rmtree(out)
    options = synthetic_prep_options(cfg)
    if not (out / "manifest.csv").is_file():
        entries = layout.scan(root, ScanOptions(dataset=name, **extra))
        prep(entries, out, options, workers=os.cpu_count() or 1, progress=progress)
        (out / MARKER).write_text(marker)
    elif recorded_options(out) is None:  # a cache prepared before prep recorded its options
        record_options(out, options)
    return out
