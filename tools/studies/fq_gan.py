"""FQ-GAN study (issue 30): DCGAN, DCGAN + FQ, StyleGAN2, StyleGAN2 + FQ on the 64x64 faces at an
equal training-time budget, FID against held-out faces at every checkpoint (an FID-vs-hours curve).

The real study (each model about 1.5 machine-hours, in the background):

    python tools/studies/fq_gan.py --budget_hours=1.5 --epochs_per_checkpoint=5 \\
        --output=reproductions/studies/fq_gan/study.json --output_dir=reproductions/studies/fq_gan

Each model is its preset (`--models` NAME=PRESET pairs; default `celeba_dcgan`, `celeba_dcgan_fq`,
`celeba_stylegan2`, `celeba_stylegan2_fq`) trained by the gan job (`keras_crvae.jobs.gan.train_gan`)
on the faces of `--faces` but its last `--num_held_out` in segments of `--epochs_per_checkpoint` epochs of `--steps_per_epoch` steps (each
segment continues the last), until its summed `fit` seconds reach `--budget_hours` (so a model may
overshoot the budget by one segment: the curve's hours say by how much). After every segment:
FID of `--num_samples` prior samples against the held-out faces, with the library's Inception
features (`evaluation.FIDInceptionV3`, `evaluation.feature_statistics`). `--output` is rewritten
after every checkpoint: per model the (hours, epochs, FID) rows. At the end, `late` compares each
addition with its base (X_fq with X, StyleGAN2 with DCGAN): the difference of their median FIDs
over the last `--late_hours` of their curves, with a 95% bootstrap interval over those checkpoints
(`keras_crvae.jobs.scored_gan.median_difference`: a floor on the uncertainty, since one seed per
model (`--seed`) leaves the seed-to-seed spread out; other seeds say more).

Long-run behaviour (`keras_crvae.jobs.longrun`): the hours are each model's machine hours of
training, summed over every stretch of its run folder (`sessions.json`, which the gan job writes;
`history.csv` has `train_hours` per epoch). `--stop_after_minutes=N` (the study's budget) or
SIGTERM stops the model in training at its next epoch end with its full state (`backup/`:
weights and both optimizers); rerunning the same command reads the curves back from `--output`,
resumes that segment and goes on (a model whose hours reached `--budget_hours` is skipped).

Smoke check of the command (minutes): `--budget_hours=0.0001 --epochs_per_checkpoint=1
--steps_per_epoch=2 --num_samples=60 --num_held_out=60 --precision=float32 --set base_channels=4`.
"""

import json
import os
import pathlib
import sys

import numpy as np
from absl import app, flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import checkout_paths  # noqa: E402  (tools/checkout_paths.py)

DATA = str(checkout_paths.SHARED_DATA)
FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["dcgan=celeba_dcgan", "dcgan_fq=celeba_dcgan_fq",
                             "stylegan2=celeba_stylegan2", "stylegan2_fq=celeba_stylegan2_fq"],
                  "NAME=PRESET pairs.")
flags.DEFINE_string("faces", os.path.join(DATA, "celeba64_train.npz"),
                    "Faces (key x, uint8, 64x64x3): the last --num_held_out are held out.")
flags.DEFINE_integer("num_held_out", 1000,
                     "The last N faces are never trained on; the FIDs are measured against them. "
                     "(celeba64_subset.npz is the first 2,500 rows of celeba64_train.npz: not a "
                     "held-out set.)")
flags.DEFINE_float("budget_hours", 1.5, "Training time per model.")
flags.DEFINE_integer("epochs_per_checkpoint", 5, "Epochs between FIDs.")
flags.DEFINE_integer("steps_per_epoch", 200, "Generator steps per epoch.")
flags.DEFINE_integer("num_samples", 2500, "Prior samples per FID.")
flags.DEFINE_enum("precision", "bfloat16", ["float32", "bfloat16"], "Inception precision.")
flags.DEFINE_string("weights", None, "FIDInceptionV3 weights (default: its standard path).")
flags.DEFINE_multi_string("set", [], "KEY=VALUE preset overrides for every model.")
flags.DEFINE_string("output_dir", "reproductions/studies/fq_gan", "Run folders, one per model.")
flags.DEFINE_string("output", "fq_gan.json", "JSON results (rewritten as they come).")
flags.DEFINE_integer("seed", 0, "Training and sampling seed.")
flags.DEFINE_float("late_hours", 0.5, "At the study's end: each model's median FID over the last "
                   "N machine-hours of its curve, compared with its base model's (bootstrap).")
flags.DEFINE_float("stop_after_minutes", 0.0, "Stop at the first epoch end after this many "
                   "minutes of the study (0: no limit); rerun the same command to resume.")

flags.DEFINE_enum("light_state_dtype", "float16", ["float16", "float32"], "Storage dtype of the "
                  "light state a stopped run writes (resume_weights.npz + resume.json, committable; "
                  "a machine without the run's backup/ resumes from it).")

