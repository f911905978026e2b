"""The disentangling VAEs of the lecture on the procedural sprites (64x64, dSprites' factor grid).

All four presets share the 2D-Shapes networks of Kim & Mnih (2018, appendix Table 1; see
`keras_crvae.networks.sprites`), 10 latents and a Bernoulli decoder, so that they differ only in
their objective; each takes its objective's numbers from its paper:

- `sprites_vae`: the plain VAE (beta = 1), Adam 1e-4, batch 64 (Kim & Mnih's VAE settings).
- `sprites_beta_vae`: beta = 4, the beta Higgins et al. (ICLR 2017) use on dSprites, and the
  best-scoring beta-VAE of Kim & Mnih (2018, Figure 4).
- `sprites_capacity_vae`: controlled capacity (Burgess et al. 2018, appendix A: dSprites), gamma
  = 1000, C from 0 to C_max = 25 nats linearly over 100,000 iterations, Adam 5e-4, batch 64.
  Burgess et al.'s own network (32-channel convolutions, two 256-unit layers) is
  `--set channels=32,32,32,32 --set dense_units=256,256`.
- `sprites_factor_vae`: FactorVAE (Kim & Mnih 2018, section 3 and appendix): gamma = 35 (their best
  2D-Shapes model, Figure 4), discriminator of 6 layers of 1000 units with leaky ReLU
  0.2, VAE Adam(1e-4, 0.9, 0.999), discriminator Adam(1e-4, 0.5, 0.9), batch 64 per half (128
  images per step: one half for the VAE, one for the permuted discriminator samples).

Training length: one epoch is 737,280 images (the grid's size; the job draws fresh sprites every
batch), so 26 epochs at batch 64 are ~300,000 iterations, Kim & Mnih's 3e5.
"""

from keras_crvae.presets.core import Preset, TrainingConfig, make_optimizer, register

SPRITES_EPOCH_IMAGES = 737280


def _network(**extra):
    return {"builder": "sprites", "latent_dim": 10, "channels": [32, 32, 64, 64],
            "dense_units": [128], **extra}


def _training(learning_rate=1e-4, batch_size=64):
    return TrainingConfig(learning_rate=learning_rate, batch_size=batch_size, epochs=26,
                          lr_decay_every_epochs=0, recurrent_gradient_clip=None)


_SUM = {"reconstruction_reduction": "sum"}
DISENTANGLING_PRESETS = [
    Preset("sprites_vae", "VAE (beta=1), Kim & Mnih's 2D-Shapes networks, 10 latents, on the "
           "procedural sprites.", "Kim & Mnih 2018 appendix Table 1 and optimiser",
           _network(), {"kl_weight": 1.0, **_SUM}, _training()),
    Preset("sprites_beta_vae", "beta-VAE, beta=4, on the procedural sprites.",
           "Higgins et al. 2017 (beta=4 on dSprites); Kim & Mnih 2018 Figure 4",
           _network(), {"kl_weight": 4.0, **_SUM}, _training()),
    Preset("sprites_capacity_vae", "beta-VAE with controlled capacity: gamma=1000, C 0->25 nats "
           "over 100,000 steps, on the procedural sprites.",
           "Burgess et al. 2018 appendix A (dSprites)",
           _network(), {"kl_weight": 1000.0, "capacity": 25.0, "capacity_steps": 100000, **_SUM},
           _training(learning_rate=5e-4)),
    Preset("sprites_factor_vae", "FactorVAE, gamma=35, on the procedural sprites.",
           "Kim & Mnih 2018 section 3, appendix (discriminator, optimisers), Figure 4 (gamma=35)",
           _network(discriminator_units=1000, discriminator_layers=5),
           {"tc_weight": 35.0, "kl_weight": 1.0, **_SUM,
            "discriminator_learning_rate": 1e-4, "discriminator_beta_1": 0.5,
            "discriminator_beta_2": 0.9},
           _training(batch_size=128)),
]


def build_sprites_networks(network):
    """`(encoder, decoder)`, plus the TC discriminator for a FactorVAE network dict."""
    from keras_crvae import networks

    def as_ints(value):  # `--set dense_units=256` arrives as one number
        return [int(v) for v in (value if isinstance(value, (list, tuple)) else [value])]

    widths = dict(latent_dim=int(network["latent_dim"]), channels=as_ints(network["channels"]),
                  dense_units=as_ints(network["dense_units"]))
    built = (networks.build_sprites_encoder(**widths), networks.build_sprites_decoder(**widths))
    if "discriminator_units" in network:
        built += (networks.build_tc_discriminator(
            widths["latent_dim"], hidden_units=int(network["discriminator_units"]),
            hidden_layers=int(network["discriminator_layers"])),)
    return built


def build_sprites_from_preset(preset, steps_per_epoch=None, compile=True, seed=None):
    """`VAE` (beta, capacity) or `FactorVAE` of a sprites preset, compiled with the paper's Adams."""
    import keras

    from keras_crvae.models import VAE, FactorVAE

    built = build_sprites_networks(preset.network)
    model_config = dict(preset.model)
    if len(built) == 3:
        discriminator_optimizer = keras.optimizers.Adam(
            model_config.pop("discriminator_learning_rate"),
            beta_1=model_config.pop("discriminator_beta_1"),
            beta_2=model_config.pop("discriminator_beta_2"))
        model = FactorVAE(*built, seed=seed, name=preset.name, **model_config)
        if compile:
            model.compile(optimizer=make_optimizer(preset.training, steps_per_epoch),
                          discriminator_optimizer=discriminator_optimizer)
        return model
    model = VAE(*built, seed=seed, name=preset.name, **model_config)
    if compile:
        model.compile(optimizer=make_optimizer(preset.training, steps_per_epoch))
    return model


register(DISENTANGLING_PRESETS, "sprites", build_sprites_from_preset, build_sprites_networks,
         job="disentangling")
