"""Standalone GANs of the lecture: DCGAN, WGAN (weight clipping), WGAN-GP and hinge, one `GAN` class.

The objective is a switch (`keras_crvae.losses.adversarial`); the architecture is the networks'
business (`keras_crvae.networks.build_dcgan_generator` / `build_dcgan_discriminator`). One
`train_step` (TensorFlow-only, like `VAEGAN`'s) is one generator iteration of the lecture's algorithms:

    for k in 1..n_critic:                                       (WGAN / WGAN-GP Algorithm 1)
        x   = rows k, k + n, k + 2n, ... of the batch           (a fresh real batch of m = B / n)
        z ~ p(z);  x~ = G(z) (no gradient to G)
        L_D = discriminator_loss(D(x), D(x~)) [+ lambda GP(x, x~)] [+ h ||w - avg w||^2]
        w <- optimizer_D(w, grad L_D);  [w <- clip(w, -c, c)]
    z ~ p(z)  (m draws)
    L_G = generator_loss(D(G(z))) [+ fm ||E d(x) - E d(G(z))||^2] [+ h ||theta - avg theta||^2]
    theta <- optimizer_G(theta, grad L_G)

so a batch of `B` real images feeds `n_critic` critic steps of `B / n_critic` fresh images each,
exactly as Algorithm 1 samples a new real batch per critic iteration (`B` must be divisible by
`n_critic`). The rows are interleaved (`i % n == k`) so that a `MirroredStrategy` splitting the batch
into contiguous shards gives every replica its part of the same sub-batches, and noise is drawn
per replica as rows of one global draw (`distribute.replica_normal`): a mirrored step then equals a
one-device step (when no layer depends on the per-replica batch: BatchNorm synchronised, no
minibatch discrimination, no feature matching, whose batch means are per replica).

For "bce" / "hinge" with a `ThresholdedAdam` discriminator optimizer the crVAE-GAN threshold applies
(skip when D is more than `threshold` accurate on the global batch); never for the WGANs
(`adversarial.uses_threshold`).

Feature quantization (FQ-GAN, Zhao et al. 2020, section 3; the lecture's "Feature Quantized GAN"):
with `feature_quantization={"layer": ..., "num_codes": K, ...}` the discriminator D = top o bottom is
split after the named layer and run as D(x) = top(f_Q(bottom(x))), f_Q the EMA `VectorQuantizer`
applied to the feature vectors (last axis) of bottom's map. The QUANTIZED features go forward
(straight-through gradient), not only the loss as in the authors' released code. In each critic step
the real and the fake feature maps are quantized in ONE call, so the dictionary takes exactly one EMA
step per discriminator step, on both batches (the paper's dictionary follows real and fake features);
the generator step, the gradient penalty and R1 use the dictionary without updating it. The critic
loss gains `beta * mean (f - sg(e))^2` (mean over examples, positions and channels: VQ-VAE's
commitment term at the scale of one feature), reported as `fq_loss` with `fq_perplexity` and
`fq_usage` (`vector_quantizer.codebook_statistics` of each critic step's codes, epoch means).

Reference: lecture sections "DCGAN", "WGAN", "Wasserstein GAN with Gradient Penalty", "Improved
techniques for training GANs" and "Feature Quantized GAN"; Radford et al. 2016; Arjovsky et al.
2017; Gulrajani et al. 2017; Salimans et al. 2016; Zhao et al. 2020 (FQ-GAN).
"""

import types

import keras
import numpy as np
from keras import ops

from keras_crvae import distribute
from keras_crvae.layers.vector_quantizer import VectorQuantizer, codebook_statistics
from keras_crvae.losses import adversarial
from keras_crvae.models.base import (SIGNED_IMAGE_RANGE, run_network, to_float32,
                                     validate_images, with_deserialized)

IMAGE_RANGE = SIGNED_IMAGE_RANGE
_OPTIONS = ("adversarial_loss", "critic_steps", "clip_value", "gradient_penalty_weight",
            "label_smoothing", "feature_matching", "historical_averaging")