def main(argv):
    del argv
    import keras

    from keras_crvae import evaluation, presets, training
    from keras_crvae.io import write_json
    from keras_crvae.jobs import longrun
    from keras_crvae.jobs.gan import train_gan

    budget = longrun.StudyBudget(FLAGS.stop_after_minutes,
                                 f"--stop_after_minutes={FLAGS.stop_after_minutes:g}")

    models = dict(item.partition("=")[::2] for item in FLAGS.models)
    overrides = presets.parse_overrides(FLAGS.set)
    faces = np.load(FLAGS.faces)["x"]
    if not 0 < FLAGS.num_held_out < len(faces):
        raise app.UsageError(f"--num_held_out={FLAGS.num_held_out}: expected 1 to "
                             f"{len(faces) - 1} ({len(faces)} faces in --faces)")
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    train_faces = os.path.join(FLAGS.output_dir, "train_faces.npz")
    np.savez(train_faces, x=faces[:-FLAGS.num_held_out])
    held_out = faces[-FLAGS.num_held_out:].astype("float32") / 127.5 - 1.0
    extractor = evaluation.FIDInceptionV3(weights=FLAGS.weights or "default", input_range=(-1, 1),
                                          precision=FLAGS.precision)
    reference = evaluation.feature_statistics(held_out, extractor, 50)
    results = {"budget_hours": FLAGS.budget_hours, "num_samples": FLAGS.num_samples,
               "held_out": f"{checkout_paths.in_checkout(FLAGS.faces)} "
                           f"(last {len(held_out)} of {len(faces)}, never trained on)",
               "seed": FLAGS.seed,
               "overrides": FLAGS.set, "backend": keras.backend.backend(), "models": {}}
    if os.path.exists(FLAGS.output):  # a resumed study: its curves so far
        with open(FLAGS.output) as handle:
            results["models"] = json.load(handle).get("models", {})
    for name, preset in models.items():
        output_dir = os.path.join(FLAGS.output_dir, name)
        rows = results["models"].setdefault(name, {"preset": preset, "curve": []})["curve"]
        # Machine hours of training over all the run's stretches; the curve's last checkpoint.
        epochs = rows[-1]["epochs"] if rows else 0
        # A segment that was stopped (or trained without its FID yet) is finished first, even
        # past the budget: every row of the curve is a finished segment with its FID.
        while (_pending_segment(output_dir, epochs)
               or longrun.training_seconds_so_far(output_dir) < FLAGS.budget_hours * 3600):
            if budget.spent():
                budget.stop(FLAGS.output_dir, f"{name} after epoch {epochs}")
                return
            # A finished run asked for more epochs continues (jobs.runs.plan_run); a stopped
            # one resumes from its backup; a trained one without its FID yet is only loaded.
            finished_before = epochs + FLAGS.epochs_per_checkpoint <= _trained_epochs(output_dir)
            metrics = train_gan(preset, npz=train_faces, output_dir=output_dir,
                                epochs=epochs + FLAGS.epochs_per_checkpoint,
                                steps_per_epoch=FLAGS.steps_per_epoch, seed=FLAGS.seed,
                                verbose=0, stop_after_minutes=budget.minutes_left(),
                                light_state_dtype=FLAGS.light_state_dtype, **overrides)
            budget.ran(finished_before)
            if metrics.get("stopped"):  # at an epoch end; the job told a queue
                print(f"{name}: stopped after epoch {metrics['completed_epochs']}; rerun the same "
                      "command to resume.", flush=True)
                return
            epochs += FLAGS.epochs_per_checkpoint
            seconds = longrun.training_seconds_so_far(output_dir)
            model = training.load_model(os.path.join(output_dir, "model.keras"))
            samples = np.concatenate([keras.ops.convert_to_numpy(
                model.sample(min(250, FLAGS.num_samples - start), seed=FLAGS.seed + start))
                for start in range(0, FLAGS.num_samples, 250)]).astype("float32")
            fid = float(evaluation.frechet_distance(
                *evaluation.feature_statistics(samples, extractor, 50), *reference))
            final = metrics.get("final", {})
            rows.append({"hours": round(seconds / 3600, 4), "epochs": epochs, "fid": round(fid, 3),
                         **{key: final[key] for key in ("fq_perplexity", "fq_usage") if key in final}})
            print(f"{name}: {seconds / 3600:.3f} h  FID {fid:.2f}", flush=True)
            write_json(results, FLAGS.output)
    results["late"] = _late_comparisons(results["models"])
    write_json(results, FLAGS.output)
    for row in results["late"]:
        print(f"{row['later']} - {row['earlier']}: median FID over the last {FLAGS.late_hours:g} h "
              f"{row['difference']:+.1f} (95% bootstrap interval {row['low']:+.1f} to "
              f"{row['high']:+.1f}; {row['num_earlier']} and {row['num_later']} checkpoints)")


def _late_comparisons(curves):
    """Each addition against its base at the study's end (X_fq against X; every other base model
    against the first): the difference of their median FIDs over the last `--late_hours` of their
    curves with a bootstrap interval over those checkpoints (`scored_gan.median_difference`)."""
    from keras_crvae.jobs import scored_gan

    names = [name for name in curves if curves[name]["curve"]]
    bases = [name for name in names if not name.endswith("_fq")]
    pairs = [(name, name + "_fq") for name in bases if name + "_fq" in names]
    pairs += [(bases[0], name) for name in bases[1:]]
    late = {name: scored_gan.late_window([r["hours"] for r in curves[name]["curve"]],
                                         [r["fid"] for r in curves[name]["curve"]],
                                         FLAGS.late_hours) for name in names}
    return [{"earlier": earlier, "later": later, "late_hours": FLAGS.late_hours,
             **scored_gan.median_difference(late[earlier], late[later])}
            for earlier, later in pairs]


def _trained_epochs(output_dir):
    """The epochs of the finished run in `output_dir` (0 without one)."""
    from keras_crvae.jobs import runs

    record = runs.read_run(output_dir) or {}
    return int(record.get("completed_epochs", 0)) if record.get("finished") else 0


def _pending_segment(output_dir, curve_epochs):
    """True when `output_dir` holds a segment the curve lacks: a run stopped (or killed) before
    its segment's end, or one trained beyond the curve's last checkpoint."""
    from keras_crvae.jobs import runs

    record = runs.read_run(output_dir)
    if record is None:
        return False
    return not record.get("finished") or _trained_epochs(output_dir) > curve_epochs


if __name__ == "__main__":
    app.run(main)
