"""The VQ-VAE: a discrete code map, an EMA codebook, and a PixelCNN prior over the codes.

van den Oord et al. (2017, "Neural Discrete Representation Learning"):

    z_e = encoder(x)                      (B, h, w, D)
    k   = argmin_j ||z_e - e_j||^2        the code map (B, h, w), `layers.VectorQuantizer`
    x^  = decoder(e_k)                    Bernoulli logits (B, H, W, C)

    loss = -log p(x | e_k) + beta * sum ||z_e - sg(e_k)||^2       per image, averaged over the batch

`-log p(x | e_k)` is the Bernoulli cross-entropy summed over pixels (nats; for grey or colour
targets in [0, 1] it is the cross-entropy the library's VAEs use). The codebook follows EMAs of the
encoder outputs (no gradient, appendix A.1) and restarts its dead codes. The uniform prior of
training is replaced afterwards by a PixelCNN over the code maps of the training images (section
3.1: "we fit an autoregressive distribution over z"); sampling = codes from the prior -> decoder.

Metrics every epoch: `reconstruction` (nats per image), `mse` (per pixel, of the decoded means),
`commitment`, `perplexity` (exp of the entropy of the batch's code frequencies) and
`codebook_usage` (fraction of codes used in a batch); `code_usage` counts over a whole data set.
"""

import keras
import numpy as np
from keras import ops

from keras_crvae import distribute, losses
from keras_crvae.layers import VectorQuantizer, codebook_statistics
from keras_crvae.models.base import (OptimizerBuiltBeforeTracing, run_network, to_float32,
                                     validate_images, with_deserialized)