FEATURE_QUANTIZATION_METRICS = ("fq_loss", "fq_perplexity", "fq_usage")
# The `feature_quantization` keys besides "layer": `VectorQuantizer`'s arguments.
_QUANTIZER_KEYS = ("num_codes", "commitment_cost", "decay", "epsilon", "restart_threshold", "seed")


def check_feature_quantization(options):
    """A copy of a `feature_quantization` dict (None passes), checked: "layer" (a layer name or an
    index into the discriminator's `layers`) and "num_codes" are required; the other keys are
    `VectorQuantizer`'s (`commitment_cost`, `decay`, `epsilon`, `restart_threshold`, `seed`)."""
    if options is None:
        return None
    if not isinstance(options, dict):
        raise ValueError(f"`feature_quantization` must be None or a dict; got {options!r}.")
    unknown = sorted(set(options) - {"layer", *_QUANTIZER_KEYS})
    missing = [key for key in ("layer", "num_codes") if key not in options]
    if unknown or missing:
        raise ValueError(f"`feature_quantization` takes the keys 'layer', "
                         f"{', '.join(map(repr, _QUANTIZER_KEYS))}; 'layer' and 'num_codes' are "
                         f"required. Unknown: {unknown}; missing: {missing}.")
    return dict(options)


def split_discriminator(discriminator, layer):
    """`(bottom, top)` functional models with `top(bottom(x)) == discriminator(x)`, split after
    `layer` (a name or an index into `discriminator.layers`). They share the discriminator's
    layers (and weights); `top` takes bottom's feature map and returns the discriminator's outputs.

    Works for any functional discriminator whose every output depends on the split layer's
    output, e.g. `networks.build_dcgan_discriminator` (the DCGAN and StyleGAN presets' critic)."""
    if not isinstance(discriminator, keras.Model) or not hasattr(discriminator, "_nodes_by_depth"):
        raise ValueError("`feature_quantization` needs a functional `keras.Model` discriminator.")
    count = len(discriminator.layers)
    if isinstance(layer, int) and not isinstance(layer, bool):
        if not -count <= layer < count or layer % count == 0:
            raise ValueError(f"`feature_quantization['layer']` = {layer} is not an inner layer of "
                             f"the discriminator ({count} layers, 0 the input).")
        split = discriminator.layers[layer]
    else:
        names = [candidate.name for candidate in discriminator.layers]
        if layer not in names[1:]:
            raise ValueError(f"`feature_quantization['layer']` = {layer!r} is not an inner layer "
                             f"of the discriminator; its layers: {names}.")
        split = discriminator.get_layer(layer)
    features = split.output
    bottom = keras.Model(discriminator.input, features, name="discriminator_bottom")
    try:
        top = keras.Model(features, discriminator.outputs, name="discriminator_top")
    except ValueError as error:
        raise ValueError(f"The discriminator cannot be split after {split.name!r}: every output "
                         f"must depend on that layer's output only ({error}).") from None
    return bottom, top


