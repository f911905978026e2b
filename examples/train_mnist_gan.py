"""Train the lecture's GANs on MNIST with `model.fit`: DCGAN, WGAN, WGAN-GP or InfoGAN.

    python examples/train_mnist_gan.py --preset=mnist_wgan_gp --data=../shared/data/mnist.npz \
        --epochs=5 [--set critic_steps=5] [--output_dir=mnist_gan_run]

A short literate script over the library's parts (`crvae train --preset=mnist_dcgan` runs the same
model through the GAN job, with checkpoints, resume and TensorBoard):

1. `keras_crvae.from_preset(preset)` builds the DCGAN networks and a `GAN` (or `InfoGAN`) compiled
   with the paper's optimizers; the objective is a switch (`adversarial_loss`, `critic_steps`, and
   the improved techniques `label_smoothing`, `feature_matching`, `historical_averaging`).
2. `gan_training.digit_dataset` yields batches in [-1, 1]; a WGAN preset's batch of 320 feeds its
   5 critic steps 64 fresh images each.
3. After training: a 10x10 sample grid and, for InfoGAN, a grid varying the categorical code.
"""

import os

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_enum("preset", "mnist_dcgan", ["mnist_dcgan", "mnist_wgan", "mnist_wgan_gp",
                                            "mnist_infogan"], "Which GAN.")
flags.DEFINE_string("data", None, "MNIST npz with x_train (default: the embedded 10,000 digits).")
flags.DEFINE_integer("epochs", 5, "Passes over the training digits.")
flags.DEFINE_string("output_dir", "mnist_gan_run", "Where the model and the grids go.")
flags.DEFINE_multi_string("set", [], "Preset overrides KEY=VALUE, e.g. base_channels=32.")
flags.DEFINE_integer("seed", 0, "Random seed.")


def main(argv):
    del argv
    import keras
    import numpy as np

    import keras_crvae
    from keras_crvae import data, gan_training, presets
    from keras_crvae.io import save_image_grid

    keras.utils.set_random_seed(FLAGS.seed)
    images = data.load_images(FLAGS.data or "embedded")          # (N, 28, 28, 1) in [0, 1]
    overrides = presets.parse_overrides(FLAGS.set, preset=FLAGS.preset)
    batch_size = presets.get_preset(FLAGS.preset, **overrides).training.batch_size
    model = keras_crvae.from_preset(FLAGS.preset, seed=FLAGS.seed, **overrides)
    dataset = gan_training.digit_dataset(images, batch_size, seed=FLAGS.seed)
    model.fit(dataset, epochs=FLAGS.epochs, verbose=2)

    os.makedirs(FLAGS.output_dir, exist_ok=True)
    model.save(os.path.join(FLAGS.output_dir, "model.keras"))
    samples = keras.ops.convert_to_numpy(model.decode(model.prior_latents(100, seed=0)))
    save_image_grid((samples + 1) / 2, os.path.join(FLAGS.output_dir, "samples.png"), columns=10)
    if hasattr(model, "traversal_latents"):  # InfoGAN: rows = noise, columns = c1 = 0..9
        grid = model.decode(model.traversal_latents("categorical", range(10), rows=10))
        save_image_grid((np.asarray(grid) + 1) / 2,
                        os.path.join(FLAGS.output_dir, "traversal_c1.png"), columns=10)
    print(f"Artifacts in {os.path.abspath(FLAGS.output_dir)}: model.keras, samples.png")


if __name__ == "__main__":
    app.run(main)
