#!/usr/bin/env bash
# The whole GPU measurement in one call, for a machine lent for a few minutes (README, Performance):
# the benchmark at 1, 2 and 3 routings (fast against plain), the same with torch.compile, and a real
# 2-epoch 3-routing run on all 60,000 training images. Everything it writes goes under $OUT
# (default ./gpu_check-out). Without a CUDA GPU it says so in one line and exits 3.
# What to carry to the GPU machine: scripts/gpu_setup.sh.
NAME=gpu_check
source "$(dirname "$0")/gpu_setup.sh"
step() { echo "== $1"; shift; timeout "$@"; }
step "benchmark, eager" 150 "$PYTHON" -m trainer.bench --device cuda --repeats 5 --results-dir "$OUT" 2>&1 | tee "$OUT/bench-eager.log"
step "benchmark, torch.compile" 150 "$PYTHON" -m trainer.bench --device cuda --routings 3 --repeats 5 --compile --results-dir "$OUT" 2>&1 | tee "$OUT/bench-compile.log" || echo "torch.compile run failed or ran out of time"
step "training, 2 epochs x 60k, 3 routings" 120 "$PYTHON" -m trainer.run --routings 3 --epochs 2 --device cuda --out "$OUT/run-r3" 2>&1 | tee "$OUT/train.log"
cp "$OUT/run-r3/history.csv" "$OUT/run-r3/run.json" "$OUT/" && rm -rf "$OUT/run-r3"
echo "gpu_check: done; results in $OUT"