@keras.saving.register_keras_serializable(package="keras_crvae")
class GAN(adversarial.TwoPlayerCompile, keras.Model):
    """A generator and a discriminator (critic) trained with a chosen adversarial objective.

    Args:
        generator: `keras.Model`, z `(B, *latent_shape)` -> images `(B, *image_shape)` in [-1, 1].
        discriminator: `keras.Model`, images -> logits `(B, 1)`, or `[logits, features]` (the
            features feature matching uses), or `[logits, features, q]` (InfoGAN).
        adversarial_loss: "bce" (default; DCGAN's non-saturating loss), "wgan", "wgan_gp", "hinge".
        critic_steps: int, default 1. Discriminator steps per generator step (WGANs: 5).
        clip_value: float, default 0.01. "wgan": every discriminator weight is clipped to
            `[-c, c]` after each critic step.
        gradient_penalty_weight: float, default 10 (lambda). "wgan_gp" only.
        label_smoothing: float in [0, 1), default 0. One-sided ("bce" only).
        feature_matching: float, default 0. Weight of the feature-matching term added to the
            generator's loss (needs discriminator features).
        historical_averaging: float, default 0. Weight of each player's historical-averaging penalty.
        feature_quantization: None (default) or a dict: FQ-GAN's quantized discriminator (module
            docstring). Keys: "layer" (name or index of the discriminator layer whose output
            `(B, ..., C)` is quantized along C), "num_codes" (K), and optionally "commitment_cost"
            (beta, default 0.25), "decay" (gamma, default 0.99), "epsilon", "restart_threshold"
            (dead-code restarts, default 1; 0 disables), "seed": `layers.VectorQuantizer`'s.
        seed: int or None. Seed of the noise (and of WGAN-GP's interpolation weights).

    Inputs to `fit`: batches of real images `(B, *image_shape)` in [-1, 1].

    Metrics: `loss` (generator), `d_loss` (last critic step, without penalties), `gp`,
    `w_distance` (`E D(x) - E D(x~)`, the critic's Wasserstein estimate for the WGANs),
    `d_accuracy`, `d_updated`; with feature quantization `fq_loss` (the weighted commitment term),
    `fq_perplexity` and `fq_usage` (dictionary perplexity and fraction of codes used per critic step).
    """

    decoder_outputs = "images"
    image_range = IMAGE_RANGE
    metric_names = ("loss", "d_loss", "gp", "w_distance", "d_accuracy", "d_updated")

    def __init__(self, generator, discriminator, adversarial_loss="bce", critic_steps=1,
                 clip_value=adversarial.WGAN_CLIP_VALUE,
                 gradient_penalty_weight=adversarial.GRADIENT_PENALTY_WEIGHT, label_smoothing=0.0,
                 feature_matching=0.0, historical_averaging=0.0, feature_quantization=None,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        options = adversarial.check_objective(
            adversarial_loss, critic_steps, clip_value, gradient_penalty_weight, label_smoothing,
            feature_matching, historical_averaging)
        for name, value in options.items():
            setattr(self, name, value)
        self.seed = seed
        self.generator = generator
        self.discriminator = discriminator
        self.latent_shape = tuple(generator.input_shape[1:])
        self.image_shape = tuple(generator.output_shape[1:])
        outputs = discriminator.output if isinstance(discriminator, keras.Model) else None
        self._discriminator_outputs = len(outputs) if isinstance(outputs, (list, tuple)) else 1
        if self.feature_matching and self._discriminator_outputs < 2:
            raise ValueError("`feature_matching` needs a discriminator returning [logits, features].")
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.generator_history = self.discriminator_history = None
        if self.historical_averaging:
            self.generator_history = adversarial.HistoricalAverage(
                [v.shape for v in generator.trainable_variables], name="generator_history")
            self.discriminator_history = adversarial.HistoricalAverage(
                [v.shape for v in discriminator.trainable_variables], name="discriminator_history")
        self.feature_quantization = check_feature_quantization(feature_quantization)
        self.feature_quantizer = self._discriminator_parts = None
        if self.feature_quantization is not None:
            # Held in a namespace, which Keras does not track: the parts' weights are the
            # discriminator's, saved once under it.
            self._discriminator_parts = types.SimpleNamespace(parts=split_discriminator(
                discriminator, self.feature_quantization["layer"]))
            self.feature_quantizer = VectorQuantizer(
                **{k: v for k, v in self.feature_quantization.items() if k in _QUANTIZER_KEYS},
                name="feature_quantizer")
            self.feature_quantizer.build(self._discriminator_parts.parts[0].output.shape)
            self.metric_names = type(self).metric_names + FEATURE_QUANTIZATION_METRICS
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.metric_names}
        self.generator_optimizer = None
        self.discriminator_optimizer = None
        self.built = True

    # --- compile / serialization ----------------------------------------------------------------

    def compile(self, generator_optimizer=None, discriminator_optimizer=None, **kwargs):
        """One optimizer per player; default Adam(2e-4, beta_1=0.5) for both (DCGAN, section 4)."""
        self._compile_players(
            generator_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5),
            discriminator_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5),
            self.generator.trainable_variables, **kwargs)

    def get_config(self):
        config = {"name": self.name, "seed": self.seed,
                  "generator": keras.saving.serialize_keras_object(self.generator),
                  "discriminator": keras.saving.serialize_keras_object(self.discriminator)}
        config.update({name: getattr(self, name) for name in _OPTIONS})
        if self.feature_quantization is not None:  # absent when off: today's configs unchanged
            config["feature_quantization"] = dict(self.feature_quantization)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**with_deserialized(config, "generator", "discriminator"))

    @property
    def metrics(self):
        return list(self.trackers.values())

    @property
    def decoder(self):
        """The generator (the serving contract's name for the latent -> image network)."""
        return self.generator

    # --- noise ----------------------------------------------------------------------------------

    def draw_latents(self, batch_size):
        """`(latents (m, *latent_shape), codes)` for one step; codes are None for a plain GAN.

        Under a TF strategy each replica gets its rows of one global draw (`replica_normal`)."""
        return distribute.replica_normal((batch_size,) + self.latent_shape, self.seed_generator,
                                         dtype="float32"), None

    def prior_latents(self, num_samples, seed=0):
        """NumPy `(num_samples, *latent_shape)` latents of the prior for fixed sample grids."""
        rng = np.random.default_rng(seed)
        return rng.standard_normal((int(num_samples),) + self.latent_shape).astype("float32")

    def generate(self, latents, training):
        """The generator's float32 images for one training or test step's latents.

        A subclass changes how training images are generated here (`StyleGAN`: style mixing)."""
        return to_float32(self.generator(latents, training=training))

    # --- the objective --------------------------------------------------------------------------

    def _discriminate(self, images, training):
        """`(logits (B, 1), features or None, q or None)`, float32.

        With feature quantization: top(f_Q(bottom(x))) with the dictionary frozen."""
        if self.feature_quantizer is None:
            return self._outputs(self.discriminator(images, training=training))
        bottom, top = self._discriminator_parts.parts
        quantized = self.feature_quantizer(bottom(images, training=training), training=False)[0]
        return self._outputs(top(quantized, training=training))

    def _discriminate_pair(self, real, fake, training):
        """`_discriminate` of a real and a fake batch, and the feature-quantization terms
        (`fq_loss`, `fq_perplexity`, `fq_usage`; empty when off). With feature quantization both
        batches' feature maps go through the quantizer in one call: one EMA step when `training`."""
        if self.feature_quantizer is None:
            return self._discriminate(real, training), self._discriminate(fake, training), {}
        bottom, top = self._discriminator_parts.parts
        real_features = bottom(real, training=training)
        fake_features = bottom(fake, training=training)
        quantized, codes, commitment = self.feature_quantizer(
            ops.concatenate([real_features, fake_features], axis=0), training=training)
        num_real = ops.shape(real_features)[0]
        elements = float(np.prod(real_features.shape[1:]))
        perplexity, usage = codebook_statistics(codes, self.feature_quantizer.num_codes)
        terms = {"fq_loss": ops.mean(commitment) / elements, "fq_perplexity": perplexity,
                 "fq_usage": usage}
        return (self._outputs(top(quantized[:num_real], training=training)),
                self._outputs(top(quantized[num_real:], training=training)), terms)

    @staticmethod
    def _outputs(outputs):
        """`(logits, features or None, q or None)` float32 of a discriminator's outputs."""
        if not isinstance(outputs, (list, tuple)):
            return to_float32(outputs), None, None
        outputs = to_float32(list(outputs)) + [None, None]
        return outputs[0], outputs[1], outputs[2]

    def code_loss(self, q, codes):
        """The InfoGAN term (0 for a plain GAN): `-lambda mean log Q(c|x)`; see `InfoGAN`."""
        return ops.zeros((), "float32"), ops.zeros((), "float32")

    def critic_terms(self, real, fake, codes=None, epsilon=None, training=True, penalty=True):
        """The discriminator's loss terms on one real and one (detached) fake batch.

        Args:
            real, fake: images `(m, *image_shape)`.
            codes: the InfoGAN codes of `fake`, or None.
            epsilon: `(m,)` interpolation weights for "wgan_gp" (drawn when None).
            training: bool.
            penalty: bool, default True. False skips the gradient penalty (TF-only; reported 0).

        Returns:
            dict: `critic_loss` (what the optimizer minimises), `d_loss`, `gp`, `mi`, `w_distance`,
            `d_correct`, `d_count`, and with feature quantization `fq_loss`, `fq_perplexity`,
            `fq_usage` (the dictionary takes one EMA step when `training`).
        """
        (real_logits, _, _), (fake_logits, _, q), fq_terms = self._discriminate_pair(
            real, fake, training)
        terms = {"d_loss": adversarial.discriminator_loss(
            self.adversarial_loss, real_logits, fake_logits, self.label_smoothing)}
        terms["w_distance"] = ops.mean(real_logits) - ops.mean(fake_logits)
        terms["gp"] = ops.zeros((), "float32")
        if self.adversarial_loss == "wgan_gp" and penalty:
            if epsilon is None:
                epsilon = distribute.replica_uniform((ops.shape(real)[0],), self.seed_generator,
                                                     dtype="float32")
            terms["gp"] = adversarial.gradient_penalty(
                lambda x: self._discriminate(x, training)[0], real, fake, epsilon)
        terms["code_loss"], terms["mi"] = self.code_loss(q, codes)
        terms["critic_loss"] = (terms["d_loss"] + self.gradient_penalty_weight * terms["gp"]
                                + terms["code_loss"])
        if fq_terms:  # the commitment term enters D's loss (beta is inside `fq_loss`)
            terms.update(fq_terms)
            terms["critic_loss"] = terms["critic_loss"] + fq_terms["fq_loss"]
        if self.discriminator_history is not None:
            terms["critic_loss"] += self.historical_averaging * self.discriminator_history.penalty(
                self.discriminator.trainable_variables)
        terms["d_correct"] = adversarial.decisions_correct(real_logits, fake_logits)
        terms["d_count"] = ops.cast(ops.shape(real)[0] + ops.shape(fake)[0], "float32")
        return terms

    def generator_terms(self, latents, codes=None, real=None, training=True):
        """The generator's loss on latents `(m, *latent_shape)`; `real` images for feature matching.

        Returns:
            dict: `generator_loss`, `g_adv`, `fm`, `mi`.
        """
        fake = self.generate(latents, training=training)
        fake_logits, fake_features, q = self._discriminate(fake, training)
        terms = {"g_adv": adversarial.generator_loss(self.adversarial_loss, fake_logits)}
        terms["fm"] = ops.zeros((), "float32")
        if self.feature_matching:
            _, real_features, _ = self._discriminate(real, training)
            terms["fm"] = adversarial.feature_matching_loss(real_features, fake_features)
        code_loss, terms["mi"] = self.code_loss(q, codes)
        terms["generator_loss"] = terms["g_adv"] + self.feature_matching * terms["fm"] + code_loss
        if self.generator_history is not None:
            terms["generator_loss"] += self.historical_averaging * self.generator_history.penalty(
                self.generator.trainable_variables)
        return terms

    def _check_batch(self, images):
        if tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(f"`images` must have shape (batch, {', '.join(map(str, self.image_shape))})"
                             f"; got {tuple(images.shape)}.")
        static_batch = images.shape[0]
        if static_batch is not None and static_batch % self.critic_steps:
            raise ValueError(f"The batch size ({static_batch}) must be divisible by `critic_steps` "
                             f"({self.critic_steps}): each critic step takes its own rows. Use "
                             "drop_remainder=True in the pipeline.")

    @staticmethod
    def _unpack(data):
        if isinstance(data, (list, tuple)):
            data = data[0]
        if isinstance(data, dict):
            data = data["images"]
        return ops.cast(data, "float32")

    def _sub_batches(self, images):
        """The `critic_steps` interleaved sub-batches: sub-batch k holds rows `i % n == k`."""
        n = self.critic_steps
        if n == 1:
            return [images]
        grouped = ops.reshape(images, (-1, n) + self.image_shape)
        return [grouped[:, k] for k in range(n)]

    def train_step(self, data):
        import tensorflow as tf  # TF-only: GradientTape and replica contexts.

        if self.generator_optimizer is None:
            raise RuntimeError("Call `compile()` before `fit()`.")
        images = self._unpack(data)
        self._check_batch(images)
        replica_context = tf.distribute.get_replica_context()
        scale = 1.0 / tf.distribute.get_strategy().num_replicas_in_sync
        d_variables = self.discriminator.trainable_variables
        g_variables = self.generator.trainable_variables
        thresholded = adversarial.uses_threshold(self.adversarial_loss)
        for real in self._sub_batches(images):
            batch_size = ops.shape(real)[0]
            latents, codes = self.draw_latents(batch_size)
            fake = ops.stop_gradient(self.generate(latents, training=True))
            state = snapshot = None
            if thresholded:  # a skipped step must also restore D's BatchNorm statistics
                state = self.discriminator.non_trainable_variables
                snapshot = [tf.identity(v.value) for v in state]
            with tf.GradientTape() as tape:
                terms = self.critic_terms(real, fake, codes)
                loss = terms["critic_loss"] * scale  # gradients are summed over replicas
            grads = tape.gradient(loss, d_variables)
            correct, count = terms["d_correct"], terms["d_count"]
            if replica_context is not None:
                correct, count = replica_context.all_reduce(tf.distribute.ReduceOp.SUM,
                                                            [correct, count])
            accuracy = correct / count
            updated = adversarial.apply_discriminator_update(
                self.discriminator_optimizer, grads, d_variables, accuracy, self.adversarial_loss,
                state, snapshot)
            if self.adversarial_loss == "wgan":
                adversarial.clip_weights(d_variables, self.clip_value)
            if self.discriminator_history is not None:
                self.discriminator_history.update(d_variables)

        latents, codes = self.draw_latents(batch_size)
        with tf.GradientTape() as tape:
            g_terms = self.generator_terms(latents, codes, real=real)
            loss = g_terms["generator_loss"] * scale
        grads = tape.gradient(loss, g_variables)
        self.generator_optimizer.apply(grads, g_variables)
        if self.generator_history is not None:
            self.generator_history.update(g_variables)
        return self._update_metrics(terms, g_terms, accuracy, updated)

    def test_step(self, data):
        """The losses on a batch without updates (no gradient penalty: `gp` is reported as 0)."""
        images = self._unpack(data)
        self._check_batch(images)
        latents, codes = self.draw_latents(ops.shape(images)[0])
        fake = self.generate(latents, training=False)
        terms = self.critic_terms(images, fake, codes, training=False, penalty=False)
        g_terms = self.generator_terms(latents, codes, real=images, training=False)
        return self._update_metrics(terms, g_terms, terms["d_correct"] / terms["d_count"], None)

    def _update_metrics(self, terms, g_terms, accuracy, updated):
        values = {"loss": g_terms["generator_loss"], "d_loss": terms["d_loss"], "gp": terms["gp"],
                  "w_distance": terms["w_distance"], "d_accuracy": accuracy, "d_updated": updated,
                  "mi": terms["mi"]}
        values.update({name: terms[name] for name in FEATURE_QUANTIZATION_METRICS if name in terms})
        return adversarial.update_trackers(self.trackers, values)

    # --- the public API: decode / sample --------------------------------------------------------

    def call(self, latents, training=False):
        """Images `(B, *image_shape)` in [-1, 1] for latents `(B, *latent_shape)`."""
        return to_float32(self.generator(latents, training=training))

    def decode(self, z):
        """Images `(B, *image_shape)` in [-1, 1] for latents `z` `(B, *latent_shape)`."""
        validate_images(z, self.latent_shape, name="z", value_range=None)
        return run_network(self.generator, z)

    def sample(self, num_samples, seed=None):
        """Draws `num_samples` images in [-1, 1] from the prior (`prior_latents`)."""
        if int(num_samples) < 1:
            raise ValueError(f"`num_samples` must be >= 1, got {num_samples}.")
        if seed is None:
            seed = int(np.random.default_rng().integers(2 ** 31))
        return self.decode(self.prior_latents(num_samples, seed=seed))
