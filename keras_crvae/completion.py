"""Image completion by optimising the latent code (crVAE supplement section D, "Image Completion
Hyperparameters"; main text section 5 of Shang, Sohn & Tian 2018).

For images `x (B, H, W, C)` in the model's `image_range` and a mask `m` (1 = observed pixel, 0 = missing),
find for each image

    z* = argmin_z  L(z),   L(z) = ||x^ * m - x * m||^2 / (H W C)              (reconstruction)
                                  - gamma * log N(z; 0, I)                        (prior)
                                  + tau * log(1 - D(x^))                          (adversarial)
    x^ = decode(z)

and return the blend `x * m + x^ * (1 - m)`: the observed pixels as they were, the missing ones from the
model. z starts at the encoder's posterior mean of the masked image (missing pixels filled with the
middle of the image range) and follows Adam; every image of the batch has its own z and the objective
is summed over the batch, so each z sees only its own image's gradient.

The sign of the prior term. The supplement prints `min_z [... + gamma log N(z; 0, I) + ...]`. Since
`log N(z; 0, I) = -||z||^2 / 2 - (d/2) log 2 pi`, minimising `+gamma log N` maximises `||z||^2`: it pushes
z away from the prior, and the objective has no minimum (z -> infinity). The intended term is the
negative log prior, `-gamma log N(z; 0, I) = gamma ||z||^2 / 2 + const`: the objective is then the
negative log posterior `-log p(x_observed | z) - log p(z)` (a MAP estimate of z) up to the weights, as in
semantic inpainting by latent search (Yeh et al. 2017: "perceptual loss" + "contextual loss"). We
implement that, with the constant kept so that the term is exactly `-gamma log N(z; 0, I)`.

The reconstruction term is normalised as the supplement's `L_recon` (divided by C*H*W, summed over the
observed pixels; the missing ones contribute 0), which is why gamma = 1e-5 and tau = 0.003 are small;
`tau log(1 - D(x^))` is the saturating generator term as printed, with `D = sigmoid(logit)`, computed
as `-tau softplus(logit)`. Models without a discriminator (VAE, cVAE, crVAE, Two-Stage VAE,
hierarchical VAE) use tau = 0. A discriminator with minibatch discrimination (the 64x64 GAN presets)
compares the images of a batch, so with tau > 0 an image's completion depends slightly on the others.

The optimisation runs through Keras' own trainer (`train_on_batch` on a small model whose only
trainable weight is z; the networks are frozen and called in inference mode), so it runs on every
Keras backend (TensorFlow, JAX).

>>> from keras_crvae import completion
>>> mask = completion.make_mask("centre", (64, 64, 3))          # (64, 64, 1): 0 in the centre
>>> result = completion.complete(model, faces, mask, steps=200)  # doctest: +SKIP
>>> result.completed.shape, result.loss_curve.shape             # doctest: +SKIP
((8, 64, 64, 3), (200,))
"""

import dataclasses
import math

import numpy as np

MASK_KINDS = ("centre", "left", "right", "top", "bottom", "random_blocks")
MASK_ALIASES = {"center": "centre"}


# === Masks (NumPy only: the CLI builds them before TensorFlow loads) ===


