"""Whether a rerun reproduces the committed results: each table of results/<profile>/ against the
same table of a fresh run (`make check-results`).

The numbers move only where the arithmetic does: the same code, data, thread count and CPU code path
(fbifpn/numerics.py) give the same bits. What a table compares is its numeric columns; paths and
wording are the run's own. The committed config.json records the CPU, its code path and the thread
count the results were made with, so that a difference can be put down to the machine or not.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

TABLES = "0[0-9]_*.csv"


def compare_table(committed: Path, fresh: Path, tolerance: float) -> list[str]:
    """The differences between two versions of one table: its shape and columns, and each numeric
    cell further apart than `tolerance` (NaN equals NaN). One line each, naming the table and cell."""
    name = committed.name
    if not fresh.is_file():
        return [f"{name}: not made by the rerun ({fresh} is missing)"]
    a, b = pd.read_csv(committed), pd.read_csv(fresh)
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return [
            f"{name}: {len(a)} rows x {list(a.columns)} committed, {len(b)} rows x {list(b.columns)} rerun"
        ]
    out = []
    for column in a.columns:
        if not (pd.api.types.is_numeric_dtype(a[column]) and pd.api.types.is_numeric_dtype(b[column])):
            continue
        x, y = a[column].to_numpy(float), b[column].to_numpy(float)
        apart = ~((np.abs(x - y) <= tolerance) | (np.isnan(x) & np.isnan(y)))
        for row in np.flatnonzero(apart)[:3]:
            out.append(f"{name}: row {row}, {column}: {float(x[row])!r} committed, {float(y[row])!r} rerun")
        if apart.sum() > 3:
            out.append(f"{name}: {column}: {int(apart.sum()) - 3} more cells apart")
    return out


def check(results: Path, runs: Path, tolerance: float) -> list[str]:
    """Every committed table of `results` (one profile's folder) against the rerun in `runs`."""
    tables = sorted(Path(results).glob(TABLES))
    if not tables:
        raise FileNotFoundError(f"{results}: no committed tables ({TABLES})")
    return [line for table in tables for line in compare_table(table, Path(runs) / table.name, tolerance)]


def recorded_machine(results: Path) -> dict:
    """What the committed results say they were made on (config.json's `machine`; {} before it)."""
    path = Path(results) / "config.json"
    return json.loads(path.read_text()).get("machine", {}) if path.is_file() else {}
