"""The VAE family (VAE, cVAE, crVAE, crIWAE) as one `keras.Model` trained with plain `fit()`.

Objective per example `x` with `D` pixels, Bernoulli decoder logits `l(z)` and posterior
`q(z|x) = N(mean, exp(log_var))` (docs/design.md section 5, supplement section B):

    rate       = sum_t alpha_t * KL_t(q(z|x) || N(0, I))      (KL per channel block t, closed form)
    distortion = -log p(x|z),  z ~ q(z|x)
    loss       = distortion / D + rate        reconstruction_reduction="mean" (reference, alpha=0.001)
    loss       = distortion + rate            reconstruction_reduction="sum"  (alpha=1: -ELBO)

Disentangling options (the lecture's beta-VAE section):

    beta-VAE (Higgins et al. 2017)      kl_weight=beta, reconstruction_reduction="sum":
                                        loss = distortion + beta * KL
    controlled capacity (Burgess et     capacity=C_max, capacity_steps=N, kl_weight=gamma:
    al. 2018, eq. 8)                    loss = distortion + gamma * |KL - C(step)|,
                                        C(step) = C_max * min(step / N, 1)
                                        (KL summed over latents and averaged over the batch)

The decoder is Bernoulli (`likelihood="bernoulli"`, logits) or a Gaussian of fixed standard
deviation `decoder_std` around the sigmoid of the decoder output (`likelihood="gaussian"`):
`-log p(x|z) = sum_d (x_d - sigmoid(l_d))^2 / (2 std^2) + D log(std sqrt(2 pi))`.

With `iwae_samples=k > 1` the loss is the k-sample importance-weighted bound of Burda et al. (2016),
`-log mean_k exp(log p(x|z_k) + sum_i w_i (log p(z_k,i) - log q(z_k,i|x)))`, where the per-element
weights `w_i` are the block weights `alpha_t` expressed in nats (`alpha_t * D` in "mean" mode), so
`alpha = 1/D` ("mean") or `alpha = 1` ("sum") gives the exact IWAE bound.

Flow posteriors (`posterior_flow="planar:K"`, `"radial:K"` or `"iaf:K"`; Rezende & Mohamed 2015,
Kingma et al. 2016): `z_0 ~ q_0(z|x) = N(mean, exp(log_var))`, `z_K = f_K(...f_1(z_0))` with each
step's parameters from the context `h(x) = [mean, log_var]` (flattened), and

    log q_K(z_K|x) = log q_0(z_0|x) - sum_k log|det df_k/dz_{k-1}|
    rate           = log q_K(z_K|x) - log p(z_K)          (a one-sample estimate of KL(q_K || p))
    loss           = distortion * scale + alpha * rate    (alpha: one `kl_weight`)

The KL of `q_K` has no closed form, so the rate (and the `kl` metric) is the single-sample
estimate above; its expectation is the KL, and `distortion + rate` is an unbiased estimate of
-ELBO. The k-sample bound uses `log p(z_K) - log q_K(z_K|x)` per sample, and so does the
importance-sampled NLL (`log_importance_weights`): the density of q after the flow. Block weights
`alpha_t` cannot weight a flow's rate (the log-determinant does not split into channel blocks), so
unequal block weights with a flow are refused. `posterior_flow=None` is the diagonal Gaussian above,
computed exactly as before.

The reference trains with `nn.BCECriterion` (size-averaged over batch and pixels) plus
`alpha * KLDCriterion` (summed over latents, averaged over the batch): `train_test/train_test_*_mnist.lua`
of GitHub `WendyShang/crVAE`.
"""

import math
import numbers

import keras
from keras import ops

from keras_crvae import distribute, losses
from keras_crvae.layers import GaussianSampler
from keras_crvae.networks.posterior_flows import build_posterior_flow, parse_posterior_flow
# The shared helpers live in `models/base.py`; these names stay importable from here (old imports).
from keras_crvae.models.base import (LIKELIHOODS, RECONSTRUCTION_REDUCTIONS,  # noqa: F401
                                     OptimizerBuiltBeforeTracing, check_encoder_decoder,
                                     check_objective_options, network_for_mode, run_network,
                                     tile_rows, to_float32, validate_images, with_deserialized)
from keras_crvae.networks.inference import inference_network

_tile_rows = tile_rows  # the old private name, kept for old imports

