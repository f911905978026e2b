"""Masked-region error of image completion on held-out faces (docs/completion.md); prints a table, writes
JSON, a Markdown table and one figure per model and mask.

    python tools/studies/completion_table.py \
        --models=vae_gan=runs/celeba_vae_gan/model.keras,crvae_gan=runs/celeba_crvae_gan/model.keras \
        [--data=../shared/data/celeba64_subset.npz] [--train=0:2250] [--heldout=2250:2500] \
        [--masks=centre,bottom,random_blocks] [--steps=200] [--learning_rate=0.03] \
        [--output=docs/completion.json] [--figures=docs/images]

The project's convention for `celeba64_subset.npz`: faces 0..2249 train the models, faces
2250..2499 are held out (never trained on). For each model and mask, on the held-out faces in [-1, 1]:

- `optimised`: `keras_crvae.completion.complete` (Adam on z from the encoder of the masked face,
  masked MSE - gamma log N(z; 0, I) + tau log(1 - D(x^)); gamma = 1e-5, tau = 0.003 by default);
- `encoder_only`: the decode of the encoder's posterior mean of the masked face (the starting point
  of the optimisation, no optimisation);
- `training_mean`: the per-pixel mean of the training faces.

Every number is the mean squared error over the missing pixels only (images in [-1, 1]), averaged over
faces, with its standard error; `wins` is the fraction of faces where the optimised completion has a
lower error than the baseline. Random-block masks are drawn with `--seed`. The figure shows 8 faces:
original, masked input, encoder-only, optimised completion (blend), training mean (blend).

The JSON is written after every row (model and mask); the same command run again skips the rows
already in `--output` with the same settings, so a stopped run resumes. Under the long-run queue
(tools/reproduce/run_queue.py) it starts no row after the queue's deadline and reports the stop.
"""

import json
import os
import platform
import time

from absl import app, flags

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_list("models", None, "NAME=PATH.keras pairs (a Stage1 VAE-GAN / crVAE-GAN or any "
                      "model of the library).")
    flags.DEFINE_string("data", "../shared/data/celeba64_subset.npz", "Faces npz (key 'x', uint8).")
    flags.DEFINE_string("train", "0:2250", "Training faces (the per-pixel mean), START:STOP.")
    flags.DEFINE_string("heldout", "2250:2500", "Held-out faces completed, START:STOP.")
    flags.DEFINE_list("masks", ["centre", "bottom", "random_blocks"], "Mask kinds.")
    flags.DEFINE_integer("steps", 200, "Adam steps on z.")
    flags.DEFINE_float("learning_rate", 0.03, "Adam's learning rate on z.")
    flags.DEFINE_float("prior_weight", 1e-5, "gamma.")
    flags.DEFINE_float("adversarial_weight", 0.003, "tau.")
    flags.DEFINE_integer("batch_size", 250, "Faces optimised together.")
    flags.DEFINE_integer("seed", 0, "Seed of the random-block masks.")
    flags.DEFINE_string("output", "docs/completion.json", "JSON path (a .md table is written beside).")
    flags.DEFINE_string("figures", "docs/images", "Folder of the figures ('' for none).")


def _range(text):
    start, stop = (int(v) for v in text.split(":"))
    return slice(start, stop)


# The settings a row's numbers depend on besides its model and mask: rows of an earlier run with
# the same ones are kept (a rerun resumes); other settings start the table afresh.
SETTINGS = ("data", "train", "heldout", "num_heldout", "steps", "learning_rate", "prior_weight",
            "adversarial_weight", "seed")


def earlier_rows(path, results):
    """The rows of the JSON `path` written by an earlier run with the same `SETTINGS` as `results`
    (the same command resumes after a stop: only the rows not done yet run), else []."""
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        earlier = json.load(handle)
    if any(earlier.get(key) != results[key] for key in SETTINGS):
        print(f"{path}: other settings; its rows are replaced", flush=True)
        return []
    return earlier.get("rows", [])


def _mean_and_error(values):
    import numpy as np

    values = np.asarray(values, np.float64)
    return {"mean": float(values.mean()),
            "standard_error": float(values.std(ddof=1) / np.sqrt(len(values)))}


