"""One long face run (issue 26): a 64x64 VAE-GAN / crVAE-GAN preset trained on faces 0..8499 of
`shared/data/celeba64_train.npz` within a machine-hours budget, resumable, scored on the held-out
faces 8500..9499 every `--score_every` epochs (the held-out split of tools/studies/fq_gan.py, so
every face FID in the docs is against one set). A thin flag layer over
`keras_crvae.jobs.scored_gan.train_scored_gan`; see its module docstring for the run folder
(`scores.json`, `sessions.json`, `grids/`, `held_out_statistics.npz`, the GAN job's `backup/`).

    python tools/reproduce/face_run.py --preset=celeba_crvae_gan --budget_hours=7 \\
        --output_dir=reproductions/faces/celeba_crvae_gan --stop_after_minutes=180 --threads=1 \\
        --set=precision=bfloat16
    bash tools/reproduce/faces_session.sh 180      # both presets in the background, one thread each

Rerun the same command to resume (a stretch stops at an epoch end after `--stop_after_minutes`
or on SIGTERM); a spent budget trains nothing; a larger `--budget_hours` continues the run. A
stopped stretch also writes the light state (`resume_weights.npz` in `--light_state_dtype`,
`resume.json`): committed with the run folder's small files, it resumes the run on a machine
without its `backup/` (fresh optimizer moments, the schedules continued).
Exit status 0 whether the run finished, spent its budget or stopped (it prints which).

Not a `crvae train` flag: scoring needs the held-out split, the Inception weights and their
precision, which no other preset of the shared `train` command uses.
"""

import json
import os
import pathlib
import sys

from absl import app, flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import checkout_paths  # noqa: E402  (tools/checkout_paths.py)

FACES = checkout_paths.SHARED_DATA / "celeba64_train.npz"
FLAGS = flags.FLAGS


def define_flags():
    """The flags of a scored face run (shared with tools/studies/face_budget.py)."""
    flags.DEFINE_string("faces", str(FACES), "Faces (key x, uint8 64x64x3); the last "
                        "--num_held_out are held out.")
    flags.DEFINE_integer("num_held_out", 1000, "The last N faces: never trained on, scored on.")
    flags.DEFINE_integer("num_faces", 0, "Use only the first N faces of --faces (0: all; a smoke "
                         "check). The held-out ones are then the last --num_held_out of these.")
    flags.DEFINE_integer("score_every", 5, "Epochs between scores.")
    flags.DEFINE_integer("num_samples", 1000, "Prior samples per sample FID.")
    flags.DEFINE_integer("threads", 0, "TensorFlow threads (0: one per core); machine-hours are "
                         "wall x threads.")
    flags.DEFINE_float("stop_after_minutes", None, "This call's wall-clock budget (resumable).")
    flags.DEFINE_string("fid_weights", "default", "FIDInceptionV3 weights (default: its "
                        "standard path, docs/fid.md).")
    flags.DEFINE_enum("fid_precision", "bfloat16", ["float32", "bfloat16"], "Inception precision.")
    flags.DEFINE_integer("steps_per_epoch", None, "Default: one pass over the training faces.")
    flags.DEFINE_integer("seed", 0, "Training and sampling seed.")
    flags.DEFINE_boolean("recalibrate_batch_norm", False, "Re-estimate the BatchNorm statistics "
                         "on 50 training batches before each score (scored_gan module docstring; "
                         "off: it made two face checkpoints' scores worse, docs/faces.md).")
    flags.DEFINE_multi_string("set", [], "KEY=VALUE preset overrides (precision=bfloat16, "
                              "base_channels=16, ...).")


def data_spec(faces_path, num_faces, num_held_out):
    """What a face run's run.json says of its data (`train_scored_gan`'s `data_spec`): the faces
    file relative to the checkout (so committed records carry no machine's folders), how many
    faces were used and how many of the last were held out."""
    return (f"{checkout_paths.in_checkout(faces_path)} (first {num_faces} faces, last "
            f"{num_held_out} held out)")


def load_faces():
    """`--faces` (its first `--num_faces`), checked against `--num_held_out`."""
    import numpy as np

    faces = np.load(FLAGS.faces)["x"]
    if FLAGS.num_faces:
        faces = faces[:FLAGS.num_faces]
    if not 2 <= FLAGS.num_held_out < len(faces):
        raise app.UsageError(f"--num_held_out={FLAGS.num_held_out}: expected 2 to "
                             f"{len(faces) - 1} ({len(faces)} faces)")
    return faces


def scored_run(preset, output_dir, faces, budget_hours, overrides, **kwargs):
    """`train_scored_gan` with the flags' settings; returns its result."""
    from keras_crvae.jobs.scored_gan import train_scored_gan

    return train_scored_gan(
        preset, faces, num_held_out=FLAGS.num_held_out, output_dir=output_dir,
        score_every=FLAGS.score_every, num_samples=FLAGS.num_samples, budget_hours=budget_hours,
        stop_after_minutes=FLAGS.stop_after_minutes, threads=FLAGS.threads,
        fid_weights=FLAGS.fid_weights, fid_precision=FLAGS.fid_precision, seed=FLAGS.seed,
        steps_per_epoch=FLAGS.steps_per_epoch, recalibrate_batch_norm=FLAGS.recalibrate_batch_norm,
        data_spec=data_spec(FLAGS.faces, len(faces), FLAGS.num_held_out), **overrides, **kwargs)


def main(argv):
    del argv
    from keras_crvae.jobs import longrun

    longrun.limit_threads(FLAGS.threads)  # before anything computes
    from keras_crvae import presets

    faces = load_faces()
    output_dir = FLAGS.output_dir or os.path.join("reproductions", "faces", FLAGS.preset)
    result = scored_run(FLAGS.preset, output_dir, faces, FLAGS.budget_hours,
                        presets.parse_overrides(FLAGS.set), epochs=FLAGS.epochs,
                        batch_size=FLAGS.batch_size, light_state_dtype=FLAGS.light_state_dtype)
    last = result["scores"][-1] if result["scores"] else {}
    print(json.dumps({"preset": FLAGS.preset, "output_dir": output_dir, "status": result["status"],
                      "epochs_done": result["epochs_done"],
                      "machine_hours": round(result["machine_hours"], 4), "last_score": last},
                     indent=1))


if __name__ == "__main__":
    define_flags()
    flags.DEFINE_enum("preset", "celeba_crvae_gan", ["celeba_crvae_gan", "celeba_vae_gan"],
                      "The face preset.")
    flags.DEFINE_string("output_dir", None, "The run folder (default "
                        "reproductions/faces/PRESET: its light state and scores are committed, "
                        "its backup/ and large files are git-ignored).")
    flags.DEFINE_enum("light_state_dtype", "float16", ["float16", "float32"], "Storage dtype of "
                      "the light state's weights (the weights only, for a replaced machine).")
    flags.DEFINE_float("budget_hours", 7.0, "Machine-hours of training in all (wall x threads).")
    flags.DEFINE_integer("epochs", None, "Total epochs (default: the preset's 150).")
    flags.DEFINE_integer("batch_size", None, "Default: the preset's 128.")
    app.run(main)
