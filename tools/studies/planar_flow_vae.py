"""The planar-flow VAE study of docs/flows.md ("Flow posteriors"): K = 0/10/40/80, equal budget.

Each preset (`mnist_planar_k0`, `_k10`, `_k40`, `_k80`: Rezende & Mohamed 2015, Table 2) trains
for the same number of optimizer steps (`--steps`, batch `--batch_size`) on the statically
binarized MNIST training split (`../shared/data/binarized_mnist.npz`, `x_train`), then is scored on
the first `--num_valid` validation images (`x_valid`; the test split is held out): the
importance-sampled NLL with `--nll_samples` samples of q after the flow, and the ELBO. Results:
`OUTPUT_DIR/PRESET/metrics.json` per model (a model whose file exists is skipped, so a killed
study resumes), `OUTPUT_DIR/study.json` and `OUTPUT_DIR/study.md` (the table). Without the shared
data file the embedded 10,000-image subset trains (dynamically binarized) and its test images are
scored; the table says which data it used.

The real study (not run in the session that wrote this; ~1.4 h of steps per model on 2 CPU cores is
our estimate, not a measurement):

    nohup nice -n 19 python tools/studies/planar_flow_vae.py --steps=50000 --nll_samples=1000 \
        --num_valid=10000 --output_dir=runs/planar_flow_study > runs/planar_flow_study.log 2>&1 &

A smoke run (seconds): `python tools/studies/planar_flow_vae.py --steps=20 --num_valid=20
--nll_samples=10 --output_dir=runs/planar_smoke`.
"""

import json
import os
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("presets", ["mnist_planar_k0", "mnist_planar_k10", "mnist_planar_k40",
                              "mnist_planar_k80"], "Presets to train and score, in order.")
flags.DEFINE_integer("steps", 50000, "Optimizer steps per model (the equal budget).")
flags.DEFINE_integer("steps_per_epoch", 500, "Steps per Keras epoch (progress lines, LR decay).")
flags.DEFINE_integer("batch_size", 100, "Training batch size (the paper's 100).")
flags.DEFINE_integer("num_valid", 10000, "Validation images scored.")
flags.DEFINE_integer("nll_samples", 1000, "Importance samples per image of the NLL.")
# The shared data folder beside the checkout (../shared/data), as the other studies find it.
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data")
flags.DEFINE_string("data", os.path.join(DATA, "binarized_mnist.npz"),
                    "binarized_mnist.npz (x_train / x_valid); 'embedded' or a missing file: the "
                    "package's embedded subset.")
flags.DEFINE_integer("seed", 0, "Seed of the weights, the posterior noise and the batches.")
flags.DEFINE_integer("threads", 0, "TensorFlow intra- and inter-op threads (0: TensorFlow's "
                     "default).")
flags.DEFINE_string("output_dir", "runs/planar_flow_study", "Where study.json and study.md go.")


def _data():
    """`(train, valid, description)`: float32 images `(N, 28, 28, 1)` in {0, 1} / [0, 1]."""
    from keras_crvae import data

    if FLAGS.data != "embedded" and os.path.exists(FLAGS.data):
        train = data.load_npz_images(FLAGS.data + ":x_train")
        valid = data.load_npz_images(FLAGS.data + ":x_valid")[:FLAGS.num_valid]
        return train, valid, f"{FLAGS.data} x_train (static binarization) / x_valid[:{len(valid)}]"
    embedded = data.load_embedded_mnist()
    valid = data.static_binarize(embedded["x_test"][:FLAGS.num_valid], seed=FLAGS.seed)
    return (embedded["x_train"], valid,
            f"embedded subset x_train (dynamic binarization) / x_test[:{len(valid)}] (static)")


