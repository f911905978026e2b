"""The papers' hyperparameters per dataset and model, as data, and `from_preset` to build them.

One module per family, each registering its presets and the builder of their models with
`core.register`:

- `mnist`: the crVAE paper's MNIST Table 1 (VAE, cVAE, crVAE and ablations, crIWAE) and the quick start.
- `image64_gan`: the 64x64 VAE-GAN / crVAE-GAN of the crVAE supplement (Birds, CelebA, LSUN).
- `two_stage`: the Two-Stage VAE (Dai & Wipf 2019) on MNIST and CelebA.
- `hierarchical`: Burda et al.'s MLP VAE / IWAE (1 and 2 stochastic layers) and the 2-layer crVAE / VAE.
- `gans`: the lecture's DCGAN, WGAN, WGAN-GP and InfoGAN (MNIST) and DCGAN (CelebA).
- `stylegan`: StyleGAN2 on MNIST and on 32x32 / 64x64 CelebA faces.
- `disentangling`: VAE, beta-VAE, controlled-capacity VAE and FactorVAE on the procedural sprites.
- `flows`: NICE, RealNVP and Glow on dequantized MNIST grey levels (the `likelihood` job).
- `super_resolution` (alias `stage2`): the Stage2 super-resolution GANs (StackGAN Stage-II) on the 64x64 GAN presets.
- `pixelcnn`: PixelCNN and Gated PixelCNN on binarized / grey MNIST (likelihood job).
- `vq_vae`: the VQ-VAE with a Gated PixelCNN prior on MNIST and the 64x64 faces (vq_vae job).
- `vlae`: the Variational Lossy Autoencoder (a VAE with a small-receptive-field PixelCNN decoder; vae job).

`core` holds the machinery: `TrainingConfig`, `Preset`, overrides (`--set`), optimizers and
`from_preset`. A new family is a module here that calls `register` and an import line below.
Nothing here imports Keras or TensorFlow at module level (`crvae` checks its flags first).
"""

from keras_crvae.presets.core import (  # noqa: F401
    GAN_BUILDERS, JOB_OF_BUILDER, LR_SCHEDULES, PRESETS, RECURRENT_VARIABLE_PATTERNS, Preset,
    SettingError, TrainingConfig, build_networks, check_override, check_shapes, from_preset,
    gan_batch_multiple, get_preset,
    initialize_from_data, is_digit_gan, is_gan_preset, iwae_learning_rate_schedule, job_name,
    list_presets, make_discriminator_optimizer, make_optimizer, parse_overrides, preset_for_run,
    register, valid_keys)

_valid_keys = valid_keys  # the old private name (`crvae presets --json` used it)
# The families register their presets on import; the order is the order of `crvae presets`' sources.
from keras_crvae.presets import mnist, image64_gan, two_stage, hierarchical, gans  # noqa: E402,F401
from keras_crvae.presets import stylegan  # noqa: E402,F401
from keras_crvae.presets import disentangling  # noqa: E402,F401
from keras_crvae.presets import super_resolution  # noqa: E402,F401
from keras_crvae.presets import stage2  # noqa: E402,F401  (alias of super_resolution)
from keras_crvae.presets import flows  # noqa: E402,F401
from keras_crvae.presets import pixelcnn, vlae, vq_vae  # noqa: E402,F401
from keras_crvae.presets.hierarchical import (  # noqa: E402,F401
    HIERARCHICAL_BUILDERS, build_hierarchical_from_preset)
from keras_crvae.presets.two_stage import (  # noqa: E402,F401
    TWO_STAGE_PRESETS, TwoStagePreset, build_two_stage_from_preset)
