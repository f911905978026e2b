"""Seconds per training epoch of the reproduction rows on each Keras backend, side by side.

    python tools/benchmark_backends.py [--presets=mnist_mlp_vae,mnist_mlp_iwae] \
        [--backends=tensorflow,jax] [--threads=1] [--num_images=6000] [--output=benchmark_backends.json]

Each (backend, preset) runs in its own process (a Keras backend is chosen per process), one after the
other, and trains exactly as `tools/reproduce_iwae_table.py` does: the preset's optimizer and batch
size, `steps_per_execution` 300, the dynamically binarizing `data.training_data` pipeline, the same
`--threads` limit (`reproduction.limit_threads`: TensorFlow's op threads, XLA's CPU threads on JAX).
One warm-up epoch, then `--epochs` timed epochs over `--num_images` MNIST training images; reported
as milliseconds per step and seconds per epoch of the 50,009 training images the reproduction uses.
The load average is printed with every row: run it on a quiet machine.
"""

import json
import os
import pathlib
import platform
import subprocess
import sys
import time

from absl import app, flags

ROOT = pathlib.Path(__file__).resolve().parents[1]
TRAIN_IMAGES = 50009  # MNIST training images less the binarized validation split's sources

FLAGS = flags.FLAGS
flags.DEFINE_list("presets", ["mnist_mlp_vae", "mnist_mlp_iwae", "mnist_mlp_vae_2layer",
                              "mnist_mlp_iwae_2layer"], "Presets to time.")
flags.DEFINE_list("backends", ["tensorflow", "jax"], "Keras backends to compare.")
flags.DEFINE_integer("threads", 1, "Op threads per process (`reproduction.limit_threads`).")
flags.DEFINE_integer("num_images", 6000, "MNIST training images per timed epoch.")
flags.DEFINE_integer("epochs", 3, "Timed epochs (after one warm-up epoch).")
flags.DEFINE_string("train_data", str(ROOT.parent / "shared" / "data" / "mnist.npz") + ":x_train",
                    "Grey-level training images, PATH.npz:KEY.")
flags.DEFINE_string("output", "benchmark_backends.json", "JSON output path.")
flags.DEFINE_string("worker", None, "Internal: time this preset in this process.")


def time_epochs(name):
    """One process's measurement of `name` on the current backend; returns a dict."""
    sys.path.insert(0, str(ROOT / "tools"))
    import reproduction

    reproduction.limit_threads(FLAGS.threads)
    import keras

    import keras_crvae
    from keras_crvae import data, presets

    images = data.load_npz_images(FLAGS.train_data)[:FLAGS.num_images]
    preset = keras_crvae.get_preset(name)
    batch_size = preset.training.batch_size
    steps = len(images) // batch_size
    model = keras_crvae.from_preset(name, steps_per_epoch=steps, seed=0, compile=False)
    model.compile(presets.make_optimizer(preset.training, steps),
                  steps_per_execution=min(300, steps))
    dataset = data.training_data(images, batch_size=batch_size, seed=0)
    model.fit(dataset, epochs=1, verbose=0)  # trace / compile
    start = time.perf_counter()
    model.fit(dataset, epochs=FLAGS.epochs, verbose=0)
    seconds_per_step = (time.perf_counter() - start) / (FLAGS.epochs * steps)
    return {"preset": name, "backend": keras.backend.backend(), "batch_size": batch_size,
            "ms_per_step": round(1000 * seconds_per_step, 3),
            "seconds_per_epoch": round(seconds_per_step * (TRAIN_IMAGES // batch_size), 2),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def main(_):
    if FLAGS.worker:
        print("RESULT " + json.dumps(time_epochs(FLAGS.worker)), flush=True)
        return
    rows = []
    for name in FLAGS.presets:
        for backend in FLAGS.backends:
            command = [sys.executable, __file__, f"--worker={name}", f"--threads={FLAGS.threads}",
                       f"--num_images={FLAGS.num_images}", f"--epochs={FLAGS.epochs}",
                       f"--train_data={FLAGS.train_data}"]
            done = subprocess.run(command, capture_output=True, text=True,
                                  env=dict(os.environ, KERAS_BACKEND=backend,
                                           TF_CPP_MIN_LOG_LEVEL="3"))
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if done.returncode or not lines:
                raise SystemExit(f"{name} on {backend} failed:\n{done.stderr[-2000:]}")
            rows.append(json.loads(lines[-1][len("RESULT "):]))
            row = rows[-1]
            print(f"{name:24s} {backend:10s} {row['ms_per_step']:7.3f} ms/step "
                  f"{row['seconds_per_epoch']:6.2f} s/epoch  load {row['load_average'][0]:.2f}",
                  flush=True)
    print(f"\n| preset | " + " | ".join(f"{b} s/epoch" for b in FLAGS.backends)
          + (" | tensorflow / jax |" if set(FLAGS.backends) >= {"tensorflow", "jax"} else " |"))
    print("|---" * (len(FLAGS.backends) + 1 + (set(FLAGS.backends) >= {"tensorflow", "jax"}))
          + "|")
    for name in FLAGS.presets:
        by_backend = {r["backend"]: r for r in rows if r["preset"] == name}
        cells = [f"{by_backend[b]['seconds_per_epoch']:.2f}" for b in FLAGS.backends]
        if set(FLAGS.backends) >= {"tensorflow", "jax"}:
            cells.append(f"{by_backend['tensorflow']['ms_per_step'] / by_backend['jax']['ms_per_step']:.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    report = {"threads": FLAGS.threads, "num_images": FLAGS.num_images, "epochs": FLAGS.epochs,
              "machine": platform.platform(), "cpu_count": os.cpu_count(), "results": rows}
    pathlib.Path(FLAGS.output).write_text(json.dumps(report, indent=2) + "\n")
    print(f"Wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
