"""The start-up cost of training: building a preset, tracing its training step and running one step,
with the optimizer built before tracing (`keras_crvae.models.base.OptimizerBuiltBeforeTracing`, as
shipped) and as Keras builds it (inside the first trace, which `tf.function` then traces again).

Every measurement runs in a fresh Python process (nothing traced or cached before it), the two
ways interleaved round by round; the process's CPU seconds from the model's build to the end of
its first one-step `fit` are reported (CPU time, unlike wall time, barely depends on other jobs on
the machine), with the number of times `train_step` was traced.

    python tools/benchmarks/trace_startup.py --presets=mnist_vae,mnist_crvae,tiny_crvae --rounds=2

(`tiny_crvae`: `mnist_crvae` at the CLI tests' width, base_channels=2 and latent_channels=8.)
Prints a table and writes `--output` (JSON). TensorFlow backend (on JAX, Keras builds the
optimizer before tracing itself).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

WAYS = ("prebuilt", "keras")
TINY = {"tiny_crvae": ("mnist_crvae", {"base_channels": 2, "latent_channels": 8})}


def measure(preset, way, batch_size):
    """In this (fresh) process: (CPU seconds of build + trace + one step, traces)."""
    import keras
    import numpy as np

    import keras_crvae
    from keras_crvae.models import base

    if way == "keras":
        base.OptimizerBuiltBeforeTracing.make_train_function = (
            lambda self, force=False: keras.Model.make_train_function(self, force))
    name, overrides = TINY.get(preset, (preset, {}))
    images = (np.random.default_rng(0).random((batch_size, 28, 28, 1)) < 0.3).astype("float32")
    started = time.process_time()
    keras.utils.set_random_seed(0)
    model = keras_crvae.from_preset(name, **overrides)
    traces = []
    train_step = model.train_step

    def counting_train_step(*args, **kwargs):
        traces.append(1)
        return train_step(*args, **kwargs)

    model.train_step = counting_train_step
    model.fit(images, batch_size=batch_size, epochs=1, verbose=0, shuffle=False)
    return time.process_time() - started, len(traces)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="mnist_vae,mnist_crvae,tiny_crvae")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--output", default="trace_startup.json")
    parser.add_argument("--worker", nargs=2, metavar=("PRESET", "WAY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        seconds, traces = measure(*args.worker, args.batch_size)
        print(json.dumps({"cpu_seconds": seconds, "traces": traces}))
        return
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    results = {}
    for round_index in range(args.rounds):
        for preset in args.presets.split(","):
            for way in WAYS:
                output = subprocess.run(
                    [sys.executable, __file__, "--worker", preset, way,
                     f"--batch_size={args.batch_size}"], env=env, capture_output=True, text=True,
                    check=True).stdout
                record = json.loads(output.strip().splitlines()[-1])
                results.setdefault(preset, {}).setdefault(way, []).append(record)
                print(f"round {round_index + 1}: {preset} {way}: {record['cpu_seconds']:.1f} CPU-s, "
                      f"{record['traces']} trace(s)", flush=True)
    rows = []
    print("\n| preset | traces (prebuilt / Keras) | CPU-s prebuilt | CPU-s Keras | saved |")
    print("|---|---|---|---|---|")
    for preset, ways in results.items():
        medians = {way: statistics.median(r["cpu_seconds"] for r in ways[way]) for way in WAYS}
        traces = {way: ways[way][0]["traces"] for way in WAYS}
        rows.append({"preset": preset, "median_cpu_seconds": medians, "traces": traces,
                     "runs": ways})
        print(f"| {preset} | {traces['prebuilt']} / {traces['keras']} | "
              f"{medians['prebuilt']:.1f} | {medians['keras']:.1f} | "
              f"{medians['keras'] - medians['prebuilt']:.1f} CPU-s |")
    load = [round(x, 2) for x in os.getloadavg()]
    print(f"\nload average at the end: {load}")
    with open(args.output, "w") as handle:
        json.dump({"batch_size": args.batch_size, "rounds": args.rounds, "load_average": load,
                   "machine": platform.platform(), "processor": _processor(), "results": rows},
                  handle, indent=1)


def _processor():
    try:
        with open("/proc/cpuinfo") as handle:
            flags = next(line for line in handle if line.startswith("flags")).split()
        return [flag for flag in ("amx_bf16", "avx512_bf16") if flag in flags]
    except (OSError, StopIteration):
        return []


if __name__ == "__main__":
    main()
