"""The `crvae` command: `crvae train | evaluate | sample | presets` (absl flags).

    crvae train                                   # quick start on the embedded MNIST subset
    crvae train --preset=mnist_crvae --data=../shared/data/mnist.npz:x_train --epochs=200
    crvae train --preset=celeba_crvae_gan --npz=faces.npz --epochs=2 --set base_channels=8
    crvae train --preset=mnist_two_stage --epochs=20 --stage2_epochs=40   # both stages
    crvae train --strategy=mirrored               # all local GPUs (TF_CONFIG: --strategy=multi_worker)
    crvae evaluate --model=crvae_run/model.keras --data=embedded:test --num_samples=1000
    crvae sample --model=crvae_run/model.keras --num_images=64 --output=samples.png
    crvae presets
    crvae export --model=crvae_run/model.keras --output=serving/mnist_crvae --version=1
"""

import os
import sys

from absl import app, flags

USAGE = (
    "usage: crvae {train,evaluate,sample,presets,export} [--flags]\n"
    "  train     train a preset and write model.keras, samples.png, reconstructions.png, metrics.json\n"
    "  evaluate  ELBO, importance-sampled NLL and active units of a saved model\n"
    "  sample    write a PNG grid of prior samples of a saved model\n"
    "  presets   list the presets\n"
    "  export    write a TF Serving SavedModel into OUTPUT/VERSION/\n"
    "Run `crvae COMMAND --helpfull` for the flags."
)

FLAGS = flags.FLAGS
flags.DEFINE_string("preset", "mnist_crvae_quickstart", "train: preset name (see `crvae presets`).")
flags.DEFINE_string(
    "data", None,
    "Images: 'embedded' / 'embedded:test' (the packaged MNIST subset), 'PATH.npz' or 'PATH.npz:KEY', "
    "or 'tfds:mnist' / 'tfds:binarized_mnist' (prepared in --data_dir). Default: embedded training "
    "images for train, embedded:test for evaluate.")
flags.DEFINE_string("eval_data", "embedded:test", "train: images evaluated after training.")
flags.DEFINE_string("data_dir", None, "TFDS data directory for --data=tfds:NAME.")
flags.DEFINE_string("output_dir", "crvae_run", "train: where the artifacts are written.")
flags.DEFINE_integer("epochs", None, "train: epochs (default: the preset's).")
flags.DEFINE_integer("batch_size", None, "train: batch size (default: the preset's).")
flags.DEFINE_float("learning_rate", None, "train: initial learning rate (default: the preset's).")
flags.DEFINE_integer("time_steps", None, "train: crVAE time steps T (default: the preset's).")
flags.DEFINE_multi_string("set", [], "train: other preset overrides as KEY=VALUE (repeatable).")
flags.DEFINE_integer("nll_samples", 100, "train: importance samples k for the NLL after training.")
flags.DEFINE_integer("nll_images", 500, "train: evaluation images used for the NLL.")
flags.DEFINE_boolean("fresh", False, "train: discard a previous run's backup instead of resuming.")
flags.DEFINE_string("npz", None, "train (GAN presets): 64x64 colour images, 'PATH.npz' or "
                    "'PATH.npz:KEY' (key 'x' by default).")
flags.DEFINE_string("image_dir", None, "train (GAN presets): a folder of image files.")
flags.DEFINE_string("tfds", None, "train (GAN presets): a TFDS dataset prepared in --data_dir, e.g. "
                    "celeb_a, caltech_birds2011, lsun/bedroom.")
flags.DEFINE_integer("steps_per_epoch", None, "train (GAN presets): steps per epoch (default: one "
                     "pass over the data).")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                  "train: tf.distribute strategy: one device, MirroredStrategy over the local GPUs, "
                  "or MultiWorkerMirroredStrategy configured by the TF_CONFIG environment variable.")
flags.DEFINE_string("model", None, "evaluate/sample: path of a .keras model.")
flags.DEFINE_integer("num_samples", 1000, "evaluate: importance samples k per image.")
flags.DEFINE_integer("num_images", None, "evaluate: images used (default all); sample: grid size.")
flags.DEFINE_enum("binarize", "static", ["static", "none"],
                  "evaluate: binarize grey levels with a fixed draw, or use the values as they are.")
flags.DEFINE_string("output", None, "evaluate: metrics JSON path; sample: PNG path; "
                    "export: the model base directory (the SavedModel goes to OUTPUT/VERSION/).")
flags.DEFINE_integer("version", 1, "export: the SavedModel's version folder (TF Serving).")
flags.DEFINE_boolean("overwrite", False, "export: replace an existing version folder.")
flags.DEFINE_integer("stage2_epochs", None,
                     "train (Two-Stage VAE presets): stage-2 epochs (default: the preset's).")
flags.DEFINE_integer("num_fid_samples", 1000,
                     "train (Two-Stage VAE presets): samples per stage for the MNIST-classifier FID.")


def _overrides():
    from keras_crvae import presets

    overrides = presets.parse_overrides(FLAGS.set)
    for name in ("learning_rate", "time_steps"):
        if FLAGS[name].value is not None:
            overrides[name] = FLAGS[name].value
    return overrides


def _load_images(spec):
    from keras_crvae import data

    if spec.startswith("tfds:"):
        import numpy as np

        name = spec.split(":", 1)[1]
        dataset = data.tfds_mnist(name, split="train", data_dir=FLAGS.data_dir, batch_size=1000,
                                  binarize="none", shuffle=False)
        return np.concatenate([batch.numpy() for batch in dataset])
    return data.load_images(spec)


