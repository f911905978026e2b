"""The Two-Stage VAE MNIST run of the issue-5 note: gamma falling, the latent spectra of the two stages,
and the FID of stage-1 vs stage-2 samples with the MNIST-classifier features.

    python tools/studies/two_stage_mnist_report.py --phase=train --output_dir=runs/two_stage_mnist
    python tools/studies/two_stage_mnist_report.py --phase=evaluate --output_dir=... \\
        --card_dir=saved_models/two_stage_mnist --samples_npz=runs/two_stage_mnist_samples.npz

`train` fits the `mnist_two_stage` preset (InfoGAN networks, batch 100, weight decay 5e-4) on the first
`--num_train` images of `shared/data/mnist.npz` for `--epochs` / `--stage2_epochs` epochs at
`--learning_rate` (both stages), recording gamma every `--gamma_every` batches, and saves
`model.keras` and `train.json`. `evaluate` draws `--num_samples` images per stage, writes them (uint8)
with the same number of real test images to `--samples_npz`, and writes `report.json`,
`samples_stage{1,2}.png` and (when matplotlib is installed) `spectra.png`,
`encoder_variance_histogram.png` and `gamma.png` to `--card_dir`.
"""

import json
import os
import pathlib
import platform
import sys
import time

import keras
import numpy as np
from absl import app, flags

ROOT = pathlib.Path(__file__).resolve().parents[2]
MNIST = ROOT.parent / "shared" / "data" / "mnist.npz"

FLAGS = flags.FLAGS
flags.DEFINE_enum("phase", "train", ["train", "restage2", "evaluate"],
                  "train both stages; restage2: recalibrate stage-1 BatchNorm statistics and train a "
                  "fresh stage 2 on `model.keras`, saving `--model_name`; evaluate `--model_name`.")
flags.DEFINE_string("model_name", "model.keras", "Model file in --output_dir used by evaluate.")
flags.DEFINE_string("output_dir", "/tmp/two_stage_mnist", "Model and training logs.")
flags.DEFINE_string("card_dir", "saved_models/two_stage_mnist", "Report JSON and plots.")
flags.DEFINE_string("samples_npz", None, "Where the uint8 samples go (evaluate).")
flags.DEFINE_bool("samples_reference", True,
                  "Also store the test images in --samples_npz (`reference`); --nosamples_reference "
                  "keeps the file small (a device run, whose files must stay under 16 MiB) and "
                  "`fid_npz.py --reference=.../mnist.npz:x_test` reads them instead.")
flags.DEFINE_string("data", str(MNIST), "mnist.npz path.")
flags.DEFINE_integer("num_train", 20000, "Training images (first N of x_train).")
flags.DEFINE_integer("epochs", 3, "Stage-1 epochs.")
flags.DEFINE_integer("stage2_epochs", 6, "Stage-2 epochs.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam LR of both stages (paper 1e-4 over 400 epochs).")
flags.DEFINE_integer("gamma_every", 20, "Record gamma every this many batches.")
flags.DEFINE_integer("num_samples", 10000, "Samples per stage for FID and the npz (evaluate).")
flags.DEFINE_integer("seed", 0, "Random seed.")


def _train():
    from keras_crvae import callbacks, presets, training

    data = np.load(FLAGS.data)
    images = data["x_train"][:FLAGS.num_train, ..., None].astype("float32") / 255.0
    keras.utils.set_random_seed(FLAGS.seed)
    model = presets.from_preset("mnist_two_stage", steps_per_epoch=len(images) // 100,
                                seed=FLAGS.seed, learning_rate=FLAGS.learning_rate,
                                stage2_learning_rate=FLAGS.learning_rate)
    gamma_x = callbacks.GammaHistory(every_batches=FLAGS.gamma_every)
    gamma_z = callbacks.GammaHistory(every_batches=FLAGS.gamma_every)

    def progress(history, label):
        def log(batch, logs):
            if history.batches and history.batches[-1][0] == history._step and batch % 4 == 0:
                print(f"{label} step {history._step}: gamma {history.batches[-1][1]:.4f} "
                      f"loss {float(logs['loss']):.1f} ({time.strftime('%H:%M:%S')})", flush=True)
        return keras.callbacks.LambdaCallback(on_train_batch_end=log)

    run = training.fit_two_stage(model, images, FLAGS.epochs, FLAGS.stage2_epochs, batch_size=100,
                                 seed=FLAGS.seed,
                                 stage1_callbacks=[gamma_x, progress(gamma_x, "stage1")],
                                 stage2_callbacks=[gamma_z, progress(gamma_z, "stage2")],
                                 verbose=2)
    training.save_model(model, os.path.join(FLAGS.output_dir, "model.keras"))
    run.update({
        "gamma_x_batches": gamma_x.batches, "gamma_z_batches": gamma_z.batches,
        "num_train": len(images), "epochs": FLAGS.epochs, "stage2_epochs": FLAGS.stage2_epochs,
        "learning_rate": FLAGS.learning_rate, "batch_size": 100, "weight_decay": 5e-4,
        "command": " ".join(sys.argv), "machine": f"{os.cpu_count()}-core CPU, {platform.machine()}",
        "backend": keras.backend.backend(),
    })
    from keras_crvae.io import write_json
    write_json(run, os.path.join(FLAGS.output_dir, "train.json"))
    print(json.dumps({k: run[k] for k in ("gamma_x", "gamma_z", "stage1_seconds",
                                          "stage2_seconds")}, indent=1))


