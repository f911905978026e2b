"""FactorVAE (Kim & Mnih, "Disentangling by Factorising", ICML 2018).

The VAE objective plus `gamma` times the total correlation of the aggregate posterior,
`TC = KL(q(z) || prod_j q(z_j))`, estimated with the density-ratio trick: a discriminator `D` learns
to tell samples of `q(z)` (label 1) from samples of `prod_j q(z_j)` (label 0), so that
`log D(z) / (1 - D(z))`, its logit, estimates `log q(z) / prod_j q(z_j)`. Per training batch of
`2B` images (the paper's Algorithm 2 draws two batches of `B`; here they are the two halves):

    z  ~ q(z|x)  for the first half,  z' ~ q(z|x') for the second half
    vae_loss  = -log p(x|z) + kl_weight * KL(q(z|x) || N(0, I)) + gamma * mean logit D(z)
                (first half; with reconstruction_reduction="sum" and kl_weight 1: -ELBO + gamma TC)
    z_perm    = permute_dims(z'): each latent dimension shuffled across the half-batch
                independently, a sample of prod_j q(z_j)
    d_loss    = 1/2 [BCE(D(z), 1) + BCE(D(z_perm), 0)]      (z, z' detached)

Both losses come from one forward pass and the two players update simultaneously, the VAE with
Adam(1e-4, beta1 0.9, beta2 0.999) and the discriminator with Adam(1e-4, beta1 0.5, beta2 0.9)
(the paper's appendix; `compile()`'s defaults).

The discriminator loss is these few lines here on purpose (`tc_discriminator_loss`), not the GAN
objectives shared by the adversarial models, so that it can later be routed through them.

`train_step` is TensorFlow-only (it uses `tf.GradientTape` and the replica context, like `VAEGAN`):
Keras' JAX trainer drives one optimizer through a stateless `train_step(state, data)`, and two
optimizers with different betas need their own stateless step; not written yet. Inference
(`encode`, `decode`, `sample`, `reconstruct`, `log_importance_weights`) and saving run on every
backend.
"""

import keras
from keras import ops

from keras_crvae import distribute
from keras_crvae.models.base import to_float32, with_deserialized
from keras_crvae.models.vae import VAE


def permute_dims(z, seed=None):
    """Shuffles every column of `z` `(B, d)` across the batch with its own permutation.

    Each output column holds exactly the values of the same input column (so every dimension's
    marginal is kept) while the dependence between dimensions is broken: a sample of
    `prod_j q(z_j)` (Kim & Mnih 2018, Algorithm 1). The permutations are the argsort of
    independent Gaussian keys, one column of keys per dimension.

    Args:
        z: tensor `(B, d)`.
        seed: int, `keras.random.SeedGenerator` or None.
    """
    keys = distribute.replica_normal(tuple(ops.shape(z)), seed, dtype="float32") \
        if isinstance(seed, keras.random.SeedGenerator) \
        else keras.random.normal(ops.shape(z), seed=seed)
    order = ops.argsort(keys, axis=0)
    return ops.take_along_axis(z, order, axis=0)


def tc_discriminator_loss(logits_joint, logits_permuted):
    """`1/2 [mean BCE(D(z), 1) + mean BCE(D(z_perm), 0)]` from the discriminator's logits.

    With `D = sigmoid(logit)`: `BCE(l, 1) = softplus(-l)`, `BCE(l, 0) = softplus(l)`.
    """
    return 0.5 * (ops.mean(ops.softplus(-logits_joint)) + ops.mean(ops.softplus(logits_permuted)))


