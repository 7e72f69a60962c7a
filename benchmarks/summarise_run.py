"""Images/s and the learning curve of a training run folder, from its metrics.jsonl (a run that was
stopped by a time limit included): `python benchmarks/summarise_run.py RUN_DIR` -> prints and writes
RUN_DIR/summary.json."""

import json
import sys
from pathlib import Path

run = Path(sys.argv[1])
records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
train = [r for r in records if r["kind"] == "train" and "elapsed_s" in r]
val = [r for r in records if r["kind"] == "val"]
summary = {"run_dir": str(run), "train_points": len(train), "val_points": len(val)}
if len(train) >= 2:
    first, last = train[0], train[-1]
    seconds = last["elapsed_s"] - first["elapsed_s"]
    summary |= {
        "steps": last["step"],
        "seconds": last["elapsed_s"],
        "img_s_incl_validation": (last["images"] - first["images"]) / seconds if seconds > 0 else None,
        "loss_first": first["total"],
        "loss_last": last["total"],
    }
summary["loss_curve"] = [(r["step"], round(r["total"], 4)) for r in train]
summary["val_curve"] = [(r["step"], round(r["video_auc"], 4), round(r["frame_auc"], 4)) for r in val]
(run / "summary.json").write_text(json.dumps(summary, indent=1))
for key, value in summary.items():
    print(f"{key}: {value}")