# The likelihoods of the single-layer `VAE` (HierarchicalVAE keeps the Bernoulli one only).
VAE_LIKELIHOODS = ("bernoulli", "gaussian")


def capacity_schedule(step, capacity, capacity_steps):
    """The controlled capacity `C(step) = capacity * min(step / capacity_steps, 1)` in nats.

    Burgess et al. (2018, section 5): C grows linearly from 0 to `capacity` over `capacity_steps`
    training steps, then stays there. Works on Python numbers and tensors alike.
    """
    fraction = step / float(capacity_steps)
    if isinstance(fraction, numbers.Real):
        return float(capacity) * min(fraction, 1.0)
    return float(capacity) * ops.minimum(fraction, 1.0)


@keras.saving.register_keras_serializable(package="keras_crvae")
class VAE(OptimizerBuiltBeforeTracing, keras.Model):
    """A variational autoencoder with a diagonal Gaussian posterior and a Bernoulli decoder.

    The same class is the paper's VAE, cVAE and crVAE (the networks decide) and crIWAE
    (`iwae_samples > 1`); beta-VAE is `kl_weight=beta` with `reconstruction_reduction="sum"`, and
    the controlled-capacity beta-VAE adds `capacity` and `capacity_steps` (module docstring). Train it with `model.compile(optimizer)` and `model.fit(images)`; the loss is
    computed in `compute_loss`, so every Keras backend trains it.

    Args:
        encoder: `keras.Model`, images `(B, *image_shape)` -> `[mean, log_var]`, each
            `(B, *latent_shape)`.
        decoder: `keras.Model`, z `(B, *latent_shape)` -> Bernoulli logits `(B, *image_shape)`.
        kl_weight: float or list of floats, default 1.0. `alpha`, or one `alpha_t` per channel block
            (e.g. `losses.two_level_block_weights(alpha1, alpha2, T)`).
        reconstruction_reduction: str, default "mean". "mean" divides `-log p(x|z)` by the pixel
            count (the reference's normalisation), "sum" does not.
        iwae_samples: int, default 1. `k` of the importance-weighted bound used for training.
        likelihood: str, default "bernoulli". "gaussian": `N(x; sigmoid(decoder output),
            decoder_std^2 I)` (pixel values in [0, 1]).
        decoder_std: float, default 1.0. Standard deviation of the Gaussian decoder.
        capacity: float or None, default None. `C_max` in nats of the controlled-capacity
            objective `kl_weight * |KL - C(step)|` (Burgess et al. 2018); None: the usual
            `kl_weight * KL`. Needs a single `kl_weight` (gamma) and `iwae_samples=1`.
        capacity_steps: int, default 100000. Training steps over which C grows from 0 to
            `capacity` (counted by the model's `capacity_step` variable, saved with it).
        seed: int or None. Seed of the posterior sampler.
        posterior_flow: str or None, default None. `"planar:K"`, `"radial:K"` or `"iaf:K"`: K
            amortised flow steps after the Gaussian posterior (module docstring); None: the
            diagonal Gaussian. Needs a single `kl_weight` (or equal block weights).
        flow_hidden_units: list of ints or None. IAF only: the MADE's hidden widths (default one
            layer of 2 x the latent size).

    Metrics (nats per image): `elbo`, `reconstruction` (`-log p(x|z)`), `kl`, `iwae_bound`
    when `iwae_samples > 1`, and `capacity` (the current C) with a capacity.

    >>> from keras_crvae import networks
    >>> model = VAE(networks.build_mnist_encoder("conv", base_channels=4, latent_channels=8),
    ...             networks.build_mnist_decoder("conv", base_channels=4, latent_channels=8))
    >>> tuple(model.sample(2, seed=0).shape)
    (2, 28, 28, 1)

    Reference: Kingma & Welling 2014; Burda et al. 2016; Shang et al. 2018 (supplement B);
    Higgins et al., "beta-VAE", ICLR 2017; Burgess et al., "Understanding disentangling in
    beta-VAE", 2018.
    """

    # The serving contract (keras_crvae.export): decoded images are sigmoid(decoder output) in [0, 1].
    image_range = (0.0, 1.0)
    decoder_outputs = "logits"

    def __init__(
        self,
        encoder,
        decoder,
        kl_weight=1.0,
        reconstruction_reduction="mean",
        iwae_samples=1,
        likelihood="bernoulli",
        seed=None,
        decoder_std=1.0,
        capacity=None,
        capacity_steps=100000,
        posterior_flow=None,
        flow_hidden_units=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        kl_weight, weights = check_objective_options(reconstruction_reduction, likelihood,
                                                     iwae_samples, kl_weight,
                                                     likelihoods=VAE_LIKELIHOODS)
        if not (float(decoder_std) > 0 and math.isfinite(float(decoder_std))):
            raise ValueError(f"`decoder_std` must be a positive finite float, got {decoder_std!r}.")
        if capacity is not None:
            if not (float(capacity) >= 0 and math.isfinite(float(capacity))):
                raise ValueError(f"`capacity` must be a finite number of nats >= 0, got "
                                 f"{capacity!r}.")
            if isinstance(capacity_steps, bool) or int(capacity_steps) < 1:
                raise ValueError(f"`capacity_steps` must be >= 1, got {capacity_steps!r}.")
            if not isinstance(kl_weight, float):
                raise ValueError("`capacity` needs a single `kl_weight` (gamma), not block "
                                 "weights.")
            if int(iwae_samples) > 1:
                raise ValueError("`capacity` needs `iwae_samples=1`.")
        parse_posterior_flow(posterior_flow)
        if posterior_flow is not None and len(set(weights)) > 1:
            raise ValueError(
                f"posterior_flow={posterior_flow!r} cannot be combined with unequal KL block "
                f"weights kl_weight={kl_weight!r}: a flow's log-determinant does not split into "
                "channel blocks. Use one kl_weight, or posterior_flow=None.")

        # === Layers ===
        self.encoder = encoder
        self.decoder = decoder
        # float32 whatever the precision: KLs and densities are computed from its outputs.
        self.sampler = GaussianSampler(seed=seed, dtype="float32", name="posterior_sampler")

        # === Metrics ===
        self.elbo_tracker = keras.metrics.Mean(name="elbo")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.iwae_tracker = keras.metrics.Mean(name="iwae_bound") if iwae_samples > 1 else None
        self.capacity_tracker = keras.metrics.Mean(name="capacity") if capacity is not None else None

        # === Config ===
        self.kl_weight = kl_weight if isinstance(kl_weight, float) else [float(w) for w in weights]
        self.reconstruction_reduction = reconstruction_reduction
        self.iwae_samples = int(iwae_samples)
        self.likelihood = likelihood
        self.seed = seed
        self.decoder_std = float(decoder_std)
        self.capacity = None if capacity is None else float(capacity)
        self.capacity_steps = int(capacity_steps)
        self.posterior_flow = posterior_flow
        self.flow_hidden_units = (None if flow_hidden_units is None
                                  else [int(units) for units in flow_hidden_units])
        self.image_shape = tuple(encoder.input_shape[1:])
        self.latent_shape = tuple(decoder.input_shape[1:])
        self.num_pixels = int(math.prod(self.image_shape))
        if isinstance(self.kl_weight, list) and self.latent_shape[-1] % len(self.kl_weight):
            raise ValueError(
                f"{len(self.kl_weight)} KL block weights do not divide the latent's "
                f"{self.latent_shape[-1]} channels."
            )
        self._check_networks()

        # === Posterior flow (float32, like the densities it feeds) ===
        self.posterior_flow_layer = None
        if posterior_flow is not None:
            self.posterior_flow_layer = build_posterior_flow(
                posterior_flow, self.latent_shape, context_dim=2 * math.prod(self.latent_shape),
                hidden_units=self.flow_hidden_units)

        # === State ===
        # Training steps seen by the capacity schedule: a model weight (not the optimizer's
        # `iterations`, which JAX's stateless step cannot read here), so that it is saved with the
        # model and a resumed run continues the schedule. Replicas step together: one copy counts.
        self.capacity_step = None
        if self.capacity is not None:
            self.capacity_step = self.add_weight(
                shape=(), initializer="zeros", trainable=False, dtype="float32",
                aggregation="only_first_replica", name="capacity_step")
        self.build((None,) + self.image_shape)

    def build(self, input_shape):
        # The sub-networks arrive built; only the sampler's state remains, created in __init__.
        self.built = True

    def _check_networks(self):
        check_encoder_decoder(self.encoder, self.decoder, self.latent_shape, self.image_shape)

    # --- forward pass used by fit() --------------------------------------------------------------

    def call(self, images, training=None):
        """Encodes, samples and decodes.

        Returns a dict: `mean`, `log_var` `(B, *latent)`; `z`, `kl` (per element) and `logits` with
        `k*B` rows, sample-major, where `k = iwae_samples` (in training and evaluation alike, so
        `evaluate()` reports the bound that `fit()` optimises).
        """
        mean, log_var = to_float32(self.encoder(images, training=training))
        num_samples = self.iwae_samples
        if self.posterior_flow_layer is not None:
            return self._call_with_flow(images, mean, log_var, num_samples, training)
        z, kl = self.sampler([tile_rows(mean, num_samples), tile_rows(log_var, num_samples)])
        logits = self._reconstruction_logits(z, tile_rows(images, num_samples), training)
        return {"mean": mean, "log_var": log_var, "z": z, "kl": kl, "logits": logits}

    def _flow_context(self, mean, log_var):
        """The context `h(x)` of the flow steps: `[mean, log_var]` flattened, `(B, 2 D)`.

        A deterministic function of x that every encoder already returns, so a flow fits any
        encoder of the library without a new output (our choice; Kingma et al. take h from the
        encoder's last hidden layer, Rezende & Mohamed output the flow parameters from it)."""
        batch = ops.shape(mean)[0]
        return ops.concatenate([ops.reshape(mean, (batch, -1)), ops.reshape(log_var, (batch, -1))],
                               axis=1)

    def _flow_sample(self, z0, mean, log_var, num_samples, training=None):
        """`(z_K, log q_K(z_K|x))` for `z0 ~ q_0` with `num_samples * B` rows (sample-major)."""
        mean, log_var = tile_rows(mean, num_samples), tile_rows(log_var, num_samples)
        z, log_det = self.posterior_flow_layer.forward_and_log_det(
            z0, context=self._flow_context(mean, log_var), training=training)
        return z, losses.gaussian_log_density(z0, mean, log_var) - log_det

    def _call_with_flow(self, images, mean, log_var, num_samples, training):
        z0, _ = self.sampler([tile_rows(mean, num_samples), tile_rows(log_var, num_samples)])
        z, log_q = self._flow_sample(z0, mean, log_var, num_samples, training)
        rate = log_q - losses.standard_normal_log_density(z)
        logits = self._reconstruction_logits(z, tile_rows(images, num_samples), training)
        return {"mean": mean, "log_var": log_var, "z0": z0, "z": z, "rate": rate,
                "logits": logits}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The training objective of the module docstring; also updates the nats metrics.

        `sample_weight` is not supported (every image counts once) and is ignored.
        """
        images = ops.cast(x, y_pred["logits"].dtype)
        batch_size = ops.shape(images)[0]
        num_samples = ops.shape(y_pred["logits"])[0] // batch_size
        log_px = self._log_px(y_pred["logits"], tile_rows(images, num_samples))
        flow = "rate" in y_pred  # a flow posterior: the rate is a sample estimate (module doc)
        kl_per_sample = y_pred["rate"] if flow else losses.sum_per_example(y_pred["kl"])
        distortion = -ops.mean(log_px)
        kl = ops.mean(kl_per_sample)
        recon_scale = 1.0 / self.num_pixels if self.reconstruction_reduction == "mean" else 1.0

        if self.iwae_samples > 1:
            log_ratio = (-self._flow_kl_weight() * y_pred["rate"] if flow
                         else self._weighted_log_ratio(y_pred)) / recon_scale
            log_weights = ops.reshape(log_px + log_ratio, (-1, batch_size))
            bound = ops.mean(ops.logsumexp(log_weights, axis=0)) - math.log(self.iwae_samples)
            loss = -bound * recon_scale
            self.iwae_tracker.update_state(bound)
        elif self.capacity is not None:
            capacity = self._capacity(training)
            rate = self.kl_weight * ops.abs(kl - capacity)
            loss = distortion * recon_scale + rate
            self.capacity_tracker.update_state(capacity)
        elif flow:
            loss = distortion * recon_scale + self._flow_kl_weight() * kl
        else:
            rate = ops.mean(losses.weighted_kl(y_pred["kl"], self.kl_weight))
            loss = distortion * recon_scale + rate

        self.reconstruction_tracker.update_state(distortion)
        self.kl_tracker.update_state(kl)
        self.elbo_tracker.update_state(-distortion - kl)
        # A per-replica mean: scaled by 1/replicas so the summed gradients are the global mean's.
        return distribute.scale_loss_for_replicas(loss + self._regularization_loss())

    def _reconstruction_logits(self, z, images, training):
        """Decoder outputs `(N, *image_shape)` for latents `z` of the rows of `images` (both with N
        rows). The VAE's decoder ignores the images; an autoregressive decoder (`VLAE`) reads
        them, teacher-forced."""
        del images
        return to_float32(network_for_mode(self.decoder, training)(z, training=training))

    def _capacity(self, training):
        """C of this step; a training call advances the step counter (after reading it)."""
        step = ops.cast(self.capacity_step, "float32")
        if training:
            self.capacity_step.assign(step + 1.0)
        return capacity_schedule(step, self.capacity, self.capacity_steps)

    def _log_px(self, logits, images):
        """`log p(x|z)` per row `(B,)` from decoder outputs (Bernoulli logits, or the Gaussian's
        mean through a sigmoid) and images of the same shape."""
        if self.likelihood == "gaussian":
            return losses.gaussian_fixed_std_log_likelihood(ops.sigmoid(logits), images,
                                                            self.decoder_std)
        return losses.bernoulli_log_likelihood(logits, images)

    def _flow_kl_weight(self):
        """The one KL weight of a flow posterior (equal block weights are checked in __init__)."""
        return self.kl_weight if isinstance(self.kl_weight, float) else self.kl_weight[0]

    def _regularization_loss(self):
        extra = self.losses
        return ops.sum(ops.stack(extra)) if extra else 0.0

    def _weighted_log_ratio(self, y_pred):
        """`sum_i alpha_i (log p(z_i) - log q(z_i|x))` per sample row (alpha in loss units)."""
        z = y_pred["z"]
        num_samples = ops.shape(z)[0] // ops.shape(y_pred["mean"])[0]
        mean = tile_rows(y_pred["mean"], num_samples)
        log_var = tile_rows(y_pred["log_var"], num_samples)
        weights = losses.element_weights(self.latent_shape, self.kl_weight, dtype=z.dtype)
        per_element = weights * (losses.standard_normal_log_density_elements(z)
                                 - losses.gaussian_log_density_elements(z, mean, log_var))
        return losses.sum_per_example(per_element)

    # --- evaluation protocol (keras_crvae.evaluation.likelihood) ---------------------------------

    @property
    def latent_shapes(self):
        """`[latent_shape]`: the noise shape of `log_importance_weights` (one stochastic layer)."""
        return [self.latent_shape]

    def log_importance_weights(self, images, noise):
        """`log p(x|z) + log p(z) - log q(z|x)` for `z = mean + exp(log_var / 2) * noise`.

        A pure function of its inputs, so `importance_sampled_nll` compiles it (Burda et al. 2016,
        eq. 8 averages `exp` of these over samples).

        Args:
            images: `(B, *image_shape)` in [0, 1] (binarized).
            noise: `[noise]`, one standard-normal array `(S, B, *latent_shape)`.

        Returns:
            float32 tensor `(S, B)`. Encoder and decoder outputs are cast to float32 first, so a
            `mixed_bfloat16` model is scored in float32.
        """
        if not isinstance(noise, (list, tuple)) or len(noise) != 1:
            raise ValueError("`noise` must be a list with one standard-normal array "
                             "(num_samples, batch, *latent_shape).")
        noise = ops.convert_to_tensor(noise[0], "float32")
        images = ops.convert_to_tensor(images)
        num_samples, batch = int(noise.shape[0]), int(images.shape[0])
        if tuple(noise.shape[1:]) != (batch,) + self.latent_shape:
            raise ValueError(f"`noise[0]` must have shape (num_samples, {batch}, "
                             f"{', '.join(str(d) for d in self.latent_shape)}); got "
                             f"{tuple(noise.shape)}.")
        mean, log_var = to_float32(inference_network(self.encoder)(ops.cast(images, "float32"),
                                                                   training=False))
        mean = tile_rows(mean, num_samples)
        log_var = tile_rows(log_var, num_samples)
        z = mean + ops.exp(0.5 * log_var) * ops.reshape(noise,
                                                        (num_samples * batch,) + self.latent_shape)
        tiled_images = tile_rows(ops.cast(images, "float32"), num_samples)
        if self.posterior_flow_layer is not None:
            # q's density after the flow: log q_K(z_K|x) = log q_0(z_0|x) - sum_k log|det|.
            z, log_q = self._flow_sample(z, mean, log_var, 1, training=False)
        logits = self._reconstruction_logits(z, tiled_images, False)
        log_px = self._log_px(logits, tiled_images)
        if self.posterior_flow_layer is not None:
            log_ratio = losses.standard_normal_log_density(z) - log_q
        else:
            log_ratio = (losses.standard_normal_log_density(z)
                         - losses.gaussian_log_density(z, mean, log_var))
        return ops.reshape(log_px + log_ratio, (num_samples, batch))

    # --- the public API contract: encode / decode / sample / log_likelihood ---------------------

    def encode(self, images):
        """`q(z|x)` parameters: images `(B, *image_shape)` in [0, 1] -> `(mean, log_var)`."""
        images = validate_images(images, self.image_shape)
        images = ops.cast(ops.convert_to_tensor(images), "float32")
        mean, log_var = to_float32(inference_network(self.encoder)(images, training=False))
        return mean, log_var

    def decode_logits(self, z):
        """Decoder logits for latents `z` `(B, *latent_shape)` -> `(B, *image_shape)`.

        A NumPy `z` runs through the decoder's compiled predict function (`tf.function` / `jax.jit`),
        1.3x (TF) to 2x (JAX) faster on CPU than an eager call; tensors run eagerly or in the
        caller's graph.
        """
        validate_images(z, self.latent_shape, name="z", value_range=None)
        return run_network(self.decoder, z)

    def decode(self, z):
        """Decoder means in [0, 1] for latents `z` `(B, *latent_shape)`: Bernoulli pixel
        probabilities, or the Gaussian decoder's means."""
        return ops.sigmoid(self.decode_logits(z))

    def sample(self, num_samples, seed=None):
        """Draws `num_samples` images (probabilities) from the prior: `z ~ N(0, I)`, `decode(z)`."""
        if int(num_samples) < 1:
            raise ValueError(f"`num_samples` must be >= 1, got {num_samples}.")
        z = keras.random.normal((int(num_samples),) + self.latent_shape, seed=seed)
        return self.decode(z)

    def log_likelihood(self, images, z):
        """`log p(x|z)` summed over pixels -> `(B,)`, for images `(B, *image_shape)` in [0, 1]."""
        images = validate_images(images, self.image_shape)
        return self._log_px(self.decode_logits(z), ops.cast(ops.convert_to_tensor(images), "float32"))

    def reconstruct(self, images, sample=False, seed=None):
        """Decoded probabilities of `mean` (default) or of one posterior sample of each image
        (with a flow posterior: of `f_K...f_1(mean)` or of a sample pushed through the flow)."""
        mean, log_var = self.encode(images)
        z = mean
        if sample:
            z = mean + ops.exp(0.5 * log_var) * keras.random.normal(ops.shape(mean), seed=seed)
        if self.posterior_flow_layer is not None:
            z, _ = self._flow_sample(z, mean, log_var, 1)
        return self.decode(z)

    @property
    def elbo_terms(self):
        """With a flow posterior, `elbo_terms(images, seed=None)` -> dict of `(B,)` tensors
        `reconstruction` (`-log p(x|z_K)`) and `kl` (`log q_K(z_K|x) - log p(z_K)`), one posterior
        sample each, which `keras_crvae.evaluation.elbo` averages (the closed-form KL it uses
        otherwise is that of q_0, not of q_K). None without a flow: the closed form applies."""
        if self.posterior_flow_layer is None:
            return None
        return self._flow_elbo_terms

    def _flow_elbo_terms(self, images, seed=None):
        mean, log_var = self.encode(images)
        z0 = mean + ops.exp(0.5 * log_var) * keras.random.normal(ops.shape(mean), seed=seed)
        z, log_q = self._flow_sample(z0, mean, log_var, 1)
        log_px = self.log_likelihood(images, ops.convert_to_numpy(z))
        return {"reconstruction": -log_px, "kl": log_q - losses.standard_normal_log_density(z)}

    # --- serialization ---------------------------------------------------------------------------

    def get_config(self):
        return {
            "name": self.name,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "kl_weight": self.kl_weight,
            "reconstruction_reduction": self.reconstruction_reduction,
            "iwae_samples": self.iwae_samples,
            "likelihood": self.likelihood,
            "seed": self.seed,
            "decoder_std": self.decoder_std,
            "capacity": self.capacity,
            "capacity_steps": self.capacity_steps,
            "posterior_flow": self.posterior_flow,
            "flow_hidden_units": self.flow_hidden_units,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**with_deserialized(config, "encoder", "decoder"))
