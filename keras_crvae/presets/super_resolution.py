"""Stage2 super-resolution presets on top of the 64x64 VAE-GAN / crVAE-GAN (crVAE supplement sections
C.2-C.4 and D; StackGAN Stage-II, `stageII/model.py` and `stageII/cfg/birds.yml` of GitHub
hanzhanggit/StackGAN).

- Sizes: 64 -> 128 (Birds, CelebA; the paper's figures), 64 -> 224 (LSUN). `input_size` /
  `output_size` are settings: `--set input_size=32 --set output_size=64` is the 32 -> 64 instance.
- Generator: StackGAN's (`gf_dim` 128, 4 residual blocks, nearest-neighbour up-sampling) for Birds
  (C.2) and LSUN (C.4 says only that "more modifications" were made; they are not published, so we
  keep StackGAN's); CelebA crVAE-GAN up-samples with 4x4 stride-2 transposed convolutions, CelebA
  VAE-GAN down-samples once (64 -> 32) (C.3). Discriminator: StackGAN's Stage-II (`df_dim` 64).
- Objective: adversarial terms on prior and posterior decodes of the frozen Stage1 model, plus
  gamma * perceptual loss: gamma = 1 (Birds, CelebA) and 10 (LSUN) (section D). f: VGG16 relu2_2
  (`block2_conv2`) where the paper uses VGG11 (not in keras.applications), ResNet50
  (`conv2_block3_out`) for LSUN as the paper (see `networks.perceptual`).
- Optimisation: Adam at LR 2e-4 for both networks (section D, "for all Stage2 networks"), betas
  0.9/0.999, eps 1e-8, the discriminator skipped above 90% accuracy as in Stage1 (section D);
  batch 64, LR halved every 100 epochs (StackGAN's `LR_DECAY_EPOCH`); 150 epochs (not given by
  either paper; Stage1's).
- Stage1: `stage1_model` is the path of a trained Stage1 `.keras` file (loaded without its
  optimizers, frozen); left None, an untrained Stage1 of `stage1_preset` is built at
  `stage1_base_channels` / `stage1_discriminator_channels` (tests, shapes, benchmarks).
- ImageNet weights: `perceptual_weights="imagenet"` downloads them through keras.applications on a
  machine with network access; a path loads a local copy; "none" leaves the network random.

No Keras import at module level (see `keras_crvae.presets`). This module was `presets/stage2.py`
(renamed in issue 27); `keras_crvae.presets.stage2` is an alias, and the presets keep their names
(`*_stage2`) and their builder key ("stage2").
"""

from keras_crvae.presets.core import (Preset, TrainingConfig, make_discriminator_optimizer,
                                      make_optimizer, register)

_STAGE2_SOURCE = ("supplement sections C.2-C.4, D (Stage2 Objective, LR 2e-4); StackGAN "
                  "stageII/model.py, stageII/cfg/birds.yml")
# (dataset, stage1 model) -> (output size, downsamplings, upsampling, perceptual net, gamma)
_STAGE2_TABLE = {
    ("birds", "vae_gan"): (128, 2, "nearest", "vgg16", 1.0),
    ("birds", "crvae_gan"): (128, 2, "nearest", "vgg16", 1.0),
    ("celeba", "vae_gan"): (128, 1, "nearest", "vgg16", 1.0),
    ("celeba", "crvae_gan"): (128, 2, "deconv", "vgg16", 1.0),
    ("lsun", "vae_gan"): (224, 2, "nearest", "resnet50", 10.0),
    ("lsun", "crvae_gan"): (224, 2, "nearest", "resnet50", 10.0),
}
NONE_TEXT = ("none", "None", "")


