"""What the demo profile's two economies cost in accuracy, measured on a finished `make demo`.

The demo trains every run for one epoch (45 steps) and tests on 4 frames per video without flip
TTA, so that notebooks 02-04 fit 15 minutes with test sets of >= 150 videos. This compares, on the
same test videos of every set (paired, `fbifpn.metrics.compare_auc`):

- evaluation: notebook 02's checkpoint tested with 8 frames and flip TTA against the demo's 4
  frames without it;
- training: the demo profile trained for two epochs (90 steps, the previous demo budget; same seed,
  validation schedule and selection on val) against notebook 02's one-epoch run, both tested the
  demo's way.

    python benchmarks/demo_budget_cost.py [--runs runs/demo] [--json benchmarks/results/FILE.json]

Synthetic data (the demo benchmark), video level, checkpoints chosen on val, 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from fbifpn import load_config, metrics
from fbifpn.engine.evaluate import evaluate_checkpoint
from fbifpn.experiments import evaluation, evaluation_dir, prepared_sets, trained, with_overrides
from fbifpn.provenance import environment, git_commit


def _videos(folder: Path) -> pd.DataFrame:
    return metrics.video_scores(pd.read_csv(folder / "scores.csv"))


def _paired(a: Path, b: Path, resamples: int) -> dict:
    """AUC(a) - AUC(b) on the videos both were scored on (all of them, or it fails)."""
    x, y = _videos(a), _videos(b)
    both = x.merge(y, on="video_id", suffixes=("_a", "_b"), validate="one_to_one")
    if len(both) != len(x) or len(both) != len(y):
        raise ValueError(f"{a} and {b} scored different videos")
    result = metrics.compare_auc(
        both["label_a"], both["score_a"], both["score_b"], n_resamples=resamples, seed=0
    )
    return {k: result[k] for k in ("delta", "low", "high", "p", "n")} | {
        "auc_a": metrics.auc(both["label_a"], both["score_a"]),
        "auc_b": metrics.auc(both["label_a"], both["score_b"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/demo"), help="a finished make demo's runs")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    cfg = load_config("demo")
    checkpoint = args.runs / "train" / "best.pt"
    if not checkpoint.is_file():
        raise SystemExit(f"{checkpoint} is missing: run make demo first")
    tests = prepared_sets(cfg)
    out = {"git_commit": git_commit(), **environment("cpu"), "data": "synthetic demo benchmark, test splits"}

    rich, seconds = {}, {}
    for name, manifest in tests.items():
        evaluation(checkpoint, name, manifest, progress=False)  # the demo's own (made by notebook 03)
        start = time.perf_counter()
        evaluate_checkpoint(
            checkpoint,
            manifest,
            args.runs / "cost" / f"8frames-tta-{name}",
            frames=8,
            tta_flip=True,
            progress=False,
        )
        seconds[name] = round(time.perf_counter() - start, 1)
        rich[name] = _paired(
            evaluation_dir(checkpoint, name), args.runs / "cost" / f"8frames-tta-{name}", args.resamples
        )
    out["evaluation: 4 frames, no TTA - 8 frames, flip TTA"] = rich
    out["seconds for 8 frames with flip TTA"] = seconds

    two = with_overrides(cfg, {"train.epochs": 2})
    start = time.perf_counter()
    longer = trained(two, args.runs / "cost" / "two-epochs", progress=False).best_checkpoint
    out["seconds to train two epochs"] = round(time.perf_counter() - start, 1)
    training = {}
    for name, manifest in tests.items():
        evaluation(longer, name, manifest, progress=False)
        training[name] = _paired(
            evaluation_dir(checkpoint, name), evaluation_dir(longer, name), args.resamples
        )
    out["training: 1 epoch (45 steps) - 2 epochs (90 steps)"] = training
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
