"""Sets of runs that each answer one question: which parts of the model matter (the ablation table),
and how a detector travels to other datasets, to unseen manipulations and to stronger compression.

Every run is a plain `fit` into its own folder with `resume=True`, so a finished run is reused and an
interrupted one continues. Every test is `evaluate_checkpoint`, whose metrics.json is reused while it
is newer than its checkpoint. Checkpoints are chosen on validation only, as everywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from fbifpn import atomic, metrics
from fbifpn.comparisons import takeaway, verdict_rows
from fbifpn.config import Config, with_overrides
from fbifpn.data.sources.ffpp import METHODS
from fbifpn.metrics import Protocol


def prepared_sets(cfg: Config, data_root: str | Path = "") -> dict[str, Path]:
    """The prepared manifests the notebooks compare, by name: every sub-folder of `data_root` that
    holds a manifest.csv (real data, prepared with `python -m fbifpn prep ... --out <data_root>/<name>`),
    or, without `data_root`, synth-ff, synth-cdf and synth-dfdc (generated and prepared on first use)."""
    from fbifpn.data.cache import prepared_manifest
    from fbifpn.data.synthetic.generate import DATASETS

    if not data_root:
        return {name: prepared_manifest(cfg, dataset=name) for name in DATASETS}
    root = Path(data_root)
    if not root.is_dir():
        raise FileNotFoundError(f"data_root: {root} is not a folder (one prepared manifest per sub-folder)")
    found = {p.name: p for p in sorted(root.iterdir()) if (p / "manifest.csv").is_file()}
    if not found:
        raise FileNotFoundError(
            f"data_root: no prepared manifest under {root} (a sub-folder holding manifest.csv); "
            f"make one with `python -m fbifpn prep --layout ... --root ... --out {root}/<name>`"
        )
    return found


FIGURES_ONLY = "FBIFPN_FIGURES_ONLY"  # set by `notebooks run --figures-only` (make figures)


def finished(cfg: Config, run_dir: Path) -> bool:
    """Whether `run_dir` holds a run of `cfg` that has used its whole training budget."""
    from fbifpn.engine import checkpoint as ckpt

    last = Path(run_dir) / "last.pt"
    if not last.is_file():
        return False
    saved = ckpt.load(last)
    if cfg.train.max_steps:
        return saved["step"] >= cfg.train.max_steps
    return saved["epoch"] >= cfg.train.epochs


def trained(cfg: Config, run_dir: Path, progress: bool = True, notebook: str = ""):
    """`fit` with resume: a finished run is reused, an interrupted one continues. Returns the
    RunResult. When figures only are wanted (`make figures`), a run that is not finished is an error
    naming the notebook that trains it, never a silent retraining."""
    import os

    from fbifpn.data.cache import prepared_manifest
    from fbifpn.engine import fit
    from fbifpn.engine.train import open_run_dir

    if os.environ.get(FIGURES_ONLY) == "1" and not finished(cfg, run_dir):
        where = f" (run notebooks/{notebook}.ipynb, or make demo)" if notebook else " (run make demo)"
        raise FileNotFoundError(
            f"{run_dir}: no finished training run, and figures only were asked for{where}"
        )
    run = open_run_dir(
        cfg, run_dir, resume=True
    )  # a run folder of another config fails before any data is made
    result = fit(cfg, prepared_manifest(cfg, progress=progress), run, progress=progress)
    if result.best_checkpoint is None:
        raise RuntimeError(f"{run_dir}: training finished without a validation-chosen checkpoint")
    return result


def evaluated(
    checkpoint: Path,
    manifest: Path,
    out: Path,
    beta: float | None = None,
    progress: bool = True,
    split: str = "test",
) -> dict:
    """`evaluate_checkpoint` on `split`, or its saved report when that is newer than the checkpoint
    and was made from the same checkpoint, manifest, split and beta (None: the checkpoint's own, so
    that a report asked for with either is found by the other)."""
    from fbifpn.engine.evaluate import evaluate_checkpoint

    checkpoint, manifest, out = Path(checkpoint), Path(manifest), Path(out)
    beta = beta_of(checkpoint, beta)
    saved = out / "metrics.json"
    if saved.is_file() and saved.stat().st_mtime > checkpoint.stat().st_mtime:
        report = json.loads(saved.read_text())
        if (
            report.get("checkpoint") == str(checkpoint)
            and report.get("manifest") == str(manifest)
            and report.get("beta") == beta
            and report.get("split", "test") == split  # reports before splits were recorded: test
        ):
            return report if "ci_unit" in report["metrics"]["video"] else with_families(report, out)
    return evaluate_checkpoint(checkpoint, manifest, out, split=split, beta=beta, progress=progress)


def with_families(report: dict, folder: Path) -> dict:
    """A saved evaluation made before scores carried video families, with each video's family
    (from the manifest it was made from) added to its scores.csv and its metrics recomputed from
    them: the same scores, intervals that resample families. Saved again, so it happens once."""
    from fbifpn.comparisons import evaluation_frames

    folder = Path(folder)
    frames = evaluation_frames(folder / "scores.csv")
    config = report["config"]
    report = report | {
        "metrics": metrics.evaluate_scores(
            frames,
            threshold=report.get("threshold_from_val"),
            bootstrap=config["eval"]["bootstrap"],
            seed=config["train"]["seed"],
        )
    }
    atomic.write_csv(frames, folder / "scores.csv")
    atomic.write_text(folder / "metrics.json", json.dumps(report, indent=1))
    return report


def beta_of(checkpoint: Path, beta: float | None = None) -> float:
    """`beta`, or the checkpoint's own weighted-discrimination beta when it is None."""
    from fbifpn.engine import checkpoint as ckpt

    return float(ckpt.load(Path(checkpoint))["config"]["model"]["beta"]) if beta is None else float(beta)


