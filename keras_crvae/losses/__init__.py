"""Loss terms and log-densities, written with `keras.ops` (every backend).

- `densities`: the log-likelihoods (Bernoulli, fixed-std Gaussian), the Gaussian log-densities, the
  closed-form KL and its block weights (the crVAE's alpha_t), and the element-wise criteria
  (sigmoid cross-entropy, mean squared error) of the VAE family and the VAE-GANs.
- `adversarial`: the adversarial objectives of the GAN-like models ("bce", "wgan", "wgan_gp",
  "hinge"), the improved techniques and the two-player update helpers.

Imports: `keras` only, so both layers (`layers/sampling.py`) and models may use it (layers -> networks
-> models, docs/design.md). `keras_crvae.losses.X` names the `densities` functions, as before the
redesign of issue 27; `keras_crvae.adversarial` is an alias of `keras_crvae.losses.adversarial`.
"""

from keras_crvae.losses import adversarial  # noqa: F401
from keras_crvae.losses.densities import (  # noqa: F401
    LOG_2PI,
    bernoulli_log_likelihood,
    element_weights,
    gaussian_fixed_std_log_likelihood,
    gaussian_kl_per_element,
    gaussian_log_density,
    gaussian_log_density_elements,
    kl_per_block,
    mean_squared_error,
    non_saturating_generator_loss,
    sigmoid_cross_entropy,
    standard_normal_log_density,
    standard_normal_log_density_elements,
    sum_per_example,
    two_level_block_weights,
    weighted_kl,
)
