"""Seconds per training epoch of the reproduction rows on each Keras backend and input pipeline,
side by side.

    python tools/benchmarks/benchmark_backends.py [--presets=mnist_mlp_vae,mnist_mlp_iwae] \
        [--backends=tensorflow,jax] [--pipelines=default] [--threads=1] [--num_images=6000] \
        [--output=benchmark_backends.json]

Each (preset, backend, pipeline) runs in its own process (a Keras backend is chosen per process),
one after the other, and trains exactly as `tools/reproduce/reproduce_iwae_table.py` does: the preset's
optimizer and batch size, `steps_per_execution` 300, the dynamically binarizing input pipeline
(`--pipelines`: "default" is `data.training_data`, what the reproduction uses, tf.data on TensorFlow
and NumPy on JAX; "tf.data" and "numpy" force one), the same `--threads` limit
(`keras_crvae.jobs.longrun.limit_threads`: TensorFlow's op threads, XLA's CPU threads on JAX). One warm-up
epoch, then `--epochs` timed epochs over `--num_images` MNIST training images; reported as
milliseconds per step and seconds per epoch of the 50,009 training images the reproduction uses,
and as ratios to the first (backend, pipeline) column. `--concurrent` runs the presets of a column
at once, as the reproduction's two background rows share the 2 cores. The load average is printed
with every row: run it on an otherwise quiet machine.
"""

import json
import os
import pathlib
import platform
import subprocess
import sys
import time

from absl import app, flags

ROOT = pathlib.Path(__file__).resolve().parents[2]
TRAIN_IMAGES = 50009  # MNIST training images less the binarized validation split's sources

FLAGS = flags.FLAGS
flags.DEFINE_list("presets", ["mnist_mlp_vae", "mnist_mlp_iwae", "mnist_mlp_vae_2layer",
                              "mnist_mlp_iwae_2layer"], "Presets to time.")
flags.DEFINE_list("backends", ["tensorflow", "jax"], "Keras backends to compare.")
flags.DEFINE_integer("threads", 1, "Op threads per process (`keras_crvae.jobs.longrun.limit_threads`).")
flags.DEFINE_integer("num_images", 6000, "MNIST training images per timed epoch.")
flags.DEFINE_integer("epochs", 3, "Timed epochs (after one warm-up epoch).")
flags.DEFINE_string("train_data", str(ROOT.parent / "shared" / "data" / "mnist.npz") + ":x_train",
                    "Grey-level training images, PATH.npz:KEY.")
flags.DEFINE_string("output", "benchmark_backends.json", "JSON output path.")
flags.DEFINE_string("worker", None, "Internal: time this preset in this process.")
flags.DEFINE_list("pipelines", ["default"],
                  "Input pipelines to compare: 'default' (`data.training_data`, what the "
                  "reproduction uses: tf.data on TensorFlow, NumPy on JAX), 'tf.data' "
                  "(`data.binarized_dataset`), 'numpy' (`data.BinarizedSequence`).")
flags.DEFINE_string("pipeline", "default", "Internal: the worker's input pipeline.")
flags.DEFINE_boolean("concurrent", False,
                     "Run the presets of each (backend, pipeline) at once, one process each, as the "
                     "reproduction's rows share the machine (tools/reproduce/iwae_table_session.sh runs two), "
                     "instead of one after the other on a quiet machine.")
PIPELINES = ("default", "tf.data", "numpy")


def time_epochs(name):
    """One process's measurement of `name` on the current backend; returns a dict."""
    from keras_crvae.jobs import longrun

    longrun.limit_threads(FLAGS.threads)
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
    dataset = {"default": data.training_data, "tf.data": data.binarized_dataset,
               "numpy": data.BinarizedSequence}[FLAGS.pipeline](images, batch_size=batch_size,
                                                                seed=0)
    model.fit(dataset, epochs=1, verbose=0)  # trace / compile
    start = time.perf_counter()
    model.fit(dataset, epochs=FLAGS.epochs, verbose=0)
    seconds_per_step = (time.perf_counter() - start) / (FLAGS.epochs * steps)
    pipeline = "numpy" if isinstance(dataset, data.BinarizedSequence) else "tf.data"
    if FLAGS.pipeline == "default":
        pipeline += " (default)"
    return {"preset": name, "backend": keras.backend.backend(), "pipeline": pipeline,
            "batch_size": batch_size,
            "ms_per_step": round(1000 * seconds_per_step, 3),
            "seconds_per_epoch": round(seconds_per_step * (TRAIN_IMAGES // batch_size), 2),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def main(_):
    if FLAGS.worker:
        print("RESULT " + json.dumps(time_epochs(FLAGS.worker)), flush=True)
        return
    unknown = sorted(set(FLAGS.pipelines) - set(PIPELINES))
    if unknown:
        raise app.UsageError(f"--pipelines={','.join(FLAGS.pipelines)}: unknown {unknown}; "
                             f"expected some of {', '.join(PIPELINES)}.")
    rows, columns = [], [(b, p) for b in FLAGS.backends for p in FLAGS.pipelines]
    for backend, pipeline in columns:
        # One process per preset; with --concurrent all presets of a column run at once.
        groups = [FLAGS.presets] if FLAGS.concurrent else [[name] for name in FLAGS.presets]
        for group in groups:
            processes = [(name, subprocess.Popen(
                [sys.executable, __file__, f"--worker={name}", f"--threads={FLAGS.threads}",
                 f"--num_images={FLAGS.num_images}", f"--epochs={FLAGS.epochs}",
                 f"--train_data={FLAGS.train_data}", f"--pipeline={pipeline}"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env=dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")))
                for name in group]
            for name, process in processes:
                stdout, stderr = process.communicate()
                lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
                if process.returncode or not lines:
                    raise SystemExit(f"{name} on {backend} ({pipeline}) failed:\n{stderr[-2000:]}")
                rows.append(dict(json.loads(lines[-1][len("RESULT "):]),
                                 column=f"{backend} {pipeline}", concurrent=len(group)))
                row = rows[-1]
                print(f"{name:24s} {backend:10s} {row['pipeline']:18s} {row['ms_per_step']:7.3f} "
                      f"ms/step {row['seconds_per_epoch']:6.2f} s/epoch  load "
                      f"{row['load_average'][0]:.2f}  ({len(group)} at once)", flush=True)
    # Ratios against the first column (e.g. tensorflow default / jax default).
    names = [f"{b} {p}" for b, p in columns]
    print("\n| preset | " + " | ".join(f"{c} s/epoch" for c in names)
          + "".join(f" | {c} / {names[0]}" for c in names[1:]) + " |")
    print("|---" * (2 * len(names)) + "|")
    for name in FLAGS.presets:
        by_column = {r["column"]: r for r in rows if r["preset"] == name}
        cells = [f"{by_column[c]['seconds_per_epoch']:.2f}" for c in names]
        cells += [f"{by_column[c]['ms_per_step'] / by_column[names[0]]['ms_per_step']:.2f}"
                  for c in names[1:]]
        print(f"| {name} | " + " | ".join(cells) + " |")
    report = {"threads": FLAGS.threads, "num_images": FLAGS.num_images, "epochs": FLAGS.epochs,
              "pipelines": FLAGS.pipelines, "concurrent": FLAGS.concurrent,
              "machine": platform.platform(), "cpu_count": os.cpu_count(), "results": rows}
    pathlib.Path(FLAGS.output).write_text(json.dumps(report, indent=2) + "\n")
    print(f"Wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
