"""Log-densities and loss terms of the VAE family, with the normalisations of docs/design.md
section 5 (`keras_crvae.losses` re-exports every name; imports `keras` only).

Notation (per example `x` with `D` pixels and latent `z`):

    log p(x|z)  Bernoulli:  sum_d [x_d * l_d - softplus(l_d)]          (l = decoder logits)
    log p(z)                sum_i [-z_i**2 / 2 - log(2 pi) / 2]
    log q(z|x)              sum_i [-(z_i - m_i)**2 / (2 v_i) - log(2 pi v_i) / 2]
    KL(q || p)              sum_i 0.5 * (v_i + m_i**2 - 1 - log v_i)    (closed form)

The crVAE weights the KL per channel block: with `T` blocks, block `t` holds latent channels
`[t*Z/T, (t+1)*Z/T)` and gets weight `alpha_t` (the paper uses alpha1 for the first 3 of 8 blocks and
alpha2 for the rest; supplement section D). The reference training loss of the MNIST models is
`mean_over_batch_and_pixels(BCE) + alpha * KL_summed_over_latents_averaged_over_batch`
(`train_test/train_test_*_mnist.lua`: `nn.BCECriterion` with size averaging, `KLDCriterion`).
"""

import math
import numbers

from keras import ops

LOG_2PI = math.log(2.0 * math.pi)


def sum_per_example(values):
    """Sums a tensor `(batch, ...)` over every non-batch axis -> `(batch,)`."""
    return ops.sum(ops.reshape(values, (ops.shape(values)[0], -1)), axis=1)


def bernoulli_log_likelihood(logits, targets):
    """`log p(x|z)` of a factorised Bernoulli, summed over all non-batch axes -> `(batch,)`.

    Computed from logits (`x*l - softplus(l)`), which is exact and stable for any logit.

    Args:
        logits: tensor `(batch, ...)`, decoder logits.
        targets: tensor of the same shape with values in [0, 1].
    """
    targets = ops.cast(targets, logits.dtype)
    return sum_per_example(targets * logits - ops.softplus(logits))


def gaussian_fixed_std_log_likelihood(means, targets, std):
    """`log N(x; means, std^2 I)` summed over all non-batch axes -> `(batch,)`.

    `-sum_d (x_d - m_d)^2 / (2 std^2) - D * (log std + log(2 pi) / 2)`, the Gaussian decoder of
    fixed standard deviation `std` (a Python float).
    """
    targets = ops.cast(targets, means.dtype)
    num_elements = math.prod(means.shape[1:])
    squared_error = sum_per_example(ops.square(targets - means))
    return (-squared_error / (2.0 * float(std) ** 2)
            - num_elements * (math.log(float(std)) + 0.5 * LOG_2PI))


def standard_normal_log_density_elements(z):
    """`log N(z_i; 0, 1)` per element, same shape as `z`."""
    return -0.5 * (ops.square(z) + LOG_2PI)


def gaussian_log_density_elements(z, mean, log_var):
    """`log N(z_i; mean_i, exp(log_var_i))` per element, same shape as `z`."""
    return -0.5 * (ops.square(z - mean) * ops.exp(-log_var) + log_var + LOG_2PI)


def standard_normal_log_density(z):
    """`log N(z; 0, I)` summed over all non-batch axes -> `(batch,)`."""
    return sum_per_example(standard_normal_log_density_elements(z))


def gaussian_log_density(z, mean, log_var):
    """`log N(z; mean, diag(exp(log_var)))` summed over all non-batch axes -> `(batch,)`."""
    return sum_per_example(gaussian_log_density_elements(z, mean, log_var))


def gaussian_kl_per_element(mean, log_var):
    """Closed-form `KL(N(mean, exp(log_var)) || N(0, 1))` per element (reference `KLDCriterion.lua`)."""
    return 0.5 * (ops.exp(log_var) + ops.square(mean) - 1.0 - log_var)


