#!/usr/bin/env bash
# The prepared GPU check: on one NVIDIA H200 it takes about 7 minutes (at most 8).
#
#   POGM_DATA=/path/to/data benchmarks/gpu_check.sh              # writes benchmarks/results/gpu_check.json
#   OUT=/somewhere benchmarks/gpu_check.sh                        # writes its JSON and test log there
#   benchmarks/gpu_check.sh --device cpu --tiny --steps 5         # a dry run on a CPU (arguments go to gpu_check.py)
#
# 1. the CUDA tests (tests/test_cuda.py: every model's loss and gradients, save/load, exact resume,
#    a step that never waits for the device) and the sync-free step's tests;
# 2. benchmarks/gpu_check.py: training throughput of the M2, ADGM and SDGM at 100 + 100 a step and
#    at a larger step (sync-free, synchronous, compiled), then the ADGM and the SDGM at the paper's
#    settings for as many epochs as fit in its --train-seconds, with the test error they reach and
#    the projected time of the paper's 1000 epochs.
# A second call, `benchmarks/gpu_check.sh --sections hali` (about 7 minutes with its tests), trains
# semi-supervised HALI, two settings on Table 4's spatial network and the hali-mnist100 table's two
# convolutional rows (the second with virtual adversarial training), 90 seconds each, and reports the
# test errors out of 10,000 (the paper: 73).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
RESULTS=${OUT:-benchmarks/results}
mkdir -p "$RESULTS"
export POGM_DATA=${POGM_DATA:-../shared/data} PYTHONUNBUFFERED=1
export CUBLAS_WORKSPACE_CONFIG=:4096:8  # bitwise-reproducible matrix products (exact resume)
"$PY" -c "import pogm" 2>/dev/null || "$PY" -m pip install -q --no-deps -e . >/dev/null 2>&1 || export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" -c "import torch; print('torch', torch.__version__, '| CUDA', torch.cuda.is_available())"

echo "== 1. CUDA tests"
start=$SECONDS
"$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_sync_free.py -rs >"$RESULTS/gpu_check_tests.log" 2>&1
status=$?
tail -n 15 "$RESULTS/gpu_check_tests.log"
echo "tests: exit $status in $((SECONDS - start)) s"

echo "== 2. throughput and the paper runs"
start=$SECONDS
"$PY" benchmarks/gpu_check.py --out "$RESULTS/gpu_check.json" "$@"
echo "benchmark: exit $? in $((SECONDS - start)) s"
exit $status
