"""The adversarial objectives the GAN-like models share (`VAEGAN`, `CRVAEGAN`, `GAN`, `InfoGAN`).

Every loss takes the discriminator's raw scores ("logits" for the classifiers, critic values for
WGAN): real scores `r` and fake scores `f`, each `(B, 1)` or `(B,)`; `E` is the batch mean.

    objective   discriminator / critic loss               generator loss          lecture section
    "bce"       E softplus(-r) [target 1 - s] + E softplus(f)  E softplus(-f)       DCGAN (non-saturating)
    "wgan"      E f - E r,  weights clipped to [-c, c]     -E f                    WGAN, Algorithm 1
    "wgan_gp"   E f - E r + lambda E (||grad D(x_hat)|| - 1)^2   -E f              WGAN-GP, Algorithm 1
    "hinge"     E relu(1 - r) + E relu(1 + f)              -E f                    (Lim & Ye 2017)

`s` is one-sided label smoothing (Salimans et al. 2016, section 3.4; "bce" only): real targets are
`1 - s`, fake targets stay 0. `x_hat = eps x + (1 - eps) x_tilde` with one `eps ~ U[0, 1]` per
example (Gulrajani et al. 2017, Algorithm 1, lines 4-6).

The discriminator's accuracy threshold of the crVAE-GAN (`ThresholdedAdam`: skip the update when it
classifies more than 90% of the batch right) means something only for the classifiers ("bce",
"hinge"), whose score sign is a real/fake decision. A WGAN critic is not a classifier: the
Wasserstein estimate is only valid near the critic's optimum, which is why it takes `n_critic`
steps per generator step, so skipping its updates would defeat it. For "wgan" and "wgan_gp" a
`ThresholdedAdam` applies every update (`uses_threshold`).

Improved techniques (Salimans et al. 2016, "Improved Techniques for Training GANs"):
- feature matching (section 3.1): `feature_matching_loss`, the generator matches the batch mean of an
  intermediate discriminator layer on real and generated images;
- historical averaging (section 3.3): `HistoricalAverage`, the penalty
  `||theta - (1/t) sum_i theta_i||^2` on a player's parameters;
- one-sided label smoothing (section 3.4): `label_smoothing` of `discriminator_loss`;
- minibatch discrimination (section 3.2): `keras_crvae.layers.MinibatchDiscrimination`.

The losses use `keras.ops` (every backend); `gradient_penalty` and the update helpers at the end are
TensorFlow-only, like the custom `train_step`s that call them (docs/design.md: `tf.GradientTape`).

Imports: `keras` only (used by models; `keras_crvae.adversarial` is an alias of this module, its path
before the redesign of issue 27).
"""

import keras
from keras import ops

OBJECTIVES = ("bce", "wgan", "wgan_gp", "hinge")
# Objectives whose discriminator is a classifier: its accuracy (and the update threshold) mean
# something, and one-sided label smoothing applies to "bce".
THRESHOLDED_OBJECTIVES = ("bce", "hinge")

# The papers' defaults (lecture: WGAN Algorithm 1; WGAN-GP Algorithm 1).
WGAN_CLIP_VALUE = 0.01
GRADIENT_PENALTY_WEIGHT = 10.0


