"""The CPU-scale disentanglement study of docs/disentanglement.md: train and score each preset.

Each preset trains for the same number of optimizer steps (`--steps`, batch 64 for the VAE; the
FactorVAE step also encodes a second half-batch of 64 for its discriminator, as in the paper), on
fresh procedural sprites (`keras_crvae.sprites_training.train_sprites`), then is scored (reconstruction, KL, beta-VAE
metric, FactorVAE metric, MIG). Results are written as they come: `OUTPUT_DIR/PRESET/metrics.json`
per model and `OUTPUT_DIR/study.json` with all of them; a preset whose metrics.json exists is
skipped, so a killed study resumes where it stopped. Run it in the background, niced, on one thread:

    nohup nice -n 19 python tools/studies/disentanglement_study.py --threads=1 --steps=3000 \
        > runs/disentanglement_study.log 2>&1 &

A step budget, not a wall-time one, keeps the comparison fair on a shared machine whose load
changes while the models train one after another; the wall time of each is recorded too.
`--presets` splits the study over processes (each writes its presets' metrics.json; a final run
with all presets, finding them done, writes the table and study.json).

The study's deviations from the presets (all models alike; see the doc): narrower networks, a
narrower discriminator, learning rate 5e-4 and the capacity schedule squeezed into the budget.
"""

import json
import os
import subprocess
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("presets", ["sprites_vae", "sprites_beta_vae", "sprites_capacity_vae",
                              "sprites_factor_vae"], "Presets to train and score, in order.")
flags.DEFINE_integer("steps", 3000, "Optimizer steps per model.")
flags.DEFINE_integer("steps_per_epoch", 500, "Steps between progress lines and traversal grids.")
flags.DEFINE_float("budget_seconds", 0.0, "If > 0, also stop a model after this training time.")
flags.DEFINE_integer("threads", 1, "TensorFlow intra- and inter-op threads.")
flags.DEFINE_string("output_dir", "runs/disentanglement", "Where the runs and study.json go.")
flags.DEFINE_list("channels", ["16", "16", "32", "32"], "Encoder/decoder conv channels.")
flags.DEFINE_list("dense_units", ["64"], "Hidden fully connected units.")
flags.DEFINE_integer("discriminator_units", 256, "FactorVAE discriminator width.")
flags.DEFINE_float("learning_rate", 5e-4, "Adam learning rate of every model (and of FactorVAE's "
                   "discriminator).")
flags.DEFINE_integer("capacity_steps", 2000, "Steps over which the capacity VAE's C reaches C_max.")
flags.DEFINE_integer("num_train", 400, "Training points / votes of the two vote metrics.")
flags.DEFINE_integer("num_eval", 200, "Test points / votes of the two vote metrics.")
flags.DEFINE_integer("pairs", 64, "L: pairs per beta-VAE-metric point, samples per FactorVAE "
                     "vote.")
flags.DEFINE_integer("num_mig_samples", 5000, "Samples for MIG.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_string("summary", None, "If set, also write the study without training histories "
                    "(scores, KL per latent, settings, load averages) to this JSON file.")
flags.DEFINE_string("images_dir", None, "If set, copy each model's traversals.png there as "
                    "disentanglement_PRESET_traversals.png, and write disentanglement_sprites.png "
                    "(32 procedural sprites).")


def _overrides(preset):
    overrides = {"channels": [int(c) for c in FLAGS.channels],
                 "dense_units": [int(u) for u in FLAGS.dense_units],
                 "learning_rate": FLAGS.learning_rate}
    if "factor" in preset:
        overrides.update(discriminator_units=FLAGS.discriminator_units,
                         discriminator_learning_rate=FLAGS.learning_rate)
    if "capacity" in preset:
        overrides["capacity_steps"] = FLAGS.capacity_steps
    return overrides