def _train_and_score(preset, train, valid):
    import keras

    import keras_crvae
    from keras_crvae import data, evaluation, presets

    steps_per_epoch = min(FLAGS.steps, FLAGS.steps_per_epoch)
    epochs = max(1, FLAGS.steps // steps_per_epoch)
    keras.utils.set_random_seed(FLAGS.seed)
    model = keras_crvae.from_preset(preset, steps_per_epoch=steps_per_epoch, seed=FLAGS.seed,
                                    batch_size=FLAGS.batch_size)
    presets.initialize_from_data(model, preset, train)
    started = time.time()
    batches = data.training_data(train, FLAGS.batch_size, seed=FLAGS.seed)
    if hasattr(batches, "repeat"):  # tf.data: an endless stream, so any steps_per_epoch fits
        batches = batches.repeat()
    history = model.fit(batches, epochs=epochs, steps_per_epoch=steps_per_epoch, verbose=2)
    train_seconds = time.time() - started
    started = time.time()
    nll = evaluation.importance_sampled_nll(model, valid, num_samples=FLAGS.nll_samples,
                                            seed=FLAGS.seed, verbose=0)
    bound = evaluation.elbo(model, valid, seed=FLAGS.seed)
    return {
        "preset": preset,
        "posterior_flow": model.posterior_flow,
        "paper_nll": presets.get_preset(preset).paper_nll,
        "train_steps": epochs * steps_per_epoch,
        "train_seconds": round(train_seconds, 1),
        "eval_seconds": round(time.time() - started, 1),
        "final_train_elbo": float(history.history["elbo"][-1]),
        "valid_nll": nll.to_dict(),
        "valid_elbo": bound["elbo"].to_dict(),
        "valid_kl": bound["kl"].to_dict(),
        "parameters": int(model.count_params()),
    }


def _table(study):
    lines = [f"Data: {study['data']}; {study['steps']} steps of batch {study['batch_size']} per "
             f"model; NLL with k = {study['nll_samples']} importance samples of q after the flow "
             f"on {study['num_valid']} validation images; load average at the start "
             f"{study['load_average']}.", "",
             "| preset | flow | valid NLL (nats) | +- s.e. | valid ELBO | KL (sample est.) | "
             "paper NLL (test) | train s |", "|---|---|---|---|---|---|---|---|"]
    for preset in FLAGS.presets:
        result = study["results"].get(preset)
        if result is None:
            continue
        nll, elbo, kl = result["valid_nll"], result["valid_elbo"], result["valid_kl"]
        lines.append(f"| {preset} | {result['posterior_flow'] or 'Gaussian'} | {nll['mean']:.2f} | "
                     f"{nll['standard_error']:.2f} | {elbo['mean']:.2f} | {kl['mean']:.2f} | "
                     f"{result['paper_nll']} | {result['train_seconds']} |")
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    if FLAGS.threads:
        os.environ["TF_NUM_INTRAOP_THREADS"] = str(FLAGS.threads)
        os.environ["TF_NUM_INTEROP_THREADS"] = str(FLAGS.threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    train, valid, description = _data()
    study = {"command": " ".join(sys.argv), "data": description, "steps": FLAGS.steps,
             "batch_size": FLAGS.batch_size, "nll_samples": FLAGS.nll_samples,
             "num_valid": len(valid), "load_average": open("/proc/loadavg").read().split()[:3]
             if os.path.exists("/proc/loadavg") else None, "results": {}}
    for preset in FLAGS.presets:
        metrics_path = os.path.join(FLAGS.output_dir, preset, "metrics.json")
        if os.path.exists(metrics_path):
            with open(metrics_path) as handle:
                study["results"][preset] = json.load(handle)
            print(f"{preset}: done already ({metrics_path})", flush=True)
            continue
        result = _train_and_score(preset, train, valid)
        os.makedirs(os.path.dirname(metrics_path), exist_ok=True)
        with open(metrics_path, "w") as handle:
            json.dump(result, handle, indent=1)
        study["results"][preset] = result
        print(f"{preset}: valid NLL {result['valid_nll']['mean']:.2f}", flush=True)
    with open(os.path.join(FLAGS.output_dir, "study.json"), "w") as handle:
        json.dump(study, handle, indent=1)
    table = _table(study)
    with open(os.path.join(FLAGS.output_dir, "study.md"), "w") as handle:
        handle.write(table)
    print(table)


if __name__ == "__main__":
    app.run(main)
