"""Where runs, caches and generated data live.

Everything generated goes under one `runs/` folder so that every entry point (CLI, `make demo`,
notebooks run from `notebooks/`) shares the same caches. In a checkout that is `<repo>/runs`; an
installed copy uses `./runs`; `FBIFPN_RUNS` overrides both.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path | None:
    """The checkout this package was imported from, or None for an installed copy."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() else None


def runs_dir() -> Path:
    if env := os.environ.get("FBIFPN_RUNS"):
        return Path(env)
    root = project_root()
    return (root if root is not None else Path.cwd()) / "runs"


def cache_dir() -> Path:
    return runs_dir() / "cache"