def make_mask(kind, image_shape, batch_size=None, seed=None, centre_fraction=0.5, num_blocks=4,
              block_fraction=0.25):
    """A completion mask: 1 where a pixel is observed, 0 where it is missing.

    Args:
        kind: str, one of `MASK_KINDS` ("center" is accepted for "centre"):
            "centre" hides the central square of side `centre_fraction * H` (a quarter of the image
            for 0.5); "left" / "right" / "top" / "bottom" hide that half; "random_blocks" hides
            `num_blocks` squares of side `block_fraction * H` at random places, different per image.
        image_shape: `(H, W, C)` (or `(H, W)`).
        batch_size: int or None. Needed for "random_blocks" (one mask per image); the fixed kinds
            return one mask for all images.
        seed: int or None. Seed of "random_blocks".
        centre_fraction, num_blocks, block_fraction: see `kind`.

    Returns:
        float32 array `(H, W, 1)`, or `(batch_size, H, W, 1)` for "random_blocks" (or when
        `batch_size` is given).
    """
    kind = MASK_ALIASES.get(kind, kind)
    if kind not in MASK_KINDS:
        raise ValueError(f"`kind` must be one of {MASK_KINDS} (or a mask array), got {kind!r}.")
    height, width = (int(d) for d in tuple(image_shape)[:2])
    if height < 2 or width < 2:
        raise ValueError(f"`image_shape` must be at least 2x2, got {tuple(image_shape)}.")
    if kind == "random_blocks":
        if batch_size is None or int(batch_size) < 1:
            raise ValueError("'random_blocks' needs `batch_size` >= 1 (one mask per image).")
        if int(num_blocks) < 1 or not 0 < float(block_fraction) < 1:
            raise ValueError(f"'random_blocks' needs `num_blocks` >= 1 and 0 < `block_fraction` < 1; "
                             f"got {num_blocks} and {block_fraction}.")
        rng = np.random.default_rng(seed)
        side_h = max(1, int(round(block_fraction * height)))
        side_w = max(1, int(round(block_fraction * width)))
        masks = np.ones((int(batch_size), height, width, 1), np.float32)
        for mask in masks:
            for _ in range(int(num_blocks)):
                top = rng.integers(0, height - side_h + 1)
                left = rng.integers(0, width - side_w + 1)
                mask[top:top + side_h, left:left + side_w] = 0.0
        return masks
    mask = np.ones((height, width, 1), np.float32)
    if kind == "centre":
        if not 0 < float(centre_fraction) < 1:
            raise ValueError(f"`centre_fraction` must lie in (0, 1), got {centre_fraction}.")
        side_h = max(1, int(round(centre_fraction * height)))
        side_w = max(1, int(round(centre_fraction * width)))
        top, left = (height - side_h) // 2, (width - side_w) // 2
        mask[top:top + side_h, left:left + side_w] = 0.0
    elif kind == "left":
        mask[:, : width // 2] = 0.0
    elif kind == "right":
        mask[:, width // 2:] = 0.0
    elif kind == "top":
        mask[: height // 2] = 0.0
    else:  # bottom
        mask[height // 2:] = 0.0
    if batch_size is not None:
        mask = np.repeat(mask[None], int(batch_size), axis=0)
    return mask


def check_mask(mask, images_shape):
    """Checks a mask against a batch of images and returns it as float32 `(B, H, W, 1 or C)`.

    Accepted shapes, for images `(B, H, W, C)`: `(H, W)`, `(H, W, 1)`, `(H, W, C)` (one mask for every
    image) or `(B, H, W)`, `(B, H, W, 1)`, `(B, H, W, C)` (one per image). Values must be 0 or 1
    (booleans too): a soft mask would let the blend change observed pixels.

    Raises:
        ValueError: another shape, other values, or a mask that hides no pixel of an image (nothing
            to complete) or observes none (nothing to complete it from); the message says which
            image.
    """
    images_shape = tuple(int(d) for d in images_shape)
    batch, height, width, channels = images_shape
    array = np.asarray(mask)
    if array.dtype == np.bool_:
        array = array.astype(np.float32)
    if not (np.issubdtype(array.dtype, np.number)):
        raise ValueError(f"`mask` must hold numbers 0/1 or booleans; got dtype {array.dtype}.")
    shape = tuple(array.shape)
    per_image = {(height, width), (height, width, 1), (height, width, channels)}
    per_batch = {(batch, height, width), (batch, height, width, 1), (batch, height, width, channels)}
    if shape not in per_image | per_batch:
        raise ValueError(
            f"`mask` has shape {shape}; for images of shape {images_shape} expected one of "
            f"({height}, {width}), ({height}, {width}, 1), ({height}, {width}, {channels}) or the "
            f"same with the batch axis ({batch}, ...).")
    array = array.astype(np.float32)
    if not np.all(np.isfinite(array)) or not np.all((array == 0.0) | (array == 1.0)):
        raise ValueError("`mask` values must be 0 (missing) or 1 (observed); got values in "
                         f"[{np.nanmin(array)}, {np.nanmax(array)}] that are not all 0 or 1.")
    # One mask for every image wins where a shape could be read both ways (e.g. B == H, W == C).
    if shape in per_image:
        array = array[..., None] if len(shape) == 2 else array
        array = np.repeat(array[None], batch, axis=0)
    elif len(shape) == 3:
        array = array[..., None]
    observed = array.reshape(batch, -1).sum(axis=1)
    size = array[0].size
    if np.any(observed == size):
        raise ValueError(f"`mask` hides no pixel of image {int(np.argmax(observed == size))}: "
                         "nothing to complete (0 marks a missing pixel).")
    if np.any(observed == 0):
        raise ValueError(f"`mask` observes no pixel of image {int(np.argmax(observed == 0))}: "
                         "nothing to complete it from (1 marks an observed pixel).")
    return array


# === The model side ===


@dataclasses.dataclass(frozen=True)
class CompletionNetworks:
    """What completion needs from a model: an encoder path, a decoder network and its output kind.

    Attributes:
        encode: function images -> (mean, log_var) (the model's own `encode`; hierarchical models:
            the top layer).
        decoder: `keras.Model`, z `(B, *latent_shape)` -> decoder output.
        decoder_outputs: "logits" (images = sigmoid(output)) or "images".
        discriminator: layer or None, images -> logits or [logits, ...].
        image_shape, latent_shape: tuples.
        image_range: `(low, high)`.
    """

    encode: object
    decoder: object
    decoder_outputs: str
    discriminator: object
    image_shape: tuple
    latent_shape: tuple
    image_range: tuple


def completion_networks(model):
    """The `CompletionNetworks` of any model of the library.

    VAE / cVAE / crVAE / crIWAE (`decoder` gives Bernoulli logits), VAE-GAN / crVAE-GAN (`decoder` is
    the image-only view, `discriminator` used), Two-Stage VAE (its stage-1 decoder mean), hierarchical
    VAEs (the top latent, through `serving_networks`), Stage2 (its high-resolution `decoder` and
    discriminator: completion at the output size).
    """
    for attribute in ("encode", "image_shape", "latent_shape"):
        if not hasattr(model, attribute):
            raise ValueError(f"`model` must be a keras_crvae model with `{attribute}` (VAE, crVAE, "
                             f"VAEGAN, CRVAEGAN, TwoStageVAE, HierarchicalVAE); got "
                             f"{type(model).__name__}.")

    def encode(images):
        result = model.encode(images)
        if isinstance(result, list) and result and isinstance(result[0], (list, tuple)):
            result = result[-1]  # hierarchical: q(z_top | .)
        return result

    image_range = tuple(float(v) for v in getattr(model, "image_range", (0.0, 1.0)))
    if hasattr(model, "serving_networks"):
        decoder, kind = model.serving_networks()[1], getattr(model, "decoder_outputs", "logits")
    elif hasattr(model, "stage1") and hasattr(model, "stage2"):
        # TwoStageVAE: the stage-1 decoder mean is the image. (A `Stage2` super-resolution model
        # has a `stage1` too, but its own `decoder` gives its high-resolution images.)
        decoder, kind = model.stage1.decoder, "images"
    else:
        decoder, kind = model.decoder, getattr(model, "decoder_outputs", "logits")
    return CompletionNetworks(
        encode=encode, decoder=decoder, decoder_outputs=kind,
        discriminator=getattr(model, "discriminator", None),
        image_shape=tuple(int(d) for d in model.image_shape),
        latent_shape=tuple(int(d) for d in model.latent_shape), image_range=image_range)


def _latent_model_class():
    """The `keras.Model` that holds z (defined on first use: the module imports without Keras)."""
    global _LatentCompletion
    if _LatentCompletion is not None:
        return _LatentCompletion
    import keras
    from keras import ops

    from keras_crvae import losses

    class LatentCompletion(keras.Model):
        """z `(B, *latent_shape)` as the only trainable weight; decoder and discriminator frozen.

        `call` decodes z (inference mode); `compute_loss` is the completion objective of the module
        docstring, summed over the batch. Not registered for serialization: it lives only inside
        `complete`.
        """

        def __init__(self, networks, initial_z, prior_weight, adversarial_weight):
            super().__init__(name="latent_completion")
            self.decoder_outputs = networks.decoder_outputs
            self.decoder = networks.decoder
            self.discriminator = networks.discriminator if adversarial_weight > 0 else None
            self.prior_weight = float(prior_weight)
            self.adversarial_weight = float(adversarial_weight)
            self.num_pixels = float(math.prod(networks.image_shape))
            self.z = self.add_weight(shape=tuple(initial_z.shape), initializer="zeros", name="z")
            self.z.assign(initial_z)
            self.built = True

        def images(self, z):
            output = ops.cast(self.decoder(z, training=False), "float32")
            return ops.sigmoid(output) if self.decoder_outputs == "logits" else output

        def call(self, inputs, training=False):
            z = ops.cast(self.z, "float32")
            images = self.images(z)
            outputs = {"images": images, "z": z}
            if self.discriminator is not None:
                logits = self.discriminator(images, training=False)
                if isinstance(logits, (list, tuple)):
                    logits = logits[0]
                outputs["logits"] = ops.reshape(ops.cast(logits, "float32"), (-1,))
            return outputs

        def per_image_terms(self, x, y_pred):
            """`(reconstruction, prior, adversarial)`, each `(B,)`, unweighted except as noted."""
            images, mask = x["images"], x["mask"]
            error = ops.square(y_pred["images"] * mask - images * mask)
            reconstruction = losses.sum_per_example(error) / self.num_pixels
            prior = -self.prior_weight * losses.standard_normal_log_density(y_pred["z"])
            if "logits" in y_pred:
                # tau * log(1 - sigmoid(l)) = -tau * softplus(l), stable for any l.
                adversarial = -self.adversarial_weight * ops.softplus(y_pred["logits"])
            else:
                adversarial = ops.zeros_like(reconstruction)
            return reconstruction, prior, adversarial

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            reconstruction, prior, adversarial = self.per_image_terms(x, y_pred)
            # Summed over images: each z's gradient is its own image's (Adam is per element).
            # Times H*W*C: the minimiser and Adam's steps are the same for any positive scale of
            # the objective except through Adam's epsilon, which would otherwise swamp gradients
            # of order 1e-7 (the per-pixel normalisation makes them that small).
            return ops.sum(reconstruction + prior + adversarial) * self.num_pixels

    _LatentCompletion = LatentCompletion
    return LatentCompletion


_LatentCompletion = None


@dataclasses.dataclass(frozen=True)
class CompletionResult:
    """What `complete` returns (NumPy arrays).

    Attributes:
        completed: `(B, H, W, C)`, the blend `x * m + x^ * (1 - m)` of the final `x^`.
        decoded: `(B, H, W, C)`, the final raw decode `x^ = decode(z*)`.
        initial_decoded: `(B, H, W, C)`, the decode of the initial z (the encoder-only baseline).
        z: `(B, *latent_shape)`, the optimised latents.
        loss_curve: `(steps,)`, the objective per image (mean over the batch) before each Adam step.
        final_loss: float, the objective per image after the last step.
        mask: `(B, H, W, 1 or C)` float32, the mask used (1 = observed).
        adversarial_weight: float, the tau used (0 for a model without discriminator).
    """

    completed: np.ndarray
    decoded: np.ndarray
    initial_decoded: np.ndarray
    z: np.ndarray
    loss_curve: np.ndarray
    final_loss: float
    mask: np.ndarray
    adversarial_weight: float


def _freeze(layers):
    """Sets `trainable=False` on each layer; returns a function restoring the old flags.

    Every nested layer's own flag is saved and restored, parents first (setting a parent's flag
    sets its children's): a sub-network that was frozen before (a Stage2 model's Stage1) stays so.
    """
    saved = [(inner, inner.trainable) for layer in layers if layer is not None
             for inner in layer._flatten_layers(include_self=True, recursive=True)]
    for layer in layers:
        if layer is not None:
            layer.trainable = False

    def restore():
        for layer, flag in saved:
            layer.trainable = flag

    return restore


def complete(model, images, mask, steps=200, learning_rate=0.03, prior_weight=1e-5,
             adversarial_weight=0.003, seed=None, init="posterior_mean"):
    """Completes the missing pixels of `images` by optimising z (see the module docstring).

    Args:
        model: any keras_crvae model (VAE family, VAEGAN / CRVAEGAN, TwoStageVAE, HierarchicalVAE).
        images: array `(B, H, W, C)` in the model's `image_range` ([-1, 1] for the GAN models, [0, 1]
            for the VAE family); values under the mask's zeros are ignored.
        mask: array (see `check_mask`: 1 = observed, 0 = missing) or a kind of `make_mask`
            ("centre", "left", "right", "top", "bottom", "random_blocks").
        steps: int >= 1, default 200. Adam steps.
        learning_rate: float > 0, default 0.03. Adam's learning rate on z (z is O(1)).
        prior_weight: float >= 0, default 1e-5 (the supplement's gamma).
        adversarial_weight: float >= 0, default 0.003 (the supplement's tau); used only when the model
            has a discriminator.
        seed: int or None. Seed of "random_blocks" masks and of `init="posterior_sample"`.
        init: str, "posterior_mean" (default) or "posterior_sample": where z starts, from the
            encoder of the masked image.

    Returns:
        `CompletionResult`.

    Raises:
        ValueError: images of the wrong shape or range, a bad mask (`check_mask`), or bad settings.

    Reference: supplement section D ("Image Completion Hyperparameters") of Shang et al. 2018.
    """
    import keras
    from keras import ops

    from keras_crvae.models.vae import validate_images

    networks = completion_networks(model)
    if isinstance(steps, bool) or int(steps) < 1:
        raise ValueError(f"`steps` must be an integer >= 1, got {steps!r}.")
    for name, value in (("prior_weight", prior_weight), ("adversarial_weight", adversarial_weight)):
        if not (math.isfinite(float(value)) and float(value) >= 0):
            raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}.")
    if not (math.isfinite(float(learning_rate)) and float(learning_rate) > 0):
        raise ValueError(f"`learning_rate` must be a finite number > 0, got {learning_rate!r}.")
    if init not in ("posterior_mean", "posterior_sample"):
        raise ValueError(f"`init` must be 'posterior_mean' or 'posterior_sample', got {init!r}.")
    images = np.asarray(images, dtype=np.float32)
    images = validate_images(images, networks.image_shape, value_range=networks.image_range)
    if isinstance(mask, str):
        mask = make_mask(mask, networks.image_shape, batch_size=len(images), seed=seed)
    mask = check_mask(mask, images.shape)

    # Start from the encoder of the masked image (missing pixels at the middle of the range).
    low, high = networks.image_range
    masked = images * mask + 0.5 * (low + high) * (1.0 - mask)
    mean, log_var = networks.encode(masked)
    initial_z = ops.convert_to_numpy(ops.cast(mean, "float32"))
    if init == "posterior_sample":
        noise = np.random.default_rng(seed).standard_normal(initial_z.shape).astype(np.float32)
        initial_z = initial_z + np.exp(0.5 * ops.convert_to_numpy(log_var)) * noise

    tau = float(adversarial_weight) if networks.discriminator is not None else 0.0
    restore = _freeze([networks.decoder, networks.discriminator])
    try:
        fit = _latent_model_class()(networks, initial_z, prior_weight, tau)
        fit.compile(optimizer=keras.optimizers.Adam(float(learning_rate)))
        inputs = {"images": images, "mask": np.broadcast_to(mask, images.shape).astype(np.float32)}
        initial_decoded = ops.convert_to_numpy(fit.images(ops.convert_to_tensor(initial_z)))
        curve = []
        for _ in range(int(steps)):
            fit.reset_metrics()  # the logged loss is this step's, not a running mean
            logs = fit.train_on_batch(inputs, return_dict=True)
            curve.append(float(logs["loss"]) / (len(images) * fit.num_pixels))
        outputs = fit(inputs)
        final_terms = fit.per_image_terms(
            {key: ops.convert_to_tensor(value) for key, value in inputs.items()}, outputs)
        final_loss = float(np.mean(sum(ops.convert_to_numpy(t) for t in final_terms)))
        decoded = ops.convert_to_numpy(outputs["images"])
        z = ops.convert_to_numpy(fit.z)
    finally:
        restore()
    completed = images * mask + decoded * (1.0 - mask)
    return CompletionResult(completed=completed.astype(np.float32), decoded=decoded,
                            initial_decoded=initial_decoded, z=z,
                            loss_curve=np.asarray(curve, np.float32), final_loss=final_loss,
                            mask=mask, adversarial_weight=tau)


def complete_batches(model, images, mask, batch_size=64, seed=None, image_range=None, **settings):
    """`complete` on consecutive batches of `images`, in memory bounded by `batch_size`.

    Each batch is an independent call of `complete` (its own z variables and Adam state), so for
    a model without discriminator the completions equal (up to float rounding) one `complete`
    call on all images; with
    minibatch discrimination (tau > 0) an image's completion depends on its batch's images.

    Args:
        model, images, mask: as `complete` (`mask` a kind of `make_mask` or an array `check_mask`
            accepts for all `images`; a kind is made once for all images, so "random_blocks"
            does not depend on `batch_size`).
        batch_size: int >= 1, default 64. Images optimised together.
        seed: int or None. Batch `b` gets `evaluation.sampling.batch_seed(seed, b)`.
        image_range: `(low, high)` or None (default). When given, `images` are stored images
            (uint8 0..255 or floats in [0, 1]) and each batch is mapped to this range
            (`to_image_range`) just before its completion, so no float copy of all images is
            made; None: `images` are already in the model's range.
        **settings: `steps`, `learning_rate`, `prior_weight`, `adversarial_weight`, `init`.

    Yields:
        `(start, batch, CompletionResult)`: `batch` is `images[start:start + B]` (B <= batch_size)
        in the model's range, the images that the result completes.
    """
    from keras_crvae.evaluation.sampling import batch_seed

    images = np.asarray(images)
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    if isinstance(mask, str):
        mask = make_mask(mask, images.shape[1:], batch_size=len(images), seed=seed)
    mask = check_mask(mask, images.shape)
    for index, start in enumerate(range(0, len(images), batch_size)):
        end = start + batch_size
        batch = images[start:end]
        if image_range is not None:
            batch = to_image_range(batch, image_range)
        yield start, batch, complete(model, batch, mask[start:end],
                              seed=batch_seed(seed, index), **settings)


def masked_mse(estimate, images, mask):
    """Mean squared error over the missing pixels only, per image: `(B,)`.

    Args:
        estimate, images: arrays `(B, H, W, C)`.
        mask: `(B, H, W, 1 or C)` or broadcastable, 1 = observed (excluded), 0 = missing.
    """
    estimate, images = np.asarray(estimate, np.float64), np.asarray(images, np.float64)
    missing = np.broadcast_to(1.0 - np.asarray(mask, np.float64), images.shape)
    squared = (estimate - images) ** 2 * missing
    return squared.reshape(len(images), -1).sum(1) / missing.reshape(len(images), -1).sum(1)


# === Figures and reports (NumPy only) ===


def to_image_range(images, image_range):
    """Images stored as uint8 0..255 or floats in [0, 1], mapped to a model's `(low, high)`.

    Returns float32 `(B, H, W, C)` in `image_range` (`CompletionNetworks.image_range`), ready for
    `complete`.
    """
    images = np.asarray(images)
    unit = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(
        np.float32)
    low, high = image_range
    return low + (high - low) * unit


def completion_grid(images, result, image_range):
    """The rows of a completion figure: masked input, completion, original, for each image.

    Args:
        images: `(B, H, W, C)`, the originals in `image_range` (what `complete` was given).
        result: the `CompletionResult` of `complete` on them.
        image_range: `(low, high)` of the images.

    Returns:
        `(3 B, H, W, C)` float32 in [0, 1], three tiles per image (the missing pixels of the
        masked input drawn in the middle of the range), for `io.save_image_grid` with a number
        of columns that is a multiple of 3.
    """
    images = np.asarray(images, np.float32)
    low, high = image_range
    full_mask = np.broadcast_to(result.mask, images.shape)
    masked = images * full_mask + 0.5 * (low + high) * (1.0 - full_mask)
    rows = np.stack([masked, np.asarray(result.completed, np.float32), images], axis=1)
    return ((rows - low) / (high - low)).reshape((-1,) + images.shape[1:])


def completion_summary(images, result, image_range):
    """The numbers of one completion run, a JSON-ready dict.

    `masked_mse` is the error of the completions over the missing pixels (mean over the images),
    `encoder_only_masked_mse` that of the decode of the encoder's initial z (the baseline that the
    optimisation of z improves on), with the loss curve and the image range they are measured in.
    """
    error = masked_mse(result.completed, images, result.mask)
    initial = masked_mse(result.initial_decoded, images, result.mask)
    return {"num_images": int(len(images)), "masked_mse": float(error.mean()),
            "encoder_only_masked_mse": float(initial.mean()),
            "loss_curve": [float(v) for v in result.loss_curve],
            "final_loss": float(result.final_loss),
            "image_range": [float(image_range[0]), float(image_range[1])]}


def merge_summaries(summaries):
    """One `completion_summary` of the batches that `summaries` describe (in any order): the
    means, loss curve and final loss weighted by each batch's `num_images`."""
    summaries = list(summaries)
    if not summaries:
        raise ValueError("`summaries` is empty.")
    total = sum(summary["num_images"] for summary in summaries)

    def mean(key):
        return sum(np.asarray(summary[key], np.float64) * summary["num_images"]
                   for summary in summaries) / total

    return {"num_images": int(total), "masked_mse": float(mean("masked_mse")),
            "encoder_only_masked_mse": float(mean("encoder_only_masked_mse")),
            "loss_curve": [float(v) for v in mean("loss_curve")],
            "final_loss": float(mean("final_loss")),
            "image_range": summaries[0]["image_range"]}
