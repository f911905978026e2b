"""StyleGAN2 presets (job "gan"): MNIST 28x28 (synthesised at 32x32 and centre-cropped inside the
generator) and faces at 32x32 and 64x64 (`celeba64_train.npz`, resized by the job's pipeline).

From the papers (Karras et al. 2019, appendix C; Karras et al. 2020, section 3.1 and appendix B):
an 8-layer mapping network at 1/100 of the learning rate (`layers.MappingNetwork`), style mixing
with probability 0.9, the non-saturating loss with R1 on reals, lazy regularisation every 16
discriminator steps, Adam with beta1 = 0, beta2 = 0.99, lr 0.002 and the lazy-regularisation
correction of StyleGAN2's code: the discriminator's Adam runs at `lr * c` and `beta ** c`, with
`c = k / (k + 1)`, because one of every `k + 1` of its gradient evaluations is a penalty pass.

CPU-sized departures, each a `--set` away from the paper: latent and w of 128 dimensions (the
paper: 512), channels from `base_channels` at the output resolution doubling towards 4x4 up to
`max_channels` (the paper: 512 up to 64x64), batch 32, and the DCGAN discriminator without
normalisation (`networks.build_dcgan_discriminator(norm="none")`: R1 needs a critic that treats
examples independently) instead of StyleGAN2's residual one (`--set discriminator=resnet`:
`networks.build_residual_discriminator`, channels from `discriminator_channels` doubling up to
`max_channels`; the FQ presets then need `--set fq_layer=block1`), and no path-length regularisation
by default (`--set path_length_weight=2` is the paper's). The R1 weight gamma follows the
heuristic of StyleGAN2-ADA's released "auto" configuration, `gamma = 0.0002 * side**2 / batch`
(Karras et al. 2020b), since the papers' gamma = 10 belongs to 1024x1024 FFHQ.

No Keras or TensorFlow import at module level (`crvae` checks its flags first).
"""

from keras_crvae.presets.core import Preset, TrainingConfig, register
from keras_crvae.presets.gans import move_feature_quantization, with_feature_quantization

STYLEGAN_SOURCE = ("Karras et al. 2019 (StyleGAN), appendix C; Karras et al. 2020 (StyleGAN2), "
                   "section 3.1; lecture section 'StyleGAN'")
BATCH_SIZE = 32
LEARNING_RATE = 0.002  # StyleGAN2's Adam, both players
BETA_1, BETA_2 = 0.0, 0.99
DISCRIMINATORS = ("dcgan", "resnet")


def _network(image_shape, base_channels=32, max_channels=128, discriminator_channels=32):
    return {
        "builder": "stylegan",
        "image_shape": list(image_shape),
        "output_size": int(image_shape[0]),  # the GAN job's pipeline resizes colour images to it
        "latent_dim": 128,
        "w_dim": 128,
        "mapping_layers": 8,
        "base_channels": base_channels,
        "max_channels": max_channels,
        "style": "modulated",
        "noise_inputs": True,
        "discriminator_channels": discriminator_channels,
        # "dcgan": the DCGAN critic without normalisation; "resnet": StyleGAN2's residual one
        # (`networks.build_residual_discriminator`, Karras et al. 2020, Figure 7(c)).
        "discriminator": "dcgan",
    }


def _model(side, batch_size=BATCH_SIZE):
    return {
        "adversarial_loss": "bce",
        "style_mixing_probability": 0.9,
        "r1_weight": round(0.0002 * side ** 2 / batch_size, 6),
        "r1_interval": 16,
        "w_average_beta": 0.995,
        # Path-length regularisation: off here (a second backward pass through the synthesis
        # network every 4 generator steps); the paper's config F: --set path_length_weight=2.
        "path_length_weight": 0.0,
        "path_length_interval": 4,
        "beta_1": BETA_1,
        "beta_2": BETA_2,
        "generator_learning_rate": LEARNING_RATE,
    }


def _training(epochs):
    return TrainingConfig(learning_rate=LEARNING_RATE, batch_size=BATCH_SIZE, epochs=epochs,
                          lr_decay_every_epochs=0)


STYLEGAN_PRESETS = [
    Preset("mnist_stylegan2", "StyleGAN2 on MNIST (28x28: synthesised at 32x32, centre-cropped).",
           STYLEGAN_SOURCE, _network((28, 28, 1), max_channels=128), _model(32), _training(10)),
    Preset("celeba32_stylegan2", "StyleGAN2 on 32x32 CelebA faces.", STYLEGAN_SOURCE,
           _network((32, 32, 3), max_channels=128), _model(32), _training(30)),
    Preset("celeba_stylegan2", "StyleGAN2 on 64x64 CelebA faces.", STYLEGAN_SOURCE,
           _network((64, 64, 3), base_channels=32, max_channels=256,
                    discriminator_channels=32), _model(64), _training(30)),
]
# FQ-StyleGAN (Zhao et al. 2020): `mnist_stylegan2_fq`, `celeba32_stylegan2_fq`, `celeba_stylegan2_fq`.
STYLEGAN_PRESETS += [with_feature_quantization(preset) for preset in STYLEGAN_PRESETS]

_OPTIMIZER_KEYS = ("beta_1", "beta_2", "generator_learning_rate")


def _build_networks(network):
    """(generator, discriminator) of a "stylegan" `network` dict."""
    from keras_crvae import networks

    image_shape = tuple(network["image_shape"])
    generator = networks.build_style_generator(
        image_shape, int(network["latent_dim"]), int(network["w_dim"]),
        int(network["mapping_layers"]), int(network["base_channels"]),
        int(network["max_channels"]), network["style"], bool(network["noise_inputs"]))
    kind = network.get("discriminator", "dcgan")
    if kind not in DISCRIMINATORS:
        raise ValueError(f"`discriminator`={kind!r}: expected one of {DISCRIMINATORS}.")
    if kind == "resnet":
        discriminator = networks.build_residual_discriminator(
            image_shape, int(network["discriminator_channels"]),
            max(int(network["max_channels"]), int(network["discriminator_channels"])))
    else:
        discriminator = networks.build_dcgan_discriminator(
            image_shape, int(network["discriminator_channels"]), norm="none")
    return generator, discriminator


def make_optimizers(preset):
    """`(generator_optimizer, discriminator_optimizer)`: Adam, the discriminator's corrected for
    lazy regularisation (module docstring)."""
    import keras

    model = preset.model
    interval = int(model["r1_interval"])
    ratio = interval / (interval + 1) if float(model["r1_weight"]) > 0 else 1.0
    generator_optimizer = keras.optimizers.Adam(model["generator_learning_rate"],
                                                beta_1=model["beta_1"], beta_2=model["beta_2"])
    discriminator_optimizer = keras.optimizers.Adam(
        preset.training.learning_rate * ratio, beta_1=model["beta_1"] ** ratio,
        beta_2=model["beta_2"] ** ratio)
    return generator_optimizer, discriminator_optimizer


def _build_model(preset, steps_per_epoch, compile, seed):
    """`StyleGAN`, compiled with the preset's optimizers."""
    from keras_crvae.models import StyleGAN

    generator, discriminator = _build_networks(preset.network)
    options = {k: v for k, v in preset.model.items() if k not in _OPTIMIZER_KEYS}
    move_feature_quantization(options)
    model = StyleGAN(generator, discriminator, seed=seed, name=preset.name, **options)
    if compile:
        model.compile(*make_optimizers(preset))
    return model


register(STYLEGAN_PRESETS, "stylegan", _build_model, _build_networks, gan=True, job="gan")
