"""Reproduces the crVAE paper's MNIST ablation (supplement section B, Table 1) with the library's tools.

Protocol (the reference `main_mnist.lua` of WendyShang/crVAE and its README command lines): train each
preset on the 60,000 MNIST training images, dynamically binarized every epoch, with Adam, the preset's
learning rates and step decay (x0.5 every 50 epochs), 200 epochs; evaluate the importance-sampled NLL
(k=5000 here by default; the paper used 10,000) on statically binarized MNIST. The paper reports the
Larochelle *test* split; this script uses the *validation* split (`x_valid` of
`shared/data/binarized_mnist.npz`), because the test split is held out for independent evaluation.

    python tools/reproduce_table1.py --output_dir=table1 [--presets=mnist_vae,mnist_crvae]
    python tools/reproduce_table1.py --presets=mnist_crvae_2layer ...   # "2 stochastic layers", 79.65
    python tools/reproduce_table1.py --smoke --output_dir=/tmp/smoke        # a few minutes on CPU
    KERAS_BACKEND=jax python tools/reproduce_table1.py ...                  # the lent GPU (no TF)

Per preset it writes `OUTPUT/PRESET/`: `model.weights.h5`, `config.json`, `history.csv`, `result.json`,
`train_info.json`, and `backup/` while training. A preset with a `result.json` is skipped; a killed run
resumes from its last finished epoch, or goes straight to evaluation once `model.weights.h5` is written (`keras.callbacks.BackupAndRestore`). `OUTPUT/results.json` and
`OUTPUT/results.md` collect every finished row next to the paper's number.
"""

import dataclasses
import json
import os
import pathlib
import time

import keras
from absl import app, flags

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
TABLE1_ORDER = ["mnist_vae", "mnist_crvae", "mnist_cvae", "mnist_crvae_inference",
                "mnist_crvae_generation", "mnist_crvae_t4", "mnist_crvae_t16", "mnist_criwae",
                "mnist_crvae_2layer"]

FLAGS = flags.FLAGS
flags.DEFINE_list("presets", None, "Rows to run, in order (default: all of Table 1; smoke: "
                  "mnist_vae,mnist_crvae).")
flags.DEFINE_string("output_dir", "table1_runs", "Where models and results go.")
flags.DEFINE_string("train_data", str(SHARED_DATA / "mnist.npz") + ":x_train",
                    "Training images (grey levels), PATH.npz:KEY.")
flags.DEFINE_string("valid_data", str(SHARED_DATA / "binarized_mnist.npz") + ":x_valid",
                    "Statically binarized evaluation images, PATH.npz:KEY.")
flags.DEFINE_integer("epochs", None, "Epochs (default 200; smoke 2).")
flags.DEFINE_integer("num_samples", None, "Importance samples k (default 5000; smoke 50).")
flags.DEFINE_integer("num_valid", None, "Validation images evaluated (default all; smoke 500).")
flags.DEFINE_integer("num_train", None, "Training images used (default all; smoke 1024).")
flags.DEFINE_integer("eval_batch_size", 100, "Images per importance-sampling batch.")
flags.DEFINE_integer("max_decoder_batch", 2000, "Rows per decoder call in the NLL (bounds memory).")
flags.DEFINE_multi_string("set", [], "Preset overrides KEY=VALUE applied to every row.")
flags.DEFINE_boolean("smoke", False, "2 epochs, 1024 train images, k=50, 500 validation images.")
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
        epochs=FLAGS.epochs or (2 if smoke else 200),
        num_samples=FLAGS.num_samples or (50 if smoke else 5000),
        num_valid=FLAGS.num_valid or (500 if smoke else 0),
        num_train=FLAGS.num_train or (1024 if smoke else 0),
    )


def parse_overrides(items):
    overrides = {}
    for item in items:
        key, _, value = item.partition("=")
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                continue
        overrides[key] = value
    return overrides


