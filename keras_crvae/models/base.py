"""What every model family shares: the float32 boundary, running a network, checking inputs and
configs, and the encode / decode / sample API of the encoder-decoder GANs.

Imports: `keras_crvae.distribute` only (below every model file). Each model file (`vae.py`,
`hierarchical.py`, `vae_gan.py`, `super_resolution.py`, `gan.py`, `infogan.py`, `two_stage.py`,
`factor_vae.py`) imports these helpers from here, never from a sibling model file, except to
subclass a model (`FactorVAE(VAE)`, `InfoGAN(GAN)`). The layering of the package: layers -> networks -> models;
`keras_crvae.losses` is used by layers and models (docs/design.md).
"""

import copy
import numbers

import keras
import numpy as np
from keras import ops

from keras_crvae import distribute
from keras_crvae.networks.inference import inference_network

# The pixel range of the GAN-like models' images (tanh decoders): VAEGAN, CRVAEGAN, SuperResolution
# (Stage2), GAN, InfoGAN. The VAE family's images lie in [0, 1].
SIGNED_IMAGE_RANGE = (-1.0, 1.0)
# The objective options of the VAE family (`check_objective_options`).
RECONSTRUCTION_REDUCTIONS = ("mean", "sum")
LIKELIHOODS = ("bernoulli",)


class OptimizerBuiltBeforeTracing:
    """Builds the model's optimizer before Keras traces the training step.

    Without a distribution strategy, Keras' TensorFlow trainer leaves the optimizer unbuilt until
    the first trace of `train_step` creates its slots; `tf.function` then traces the whole step a
    second time (a function that created variables is retraced without creating them). Building
    the optimizer first, on the same `trainable_variables` the step updates, saves that trace:
    1.7-2.7 CPU-seconds per training start of the MNIST presets (`python
    tools/benchmarks/trace_startup.py`, docs/performance.md). The slots are the same variables in
    the same order, so checkpoints do not change. On JAX, and under a strategy, Keras builds the
    optimizer before tracing itself, and this does nothing. A model not built yet (variables
    created by its first call) keeps Keras' behaviour.

    Mix in before `keras.Model`; the two-player models build theirs in `compile`
    (`keras_crvae.losses.adversarial.TwoPlayerCompile`).
    """

    def make_train_function(self, force=False):
        optimizer = getattr(self, "optimizer", None)
        if optimizer is not None and not optimizer.built and self.built:
            with self.distribute_strategy.scope():
                optimizer.build(self.trainable_variables)
        return super().make_train_function(force=force)


def to_float32(tensors):
    """Casts a tensor, or each of a list of tensors, to float32: the boundary between networks that
    may compute in bfloat16 (`keras_crvae.precision`) and the densities, which never do."""
    if isinstance(tensors, (list, tuple)):
        return type(tensors)(to_float32(tensor) for tensor in tensors)
    return tensors if tensors.dtype == "float32" else ops.cast(tensors, "float32")


def network_for_mode(network, training):
    """`network` itself in training (its BatchNormalizations use the batch's statistics), else its
    folded inference version (`keras_crvae.networks.inference_network`): the same function."""
    return network if training else inference_network(network)


def run_network(network, inputs):
    """`network(inputs)` in inference mode as a float32 tensor.

    A NumPy batch runs through the network's compiled predict function (`tf.function` /
    `jax.jit`), 1.3x (TF) to 2x (JAX) faster on CPU than an eager call; tensors run eagerly or in
    the caller's graph. A network built under a strategy runs eagerly too: `predict_on_batch` would
    repeat the batch per replica. On TensorFlow its BatchNormalizations are folded into the
    convolutions before them (`keras_crvae.networks.inference_network`: the same function, the same
    variables; not on JAX, where it does not pay).
    """
    replicas = distribute.model_replicas(network)
    # BatchNormalization chains folded into their convolutions (networks/inference.py).
    network = inference_network(network)
    if isinstance(inputs, np.ndarray) and replicas == 1:
        return to_float32(ops.convert_to_tensor(network.predict_on_batch(
            inputs.astype(np.float32))))
    return to_float32(network(ops.cast(ops.convert_to_tensor(inputs), "float32"), training=False))


def validate_images(images, image_shape, name="images", value_range=(0.0, 1.0)):
    """Checks rank, per-example shape and (for concrete arrays) the value range of an image batch.

    The library's one shape rule: for single-channel images the channel axis may be left out,
    `(batch, 28, 28)` as well as `(batch, 28, 28, 1)`, as the `data` functions and `crvae` accept.

    Args:
        images: array or tensor `(batch, *image_shape)` (or without a trailing axis of size 1).
        image_shape: tuple, the expected per-example shape, e.g. `(28, 28, 1)`.
        name: str, the argument name used in error messages.
        value_range: `(low, high)` or None. Checked only for NumPy / eager inputs.

    Returns:
        The input, with the channel axis added where it was left out.
    """
    shape = tuple(images.shape)
    expected = tuple(image_shape)
    if (expected and expected[-1] == 1 and len(shape) == len(expected)
            and all(e is None or s is None or s == e for s, e in zip(shape[1:], expected[:-1]))):
        images = images[..., None] if isinstance(images, np.ndarray) else ops.expand_dims(images,
                                                                                           -1)
        shape = tuple(images.shape)
    if len(shape) != len(expected) + 1 or any(
        e is not None and s is not None and s != e for s, e in zip(shape[1:], expected)
    ):
        raise ValueError(
            f"`{name}` must have shape (batch, {', '.join(str(d) for d in expected)}); "
            f"got {shape}."
        )
    if shape[0] == 0:
        raise ValueError(f"`{name}` is empty: got a batch of 0 images.")
    dtype = str(images.dtype)
    if not any(kind in dtype for kind in ("float", "uint8", "int", "bool")):
        raise ValueError(f"`{name}` must hold numbers; got dtype {dtype}.")
    if value_range is not None and isinstance(images, np.ndarray):
        low, high = float(np.min(images)), float(np.max(images))
        if low < value_range[0] or high > value_range[1] or not np.isfinite(low + high):
            raise ValueError(
                f"`{name}` values must lie in [{value_range[0]}, {value_range[1]}]; got "
                f"[{low}, {high}]. Scale uint8 pixels with images / 255."
            )
    return images


