"""The VLAE's "lossy code" study (Chen et al. 2017, section 3): KL and active units against the
PixelCNN decoder's receptive field.

    python tools/studies/vlae_receptive_field.py --num_layers=1,2,3,5,8 --epochs=50 \\
        --data=../shared/data/mnist.npz --output=docs/vlae_receptive_field.json

For each `num_layers` L the `mnist_vlae` preset (or `--preset`) is trained by the vae job
(`keras_crvae.jobs.vae.train`: dynamic binarization, the static binarized test images, seed 0) with
`--set num_layers=L` into `--output_dir/L{L}/`; a finished run is not trained again. The receptive
field of the Gated PixelCNN is `R = first_kernel_size // 2 + (L - 1) * (kernel_size // 2)` pixels
left and right and R + 1 rows up (`networks.build_gated_pixelcnn`). Each row: R, the ELBO, its KL
and reconstruction terms, the importance-sampled NLL (`--nll_samples`, `--nll_images`), the active
units (`evaluation.active_units`, Burda et al.'s 0.01 threshold) and the training time; written as
JSON after every row and printed as a table with the load average. The claim to check: the KL and
the active units fall as R grows (a decoder that sees more needs less of z).

The real study (50 epochs x 5 receptive fields on 60,000 images) is hours of CPU; `--epochs=1
--num_train=512 --nll_images=50 --nll_samples=10` checks the command in a minute or two.

Long-run behaviour (`keras_crvae.jobs.longrun`): `--stop_after_minutes=N` (the study's budget) or
SIGTERM stops the depth in training at its next epoch end with its full state (`backup/`); the
same command resumes it and skips the finished depths. Each row's `train_hours` is the sum of its
run's stretches (`sessions.json`; `history.csv` has `train_hours` per epoch).

The VLAE against the 1-layer VAE at an equal budget: the same vae job, so each of

    crvae train --preset=mnist_vlae --data=../shared/data/mnist.npz --stop_after_minutes=180
    crvae train --preset=mnist_mlp_vae --data=../shared/data/mnist.npz --stop_after_minutes=180

resumes where it stopped; compare them at equal `train_hours` in their history.csv.
"""

import json
import os

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("preset", "mnist_vlae", "A VLAE preset (builder 'vlae').")
flags.DEFINE_list("num_layers", ["1", "2", "3", "5", "8"], "Gated PixelCNN depths to compare.")
flags.DEFINE_integer("epochs", None, "Training epochs (default: the preset's).")
flags.DEFINE_string("data", None, "MNIST .npz with x_train and x_valid (or x_test) (default: "
                    "the embedded 10,000-image subset).")
flags.DEFINE_integer("num_train", None, "Use only the first N training images.")
flags.DEFINE_integer("nll_images", 1000, "Test images scored by the importance-sampled NLL.")
flags.DEFINE_integer("nll_samples", 100, "Importance samples per image.")
flags.DEFINE_string("output_dir", "reproductions/studies/vlae_receptive_field",
                    "Run folders, one per depth.")
flags.DEFINE_string("output", "vlae_receptive_field.json", "JSON output path.")
flags.DEFINE_float("stop_after_minutes", 0.0, "Stop at the first epoch end after this many "
                   "minutes of the study (0: no limit); rerun the same command to resume.")

flags.DEFINE_enum("light_state_dtype", "float16", ["float16", "float32"], "Storage dtype of the "
                  "light state a stopped run writes (resume_weights.npz + resume.json, committable; "
                  "a machine without the run's backup/ resumes from it).")

def receptive_field(network, num_layers):
    return network["first_kernel_size"] // 2 + (num_layers - 1) * (network["kernel_size"] // 2)


def main(argv):
    del argv
    from keras_crvae import data, presets
    from keras_crvae.jobs import longrun
    from keras_crvae.jobs.vae import train

    budget = longrun.StudyBudget(FLAGS.stop_after_minutes,
                                 f"--stop_after_minutes={FLAGS.stop_after_minutes:g}")

    if presets.get_preset(FLAGS.preset).network["builder"] != "vlae":
        raise app.UsageError(f"--preset={FLAGS.preset}: expected a VLAE preset (builder 'vlae').")
    if FLAGS.data:
        arrays = np.load(FLAGS.data)
        # A validation split (x_valid) when the file has one: the test split stays held out.
        train_images = arrays["x_train"]
        test_images = arrays["x_valid"] if "x_valid" in arrays.files else arrays["x_test"]
    else:
        embedded = data.load_embedded_mnist()
        train_images, test_images = embedded["x_train"], embedded["x_test"]
    if FLAGS.num_train:
        train_images = train_images[:FLAGS.num_train]
    rows = []
    for layers in (int(value) for value in FLAGS.num_layers):
        output_dir = os.path.join(FLAGS.output_dir, f"L{layers}")
        if budget.spent():  # between two depths
            budget.stop(FLAGS.output_dir, f"num_layers={layers}")
            break
        finished_before = os.path.exists(os.path.join(output_dir, "metrics.json"))
        metrics = train(FLAGS.preset, train_images=train_images, eval_images=test_images,
                        output_dir=output_dir, epochs=FLAGS.epochs, nll_samples=FLAGS.nll_samples,
                        nll_images=FLAGS.nll_images, seed=0, verbose=0,
                        stop_after_minutes=budget.minutes_left(),
                        light_state_dtype=FLAGS.light_state_dtype, num_layers=layers)
        budget.ran(finished_before)
        if metrics.get("stopped"):  # the job stopped at an epoch end and said so
            print(f"num_layers={layers}: stopped after epoch {metrics['completed_epochs']}; rerun "
                  "the same command to resume it.", flush=True)
            break
        network = presets.get_preset(FLAGS.preset, num_layers=layers).network
        units = metrics["active_units"]
        rows.append({"num_layers": layers, "receptive_field": receptive_field(network, layers),
                     "elbo": metrics["elbo"]["mean"], "kl": metrics["kl"]["mean"],
                     "reconstruction": metrics["reconstruction"]["mean"],
                     "nll": metrics["nll"]["mean"], "nll_standard_error":
                         metrics["nll"]["standard_error"],
                     "active_units": units["active_units"], "num_latents": units["num_latents"],
                     "train_hours": round(longrun.training_seconds_so_far(output_dir) / 3600.0,
                                          4)})
        result = {"preset": FLAGS.preset, "epochs": FLAGS.epochs, "load_average":
                  [round(x, 2) for x in os.getloadavg()], "rows": rows}
        os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
        with open(FLAGS.output, "w") as handle:
            json.dump(result, handle, indent=2)
    print(f"load average {os.getloadavg()}")
    print(f"{'layers':>6} {'R':>3} {'ELBO':>9} {'KL':>8} {'recon':>9} {'NLL':>9} {'active':>7}")
    for row in rows:
        print(f"{row['num_layers']:>6} {row['receptive_field']:>3} {row['elbo']:>9.2f} "
              f"{row['kl']:>8.2f} {row['reconstruction']:>9.2f} {row['nll']:>9.2f} "
              f"{row['active_units']:>3}/{row['num_latents']}")


if __name__ == "__main__":
    app.run(main)