def check_objective(adversarial_loss, critic_steps=1, clip_value=WGAN_CLIP_VALUE,
                    gradient_penalty_weight=GRADIENT_PENALTY_WEIGHT, label_smoothing=0.0,
                    feature_matching=0.0, historical_averaging=0.0):
    """Validates one set of adversarial options; returns them normalised as a dict.

    Raises:
        ValueError: naming the option, its value and what is expected.
    """
    if adversarial_loss not in OBJECTIVES:
        raise ValueError(f"`adversarial_loss` must be one of {OBJECTIVES}, got {adversarial_loss!r}.")
    if isinstance(critic_steps, bool) or int(critic_steps) != critic_steps or critic_steps < 1:
        raise ValueError(f"`critic_steps` must be an integer >= 1, got {critic_steps!r}.")
    if not float(clip_value) > 0:
        raise ValueError(f"`clip_value` must be > 0, got {clip_value!r}.")
    for name, value in (("gradient_penalty_weight", gradient_penalty_weight),
                        ("feature_matching", feature_matching),
                        ("historical_averaging", historical_averaging)):
        if not float(value) >= 0:
            raise ValueError(f"`{name}` must be >= 0, got {value!r}.")
    if not 0.0 <= float(label_smoothing) < 1.0:
        raise ValueError(f"`label_smoothing` must be in [0, 1), got {label_smoothing!r}.")
    if float(label_smoothing) and adversarial_loss != "bce":
        raise ValueError("`label_smoothing` (one-sided, Salimans et al. 2016) smooths the targets "
                         f"of the BCE discriminator; `adversarial_loss`={adversarial_loss!r} has "
                         "no targets.")
    return {"adversarial_loss": adversarial_loss, "critic_steps": int(critic_steps),
            "clip_value": float(clip_value),
            "gradient_penalty_weight": float(gradient_penalty_weight),
            "label_smoothing": float(label_smoothing), "feature_matching": float(feature_matching),
            "historical_averaging": float(historical_averaging)}


def uses_threshold(adversarial_loss):
    """True where the discriminator-accuracy threshold applies ("bce", "hinge"); see the docstring."""
    return adversarial_loss in THRESHOLDED_OBJECTIVES


def _softplus(x):
    # log(1 + exp(x)), exact for any x (the BCE of `losses.sigmoid_cross_entropy`).
    return ops.relu(x) + ops.log1p(ops.exp(-ops.abs(x)))


def _weighted_mean(values, weights):
    values = ops.reshape(values, (-1,))
    if weights is None:
        return ops.mean(values)
    weights = ops.cast(ops.reshape(weights, (-1,)), values.dtype)
    return ops.sum(values * weights) / ops.maximum(ops.sum(weights), 1.0)


def discriminator_loss(adversarial_loss, real_scores, fake_scores, label_smoothing=0.0,
                       real_weights=None, fake_weights=None):
    """The discriminator's (critic's) loss of one batch, to minimise; a scalar.

    Args:
        adversarial_loss: one of `OBJECTIVES`.
        real_scores: `(B_r, 1)` or `(B_r,)` scores of real images.
        fake_scores: `(B_f, 1)` or `(B_f,)` scores of generated images.
        label_smoothing: float in [0, 1), "bce" only: real targets `1 - label_smoothing`.
        real_weights, fake_weights: optional `(B_r,)` / `(B_f,)` 0/1 masks; the means are then over
            the selected rows (the interleaved D batch of `VAEGAN`).

    Returns:
        "bce": `mean BCE(r, 1 - s) + mean BCE(f, 0)`; "wgan"/"wgan_gp": `mean f - mean r` (the
        negated Wasserstein estimate; the penalty is `gradient_penalty`); "hinge":
        `mean relu(1 - r) + mean relu(1 + f)`.
    """
    if adversarial_loss == "bce":
        target = 1.0 - float(label_smoothing)
        # BCE(r, t) = softplus(r) - t r; BCE(f, 0) = softplus(f).
        real = _softplus(real_scores) - target * real_scores
        return _weighted_mean(real, real_weights) + _weighted_mean(_softplus(fake_scores),
                                                                   fake_weights)
    if adversarial_loss in ("wgan", "wgan_gp"):
        return _weighted_mean(fake_scores, fake_weights) - _weighted_mean(real_scores,
                                                                          real_weights)
    if adversarial_loss == "hinge":
        return (_weighted_mean(ops.relu(1.0 - real_scores), real_weights)
                + _weighted_mean(ops.relu(1.0 + fake_scores), fake_weights))
    raise ValueError(f"`adversarial_loss` must be one of {OBJECTIVES}, got {adversarial_loss!r}.")


