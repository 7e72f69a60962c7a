"""Images/s and the learning curve of a training run folder, from its metrics.jsonl (a run that was
stopped by a time limit included): `python benchmarks/summarise_run.py RUN_DIR` -> prints and writes
RUN_DIR/summary.json. A run that finished no logged step says so, and the script exits 1."""

import json
import sys
from pathlib import Path

run = Path(sys.argv[1])
log = run / "metrics.jsonl"
records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []
train = [r for r in records if r["kind"] == "train" and "elapsed_s" in r]
val = [r for r in records if r["kind"] == "val"]
summary = {"run_dir": str(run), "train_points": len(train), "val_points": len(val), "steps": 0}
if train:
    summary |= {
        "steps": train[-1]["step"],
        "seconds": train[-1]["elapsed_s"],
        "loss_last": train[-1]["total"],
    }
if len(train) >= 2:
    first, last = train[0], train[-1]
    seconds = last["elapsed_s"] - first["elapsed_s"]
    summary |= {
        "img_s_incl_validation": (last["images"] - first["images"]) / seconds if seconds > 0 else None,
        "loss_first": first["total"],
    }
summary["loss_curve"] = [(r["step"], round(r["total"], 4)) for r in train]
summary["val_curve"] = [(r["step"], round(r["video_auc"], 4), round(r["frame_auc"], 4)) for r in val]
(run / "summary.json").write_text(json.dumps(summary, indent=1))
for key, value in summary.items():
    print(f"{key}: {value}")
if not train:
    why = "no metrics.jsonl" if not log.is_file() else "no train point in metrics.jsonl"
    print(f"NO STEP: the run in {run} finished no logged training step ({why}); there is no rate to report")
    sys.exit(1)
if len(train) < 2:
    print(f"ONE POINT: {run} logged one training point (step {train[0]['step']}), too few for a rate")
