"""Train a 64x64 crVAE-GAN or VAE-GAN (or DCGAN, CelebA) on CelebA faces (or Birds / LSUN) with `model.fit`.

A short literate script over `keras_crvae.gan_training.train_gan`. Pick one image source:

    # CelebA prepared by TFDS (`tfds build celeb_a --data_dir=~/tensorflow_datasets`; no download here)
    python examples/train_celeba.py --data_dir=~/tensorflow_datasets --model=crvae_gan
    # a folder of face images (jpg/png; corrupt files are reported and skipped)
    python examples/train_celeba.py --image_dir=/data/celeba/img_align_celeba
    # an npz of uint8 (N, H, W, 3) images, e.g. the 64x64 face subset used in our tests
    python examples/train_celeba.py --npz=../shared/data/celeba64_subset.npz --epochs=2 \
        --steps_per_epoch=10 --batch_size=16 --base_channels=8 --discriminator_channels=16

Stage2 (super-resolution on top of a trained Stage1, crVAE supplement sections C.2-C.4; preset
`{dataset}_{model}_stage2`, 64 -> 128 by default):

    python examples/train_celeba.py --stage=2 --stage1_model=celeba_run/model.keras \
        --data_dir=~/tensorflow_datasets --output_dir=celeba_stage2_run
    # the 32 -> 64 instance on the 64x64 face subset (no ImageNet weights offline: random VGG16)
    python examples/train_celeba.py --stage=2 --model=vae_gan --stage1_model=celeba_run/model.keras \
        --npz=../shared/data/celeba64_subset.npz --set input_size=32 --set output_size=64 \
        --set perceptual_weights=none --base_channels=16 --discriminator_channels=16

Each epoch writes samples/reconstruction grids (PNG and TensorBoard), checkpoints to
`--output_dir/backup` (rerun the same command after an interruption: it resumes where it stopped),
and the run ends with `model.keras` and `metrics.json`. Hyperparameters are the supplement's
(`keras_crvae.presets`, `{dataset}_{model}`); the LR halves every 60 epochs as in the reference.
"""

import json
import os
import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_enum("model", "crvae_gan", ["crvae_gan", "vae_gan", "dcgan"],
                  "Which model (dcgan: celeba only, the lecture's DCGAN).")
flags.DEFINE_enum("stage", "1", ["1", "2"], "1: the 64x64 VAE-GAN / crVAE-GAN; 2: the Stage2 "
                  "super-resolution GAN on top of --stage1_model.")
flags.DEFINE_string("stage1_model", None, "--stage=2: the trained Stage1 .keras model.")
flags.DEFINE_enum("dataset", "celeba", ["celeba", "birds", "lsun"],
                  "Whose hyperparameters (preset `{dataset}_{model}`) and TFDS dataset to use.")
flags.DEFINE_string("data_dir", None, "TFDS data directory holding the prepared dataset.")
flags.DEFINE_string("image_dir", None, "A folder of image files (searched recursively).")
flags.DEFINE_string("npz", None, "An .npz of images: 'PATH' (key 'x') or 'PATH:KEY'.")
flags.DEFINE_integer("num_images", None, "With --npz: use only its first N images (e.g. 8500: the "
                     "training faces of celeba64_train.npz, whose last 1000 are held out).")
flags.DEFINE_string("output_dir", "celeba_run", "Where checkpoints, grids and the model go.")
flags.DEFINE_integer("epochs", None, "Epochs (default: the preset's 150).")
flags.DEFINE_integer("steps_per_epoch", None, "Steps per epoch (default: one pass over the data).")
flags.DEFINE_integer("batch_size", None, "Global batch size, a multiple of 4 (default: 128).")
flags.DEFINE_integer("base_channels", None, "Encoder/decoder width (default: the reference's 32); "
                     "--stage=2: the generator's (default: StackGAN's 128).")
