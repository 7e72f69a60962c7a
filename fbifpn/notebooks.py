"""Run the numbered notebooks with papermill, in dependency order, never in place.

`python -m fbifpn notebooks run --profile demo [--only 01 02] [--set k=v ...]` writes executed copies
to runs/<profile>/notebooks/ and figures to figures/<profile>/. A failing notebook stops the run,
names the failing cell and keeps its partial output for inspection.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from unittest import mock

from fbifpn.config import parse_overrides
from fbifpn.paths import project_root, runs_dir

PARAMETERS = ("profile", "overrides", "data_root", "run_dir", "figures_dir", "device", "seed")
BATCH = "FBIFPN_BATCH"  # set by the runner (and the tests): interactive widgets render a static snapshot


def batch_mode() -> bool:
    """True when a notebook runs unattended (papermill, nbval), where no one can move a slider."""
    return os.environ.get(BATCH) == "1"


def budget_of(cfg, notebook: Path) -> int:
    """The notebook's time budget in seconds: cfg.notebooks.budget_s.<its name without the number>
    (0: none). A notebook without such a field is an error, not a notebook without a budget."""
    name = Path(notebook).stem[3:]
    known = [f.name for f in dataclasses.fields(cfg.notebooks.budget_s)]
    if name not in known:
        raise ValueError(
            f"{Path(notebook).name}: no time budget field {name!r} in notebooks.budget_s "
            f"(fields: {', '.join(known)}); add it to fbifpn.config.BudgetConfig"
        )
    return getattr(cfg.notebooks.budget_s, name)


def setup(profile: str, overrides: dict, run_dir: str, figures_dir: str, device: str = "auto", seed: int = 0):
    """The second cell of every notebook: the validated config and the output folders."""
    import os

    from fbifpn.config import load_config
    from fbifpn.plots import theme

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cfg = load_config(profile, dict(overrides) | {"train.device": device, "train.seed": seed})
    run = Path(run_dir) if run_dir else runs_dir() / profile
    figures = Path(figures_dir) if figures_dir else (project_root() or Path.cwd()) / "figures" / profile
    run.mkdir(parents=True, exist_ok=True)
    theme()
    return cfg, run, figures


def require(path: Path, notebook: str) -> Path:
    """An input an earlier notebook writes; a clear message naming that notebook when it is missing."""
    if not Path(path).exists():
        raise FileNotFoundError(
            f"{path} is missing: run notebooks/{notebook}.ipynb first "
            f"(python -m fbifpn notebooks run --only {notebook[:2]})"
        )
    return Path(path)


def notebooks_dir() -> Path:
    root = project_root()
    if root is None or not (root / "notebooks").is_dir():
        raise FileNotFoundError(
            "the notebooks live in a checkout of fbifpn: no notebooks/ folder next to the package"
        )
    return root / "notebooks"


def notebook_list(only: list[str] | None = None) -> list[Path]:
    books = sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
    if only:
        unknown = [o for o in only if not any(b.name.startswith(o) for b in books)]
        if unknown:
            raise ValueError(
                f"--only {unknown[0]}: no such notebook (notebooks: {', '.join(b.stem for b in books)})"
            )
        books = [b for b in books if any(b.name.startswith(o) for o in only)]
    return books


def parameters_for(profile: str, overrides, out: Path, figures: Path, extra: dict | None = None) -> dict:
    params = {
        "profile": profile,
        "overrides": parse_overrides(overrides),
        "run_dir": str(out),
        "figures_dir": str(figures),
    }
    params |= extra or {}
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise ValueError(f"unknown notebook parameter {unknown[0]!r} (parameters: {', '.join(PARAMETERS)})")
    return params


def prepare(notebook: Path, output: Path, parameters: dict) -> Path:
    """A parameterised copy that is not executed (for nbval, which cannot inject parameters)."""
    import papermill

    known = set(papermill.inspect_notebook(str(notebook)))
    unknown = sorted(set(parameters) - known)
    if unknown:
        raise ValueError(
            f"{notebook.name}: unknown parameter {unknown[0]!r} (its parameters: {', '.join(sorted(known))})"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(notebook), str(output), parameters=parameters, prepare_only=True, progress_bar=False
    )
    return output


def run(
    profile: str = "demo",
    only: list[str] | None = None,
    overrides=None,
    out: Path | None = None,
    figures: Path | None = None,
    extra: dict | None = None,
    figures_only: bool = False,
) -> list[Path]:
    """Execute the notebooks in order. `figures_only` (make figures) re-renders tables and figures
    from finished runs and saved evaluations, and fails instead of training anything."""
    import papermill

    from fbifpn.config import load_config

    cfg = load_config(profile, overrides)  # a misspelt override fails here, before any notebook runs
    out = Path(out) if out is not None else runs_dir() / profile
    figures = Path(figures) if figures is not None else (project_root() or Path.cwd()) / "figures" / profile
    params = parameters_for(profile, overrides, out, figures, extra)
    budgets = {notebook: budget_of(cfg, notebook) for notebook in notebook_list(only)}  # before any runs
    executed, over = [], []
    from fbifpn.experiments import FIGURES_ONLY

    # The kernels papermill starts inherit these; the caller's environment is left as it was.
    flags = {BATCH: "1", FIGURES_ONLY: "1" if figures_only else "0"}
    with mock.patch.dict(os.environ, flags):
        for notebook, budget in budgets.items():
            target = out / "notebooks" / notebook.name
            target.parent.mkdir(parents=True, exist_ok=True)
            start = time.perf_counter()
            print(f"{notebook.stem:<20} running ...", end="", flush=True)
            try:
                papermill.execute_notebook(
                    str(notebook),
                    str(target),
                    parameters=params,
                    cwd=str(notebook.parent),
                    kernel_name="python3",
                    progress_bar=False,
                    # ipykernel warns on every start that its local TCP sockets are unencrypted
                    extra_arguments=["--IPKernelApp.log_level=ERROR"],
                )
            except papermill.PapermillExecutionError as e:
                print(
                    f"\r{notebook.stem:<20} FAILED in cell {e.cell_index} ({e.ename}: {e.evalue}); "
                    f"partial output kept in {target}"
                )
                raise RuntimeError(
                    f"notebook {notebook.name} failed in cell {e.cell_index}: {e.ename}: {e.evalue}"
                ) from None
            seconds = time.perf_counter() - start
            against = (
                f" (budget {budget} s{', OVER' if budget and seconds > budget else ''})" if budget else ""
            )
            print(f"\r{notebook.stem:<20} done in {seconds:5.0f} s{against} -> {target}")
            if budget and seconds > budget:
                over.append(notebook.stem)
            executed.append(target)
    if over:
        print(f"over their {profile} time budget: {', '.join(over)} (cfg.notebooks.budget_s)")
    for line in headlines(out):
        print(line)
    tables = sorted(p.name for p in out.glob("0[0-9]_*.md"))
    print(f"tables: {out} ({', '.join(tables) or 'none yet'}); figures: {figures}")
    return executed


def headlines(out: Path) -> list[str]:
    """The numbers a run is judged by, from the tables the notebooks wrote (what exists of them)."""
    import pandas as pd

    lines = []
    cross = out / "04_cross_dataset.csv"
    if cross.is_file():
        rows = pd.read_csv(cross)
        lines.append(f"notebook 02's detector, video AUC on each test split ({rows['train_data'].iloc[0]}):")
        for row in rows.itertuples():
            lines.append(
                f"  {row.test:<12} {row.video_auc:.3f} [{row.ci_low:.3f}, {row.ci_high:.3f}], {row.videos} videos"
            )
    protocols = out / "04_protocols.csv"
    if protocols.is_file():
        from fbifpn.data.sources.ffpp import METHODS

        rows = pd.read_csv(protocols)
        after = list(rows.columns[list(rows.columns).index("plateau step") + 1 :])
        # training_protocols' layout: the method columns, then one AUC per test set (and a CI string)
        tests = [c for c in after if c not in METHODS and rows[c].dtype.kind == "f"]
        lines.append("training protocols, video AUC of each run on each test split (chosen on val):")
        for r in rows.to_dict("records"):
            aucs = ", ".join(f"{t} {r[t]:.3f}" for t in tests if r[t] == r[t])  # NaN: not tested there
            lines.append(f"  {r['protocol']:<32} {r['steps']:>4} steps: {aucs}")
    ablations = out / "03_ablations.csv"
    if ablations.is_file():
        table = pd.read_csv(ablations).pivot_table(
            index="variant", columns="test", values="video_auc", sort=False
        )
        lines.append("ablations, video AUC (mean over seeds):")
        lines += ["  " + line for line in table.to_string(float_format=lambda v: f"{v:.3f}").splitlines()]
    paired = out / "03_paired.csv"
    if paired.is_file() and "p_holm" in (rows := pd.read_csv(paired)):
        from fbifpn.comparisons import verdict_rows

        verdicts = verdict_rows(rows)
        lines.append(f"ablations, paired against full ({verdicts['level'].iloc[0]}, Holm over each table):")
        for r in verdicts.to_dict("records"):
            lines.append(
                f"  {r['variant']:<16} {r['test']:<11} {r['delta']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}], "
                f"Holm p = {r['p_holm']:.3f}, {r['verdict']}"
            )
    robust = out / "07_robustness.csv"
    if robust.is_file() and "delta" in (rows := pd.read_csv(robust)):
        models = list(rows.columns[2 : list(rows.columns).index("delta")])
        lines.append(f"robustness, mean video AUC over levels ({' - '.join(models)}, paired):")
        for r in rows.to_dict("records"):
            aucs = ", ".join(f"{m} {r[m]:.3f}" for m in models)
            lines.append(
                f"  {r['perturbation']:<12} {aucs}: {r['delta']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}], "
                f"p = {r['p']:.3f} (Holm {r.get('p_holm', float('nan')):.3f}), {r['verdict']}"
            )
    calibration = out / "07_calibration.csv"
    if calibration.is_file():
        rows = pd.read_csv(calibration)
        lines.append("calibration, video ECE raw -> temperature / Platt / isotonic (each fitted on val):")
        for r in rows.to_dict("records"):
            lines.append(
                f"  {r['set']:<12} {r['video_ece_raw']:.3f} -> {r['video_ece_temperature']:.3f} / "
                f"{r['video_ece_platt']:.3f} / {r['video_ece_isotonic']:.3f}"
            )
    return lines
