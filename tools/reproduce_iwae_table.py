"""Reproduces Burda et al.'s MNIST table (IWAE paper, Table 1: VAE vs IWAE, 1 vs 2 stochastic layers).

Rows (presets in `keras_crvae.presets`; published MNIST test NLL / active units):

    mnist_mlp_vae           VAE,  k=1, 1 stochastic layer    86.76 / 19
    mnist_mlp_iwae          IWAE, k=5, 1 stochastic layer    85.54 / 22
    mnist_mlp_vae_2layer    VAE,  k=1, 2 stochastic layers   85.33 / 16+5
    mnist_mlp_iwae_2layer   IWAE, k=5, 2 stochastic layers   83.89 / 21+5

Protocol: the presets' architectures and optimiser (tanh MLPs, Adam eps 1e-4, batches of 20, the
8-stage 3**i learning-rate schedule squeezed into `--epochs`), the 60,000 MNIST training images
dynamically binarized, the output bias started at the training pixels' mean logit (as the authors'
code does). Evaluation: the importance-sampled NLL with k=5000 (the paper's k) on the statically
binarized MNIST *validation* split (`shared/data/binarized_mnist.npz:x_valid`; the test split is held
out), the ELBO, and the active units per stochastic layer (`Cov_x E_q[z_i] > 0.01`, the paper's
section 5.2). The paper trains 3,280 epochs; `--epochs` (default 100) is the CPU budget.

    python tools/reproduce_iwae_table.py --output_dir=runs/iwae_table --results_json=docs/iwae_table.json
    python tools/reproduce_iwae_table.py --smoke --output_dir=/tmp/iwae_smoke    # about a minute
    python tools/reproduce_iwae_table.py --threads=1 ...     # one TensorFlow thread (a shared CPU)

Per preset it writes `OUTPUT/PRESET/`: `config.json`, `history.csv` (training curve: per-epoch
training bound, and every `--validation_every` epochs the validation loss), `model.weights.h5`,
`train_info.json`, `result.json`, and `backup/` while training. A preset with a `result.json` is
skipped; a killed run resumes from its last finished epoch (`keras.callbacks.BackupAndRestore`) or
goes straight to evaluation once `model.weights.h5` is written. After every finished row the table is
rewritten: `OUTPUT/results.json`, `OUTPUT/results.md` and, with `--results_json`, that file too.
"""

import dataclasses
import json
import os
import pathlib
import time

from absl import app, flags

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
IWAE_TABLE_ORDER = ["mnist_mlp_vae", "mnist_mlp_iwae", "mnist_mlp_vae_2layer",
                    "mnist_mlp_iwae_2layer"]
PAPER_ACTIVE_UNITS = {"mnist_mlp_vae": "19", "mnist_mlp_iwae": "22",
                      "mnist_mlp_vae_2layer": "16+5", "mnist_mlp_iwae_2layer": "21+5"}

FLAGS = flags.FLAGS
flags.DEFINE_list("presets", None, "Rows to run, in order (default: the four rows of the table).")
flags.DEFINE_string("output_dir", "runs/iwae_table", "Where models and results go.")
flags.DEFINE_string("results_json", None, "Also write the finished rows to this JSON file.")
flags.DEFINE_string("train_data", str(SHARED_DATA / "mnist.npz") + ":x_train",
                    "Training images (grey levels), PATH.npz:KEY.")
flags.DEFINE_string("valid_data", str(SHARED_DATA / "binarized_mnist.npz") + ":x_valid",
                    "Statically binarized evaluation images, PATH.npz:KEY.")
flags.DEFINE_integer("epochs", None, "Epochs per row (default 100; smoke 1).")
flags.DEFINE_integer("num_samples", None, "Importance samples k of the NLL (default 5000; smoke 20).")
flags.DEFINE_integer("num_valid", None, "Validation images evaluated (default all; smoke 200).")
flags.DEFINE_integer("num_train", None, "Training images used (default all; smoke 2000).")
flags.DEFINE_integer("steps_per_execution", 300, "Training steps per compiled call (speed).")
flags.DEFINE_integer("validation_every", 10, "Epochs between validation losses in history.csv.")
flags.DEFINE_integer("eval_batch_size", 100, "Images per importance-sampling batch.")
flags.DEFINE_integer("max_decoder_batch", 5000, "Rows per log-weight call in the NLL (memory bound).")
flags.DEFINE_multi_string("set", [], "Preset overrides KEY=VALUE applied to every row.")
flags.DEFINE_boolean("smoke", False, "1 epoch on 2000 images, k=20 on 200 validation images.")
flags.DEFINE_integer("threads", 0, "TensorFlow intra- and inter-op threads (0: TensorFlow's default).")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_integer("verbose", 2, "Keras fit verbosity (2: one line per epoch).")


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """The protocol of one invocation, after --smoke and explicit flags are resolved."""

    epochs: int
    num_samples: int
    num_valid: int
    num_train: int


