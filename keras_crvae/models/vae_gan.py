"""VAE-GAN and crVAE-GAN: VAEs with a pixel-level reconstruction loss plus a GAN and an MI loss.

One training iteration (supplement section D of Shang et al. 2018; `train_test/train_test_lstm.lua` and
`train_test_baseline.lua` of GitHub `WendyShang/crVAE`), for a batch `x` of `B` images in [-1, 1]:

    z ~ q(z|x)  (reparameterised),     z_p ~ N(0, I)
    x_r, u_r = G(z),                   x_p, u_p = G(z_p)          (u = LSTM(z), crVAE-GAN only)
    L_recon  = mean over B*H*W*C of (x_r - x)^2
    L_prior  = (1/B) sum_b sum_i alpha_i KL_i(q(z|x_b) || N(0, I))   (alpha1 / alpha2 per channel block)
    L_D      = BCE(D(x_r), 1) + BCE(D(x_p), 1)                        (non-saturating, batch means)
    L_MI     = mean (Q(x_r) - sg(u_r))^2 + mean (Q(x_p) - sg(u_p))^2  (Q shares D's trunk)
    encoder/decoder loss      = L_recon + L_prior + beta * L_D + kappa * L_MI
    discriminator batch       = interleaved: positions i % 4 in {0, 1} real x, i % 4 == 2 prior samples,
                                i % 4 == 3 reconstructions (50/25/25, as the reference's `-fakeLabel 4`)
    discriminator/Q loss      = mean BCE on that batch + L_MI   (gradients w.r.t. D and Q only)

The adversarial objective is a switch (`adversarial_loss`, `keras_crvae.losses.adversarial`): "bce"
(the above, default), "wgan" (critic loss `E D(fake) - E D(real)` over the D batch's rows, weights clipped
to `[-c, c]` after every critic update), "wgan_gp" (plus `lambda E (||grad D(x_hat)|| - 1)^2` on
interpolates between each real image and a detached fake: the prior sample for even positions, the
reconstruction for odd ones, one `eps ~ U[0, 1]` per example) or "hinge"; the generator's `L_D` is
then `-E D(fake)`. `critic_steps=n` runs `n - 1` discriminator-only updates (fresh prior noise, same
real batch: the encoder/decoder need that batch too) before the joint step, so D takes `n` steps per
encoder/decoder step. The improved techniques (`label_smoothing`, "bce" only; `feature_matching` on
D's trunk features, added to the encoder/decoder loss; `historical_averaging` for both players) are
switches as in `keras_crvae.models.GAN`; all default off.

Both updates use the same forward pass (simultaneous updates); the discriminator's update goes through
`ThresholdedAdam.apply_thresholded` with its accuracy over the global batch, so it is skipped when the
discriminator is already more than 90% accurate. A skipped step is an exact no-op for the whole
discriminator: its weights, optimizer state, and the state its training-mode forward passes change
(spectral-norm vectors and normalised kernels, BatchNorm statistics) are restored bit for bit. The
threshold applies to the classifier objectives ("bce", "hinge") only: a WGAN critic is not a
classifier and must be trained towards its optimum, so with "wgan" / "wgan_gp" every update is applied
(`adversarial.uses_threshold`).

Differences from the reference Torch code, each available or documented:
- The reference's prior pass weights the adversarial gradient with kappa and the MI gradient with beta
  (swapped); `swap_prior_pass_weights=True` reproduces that. Default: the paper's objective.
- The reference multiplies the MI gradient per channel block by 0.1/1.5/1.5/1.25/0.1/0.1/1/1 when
  training Q; `mi_block_weights` applies such weights to the MI loss (both sides). Default: none.
- The reference keeps training Q (and the trunk, from the MI loss) when the GAN head's update is
  skipped; here Q belongs to the discriminator and the whole discriminator update is skipped, so a
  skipped step is exactly a no-op.
- The reference updates its sub-networks one after another within an iteration; we update the
  generator and the discriminator simultaneously from one forward pass.

The discriminator's D-trunk-at-LR/2 and LR warm-up (/50, then /5) are `ThresholdedAdam` options
(`lr_multipliers={"trunk": 0.5}`, `warmup=((10, 0.02), (30, 0.2))`); presets expose them.

`train_step` is TensorFlow-only (it uses `tf.GradientTape` and `tf.distribute` replica contexts);
the rest (encode / decode / sample, `test_step` losses) uses `keras.ops`.
"""