@keras.saving.register_keras_serializable(package="keras_crvae")
class VQVAE(OptimizerBuiltBeforeTracing, keras.Model):
    """A vector-quantized autoencoder with an optional PixelCNN prior over its code maps.

    Args:
        encoder: `keras.Model`, images `(B, H, W, C)` in [0, 1] -> `(B, h, w, D)`.
        decoder: `keras.Model`, `(B, h, w, D)` -> Bernoulli logits `(B, H, W, C)`.
        num_codes: int, default 64. K, the codebook size.
        commitment_cost: float, default 0.25. beta.
        decay: float, default 0.99. The codebook's EMA decay.
        restart_threshold: float, default 1.0. EMA count below which a code restarts.
        prior: `PixelCNN` or None. A "categorical" PixelCNN over `(h, w, 1)` codes with K levels
            (`set_prior`); `sample` needs it.
        seed: int or None. Seed of the codebook restarts.

    >>> from keras_crvae import networks
    >>> model = VQVAE(networks.build_vq_encoder((8, 8, 1), filters=4, code_dim=3),
    ...               networks.build_vq_decoder((2, 2, 3), filters=4), num_codes=5)
    >>> tuple(model.encode_codes(np.zeros((1, 8, 8, 1), "float32")).shape)
    (1, 2, 2)

    Reference: van den Oord et al., "Neural Discrete Representation Learning", NeurIPS 2017.
    """

    image_range = (0.0, 1.0)
    decoder_outputs = "logits"

    def __init__(self, encoder, decoder, num_codes=64, commitment_cost=0.25, decay=0.99,
                 restart_threshold=1.0, prior=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        code_shape = tuple(encoder.output_shape[1:])
        if tuple(decoder.input_shape[1:]) != code_shape:
            raise ValueError(f"The encoder outputs {code_shape} but the decoder takes "
                             f"{tuple(decoder.input_shape[1:])}.")
        if tuple(decoder.output_shape[1:]) != tuple(encoder.input_shape[1:]):
            raise ValueError(f"The decoder outputs {tuple(decoder.output_shape[1:])} but the "
                             f"encoder takes {tuple(encoder.input_shape[1:])}.")
        # === Layers ===
        self.encoder = encoder
        self.decoder = decoder
        self.quantizer = VectorQuantizer(num_codes, commitment_cost=commitment_cost, decay=decay,
                                         restart_threshold=restart_threshold, seed=seed,
                                         name="quantizer")
        self.quantizer.build((None,) + code_shape)
        self.prior = None
        # === Config ===
        self.num_codes = int(num_codes)
        self.commitment_cost = float(commitment_cost)
        self.decay = float(decay)
        self.restart_threshold = float(restart_threshold)
        self.seed = seed
        self.image_shape = tuple(encoder.input_shape[1:])
        self.code_map_shape = code_shape[:2]
        # === Metrics ===
        self.trackers = {name: keras.metrics.Mean(name=name) for name in (
            "reconstruction", "mse", "commitment", "perplexity", "codebook_usage")}
        if prior is not None:
            self.set_prior(prior)
        self.built = True

    def set_prior(self, prior):
        """Attaches a "categorical" PixelCNN over `(h, w, 1)` code maps with `num_codes` levels,
        frozen (`prior.trainable = False`; set it back to train the prior further)."""
        expected = self.code_map_shape + (1,)
        if (getattr(prior, "data_kind", None) != "categorical" or prior.levels != self.num_codes
                or tuple(prior.image_shape) != expected):
            raise ValueError(f"The prior must be a categorical PixelCNN over {expected} codes "
                             f"with {self.num_codes} levels.")
        # Frozen inside the VQ-VAE: it is trained on its own (`prior.fit(codes)`), and the
        # VQ-VAE's optimizer state, saved and loaded with it, covers the autoencoder only.
        prior.trainable = False
        for variable in prior.weights:  # also those of layers deserialized as non-trainable
            variable.trainable = False
        self.prior = prior

    def call(self, images, training=None):
        """`{"logits", "codes", "commitment"}` of images `(B, H, W, C)` in [0, 1]."""
        vectors = to_float32(self.encoder(images, training=training))
        quantized, codes, commitment = self.quantizer(vectors, training=training)
        logits = to_float32(self.decoder(quantized, training=training))
        return {"logits": logits, "codes": codes, "commitment": commitment}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Mean of `-log p(x | e_k) + commitment` per image (module docstring)."""
        images = ops.cast(x, "float32")
        reconstruction = -losses.bernoulli_log_likelihood(y_pred["logits"], images)
        perplexity, usage = codebook_statistics(y_pred["codes"], self.num_codes)
        values = {"reconstruction": reconstruction, "commitment": y_pred["commitment"],
                  "mse": ops.mean((ops.sigmoid(y_pred["logits"]) - images) ** 2),
                  "perplexity": perplexity, "codebook_usage": usage}
        for name, value in values.items():
            self.trackers[name].update_state(value)
        loss = ops.mean(reconstruction + y_pred["commitment"])
        return distribute.scale_loss_for_replicas(loss)

    # --- the public API: codes, decoding, sampling -----------------------------------------------

    def encode_codes(self, images):
        """Integer code maps `(B, h, w)` of images `(B, H, W, C)` in [0, 1]."""
        images = validate_images(images, self.image_shape)
        vectors = run_network(self.encoder, images if isinstance(images, np.ndarray) else
                              ops.cast(images, "float32"))
        return self.quantizer(vectors, training=False)[1]

    def decode_codes(self, codes):
        """Images in [0, 1] `(B, H, W, C)` (Bernoulli means) of integer code maps `(B, h, w)`."""
        codes = ops.convert_to_tensor(codes)
        if tuple(codes.shape[1:]) != self.code_map_shape:
            raise ValueError(f"`codes` must have shape (batch, {self.code_map_shape[0]}, "
                             f"{self.code_map_shape[1]}); got {tuple(codes.shape)}.")
        return ops.sigmoid(run_network(self.decoder, self.quantizer.lookup(codes)))

    def reconstruct(self, images):
        """Decoded images of the quantized codes of `images`."""
        return self.decode_codes(self.encode_codes(images))

    def code_dataset(self, images, batch_size=256):
        """The code maps of `images`, float32 `(N, h, w, 1)`: the prior's training data."""
        codes = [ops.convert_to_numpy(self.encode_codes(images[start:start + batch_size]))
                 for start in range(0, len(images), batch_size)]
        return np.concatenate(codes).astype("float32")[..., None]

    def code_usage(self, images, batch_size=256):
        """`(perplexity, fraction of codes used)` over all of `images` (not per batch)."""
        perplexity, usage = codebook_statistics(self.code_dataset(images, batch_size),
                                                self.num_codes)
        return float(perplexity), float(usage)

    def sample(self, num_samples, temperature=1.0, seed=None):
        """`num_samples` images in [0, 1]: code maps from the PixelCNN prior, then the decoder."""
        if self.prior is None:
            raise ValueError("This VQ-VAE has no prior yet: train one on `code_dataset(images)` "
                             "and attach it with `set_prior` (the `vq_vae` job does both).")
        codes = self.prior.sample_values(num_samples, temperature=temperature, seed=seed)
        return self.decode_codes(ops.cast(codes[..., 0], "int32"))

    def get_config(self):
        serialize = keras.saving.serialize_keras_object
        return {"name": self.name, "encoder": serialize(self.encoder),
                "decoder": serialize(self.decoder), "num_codes": self.num_codes,
                "commitment_cost": self.commitment_cost, "decay": self.decay,
                "restart_threshold": self.restart_threshold, "seed": self.seed,
                "prior": None if self.prior is None else serialize(self.prior)}

    @classmethod
    def from_config(cls, config):
        keys = ("encoder", "decoder") + (("prior",) if config.get("prior") else ())
        return cls(**with_deserialized(config, *keys))
