"""The 64x64 VAE-GAN / crVAE-GAN presets for Birds, CelebA and LSUN (crVAE supplement section D;
README.md and opts.lua of GitHub WendyShang/crVAE).

Learning rates, alpha / alpha1 / alpha2, beta and kappa are the supplement's (section D, "Initial
Learning Rate", "alpha and beta", "MI Objectives"). The rest follows the reference's published Birds
command lines (`th main.lua ... -eps 1e-6 -mom 0.9 -step 60`, i.e. Keras BatchNorm momentum 0.1,
LR halved every 60 epochs) and `opts.lua` defaults (batch 128, 150 epochs, `-baseChannels 32`,
`-nf 64`, T=8, recurrent parts at LR/T with gradients clipped to 5). The README's Birds VAE-GAN
line uses beta=0.05 where the supplement says 0.0125; we take the supplement's value.
"""

from keras_crvae.presets.core import (Preset, TrainingConfig, make_discriminator_optimizer,
                                      make_optimizer, register)

_GAN_SUPPLEMENT = {
    # dataset: (VAE-GAN LR, alpha, beta), (crVAE-GAN LR, alpha1, alpha2, beta, kappa)
    "birds": ((3e-4, 2e-4, 0.0125), (3e-4, 3e-4, 2e-4, 0.0125, 0.02)),
    "celeba": ((3e-3, 3e-4, 0.01), (1e-3, 3e-4, 2e-4, 0.01, 0.01)),
    "lsun": ((3e-4, 2e-4, 0.025), (1e-4, 3e-4, 2e-4, 0.0125, 0.01)),
}
_GAN_SOURCE = ("supplement section D; WendyShang/crVAE README.md `th main.lua ... -latentType {}`, "
               "models/allconv_{}.lua, opts.lua")


def _image64_network(latent, base_channels=32, discriminator_channels=64):
    return {
        "builder": "image64",
        "encoder_latent": latent,
        "decoder_latent": latent,
        "base_channels": base_channels,
        "latent_channels": 64,
        "time_steps": 8,
        "lstm_layers": 2,
        "bn_epsilon": 1e-6,
        "bn_momentum": 0.1,
        "discriminator_channels": discriminator_channels,
        "spectral_norm": True,
        "dropout_rate": 0.5,
        "minibatch_kernels": 100,
        # The mean, not the reference's sum, of the minibatch features: with the sum the
        # discriminator stays at chance (`MinibatchDiscrimination(average=True)`; docs/faces.md).
        "minibatch_average": True,
        # The reference's max-pools; `--set discriminator_pooling=average` (docs/faces.md).
        "discriminator_pooling": "max",
        # The reference's deconvs; `--set decoder_upsampling=nearest` (docs/faces.md).
        "decoder_upsampling": "deconv",
    }


# The adversarial objective and the improved techniques (`keras_crvae.losses.adversarial`), settable
# with `--set adversarial_loss=wgan_gp --set critic_steps=5`; the defaults are the paper's objective.
ADVERSARIAL_DEFAULTS = {"adversarial_loss": "bce", "critic_steps": 1, "clip_value": 0.01,
                        "gradient_penalty_weight": 10.0, "label_smoothing": 0.0,
                        "feature_matching": 0.0, "historical_averaging": 0.0}


def _gan_presets():
    found = []
    for dataset, (vae_gan, crvae_gan) in _GAN_SUPPLEMENT.items():
        learning_rate, alpha, beta = vae_gan
        found.append(Preset(
            f"{dataset}_vae_gan", f"64x64 VAE-GAN on {dataset} (dense 4x4x64 latent).",
            _GAN_SOURCE.format("baseline", "baseline"), _image64_network("dense"),
            {"kl_weight": alpha, "adversarial_weight": beta, "mi_weight": 0.0,
             **ADVERSARIAL_DEFAULTS},
            TrainingConfig(learning_rate=learning_rate, epochs=150, lr_decay_every_epochs=60),
        ))
        learning_rate, alpha1, alpha2, beta, kappa = crvae_gan
        found.append(Preset(
            f"{dataset}_crvae_gan",
            f"64x64 crVAE-GAN on {dataset} (channel-recurrent latent, T=8, MI loss on u).",
            _GAN_SOURCE.format("lstm", "lstm"), _image64_network("recurrent"),
            {"kl_weight": [alpha1] * 3 + [alpha2] * 5, "adversarial_weight": beta,
             "mi_weight": kappa, **ADVERSARIAL_DEFAULTS},
            TrainingConfig(learning_rate=learning_rate, epochs=150, lr_decay_every_epochs=60,
                           recurrent_lr_multiplier=1.0 / 8),
        ))
    return found


def _build_networks(network):
    """(encoder, decoder, discriminator) of an "image64" `network` dict."""
    from keras_crvae import networks

    config = dict(network)
    latent = config["encoder_latent"]
    shared = {key: config[key] for key in ("base_channels", "latent_channels", "time_steps",
                                           "lstm_layers", "bn_epsilon", "bn_momentum")}
    discriminator = networks.build_image64_discriminator(
        base_channels=config["discriminator_channels"],
        latent_channels=config["latent_channels"] if latent == "recurrent" else None,
        spectral_norm=config["spectral_norm"], dropout_rate=config["dropout_rate"],
        minibatch_kernels=config["minibatch_kernels"],
        minibatch_average=config.get("minibatch_average", False),
        pooling=config["discriminator_pooling"], bn_epsilon=config["bn_epsilon"],
        bn_momentum=config["bn_momentum"])
    return (networks.build_image64_encoder(latent, **shared),
            networks.build_image64_decoder(
                latent, upsampling=config["decoder_upsampling"], **shared),
            discriminator)


def _build_model(preset, steps_per_epoch, compile, seed):
    """`VAEGAN` (dense latent) or `CRVAEGAN` (channel-recurrent latent), compiled with a generator
    `MultiplierAdam` and a discriminator `ThresholdedAdam`."""
    from keras_crvae.models import CRVAEGAN, VAEGAN

    encoder, decoder, discriminator = _build_networks(preset.network)
    cls = CRVAEGAN if preset.network["encoder_latent"] == "recurrent" else VAEGAN
    model = cls(encoder, decoder, discriminator, seed=seed, name=preset.name, **preset.model)
    if compile:
        model.compile(make_optimizer(preset.training, steps_per_epoch),
                      make_discriminator_optimizer(preset.training, steps_per_epoch))
    return model


register(_gan_presets(), "image64", _build_model, _build_networks, gan=True, job="gan")
