"""A VAE with two stochastic layers (the lecture's "Hierarchical VAE"; Burda et al. 2016, section 5).

Generative model, top-down:

    p(z2) = N(0, I),    p(z1 | z2) = N(prior_mean(z2), exp(prior_log_var(z2))),    p(x | z1) Bernoulli.

Inference, one of:

    "factorized" (default; the lecture's q(z1, z2 | x) = q(z1|x) q(z2|x)):  top_encoder reads the image;
    "bottom_up"  (Burda et al.'s q(z1|x) q(z2|z1)):                          top_encoder reads z1.

ELBO per image (nats), with the KLs in closed form wherever the factorisation allows:

    elbo = E_q log p(x|z1) - kl_2 - kl_1
    kl_2 = KL(q(z2|.) || N(0, I))                        closed form (given z1 in "bottom_up")
    kl_1 = E_{z2~q} KL(q(z1|x) || p(z1|z2))              closed form given the sampled z2 ("factorized");
           log q(z1|x) - log p(z1|z2) at the sample       one-sample estimate ("bottom_up": z2 depends on z1)

The k-sample importance-weighted bound (Burda et al., eq. 8) uses the joint importance weight

    log w = log p(x|z1) + log p(z1|z2) + log p(z2) - log q(z1|x) - log q(z2|.),    (z1, z2) ~ q,

which is also what `keras_crvae.evaluation.importance_sampled_nll` averages (log-mean-exp over k) through
`log_importance_weights`. KL weights (`kl_weight` for z1, optionally per channel block as in the crVAE,
`top_kl_weight` for z2) and `reconstruction_reduction` follow `keras_crvae.models.VAE`; weights 1 with
"sum" give the exact ELBO / IWAE bound.

Reference: the lecture `papers/generative_models_lecture.txt` ("Hierarchical VAE"); Burda, Grosse &
Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016 (section 5, Table 1); Shang et al. 2018,
supplement B ("a hierarchical crVAE with 2 stochastic layers").
"""

import math

import keras
from keras import ops

from keras_crvae import distribute, losses
from keras_crvae.layers import GaussianSampler
from keras_crvae.models.base import (OptimizerBuiltBeforeTracing, check_objective_options,
                                     tile_rows, to_float32, validate_images, with_deserialized)

INFERENCE_KINDS = ("factorized", "bottom_up")


def gaussian_kl_elements(mean, log_var, prior_mean, prior_log_var):
    """Closed-form `KL(N(mean, exp(log_var)) || N(prior_mean, exp(prior_log_var)))` per element."""
    return 0.5 * (prior_log_var - log_var
                  + (ops.exp(log_var) + ops.square(mean - prior_mean)) * ops.exp(-prior_log_var)
                  - 1.0)


def _output_shapes(network, count, role):
    shapes = network.output_shape
    if not isinstance(shapes, list) or len(shapes) != count:
        raise ValueError(f"The {role} must return {count} tensors; its outputs are {shapes}.")
    return [tuple(shape[1:]) for shape in shapes]


def _reparameterize(sampler, mean, log_var, noise):
    """`z = mean + exp(log_var / 2) * noise`; with `noise=None` the (float32) sampler draws it."""
    if noise is None:
        return sampler([mean, log_var])[0]
    return mean + ops.exp(0.5 * log_var) * to_float32(noise)


