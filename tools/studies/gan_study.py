"""Trains one MNIST GAN preset for a fixed CPU budget with the GAN job, then scores it (docs/gans.md).

    nohup nice -n 19 python tools/studies/gan_study.py --preset=mnist_dcgan --cpu_seconds=720 \
        [--data=../shared/data/mnist.npz] [--output_dir=runs/gan_study] [--images_dir=docs/images] &

1. `keras_crvae.gan_training.train_gan` (what `crvae train --preset=...` runs) on the 60,000 MNIST
   training digits, in epochs of `--steps_per_epoch` generator steps, with one TensorFlow thread
   (`--threads`); a callback stops the job after the first generator step that ends when the
   process has used `--cpu_seconds` of CPU time (`time.process_time`: every thread of the process,
   graph tracing and the input pipeline included); the job then saves the model as usual. A killed run resumes from its checkpoint, but its CPU count restarts;
   the result records the CPU seconds of the finishing process only.
2. Draws `--num_samples` images from the prior and computes the MNIST-classifier FID
   (`keras_crvae.evaluation.mnist_fid`) against the 10,000 test digits; the FID of 10,000 real
   training digits against the same test digits is the floor.
3. InfoGAN: the categorical code's accuracy as a digit classifier on the 10,000 test digits (Q's most
   likely category), after matching the 10 categories one-to-one to the 10 labels (Hungarian
   matching, scipy) and many-to-one (each category to its most frequent label).
4. PNG grids into `--images_dir`: 10x10 samples; InfoGAN: traversals of c1 (columns: the 10
   categories), c2 and c3 (columns: -2 .. 2), each row one noise vector.

Writes `OUTPUT_DIR/PRESET/study.json` (and the job's own files beside it) and prints it.
"""

import json
import os
import platform
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("preset", "mnist_dcgan", "An MNIST GAN preset.")
flags.DEFINE_string("data", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                                         "mnist.npz"),
                    "MNIST npz with x_train, x_test (and y_test for InfoGAN).")
flags.DEFINE_float("cpu_seconds", 180.0, "CPU budget of the training (process CPU time).")
flags.DEFINE_integer("steps_per_epoch", 50, "Generator steps per epoch (grids and checkpoints).")
flags.DEFINE_integer("max_epochs", 10000, "Upper bound of epochs (the budget stops earlier).")
flags.DEFINE_integer("num_samples", 10000, "Generated images for the FID.")
flags.DEFINE_integer("threads", 1, "TensorFlow intra- and inter-op threads.")
flags.DEFINE_integer("seed", 0, "Seed of the run and of the scored samples.")
flags.DEFINE_string("output_dir", "runs/gan_study", "Runs go to OUTPUT_DIR/PRESET.")
flags.DEFINE_string("images_dir", None, "Where to write the PNG grids (default: the run folder).")
flags.DEFINE_multi_string("set", [], "Preset overrides KEY=VALUE (e.g. base_channels=8 for a "
                          "smoke test).")


def _cpu_budget_callback(seconds):
    import keras

    class CpuBudget(keras.callbacks.Callback):
        """Stops training after the first generator step that ends past `seconds` of CPU time."""

        def __init__(self):
            super().__init__()
            self.start = time.process_time()
            self.used = 0.0
            self.steps = 0

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            self.used = time.process_time() - self.start
            if self.used >= seconds:
                self.model.stop_training = True

    return CpuBudget()


def matched_accuracies(predicted, labels, classes=10):
    """`(one_to_one, many_to_one)` accuracies of cluster ids as labels."""
    import numpy as np

    counts = np.zeros((classes, classes), "int64")
    np.add.at(counts, (predicted, labels), 1)
    many_to_one = counts.max(axis=1).sum() / len(labels)
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:
        return None, float(many_to_one)
    rows, columns = linear_sum_assignment(-counts)
    return float(counts[rows, columns].sum() / len(labels)), float(many_to_one)