def generator_loss(adversarial_loss, fake_scores, weights=None):
    """The generator's adversarial loss, to minimise; a scalar.

    "bce": the non-saturating `mean softplus(-f) = -mean log D(G(z))` (Goodfellow et al. 2014,
    section 3), the same value as `losses.non_saturating_generator_loss`; the others: `-mean f`.
    """
    if adversarial_loss == "bce":
        return _weighted_mean(_softplus(-fake_scores), weights)
    if adversarial_loss in ("wgan", "wgan_gp", "hinge"):
        return -_weighted_mean(fake_scores, weights)
    raise ValueError(f"`adversarial_loss` must be one of {OBJECTIVES}, got {adversarial_loss!r}.")


def decisions_correct(real_scores, fake_scores):
    """Number of right real/fake decisions (score > 0 means "real"), float32 scalar."""
    real = ops.sum(ops.cast(ops.greater(real_scores, 0.0), "float32"))
    fake = ops.sum(ops.cast(ops.less_equal(fake_scores, 0.0), "float32"))
    return real + fake


def gradient_norm_penalty(gradients):
    """`mean_b (||g_b||_2 - 1)^2` of per-example gradients `(B, ...)`: the WGAN-GP penalty term.

    A tiny constant inside the square root keeps its derivative finite at a zero gradient.
    """
    gradients = ops.reshape(gradients, (ops.shape(gradients)[0], -1))
    norms = ops.sqrt(ops.sum(ops.square(gradients), axis=-1) + 1e-12)
    return ops.mean(ops.square(norms - 1.0))


def interpolate(real, fake, epsilon):
    """`eps x + (1 - eps) x_tilde` with per-example `epsilon` `(B,)` in [0, 1]."""
    epsilon = ops.reshape(ops.cast(epsilon, real.dtype), (-1,) + (1,) * (len(real.shape) - 1))
    return epsilon * real + (1.0 - epsilon) * fake


def gradient_penalty(critic, real, fake, epsilon):
    """The WGAN-GP penalty `mean (||grad_x D(x_hat)||_2 - 1)^2` on random interpolates (TF only).

    Args:
        critic: callable images -> scores `(B, 1)`.
        real, fake: images `(B, ...)`; `fake` should be detached from the generator.
        epsilon: `(B,)` draws of U[0, 1], one per example.

    Each example's gradient is that of the summed scores: exact when the critic treats examples
    independently (no BatchNorm in training mode, no minibatch features), as Gulrajani et al.
    (section 4, "No critic batch normalization") require. The penalty is differentiable in the
    critic's weights (double backpropagation).
    """
    return gradient_norm_penalty(input_gradients(critic, interpolate(real, fake, epsilon)))


def input_gradients(critic, images):
    """`grad_x sum_b D(x_b)` `(B, ...)`: each example's score gradient when the critic treats
    examples independently (TF only); differentiable in the critic's weights."""
    import tensorflow as tf

    images = tf.convert_to_tensor(images)
    with tf.GradientTape() as tape:
        tape.watch(images)
        total = ops.sum(ops.cast(critic(images), "float32"))
    return tape.gradient(total, images)


def r1_penalty(critic, real):
    """`mean_b ||grad_x D(x_b)||_2^2` on real images: the R1 regulariser (TF only).

    Mescheder et al. 2018 ("Which Training Methods for GANs do actually Converge?", section 4.1)
    penalise the discriminator's gradient on the data, `R1 = gamma/2 E_x ||grad D(x)||^2`; StyleGAN
    (Karras et al. 2019, appendix C) and StyleGAN2 use it with the non-saturating loss. The caller
    applies `gamma / 2` (and, with lazy regularisation, the interval).

    Args:
        critic: callable images -> scores `(B, 1)`.
        real: images `(B, ...)`.
    """
    gradients = input_gradients(critic, real)
    gradients = ops.reshape(gradients, (ops.shape(gradients)[0], -1))
    return ops.mean(ops.sum(ops.square(gradients), axis=-1))