def evaluation_dir(checkpoint: Path, name: str, beta: float | None = None, split: str = "test") -> Path:
    """Where `evaluation` writes: `<checkpoint's folder>/eval-<name>`, `-beta<b>` added for b > 0 and
    `-<split>` for a split other than test; a checkpoint other than best.pt (a kept step's) prefixes
    its own name, so that the models of one run folder never share an evaluation."""
    b = beta_of(checkpoint, beta)
    suffix = (f"-beta{b:g}" if b else "") + (f"-{split}" if split != "test" else "")
    checkpoint = Path(checkpoint)
    prefix = "" if checkpoint.name == "best.pt" else f"{checkpoint.stem}-"
    return checkpoint.parent / f"{prefix}eval-{name}{suffix}"


def evaluation(
    checkpoint: Path,
    name: str,
    manifest: Path,
    beta: float | None = None,
    progress: bool = True,
    split: str = "test",
) -> dict:
    """`evaluated` into `evaluation_dir`: one evaluation of a checkpoint on a set's split (test
    unless said) at one beta, made by whichever notebook asks first and read back by the others."""
    beta = beta_of(checkpoint, beta)  # the checkpoint is read once, not by both calls below
    return evaluated(
        checkpoint,
        manifest,
        evaluation_dir(checkpoint, name, beta, split),
        beta=beta,
        progress=progress,
        split=split,
    )


def metrics_row(report: dict) -> dict:
    """The headline numbers of one evaluation report, flat."""
    video, frame = report["metrics"]["video"], report["metrics"]["frame"]
    low, high = video["auc_ci95"]
    return {
        "video_auc": video["auc"],
        "ci_low": low,
        "ci_high": high,
        "video_ap": video["ap"],
        "frame_auc": frame["auc"],
        "frame_ap": frame["ap"],
        "videos": video["n"],
        "compression": report["protocol"]["compression"],
    }


def level_weights(checkpoint: Path) -> list[float] | None:
    """The neck's normalised level weights v_l (finest level first); None without an F-BiFPN neck."""
    from fbifpn.engine.checkpoint import load_model
    from fbifpn.models.fbifpn import normalized

    model, _, _ = load_model(Path(checkpoint))
    neck = getattr(model, "neck", None)
    if neck is None:
        return None
    return [float(w) for w in normalized(neck.level_weight.detach(), neck.eps)]


# --------------------------------------------------------------------------- ablations