def run_preset(name, train_images, valid_images, settings, output_dir, overrides):
    """Trains (or resumes) and evaluates one row; returns its result dict."""
    import keras_crvae
    from keras_crvae import callbacks, data, evaluation

    folder = pathlib.Path(output_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    preset = keras_crvae.get_preset(name, epochs=settings.epochs, **overrides)
    batch_size = preset.training.batch_size
    steps_per_epoch = len(train_images) // batch_size
    keras.utils.set_random_seed(FLAGS.seed)
    model = keras_crvae.from_preset(name, steps_per_epoch=steps_per_epoch, seed=FLAGS.seed,
                                    epochs=settings.epochs, **overrides)
    (folder / "config.json").write_text(json.dumps(
        {"preset": name, "network": preset.network, "model": preset.model,
         "training": dataclasses.asdict(preset.training)}, indent=2))
    weights_path, info_path = folder / "model.weights.h5", folder / "train_info.json"
    if weights_path.exists() and info_path.exists():
        # Trained in an earlier session that stopped during evaluation: evaluate only.
        model.load_weights(str(weights_path))
        train_info = json.loads(info_path.read_text())
    else:
        timing = EpochTimer()
        start = time.time()
        model.fit(
            data.training_data(train_images, batch_size=batch_size, seed=FLAGS.seed),
            epochs=settings.epochs,
            verbose=FLAGS.verbose,
            shuffle=False,  # the pipeline shuffles itself
            callbacks=[callbacks.NaNGuard(),
                       keras.callbacks.BackupAndRestore(str(folder / "backup")),
                       keras.callbacks.CSVLogger(str(folder / "history.csv"), append=True), timing],
        )
        trained_images = steps_per_epoch * batch_size * max(timing.epochs_run, 1)
        train_info = {
            "wall_seconds_this_session": round(time.time() - start, 1),
            "images_per_second": round(trained_images / max(timing.seconds, 1e-9), 1),
        }
        model.save_weights(str(weights_path))
        info_path.write_text(json.dumps(train_info, indent=2))

    bound = evaluation.elbo(model, valid_images, batch_size=FLAGS.eval_batch_size, seed=FLAGS.seed)
    nll = evaluation.importance_sampled_nll(model, valid_images, num_samples=settings.num_samples,
                                            batch_size=FLAGS.eval_batch_size, seed=FLAGS.seed,
                                            max_decoder_batch=FLAGS.max_decoder_batch, verbose=1)
    units = evaluation.active_units(model, valid_images)
    result = {
        "preset": name,
        "time_steps": preset.network["time_steps"] if "recurrent" in (
            preset.network["encoder_latent"], preset.network["decoder_latent"]) else None,
        "epochs": settings.epochs,
        "num_train_images": int(len(train_images)),
        **train_info,
        "elbo": bound["elbo"].to_dict(),
        "nll": nll.to_dict(),
        "active_units": units["active_units"],
        "num_latents": units["num_latents"],
        # One entry per stochastic layer (bottom first); the 2-layer crVAE has two.
        "active_units_per_layer": units.get("active_units_per_layer", [units["active_units"]]),
        "paper_nll": preset.paper_nll,
        "backend": keras.backend.backend(),
    }
    (folder / "result.json").write_text(json.dumps(result, indent=2))
    return result


class EpochTimer(keras.callbacks.Callback):
    """Sums the wall time of the epochs actually run (not evaluation, not resumed epochs)."""

    def __init__(self):
        super().__init__()
        self.seconds, self.epochs_run, self._start = 0.0, 0, None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds += time.time() - self._start
        self.epochs_run += 1


def _units_text(row):
    """Active units, per stochastic layer for hierarchical rows ("16+5")."""
    per_layer = row.get("active_units_per_layer") or [row["active_units"]]
    return "+".join(str(units) for units in per_layer)


def write_tables(output_dir, results, settings, show=True):
    rows = sorted(results, key=lambda r: TABLE1_ORDER.index(r["preset"])
                  if r["preset"] in TABLE1_ORDER else len(TABLE1_ORDER))
    (pathlib.Path(output_dir) / "results.json").write_text(json.dumps(
        {"settings": dataclasses.asdict(settings), "results": rows}, indent=2))
    lines = [
        "| model | T | epochs | wall (s) | images/s | ELBO | NLL (k) | active units | paper NLL | gap |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        gap = "" if r["paper_nll"] is None else f"{r['nll']['mean'] - r['paper_nll']:+.2f}"
        lines.append(
            f"| {r['preset']} | {r['time_steps'] or '-'} | {r['epochs']} | "
            f"{r['wall_seconds_this_session']} | {r['images_per_second']} | "
            f"{r['elbo']['mean']:.2f} | {r['nll']['mean']:.2f} +- {r['nll']['standard_error']:.2f} "
            f"({r['nll']['num_samples']}) | {_units_text(r)}/{r['num_latents']} | "
            f"{r['paper_nll'] if r['paper_nll'] is not None else '-'} | {gap} |")
    (pathlib.Path(output_dir) / "results.md").write_text("\n".join(lines) + "\n")
    if show:
        print("\n".join(lines))


def main(_):
    from keras_crvae import data

    settings = resolve_settings()
    names = FLAGS.presets or (["mnist_vae", "mnist_crvae"] if FLAGS.smoke else TABLE1_ORDER)
    overrides = parse_overrides(FLAGS.set)
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
              f"k={settings.num_samples} on {len(valid_images)} validation images")
        results.append(run_preset(name, train_images, valid_images, settings, FLAGS.output_dir,
                                  overrides))
        write_tables(FLAGS.output_dir, results, settings, show=False)
    write_tables(FLAGS.output_dir, results, settings)


if __name__ == "__main__":
    app.run(main)