flags.DEFINE_integer("discriminator_channels", None, "Discriminator width (default: 64).")
flags.DEFINE_float("learning_rate", None, "Initial learning rate (default: the supplement's).")
flags.DEFINE_boolean("resume", True, "Resume a killed run from --output_dir/backup, or continue a "
                     "finished one when --epochs asks for more; --noresume starts over.")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                  "tf.distribute strategy (multi_worker reads TF_CONFIG).")
flags.DEFINE_multi_string("set", [], "Other preset overrides as KEY=VALUE (repeatable).")
flags.DEFINE_integer("seed", 0, "Random seed.")

TFDS_NAMES = {"celeba": "celeb_a", "birds": "caltech_birds2011", "lsun": "lsun/bedroom"}


def main(argv):
    del argv
    from keras_crvae.distribute import make_strategy

    strategy = make_strategy(FLAGS.strategy)  # before any other TF op (multi-worker needs it)
    from keras_crvae.gan_training import train_gan
    from keras_crvae.presets import parse_overrides

    sources = [FLAGS.data_dir, FLAGS.image_dir, FLAGS.npz]
    if sum(source is not None for source in sources) != 1:
        sys.exit("Give exactly one image source: --data_dir (TFDS), --image_dir or --npz.")
    preset = f"{FLAGS.dataset}_{FLAGS.model}" + ("_stage2" if FLAGS.stage == "2" else "")
    if (FLAGS.stage == "2") != (FLAGS.stage1_model is not None):
        sys.exit("--stage=2 needs --stage1_model=PATH.keras (a trained Stage1), and only it does.")
    try:
        overrides = parse_overrides(FLAGS.set, preset=preset)  # typed: "--set x=abc" is refused
        for name in ("base_channels", "discriminator_channels", "learning_rate"):
            if getattr(FLAGS, name) is not None:
                key = "generator_channels" if (name, FLAGS.stage) == ("base_channels", "2") else name
                overrides[key] = getattr(FLAGS, name)
        if FLAGS.stage == "2":
            overrides["stage1_model"] = FLAGS.stage1_model
        npz, arrays, data_spec = FLAGS.npz, None, FLAGS.npz or FLAGS.image_dir or FLAGS.data_dir
        if FLAGS.num_images is not None:
            if FLAGS.npz is None or FLAGS.num_images < 1:
                raise ValueError(f"--num_images={FLAGS.num_images}: expected a positive number "
                                 "of images, with --npz")
            from keras_crvae.io import read_npz_array, split_npz_spec

            path, key = split_npz_spec(FLAGS.npz)
            arrays = read_npz_array(path, key, preferred_keys=("x",))[0][:FLAGS.num_images]
            npz, data_spec = None, f"{FLAGS.npz} (its first {len(arrays)} images)"
        metrics = train_gan(
            preset, npz=npz, arrays=arrays, image_dir=FLAGS.image_dir,
            tfds_name=TFDS_NAMES[FLAGS.dataset] if FLAGS.data_dir else None,
            data_dir=FLAGS.data_dir, output_dir=FLAGS.output_dir, epochs=FLAGS.epochs,
            steps_per_epoch=FLAGS.steps_per_epoch, batch_size=FLAGS.batch_size,
            resume=FLAGS.resume, strategy=strategy, seed=FLAGS.seed,
            data_spec=data_spec, **overrides)
    except (ValueError, KeyError, FileNotFoundError) as error:  # bad input: one line, status 2
        print(f"train_celeba.py: error: {error}", file=sys.stderr)
        sys.exit(2)
    if "final" in metrics:  # absent when the run was already trained and nothing ran
        print(json.dumps({"final": metrics["final"],
                          "train_images_per_second": metrics["train_images_per_second"]},
                         indent=2))
    grids = "samples.png" + ("" if FLAGS.model == "dcgan" else ", reconstructions.png")
    print(f"Artifacts in {os.path.abspath(FLAGS.output_dir)}: model.keras, {grids}, "
          "metrics.json, tensorboard/")


if __name__ == "__main__":
    app.run(main)