import keras
import numpy as np
from keras import ops

from keras_crvae import distribute, losses
from keras_crvae.layers import average_batch_norm_statistics
from keras_crvae.losses import adversarial
from keras_crvae.models.base import (SIGNED_IMAGE_RANGE, EncoderDecoderAPI,
                                     check_encoder_decoder, to_float32, with_deserialized)
from keras_crvae.optimizers import ThresholdedAdam

IMAGE_RANGE = SIGNED_IMAGE_RANGE


def discriminator_batch_masks(batch_size):
    """Boolean masks `(is_prior, is_reconstruction)` of shape `(batch_size,)` for the D batch.

    Position `i` holds a prior sample when `i % 4 == 2`, a reconstruction when `i % 4 == 3` and the
    real image otherwise: 50% real, 25% / 25% fake for any batch size divisible by 4, exactly as the
    reference's `-fakeLabel 4` (1-based positions 3 and 4 of every 4). Interleaving keeps the
    composition identical when a distribution strategy splits the batch into contiguous shards.
    """
    position = ops.mod(ops.arange(batch_size), 4)
    return ops.equal(position, 2), ops.equal(position, 3)


@keras.saving.register_keras_serializable(package="keras_crvae")
class VAEGAN(adversarial.TwoPlayerCompile, EncoderDecoderAPI, keras.Model):
    """VAE-GAN (Larsen et al. 2016) with pixel-level reconstruction, as in Shang et al. (2018).

    Args:
        encoder: `keras.Model`, images `(B, H, W, 3)` in [-1, 1] -> `[mean, log_var]`, each
            `(B, *latent_shape)`.
        decoder: `keras.Model`, z -> images in [-1, 1] (tanh), or z -> `[images, u]` for the MI loss.
        discriminator: layer or model, images -> logits `(B, 1)`, or `[logits, q (B, *u_shape)]`.
        kl_weight: float or list of per-channel-block floats, default 3e-4 (alpha; alpha1/alpha2 as
            `losses.two_level_block_weights`).
        adversarial_weight: float, default 0.01 (beta).
        mi_weight: float, default 0.0 (kappa). > 0 needs `u` from the decoder and a Q head.
        mi_block_weights: list of per-channel-block floats or None, default None.
        swap_prior_pass_weights: bool, default False. Reference behaviour (see module docstring).
        adversarial_loss: "bce" (default), "wgan", "wgan_gp" or "hinge"
            (`keras_crvae.losses.adversarial`).
        critic_steps: int, default 1. Discriminator updates per encoder/decoder update.
        clip_value: float, default 0.01 ("wgan").
        gradient_penalty_weight: float, default 10 ("wgan_gp").
        label_smoothing: float, default 0 (one-sided, "bce").
        feature_matching: float, default 0. Weight of `||E d(x) - E d(x_p)||^2 +
            ||E d(x) - E d(x_r)||^2` on D's trunk features in the encoder/decoder loss.
        historical_averaging: float, default 0. Weight of both players' historical averaging.
        seed: int or None. Seed of the posterior and prior noise.

    Inputs to `fit`: batches of images, or dicts `{"images", "posterior_noise", "prior_noise"}` with
    explicit standard-normal noise `(B, *latent_shape)` (for reproducible tests and distribution
    checks).

    Metrics: `loss` (encoder/decoder), `recon`, `kl`, `kl_block_<t>` (with block weights), `g_adv`,
    `mi`, `d_loss`, `d_accuracy`, `d_updated` (fraction of steps the discriminator updated); `gp`
    with "wgan_gp", `fm` with feature matching.

    Reference: Larsen et al., "Autoencoding beyond pixels using a learned similarity metric", ICML
    2016; `train_test/train_test_baseline.lua` of WendyShang/crVAE.
    """

    decoder_outputs = "images"
    image_range = IMAGE_RANGE

    def __init__(self, encoder, decoder, discriminator, kl_weight=3e-4, adversarial_weight=0.01,
                 mi_weight=0.0, mi_block_weights=None, swap_prior_pass_weights=False,
                 adversarial_loss="bce", critic_steps=1, clip_value=adversarial.WGAN_CLIP_VALUE,
                 gradient_penalty_weight=adversarial.GRADIENT_PENALTY_WEIGHT, label_smoothing=0.0,
                 feature_matching=0.0, historical_averaging=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        # === Config ===
        if isinstance(kl_weight, (int, float, np.floating)):
            self.kl_weight = float(kl_weight)
        else:
            self.kl_weight = [float(w) for w in kl_weight]
        weights = [self.kl_weight] if isinstance(self.kl_weight, float) else self.kl_weight
        if not weights or min(weights) < 0:
            raise ValueError(f"`kl_weight` must be non-negative, got {kl_weight!r}.")
        for name, value in (("adversarial_weight", adversarial_weight), ("mi_weight", mi_weight)):
            if float(value) < 0:
                raise ValueError(f"`{name}` must be >= 0, got {value!r}.")
        self.adversarial_weight = float(adversarial_weight)
        self.mi_weight = float(mi_weight)
        self.mi_block_weights = None if mi_block_weights is None else [float(w) for w in
                                                                         mi_block_weights]
        self.swap_prior_pass_weights = bool(swap_prior_pass_weights)
        self.adversarial_options = adversarial.check_objective(
            adversarial_loss, critic_steps, clip_value, gradient_penalty_weight, label_smoothing,
            feature_matching, historical_averaging)
        for name, value in self.adversarial_options.items():
            setattr(self, name, value)
        self.seed = seed

        # === Networks ===
        self.encoder = encoder
        self.generator = decoder  # as given: may also return u
        self.returns_u = isinstance(decoder.output, (list, tuple))
        if self.returns_u:
            # The image-only view shares every layer with `generator` (no copy of the weights).
            self.decoder = keras.Model(decoder.inputs, decoder.outputs[0], name="decoder")
        else:
            self.decoder = decoder
        self.image_shape = tuple(encoder.input_shape[1:])
        self.latent_shape = tuple(decoder.input_shape[1:])
        self.discriminator = discriminator
        if not discriminator.built:
            discriminator.build((None,) + self.image_shape)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self._check_networks()
        self.generator_history = self.discriminator_history = None
        if self.historical_averaging:
            self.generator_history = adversarial.HistoricalAverage(
                [v.shape for v in self.generator_variables], name="generator_history")
            self.discriminator_history = adversarial.HistoricalAverage(
                [v.shape for v in discriminator.trainable_variables], name="discriminator_history")

        # === Metrics ===
        names = ["loss", "recon", "kl", "g_adv", "mi", "d_loss", "d_accuracy", "d_updated"]
        if self.adversarial_loss == "wgan_gp":
            names.append("gp")
        if self.feature_matching:
            names.append("fm")
        if isinstance(self.kl_weight, list):
            names += [f"kl_block_{t}" for t in range(len(self.kl_weight))]
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.generator_optimizer = None
        self.discriminator_optimizer = None
        self.built = True

    def _check_networks(self):
        check_encoder_decoder(self.encoder, self.decoder, self.latent_shape, self.image_shape)
        has_q = isinstance(self.discriminator.compute_output_shape((None,) + self.image_shape), list)
        if self.mi_weight > 0 and not (self.returns_u and has_q):
            raise ValueError("`mi_weight` > 0 needs a decoder returning [images, u] and a "
                             "discriminator with a Q head (latent_channels set).")
        for name, weights in (("kl_weight", self.kl_weight), ("mi_block_weights",
                                                              self.mi_block_weights)):
            if isinstance(weights, list) and self.latent_shape[-1] % len(weights):
                raise ValueError(f"{len(weights)} `{name}` blocks do not divide the latent's "
                                 f"{self.latent_shape[-1]} channels.")
        if self.feature_matching and not callable(getattr(self.discriminator, "features", None)):
            raise ValueError("`feature_matching` needs a discriminator with a `features(images)` "
                             "method (e.g. SpectralDiscriminator).")

    # --- compile / serialization of the two optimizers ------------------------------------------

    def compile(self, generator_optimizer=None, discriminator_optimizer=None, **kwargs):
        """Configures training with one optimizer per player.

        Args:
            generator_optimizer: optimizer of the encoder and decoder; default
                `MultiplierAdam(1e-3)`.
            discriminator_optimizer: optimizer of the discriminator (and Q); default
                `ThresholdedAdam(1e-3, threshold=0.9)`. Any Keras optimizer works; only
                `ThresholdedAdam` skips updates.
            **kwargs: passed to `keras.Model.compile` (e.g. `jit_compile`, `steps_per_execution`).
        """
        from keras_crvae.optimizers import MultiplierAdam

        self._compile_players(generator_optimizer or MultiplierAdam(1e-3),
                              discriminator_optimizer or ThresholdedAdam(1e-3),
                              self.generator_variables, **kwargs)

    @property
    def generator_variables(self):
        """Trainable variables of the encoder and decoder (the generator's optimizer's list)."""
        return self.encoder.trainable_variables + self.generator.trainable_variables

    def get_config(self):
        return {
            "name": self.name,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "kl_weight": self.kl_weight,
            "adversarial_weight": self.adversarial_weight,
            "mi_weight": self.mi_weight,
            "mi_block_weights": self.mi_block_weights,
            "swap_prior_pass_weights": self.swap_prior_pass_weights,
            **self.adversarial_options,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**with_deserialized(config, "encoder", "decoder", "discriminator"))

    @property
    def metrics(self):
        return list(self.trackers.values())

    # --- the objective --------------------------------------------------------------------------

    def _generate(self, z, training):
        outputs = to_float32(self.generator(z, training=training))
        return (outputs[0], outputs[1]) if self.returns_u else (outputs, None)

    def _discriminate(self, images, training):
        outputs = to_float32(self.discriminator(images, training=training))
        return (outputs[0], outputs[1]) if isinstance(outputs, (list, tuple)) else (outputs, None)

    def _unpack(self, data):
        if isinstance(data, (list, tuple)):
            data = data[0]
        if isinstance(data, dict):
            if "images" not in data:
                raise ValueError("A dict batch needs an 'images' entry; got keys "
                                 f"{sorted(data)}.")
            return data["images"], data.get("posterior_noise"), data.get("prior_noise")
        return data, None, None

    def _noise(self, given, batch_size, dtype):
        if given is not None:
            return ops.cast(given, dtype)
        # Under a TF distribution strategy: this replica's rows of one global-batch draw.
        return distribute.replica_normal((batch_size,) + self.latent_shape, self.seed_generator,
                                         dtype=dtype)

    def compute_terms(self, images, posterior_noise=None, prior_noise=None, training=False,
                      penalty_epsilon=None):
        """Every loss term of one iteration for images `(B, H, W, 3)` in [-1, 1].

        Args:
            images: tensor `(B, *image_shape)`; `B` divisible by 4 for the 50/25/25 D batch.
            posterior_noise, prior_noise: tensors `(B, *latent_shape)` or None (drawn).
            training: bool, passed to every sub-network (BatchNorm, dropout, spectral norm).
            penalty_epsilon: `(B,)` interpolation weights of the WGAN-GP penalty, or None (no
                penalty: `gp` is 0). The penalty needs TensorFlow (`tf.GradientTape`).

        Returns:
            dict of scalars: `generator_loss`, `recon`, `kl`, `kl_weighted`, `g_adv`, `mi`,
            `d_loss` (BCE of the D batch), `discriminator_loss` (`d_loss + mi`), `d_correct` (number of correct D decisions), `d_count`, and `kl_blocks`
            `(T,)` when block weights are used, `gp` and `fm`.
        """
        dtype = "float32"  # every loss term, whatever precision the networks compute in
        images = ops.cast(images, dtype)
        batch_size = ops.shape(images)[0]
        mean, log_var = to_float32(self.encoder(images, training=training))
        z = mean + ops.exp(0.5 * log_var) * self._noise(posterior_noise, batch_size, dtype)
        z_prior = self._noise(prior_noise, batch_size, dtype)
        reconstructions, u_reconstruction = self._generate(z, training)
        prior_samples, u_prior = self._generate(z_prior, training)

        terms = {"recon": ops.mean(ops.square(reconstructions - images))}
        kl_elements = losses.gaussian_kl_per_element(mean, log_var)
        terms["kl"] = ops.mean(losses.sum_per_example(kl_elements))
        terms["kl_weighted"] = ops.mean(losses.weighted_kl(kl_elements, self.kl_weight))
        if isinstance(self.kl_weight, list):
            terms["kl_blocks"] = ops.mean(losses.kl_per_block(kl_elements, len(self.kl_weight)), 0)

        logits_reconstruction, q_reconstruction = self._discriminate(reconstructions, training)
        logits_prior, q_prior = self._discriminate(prior_samples, training)
        # ("bce": the non-saturating loss, the same value as `losses.non_saturating_generator_loss`.)
        adversarial_reconstruction = adversarial.generator_loss(self.adversarial_loss,
                                                                logits_reconstruction)
        adversarial_prior = adversarial.generator_loss(self.adversarial_loss, logits_prior)
        terms["g_adv"] = adversarial_reconstruction + adversarial_prior

        mi_reconstruction = mi_prior = ops.zeros((), dtype)
        if self.mi_weight > 0:
            weights = None
            if self.mi_block_weights is not None:
                weights = losses.element_weights(ops.shape(u_reconstruction)[1:],
                                                 self.mi_block_weights, dtype=dtype)
            mi_reconstruction = losses.mean_squared_error(
                q_reconstruction, ops.stop_gradient(u_reconstruction), weights)
            mi_prior = losses.mean_squared_error(q_prior, ops.stop_gradient(u_prior), weights)
        terms["mi"] = mi_reconstruction + mi_prior

        beta, kappa = self.adversarial_weight, self.mi_weight
        if self.swap_prior_pass_weights:
            weighted_adversarial = beta * adversarial_reconstruction + kappa * adversarial_prior
            mutual_information = kappa * mi_reconstruction + beta * mi_prior
        else:
            weighted_adversarial = beta * terms["g_adv"]
            mutual_information = kappa * terms["mi"]
        terms["generator_loss"] = terms["recon"] + terms["kl_weighted"] + weighted_adversarial \
            + mutual_information
        terms["fm"] = ops.zeros((), dtype)
        if self.feature_matching:
            real_features = self.discriminator.features(images, training=training)
            terms["fm"] = sum(adversarial.feature_matching_loss(
                ops.cast(real_features, dtype),
                ops.cast(self.discriminator.features(fake, training=training), dtype))
                for fake in (prior_samples, reconstructions))
            terms["generator_loss"] += self.feature_matching * terms["fm"]
        if self.generator_history is not None:
            terms["generator_loss"] += self.historical_averaging * self.generator_history.penalty(
                self.generator_variables)

        # Discriminator batch: 50% real, 25% prior samples, 25% reconstructions (fakes detached).
        is_prior, is_reconstruction = discriminator_batch_masks(batch_size)
        select = (1, 1, 1)
        fakes = ops.where(ops.reshape(is_prior, (-1,) + select), ops.stop_gradient(prior_samples),
                          ops.stop_gradient(reconstructions))
        is_fake = ops.logical_or(is_prior, is_reconstruction)
        mixed = ops.where(ops.reshape(is_fake, (-1,) + select), fakes, images)
        labels = ops.reshape(ops.cast(ops.logical_not(is_fake), dtype), (-1, 1))
        logits_mixed, _ = self._discriminate(mixed, training)
        if self.adversarial_loss == "bce":  # the reference's mean BCE over the whole D batch
            targets = labels * (1.0 - self.label_smoothing)  # one-sided: reals only
            terms["d_loss"] = ops.mean(losses.sigmoid_cross_entropy(logits_mixed, targets))
        else:  # means over the real and the fake rows of the same D batch
            terms["d_loss"] = adversarial.discriminator_loss(
                self.adversarial_loss, logits_mixed, logits_mixed,
                real_weights=ops.logical_not(is_fake), fake_weights=is_fake)
        terms["discriminator_loss"] = terms["d_loss"] + terms["mi"]  # Q learns with D
        terms["gp"] = ops.zeros((), dtype)
        if self.adversarial_loss == "wgan_gp" and penalty_epsilon is not None:
            # Each real image with a detached fake: prior samples at even, reconstructions at odd
            # positions (both kinds in every replica's contiguous shard).
            even = ops.reshape(ops.equal(ops.mod(ops.arange(batch_size), 2), 0), (-1,) + select)
            partners = ops.where(even, ops.stop_gradient(prior_samples),
                                 ops.stop_gradient(reconstructions))
            terms["gp"] = adversarial.gradient_penalty(
                lambda x: self._discriminate(x, training)[0], images, partners, penalty_epsilon)
            terms["discriminator_loss"] += self.gradient_penalty_weight * terms["gp"]
        if self.discriminator_history is not None:
            terms["discriminator_loss"] += (self.historical_averaging *
                                            self.discriminator_history.penalty(
                                                self.discriminator.trainable_variables))
        predictions = ops.cast(ops.greater(logits_mixed, 0.0), dtype)
        terms["d_correct"] = ops.sum(ops.cast(ops.equal(predictions, labels), dtype))
        terms["d_count"] = ops.cast(batch_size, dtype)
        return terms

    def _check_batch(self, images):
        static_batch = images.shape[0]
        if static_batch is not None and static_batch % 4:
            raise ValueError(f"The batch size must be divisible by 4 (50/25/25 discriminator batch); "
                             f"got {static_batch}. Use drop_remainder=True in the pipeline.")
        if tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(f"`images` must have shape (batch, {', '.join(map(str, self.image_shape))})"
                             f"; got {tuple(images.shape)}.")

    def _penalty_epsilon(self, batch_size):
        if self.adversarial_loss != "wgan_gp":
            return None
        return distribute.replica_uniform((batch_size,), self.seed_generator, dtype="float32")

    def _discriminator_step(self, grads, variables, accuracy, state, snapshot):
        """Applies D's update (thresholded where meaningful), clipping and historical averaging."""
        updated = adversarial.apply_discriminator_update(
            self.discriminator_optimizer, grads, variables, accuracy, self.adversarial_loss, state,
            snapshot)
        if self.adversarial_loss == "wgan":
            adversarial.clip_weights(variables, self.clip_value)
        if self.discriminator_history is not None:
            self.discriminator_history.update(variables)
        return updated

    def train_step(self, data):
        import tensorflow as tf  # TF-only: GradientTape and replica contexts.

        (images, posterior_noise, prior_noise, replica_context,
         num_replicas) = self._begin_train_step(data)
        generator_variables = self.generator_variables
        discriminator_variables = self.discriminator.trainable_variables
        batch_size = ops.shape(images)[0]

        def global_accuracy(terms):
            correct, count = terms["d_correct"], terms["d_count"]
            if replica_context is not None:
                correct, count = replica_context.all_reduce(tf.distribute.ReduceOp.SUM,
                                                            [correct, count])
            return correct / count

        # Training-mode calls change D's state (spectral-norm kernels and vectors, BatchNorm
        # statistics); keep a copy so that a skipped discriminator step restores all of it.
        discriminator_state = self.discriminator.variables
        # critic_steps > 1: discriminator-only updates first (the joint step below is the last).
        for _ in range(self.critic_steps - 1):
            snapshot = [tf.identity(v.value) for v in discriminator_state]
            with tf.GradientTape() as tape:
                terms = self.compute_terms(images, posterior_noise, prior_noise, training=True,
                                           penalty_epsilon=self._penalty_epsilon(batch_size))
                discriminator_loss = terms["discriminator_loss"] / num_replicas
            grads = tape.gradient(discriminator_loss, discriminator_variables)
            self._discriminator_step(grads, discriminator_variables, global_accuracy(terms),
                                     discriminator_state, snapshot)

        snapshot = [tf.identity(v.value) for v in discriminator_state]
        with tf.GradientTape(persistent=True) as tape:
            terms = self.compute_terms(images, posterior_noise, prior_noise, training=True,
                                       penalty_epsilon=self._penalty_epsilon(batch_size))
            # Gradients are summed over replicas: scale the per-replica means accordingly.
            generator_loss = terms["generator_loss"] / num_replicas
            discriminator_loss = terms["discriminator_loss"] / num_replicas
        generator_grads = tape.gradient(generator_loss, generator_variables)
        discriminator_grads = tape.gradient(discriminator_loss, discriminator_variables)
        del tape
        self.generator_optimizer.apply(generator_grads, generator_variables)
        if self.generator_history is not None:
            self.generator_history.update(generator_variables)

        accuracy = global_accuracy(terms)
        updated = self._discriminator_step(discriminator_grads, discriminator_variables, accuracy,
                                           discriminator_state, snapshot)
        return self._update_metrics(terms, accuracy, updated)

    def test_step(self, data):
        images, posterior_noise, prior_noise = self._unpack(data)
        self._check_batch(images)
        terms = self.compute_terms(images, posterior_noise, prior_noise, training=False)
        accuracy = terms["d_correct"] / terms["d_count"]
        return self._update_metrics(terms, accuracy, None)

    def _update_metrics(self, terms, accuracy, updated):
        values = {"loss": terms["generator_loss"], "recon": terms["recon"], "kl": terms["kl"],
                  "g_adv": terms["g_adv"], "mi": terms["mi"], "d_loss": terms["d_loss"],
                  "d_accuracy": accuracy, "d_updated": updated}
        if "gp" in self.trackers:
            values["gp"] = terms["gp"]
        if "fm" in self.trackers:
            values["fm"] = terms["fm"]
        if "kl_blocks" in terms:
            for t in range(len(self.kl_weight)):
                values[f"kl_block_{t}"] = terms["kl_blocks"][t]
        return adversarial.update_trackers(self.trackers, values)

    # --- the public API contract: encode / decode / sample --------------------------------------

    def call(self, images, training=False):
        """Reconstructions (decoded posterior means) of images `(B, *image_shape)` in [-1, 1]."""
        mean, _ = self.encoder(images, training=training)
        return to_float32(self.decoder(mean, training=training))

    def recalibrate_batch_norm(self, images, batch_size=32, num_batches=50, seed=0):
        """Re-estimates the encoder's and the generator's BatchNorm moving statistics as plain
        averages over many batches (`layers.average_batch_norm_statistics`, "precise BN").

        The 64x64 presets' Keras momentum of 0.1 (the reference's Torch 0.9) leaves the moving
        statistics at about the last training batch's, so inference-mode outputs carry one
        batch's noise. Measured on two face checkpoints this did not help: both the sample FID
        and the reconstruction MSE got worse than with the statistics as trained (docs/faces.md,
        "BatchNorm statistics at scoring time"), so the face scores do not use it by default.

        The encoder's statistics are averaged over `num_batches` batches of `images` in training
        mode, as training computes them; the generator's over as many batches of prior samples
        `z ~ N(0, I)`: the pass whose statistics the trained averages hold (each step's prior pass runs
        after its posterior pass, so ~90% of the moving statistics are the last prior batch's). The
        discriminator is not called. Trainable weights do not change. Not in the reference, which
        evaluates with its running statistics.

        Args:
            images: array `(N, *image_shape)` in [-1, 1] (training images), N >= `batch_size`.
            batch_size: int, default 32 (the face runs' batch: statistics of batches that size).
            num_batches: int, default 50; fewer when `images` hold fewer full batches.
            seed: int, which images (a random subset without repeats) and which prior samples.

        Returns:
            int, the number of BatchNorm layers re-estimated.
        """
        size, count = int(batch_size), int(num_batches)
        if size < 2 or count < 1:
            raise ValueError(f"`batch_size` must be >= 2 and `num_batches` >= 1, got {batch_size} "
                             f"and {num_batches}.")
        if len(images) < size:
            raise ValueError(f"`images` must hold at least one batch of {size}, got {len(images)}.")
        rng = np.random.default_rng(int(seed))
        order = rng.permutation(len(images))[:min(count, len(images) // size) * size]
        image_batches = [ops.convert_to_tensor(np.asarray(images[order[i:i + size]], "float32"))
                         for i in range(0, len(order), size)]
        latent_batches = [ops.convert_to_tensor(rng.standard_normal(
            (size,) + self.latent_shape).astype("float32")) for _ in image_batches]
        return (average_batch_norm_statistics(self.encoder, image_batches)
                + average_batch_norm_statistics(self.generator, latent_batches))


@keras.saving.register_keras_serializable(package="keras_crvae")
class CRVAEGAN(VAEGAN):
    """crVAE-GAN: channel-recurrent latent, per-block KL weights and the MI loss on `u = LSTM(z)`.

    Same as `VAEGAN` with the supplement's full objective
    `L_recon + alpha1 L_prior^1 + alpha2 L_prior^2 + beta L_D + kappa L_MI`: the decoder must return
    `[images, u]` (`build_image64_decoder("recurrent")`) and the discriminator must have its Q head
    (`latent_channels` set).

    Args:
        encoder, decoder, discriminator: as `VAEGAN`.
        kl_weight: list of per-block floats, default `two_level_block_weights(3e-4, 2e-4, 8)`.
        adversarial_weight: float, default 0.01 (beta).
        mi_weight: float, default 0.01 (kappa).
        **kwargs: as `VAEGAN`.

    Reference: supplement section D ("MI Objectives"); `train_test/train_test_lstm.lua` of
    WendyShang/crVAE.
    """

    def __init__(self, encoder, decoder, discriminator, kl_weight=None, adversarial_weight=0.01,
                 mi_weight=0.01, **kwargs):
        if kl_weight is None:
            kl_weight = losses.two_level_block_weights(3e-4, 2e-4, 8)
        if not isinstance(decoder.output, (list, tuple)):
            raise ValueError("CRVAEGAN needs a decoder returning [images, u]; build it with "
                             "build_image64_decoder('recurrent').")
        super().__init__(encoder, decoder, discriminator, kl_weight=kl_weight,
                         adversarial_weight=adversarial_weight, mi_weight=mi_weight, **kwargs)
