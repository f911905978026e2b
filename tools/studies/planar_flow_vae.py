"""The planar-flow VAE study of docs/flows.md ("Flow posteriors"): K = 0/10/40/80, equal budget.

Each preset (`mnist_planar_k0`, `_k10`, `_k40`, `_k80`: Rezende & Mohamed 2015, Table 2) is trained
by the vae job (`keras_crvae.jobs.vae.train`, the library's resumable training skeleton) into
`OUTPUT_DIR/PRESET/` for the same number of optimizer steps (`--steps`, batch `--batch_size`:
`--steps / (training images / batch)` epochs) on the statically binarized MNIST training split
(`../shared/data/binarized_mnist.npz`, `x_train`), then scored by the job on the first `--num_valid`
validation images (`x_valid`; the test split is held out): the importance-sampled NLL with
`--nll_samples` samples of q after the flow, the ELBO and its KL. Without the shared data file the
embedded 10,000-image subset trains (dynamically binarized) and its test images are scored; the
table says which data it used.

Long-run behaviour (`keras_crvae.jobs.longrun`): `--stop_after_minutes=N` (counted from the
study's start) or SIGTERM stops the model in training at its next epoch end with its full state
(`backup/`: weights and Adam's moments); rerunning the same command skips the finished models and
resumes that one. Every model's `history.csv` has `train_hours` per epoch and `sessions.json` its
stretches; the table's hours are their sum (machine hours of training, all stretches).
Results: `OUTPUT_DIR/study.json` and `OUTPUT_DIR/study.md`, rewritten after every model; once all
are scored, `--paired` (default) adds the per-image NLL differences of consecutive presets (and the
last against the first) with their standard errors, from `PRESET/nll_per_image.npy`
(rescored from `model.keras` with the job's noise when a run has none; rerunning the command on a
finished study adds them).

The real study (50,000 steps: 0.06 h of training for K=0 at two threads on a quiet 2-core CPU;
~0.5 to 1.1 h per model under load 8-15), resumable in stretches of e.g. 3 hours:

    nice -n 19 python tools/studies/planar_flow_vae.py --steps=50000 --nll_samples=1000 \
        --num_valid=10000 --output_dir=reproductions/studies/planar_flow --stop_after_minutes=180

A smoke run (a minute or two): `python tools/studies/planar_flow_vae.py --steps=20
--batch_size=10 --num_train=200 --num_valid=20 --nll_samples=10 --output_dir=runs/planar_smoke`.
"""

import json
import os
import pathlib
import sys
import time

from absl import app, flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import checkout_paths  # noqa: E402  (tools/checkout_paths.py)

FLAGS = flags.FLAGS
flags.DEFINE_list("presets", ["mnist_planar_k0", "mnist_planar_k10", "mnist_planar_k40",
                              "mnist_planar_k80"], "Presets to train and score, in order.")
flags.DEFINE_integer("steps", 50000, "Optimizer steps per model (the equal budget).")
flags.DEFINE_integer("batch_size", 100, "Training batch size (the paper's 100).")
flags.DEFINE_integer("num_valid", 10000, "Validation images scored.")
flags.DEFINE_integer("num_train", None, "Train on the first N training images only (smoke runs).")
flags.DEFINE_float("stop_after_minutes", 0.0, "Stop at the first epoch end after this many "
                   "minutes of the study (0: no limit); rerun the same command to resume.")
flags.DEFINE_enum("light_state_dtype", "float16", ["float16", "float32"], "Storage dtype of the "
                  "light state a stopped run writes (resume_weights.npz + resume.json, committable; "
                  "a machine without the run's backup/ resumes from it).")
flags.DEFINE_integer("nll_samples", 1000, "Importance samples per image of the NLL.")
DATA = str(checkout_paths.SHARED_DATA)
flags.DEFINE_string("data", os.path.join(DATA, "binarized_mnist.npz"),
                    "binarized_mnist.npz (x_train / x_valid); 'embedded' or a missing file: the "
                    "package's embedded subset.")
flags.DEFINE_integer("seed", 0, "Seed of the weights, the posterior noise and the batches.")
flags.DEFINE_integer("threads", 0, "TensorFlow intra- and inter-op threads (0: TensorFlow's "
                     "default).")
flags.DEFINE_string("output_dir", "reproductions/studies/planar_flow", "Where study.json and study.md go.")
flags.DEFINE_bool("paired", True, "Once every preset is scored: each model's per-image NLLs "
                  "(PRESET/nll_per_image.npy, written by the vae job; rescored from model.keras with "
                  "the job's seed and batch for a run trained before the job wrote it) and the paired differences of consecutive "
                  "presets, image by image, in study.json / study.md.")