def path_lengths(synthesis, ws, image_noise):
    """`||J_w^T y||_2` per example: StyleGAN2's path lengths (TF only; Karras et al. 2020,
    section 3.2, equation 4).

    `J_w` is the Jacobian of the generated images with respect to the intermediate latents and
    `y` a random image; the gradient of `sum g(w) * y` is `J_w^T y`. With one w per styled layer
    (`ws` `(B, num_ws, w_dim)`), the squared norm is averaged over the layers, as StyleGAN2's code
    does.

    Args:
        synthesis: callable ws -> images `(B, H, W, C)`.
        ws: `(B, num_ws, w_dim)` (or `(B, w_dim)`).
        image_noise: `(B, H, W, C)` draws of N(0, I) / sqrt(H W).

    Returns:
        `(B,)` path lengths, differentiable in the synthesis network's weights.
    """
    import tensorflow as tf

    ws = tf.convert_to_tensor(ws)
    with tf.GradientTape() as tape:
        tape.watch(ws)
        total = ops.sum(ops.cast(synthesis(ws), "float32") * image_noise)
    gradients = ops.cast(tape.gradient(total, ws), "float32")
    squared = ops.sum(ops.square(gradients), axis=-1)
    if len(squared.shape) > 1:
        squared = ops.mean(squared, axis=1)
    return ops.sqrt(squared + 1e-12)


def feature_matching_loss(real_features, fake_features):
    """`||E d(x) - E d(G(z))||_2^2` over the batch (Salimans et al. 2016, section 3.1).

    Args:
        real_features, fake_features: `(B, ...)` activations of one discriminator layer.
    """
    real = ops.mean(ops.reshape(real_features, (ops.shape(real_features)[0], -1)), axis=0)
    fake = ops.mean(ops.reshape(fake_features, (ops.shape(fake_features)[0], -1)), axis=0)
    return ops.sum(ops.square(real - fake))


def clip_weights(variables, clip_value):
    """Clips every variable to `[-clip_value, clip_value]` in place (WGAN Algorithm 1, line 7)."""
    for variable in variables:
        variable.assign(ops.clip(variable.value, -clip_value, clip_value))


@keras.saving.register_keras_serializable(package="keras_crvae")
class HistoricalAverage(keras.layers.Layer):
    """Historical averaging (Salimans et al. 2016, section 3.3): `||theta - (1/t) sum_i theta_i||^2`.

    Holds the running mean of the watched variables' past values (non-trainable, saved with the
    model, so a resumed run continues it). `penalty(variables)` is the squared distance of the
    current values from that mean (0 before the first `update`); `update(variables)` adds the current
    values to the mean after a step: `mean += (theta - mean) / t`.

    Args:
        shapes: list of variable shapes, in the order `penalty`/`update` receive the variables.

    The running means are replicated state: every replica computes the same value from the same
    (all-reduced) parameters, so only the first replica's assignment is kept.
    """

    def __init__(self, shapes, **kwargs):
        super().__init__(**kwargs)
        self.shapes = [tuple(int(d) for d in shape) for shape in shapes]
        self.means = [self.add_weight(shape=shape, initializer="zeros", trainable=False,
                                      aggregation="only_first_replica", name=f"mean_{i}")
                      for i, shape in enumerate(self.shapes)]
        self.count = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                     aggregation="only_first_replica", name="count")
        self.built = True

    def penalty(self, variables):
        """Scalar `sum_v ||v - mean_v||^2`, 0 before any `update`."""
        total = ops.zeros((), "float32")
        for variable, mean in zip(variables, self.means, strict=True):
            value = ops.cast(variable.value if hasattr(variable, "value") else variable, "float32")
            total = total + ops.sum(ops.square(value - mean.value))
        return total * ops.minimum(self.count.value, 1.0)

    def update(self, variables):
        count = self.count.value + 1.0
        for variable, mean in zip(variables, self.means, strict=True):
            value = ops.cast(variable.value, "float32")
            mean.assign(mean.value + (value - mean.value) / count)
        self.count.assign(count)

    def call(self, inputs):
        return inputs

    def get_config(self):
        config = super().get_config()
        config["shapes"] = [list(shape) for shape in self.shapes]
        return config