def kl_per_block(kl_elements, num_blocks):
    """Sums per-element KL into `num_blocks` channel blocks -> `(batch, num_blocks)`.

    Blocks are taken along the last (channel) axis, so block `t` covers channels
    `[t*Z/T, (t+1)*Z/T)` at every spatial position, matching the channel-recurrent latent's time steps.

    Args:
        kl_elements: tensor `(batch, ..., Z)`.
        num_blocks: int dividing `Z`.
    """
    channels = kl_elements.shape[-1]
    if channels % num_blocks:
        raise ValueError(
            f"`num_blocks`={num_blocks} must divide the latent's last axis ({channels})."
        )
    per_channel = ops.reshape(kl_elements, (ops.shape(kl_elements)[0], -1, channels))
    per_channel = ops.sum(per_channel, axis=1)
    return ops.sum(ops.reshape(per_channel, (-1, num_blocks, channels // num_blocks)), axis=2)


def weighted_kl(kl_elements, block_weights):
    """`sum_t alpha_t * KL_t` per example -> `(batch,)`.

    Args:
        kl_elements: tensor `(batch, ..., Z)` of per-element KL values.
        block_weights: sequence of `T` floats (one per channel block), or one float.
    """
    if isinstance(block_weights, numbers.Real):
        return float(block_weights) * sum_per_example(kl_elements)
    weights = ops.convert_to_tensor([float(w) for w in block_weights], dtype=kl_elements.dtype)
    return ops.sum(kl_per_block(kl_elements, len(block_weights)) * weights, axis=1)


def element_weights(latent_shape, block_weights, dtype="float32"):
    """Per-element weight tensor `latent_shape` expanding `block_weights` over channel blocks."""
    if isinstance(block_weights, numbers.Real):
        return ops.full(tuple(latent_shape), float(block_weights), dtype=dtype)
    channels = latent_shape[-1]
    num_blocks = len(block_weights)
    if channels % num_blocks:
        raise ValueError(f"{num_blocks} block weights do not divide {channels} latent channels.")
    per_channel = ops.repeat(
        ops.convert_to_tensor([float(w) for w in block_weights], dtype=dtype),
        channels // num_blocks,
    )
    return ops.broadcast_to(per_channel, tuple(latent_shape))


def two_level_block_weights(alpha1, alpha2, time_steps=8, num_first_blocks=None):
    """The paper's KL weights: `alpha1` for the first blocks, `alpha2` for the rest.

    Args:
        alpha1: float, weight of the first `num_first_blocks` blocks.
        alpha2: float, weight of the remaining blocks.
        time_steps: int, default 8. Number of blocks `T`.
        num_first_blocks: int or None. Default `round(3 * T / 8)`: 3 of 8 as in the paper
            (supplement section D), scaled to other T.

    Returns:
        list of `T` floats.
    """
    if num_first_blocks is None:
        num_first_blocks = int(round(3 * time_steps / 8))
    if not 0 <= num_first_blocks <= time_steps:
        raise ValueError(
            f"`num_first_blocks` must be in [0, {time_steps}], got {num_first_blocks}."
        )
    return [float(alpha1)] * num_first_blocks + [float(alpha2)] * (time_steps - num_first_blocks)


# --- adversarial and mutual-information terms of the GAN models (supplement section D) ---------


def sigmoid_cross_entropy(logits, labels):
    """Element-wise binary cross-entropy of `sigmoid(logits)` against `labels` in {0, 1}.

    Computed as `max(l, 0) - l*y + log(1 + exp(-|l|))`, exact and stable for any logit; the
    reference's `nn.Sigmoid` + `nn.BCECriterion` compute the same value.
    """
    labels = ops.cast(labels, logits.dtype)
    return ops.relu(logits) - logits * labels + ops.log1p(ops.exp(-ops.abs(logits)))


def non_saturating_generator_loss(fake_logits):
    """`-mean log D(G(z))`: the generator's non-saturating GAN loss, averaged over the batch."""
    return ops.mean(sigmoid_cross_entropy(fake_logits, ops.ones_like(fake_logits)))


def mean_squared_error(predictions, targets, element_weights=None):
    """`mean((predictions - targets)^2)` over every element (Torch `nn.MSECriterion`).

    Args:
        predictions, targets: tensors of one shape `(batch, ...)`.
        element_weights: tensor broadcastable to `predictions.shape[1:]`, or None. Multiplies the
            squared errors before averaging (the reference's per-block MI weights).
    """
    squared = ops.square(predictions - targets)
    if element_weights is not None:
        squared = squared * element_weights
    return ops.mean(squared)
