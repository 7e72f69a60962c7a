"""What the demo profile's two economies cost in accuracy, measured on finished runs.

The demo trains every run for one epoch (45 steps) and tests on 2 frames per video without flip
TTA, so that make demo fits 15 minutes with test sets of >= 150 videos. This compares, on the
same test videos of every set (paired over video families, `fbifpn.metrics.compare_auc`):

- evaluation: notebook 02's demo checkpoint tested the demo's way against `--frames` frames
  (default 4, the study's), with flip TTA when `--tta` (3 evaluations);
- training: the demo's one-epoch run against the study's two-epoch run of the same model, seed and
  data (`make study`, notebook 02), both tested with `--frames` (the study's own evaluation, and
  the demo checkpoint's richer one above), so that only the training differs.

    python benchmarks/demo_budget_cost.py [--demo runs/demo] [--study runs/study] [--frames 4] [--tta] [--json FILE]

Synthetic data (the demo benchmark), video level, checkpoints chosen on val, CPU.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from fbifpn import load_config, metrics
from fbifpn.engine.evaluate import evaluate_checkpoint
from fbifpn.experiments import evaluation, evaluation_dir, prepared_sets
from fbifpn.provenance import environment, git_commit


def _videos(folder: Path) -> pd.DataFrame:
    return metrics.video_scores(pd.read_csv(folder / "scores.csv"))


def _paired(a: Path, b: Path, resamples: int) -> dict:
    """AUC(a) - AUC(b) on the videos both were scored on (all of them, or it fails)."""
    x, y = _videos(a), _videos(b)
    both = x.merge(y, on="video_id", suffixes=("_a", "_b"), validate="one_to_one")
    if len(both) != len(x) or len(both) != len(y):
        raise ValueError(f"{a} and {b} scored different videos")
    families = both.get("family_a")
    result = metrics.compare_auc(
        both["label_a"], both["score_a"], both["score_b"], families=families, n_resamples=resamples, seed=0
    )
    return {k: result[k] for k in ("delta", "low", "high", "p", "n", "unit", "units")} | {
        "auc_a": metrics.auc(both["label_a"], both["score_a"]),
        "auc_b": metrics.auc(both["label_a"], both["score_b"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, default=Path("runs/demo"), help="a finished make demo's runs")
    parser.add_argument("--study", type=Path, default=Path("runs/study"), help="a finished make study's runs")
    parser.add_argument("--frames", type=int, default=4, help="frames per video of the richer evaluation")
    parser.add_argument("--tta", action="store_true", help="flip TTA in the richer evaluation")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    cfg = load_config("demo")
    demo, study = args.demo / "train" / "best.pt", args.study / "train" / "best.pt"
    for checkpoint, target in ((demo, "demo"), (study, "study")):
        if not checkpoint.is_file():
            raise SystemExit(f"{checkpoint} is missing: run make {target} first")
    tests = prepared_sets(cfg)
    out = {"git_commit": git_commit(), **environment("cpu"), "data": "synthetic demo benchmark, test splits"}

    rich, seconds, folders = {}, {}, {}
    for name, manifest in tests.items():
        evaluation(demo, name, manifest, progress=False)  # the demo's own, made by notebook 03
        richer = f"{args.frames} frames" + (", flip TTA" if args.tta else ", no TTA")
        folder = args.demo / "cost" / f"{args.frames}frames{'-tta' if args.tta else ''}-{name}"
        start = time.perf_counter()
        evaluate_checkpoint(demo, manifest, folder, frames=args.frames, tta_flip=args.tta, progress=False)
        seconds[name] = round(time.perf_counter() - start, 1)
        rich[name] = _paired(evaluation_dir(demo, name), folder, args.resamples)
        folders[name] = folder
    demo_way = f"{cfg.eval.frames_per_video} frames" + (", flip TTA" if cfg.eval.tta_flip else ", no TTA")
    out[f"evaluation: {demo_way} - {richer}"] = rich
    out[f"seconds for {richer}"] = seconds
    out[f"training: 1 epoch (45 steps, demo) - 2 epochs (90 steps, study), both at {richer}"] = {
        name: _paired(folders[name], evaluation_dir(study, name), args.resamples) for name in tests
    }
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
