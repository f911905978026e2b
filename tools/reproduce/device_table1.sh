#!/usr/bin/env bash
# Issue 13's accelerator part as one prepared command for a lent GPU machine (JAX backend: its image has
# JAX and PyTorch but no TensorFlow). Prepare once on this machine, from the repository root:
#
#   bash ../shared/tools/gpu_wheels.sh                 # the keras wheels -> .whl/ (git-ignored)
#   mkdir -p .device_data && cp ../shared/data/mnist.npz ../shared/data/binarized_mnist.npz .device_data/
#
# then give the device's `run` carry=[".whl", ".device_data"] and the command
#
#   DEVICE_PARALLEL=1 BENCHMARK_STEPS=0 DEVICE_ROW_SECONDS=560 bash tools/reproduce/device_table1.sh \
#       mnist_vae,mnist_crvae 5.5 --set=precision=bfloat16 --max_decoder_batch=10000
#
# It installs the wheels, prints the GPU, measures training images/s of the rows' presets in float32
# and mixed bfloat16 (tools/benchmarks/benchmark_train.py; BENCHMARK_STEPS=0 skips it;
# BENCHMARK_TRANSPOSED_CONVS=phases,native also times the native transposed convolution), then
# trains and scores the rows of tools/reproduce/reproduce_table1.py at the full protocol (200 epochs, NLL with
# k=5000 on the 10,000 binarized-MNIST validation images), stopping at the first epoch end after
# MINUTES minutes. Rows train in .device_state/table1, which stays on the device machine while it is warm (30 s after
# a call): the same command again, at once (sized to the device time left), resumes a stopped row
# from its full backup. Each call returns $OUT/table1.tar.gz (table1/: results.json / results.md,
# per row history.csv, result.json, train_info.json, progress.json, sessions.json) and a log per
# process, packed on any exit. The weights and backups do not come back: a Table 1 row's weights
# are about 65 MB (with Adam's moments three times that), over the 16 MiB a returned file may have
# and the 64 MiB a call may carry.
#
# Arguments after MINUTES go to reproduce_table1.py (e.g. --smoke to check the whole path in a
# minute first). DEVICE_PARALLEL=1 trains each row in its own process, side by side on the GPU;
# DEVICE_ROW_SECONDS kills the rows' processes that many seconds after the script started (their last
# epoch-end backup stays), so that the results are packed before the call's limit (leave 30 s for
# packing and the transfer); the script exits non-zero when a row failed other than by that limit.
# DEVICE_SKIP_INSTALL=1 skips the wheel install (a machine that already has keras, e.g. this one for
# a dry run).
set -euo pipefail
presets=${1:?usage: tools/reproduce/device_table1.sh PRESETS[,PRESETS...] MINUTES}
minutes=${2:?usage: tools/reproduce/device_table1.sh PRESETS MINUTES}
out=${OUT:?the device sets OUT}
mkdir -p "$out"
if [ "${DEVICE_SKIP_INSTALL:-0}" != 1 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
fi
export KERAS_BACKEND=jax
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
if [ "${BENCHMARK_STEPS:-20}" != 0 ]; then
  python3 tools/benchmarks/benchmark_train.py --presets="$presets" --repeats=3 --steps="${BENCHMARK_STEPS:-20}" \
      --precisions="${BENCHMARK_PRECISIONS:-float32,bfloat16}" \
      --transposed_convs="${BENCHMARK_TRANSPOSED_CONVS:-auto}" \
      --output="$out/benchmark_train_gpu.json" || echo "benchmark failed; continuing with the rows"
fi
export PYTHONUNBUFFERED=1
state=.device_state/table1  # git-ignored; kept on a warm device machine between calls
mkdir -p "$state"
statuses=$(mktemp -d)
pack() {
  # The device returns at most 8 files of at most 16 MiB, 2 folders down: the results travel in one
  # tarball, without the weights and backups (a paper-size row's weights alone are about 65 MB).
  # Packed on any exit, so that a failed or killed row still returns what the others wrote.
  tar -czf "$out/table1.tar.gz" --exclude=backup --exclude='*.weights.h5' --exclude='*.npz' \
      -C "$(dirname "$state")" "$(basename "$state")" || true
}
trap pack EXIT
# DEVICE_ROW_SECONDS counts from this script's start (install and benchmark included).
row_seconds=$(( ${DEVICE_ROW_SECONDS:-100000} - SECONDS ))
if [ "$row_seconds" -le 30 ]; then
  echo "DEVICE_ROW_SECONDS=${DEVICE_ROW_SECONDS:-}: only ${row_seconds}s left for the rows; none run"
  exit 1
fi
run_rows() {  # PRESETS LOG: the rows in order, in one process, stopped before the call's limit
  local status=0
  timeout -k 10 "$row_seconds" python3 tools/reproduce/reproduce_table1.py --presets="$1" \
      --output_dir="$state" --train_data=.device_data/mnist.npz:x_train \
      --valid_data=.device_data/binarized_mnist.npz:x_valid --stop_after_minutes="$minutes" \
      --verbose=2 "${extra[@]}" 2>&1 | tee "$2" || status=$?
  echo "$1: exit status $status$([ "$status" = 124 ] && echo " (DEVICE_ROW_SECONDS reached)")" \
      | tee -a "$2"
  echo "$status" > "$statuses/${1//,/_}"
}
extra=("${@:3}")
if [ "${DEVICE_PARALLEL:-0}" = 1 ]; then
  # One process per row, all on the one GPU: the H200 ran the float32 VAE and crVAE rows side by
  # side at 9.6 and 18.5 ms per step (docs/reproduction.md). JAX must not preallocate 75% per process.
  export XLA_PYTHON_CLIENT_PREALLOCATE=false
  for row in ${presets//,/ }; do run_rows "$row" "$out/log_$row.txt" & done
  wait
else
  run_rows "$presets" "$out/log.txt"
fi
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader || true
# A row stopped by DEVICE_ROW_SECONDS (124) resumes in the next call; anything else is a failure.
failed=0
for file in "$statuses"/*; do
  case "$(cat "$file")" in 0|124) ;; *) failed=1 ;; esac
done
exit "$failed"
