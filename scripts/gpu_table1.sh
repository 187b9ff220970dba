#!/usr/bin/env bash
# Table 1 on a GPU lent for a few minutes (README, "Table 1, reproduced so far"): every run of the
# table1 grid (5 settings x 3 seeds) trained at once on the one GPU by trainer.sweep for BUDGET seconds
# (default 420), up to EPOCHS epochs each (default 50). Runs stop cleanly when the time is up and keep
# every complete epoch. Under $OUT (default ./gpu_table1-out) it leaves, per run, run.json, history.csv,
# routing.csv and the run's log in table1/<run>/, and in best-r3/ the 3-routing run with reconstruction
# that ended with the lowest test error, with its weights in int8 (scripts/compact_weights.py). The
# resume states stay behind (too large to carry back).
#
#   bash scripts/gpu_table1.sh                     # on the GPU machine, in one call of about 8 minutes
#   ALLOW_CPU=1 BUDGET=120 EPOCHS=1 SEEDS=0 ONLY=capsnet-r3-recon EXTRA="--subset 200 --test-subset 100" \
#       bash scripts/gpu_table1.sh                 # a rehearsal on the CPU (tests/test_bench.py does this)
#
# Without a CUDA GPU (and no ALLOW_CPU=1) it says so in one line and exits 3. What to carry to the GPU
# machine: scripts/gpu_setup.sh.
NAME=gpu_table1
source "$(dirname "$0")/gpu_setup.sh"
BUDGET="${BUDGET:-420}"
EPOCHS="${EPOCHS:-50}"
SEEDS="${SEEDS:-0,1,2}"
JOBS="${JOBS:-15}"
runs="$OUT/runs"
# shellcheck disable=SC2086  # EXTRA is a list of trainer flags
sweep=("$PYTHON" -m trainer.sweep --grid table1 --seeds "$SEEDS" --epochs "$EPOCHS" --jobs "$JOBS"
       --device "$DEVICE" --out "$runs" ${ONLY:+--only "$ONLY"} ${EXTRA:-})
echo "== Table 1 sweep, $BUDGET s on $DEVICE: ${sweep[*]}"
# SIGTERM at the deadline: the sweep stops its trainers as Ctrl-C does; each keeps its complete epochs
timeout --signal=TERM --kill-after=60 "$BUDGET" "${sweep[@]}" 2>&1 | tee "$OUT/sweep.log" || true
mkdir -p "$OUT/table1"
for run in "$runs"/*/; do
    [ -f "$run/run.json" ] || continue
    name="$(basename "$run")"
    mkdir -p "$OUT/table1/$name"
    cp "$run/run.json" "$OUT/table1/$name/"
    # `if`, not `[ ] && cp`: under set -e a missing file (a baseline has no routing.csv) must not end the script
    for file in history.csv routing.csv; do if [ -f "$run/$file" ]; then cp "$run/$file" "$OUT/table1/$name/"; fi; done
    if [ -f "$runs/logs/$name.log" ]; then cp "$runs/logs/$name.log" "$OUT/table1/$name/train.log"; fi
done
best="$("$PYTHON" - "$runs" <<'PYTHON'
import sys
from pathlib import Path
from capsviz.analysis.results import last_value
from capsviz.store import read_history
finals = []
for run in sorted(Path(sys.argv[1]).glob("capsnet-r3-recon-seed*")):
    error = last_value(read_history(run), "test_error") if (run / "history.csv").exists() else None
    if error is not None and (run / "model.pt").exists():
        finals.append((error, run))
print(min(finals)[1] if finals else "")
PYTHON
)"
if [ -n "$best" ]; then
    mkdir -p "$OUT/best-r3"
    cp "$best/run.json" "$best/history.csv" "$best/model.pt" "$OUT/best-r3/"
    if [ -f "$best/routing.csv" ]; then cp "$best/routing.csv" "$OUT/best-r3/"; fi
    "$PYTHON" scripts/compact_weights.py "$OUT/best-r3"
    echo "best 3-routing run with reconstruction: $(basename "$best") -> $OUT/best-r3"
fi
rm -rf "$runs"
echo "gpu_table1: done; $(find "$OUT/table1" -name history.csv | wc -l) run histories in $OUT/table1"
