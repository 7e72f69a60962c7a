#!/usr/bin/env bash
# One GPU check in about 5-6 minutes, needing nothing from the network or this project's environment:
# the benchmark harness on the paper profile (EfficientNet-B4 at 384 px, random init), with the full
# model beside its two speed options (the consistency head on its grid, a half-width stride-4 level)
# and under torch.compile; then 2 minutes of paper-profile training on demo-size synthetic data
# generated here, with its images/s and learning curve. Everything lands in $OUT (default
# runs/gpu-check).
#
#   OUT=/some/folder bash benchmarks/gpu_check.sh            # on the GPU machine, from the checkout
#   GPU_CHECK_PROFILE=smoke SYNTH_SIZE=smoke TRAIN_STEPS=4 LOG_EVERY=1 COMPILE_SECONDS=0 \
#       bash benchmarks/gpu_check.sh                           # CPU dry run (bounded in steps)
#
# The package runs from the checkout (PYTHONPATH=.) on the machine's own torch and timm: its lean
# imports need only torch, timm, numpy, opencv, pandas, pyyaml, tqdm and tensorboard (PyAV is
# optional: without it the videos are written by OpenCV, and benchmark.json says so).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu-check}
PROFILE=${GPU_CHECK_PROFILE:-paper}
TRAIN_SECONDS=${TRAIN_SECONDS:-120}
TRAIN_STEPS=${TRAIN_STEPS:-0}  # > 0: stop after this many steps (train.max_steps), whatever the time
LOG_EVERY=${LOG_EVERY:-10}
COMPILE_SECONDS=${COMPILE_SECONDS:-90}  # 0 skips the torch.compile measurement
SYNTH_SIZE=${SYNTH_SIZE:-demo}
PY=${PYTHON:-python}
# The harness's rounds, and steps and warm-up steps per round when set (unset: each call's own
# numbers below). The CPU dry-run test sets them small: it checks what is reported, not the rates.
ROUNDS=${BENCH_ROUNDS:-3}
WORKERS=$(nproc)
export PYTHONPATH=. HF_HUB_OFFLINE=1
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
echo "== $(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null || echo no-git) profile $PROFILE"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "no nvidia-smi: CPU dry run"
$PY -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__, 'cuda', torch.cuda.is_available())"

SET=(--set model.backbone.pretrained=false --set data.synthetic="$SYNTH_SIZE")
HALF=$($PY -c "from fbifpn import load_config; print(load_config('$PROFILE').model.neck.width // 2)")
echo "== harness: training step, then inference"
$PY -m fbifpn bench train --profile "$PROFILE" "${SET[@]}" --steps "${BENCH_STEPS:-7}" --rounds "$ROUNDS" \
    --warmup "${BENCH_WARMUP:-5}" --variants grid_consistency no_consistency backbone_only --json "$OUT/bench-train.json"
$PY -m fbifpn bench infer --profile "$PROFILE" "${SET[@]}" --steps "${BENCH_STEPS:-10}" --rounds "$ROUNDS" \
    --warmup "${BENCH_WARMUP:-5}" --variants grid_consistency --json "$OUT/bench-infer.json"
echo "== harness with the stride-4 level at half width (model.neck.finest_width, an option)"
$PY -m fbifpn bench train --profile "$PROFILE" "${SET[@]}" --set model.neck.finest_width="$HALF" \
    --steps "${BENCH_STEPS:-4}" --rounds "$ROUNDS" --warmup "${BENCH_WARMUP:-3}" --no-sam --json "$OUT/bench-train-narrow.json"
$PY -m fbifpn bench infer --profile "$PROFILE" "${SET[@]}" --set model.neck.finest_width="$HALF" \
    --steps "${BENCH_STEPS:-7}" --rounds "$ROUNDS" --warmup "${BENCH_WARMUP:-5}" --json "$OUT/bench-infer-narrow.json"
if [ "$COMPILE_SECONDS" -gt 0 ]; then
    echo "== harness under torch.compile (compile time excluded; given up after $COMPILE_SECONDS s)"
    timeout "$COMPILE_SECONDS" $PY -m fbifpn bench train --profile "$PROFILE" "${SET[@]}" --steps 7 \
        --rounds 3 --warmup 5 --compile --no-sam --json "$OUT/bench-train-compile.json" \
        || echo "(torch.compile measurement did not finish in $COMPILE_SECONDS s)"
fi

echo "== $SYNTH_SIZE-size synthetic benchmark on $WORKERS cores"
time $PY -m fbifpn synth --size "$SYNTH_SIZE" --workers "$WORKERS"
echo "== harness: the DataLoader (online SBI) against tensors on the device"
$PY -m fbifpn bench data --profile "$PROFILE" "${SET[@]}" --steps "${BENCH_STEPS:-7}" --rounds "$ROUNDS" \
    --warmup "${BENCH_WARMUP:-5}" --json "$OUT/bench-data.json"

echo "== ${TRAIN_SECONDS} s of $PROFILE-profile training on synth-ff c23 ($SYNTH_SIZE size)"
# SIGINT ends fit cleanly (its logs are closed); what it trained is in metrics.jsonl either way.
timeout --signal=INT "$TRAIN_SECONDS" $PY -m fbifpn train --profile "$PROFILE" "${SET[@]}" \
    --set train.epochs=1000 --set train.max_steps="$TRAIN_STEPS" --set train.log_every="$LOG_EVERY" \
    --set optim.warmup_steps=50 \
    --run-dir "$OUT/train" || echo "(training stopped after ${TRAIN_SECONDS} s, as planned)"
$PY benchmarks/summarise_run.py "$OUT/train" | tee "$OUT/train-summary.txt"
echo "== done: $OUT"
