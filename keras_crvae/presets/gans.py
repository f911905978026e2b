"""The lecture's standalone GANs: DCGAN, WGAN, WGAN-GP on MNIST, InfoGAN on MNIST, DCGAN on CelebA.

Each preset's numbers are its paper's (the lecture quotes the algorithms' defaults):

- `mnist_dcgan`, `celeba_dcgan`: Radford et al. 2016, section 4 (Adam lr 2e-4, beta1 0.5, batch 128,
  z of 100 dimensions, N(0, 0.02) weights); networks `build_dcgan_generator` / `_discriminator`.
- `mnist_wgan`: Arjovsky et al. 2017, Algorithm 1 (RMSprop lr 5e-5, c = 0.01, m = 64, n_critic = 5).
- `mnist_wgan_gp`: Gulrajani et al. 2017, Algorithm 1 (lambda = 10, n_critic = 5, Adam lr 1e-4,
  betas 0 / 0.9, m = 64) with a LayerNorm critic (their section 4: no BatchNorm in the critic).
- `mnist_infogan`: Chen et al. 2016, appendix C.1 (62 noise dimensions, one 10-way categorical and two
  U(-1, 1) codes, FC 1024 layers in G and D, Q with FC 128; lambda = 1; Adam beta1 0.5, lr 2e-4 for
  D and 1e-3 for G as in the authors' released MNIST script; batch 128).

`batch_size` is the number of real images per generator step: a WGAN preset with `n_critic = 5`
and `m = 64` reads batches of 320 and gives each critic step its own 64 (`models.GAN`).

The optimizer settings sit in the `model` table (`optimizer`, `beta_1`, `beta_2`,
`generator_learning_rate`; `learning_rate` is the discriminator's), so `--set` reaches them and a
resumed run checks them like every other setting.

`*_fq` presets (`mnist_dcgan_fq`, `celeba_dcgan_fq`, and the StyleGAN2 ones in `presets.stylegan`)
add FQ-GAN's feature quantization (Zhao et al. 2020; docs/stylegan.md "Feature quantization"): the
flat `fq_*` keys of the `model` table (`fq_layer`, `fq_num_codes`, `fq_commitment_cost`, `fq_decay`,
each a `--set` away) become `GAN(feature_quantization=...)`. Their values are CPU-sized choices, not
the paper's: the map after the second discriminator block ("lrelu1"), K = 256 codes, beta = 0.25 and
decay 0.99 (VQ-VAE's).

No Keras or TensorFlow import at module level (`crvae` checks its flags first).
"""

from keras_crvae.presets.core import Preset, TrainingConfig, register

OPTIMIZERS = ("adam", "rmsprop")
# The GAN class's options in the `model` table; the rest of that table configures the optimizers.
_OPTIMIZER_KEYS = ("optimizer", "beta_1", "beta_2", "generator_learning_rate")


def _network(image_shape=(28, 28, 1), latent_dim=100, base_channels=64, norm="batch",
             hidden_units=0, categories=0, continuous_codes=0):
    return {
        "builder": "dcgan",
        "image_shape": list(image_shape),
        "latent_dim": latent_dim,  # InfoGAN: the noise z alone; the codes come on top
        "base_channels": base_channels,
        "norm": norm,
        "generator_hidden_units": hidden_units,
        "discriminator_hidden_units": hidden_units,
        "minibatch_kernels": 0,
        "categories": categories,
        "continuous_codes": continuous_codes,
        "synchronized_batch_norm": False,
    }


def _model(adversarial_loss="bce", critic_steps=1, optimizer="adam", beta_1=0.5, beta_2=0.999,
           generator_learning_rate=2e-4, **extra):
    model = {
        "adversarial_loss": adversarial_loss,
        "critic_steps": critic_steps,
        "clip_value": 0.01,
        "gradient_penalty_weight": 10.0,
        "label_smoothing": 0.0,
        "feature_matching": 0.0,
        "historical_averaging": 0.0,
        "optimizer": optimizer,
        "beta_1": beta_1,
        "beta_2": beta_2,
        "generator_learning_rate": generator_learning_rate,
    }
    model.update(extra)
    return model


FQ_DEFAULTS = {"fq_layer": "lrelu1", "fq_num_codes": 256, "fq_commitment_cost": 0.25,
               "fq_decay": 0.99}


def with_feature_quantization(preset, name=None):
    """A copy of `preset` named `<name>_fq` whose model table holds the `fq_*` keys."""
    import copy
    import dataclasses

    return dataclasses.replace(
        preset, name=name or preset.name + "_fq", network=copy.deepcopy(preset.network),
        description=preset.description.rstrip(".") + ", with FQ-GAN feature quantization in D.",
        source=preset.source + "; Zhao et al. 2020 (FQ-GAN)",
        model={**preset.model, **FQ_DEFAULTS})


