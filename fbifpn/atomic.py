"""Atomic file writes: a file fbifpn writes appears whole or not at all, never half-written.

Each writer fills a temporary file beside its target, then renames it over the target in one step
(`os.replace`, atomic within a folder). A killed run leaves the old file or none, plus at worst a
hidden temporary (`.NAME.PID-HEX.tmpSUFFIX`), which `orphans_of` finds.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the writers import their libraries when called: a text write needs neither
    import numpy as np
    import pandas as pd


def temp_beside(path: Path | str) -> Path:
    """A fresh name in the same folder, ending in the file's own suffix (OpenCV and PyAV pick their
    format from it). Not mkstemp: its 0600 file would keep those permission bits after the rename."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp{path.suffix}")


def orphans_of(path: Path | str) -> list[Path]:
    """Temporaries that killed writes of `path` left behind (whichever process wrote them)."""
    path = Path(path)
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp{glob.escape(path.suffix)}"))


@contextlib.contextmanager
def replacing(path: Path | str) -> Iterator[Path]:
    """Yield a temporary name to write `path` through. A clean exit renames it over `path`; an error,
    or a writer that made no file, leaves `path` as it was and the temporary removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(path)
    try:
        yield tmp
        if not tmp.is_file():
            raise OSError(f"{path}: nothing was written")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path | str, text: str) -> Path:
    with replacing(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_csv(df: pd.DataFrame, path: Path | str) -> Path:
    with replacing(path) as tmp:
        df.to_csv(tmp, index=False)
    return Path(path)


def save_torch(obj: Any, path: Path | str) -> Path:
    import torch

    with replacing(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def write_image(path: Path | str, image: np.ndarray) -> Path:
    """cv2.imwrite, whose False or cv2.error (an unwritable folder, an array it cannot encode)
    becomes an OSError naming the file."""
    import cv2

    with replacing(path) as tmp:
        try:
            written = cv2.imwrite(str(tmp), image)
        except cv2.error as e:
            raise OSError(f"{path}: cannot write this image ({' '.join(str(e).split())})") from None
        if not written:
            raise OSError(f"{path}: cannot write this image")
    return Path(path)
