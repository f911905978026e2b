"""Stage2: a super-resolution GAN on top of a frozen Stage1 VAE-GAN / crVAE-GAN (crVAE supplement
sections C.2-C.4 and D, "Stage2 Objective"; the generator is StackGAN's Stage-II, Zhang et al. 2017).

For a batch of real high-resolution images `s (B, O, O, 3)` in [-1, 1]:

    x      = down(s)                          Stage1's input size (area average; identity when equal)
    z_q    = mean(x) + exp(log_var(x) / 2) * eps_q,   z_p = eps_p      (frozen Stage1 encoder)
    x~_q   = dec(z_q),  x~_p = dec(z_p)        (frozen Stage1 decoder: posterior and prior decodes)
    y_q    = G(r(x~_q)), y_p = G(r(x~_p))     (r: resize to G's input size, identity when equal)

    discriminator loss (minimised)  L_D = BCE(D(s), 1) + BCE(D(y_p), 0) + BCE(D(y_q), 0)
                                      = -[log D(s) + log(1 - D(y_p)) + log(1 - D(y_q))]   (batch means)
    generator loss                  L_G = adv(y_p) + adv(y_q) + gamma * P
                                    P   = mean over batch and feature elements of (f(s) - f(y_q))^2

`adv(y)` is the non-saturating `BCE(D(y), 1) = -log D(y)` by default (as our Stage1 and StackGAN train
their generators); `generator_loss="saturating"` uses the supplement's printed `log(1 - D(y))`. The
perceptual term uses the posterior pass only (where the ground truth `s` of `x~_q` is known), f a
frozen `keras.applications` network (`networks.perceptual`), normalised per feature element as the
supplement normalises `L_recon` per pixel; gamma = 0 (or no feature network) removes it. `S(x)` of the
supplement, "the ground truth upsampled x", is `s` itself: the real image at the output size.

The discriminator's update goes through `ThresholdedAdam.apply_thresholded` as in Stage1 (skipped when
its accuracy over the global batch exceeds the threshold). The accuracy weighs the real images 1/2 and
each fake pass 1/4, so it is the accuracy on "a batch of half real and half fake images" of the
supplement's rule; a skipped step restores the discriminator's BatchNorm statistics too.

The model is a model of high-resolution images with the library's API: `encode(s)` (Stage1's posterior
of `down(s)`), `decode(z)` (`G(r(dec(z)))`, high resolution), `sample(n)` (Stage1 then Stage2),
`reconstruct(s)`, `super_resolve(x)` (G on Stage1-size images); `encoder` / `decoder` are functional
views of these for SavedModel export (`keras_crvae.export`: the `sample` signature maps z to
high-resolution images).

`train_step` is TensorFlow-only (GradientTape, replica contexts), as `VAEGAN`'s; the rest uses
`keras.ops`.

Imports: `models.base`, `keras_crvae.losses`, `networks.perceptual` and `optimizers`. This module was
`models/stage2.py` (renamed in issue 27: `stage2` read too much like `two_stage`, the Two-Stage VAE);
`keras_crvae.models.stage2` is an alias, and the class keeps its name and registration, `Stage2`.
"""

import keras
from keras import ops

from keras_crvae import distribute, losses
from keras_crvae.losses import adversarial
from keras_crvae.models.base import (SIGNED_IMAGE_RANGE, EncoderDecoderAPI, to_float32,
                                     validate_images, with_deserialized)
from keras_crvae.networks.perceptual import imagenet_preprocess
from keras_crvae.optimizers import ThresholdedAdam

GENERATOR_LOSSES = ("non_saturating", "saturating")


def resize_layer(from_size, to_size, name):
    """A layer mapping `(B, from, from, 3)` to `(B, to, to, 3)`: identity, an average pool for an
    integer down-scaling factor (exact area resampling), else bilinear with antialiasing."""
    from_size, to_size = int(from_size), int(to_size)
    if from_size == to_size:
        return keras.layers.Identity(name=name)
    if from_size > to_size and from_size % to_size == 0:
        factor = from_size // to_size
        return keras.layers.AveragePooling2D(factor, name=name)
    return keras.layers.Resizing(to_size, to_size, interpolation="bilinear", antialias=True,
                                 name=name)