def main(_):
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    import keras

    from keras_crvae import presets
    from keras_crvae.evaluation.mnist_features import mnist_feature_extractor, mnist_fid
    from keras_crvae.gan_training import train_gan
    from keras_crvae.io import save_image_grid
    from keras_crvae.training import load_model

    overrides = presets.parse_overrides(FLAGS.set, preset=FLAGS.preset)
    if not presets.is_digit_gan(presets.get_preset(FLAGS.preset, **overrides)):
        raise app.UsageError(f"--preset={FLAGS.preset}: expected an MNIST GAN preset")
    with np.load(FLAGS.data) as archive:
        x_train, x_test = archive["x_train"], archive["x_test"]
        y_test = archive["y_test"] if "y_test" in archive else None
    output_dir = os.path.join(FLAGS.output_dir, FLAGS.preset)
    images_dir = FLAGS.images_dir or output_dir
    os.makedirs(images_dir, exist_ok=True)

    budget = _cpu_budget_callback(FLAGS.cpu_seconds)
    wall = time.time()
    metrics = train_gan(FLAGS.preset, arrays=x_train, output_dir=output_dir,
                        epochs=FLAGS.max_epochs, steps_per_epoch=FLAGS.steps_per_epoch,
                        seed=FLAGS.seed, verbose=0, callbacks=[budget],
                        data_spec=f"data={FLAGS.data}", **overrides)
    wall = time.time() - wall
    model = load_model(os.path.join(output_dir, "model.keras"))

    start = time.process_time()
    latents = model.prior_latents(FLAGS.num_samples, seed=FLAGS.seed + 1)
    samples = np.concatenate([keras.ops.convert_to_numpy(model.decode(latents[i:i + 500]))
                              for i in range(0, len(latents), 500)])
    samples = np.clip((samples + 1.0) / 2.0, 0.0, 1.0)
    extractor = mnist_feature_extractor()
    result = {
        "preset": FLAGS.preset, "overrides": overrides, "seed": FLAGS.seed,
        "cpu_seconds_budget": FLAGS.cpu_seconds,
        "train_cpu_seconds": round(budget.used, 1), "train_wall_seconds": round(wall, 1),
        "epochs": metrics.get("epochs_this_run"), "steps_per_epoch": FLAGS.steps_per_epoch,
        "generator_steps": budget.steps,
        "batch_size": metrics["config"]["training"]["batch_size"],
        "final_metrics": metrics.get("final"),
        "fid": mnist_fid(samples, x_test, feature_extractor=extractor),
        "fid_real_train_vs_test": mnist_fid(x_train[:len(x_test)], x_test,
                                            feature_extractor=extractor),
        "num_samples": FLAGS.num_samples, "num_reference": int(len(x_test)),
        "threads": FLAGS.threads, "machine": platform.processor() or platform.machine(),
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
    }
    prefix = os.path.join(images_dir, f"gan_{FLAGS.preset}")
    save_image_grid(samples[:100], f"{prefix}_samples.png", columns=10)
    if hasattr(model, "predict_categories"):
        predicted = model.predict_categories(x_test.astype("float32")[..., None] / 127.5 - 1.0)
        one_to_one, many_to_one = matched_accuracies(predicted, y_test)
        result["categorical_code_accuracy"] = {"one_to_one": one_to_one,
                                               "many_to_one": many_to_one,
                                               "num_images": int(len(y_test))}
        for code, values in (("categorical", range(10)), (0, np.linspace(-2, 2, 9)),
                             (1, np.linspace(-2, 2, 9))):
            grid = keras.ops.convert_to_numpy(model.decode(model.traversal_latents(
                code, values, rows=10, seed=FLAGS.seed)))
            name = "c1" if code == "categorical" else f"c{code + 2}"
            save_image_grid((grid + 1.0) / 2.0, f"{prefix}_traversal_{name}.png",
                            columns=len(values))
    result["scoring_cpu_seconds"] = round(time.process_time() - start, 1)
    with open(os.path.join(output_dir, "study.json"), "w") as handle:
        json.dump(result, handle, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    app.run(main)