def _restage2():
    from keras_crvae import callbacks, presets, training
    from keras_crvae.io import write_json
    from keras_crvae.models import GammaVAE, TwoStageVAE

    model = training.load_model(os.path.join(FLAGS.output_dir, "model.keras"))
    data = np.load(FLAGS.data)
    images = data["x_train"][:FLAGS.num_train, ..., None].astype("float32") / 255.0
    count = model.stage1.recalibrate_batch_norm(images)
    keras.utils.set_random_seed(FLAGS.seed + 1)
    stage2 = GammaVAE.from_config(model.stage2.get_config())  # fresh weights
    model = TwoStageVAE(model.stage1, stage2, name=model.name)
    preset = presets.get_preset("mnist_two_stage", stage2_learning_rate=FLAGS.learning_rate)
    stage2.compile(optimizer=presets.make_optimizer(preset.stage2_training, len(images) // 100))
    gamma_z = callbacks.GammaHistory(every_batches=FLAGS.gamma_every)
    start = time.time()
    history = stage2.fit(model.stage2_data(images, batch_size=100, seed=FLAGS.seed),
                         epochs=FLAGS.stage2_epochs, callbacks=[gamma_z], verbose=2)
    training.save_model(model, os.path.join(FLAGS.output_dir, FLAGS.model_name))
    with open(os.path.join(FLAGS.output_dir, "train.json")) as handle:
        run = json.load(handle)
    run.update({"batch_norm_recalibrated_layers": count, "gamma_z": gamma_z.epochs,
                "gamma_z_batches": gamma_z.batches, "stage2_seconds": round(time.time() - start, 2),
                "stage2_history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
                "restage2_command": " ".join(sys.argv)})
    write_json(run, os.path.join(FLAGS.output_dir, "train_" + FLAGS.model_name.replace(".keras", ".json")))
    print(json.dumps({"gamma_z": gamma_z.epochs}, indent=1))


def _evaluate():
    from keras_crvae import training
    from keras_crvae.evaluation import two_stage_diagnostics as diagnostics
    from keras_crvae.io import atomic_path, write_json

    model = training.load_model(os.path.join(FLAGS.output_dir, FLAGS.model_name))
    data = np.load(FLAGS.data)
    test = data["x_test"][:FLAGS.num_samples, ..., None].astype("float32") / 255.0
    start = time.time()
    report = diagnostics.two_stage_report(model, test, num_fid_samples=FLAGS.num_samples,
                                          seed=FLAGS.seed, plot_dir=FLAGS.card_dir,
                                          return_samples=True)
    samples = report.pop("samples", None)
    if samples is not None:
        from keras_crvae.io import save_image_grid

        for name, values in samples.items():
            save_image_grid(values[:64], os.path.join(FLAGS.card_dir, f"samples_{name}.png"))
    if FLAGS.samples_npz and samples is not None:
        with atomic_path(FLAGS.samples_npz) as temporary:
            arrays = {"stage1": diagnostics.to_uint8(samples["stage1"]),
                      "stage2": diagnostics.to_uint8(samples["stage2"])}
            if FLAGS.samples_reference:
                arrays["reference"] = data["x_test"][:FLAGS.num_samples, ..., None]
            np.savez_compressed(temporary, **arrays)
    report["evaluate_seconds"] = round(time.time() - start, 1)
    train_info = os.path.join(FLAGS.output_dir, "train.json")
    if FLAGS.model_name != "model.keras":
        train_info = os.path.join(FLAGS.output_dir,
                                  "train_" + FLAGS.model_name.replace(".keras", ".json"))
    if os.path.exists(train_info):
        with open(train_info) as handle:
            report["training"] = json.load(handle)
        if diagnostics.matplotlib_available():
            diagnostics.plot_gamma(
                {"stage 1 gamma_x": report["training"]["gamma_x_batches"],
                 "stage 2 gamma_z": report["training"]["gamma_z_batches"]},
                os.path.join(FLAGS.card_dir, "gamma.png"))
    write_json(report, os.path.join(FLAGS.card_dir, "report.json"))
    print(json.dumps({k: v for k, v in report.items() if k != "training"}, indent=1, default=str))


def main(argv):
    del argv
    {"train": _train, "restage2": _restage2, "evaluate": _evaluate}[FLAGS.phase]()


if __name__ == "__main__":
    app.run(main)