def main(_):
    import keras
    import numpy as np

    import keras_crvae  # noqa: F401 - registers the model classes
    from keras_crvae import completion
    from keras_crvae.io import save_image_grid, write_json
    from keras_crvae.jobs import longrun

    faces = np.load(FLAGS.data)["x"]
    to_range = lambda x: x.astype(np.float32) / 127.5 - 1.0  # noqa: E731
    training_mean = to_range(faces[_range(FLAGS.train)]).mean(axis=0)
    heldout = to_range(faces[_range(FLAGS.heldout)])
    results = {"data": FLAGS.data, "train": FLAGS.train, "heldout": FLAGS.heldout,
               "num_heldout": int(len(heldout)), "steps": FLAGS.steps,
               "learning_rate": FLAGS.learning_rate, "prior_weight": FLAGS.prior_weight,
               "adversarial_weight": FLAGS.adversarial_weight, "seed": FLAGS.seed,
               "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
               "backend": keras.backend.backend(), "rows": []}
    results["rows"] = earlier_rows(FLAGS.output, results)
    for spec in FLAGS.models:
        name, path = spec.split("=", 1)
        model = None  # loaded for its first row not done yet
        for kind in FLAGS.masks:
            if any((row["model"], row["path"], row["mask"]) == (name, path, kind)
                   for row in results["rows"]):
                print(f"{name} {kind}: done already ({FLAGS.output}), skipped", flush=True)
                continue
            deadline = longrun.queue_deadline()
            if deadline is not None and time.time() >= deadline:
                longrun.report_stop(FLAGS.output, "the queue's deadline")
                print(f"stopped before {name} {kind} (the queue's deadline); the same command "
                      "resumes", flush=True)
                return
            model = model or keras.saving.load_model(path, compile=False)
            masks = completion.make_mask(kind, heldout.shape[1:], batch_size=len(heldout),
                                         seed=FLAGS.seed)
            start, load_before = time.time(), os.getloadavg()
            optimised, encoder_only, curves, finals = [], [], [], []
            for first in range(0, len(heldout), FLAGS.batch_size):
                part = slice(first, first + FLAGS.batch_size)
                result = completion.complete(
                    model, heldout[part], masks[part], steps=FLAGS.steps,
                    learning_rate=FLAGS.learning_rate, prior_weight=FLAGS.prior_weight,
                    adversarial_weight=FLAGS.adversarial_weight, seed=FLAGS.seed)
                optimised.append(result.completed)
                encoder_only.append(result.initial_decoded)
                curves.append(result.loss_curve)
                finals.append(result.final_loss)
            seconds = time.time() - start
            optimised = np.concatenate(optimised)
            encoder_only = np.concatenate(encoder_only)
            errors = {
                "optimised": completion.masked_mse(optimised, heldout, masks),
                "encoder_only": completion.masked_mse(encoder_only, heldout, masks),
                "training_mean": completion.masked_mse(
                    np.broadcast_to(training_mean, heldout.shape), heldout, masks),
            }
            row = {"model": name, "path": path, "model_class": type(model).__name__,
                   "mask": kind, "masked_mse": {k: _mean_and_error(v) for k, v in errors.items()},
                   "wins_over_encoder_only": float(np.mean(errors["optimised"]
                                                           < errors["encoder_only"])),
                   "wins_over_training_mean": float(np.mean(errors["optimised"]
                                                            < errors["training_mean"])),
                   "objective_first": float(np.mean([c[0] for c in curves])),
                   "objective_final": float(np.mean(finals)),
                   "seconds": round(seconds, 1),
                   "images_per_second": round(len(heldout) / seconds, 2),
                   "load_average_before": [round(v, 2) for v in load_before],
                   "load_average_after": [round(v, 2) for v in os.getloadavg()]}
            results["rows"].append(row)
            mse = row["masked_mse"]
            print(f"{name:12s} {kind:14s} optimised {mse['optimised']['mean']:.4f} "
                  f"encoder-only {mse['encoder_only']['mean']:.4f} "
                  f"training-mean {mse['training_mean']['mean']:.4f}  wins "
                  f"{row['wins_over_encoder_only']:.2f}/{row['wins_over_training_mean']:.2f}  "
                  f"objective {row['objective_first']:.4f} -> {row['objective_final']:.4f}  "
                  f"{row['seconds']} s, load {row['load_average_after'][0]}", flush=True)
            if FLAGS.figures:
                shown = slice(0, 8)
                full = np.broadcast_to(masks, heldout.shape)[shown]
                masked = heldout[shown] * full
                mean_blend = heldout[shown] * full + training_mean * (1 - full)
                encoder_blend = heldout[shown] * full + encoder_only[shown] * (1 - full)
                columns = np.stack([heldout[shown], masked, encoder_blend, optimised[shown],
                                    mean_blend], axis=1)
                figure = os.path.join(FLAGS.figures, f"completion_{name}_{kind}.png")
                os.makedirs(FLAGS.figures, exist_ok=True)
                save_image_grid(columns.reshape((-1,) + heldout.shape[1:]) * 0.5 + 0.5, figure,
                                columns=5, scale=1)
                row["figure"] = figure
            write_json(results, FLAGS.output)  # after every row: a killed run keeps what it did

    lines = ["| model | mask | optimised | encoder only | training mean | wins vs encoder / mean "
             "| s (load) |", "|---|---|---|---|---|---|---|"]
    for row in results["rows"]:
        mse = row["masked_mse"]
        cell = lambda key: f"{mse[key]['mean']:.4f} ± {mse[key]['standard_error']:.4f}"  # noqa
        lines.append(f"| {row['model']} | {row['mask']} | {cell('optimised')} | "
                     f"{cell('encoder_only')} | {cell('training_mean')} | "
                     f"{row['wins_over_encoder_only']:.0%} / {row['wins_over_training_mean']:.0%} "
                     f"| {row['seconds']} ({row['load_average_after'][0]}) |")
    with open(os.path.splitext(FLAGS.output)[0] + ".md", "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    define_flags()
    flags.mark_flag_as_required("models")
    app.run(main)