def _stage2_presets():
    found = []
    for (dataset, stage1), (size, downsamplings, upsampling, perceptual, gamma) in \
            _STAGE2_TABLE.items():
        network = {
            "builder": "stage2",
            "stage1_preset": f"{dataset}_{stage1}",
            "stage1_model": None,
            "stage1_base_channels": 32,
            "stage1_discriminator_channels": 64,
            "input_size": 64,
            "output_size": size,
            "generator_channels": 128,
            "residual_blocks": 4,
            "downsamplings": downsamplings,
            "upsampling": upsampling,
            "discriminator_channels": 64,
            "perceptual_network": perceptual,
            "perceptual_layer": "",
            "perceptual_weights": "imagenet",
        }
        variant = {"nearest": "nearest-neighbour up-sampling", "deconv": "deconv up-sampling"}
        found.append(Preset(
            f"{dataset}_{stage1}_stage2",
            f"Stage2 64->{size} on {dataset} {stage1} (StackGAN-II, {variant[upsampling]}, "
            f"{downsamplings} down-sampling(s), {perceptual} perceptual loss x{gamma:g}).",
            _STAGE2_SOURCE, network,
            {"perceptual_weight": gamma, "generator_loss": "non_saturating"},
            TrainingConfig(learning_rate=2e-4, batch_size=64, epochs=150,
                           lr_decay_every_epochs=100),
        ))
    return found


def _text_or_none(value):
    return None if value is None or value in NONE_TEXT else value


def build_stage1(network, seed=None):
    """The frozen Stage1 of a Stage2 `network` dict: `stage1_model` loaded (without optimizers), or an
    untrained model of `stage1_preset` at `stage1_base_channels` / `stage1_discriminator_channels`."""
    import keras

    from keras_crvae.presets.core import from_preset

    path = _text_or_none(network["stage1_model"])
    if path is not None:
        import os

        path = os.path.expanduser(path)
        if not os.path.isfile(path):
            raise ValueError(f"`stage1_model`={path!r}: no such file; expected a trained Stage1 "
                             ".keras model (VAEGAN / CRVAEGAN).")
        import keras_crvae.models  # noqa: F401 - registers the classes for loading

        return keras.saving.load_model(path, compile=False)
    return from_preset(network["stage1_preset"], compile=False, seed=seed,
                       base_channels=network["stage1_base_channels"],
                       discriminator_channels=network["stage1_discriminator_channels"])


def build_stage2_networks(network):
    """(generator, discriminator, perceptual network or None) of a Stage2 `network` dict."""
    from keras_crvae.networks.perceptual import build_perceptual_network
    from keras_crvae.networks.super_resolution import build_stage2_discriminator, build_stage2_generator

    generator = build_stage2_generator(
        network["input_size"], network["output_size"], base_channels=network["generator_channels"],
        residual_blocks=network["residual_blocks"], downsamplings=network["downsamplings"],
        upsampling=network["upsampling"])
    discriminator = build_stage2_discriminator(network["output_size"],
                                               base_channels=network["discriminator_channels"])
    perceptual = None
    if _text_or_none(network["perceptual_network"]) is not None:
        perceptual = build_perceptual_network(
            network["perceptual_network"], layer=_text_or_none(network["perceptual_layer"]),
            image_size=network["output_size"],
            weights=_text_or_none(network["perceptual_weights"]))
    return generator, discriminator, perceptual


def _build_model(preset, steps_per_epoch, compile, seed):
    """`Stage2` on the preset's Stage1, compiled with Adam (G) and `ThresholdedAdam` (D)."""
    from keras_crvae.models.super_resolution import Stage2

    network = dict(preset.network)
    stage1 = build_stage1(network, seed=seed)
    if preset.model["perceptual_weight"] == 0:
        network["perceptual_network"] = None  # no feature network to build (or download)
    generator, discriminator, perceptual = build_stage2_networks(network)
    model = Stage2(stage1, generator, discriminator, perceptual, seed=seed, name=preset.name,
                   **preset.model)
    if compile:
        model.compile(make_optimizer(preset.training, steps_per_epoch),
                      make_discriminator_optimizer(preset.training, steps_per_epoch))
    return model


def _build_networks(network):
    return build_stage2_networks(network)


register(_stage2_presets(), "stage2", _build_model, _build_networks, gan=True)