def _train_gan(strategy):
    from keras_crvae.gan_training import train_gan

    train_gan(FLAGS.preset, npz=FLAGS.npz, image_dir=FLAGS.image_dir, tfds_name=FLAGS.tfds,
              data_dir=FLAGS.data_dir, output_dir=FLAGS.output_dir, epochs=FLAGS.epochs,
              steps_per_epoch=FLAGS.steps_per_epoch, batch_size=FLAGS.batch_size,
              resume=not FLAGS.fresh, strategy=strategy, seed=FLAGS.seed, **_overrides())
    print(f"Done. Artifacts in {os.path.abspath(FLAGS.output_dir)}: model.keras, samples.png, "
          "reconstructions.png, metrics.json, tensorboard/")


def _train():
    from keras_crvae import distribute, presets, training

    strategy = distribute.make_strategy(FLAGS.strategy)  # before any TF op (multi-worker)
    if presets.is_gan_preset(FLAGS.preset):
        return _train_gan(strategy)
    train_images = _load_images(FLAGS.data) if FLAGS.data else None
    if isinstance(presets.get_preset(FLAGS.preset), presets.TwoStagePreset):
        training.train_two_stage(
            FLAGS.preset, train_images=train_images, eval_images=_load_images(FLAGS.eval_data),
            output_dir=FLAGS.output_dir, epochs=FLAGS.epochs, stage2_epochs=FLAGS.stage2_epochs,
            batch_size=FLAGS.batch_size, num_fid_samples=FLAGS.num_fid_samples, seed=FLAGS.seed,
            **_overrides(),
        )
        print(f"Done. Artifacts in {os.path.abspath(FLAGS.output_dir)}: model.keras, samples.png "
              "(stage 2), samples_stage1.png, reconstructions.png, metrics.json")
        return
    training.train(
        FLAGS.preset, train_images=train_images, eval_images=_load_images(FLAGS.eval_data),
        output_dir=FLAGS.output_dir, epochs=FLAGS.epochs, batch_size=FLAGS.batch_size,
        nll_samples=FLAGS.nll_samples, nll_images=FLAGS.nll_images, seed=FLAGS.seed,
        fresh=FLAGS.fresh, strategy=strategy, **_overrides(),
    )
    print(f"Done. Artifacts in {os.path.abspath(FLAGS.output_dir)}: model.keras, samples.png, "
          "reconstructions.png, metrics.json")


def _require_model():
    if not FLAGS.model:
        raise ValueError("--model is required: the path of a .keras file.")
    from keras_crvae import training

    return training.load_model(FLAGS.model)


def _evaluate():
    from keras_crvae import data, training
    from keras_crvae.io import write_json

    model = _require_model()
    images = _load_images(FLAGS.data or "embedded:test")
    if FLAGS.num_images is not None:
        if FLAGS.num_images < 1:
            raise ValueError(f"--num_images must be >= 1, got {FLAGS.num_images}.")
        images = images[:FLAGS.num_images]
    if FLAGS.binarize == "static":
        images = data.static_binarize(images, seed=FLAGS.seed)
    metrics = training.evaluate_model(model, images, nll_samples=FLAGS.num_samples,
                                      seed=FLAGS.seed)
    metrics.update({"model": FLAGS.model, "data": FLAGS.data or "embedded:test"})
    output = FLAGS.output or os.path.join(os.path.dirname(os.path.abspath(FLAGS.model)),
                                          "evaluation.json")
    write_json(metrics, output)
    nll, bound = metrics["nll"], metrics["elbo"]
    print(f"NLL  {nll['mean']:.3f} +- {nll['standard_error']:.3f} nats "
          f"(k={nll['num_samples']}, {nll['num_images']} images)")
    print(f"ELBO {bound['mean']:.3f} +- {bound['standard_error']:.3f} nats")
    print(f"Active units {metrics['active_units']['active_units']} / "
          f"{metrics['active_units']['num_latents']}")
    print(f"Written to {output}")


def _sample():
    import keras

    from keras_crvae.io import save_image_grid

    model = _require_model()
    count = FLAGS.num_images or 64
    images = keras.ops.convert_to_numpy(model.sample(count, seed=FLAGS.seed))
    output = FLAGS.output or "samples.png"
    save_image_grid(images, output)
    print(f"Wrote {count} samples to {output}")


def _presets():
    from keras_crvae import presets

    for name in presets.list_presets():
        print(f"{name:26s} {presets.PRESETS[name].description}")


def _export():
    from keras_crvae.export import export_saved_model

    if not FLAGS.output:
        raise ValueError("--output is required: the model base directory, e.g. serving/mnist_crvae.")
    model = _require_model()
    directory = export_saved_model(model, FLAGS.output, version=FLAGS.version,
                                   overwrite=FLAGS.overwrite)
    print(f"Wrote the SavedModel to {directory} (signatures: serving_default, sample, decode, "
          "encode, reconstruct)")


COMMANDS = {"train": _train, "evaluate": _evaluate, "sample": _sample, "presets": _presets,
            "export": _export}


def main(argv=None):
    """Entry point of the `crvae` console script."""
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] not in COMMANDS:
        print(USAGE, file=sys.stderr)
        return 2 if len(argv) < 2 or argv[1] not in ("-h", "--help") else 0
    command = argv[1]

    def run(_):
        try:
            COMMANDS[command]()
        except (ValueError, KeyError, FileNotFoundError, FloatingPointError) as error:
            print(f"crvae {command}: error: {error}", file=sys.stderr)
            sys.exit(2)

    app.run(run, argv=[f"{argv[0]} {command}"] + argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