def ablation(
    cfg: Config,
    root: Path,
    test_sets: dict[str, Path],
    reuse: dict[tuple[str, int], Path] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Train every variant of `cfg.notebooks.ablation_variants` for every seed of
    `cfg.notebooks.ablation_seeds` with `cfg`'s budget, and test each on every set of `test_sets`.
    `reuse` maps (variant, seed) to a checkpoint trained with the same budget (notebook 02's run).
    One row per variant, seed and test set; the full model is also scored with beta > 0."""
    reuse = reuse or {}
    book = cfg.notebooks
    rows = []
    for variant in book.ablation_variants:
        for seed in book.ablation_seeds:
            run = Path(root) / f"{variant}-seed{seed}"
            checkpoint = reuse.get((variant, seed))
            if checkpoint is None:
                run_cfg = with_overrides(cfg, {"model.variant": variant, "train.seed": seed})
                checkpoint = trained(run_cfg, run, progress, "03_ablations").best_checkpoint
            weights = level_weights(checkpoint)
            steps = trained_steps(checkpoint)
            mixed = variant == "full" and book.ablation_beta > 0
            reports = {}
            for name, manifest in test_sets.items():
                reports[(variant, name)] = evaluation(checkpoint, name, manifest, beta=0.0, progress=progress)
                if mixed:
                    beta = book.ablation_beta
                    folder = evaluation_dir(checkpoint, name, 0.0)
                    reports[(f"{variant} (beta={beta:g})", name)] = with_mask_evidence(folder, beta)
            for (label, name), report in sorted(reports.items(), key=lambda kv: kv[0][0] != variant):
                rows.append(run_row(label, seed, steps, name, report, weights, checkpoint))
    return pd.DataFrame(rows)


def run_row(variant: str, seed: int, steps: int, test: str, report: dict, weights, checkpoint: Path) -> dict:
    """One trained model on one test set, as `ablation` and `budget_curve` list them (and
    `comparisons.run_scores` reads them back: `scores` is the beta-0 evaluation's)."""
    return {
        "variant": variant,
        "seed": seed,
        "steps": steps,
        "test": test,
        **metrics_row(report),
        "level_weights": weights,
        "checkpoint": str(checkpoint),
        "scores": str(evaluation_dir(checkpoint, test, 0.0) / "scores.csv"),
        "beta": report["beta"],
    }


def with_mask_evidence(folder: Path, beta: float) -> dict:
    """The report of an evaluation made with beta = 0, rescored with the mask evidence:
    s = (1 - beta) p_cls + beta topk_mean(mask). Exact without running the model again: scores.csv
    holds both terms, each already averaged over the flip views, and s is linear in them."""
    folder = Path(folder)
    report = json.loads((folder / "metrics.json").read_text())
    if report.get("beta") != 0.0:
        raise ValueError(f"{folder}: rescoring needs an evaluation made with beta = 0")
    frames = pd.read_csv(folder / "scores.csv")
    if frames["mask_score"].isna().all():
        raise ValueError(f"{folder}: this model has no mask head, so there is no mask evidence")
    frames["score"] = (1 - beta) * frames["score"] + beta * frames["mask_score"]
    config = report["config"]
    report |= {
        "metrics": metrics.evaluate_scores(
            frames,
            threshold=None,  # the val threshold was chosen for the cls score alone
            bootstrap=config["eval"]["bootstrap"],
            seed=config["train"]["seed"],
        ),
        "beta": beta,
        "score": f"(1 - beta) p_cls + beta topk_mean(mask), beta = {beta:g} (rescored from {folder})",
        "config": config | {"model": config["model"] | {"beta": beta}},  # the beta that scored
    }
    atomic.write_text(folder / f"metrics-beta{beta:g}.json", json.dumps(report, indent=1))
    return report


def summarise(rows: pd.DataFrame, by: tuple[str, ...] = ("variant", "test")) -> pd.DataFrame:
    """Mean over seeds of each metric; the spread across seeds (sd, NaN with one seed) next to the
    mean of the per-seed 95 % bootstrap intervals over videos. Keeps the first-seen row order."""
    keys = list(by)
    grouped = rows.groupby(keys, sort=False)
    out = grouped.agg(
        seeds=("seed", lambda s: ",".join(str(v) for v in sorted(set(s)))),
        video_auc=("video_auc", "mean"),
        video_auc_sd=("video_auc", lambda s: float(np.std(s, ddof=1)) if len(s) > 1 else float("nan")),
        ci_low=("ci_low", "mean"),
        ci_high=("ci_high", "mean"),
        **({"ci_unit": ("ci_unit", "first")} if "ci_unit" in rows.columns else {}),
        video_ap=("video_ap", "mean"),
        frame_auc=("frame_auc", "mean"),
        videos=("videos", "first"),
        compression=("compression", "first"),
    )
    return out.reset_index()


def _unit_words(unit: str) -> str:
    return "test families" if unit == "family" else "test videos"


def _ci_unit(summary: pd.DataFrame) -> str:
    units = set(summary.get("ci_unit", pd.Series(["video"])).dropna())
    return _unit_words(units.pop() if len(units) == 1 else "video")


def _ci(row) -> str:
    return "-" if np.isnan(row["ci_low"]) else f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def _markdown(frame: pd.DataFrame, protocol: Protocol) -> str:
    return metrics.table(frame.to_dict("records"), protocol, list(frame.columns), digits=3)


def ablation_table(summary: pd.DataFrame, cfg: Config) -> str:
    """The ablation summary as Markdown, with the protocol it was made under."""
    from fbifpn.engine.evaluate import describe_training

    tests = summary.drop_duplicates("test")
    protocol = Protocol(
        train_data=describe_training(cfg),
        test_data=", ".join(tests["test"]) + " [test splits]",
        compression="; ".join(f"{t}: {c}" for t, c in zip(tests["test"], tests["compression"], strict=True)),
        level="video (mean of frame scores, max over faces)",
        selection=(
            f"best validation {cfg.eval.select_on} of each run; every variant with notebook 02's budget "
            f"({cfg.train.epochs} epochs, batch {cfg.train.batch_size}); seeds "
            f"{', '.join(map(str, cfg.notebooks.ablation_seeds))}; CI: 95 % BCa bootstrap over "
            f"{_ci_unit(summary)} ({cfg.notebooks.paired_resamples} resamples), mean over seeds; sd: "
            "across seeds; a variant's own interval is not a test against another (see the paired table)"
        ),
    )
    table = pd.DataFrame(
        {
            "variant": summary["variant"],
            "test": summary["test"],
            "seeds": summary["seeds"],
            "video AUC": summary["video_auc"],
            "95 % CI": summary.apply(_ci, axis=1),
            "sd over seeds": summary["video_auc_sd"].map(lambda v: "-" if np.isnan(v) else f"{v:.3f}"),
            "video AP": summary["video_ap"],
            "frame AUC": summary["frame_auc"],
            "videos": summary["videos"],
        }
    )
    return _markdown(table, protocol)


def cross_dataset_table(reports: dict[str, dict]) -> str:
    """One row per test set (frame and video AUC / AP), as Markdown with its protocol."""
    rows = protocol_rows(reports)
    first = next(iter(reports.values()))
    protocol = Protocol(
        train_data=first["protocol"]["train_data"],
        test_data=", ".join(rows["test"]) + " [test splits]",
        compression="; ".join(f"{t}: {c}" for t, c in zip(rows["test"], rows["compression"], strict=True)),
        level="frame and video (video = mean of frame scores, max over faces)",
        selection=f"{first['protocol']['selection']}; CI: {interval_unit(first)}",
    )
    table = pd.DataFrame(
        {
            "test": rows["test"],
            "video AUC": rows["video_auc"],
            "95 % CI": rows.apply(_ci, axis=1),
            "video AP": rows["video_ap"],
            "frame AUC": rows["frame_auc"],
            "frame AP": rows["frame_ap"],
            "videos": rows["videos"],
        }
    )
    return _markdown(table, protocol)


# --------------------------------------------------------------------------- generalisation protocols


def cross_manipulation(cfg: Config, root: Path, manifest: Path, progress: bool = True) -> pd.DataFrame:
    """The FF++ leave-one-out protocol: for each method of `cfg.notebooks.cross_manipulation`, train
    without its fakes (train and val), then test on the test split. `held_out_auc` is that method's
    fakes against all test reals: the number the protocol is about; `seen_auc` is the other methods'."""
    rows = []
    for method in cfg.notebooks.cross_manipulation:
        run = Path(root) / f"without-{method}"
        held_out = with_overrides(cfg, {"data.exclude_methods": [method]})
        checkpoint = trained(held_out, run, progress, "04_cross_dataset").best_checkpoint
        report = evaluation(checkpoint, cfg.data.dataset, manifest, progress=progress)
        per_method = report["metrics"]["per_method_video_auc"]
        seen = [v for m, v in per_method.items() if m != method]
        rows.append(
            {
                "held_out": method,
                "held_out_auc": per_method.get(method, float("nan")),
                "seen_auc": float(np.mean(seen)) if seen else float("nan"),
                "all_video_auc": report["metrics"]["video"]["auc"],
                "checkpoint": str(checkpoint),
            }
        )
    columns = ["held_out", "held_out_auc", "seen_auc", "all_video_auc", "checkpoint"]
    return pd.DataFrame(rows, columns=columns)  # the columns even when no method is held out


def cross_compression(cfg: Config, checkpoint: Path, progress: bool = True) -> pd.DataFrame:
    """The checkpoint on the test split of its own training set at its own compression level and at
    each level of `cfg.notebooks.cross_compression`. Synthetic FF++ layout only (the benchmark has
    every level of every video); empty, with a message, for a training manifest of real data."""

    if cfg.data.manifest:
        print(
            "cross-compression runs on the synthetic benchmark; with real data, prepare FF++ c40 into "
            "data_root and it appears in the cross-dataset table"
        )
        return pd.DataFrame()
    rows = []
    for level, (name, manifest) in compression_sets(cfg, progress).items():
        report = evaluation(checkpoint, name, manifest, progress=progress)
        rows.append({"trained on": cfg.data.compression, "tested on": level, **metrics_row(report)})
    return pd.DataFrame(rows).drop(columns="compression")


def compression_sets(cfg: Config, progress: bool = True) -> dict[str, tuple[str, Path]]:
    """compression level -> (test set name, manifest) of the synthetic training set at its own level
    and at each of `cfg.notebooks.cross_compression`. The training level's set is the cross-dataset
    table's in-domain one, under its name, so that it is evaluated once."""
    from fbifpn.data.cache import prepared_manifest

    sets = {}
    for level in dict.fromkeys((cfg.data.compression, *cfg.notebooks.cross_compression)):
        other = level != cfg.data.compression  # only tested on: its test split is all it needs
        manifest = prepared_manifest(
            with_overrides(cfg, {"data.compression": level}),
            progress=progress,
            split="test" if other else None,
        )
        sets[level] = (
            cfg.data.dataset if level == cfg.data.compression else f"{cfg.data.dataset}-{level}",
            manifest,
        )
    return sets


# --------------------------------------------------------------------------- two training protocols


def other_fakes(cfg: Config) -> str:
    """The protocol notebook 04 trains beside notebook 02's: online self-blended fakes when 02 trains
    on the dataset's own fakes, the dataset's fakes when 02 trains on SBI."""
    return "dataset" if cfg.train.fakes == "sbi" else "sbi"


def _describe_fakes(fakes: str, without: tuple[str, ...] = ()) -> str:
    kind = {"dataset": "dataset fakes", "sbi": "SBI only", "both": "dataset fakes + SBI"}[fakes]
    return kind + (f" without {', '.join(without)}" if without else "")


def with_steps(cfg: Config, steps: int, fakes: str | None = None) -> Config:
    """`cfg` trained for exactly `steps` optimisation steps (its LR schedule spans them), with
    `fakes` when given."""
    overrides = {"train.max_steps": steps, "train.epochs": steps}  # an epoch is at least one step
    return with_overrides(cfg, overrides | ({"train.fakes": fakes} if fakes else {}))


def learning_curve(run_dir: Path) -> pd.DataFrame:
    """A run's validation record, one row per validated step (step, epoch, frame_auc, video_auc):
    the learning curve on val, on the schedule `train.val_every` fixed before training."""
    path = Path(run_dir) / "metrics.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    val = pd.DataFrame([r for r in records if r.get("kind") == "val"])
    if val.empty:
        raise ValueError(f"{path}: no validation record yet")
    # a run resumed from an earlier step checkpoint validates those steps again: the later one counts
    val = val.drop_duplicates("step", keep="last").sort_values("step")
    columns = [
        "step",
        "epoch",
        "frame_auc",
        "video_auc",
        *(["loss"] if "loss" in val else []),
    ]  # loss: since v5
    return val[columns].reset_index(drop=True)


def trained_steps(checkpoint: Path) -> int:
    """The steps the run behind `checkpoint` trained: its learning curve's last step (the last step
    is always validated), or, for a checkpoint from outside `fit`'s run folders, the step it holds."""
    from fbifpn.engine import checkpoint as ckpt

    checkpoint = Path(checkpoint)
    if (checkpoint.parent / "metrics.jsonl").is_file():
        return int(learning_curve(checkpoint.parent)["step"].iloc[-1])
    return int(ckpt.load(checkpoint).get("step", -1))


def plateau_step(curve: pd.DataFrame, tol: float = 0.01) -> int:
    """The first validated step whose val video AUC is within `tol` of the curve's best: the budget
    the curve justifies (a curve still rising at its end justifies more than it was given)."""
    best = curve["video_auc"].max()
    return int(curve.loc[curve["video_auc"] >= best - tol, "step"].iloc[0])


def home_set(cfg: Config, test_sets: dict[str, Path], progress: bool = True) -> tuple[str, Path]:
    """The in-domain test set, the training manifest's: named as `test_sets` names it when it is one
    of them (real data under data_root), else after its folder, or the synthetic dataset."""
    from fbifpn.data.cache import prepared_manifest

    manifest = Path(prepared_manifest(cfg, progress=progress))
    folder = manifest.parent if manifest.suffix == ".csv" else manifest
    for name, path in test_sets.items():
        other = Path(path)
        if (other.parent if other.suffix == ".csv" else other).resolve() == folder.resolve():
            return name, manifest
    return (folder.name if cfg.data.manifest else cfg.data.dataset), manifest


def _run_row(protocol: str, held_out: str, checkpoint: Path, reports: dict[str, dict], home: str) -> dict:
    from fbifpn.engine import checkpoint as ckpt

    checkpoint = Path(checkpoint)
    saved = ckpt.load(checkpoint)
    curve = learning_curve(checkpoint.parent)
    low, high = reports[home]["metrics"]["video"]["auc_ci95"]
    row = {
        "protocol": protocol,
        "held out": held_out,
        "steps": int(curve["step"].iloc[-1]),  # the last step is always validated
        "chosen step": int(saved.get("best_step", -1)),
        "plateau step": plateau_step(curve),
    }
    row |= dict(reports[home]["metrics"]["per_method_video_auc"])
    row |= {name: report["metrics"]["video"]["auc"] for name, report in reports.items()}
    return row | {f"{home} 95 % CI": f"[{low:.3f}, {high:.3f}]", "run": str(checkpoint.parent)}


def training_protocols(
    cfg: Config,
    root: Path,
    checkpoint: Path,
    test_sets: dict[str, Path],
    manipulation: pd.DataFrame | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Notebook 02's protocol next to the other one (`other_fakes`), each tested on every set of
    `test_sets`: one row per run with the video AUC of each manipulation of the in-domain test split
    (seen or held out, as `held out` says), of the whole split and of every other set.

    - notebook 02's run (`checkpoint`), and the leave-one-out runs of `manipulation` (in-domain only);
    - the other protocol for `cfg.notebooks.protocol_steps` steps, trained into `root/<fakes>`;
    - with `cfg.notebooks.curve_steps`, both protocols again for that many steps (`root/curve-*`):
      long learning curves, each validated every `train.val_every` steps and chosen on val.
    SBI training sees no dataset fake, so every manipulation is held out. The frame's attrs name the
    in-domain set (`home`), every test set and the method columns."""
    book = cfg.notebooks
    home, manifest = home_set(cfg, test_sets, progress)
    sets = {home: manifest} | {k: v for k, v in test_sets.items() if k != home}

    def every_set(ck: Path) -> dict[str, dict]:
        return {name: evaluation(ck, name, m, progress=progress) for name, m in sets.items()}

    def held(fakes: str) -> str:
        return "all" if fakes == "sbi" else "none"

    rows = [
        _run_row(
            _describe_fakes(cfg.train.fakes), held(cfg.train.fakes), checkpoint, every_set(checkpoint), home
        )
    ]
    for r in (manipulation if manipulation is not None else pd.DataFrame()).itertuples():
        report = {home: evaluation(r.checkpoint, home, manifest, progress=progress)}
        if cfg.train.fakes == "sbi":  # no dataset fake is trained on anyway: only val loses the method
            protocol, held_out = f"SBI only (val without {r.held_out})", "all"
        else:
            protocol, held_out = _describe_fakes(cfg.train.fakes, (r.held_out,)), r.held_out
        rows.append(_run_row(protocol, held_out, Path(r.checkpoint), report, home))
    runs = []
    if book.protocol_steps:
        runs.append((other_fakes(cfg), book.protocol_steps, root / other_fakes(cfg)))
    if book.curve_steps:
        for fakes in dict.fromkeys((cfg.train.fakes, other_fakes(cfg))):
            runs.append((fakes, book.curve_steps, root / f"curve-{fakes}"))
    for fakes, steps, run in runs:
        ck = trained(with_steps(cfg, steps, fakes), run, progress, "04_cross_dataset").best_checkpoint
        rows.append(_run_row(_describe_fakes(fakes), held(fakes), ck, every_set(ck), home))
    frame = pd.DataFrame(rows)
    ci = frame.pop(f"{home} 95 % CI")  # next to the in-domain AUC, where a reader looks for it
    frame.insert(list(frame.columns).index(home) + 1, ci.name, ci)
    frame.attrs |= {
        "home": home,
        "test_sets": list(sets),
        "methods": [c for c in frame.columns if c in METHODS],  # FF++'s
    }
    return frame


def learning_curves_of(protocols: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, int]]:
    """The val curve and chosen step of each run of `training_protocols` that is not a leave-one-out
    run, by label, for `plots.learning_curves`."""
    whole = protocols[
        protocols["held out"].isin(["none", "all"]) & ~protocols["protocol"].str.contains("val without")
    ]
    return {
        f"{r['protocol']}, {r['steps']} steps ({Path(r['run']).name})": (
            learning_curve(r["run"]),
            int(r["chosen step"]),
        )
        for r in whole.to_dict("records")
    }


def _schedule(cfg: Config) -> str:
    every = cfg.train.val_every
    return f"every {every} steps and at the last step" if every else "at every epoch's end"


def protocol_table(frame: pd.DataFrame, cfg: Config) -> str:
    """`training_protocols` as Markdown, with the protocol it was made under."""
    from fbifpn.engine.evaluate import describe_training

    home = frame.attrs.get("home", cfg.data.dataset)
    shown = frame.drop(columns="run").astype(object)
    shown = shown.where(shown.notna(), "-")  # a leave-one-out run is tested in-domain only
    synthetic = all(t.startswith("synth-") for t in frame.attrs.get("test_sets", [home]))
    protocol = Protocol(
        train_data=f"{describe_training(cfg)} train split; the fakes as the protocol column says",
        test_data=", ".join(frame.attrs.get("test_sets", [home]))
        + (" (synthetic)" if synthetic else "")
        + f" [test splits]; each method column: that method's fakes of the {home} test split "
        "against all its reals",
        compression=f"{cfg.data.compression} (in-domain); the others as distributed",
        level="video (mean of frame scores, max over faces)",
        selection=(
            f"best validation {cfg.eval.select_on} over the steps validated ({_schedule(cfg)}), an "
            "equal AUC broken by the lower val loss; under SBI the val fakes are self-blended from the "
            "val reals, so no dataset fake chooses; a leave-one-out run's val lacks the method too; "
            "plateau step: the first validated step within 0.01 of the run's best val "
            "video AUC, the budget its curve justifies"
        ),
    )
    return _markdown(shown, protocol)


def goals(
    protocols: pd.DataFrame, central: pd.DataFrame | None, cfg: Config, target: float = 0.99
) -> list[str]:
    """The goals as sentences computed from the tables: the in-domain video AUC under dataset-fake
    training against `target` (met only when the 95 % interval's lower end reaches it); every SBI
    run's held-out AUCs; and whether `full` beats `backbone_only` on each other test set (its
    verdict rows: seed-level when there are several seeds). A protocol that was not run says so."""
    home = protocols.attrs.get("home", cfg.data.dataset)
    tests = [t for t in protocols.attrs.get("test_sets", []) if t != home]
    kind = "synthetic, " if all(t.startswith("synth-") for t in [home, *tests]) else ""
    how = f"{kind}video level, test split, checkpoint chosen on val"
    lines = []
    records = protocols.to_dict("records")
    dataset_runs = [r for r in records if r["protocol"] == "dataset fakes"]
    sbi_runs = [r for r in records if r["protocol"] == "SBI only"]
    for r in dataset_runs:
        low = float(r[f"{home} 95 % CI"].strip("[]").split(",")[0])
        verdict = (
            "met" if low >= target else ("not met" if r[home] < target else "met by the point estimate only")
        )
        lines.append(
            f"in-domain {home} under dataset-fake training ({r['steps']} steps, chosen at step "
            f"{r['chosen step']}; {how}): video AUC {r[home]:.3f} {r[f'{home} 95 % CI']}; goal >= "
            f"{target:g} {verdict}"
        )
    for r in sbi_runs:
        held = ", ".join(f"{m} {r[m]:.3f}" for m in protocols.attrs.get("methods", []))
        others = ", ".join(f"{t} {r[t]:.3f}" for t in tests)
        lines.append(
            f"SBI only ({r['steps']} steps, chosen at step {r['chosen step']}; {how}), every method "
            f"held out: {held}; {others}"
        )
    if not dataset_runs:
        lines.append("in-domain goal under dataset-fake training: not run in this profile")
    if not sbi_runs:
        lines.append("SBI-only training: not run in this profile (notebooks.protocol_steps = 0)")
    if central is None or central.empty:
        lines.append("full against backbone_only: not run in this profile")
        return lines
    verdicts = verdict_rows(central)
    for test in tests:
        for _, row in verdicts[verdicts["test"] == test].iterrows():
            lines.append(takeaway(row, "backbone_only"))
    return lines


def interval_unit(report: dict) -> str:
    """How an evaluation's 95 % AUC interval was made, for a table's protocol line."""
    unit = report["metrics"]["video"].get("ci_unit", "video")
    return f"95 % BCa bootstrap over {_unit_words(unit)}, {report['config']['eval']['bootstrap']} resamples"


def protocol_rows(reports: dict[str, dict]) -> pd.DataFrame:
    """One row per test set: its protocol fields next to its headline metrics."""
    rows = []
    for name, report in reports.items():
        protocol = report["protocol"]
        rows.append(
            {
                "test": name,
                **metrics_row(report),
                "train_data": protocol["train_data"],  # metrics_row carries the compression
                "selection": protocol["selection"],
            }
        )
    return pd.DataFrame(rows)


def per_method_table(reports: dict[str, dict]) -> pd.DataFrame:
    """Video AUC of each manipulation against the reals of its own test set, per test set."""
    table = {name: r["metrics"]["per_method_video_auc"] for name, r in reports.items()}
    return pd.DataFrame(table).T.rename_axis("test")


# --------------------------------------------------------------------------- the budget curve


def budget_curve(cfg: Config, root: Path, test_sets: dict[str, Path], progress: bool = True) -> pd.DataFrame:
    """Each variant of `cfg.notebooks.budget_variants`, for each of its `budget_seeds`, trained once
    for the largest of `budget_steps` (its LR schedule spans them all) with the weights kept after
    every budget; each kept model tested on every set of `test_sets`. One row per variant, seed,
    budget and test set, in `ablation`'s columns."""
    from fbifpn.engine.train import kept_path

    book = cfg.notebooks
    rows = []
    for variant in book.budget_variants:
        for seed in book.budget_seeds:
            run_cfg = with_overrides(
                with_steps(cfg, max(book.budget_steps)),
                {"model.variant": variant, "train.seed": seed, "train.keep_steps": list(book.budget_steps)},
            )
            run = trained(run_cfg, Path(root) / f"{variant}-seed{seed}", progress, "08_budget_curve").run_dir
            for steps in book.budget_steps:
                checkpoint = kept_path(run, steps)
                weights = level_weights(checkpoint)
                for name, manifest in test_sets.items():
                    report = evaluation(checkpoint, name, manifest, beta=0.0, progress=progress)
                    rows.append(run_row(variant, seed, steps, name, report, weights, checkpoint))
    return pd.DataFrame(rows)


AT_STEPS = " @ "  # "synth-ff @ 90": one test set at one budget, as the paired tests' `test`


def paired_over_budgets(scores: pd.DataFrame, reference: str, n_resamples: int) -> pd.DataFrame:
    """`comparisons.paired` of every variant against `reference` at each budget (`steps`) and test
    set, all budgets' rows adjusted together (Holm over the whole table); `steps` and `test` apart."""
    from fbifpn.comparisons import paired

    at = scores.assign(test=scores["test"] + AT_STEPS + scores["steps"].astype(str))
    rows = paired(at, reference=reference, n_resamples=n_resamples)
    split = rows["test"].str.split(AT_STEPS, regex=False)
    return rows.assign(test=split.str[0], steps=split.str[1].astype(int))


def level_weight_bound(cfg: Config, steps: int, total: int, levels: int = 4) -> tuple[float, float]:
    """About how far from uniform the normalised level weights v_l can be after `steps` of a run of
    `total`: AdamW's step is about the learning rate per parameter (|m / sqrt(v)| <= 1 for a gradient
    of steady sign; a sign that flips can give up to about 3x for betas 0.9, 0.999, and weight decay
    adds lr x wd x |w|), so each raw weight (all 1 at the start) stays within about d = the sum of the
    learning rates so far, and v_l within
    [(1 - d) / (1 - d + (levels - 1)(1 + d)), (1 + d) / (1 + d + (levels - 1) max(0, 1 - d))]. A scale
    for reading the trajectory, not a guarantee."""
    from fbifpn.engine.optim import lr_factor

    d = cfg.optim.lr * sum(lr_factor(s, total, cfg.optim) for s in range(steps))
    low = max(0.0, 1 - d) / (max(0.0, 1 - d) + (levels - 1) * (1 + d))
    high = (1 + d) / (1 + d + (levels - 1) * max(0.0, 1 - d))
    return low, high


def level_weight_trajectory(curve: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """The full model's v_l at each budget (mean and range over seeds), beside the bound the
    learning rates allow: one row per budget and level."""
    full = curve[curve["level_weights"].notna()].drop_duplicates(["variant", "seed", "steps"])
    total = int(curve["steps"].max())
    rows = []
    for steps, at in full.groupby("steps"):
        weights = np.array([list(w) for w in at["level_weights"]])
        low, high = level_weight_bound(cfg, int(steps), total, weights.shape[1])
        for level in range(weights.shape[1]):
            column = weights[:, level]
            rows.append(
                {
                    "steps": int(steps),
                    "level": f"P{level + 2}",
                    "mean": column.mean(),
                    "min": column.min(),
                    "max": column.max(),
                    "bound_low": low,
                    "bound_high": high,
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- calibration


def notebook_04_sets(cfg: Config, data_root: str | Path = "") -> dict[str, Path]:
    """Every test set notebook 04 scores notebook 02's checkpoint on: the cross-dataset sets and, on
    the synthetic benchmark, the in-domain set at each cross-compression level."""
    sets = prepared_sets(cfg, data_root)
    if not cfg.data.manifest:  # cross_compression's rule: the synthetic benchmark has every level
        sets |= dict(compression_sets(cfg).values())
    return sets


def calibration_inputs(
    cfg: Config, checkpoint: Path, test_sets: dict[str, Path], progress: bool = True
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], float, str]:
    """The frame scores calibration is judged on: the val split of the checkpoint's training set and
    the test split of each of `test_sets` (evaluations other notebooks made are read back), with the
    temperature: the checkpoint's own (fitted on val when it was chosen), or for a checkpoint saved
    before checkpoints held one, fitted here on the same val frames. Returns (val, tests, T, source)."""
    from fbifpn.calibration import fit_temperature, temperature_of
    from fbifpn.engine import checkpoint as ckpt

    home, manifest = home_set(cfg, test_sets, progress)
    evaluation(checkpoint, home, manifest, split="val", progress=progress)
    val = pd.read_csv(evaluation_dir(checkpoint, home, split="val") / "scores.csv")
    tests = {}
    for name, path in test_sets.items():
        evaluation(checkpoint, name, path, progress=progress)
        tests[name] = pd.read_csv(evaluation_dir(checkpoint, name) / "scores.csv")
    temperature = temperature_of(ckpt.load(Path(checkpoint)))
    if temperature is not None:
        return val, tests, temperature, "the checkpoint's, fitted on val frames when it was chosen"
    return val, tests, fit_temperature(val["label"], val["score"]), "fitted here on the val frames"


__all__ = [
    "ablation",
    "budget_curve",
    "level_weight_bound",
    "level_weight_trajectory",
    "paired_over_budgets",
    "goals",
    "learning_curve",
    "learning_curves_of",
    "other_fakes",
    "plateau_step",
    "protocol_table",
    "beta_of",
    "calibration_inputs",
    "compression_sets",
    "notebook_04_sets",
    "evaluation",
    "evaluation_dir",
    "home_set",
    "training_protocols",
    "with_steps",
    "ablation_table",
    "cross_compression",
    "cross_dataset_table",
    "cross_manipulation",
    "evaluated",
    "finished",
    "level_weights",
    "metrics_row",
    "per_method_table",
    "prepared_sets",
    "protocol_rows",
    "summarise",
    "trained",
    "with_mask_evidence",
    "with_overrides",
]