@keras.saving.register_keras_serializable(package="keras_crvae")
class HierarchicalVAE(OptimizerBuiltBeforeTracing, keras.Model):
    """A VAE with two Gaussian stochastic layers `z1` (bottom) and `z2` (top), trained with `fit()`.

    Args:
        encoder: `keras.Model`, images `(B, *image_shape)` -> `[mean_1, log_var_1]` of `q(z1|x)`,
            each `(B, *z1_shape)`.
        top_encoder: `keras.Model` -> `[mean_2, log_var_2]` of `q(z2|.)`, each `(B, *z2_shape)`; its
            input is the image `(B, *image_shape)` ("factorized") or `z1` `(B, *z1_shape)`
            ("bottom_up").
        top_decoder: `keras.Model`, `z2` -> `[prior_mean_1, prior_log_var_1]` of `p(z1|z2)`, each
            `(B, *z1_shape)`.
        decoder: `keras.Model`, `z1` -> Bernoulli logits `(B, *image_shape)`.
        inference: str, default "factorized". "factorized" (`q(z1|x) q(z2|x)`, the lecture) or
            "bottom_up" (`q(z1|x) q(z2|z1)`, Burda et al.).
        kl_weight: float or list of floats, default 1.0. Weight of `kl_1` (one per channel block of
            `z1`, as `VAE`'s crVAE block weights).
        top_kl_weight: float or None, default None. Weight of `kl_2`; None: `kl_weight` when it is a
            float, else the first block's weight.
        reconstruction_reduction: str, default "mean" ("mean": `-log p(x|z1)` / pixels, "sum": nats).
        iwae_samples: int, default 1. `k` of the training bound (joint importance weights).
        likelihood: str, default "bernoulli".
        seed: int or None. Seed of the two posterior samplers.

    Metrics (nats per image): `elbo`, `reconstruction`, `kl` (= `kl_1 + kl_2`), `kl_1`, `kl_2`, and
    `iwae_bound` when `iwae_samples > 1`.

    >>> from keras_crvae.networks import mlp
    >>> model = HierarchicalVAE(
    ...     mlp.build_mlp_gaussian((28, 28, 1), 8, (16,), name="encoder"),
    ...     mlp.build_mlp_gaussian(8, 4, (16,), name="top_encoder"),
    ...     mlp.build_mlp_gaussian(4, 8, (16,), name="top_decoder"),
    ...     mlp.build_mlp_bernoulli_decoder(8, (16,)), inference="bottom_up")
    >>> tuple(model.sample(2, seed=0).shape)
    (2, 28, 28, 1)

    Reference: Burda et al. 2016 (section 5); the lecture's "Hierarchical VAE"; Shang et al. 2018.
    """

    image_range = (0.0, 1.0)
    decoder_outputs = "logits"

    def __init__(
        self,
        encoder,
        top_encoder,
        top_decoder,
        decoder,
        inference="factorized",
        kl_weight=1.0,
        top_kl_weight=None,
        reconstruction_reduction="mean",
        iwae_samples=1,
        likelihood="bernoulli",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if inference not in INFERENCE_KINDS:
            raise ValueError(f"`inference` must be one of {INFERENCE_KINDS}, got {inference!r}.")
        kl_weight, weights = check_objective_options(reconstruction_reduction, likelihood,
                                                     iwae_samples, kl_weight)
        if top_kl_weight is None:
            top_kl_weight = weights[0]
        if float(top_kl_weight) < 0:
            raise ValueError(f"`top_kl_weight` must be non-negative, got {top_kl_weight!r}.")

        # === Networks and samplers ===
        self.encoder = encoder
        self.top_encoder = top_encoder
        self.top_decoder = top_decoder
        self.decoder = decoder
        # float32 whatever the precision (`keras_crvae.precision`): densities use their outputs.
        self.sampler = GaussianSampler(seed=seed, dtype="float32", name="bottom_sampler")
        self.top_sampler = GaussianSampler(seed=None if seed is None else seed + 1,
                                           dtype="float32", name="top_sampler")

        # === Metrics ===
        self.elbo_tracker = keras.metrics.Mean(name="elbo")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.kl_1_tracker = keras.metrics.Mean(name="kl_1")
        self.kl_2_tracker = keras.metrics.Mean(name="kl_2")
        self.iwae_tracker = keras.metrics.Mean(name="iwae_bound") if iwae_samples > 1 else None

        # === Config ===
        self.inference = inference
        self.kl_weight = kl_weight if isinstance(kl_weight, float) else weights
        self.top_kl_weight = float(top_kl_weight)
        self.reconstruction_reduction = reconstruction_reduction
        self.iwae_samples = int(iwae_samples)
        self.likelihood = likelihood
        self.seed = seed
        self.image_shape = tuple(encoder.input_shape[1:])
        self.bottom_latent_shape = tuple(decoder.input_shape[1:])
        # The top latent: what `sample`, `decode` and the exported signatures take.
        self.latent_shape = tuple(top_decoder.input_shape[1:])
        self.num_pixels = int(math.prod(self.image_shape))
        self._check_networks()
        self.build((None,) + self.image_shape)

    @property
    def latent_shapes(self):
        """`[z1_shape, z2_shape]`, bottom to top: the noise shapes of `log_importance_weights`."""
        return [self.bottom_latent_shape, self.latent_shape]

    def build(self, input_shape):
        self.built = True

    def _check_networks(self):
        z1, z2 = self.bottom_latent_shape, self.latent_shape
        for shape, role in zip(_output_shapes(self.encoder, 2, "encoder"), ("mean_1", "log_var_1")):
            if shape != z1:
                raise ValueError(f"The encoder's {role} has shape {shape} but the decoder takes z1 of "
                                 f"shape {z1}: the bottom latent shapes do not match.")
        for shape in _output_shapes(self.top_decoder, 2, "top_decoder"):
            if shape != z1:
                raise ValueError(f"The top_decoder outputs p(z1|z2) of shape {shape} but z1 has shape "
                                 f"{z1}: the bottom latent shapes do not match.")
        for shape in _output_shapes(self.top_encoder, 2, "top_encoder"):
            if shape != z2:
                raise ValueError(f"The top_encoder outputs q(z2|.) of shape {shape} but the "
                                 f"top_decoder takes z2 of shape {z2}: the top latent shapes do not "
                                 "match.")
        expected = self.image_shape if self.inference == "factorized" else z1
        top_input = tuple(self.top_encoder.input_shape[1:])
        if top_input != expected:
            what = "the image" if self.inference == "factorized" else "z1"
            raise ValueError(f"With inference={self.inference!r} the top_encoder reads {what} of "
                             f"shape {expected}; it takes {top_input}.")
        if tuple(self.decoder.output_shape[1:]) != self.image_shape:
            raise ValueError(f"The decoder outputs {tuple(self.decoder.output_shape[1:])} but the "
                             f"encoder takes images of shape {self.image_shape}.")
        if isinstance(self.kl_weight, list) and z1[-1] % len(self.kl_weight):
            raise ValueError(f"{len(self.kl_weight)} KL block weights do not divide z1's "
                             f"{z1[-1]} channels.")

    # --- the joint sample and its log-densities --------------------------------------------------

    def _joint_sample(self, images, num_samples, noise=None, training=None):
        """Draws `num_samples` joint samples `(z1, z2) ~ q(z1, z2 | x)` per image (sample-major rows
        `s*B + b`) and runs the generative networks on them. `noise`: None (the samplers draw) or
        `[noise_1, noise_2]` standard normal, `(num_samples * B, *z_shape)` each. Float32 tensors."""
        mean_1, log_var_1 = (to_float32(t) for t in self.encoder(images, training=training))
        mean_1 = tile_rows(mean_1, num_samples)
        log_var_1 = tile_rows(log_var_1, num_samples)
        z1 = _reparameterize(self.sampler, mean_1, log_var_1, None if noise is None else noise[0])
        top_input = images if self.inference == "factorized" else z1
        mean_2, log_var_2 = (to_float32(t) for t in self.top_encoder(top_input, training=training))
        if self.inference == "factorized":
            mean_2 = tile_rows(mean_2, num_samples)
            log_var_2 = tile_rows(log_var_2, num_samples)
        z2 = _reparameterize(self.top_sampler, mean_2, log_var_2,
                             None if noise is None else noise[1])
        prior_mean_1, prior_log_var_1 = (to_float32(t) for t in self.top_decoder(z2,
                                                                               training=training))
        logits = to_float32(self.decoder(z1, training=training))
        return {"mean_1": mean_1, "log_var_1": log_var_1, "z1": z1, "mean_2": mean_2,
                "log_var_2": log_var_2, "z2": z2, "prior_mean_1": prior_mean_1,
                "prior_log_var_1": prior_log_var_1, "logits": logits}

    def _kl_elements(self, sample):
        """Per-element `kl_1` and `kl_2` (module docstring), rows as in `sample`."""
        if self.inference == "factorized":
            kl_1 = gaussian_kl_elements(sample["mean_1"], sample["log_var_1"],
                                        sample["prior_mean_1"], sample["prior_log_var_1"])
        else:
            kl_1 = (losses.gaussian_log_density_elements(sample["z1"], sample["mean_1"],
                                                         sample["log_var_1"])
                    - losses.gaussian_log_density_elements(sample["z1"], sample["prior_mean_1"],
                                                           sample["prior_log_var_1"]))
        kl_2 = losses.gaussian_kl_per_element(sample["mean_2"], sample["log_var_2"])
        return kl_1, kl_2

    def _log_ratios(self, sample):
        """`(log p(z1|z2) - log q(z1|x), log p(z2) - log q(z2|.))` per element."""
        ratio_1 = (losses.gaussian_log_density_elements(sample["z1"], sample["prior_mean_1"],
                                                        sample["prior_log_var_1"])
                   - losses.gaussian_log_density_elements(sample["z1"], sample["mean_1"],
                                                          sample["log_var_1"]))
        ratio_2 = (losses.standard_normal_log_density_elements(sample["z2"])
                   - losses.gaussian_log_density_elements(sample["z2"], sample["mean_2"],
                                                          sample["log_var_2"]))
        return ratio_1, ratio_2

    # --- forward pass used by fit() --------------------------------------------------------------

    def call(self, images, training=None):
        """One joint sample per image and per `iwae_samples`: a dict of float32 tensors with
        `k*B` rows (sample-major) — `z1`, `z2`, the posterior and prior parameters, `logits`."""
        return self._joint_sample(images, self.iwae_samples, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The negative (weighted) ELBO, or IWAE bound when `iwae_samples > 1`; updates the metrics.

        `sample_weight` is not supported and is ignored.
        """
        images = ops.cast(x, "float32")
        batch_size = ops.shape(images)[0]
        num_samples = self.iwae_samples
        log_px = losses.bernoulli_log_likelihood(y_pred["logits"], tile_rows(images, num_samples))
        kl_1, kl_2 = self._kl_elements(y_pred)
        distortion = -ops.mean(log_px)
        kl_1_mean = ops.mean(losses.sum_per_example(kl_1))
        kl_2_mean = ops.mean(losses.sum_per_example(kl_2))
        recon_scale = 1.0 / self.num_pixels if self.reconstruction_reduction == "mean" else 1.0

        if num_samples > 1:
            ratio_1, ratio_2 = self._log_ratios(y_pred)
            weights_1 = losses.element_weights(self.bottom_latent_shape, self.kl_weight)
            log_ratio = (losses.sum_per_example(weights_1 * ratio_1)
                         + self.top_kl_weight * losses.sum_per_example(ratio_2)) / recon_scale
            log_weights = ops.reshape(log_px + log_ratio, (num_samples, batch_size))
            bound = ops.mean(ops.logsumexp(log_weights, axis=0)) - math.log(num_samples)
            loss = -bound * recon_scale
            self.iwae_tracker.update_state(bound)
        else:
            rate = ops.mean(losses.weighted_kl(kl_1, self.kl_weight)
                            + self.top_kl_weight * losses.sum_per_example(kl_2))
            loss = distortion * recon_scale + rate

        self.reconstruction_tracker.update_state(distortion)
        self.kl_1_tracker.update_state(kl_1_mean)
        self.kl_2_tracker.update_state(kl_2_mean)
        self.kl_tracker.update_state(kl_1_mean + kl_2_mean)
        self.elbo_tracker.update_state(-distortion - kl_1_mean - kl_2_mean)
        extra = self.losses
        if extra:
            loss = loss + ops.sum(ops.stack(extra))
        return distribute.scale_loss_for_replicas(loss)

    # --- evaluation protocol (keras_crvae.evaluation) ---------------------------------------------

    def _check_noise(self, images, noise):
        if not isinstance(noise, (list, tuple)) or len(noise) != 2:
            raise ValueError("`noise` must be a list [noise_1, noise_2], one standard-normal array "
                             "per stochastic layer (bottom to top).")
        batch = int(images.shape[0])
        num_samples = None
        for layer, (array, shape) in enumerate(zip(noise, self.latent_shapes), start=1):
            got = tuple(array.shape)
            if len(got) != len(shape) + 2 or got[1] != batch or got[2:] != tuple(shape):
                raise ValueError(f"`noise[{layer - 1}]` must have shape (num_samples, {batch}, "
                                 f"{', '.join(str(d) for d in shape)}) for z{layer}; got {got}.")
            if num_samples is not None and got[0] != num_samples:
                raise ValueError("`noise` arrays must have the same number of samples; got "
                                 f"{num_samples} and {got[0]}.")
            num_samples = got[0]
        if num_samples < 1:
            raise ValueError(f"`noise` must hold at least one sample; got {num_samples}.")
        return num_samples

    def log_importance_weights(self, images, noise):
        """Joint log importance weights `log p(x, z1, z2) - log q(z1, z2 | x)` of given posterior noise.

        Args:
            images: `(B, *image_shape)` in [0, 1] (binarized for the Bernoulli likelihood).
            noise: `[noise_1, noise_2]`, standard-normal arrays `(S, B, *z1_shape)` and
                `(S, B, *z2_shape)` (`latent_shapes`); the posterior samples are
                `z = mean + exp(log_var / 2) * noise`, layer by layer.

        Returns:
            float32 tensor `(S, B)`. `logsumexp` over axis 0 minus `log S` is the S-sample bound.
        """
        validate_images(images, self.image_shape)
        num_samples = self._check_noise(images, noise)
        batch = int(images.shape[0])
        images = ops.convert_to_tensor(images)
        flat_noise = [ops.reshape(ops.convert_to_tensor(array, "float32"),
                                  (num_samples * batch,) + tuple(shape))
                      for array, shape in zip(noise, self.latent_shapes)]
        sample = self._joint_sample(ops.cast(images, "float32"), num_samples,
                                    noise=flat_noise, training=False)
        log_px = losses.bernoulli_log_likelihood(sample["logits"],
                                                 tile_rows(to_float32(images), num_samples))
        ratio_1, ratio_2 = self._log_ratios(sample)
        log_weights = (log_px + losses.sum_per_example(ratio_1)
                       + losses.sum_per_example(ratio_2))
        return ops.reshape(log_weights, (num_samples, batch))

    def elbo_terms(self, images, seed=None):
        """One-sample ELBO terms per image: dict of `(B,)` float32 tensors `reconstruction`
        (`-log p(x|z1)`), `kl_1`, `kl_2` (module docstring; `elbo = -(reconstruction + kl_1 + kl_2)`)."""
        validate_images(images, self.image_shape)
        batch = int(images.shape[0])
        noise = [keras.random.normal((1, batch) + tuple(shape), seed=seed)
                 for shape in self.latent_shapes]
        images = ops.convert_to_tensor(images)
        sample = self._joint_sample(ops.cast(images, "float32"), 1,
                                    noise=[ops.reshape(n, (batch,) + tuple(s))
                                           for n, s in zip(noise, self.latent_shapes)],
                                    training=False)
        kl_1, kl_2 = self._kl_elements(sample)
        return {"reconstruction": -losses.bernoulli_log_likelihood(sample["logits"],
                                                                   to_float32(images)),
                "kl_1": losses.sum_per_example(kl_1), "kl_2": losses.sum_per_example(kl_2)}

    # --- the public API: encode / decode / sample / reconstruct -----------------------------------

    def encode(self, images):
        """Posterior parameters per layer, bottom to top: `[(mean_1, log_var_1), (mean_2, log_var_2)]`.

        `(mean_1, log_var_1)` is `q(z1|x)`, shapes `(B, *z1_shape)`. `(mean_2, log_var_2)` is
        `q(z2|x)` ("factorized") or `q(z2|z1 = mean_1)` ("bottom_up": the posterior mean path),
        shapes `(B, *z2_shape)`. Active units (`evaluation.active_units`) count each layer's means.
        """
        validate_images(images, self.image_shape)
        images = ops.cast(ops.convert_to_tensor(images), "float32")
        mean_1, log_var_1 = to_float32(self.encoder(images, training=False))
        top_input = images if self.inference == "factorized" else mean_1
        mean_2, log_var_2 = to_float32(self.top_encoder(top_input, training=False))
        return [(mean_1, log_var_1), (mean_2, log_var_2)]

    def decode_logits(self, z2):
        """Decoder logits of top latents `z2` `(B, *z2_shape)` through `z1 = E[z1|z2]` (the prior
        mean of `p(z1|z2)`) -> `(B, *image_shape)`."""
        validate_images(z2, self.latent_shape, name="z", value_range=None)
        z2 = ops.cast(ops.convert_to_tensor(z2), "float32")
        prior_mean_1, _ = self.top_decoder(z2, training=False)
        return to_float32(self.decoder(prior_mean_1, training=False))

    def decode(self, z2):
        """Bernoulli means (pixel probabilities) of top latents `z2` (see `decode_logits`)."""
        return ops.sigmoid(self.decode_logits(z2))

    def sample(self, num_samples, seed=None):
        """Ancestral samples: `z2 ~ N(0, I)`, `z1 ~ p(z1|z2)`, pixel probabilities of `p(x|z1)`."""
        if int(num_samples) < 1:
            raise ValueError(f"`num_samples` must be >= 1, got {num_samples}.")
        seed_generator = keras.random.SeedGenerator(seed)
        z2 = keras.random.normal((int(num_samples),) + self.latent_shape, seed=seed_generator)
        prior_mean_1, prior_log_var_1 = to_float32(self.top_decoder(z2, training=False))
        z1 = prior_mean_1 + ops.exp(0.5 * prior_log_var_1) * keras.random.normal(
            ops.shape(prior_mean_1), seed=seed_generator)
        return ops.sigmoid(to_float32(self.decoder(z1, training=False)))

    def log_likelihood(self, images, z1):
        """`log p(x|z1)` summed over pixels -> `(B,)`."""
        validate_images(images, self.image_shape)
        validate_images(z1, self.bottom_latent_shape, name="z1", value_range=None)
        logits = self.decoder(ops.cast(ops.convert_to_tensor(z1), "float32"),
                              training=False)
        return losses.bernoulli_log_likelihood(to_float32(logits), ops.convert_to_tensor(images))

    def reconstruct(self, images, sample=False, seed=None):
        """Decoded probabilities of `z1 = mean_1` (default) or of one sample of `q(z1|x)`."""
        (mean_1, log_var_1), _ = self.encode(images)
        z1 = mean_1
        if sample:
            z1 = mean_1 + ops.exp(0.5 * log_var_1) * keras.random.normal(ops.shape(mean_1),
                                                                         seed=seed)
        return ops.sigmoid(to_float32(self.decoder(z1, training=False)))

    # --- serving (keras_crvae.export): the signatures take the top latent -------------------------

    def serving_networks(self):
        """`(encoder, decoder)` functional models of the serving contract on the top latent:
        images -> `[mean_2, log_var_2]` (as `encode`'s top layer) and `z2` -> logits (as
        `decode_logits`). Built on demand; they share this model's layers."""
        images = keras.Input(self.image_shape, name="images")
        mean_1, _ = self.encoder(images)
        mean_2, log_var_2 = self.top_encoder(images if self.inference == "factorized" else mean_1)
        encoder = keras.Model(images, [mean_2, log_var_2], name="serving_encoder")
        z2 = keras.Input(self.latent_shape, name="z")
        prior_mean_1, _ = self.top_decoder(z2)
        decoder = keras.Model(z2, self.decoder(prior_mean_1), name="serving_decoder")
        return encoder, decoder

    # --- serialization ---------------------------------------------------------------------------

    def get_config(self):
        return {
            "name": self.name,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "top_encoder": keras.saving.serialize_keras_object(self.top_encoder),
            "top_decoder": keras.saving.serialize_keras_object(self.top_decoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "inference": self.inference,
            "kl_weight": self.kl_weight,
            "top_kl_weight": self.top_kl_weight,
            "reconstruction_reduction": self.reconstruction_reduction,
            "iwae_samples": self.iwae_samples,
            "likelihood": self.likelihood,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**with_deserialized(config, "encoder", "top_encoder", "top_decoder", "decoder"))