@keras.saving.register_keras_serializable(package="keras_crvae")
class Stage2(adversarial.TwoPlayerCompile, EncoderDecoderAPI, keras.Model):
    """Stage2 super-resolution GAN on a frozen Stage1 model (see the module docstring).

    Args:
        stage1: a trained `VAEGAN` / `CRVAEGAN` (any model with `encoder`, image-only `decoder`,
            `image_shape`, `latent_shape` and images in [-1, 1]). Frozen: never updated here.
        generator: `keras.Model`, `(B, I, I, 3)` -> `(B, O, O, 3)` in [-1, 1]
            (`networks.build_stage2_generator`).
        discriminator: `keras.Model`, `(B, O, O, 3)` -> logits `(B, 1)`.
        perceptual_network: `keras.Model` or None, the frozen feature network f on
            `imagenet_preprocess`ed `(B, O, O, 3)` images (`networks.build_perceptual_network`).
        perceptual_weight: float >= 0, default 1.0 (gamma: 1 for Birds/CelebA, 10 for LSUN, 0 none).
        generator_loss: str, "non_saturating" (default) or "saturating" (the printed `log(1 - D)`).
        seed: int or None. Seed of the posterior and prior noise.

    Inputs to `fit`: batches of real images `(B, O, O, 3)` in [-1, 1], or dicts `{"images",
    "posterior_noise", "prior_noise"}` with standard-normal noise `(B, *latent_shape)`.

    Metrics: `loss` (generator), `g_adv`, `perceptual`, `d_loss`, `d_accuracy`, `d_updated`.

    Reference: crVAE supplement (Shang et al. 2018) sections C.2-C.4, D; Zhang et al., "StackGAN:
    Text to photo-realistic image synthesis with stacked GANs", ICCV 2017.
    """

    decoder_outputs = "images"
    image_range = SIGNED_IMAGE_RANGE

    def __init__(self, stage1, generator, discriminator, perceptual_network=None,
                 perceptual_weight=1.0, generator_loss="non_saturating", seed=None, **kwargs):
        super().__init__(**kwargs)
        # === Config ===
        if not float(perceptual_weight) >= 0:
            raise ValueError(f"`perceptual_weight` must be >= 0, got {perceptual_weight!r}.")
        if generator_loss not in GENERATOR_LOSSES:
            raise ValueError(f"`generator_loss` must be one of {GENERATOR_LOSSES}, got "
                             f"{generator_loss!r}.")
        for attribute in ("encoder", "decoder", "image_shape", "latent_shape"):
            if not hasattr(stage1, attribute):
                raise ValueError(f"`stage1` must be a VAEGAN / CRVAEGAN-like model with "
                                 f"`{attribute}`; got {type(stage1).__name__}.")
        self.perceptual_weight = float(perceptual_weight)
        self.generator_loss = generator_loss
        self.seed = seed

        # === Networks ===
        self.stage1 = stage1
        self.stage1.trainable = False  # frozen: its variables never enter a gradient
        self.generator = generator
        self.discriminator = discriminator
        self.perceptual_network = perceptual_network
        if perceptual_network is not None:
            perceptual_network.trainable = False
        self.stage1_size = int(stage1.image_shape[0])
        self.input_size = int(generator.input_shape[1])
        self.output_size = int(generator.output_shape[1])
        self.image_shape = (self.output_size, self.output_size, 3)
        self.latent_shape = tuple(int(d) for d in stage1.latent_shape)
        self._check_networks()
        self.downsample_to_stage1 = resize_layer(self.output_size, self.stage1_size,
                                                 "to_stage1_size")
        self.resize_to_generator = resize_layer(self.stage1_size, self.input_size,
                                                "to_generator_size")
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.encoder, self.decoder = self._serving_views()

        # === Metrics ===
        names = ["loss", "g_adv", "perceptual", "d_loss", "d_accuracy", "d_updated"]
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.generator_optimizer = None
        self.discriminator_optimizer = None
        self.built = True

    def _check_networks(self):
        if tuple(self.stage1.image_shape[:2]) != (self.stage1_size, self.stage1_size):
            raise ValueError(f"Stage1 images must be square; got {self.stage1.image_shape}.")
        if self.output_size <= self.stage1_size // 2 or self.output_size < self.input_size:
            raise ValueError(f"The generator outputs {self.output_size}x{self.output_size} images; "
                             f"Stage1's are {self.stage1_size}x{self.stage1_size}.")
        if self.input_size > self.stage1_size:
            raise ValueError(f"The generator takes {self.input_size}x{self.input_size} images, "
                             f"larger than Stage1's {self.stage1_size}x{self.stage1_size}.")
        shape = tuple(self.discriminator.compute_output_shape((None,) + self.image_shape))
        if shape[1:] != (1,):
            raise ValueError(f"The discriminator must map {self.image_shape} images to logits "
                             f"(batch, 1); it gives {shape}.")

    def _serving_views(self):
        """Functional `encoder` (high-res images -> [mean, log_var]) and `decoder` (z -> high-res
        images) sharing this model's layers (the serving contract of `keras_crvae.export`)."""
        images = keras.Input(self.image_shape, name="images")
        encoder = keras.Model(images, self.stage1.encoder(self.downsample_to_stage1(images)),
                              name="stage2_encoder")
        z = keras.Input(self.latent_shape, name="z")
        decoded = self.generator(self.resize_to_generator(self.stage1.decoder(z)))
        decoder = keras.Model(z, decoded, name="stage2_decoder")
        return encoder, decoder

    # --- compile / serialization ----------------------------------------------------------------

    def compile(self, generator_optimizer=None, discriminator_optimizer=None, **kwargs):
        """One optimizer per player: defaults Adam(2e-4) for G (supplement: every Stage2 network at
        LR 2e-4, Adam betas 0.9/0.999, eps 1e-8) and `ThresholdedAdam(2e-4, threshold=0.9)` for D."""
        from keras_crvae.optimizers import MultiplierAdam

        self._compile_players(
            generator_optimizer or MultiplierAdam(2e-4, beta_1=0.9, beta_2=0.999, epsilon=1e-8),
            discriminator_optimizer or ThresholdedAdam(2e-4, threshold=0.9, beta_1=0.9,
                                                       beta_2=0.999, epsilon=1e-8),
            self.generator.trainable_variables, **kwargs)

    def get_config(self):
        return {
            "name": self.name,
            "stage1": keras.saving.serialize_keras_object(self.stage1),
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "perceptual_network": None if self.perceptual_network is None else
            keras.saving.serialize_keras_object(self.perceptual_network),
            "perceptual_weight": self.perceptual_weight,
            "generator_loss": self.generator_loss,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        keys = ["stage1", "generator", "discriminator"]
        if config.get("perceptual_network") is not None:
            keys.append("perceptual_network")
        return cls(**with_deserialized(config, *keys))

    @property
    def metrics(self):
        return list(self.trackers.values())

    # --- the objective --------------------------------------------------------------------------

    def _noise(self, given, batch_size):
        if given is not None:
            return ops.cast(given, "float32")
        return distribute.replica_normal((batch_size,) + self.latent_shape, self.seed_generator,
                                         dtype="float32")

    def _unpack(self, data):
        if isinstance(data, (list, tuple)):
            data = data[0]
        if isinstance(data, dict):
            if "images" not in data:
                raise ValueError(f"A dict batch needs an 'images' entry; got keys {sorted(data)}.")
            return data["images"], data.get("posterior_noise"), data.get("prior_noise")
        return data, None, None

    def stage1_decodes(self, images, posterior_noise=None, prior_noise=None):
        """`(x~_q, x~_p)`: frozen Stage1 decodes of a posterior and a prior sample, at Stage1 size."""
        batch_size = ops.shape(images)[0]
        low_resolution = self.downsample_to_stage1(ops.cast(images, "float32"))
        mean, log_var = to_float32(self.stage1.encoder(low_resolution, training=False))
        z_posterior = mean + ops.exp(0.5 * log_var) * self._noise(posterior_noise, batch_size)
        z_prior = self._noise(prior_noise, batch_size)
        decode = lambda z: to_float32(self.stage1.decoder(z, training=False))  # noqa: E731
        # Stage1 is frozen: no gradient flows into it (nor is one needed through its outputs).
        return ops.stop_gradient(decode(z_posterior)), ops.stop_gradient(decode(z_prior))

    def perceptual_features(self, images):
        """f of images `(B, O, O, 3)` in [-1, 1] (None without a feature network)."""
        if self.perceptual_network is None:
            return None
        return to_float32(self.perceptual_network(imagenet_preprocess(images), training=False))

    def perceptual_distance(self, real, generated):
        """`mean over batch and feature elements of (f(real) - f(generated))^2`, a scalar."""
        real_features = ops.stop_gradient(self.perceptual_features(real))
        return ops.mean(ops.square(real_features - self.perceptual_features(generated)))

    def _adversarial(self, logits):
        if self.generator_loss == "non_saturating":
            return losses.non_saturating_generator_loss(logits)  # mean of -log D
        # log(1 - sigmoid(l)) = -softplus(l): the printed minimax term, minimised by G.
        return ops.mean(-ops.softplus(logits))

    def compute_terms(self, images, posterior_noise=None, prior_noise=None, training=False):
        """Every loss term of one iteration for real images `(B, O, O, 3)` in [-1, 1].

        Returns:
            dict of scalars: `generator_loss`, `g_adv` (prior + posterior pass), `g_adv_prior`,
            `g_adv_posterior`, `perceptual` (unweighted), `d_loss`, `d_real`, `d_prior`,
            `d_posterior` (the three BCE means), `d_accuracy` (real 1/2, each fake pass 1/4).
        """
        images = ops.cast(images, "float32")
        posterior_decode, prior_decode = self.stage1_decodes(images, posterior_noise, prior_noise)
        generated_posterior = to_float32(self.generator(self.resize_to_generator(posterior_decode),
                                                        training=training))
        generated_prior = to_float32(self.generator(self.resize_to_generator(prior_decode),
                                                    training=training))
        discriminate = lambda x: ops.reshape(to_float32(  # noqa: E731
            self.discriminator(x, training=training)), (-1, 1))
        logits_real = discriminate(images)
        logits_posterior = discriminate(generated_posterior)
        logits_prior = discriminate(generated_prior)

        terms = {"g_adv_prior": self._adversarial(logits_prior),
                 "g_adv_posterior": self._adversarial(logits_posterior)}
        terms["g_adv"] = terms["g_adv_prior"] + terms["g_adv_posterior"]
        if self.perceptual_network is not None and self.perceptual_weight > 0:
            terms["perceptual"] = self.perceptual_distance(images, generated_posterior)
        else:
            terms["perceptual"] = ops.zeros((), "float32")
        terms["generator_loss"] = terms["g_adv"] + self.perceptual_weight * terms["perceptual"]

        # Discriminator: the same forward passes. `train_step` differentiates `d_loss` with respect
        # to D's variables only, so no gradient of it reaches G (nor of the G loss, D).
        ones, zeros = ops.ones_like(logits_real), ops.zeros_like(logits_real)
        terms["d_real"] = ops.mean(losses.sigmoid_cross_entropy(logits_real, ones))
        terms["d_prior"] = ops.mean(losses.sigmoid_cross_entropy(logits_prior, zeros))
        terms["d_posterior"] = ops.mean(losses.sigmoid_cross_entropy(logits_posterior, zeros))
        terms["d_loss"] = terms["d_real"] + terms["d_prior"] + terms["d_posterior"]
        correct = lambda logits, real: ops.mean(ops.cast(  # noqa: E731
            ops.greater(logits, 0.0) if real else ops.less_equal(logits, 0.0), "float32"))
        terms["d_accuracy"] = (0.5 * correct(logits_real, True)
                               + 0.25 * correct(logits_prior, False)
                               + 0.25 * correct(logits_posterior, False))
        return terms

    def _check_batch(self, images):
        if tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(f"`images` must have shape (batch, "
                             f"{', '.join(map(str, self.image_shape))}); got {tuple(images.shape)}.")

    def train_step(self, data):
        import tensorflow as tf  # TF-only: GradientTape and replica contexts.

        (images, posterior_noise, prior_noise, replica_context,
         num_replicas) = self._begin_train_step(data)
        generator_variables = self.generator.trainable_variables
        discriminator_variables = self.discriminator.trainable_variables
        # Training-mode calls change D's BatchNorm statistics; a skipped step restores them.
        discriminator_state = self.discriminator.variables
        snapshot = [tf.identity(v.value) for v in discriminator_state]
        with tf.GradientTape(persistent=True) as tape:
            terms = self.compute_terms(images, posterior_noise, prior_noise, training=True)
            generator_loss = terms["generator_loss"] / num_replicas
            discriminator_loss = terms["d_loss"] / num_replicas
        generator_grads = tape.gradient(generator_loss, generator_variables)
        discriminator_grads = tape.gradient(discriminator_loss, discriminator_variables)
        del tape
        self.generator_optimizer.apply(generator_grads, generator_variables)

        accuracy = terms["d_accuracy"]
        if replica_context is not None:  # every replica takes the global batch's decision
            accuracy = replica_context.all_reduce(tf.distribute.ReduceOp.MEAN, accuracy)
        # D is a classifier (the objective is "bce"), so a `ThresholdedAdam` gates its update.
        updated = adversarial.apply_discriminator_update(
            self.discriminator_optimizer, discriminator_grads, discriminator_variables, accuracy,
            "bce", discriminator_state, snapshot)
        return self._update_metrics(terms, accuracy, updated)

    def test_step(self, data):
        images, posterior_noise, prior_noise = self._unpack(data)
        self._check_batch(images)
        terms = self.compute_terms(images, posterior_noise, prior_noise, training=False)
        return self._update_metrics(terms, terms["d_accuracy"], None)

    def _update_metrics(self, terms, accuracy, updated):
        values = {"loss": terms["generator_loss"], "g_adv": terms["g_adv"],
                  "perceptual": terms["perceptual"], "d_loss": terms["d_loss"],
                  "d_accuracy": accuracy, "d_updated": updated}
        return adversarial.update_trackers(self.trackers, values)

    # --- the public API: `EncoderDecoderAPI` (encode / decode / sample / reconstruct) on the -----
    # composite networks — `encoder` is Stage1's q(z|x) of down(x), `decoder` is G(r(Stage1's
    # decoder(z))), so `reconstruct(x)` is G(r(dec(mean(down(x))))) at `(B, O, O, 3)` — plus
    # `super_resolve`.

    def call(self, images, training=False):
        """High-resolution reconstructions of images `(B, O, O, 3)` in [-1, 1]."""
        mean, _ = self.stage1.encoder(self.downsample_to_stage1(images), training=False)
        decoded = self.stage1.decoder(mean, training=False)
        return to_float32(self.generator(self.resize_to_generator(decoded), training=training))

    def super_resolve(self, low_resolution):
        """G on Stage1-size images `(B, S1, S1, 3)` in [-1, 1] -> `(B, O, O, 3)`."""
        shape = (self.stage1_size, self.stage1_size, 3)
        validate_images(low_resolution, shape, name="low_resolution", value_range=SIGNED_IMAGE_RANGE)
        low_resolution = ops.cast(ops.convert_to_tensor(low_resolution), "float32")
        return to_float32(self.generator(self.resize_to_generator(low_resolution), training=False))