def apply_discriminator_update(optimizer, grads, variables, accuracy, adversarial_loss,
                               state=None, snapshot=None):
    """Applies the discriminator's gradients; returns 1.0 (updated) or 0.0 (skipped), float32.

    With a `ThresholdedAdam` and a classifier objective (`uses_threshold`), the update is skipped when
    `accuracy` (over the global batch) exceeds its threshold, and then every variable of `state`
    (e.g. the discriminator's BatchNorm statistics, spectral-norm vectors) is restored from
    `snapshot`, so a skipped step is an exact no-op. Otherwise the gradients are applied (a
    `ThresholdedAdam` then acts as plain Adam: its gate stays open).
    """
    from keras_crvae.optimizers import ThresholdedAdam

    if isinstance(optimizer, ThresholdedAdam) and uses_threshold(adversarial_loss):
        updated = optimizer.apply_thresholded(grads, variables, accuracy)
        if state is not None:
            keep = ops.greater(updated, 0.5)
            for variable, before in zip(state, snapshot):
                variable.assign(ops.where(keep, variable.value, before))
        return updated
    optimizer.apply(grads, variables)
    return ops.ones((), "float32")


def update_trackers(trackers, values):
    """Updates each tracker of `trackers` (name -> `keras.metrics.Mean`) whose value in `values`
    (name -> scalar tensor or None) is given; returns `{name: result}` of those, a step's logs.

    None leaves a tracker out of this step's logs (a test step has no `d_updated`)."""
    for name, tracker in trackers.items():
        if values.get(name) is not None:
            tracker.update_state(values[name])
    return {name: tracker.result() for name, tracker in trackers.items()
            if values.get(name) is not None}


class TwoPlayerCompile:
    """What the two-player models (`VAEGAN`, `GAN`, `Stage2`) share about their optimizers: one per
    player, `model.optimizer` the generator's (otherwise Keras makes an unused optimizer that
    `BackupAndRestore` would build on every weight), both built at compile time under the caller's
    distribution scope so their slots mirror like the weights, and both saved in `.keras` files.

    Mix in before `keras.Model`; a subclass's `compile` picks its defaults and calls
    `_compile_players`.
    """

    def _compile_players(self, generator_optimizer, discriminator_optimizer, generator_variables,
                         **kwargs):
        self.generator_optimizer = generator_optimizer
        self.discriminator_optimizer = discriminator_optimizer
        super().compile(optimizer=generator_optimizer, **kwargs)
        generator_optimizer.build(generator_variables)
        discriminator_optimizer.build(self.discriminator.trainable_variables)

    def _begin_train_step(self, data):
        """The opening of the encoder-decoder GANs' `train_step`s (`VAEGAN`, `Stage2`): the
        compile check, the batch (`self._unpack`, `self._check_batch`) and the replica context.

        Returns `(images, posterior_noise, prior_noise, replica_context, num_replicas)`.
        """
        import tensorflow as tf  # TF-only, like the train_steps that call it.

        if self.generator_optimizer is None:
            raise RuntimeError("Call `compile()` before `fit()`.")
        images, posterior_noise, prior_noise = self._unpack(data)
        self._check_batch(images)
        return (images, posterior_noise, prior_noise, tf.distribute.get_replica_context(),
                tf.distribute.get_strategy().num_replicas_in_sync)

    def get_compile_config(self):
        if self.generator_optimizer is None:
            return None
        return {
            "generator_optimizer": keras.saving.serialize_keras_object(self.generator_optimizer),
            "discriminator_optimizer": keras.saving.serialize_keras_object(
                self.discriminator_optimizer),
            "jit_compile": self.jit_compile,
        }

    def compile_from_config(self, config):
        self.compile(
            generator_optimizer=keras.saving.deserialize_keras_object(config["generator_optimizer"]),
            discriminator_optimizer=keras.saving.deserialize_keras_object(
                config["discriminator_optimizer"]),
            jit_compile=config.get("jit_compile", "auto"))

