"""One figure style, and saving figures as build products: PNG and PDF with the config that made them."""

from __future__ import annotations

import json
from pathlib import Path

from fbifpn.config import Config


def theme() -> None:
    """The project's seaborn theme (imported here: plotting is not needed to train or evaluate)."""
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")


def save_figure(fig, name: str, cfg: Config, figures_dir: Path | str, note: str = "") -> Path:
    """Write <figures_dir>/<name>.png and .pdf, and <name>.json with the config and a provenance note."""
    figures_dir = Path(figures_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(figures_dir / f"{name}.png", dpi=110, bbox_inches="tight")
    fig.savefig(figures_dir / f"{name}.pdf", bbox_inches="tight")
    (figures_dir / f"{name}.json").write_text(json.dumps({"note": note, "config": cfg.to_dict()}, indent=1))
    return figures_dir / f"{name}.png"