def check_encoder_decoder(encoder, decoder, latent_shape, data_shape):
    """Raises a clear ValueError unless `encoder: data -> [mean, log_var]` of `latent_shape` and
    `decoder: latent -> data_shape` fit together (shapes without the batch axis)."""
    mean_shape, log_var_shape = (tuple(s[1:]) for s in encoder.output_shape)
    if mean_shape != tuple(latent_shape) or log_var_shape != tuple(latent_shape):
        raise ValueError(
            f"The encoder outputs {mean_shape} and {log_var_shape} but the decoder expects inputs "
            f"of shape {tuple(latent_shape)}."
        )
    if tuple(decoder.output_shape[1:]) != tuple(data_shape):
        raise ValueError(
            f"The decoder outputs {tuple(decoder.output_shape[1:])} but the encoder takes inputs of "
            f"shape {tuple(data_shape)}."
        )


def check_objective_options(reconstruction_reduction, likelihood, iwae_samples, kl_weight,
                            likelihoods=LIKELIHOODS):
    """Validates the objective arguments the VAE-family models share (`VAE`, `HierarchicalVAE`).

    `likelihoods` lists the decoder likelihoods the calling model implements.

    Returns:
        `(kl_weight, weights)`: `kl_weight` as a float (NumPy scalars too) or unchanged sequence, and
        `weights`, the list of floats it holds (one entry for a single weight).
    """
    if reconstruction_reduction not in RECONSTRUCTION_REDUCTIONS:
        raise ValueError(
            f"`reconstruction_reduction` must be one of {RECONSTRUCTION_REDUCTIONS}, got "
            f"{reconstruction_reduction!r}."
        )
    if likelihood not in likelihoods:
        raise ValueError(f"`likelihood` must be one of {likelihoods}, got {likelihood!r}.")
    if isinstance(iwae_samples, bool) or int(iwae_samples) < 1:
        raise ValueError(f"`iwae_samples` must be >= 1, got {iwae_samples}.")
    if isinstance(kl_weight, numbers.Real):
        kl_weight = float(kl_weight)  # also NumPy scalars
    weights = [kl_weight] if isinstance(kl_weight, float) else [float(w) for w in kl_weight]
    if not weights or any(w < 0 for w in weights):
        raise ValueError(f"`kl_weight` must be non-negative, got {kl_weight!r}.")
    return kl_weight, weights


def with_deserialized(config, *keys):
    """A copy of a model config whose `keys` (serialized sub-networks) are deserialized."""
    config = dict(config)
    for key in keys:  # deserializing edits the nested dicts: work on copies of them
        config[key] = keras.saving.deserialize_keras_object(copy.deepcopy(config[key]))
    return config


def tile_rows(tensor, times):
    """Stacks `times` copies of a batch along axis 0 (sample-major: row `k*B + b`)."""
    if isinstance(times, int) and times == 1:
        return tensor
    return ops.tile(tensor, (times,) + (1,) * (len(tensor.shape) - 1))


class EncoderDecoderAPI:
    """`encode` / `decode` / `sample` / `reconstruct` of the models that pair an encoder `q(z|x)` with
    a decoder to images in [-1, 1] (`VAEGAN`, `CRVAEGAN`, `Stage2`, whose `encoder` and `decoder` span
    both stages). Mix in before `keras.Model`; needs `encoder` (images -> `[mean, log_var]`),
    `decoder` (z -> images), `image_shape` and `latent_shape`."""

    def encode(self, images):
        """`q(z|x)` parameters: images `(B, *image_shape)` in [-1, 1] -> `(mean, log_var)`, each
        `(B, *latent_shape)` float32."""
        validate_images(images, self.image_shape, value_range=SIGNED_IMAGE_RANGE)
        images = ops.cast(ops.convert_to_tensor(images), "float32")
        mean, log_var = to_float32(self.encoder(images, training=False))
        return mean, log_var

    def decode(self, z):
        """Images `(B, *image_shape)` in [-1, 1] for latents `z` `(B, *latent_shape)`."""
        validate_images(z, self.latent_shape, name="z", value_range=None)
        return run_network(self.decoder, z)

    def sample(self, num_samples, seed=None):
        """Draws `num_samples` images in [-1, 1]: `z ~ N(0, I)`, `decode(z)`."""
        if int(num_samples) < 1:
            raise ValueError(f"`num_samples` must be >= 1, got {num_samples}.")
        z = keras.random.normal((int(num_samples),) + self.latent_shape, seed=seed)
        return self.decode(z)

    def reconstruct(self, images):
        """Decoded posterior means of images `(B, *image_shape)` in [-1, 1]."""
        mean, _ = self.encode(images)
        return self.decode(mean)
