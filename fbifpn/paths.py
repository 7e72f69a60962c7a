"""Where runs, caches and generated data live.

Everything generated goes under one `runs/` folder so that every entry point (CLI, `make demo`,
notebooks run from `notebooks/`) shares the same caches. In a checkout that is `<repo>/runs`; an
installed copy uses `./runs`; `FBIFPN_RUNS` overrides both.
"""

from __future__ import annotations

import os
import secrets
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


def writable_dir(path: Path | str, what: str = "output folder") -> Path:
    """Create `path` if needed and prove it takes a file, before any work is done for it: an
    unwritable destination found at the end would throw the work away. A probe, not os.access:
    access() says yes to root on a read-only mount, and knows nothing of full disks or quotas."""
    path = Path(path)
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"{what}: {path} is not writable: {parent} is a file, not a folder")
            break
    probe = path / f".fbifpn-write-probe-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise OSError(f"{what}: {path} is not writable: {e.strerror or e}") from None
    return path


def writable_file(path: Path | str, what: str) -> Path:
    """`writable_dir` for a file about to be written: its folder takes a file, and it is no folder."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what}: {path} is a folder, not a file")
    writable_dir(path.parent, f"{what}: {path}")
    return path