@keras.saving.register_keras_serializable(package="keras_crvae")
class FactorVAE(VAE):
    """FactorVAE: a `VAE` whose loss adds `gamma` times a discriminator's estimate of the total
    correlation of `q(z)` (module docstring).

    Args:
        encoder: `keras.Model`, images -> `[mean, log_var]`, each `(B, latent_dim)`.
        decoder: `keras.Model`, `z (B, latent_dim)` -> decoder output (logits) `(B, *image_shape)`.
        discriminator: `keras.Model`, `z (B, latent_dim)` -> logit `(B, 1)`
            (`networks.build_tc_discriminator`).
        tc_weight: float, default 35.0. `gamma` (Kim & Mnih 2018 on dSprites).
        kl_weight: float, default 1.0.
        reconstruction_reduction: str, default "sum" (the paper's ELBO).
        **kwargs: other `VAE` arguments (`likelihood`, `decoder_std`, `seed`, `name`); not
            `iwae_samples` or `capacity`.

    Batches must have an even number of images (two halves). Metrics: `loss` (VAE side),
    `reconstruction`, `kl`, `elbo` (first half), `tc` (the discriminator's TC estimate),
    `d_loss`, `d_accuracy`.

    Reference: Kim & Mnih, "Disentangling by Factorising", ICML 2018, section 3 and Algorithm 2.
    """

    def __init__(self, encoder, decoder, discriminator, tc_weight=35.0, kl_weight=1.0,
                 reconstruction_reduction="sum", **kwargs):
        for unsupported in ("iwae_samples", "capacity", "posterior_flow"):
            if kwargs.get(unsupported) not in (None, 1):
                raise ValueError(f"FactorVAE does not take `{unsupported}`.")
            kwargs.pop(unsupported, None)
        if not float(tc_weight) >= 0:
            raise ValueError(f"`tc_weight` must be >= 0, got {tc_weight!r}.")
        # === Networks, seed and metrics: created before `VAE.__init__`, which builds the model
        # (Keras locks a built layer's state; it supports tracking attributes set this early). ===
        self.discriminator = discriminator
        seed = kwargs.get("seed")
        self.permutation_seed = keras.random.SeedGenerator(None if seed is None else seed + 1)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.tc_tracker = keras.metrics.Mean(name="tc")
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.d_accuracy_tracker = keras.metrics.Mean(name="d_accuracy")
        super().__init__(encoder, decoder, kl_weight=kl_weight,
                         reconstruction_reduction=reconstruction_reduction, **kwargs)
        if len(self.latent_shape) != 1:
            raise ValueError(f"FactorVAE needs a flat latent `(latent_dim,)`; got "
                             f"{self.latent_shape}.")
        if tuple(discriminator.input_shape[1:]) != self.latent_shape:
            raise ValueError(f"The discriminator takes {tuple(discriminator.input_shape[1:])} "
                             f"but the latent is {self.latent_shape}.")
        # === Config ===
        self.tc_weight = float(tc_weight)
        self.discriminator_optimizer = None

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker,
                self.elbo_tracker, self.tc_tracker, self.d_loss_tracker, self.d_accuracy_tracker]

    # --- compile / serialization -----------------------------------------------------------------

    def compile(self, optimizer=None, discriminator_optimizer=None, **kwargs):
        """One optimizer per player; defaults are the paper's Adams.

        Args:
            optimizer: of the encoder and decoder; default `Adam(1e-4, 0.9, 0.999)`.
            discriminator_optimizer: default `Adam(1e-4, beta_1=0.5, beta_2=0.9)`.
            **kwargs: passed to `keras.Model.compile` (e.g. `jit_compile`).
        """
        self.discriminator_optimizer = discriminator_optimizer or keras.optimizers.Adam(
            1e-4, beta_1=0.5, beta_2=0.9)
        super().compile(optimizer=optimizer or keras.optimizers.Adam(1e-4, beta_1=0.9,
                                                                     beta_2=0.999), **kwargs)
        # Built here, under the caller's distribution scope, so slots mirror like the weights.
        self.optimizer.build(self.vae_variables)
        self.discriminator_optimizer.build(self.discriminator.trainable_variables)

    @property
    def vae_variables(self):
        """Trainable variables of the encoder and decoder."""
        return self.encoder.trainable_variables + self.decoder.trainable_variables

    def get_compile_config(self):
        if self.discriminator_optimizer is None:
            return None
        return {"optimizer": keras.saving.serialize_keras_object(self.optimizer),
                "discriminator_optimizer": keras.saving.serialize_keras_object(
                    self.discriminator_optimizer),
                "jit_compile": self.jit_compile}

    def compile_from_config(self, config):
        self.compile(optimizer=keras.saving.deserialize_keras_object(config["optimizer"]),
                     discriminator_optimizer=keras.saving.deserialize_keras_object(
                         config["discriminator_optimizer"]),
                     jit_compile=config.get("jit_compile", "auto"))

    def get_config(self):
        config = super().get_config()
        for key in ("iwae_samples", "capacity", "capacity_steps"):
            config.pop(key)
        config.update({"discriminator": keras.saving.serialize_keras_object(self.discriminator),
                       "tc_weight": self.tc_weight})
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**with_deserialized(config, "encoder", "decoder", "discriminator"))

    # --- the objective ---------------------------------------------------------------------------

    def _discriminate(self, z, training):
        return to_float32(self.discriminator(z, training=training))

    def compute_terms(self, images, training=False):
        """Both players' losses for a batch of `2B` images (module docstring).

        Returns:
            dict of scalars: `vae_loss` (per replica, already divided by the replica count as
            `VAE.compute_loss` does), `tc`, `d_loss`, `d_accuracy`.
        """
        images = ops.cast(images, "float32")
        half = ops.shape(images)[0] // 2
        mean, log_var = to_float32(self.encoder(images, training=training))
        z_all, kl_all = self.sampler([mean, log_var])
        z, z_other = z_all[:half], z_all[half:]
        logits = to_float32(self.decoder(z, training=training))
        outputs = {"mean": mean[:half], "log_var": log_var[:half], "z": z, "kl": kl_all[:half],
                   "logits": logits}
        # Reconstruction + weighted KL, metrics updated, divided by the replica count.
        vae_loss = VAE.compute_loss(self, x=images[:half], y_pred=outputs, training=training)
        tc = ops.mean(self._discriminate(z, training))
        vae_loss = vae_loss + distribute.scale_loss_for_replicas(self.tc_weight * tc)

        logits_joint = self._discriminate(ops.stop_gradient(z), training)
        z_permuted = permute_dims(ops.stop_gradient(z_other), self.permutation_seed)
        logits_permuted = self._discriminate(z_permuted, training)
        d_loss = tc_discriminator_loss(logits_joint, logits_permuted)
        correct = ops.mean(ops.cast(logits_joint > 0, "float32")) \
            + ops.mean(ops.cast(logits_permuted <= 0, "float32"))
        return {"vae_loss": vae_loss, "tc": tc, "d_loss": d_loss, "d_accuracy": 0.5 * correct}

    def _check_batch(self, images):
        static_batch = images.shape[0]
        if static_batch is not None and static_batch % 2:
            raise ValueError(f"FactorVAE needs an even batch size (two halves); got {static_batch}. "
                             "Use drop_remainder=True in the pipeline.")

    def _update_metrics(self, terms):
        self.loss_tracker.update_state(terms["vae_loss"] * distribute.num_replicas())
        self.tc_tracker.update_state(terms["tc"])
        self.d_loss_tracker.update_state(terms["d_loss"])
        self.d_accuracy_tracker.update_state(terms["d_accuracy"])
        return {metric.name: metric.result() for metric in self.metrics}

    def train_step(self, *args):
        # TF calls train_step(data); JAX's trainer calls train_step(state, data).
        data = args[-1]
        if keras.backend.backend() != "tensorflow":
            raise NotImplementedError("FactorVAE trains on the TensorFlow backend only (module "
                                      "docstring); load and use a trained one on any backend.")
        import tensorflow as tf  # TF-only: GradientTape and replica contexts.

        if self.discriminator_optimizer is None:
            raise RuntimeError("Call `compile()` before `fit()`.")
        images = data[0] if isinstance(data, (list, tuple)) else data
        self._check_batch(images)
        vae_variables = self.vae_variables
        discriminator_variables = self.discriminator.trainable_variables
        with tf.GradientTape(persistent=True) as tape:
            terms = self.compute_terms(images, training=True)
            # Keras sums gradients over replicas: scale the per-replica means accordingly.
            d_loss = distribute.scale_loss_for_replicas(terms["d_loss"])
        vae_grads = tape.gradient(terms["vae_loss"], vae_variables)
        discriminator_grads = tape.gradient(d_loss, discriminator_variables)
        del tape
        self.optimizer.apply(vae_grads, vae_variables)
        self.discriminator_optimizer.apply(discriminator_grads, discriminator_variables)
        return self._update_metrics(terms)

    def test_step(self, data):
        images = data[0] if isinstance(data, (list, tuple)) else data
        self._check_batch(images)
        return self._update_metrics(self.compute_terms(images, training=False))
