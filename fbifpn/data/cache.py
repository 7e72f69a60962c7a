"""The data a run trains on: a given manifest, or the synthetic benchmark generated and prepared on
first use into runs/data/<size>-seed<N>/ and runs/prep/<dataset>-<size>-seed<N>/, shared by every
entry point (CLI, make demo, notebooks)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from fbifpn.config import Config

LAYOUT_OF = {"synth-ff": "ffpp", "synth-cdf": "celebdf", "synth-dfdc": "dfdc"}


def default_prep_out(root: Path, compression: str | None = None) -> Path | None:
    """runs/data/<size>-seed<N>/<dataset> -> runs/prep/<dataset>[-<compression>]-<size>-seed<N>
    (the compression for the FF++ layout, whose levels are separate videos); None elsewhere."""
    root = Path(root).resolve()
    if root.parent.parent.name == "data" and root.name.startswith("synth-"):
        name = f"{root.name}-{compression}" if compression else root.name
        return root.parent.parent.parent / "prep" / f"{name}-{root.parent.name}"
    return None


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
    from fbifpn.data.prep import PrepOptions, prep, record_options, recorded_options
    from fbifpn.data.sources import LAYOUTS
    from fbifpn.data.synthetic import generate
    from fbifpn.data.synthetic.generate import MARKER
    from fbifpn.data.synthetic.methods import METHODS

    name = dataset or cfg.data.dataset
    root = (
        generate(size=cfg.data.synthetic, seed=cfg.data.seed, workers=os.cpu_count(), progress=progress)
        / name
    )
    kwargs = {"compression": cfg.data.compression} if LAYOUT_OF[name] == "ffpp" else {}
    out = default_prep_out(root, **kwargs)
    if LAYOUT_OF[name] == "ffpp":
        kwargs["methods"] = METHODS  # the benchmark's four: FF++'s FaceShifter is not missing from it
    marker = (root.parent / MARKER).read_text()
    # A cache without the marker predates it: its version is unknown, so it is made again too.
    made_from = (out / MARKER).read_text() if (out / MARKER).is_file() else None
    if out.exists() and made_from != marker:
        print(f"{out}: prepared from another version of the benchmark; preparing it again")
        shutil.rmtree(out)
    options = PrepOptions(frames=cfg.data.prep_frames, size=cfg.data.crop_size)
    if not (out / "manifest.csv").is_file():
        entries = LAYOUTS[LAYOUT_OF[name]].scan(root, dataset=name, **kwargs)
        prep(entries, out, options, workers=os.cpu_count() or 1, progress=progress)
        (out / MARKER).write_text(marker)
    elif recorded_options(out) is None:  # a cache prepared before prep recorded its options
        record_options(out, options)
    return out
