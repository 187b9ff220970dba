#!/usr/bin/env bash
# The whole GPU measurement in one call, for a machine lent for a few minutes (README, Performance):
# the benchmark at 1, 2 and 3 routings (fast against plain), the same with torch.compile, and a real
# 2-epoch 3-routing run on all 60,000 training images. Everything it writes goes under $OUT
# (default ./gpu-check-out). Without a CUDA GPU it says so in one line and exits 3.
#
# The GPU machine has PyTorch but no network. Carry, as ignored paths of the checkout:
#   data/mnist   the IDX files (`make data` writes them here)
#   .whl         wheels of the pinned packages that machine lacks (idx2numpy; tqdm if absent)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-check-out}"
mkdir -p "$OUT"
PYTHON="${PYTHON:-python3}"
if compgen -G ".whl/*.whl" >/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no CUDA GPU on this machine ($("$PYTHON" -c 'import torch; print("torch", torch.__version__)' 2>&1)); nothing measured" >&2
    exit 3
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
"$PYTHON" -c "from capsviz import load_mnist; load_mnist('train'); load_mnist('test')"
step() { echo "== $1"; shift; timeout "$@"; }
step "benchmark, eager" 150 "$PYTHON" -m trainer.bench --device cuda --repeats 5 --results-dir "$OUT" 2>&1 | tee "$OUT/bench-eager.log"
step "benchmark, torch.compile" 150 "$PYTHON" -m trainer.bench --device cuda --routings 3 --repeats 5 --compile --results-dir "$OUT" 2>&1 | tee "$OUT/bench-compile.log" || echo "torch.compile run failed or ran out of time"
step "training, 2 epochs x 60k, 3 routings" 120 "$PYTHON" -m trainer.run --routings 3 --epochs 2 --device cuda --out "$OUT/run-r3" 2>&1 | tee "$OUT/train.log"
cp "$OUT/run-r3/history.csv" "$OUT/run-r3/run.json" "$OUT/" && rm -rf "$OUT/run-r3"
echo "gpu_check: done; results in $OUT"