def move_feature_quantization(options):
    """Replaces the `fq_*` keys of a model-options dict (in place) by `GAN`'s
    `feature_quantization` argument; a dict without them is left as it is."""
    values = {key: options.pop(key) for key in list(FQ_DEFAULTS) if key in options}
    if values:
        options["feature_quantization"] = {
            "layer": values["fq_layer"], "num_codes": int(values["fq_num_codes"]),
            "commitment_cost": float(values["fq_commitment_cost"]),
            "decay": float(values["fq_decay"])}


def _training(learning_rate, batch_size, epochs):
    # No step decay (the GAN papers keep the learning rate constant).
    return TrainingConfig(learning_rate=learning_rate, batch_size=batch_size, epochs=epochs,
                          lr_decay_every_epochs=0)


DCGAN_SOURCE = "Radford et al. 2016 (DCGAN), section 4; lecture section 'DCGAN'"
GAN_PRESETS = [
    Preset("mnist_dcgan", "DCGAN on MNIST (28x28, non-saturating BCE, BatchNorm).", DCGAN_SOURCE,
           _network(), _model(), _training(2e-4, 128, 25)),
    Preset("mnist_wgan", "WGAN with weight clipping on MNIST (DCGAN networks, RMSprop, n_critic 5).",
           "Arjovsky et al. 2017, Algorithm 1; lecture section 'WGAN'", _network(),
           _model("wgan", 5, optimizer="rmsprop", generator_learning_rate=5e-5),
           _training(5e-5, 5 * 64, 100)),
    Preset("mnist_wgan_gp", "WGAN-GP on MNIST (DCGAN generator, LayerNorm critic, n_critic 5).",
           "Gulrajani et al. 2017, Algorithm 1; lecture section 'Wasserstein GAN with Gradient "
           "Penalty'", _network(norm="layer"),
           _model("wgan_gp", 5, beta_1=0.0, beta_2=0.9, generator_learning_rate=1e-4),
           _training(1e-4, 5 * 64, 100)),
    Preset("mnist_infogan", "InfoGAN on MNIST: 62 noise dims, a 10-way categorical and 2 continuous "
           "codes.", "Chen et al. 2016, section 7 and appendix C.1; lecture section 'InfoGAN'",
           _network(latent_dim=62, hidden_units=1024, categories=10, continuous_codes=2),
           _model(generator_learning_rate=1e-3, mi_weight=1.0), _training(2e-4, 128, 25)),
    Preset("celeba_dcgan", "DCGAN on 64x64 CelebA faces.", DCGAN_SOURCE,
           _network(image_shape=(64, 64, 3)), _model(), _training(2e-4, 128, 25)),
]
GAN_PRESETS += [with_feature_quantization(preset) for preset in GAN_PRESETS
                if preset.name in ("mnist_dcgan", "celeba_dcgan")]


def _build_networks(network):
    """(generator, discriminator) of a "dcgan" `network` dict."""
    from keras_crvae import networks

    image_shape = tuple(network["image_shape"])
    codes = int(network["categories"]) + int(network["continuous_codes"])
    sync = bool(network["synchronized_batch_norm"])
    generator = networks.build_dcgan_generator(
        image_shape, int(network["latent_dim"]) + codes, network["base_channels"],
        hidden_units=network["generator_hidden_units"], synchronized_batch_norm=sync)
    discriminator = networks.build_dcgan_discriminator(
        image_shape, network["base_channels"], norm=network["norm"],
        hidden_units=network["discriminator_hidden_units"],
        minibatch_kernels=network["minibatch_kernels"], q_units=codes,
        synchronized_batch_norm=sync)
    return generator, discriminator


def make_optimizers(preset):
    """`(generator_optimizer, discriminator_optimizer)` of a "dcgan" preset."""
    import keras

    model, training = preset.model, preset.training
    kind = model["optimizer"]
    if kind not in OPTIMIZERS:
        raise ValueError(f"`optimizer` must be one of {OPTIMIZERS}, got {kind!r}.")

    def make(learning_rate):
        if kind == "rmsprop":
            return keras.optimizers.RMSprop(learning_rate)
        return keras.optimizers.Adam(learning_rate, beta_1=model["beta_1"], beta_2=model["beta_2"])

    return make(model["generator_learning_rate"]), make(training.learning_rate)


def _build_model(preset, steps_per_epoch, compile, seed):
    """`GAN` (or `InfoGAN` when the network has categories), compiled with the preset's optimizers."""
    from keras_crvae.models import GAN, InfoGAN

    generator, discriminator = _build_networks(preset.network)
    options = {k: v for k, v in preset.model.items() if k not in _OPTIMIZER_KEYS}
    move_feature_quantization(options)
    if preset.network["categories"]:
        model = InfoGAN(generator, discriminator, noise_dim=preset.network["latent_dim"],
                        categories=preset.network["categories"],
                        continuous_codes=preset.network["continuous_codes"], seed=seed,
                        name=preset.name, **options)
    else:
        options.pop("mi_weight", None)
        model = GAN(generator, discriminator, seed=seed, name=preset.name, **options)
    if compile:
        model.compile(*make_optimizers(preset))
    return model


register(GAN_PRESETS, "dcgan", _build_model, _build_networks, gan=True, job="gan")