def resolve_settings():
    smoke = FLAGS.smoke
    return RunSettings(
        epochs=FLAGS.epochs or (1 if smoke else 100),
        num_samples=FLAGS.num_samples or (20 if smoke else 5000),
        num_valid=FLAGS.num_valid or (200 if smoke else 0),
        num_train=FLAGS.num_train or (2000 if smoke else 0),
    )


class EpochTimer:
    """A Keras callback summing the wall time of the epochs actually run."""

    def __new__(cls):
        import keras

        class _Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seconds, self.epochs_run, self._start = 0.0, 0, None

            def on_epoch_begin(self, epoch, logs=None):
                self._start = time.time()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds += time.time() - self._start
                self.epochs_run += 1

        return _Timer()


def format_active_units(per_layer):
    """`[16, 5]` -> "16+5" (the paper's notation)."""
    return "+".join(str(int(units)) for units in per_layer)


def run_preset(name, train_images, valid_images, settings, output_dir, overrides):
    """Trains (or resumes) and evaluates one row; returns its result dict."""
    import keras

    import keras_crvae
    from keras_crvae import callbacks, data, evaluation

    folder = pathlib.Path(output_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    preset = keras_crvae.get_preset(name, epochs=settings.epochs, **overrides)
    batch_size = preset.training.batch_size
    steps_per_epoch = len(train_images) // batch_size
    keras.utils.set_random_seed(FLAGS.seed)
    model = keras_crvae.from_preset(name, steps_per_epoch=steps_per_epoch, seed=FLAGS.seed,
                                    compile=False, epochs=settings.epochs, **overrides)
    keras_crvae.presets.initialize_from_data(model, name, train_images, epochs=settings.epochs,
                                             **overrides)
    model.compile(keras_crvae.presets.make_optimizer(preset.training, steps_per_epoch),
                  steps_per_execution=min(FLAGS.steps_per_execution, steps_per_epoch))
    (folder / "config.json").write_text(json.dumps(
        {"preset": name, "network": preset.network, "model": preset.model,
         "training": dataclasses.asdict(preset.training)}, indent=2))
    weights_path, info_path = folder / "model.weights.h5", folder / "train_info.json"
    if weights_path.exists() and info_path.exists():
        model.load_weights(str(weights_path))
        train_info = json.loads(info_path.read_text())
    else:
        timing = EpochTimer()
        start = time.time()
        model.fit(
            data.training_data(train_images, batch_size=batch_size, seed=FLAGS.seed),
            epochs=settings.epochs,
            verbose=FLAGS.verbose,
            shuffle=False,
            validation_data=valid_images,
            validation_freq=max(1, FLAGS.validation_every),
            callbacks=[callbacks.NaNGuard(),
                       keras.callbacks.BackupAndRestore(str(folder / "backup")),
                       keras.callbacks.CSVLogger(str(folder / "history.csv"), append=True), timing],
        )
        trained_images = steps_per_epoch * batch_size * max(timing.epochs_run, 1)
        train_info = {
            "train_wall_seconds_this_session": round(time.time() - start, 1),
            "epoch_seconds": round(timing.seconds / max(timing.epochs_run, 1), 2),
            "images_per_second": round(trained_images / max(timing.seconds, 1e-9), 1),
        }
        model.save_weights(str(weights_path))
        info_path.write_text(json.dumps(train_info, indent=2))

    start = time.time()
    bound = evaluation.elbo(model, valid_images, batch_size=FLAGS.eval_batch_size, seed=FLAGS.seed)
    nll = evaluation.importance_sampled_nll(model, valid_images, num_samples=settings.num_samples,
                                            batch_size=FLAGS.eval_batch_size, seed=FLAGS.seed,
                                            max_decoder_batch=FLAGS.max_decoder_batch, verbose=1)
    units = evaluation.active_units(model, valid_images)
    per_layer = units.get("active_units_per_layer", [units["active_units"]])
    result = {
        "preset": name,
        "stochastic_layers": len(per_layer),
        "iwae_samples": preset.model["iwae_samples"],
        "epochs": settings.epochs,
        "num_train_images": int(len(train_images)),
        **train_info,
        "eval_wall_seconds": round(time.time() - start, 1),
        "elbo": bound["elbo"].to_dict(),
        "nll": nll.to_dict(),
        "active_units": format_active_units(per_layer),
        "num_latents": units["num_latents"],
        "paper_nll": preset.paper_nll,
        "paper_active_units": PAPER_ACTIVE_UNITS.get(name),
        "backend": keras.backend.backend(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    (folder / "result.json").write_text(json.dumps(result, indent=2))
    return result


def validation_curve(history_path):
    """`{epoch: {metric: value}}` of the validation metrics (`val_elbo`, and `val_iwae_bound` for IWAE
    rows) in a row's `history.csv`, epochs counted from 1; {} when there is none."""
    import csv

    path = pathlib.Path(history_path)
    if not path.exists():
        return {}
    curve = {}
    with path.open() as handle:
        for record in csv.DictReader(handle):
            values = {key[4:]: round(float(value), 3) for key, value in record.items()
                      if key in ("val_elbo", "val_iwae_bound") and value not in ("", "NA")}
            if values:
                curve[int(record["epoch"]) + 1] = values
    return curve


def write_tables(output_dir, results, settings, results_json=None, show=True):
    for row in results:  # the training curve of every finished row, from its history.csv
        row["validation_curve"] = validation_curve(
            pathlib.Path(output_dir) / row["preset"] / "history.csv")
    rows = sorted(results, key=lambda r: IWAE_TABLE_ORDER.index(r["preset"])
                  if r["preset"] in IWAE_TABLE_ORDER else len(IWAE_TABLE_ORDER))
    report = {"settings": dataclasses.asdict(settings), "results": rows}
    (pathlib.Path(output_dir) / "results.json").write_text(json.dumps(report, indent=2))
    if results_json:
        pathlib.Path(results_json).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(results_json).write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "| model | layers | k | epochs | s/epoch | ELBO | NLL (samples) | active units | paper NLL | "
        "paper units | gap |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        gap = "" if r["paper_nll"] is None else f"{r['nll']['mean'] - r['paper_nll']:+.2f}"
        lines.append(
            f"| {r['preset']} | {r['stochastic_layers']} | {r['iwae_samples']} | {r['epochs']} | "
            f"{r['epoch_seconds']} | {r['elbo']['mean']:.2f} | "
            f"{r['nll']['mean']:.2f} +- {r['nll']['standard_error']:.2f} "
            f"({r['nll']['num_samples']}) | {r['active_units']} | "
            f"{r['paper_nll']} | {r['paper_active_units'] or '-'} | {gap} |")
    (pathlib.Path(output_dir) / "results.md").write_text("\n".join(lines) + "\n")
    if show:
        print("\n".join(lines))


def _limit_threads(threads):
    import keras

    if threads and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def main(_):
    _limit_threads(FLAGS.threads)
    from keras_crvae import data, presets

    settings = resolve_settings()
    names = FLAGS.presets or IWAE_TABLE_ORDER
    overrides = presets.parse_overrides(FLAGS.set)
    train_images = data.load_npz_images(FLAGS.train_data)
    valid_images = data.load_npz_images(FLAGS.valid_data)
    if valid_images.min() < 0 or not set(valid_images.reshape(-1)[:10000].tolist()) <= {0.0, 1.0}:
        raise ValueError("--valid_data must be statically binarized (values 0/1).")
    if settings.num_train:
        train_images = train_images[:settings.num_train]
    if settings.num_valid:
        valid_images = valid_images[:settings.num_valid]
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    results = []
    for name in names:
        done = pathlib.Path(FLAGS.output_dir) / name / "result.json"
        if done.exists():
            print(f"{name}: already finished, skipping ({done}).")
            results.append(json.loads(done.read_text()))
            continue
        print(f"=== {name}: {settings.epochs} epochs on {len(train_images)} images, "
              f"k={settings.num_samples} on {len(valid_images)} validation images", flush=True)
        results.append(run_preset(name, train_images, valid_images, settings, FLAGS.output_dir,
                                  overrides))
        write_tables(FLAGS.output_dir, results, settings, FLAGS.results_json, show=False)
    # Rows finished by earlier invocations (other --presets) join the table too.
    for folder in sorted(pathlib.Path(FLAGS.output_dir).glob("*/result.json")):
        row = json.loads(folder.read_text())
        if row["preset"] not in {r["preset"] for r in results}:
            results.append(row)
    write_tables(FLAGS.output_dir, results, settings, FLAGS.results_json)


if __name__ == "__main__":
    app.run(main)
