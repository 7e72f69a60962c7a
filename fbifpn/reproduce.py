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
PATH_COLUMNS = {"checkpoint", "scores", "run", "manifest"}  # where the run was made, not what it found


def results_dir(profile: str) -> Path:
    """Where a profile's committed results live: results/<profile>/ of the checkout."""
    from fbifpn.paths import project_root

    return (project_root() or Path.cwd()) / "results" / profile


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
        numeric = [pd.api.types.is_numeric_dtype(f[column]) for f in (a, b)]
        if column in PATH_COLUMNS:
            continue
        if numeric == [False, False]:  # words: a verdict that flips is a difference
            for row in np.flatnonzero(a[column].astype(str).to_numpy() != b[column].astype(str).to_numpy())[
                :3
            ]:
                out.append(
                    f"{name}: row {row}, {column}: {a[column].iloc[row]!r} committed, {b[column].iloc[row]!r} rerun"
                )
            continue
        if numeric != [True, True]:
            out.append(f"{name}: {column}: numbers in one table, words in the other")
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


def publish(runs: Path, results: Path, cfg_dict: dict, notebooks: tuple[str, ...] = ()) -> list[Path]:
    """Copy a finished profile's tables (`runs/<profile>/0N_*.csv|md`, of `notebooks` when given) and
    per-video scores (`scores/*.csv.gz`) into `results`, paths made relative to the project, with
    config.json: the profile's config and, under `machine`, the CPU, its code path and the thread
    count this process computes with (run it as the notebooks ran). Returns the files written."""
    from fbifpn import atomic, numerics
    from fbifpn.paths import project_root
    from fbifpn.provenance import cpu_name

    runs, results = Path(runs), Path(results)
    root = str((project_root() or Path.cwd()).resolve()) + "/"
    runs_root = str(runs.resolve().parent.parent) + "/"  # FBIFPN_RUNS may live outside the checkout
    wanted = lambda path: not notebooks or path.name[:2] in notebooks  # noqa: E731
    written = []
    for table in sorted(runs.glob("0[0-9]_*")):
        if table.suffix in (".csv", ".md") and table.name != "07_robustness_runs.csv" and wanted(table):
            text = table.read_text().replace(root, "").replace(runs_root, "")
            atomic.write_text(results / table.name, text)
            written.append(results / table.name)
    for scores in sorted((runs / "scores").glob("*.csv.gz")):
        if wanted(scores):
            with atomic.replacing(results / "scores" / scores.name) as tmp:
                tmp.write_bytes(scores.read_bytes())
            written.append(results / "scores" / scores.name)
    config = cfg_dict | {"machine": {"cpu": cpu_name(), **numerics.state()}}
    atomic.write_text(results / "config.json", json.dumps(config, indent=1) + "\n")
    return [*written, results / "config.json"]


def recorded_machine(results: Path) -> dict:
    """What the committed results say they were made on (config.json's `machine`; {} before it)."""
    path = Path(results) / "config.json"
    return json.loads(path.read_text()).get("machine", {}) if path.is_file() else {}
