# Sourced by the GPU scripts (gpu_check.sh, gpu_table1.sh): the preamble of a machine lent for a few
# minutes, with PyTorch but no network. It sets OUT (default ./$NAME-out) and PYTHON, installs the
# carried wheels, and without a CUDA GPU says so in one line and exits 3, unless ALLOW_CPU=1 (a rehearsal
# on the CPU). Carry, as ignored paths of the checkout:
#   data/mnist   the IDX files (`make data` writes them here)
#   .whl         wheels of the pinned packages that machine lacks (idx2numpy; tqdm if absent)
# NAME: the calling script's name, for its messages.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-$NAME-out}"
mkdir -p "$OUT"
PYTHON="${PYTHON:-python3}"
if compgen -G ".whl/*.whl" >/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    if [ "${ALLOW_CPU:-0}" != 1 ]; then
        echo "$NAME: no CUDA GPU on this machine ($("$PYTHON" -c 'import torch; print("torch", torch.__version__)' 2>&1)); nothing measured" >&2
        exit 3
    fi
    DEVICE=cpu
else
    DEVICE=cuda
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
fi
"$PYTHON" -c "from capsviz import load_mnist; load_mnist('train'); load_mnist('test')"