def _data():
    """`(train, valid, description)`: float32 images `(N, 28, 28, 1)` in {0, 1} / [0, 1]."""
    from keras_crvae import data

    if FLAGS.data != "embedded" and os.path.exists(FLAGS.data):
        train = data.load_npz_images(FLAGS.data + ":x_train")[:FLAGS.num_train]
        valid = data.load_npz_images(FLAGS.data + ":x_valid")[:FLAGS.num_valid]
        return train, valid, (f"{checkout_paths.in_checkout(FLAGS.data)} x_train[:{len(train)}] (static binarization) / "
                              f"x_valid[:{len(valid)}]")
    embedded = data.load_embedded_mnist()
    train = embedded["x_train"][:FLAGS.num_train]
    valid = data.static_binarize(embedded["x_test"][:FLAGS.num_valid], seed=FLAGS.seed)
    return (train, valid, f"embedded subset x_train[:{len(train)}] (dynamic binarization) / "
                          f"x_test[:{len(valid)}] (static)")


def _train_and_score(preset, train, valid, minutes_left):
    """The vae job's run of `preset` (resumed or skipped as its folder says); returns the study's
    row, or None when the budget or SIGTERM stopped it."""
    from keras_crvae import presets
    from keras_crvae.jobs import longrun
    from keras_crvae.jobs.vae import train as train_vae

    output_dir = os.path.join(FLAGS.output_dir, preset)
    steps_per_epoch = len(train) // FLAGS.batch_size
    epochs = max(1, FLAGS.steps // steps_per_epoch)
    metrics = train_vae(preset, train_images=train, eval_images=valid, output_dir=output_dir,
                        epochs=epochs, batch_size=FLAGS.batch_size, nll_samples=FLAGS.nll_samples,
                        nll_images=len(valid), seed=FLAGS.seed, verbose=2,
                        data_spec=checkout_paths.in_checkout(FLAGS.data), stop_after_minutes=minutes_left,
                        light_state_dtype=FLAGS.light_state_dtype)
    if metrics.get("stopped"):
        return None
    history = metrics.get("history", {})
    return {
        "preset": preset,
        "posterior_flow": presets.get_preset(preset).model.get("posterior_flow"),
        "paper_nll": presets.get_preset(preset).paper_nll,
        "train_steps": epochs * steps_per_epoch,
        "train_hours": round(longrun.training_seconds_so_far(output_dir) / 3600.0, 4),
        "final_train_elbo": (history.get("elbo") or [None])[-1],
        "valid_nll": metrics["nll"],
        "valid_elbo": metrics["elbo"],
        "valid_kl": metrics["kl"],
    }


def _per_image_nll(preset, valid, expected_mean):
    """The per-image NLLs of the trained `preset` on `valid`, float64 `(N,)`: from
    `PRESET/nll_per_image.npy`, else rescored from `PRESET/model.keras` exactly as the vae
    job scored it (`evaluation.summary.evaluate_model`: k = `--nll_samples`, batch 100, noise seed
    `--seed`), checked against the job's mean and saved (float32)."""
    import numpy as np

    from keras_crvae.jobs.vae import PER_IMAGE_NLL

    path = os.path.join(FLAGS.output_dir, preset, PER_IMAGE_NLL)
    saved = np.load(path) if os.path.exists(path) else None
    if saved is not None and len(saved) == len(valid):
        return saved.astype(np.float64)
    import keras

    from keras_crvae.evaluation import importance_sampled_nll
    from keras_crvae.io import save_npy

    print(f"{preset}: rescoring {len(valid)} images x k={FLAGS.nll_samples} for the paired "
          "differences ...", flush=True)
    model = keras.saving.load_model(os.path.join(FLAGS.output_dir, preset, "model.keras"))
    per_image = importance_sampled_nll(model, valid, num_samples=FLAGS.nll_samples,
                                       batch_size=100, seed=FLAGS.seed, verbose=0).per_example
    # The same noise and weights give the job's number; a gap says the pairing scored otherwise.
    if abs(float(np.mean(per_image)) - expected_mean) > 1e-3:
        print(f"{preset}: warning: the rescored mean {np.mean(per_image):.4f} differs from the "
              f"job's {expected_mean:.4f}", flush=True)
    save_npy(per_image.astype(np.float32), path)
    return per_image


def _paired_differences(study, valid):
    """`study["paired"]`: for consecutive presets (and the last against the first), the mean of
    the per-image NLL differences (later minus earlier: negative = the later is better) and its
    standard error (the spread of the differences over the images / sqrt(N))."""
    from keras_crvae.evaluation import paired_difference

    done = [preset for preset in FLAGS.presets if preset in study["results"]]
    per_image = {preset: _per_image_nll(preset, valid, study["results"][preset]["valid_nll"]["mean"])
                 for preset in done}
    pairs = list(zip(done, done[1:])) + ([(done[0], done[-1])] if len(done) > 2 else [])
    study["paired"] = [
        dict(earlier=earlier, later=later, **paired_difference(per_image[earlier], per_image[later]),
             paper_difference=round(study["results"][later]["paper_nll"]
                                    - study["results"][earlier]["paper_nll"], 2))
        for earlier, later in pairs]


def _table(study):
    lines = [f"Data: {study['data']}; {study['steps']} steps of batch {study['batch_size']} per "
             f"model; NLL with k = {study['nll_samples']} importance samples of q after the flow "
             f"on {study['num_valid']} validation images; load average at the start "
             f"{study['load_average']}.", "",
             "| preset | flow | valid NLL (nats) | +- s.e. | valid ELBO | KL (sample est.) | "
             "paper NLL (test) | train hours |", "|---|---|---|---|---|---|---|---|"]
    for preset in FLAGS.presets:
        result = study["results"].get(preset)
        if result is None:
            continue
        nll, elbo, kl = result["valid_nll"], result["valid_elbo"], result["valid_kl"]
        lines.append(f"| {preset} | {result['posterior_flow'] or 'Gaussian'} | {nll['mean']:.2f} | "
                     f"{nll['standard_error']:.2f} | {elbo['mean']:.2f} | {kl['mean']:.2f} | "
                     f"{result['paper_nll']} | {result['train_hours']} |")
    if study.get("paired"):
        lines += ["", "Paired per image (the same validation images, later minus earlier; "
                  "negative: the later preset is better):", "",
                  "| later - earlier | NLL difference (nats) | +- s.e. | paper |", "|---|---|---|---|"]
        for pair in study["paired"]:
            lines.append(f"| {pair['later']} - {pair['earlier']} | {pair['mean_difference']:.3f} "
                         f"| {pair['standard_error']:.3f} | {pair['paper_difference']:+.1f} |")
    return "\n".join(lines) + "\n"


def _write(study):
    with open(os.path.join(FLAGS.output_dir, "study.json"), "w") as handle:
        json.dump(study, handle, indent=1)
    table = _table(study)
    with open(os.path.join(FLAGS.output_dir, "study.md"), "w") as handle:
        handle.write(table)
    return table


def main(argv):
    del argv
    if FLAGS.threads:
        os.environ["TF_NUM_INTRAOP_THREADS"] = str(FLAGS.threads)
        os.environ["TF_NUM_INTEROP_THREADS"] = str(FLAGS.threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_crvae.jobs import longrun

    budget = longrun.StudyBudget(FLAGS.stop_after_minutes,
                                 f"--stop_after_minutes={FLAGS.stop_after_minutes:g}")
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    train, valid, description = _data()
    study = {"command": " ".join([checkout_paths.in_checkout(sys.argv[0]), *sys.argv[1:]]),
             "data": description, "steps": FLAGS.steps,
             "batch_size": FLAGS.batch_size, "nll_samples": FLAGS.nll_samples,
             "num_valid": len(valid), "load_average": open("/proc/loadavg").read().split()[:3]
             if os.path.exists("/proc/loadavg") else None, "results": {}}
    for preset in FLAGS.presets:
        if budget.spent():  # between two models
            budget.stop(FLAGS.output_dir, preset)
            break
        finished_before = os.path.exists(os.path.join(FLAGS.output_dir, preset, "metrics.json"))
        result = _train_and_score(preset, train, valid, budget.minutes_left())
        budget.ran(finished_before)
        if result is None:  # the job stopped at an epoch end and said so (and told a queue)
            print(f"{preset}: stopped; rerun the same command to resume it.", flush=True)
            break
        study["results"][preset] = result
        print(f"{preset}: valid NLL {result['valid_nll']['mean']:.2f}", flush=True)
        _write(study)
    else:
        if FLAGS.paired and study["results"]:
            _paired_differences(study, valid)
    print(_write(study))


if __name__ == "__main__":
    app.run(main)