def _machine():
    try:
        load = open("/proc/loadavg").read().split()[:3]
    except OSError:
        load = []
    from keras_crvae import precision

    return {"cpu": precision.cpu_model_name(), "cores": os.cpu_count(), "load_average": load,
            "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}


def main(argv):
    del argv
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(FLAGS.threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = str(FLAGS.threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_crvae.sprites_training import train_sprites

    os.makedirs(FLAGS.output_dir, exist_ok=True)
    study_path = os.path.join(FLAGS.output_dir, "study.json")
    study = {"command": " ".join(sys.argv), "steps": FLAGS.steps, "threads": FLAGS.threads,
             "results": {}}
    if os.path.exists(study_path):
        with open(study_path) as handle:
            study["results"] = json.load(handle).get("results", {})
    for preset in FLAGS.presets:
        run_dir = os.path.join(FLAGS.output_dir, preset)
        metrics_path = os.path.join(run_dir, "metrics.json")
        if os.path.exists(metrics_path):
            print(f"{preset}: done already ({metrics_path})", flush=True)
            with open(metrics_path) as handle:
                study["results"][preset] = json.load(handle)
            continue
        before = _machine()
        started = time.time()
        metrics = train_sprites(
            preset, output_dir=run_dir, epochs=max(1, FLAGS.steps // FLAGS.steps_per_epoch),
            steps_per_epoch=min(FLAGS.steps, FLAGS.steps_per_epoch),
            time_budget_seconds=FLAGS.budget_seconds or None, seed=FLAGS.seed, verbose=2,
            evaluation={"num_train": FLAGS.num_train, "num_eval": FLAGS.num_eval,
                        "num_mig_samples": FLAGS.num_mig_samples, "pairs": FLAGS.pairs},
            **_overrides(preset))
        metrics["machine_before"], metrics["machine_after"] = before, _machine()
        metrics["total_seconds"] = round(time.time() - started, 1)
        with open(metrics_path, "w") as handle:
            json.dump(metrics, handle, indent=1)
        study["results"][preset] = metrics
        with open(study_path, "w") as handle:
            json.dump(study, handle, indent=1)

    if FLAGS.images_dir:
        import shutil

        from keras_crvae.data import sprites
        from keras_crvae.io import save_image_grid

        os.makedirs(FLAGS.images_dir, exist_ok=True)
        save_image_grid(sprites.load_sprites(32, seed=FLAGS.seed)["images"],
                        os.path.join(FLAGS.images_dir, "disentanglement_sprites.png"))
        for preset in study["results"]:
            source = os.path.join(FLAGS.output_dir, preset, "traversals.png")
            if os.path.exists(source):
                shutil.copyfile(source, os.path.join(
                    FLAGS.images_dir, f"disentanglement_{preset}_traversals.png"))

    if FLAGS.summary:
        keys = ("train_steps", "train_seconds", "train_images_per_second", "reconstruction", "kl",
                "kl_per_latent", "overrides", "machine_before", "machine_after", "beta_vae",
                "factor_vae")
        summary = {"command": study["command"], "results": {
            preset: {**{key: result.get(key) for key in keys},
                     "mig": {key: result["mig"][key] for key in ("score", "per_factor",
                                                                  "factor_entropy")}}
            for preset, result in study["results"].items()}}
        with open(FLAGS.summary, "w") as handle:
            json.dump(summary, handle, indent=1)

    print(f"\n{'preset':24s} {'steps':>6s} {'sec':>6s} {'img/s':>6s} {'recon':>7s} {'KL':>6s} {'betaVAE':>8s} "
          f"{'FactorVAE':>9s} {'MIG':>6s}")
    for preset, result in study["results"].items():
        print(f"{preset:24s} {result['train_steps']:6d} {result['train_seconds']:6.0f} "
              f"{result['train_images_per_second']:6.0f} "
              f"{result['reconstruction']:7.1f} {result['kl']:6.1f} "
              f"{result['beta_vae']['score']:8.3f} {result['factor_vae']['score']:9.3f} "
              f"{result['mig']['score']:6.3f}")
    with open(study_path, "w") as handle:
        json.dump(study, handle, indent=1)


if __name__ == "__main__":
    app.run(main)
