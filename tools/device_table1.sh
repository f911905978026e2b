#!/usr/bin/env bash
# Issue 13's accelerator part as one prepared command for a lent GPU machine (JAX backend: its image has
# JAX and PyTorch but no TensorFlow). Prepare once on this machine, from the repository root:
#
#   bash ../shared/tools/gpu_wheels.sh                 # the keras wheels -> .whl/ (git-ignored)
#   mkdir -p .device_data && cp ../shared/data/mnist.npz ../shared/data/binarized_mnist.npz .device_data/
#
# then give the device's `run` carry=[".whl", ".device_data"] and the command
#
#   bash tools/device_table1.sh mnist_vae,mnist_crvae 8
#
# It installs the wheels, prints the GPU, measures training images/s of the rows' presets
# (tools/benchmark_train.py), then trains and scores the rows of tools/reproduce_table1.py in order at
# the full protocol (200 epochs, NLL with k=5000 on the 10,000 binarized-MNIST validation images),
# stopping at the first epoch end after MINUTES minutes so that results are written before the
# device's limit. Everything lands in $OUT/table1 (results.json / results.md, per-row history.csv,
# result.json, model.weights.h5; a stopped row's backup/). To resume a stopped row in a later call,
# copy the returned table1/ folder to .device_state/table1 and add ".device_state" to carry (it must
# fit the 64 MiB carry limit with the wheels and the data). Arguments after MINUTES go to
# reproduce_table1.py (e.g. --smoke to check the whole path in a minute first); DEVICE_SKIP_INSTALL=1
# skips the wheel install (a machine that already has keras, e.g. this one for a dry run).
set -euo pipefail
presets=${1:?usage: tools/device_table1.sh PRESETS[,PRESETS...] MINUTES}
minutes=${2:?usage: tools/device_table1.sh PRESETS MINUTES}
out=${OUT:?the device sets OUT}
mkdir -p "$out"
if [ "${DEVICE_SKIP_INSTALL:-0}" != 1 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
fi
export KERAS_BACKEND=jax
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
if [ -d .device_state/table1 ]; then mkdir -p "$out" && cp -r .device_state/table1 "$out/"; fi
python3 tools/benchmark_train.py --presets="$presets" --repeats=3 --steps="${BENCHMARK_STEPS:-20}" \
    --output="$out/benchmark_train_gpu.json" || echo "benchmark failed; continuing with the rows"
python3 tools/reproduce_table1.py --presets="$presets" --output_dir="$out/table1" \
    --train_data=.device_data/mnist.npz:x_train --valid_data=.device_data/binarized_mnist.npz:x_valid \
    --stop_after_minutes="$minutes" --verbose=2 "${@:3}"
