"""The Variational Lossy Autoencoder: a VAE whose decoder is a PixelCNN of small receptive field.

Chen et al. (2017, "Variational Lossy Autoencoder", sections 2-3) argue: a decoder that can model
the data alone (a PixelCNN that sees the whole past) makes the optimum ignore z (KL -> 0, the
"posterior collapse"); a decoder that can only model *local* statistics (a small receptive field)
leaves the global structure to the latent code, so z becomes a lossy code of what the decoder cannot
see. Here:

    q(z|x)    = N(mean(x), exp(log_var(x)))                 the encoder, as the `VAE`
    c(z)      = condition_decoder(z)                         a map (B, H, W, D_c)
    p(x|z)    = prod_i p(x_i | x_<i in the receptive field, c(z) at pixel i)
                                                             a Gated PixelCNN conditioned on c(z)
    -ELBO     = -log p(x|z) + KL(q(z|x) || N(0, I))          (`reconstruction_reduction="sum"`)

`log p(x|z)` is exact (teacher forcing, one network pass), so everything the `VAE` does carries
over: the training objective, the IWAE bound, and the importance-sampled NLL of
`keras_crvae.evaluation` (`log_importance_weights`). Sampling draws `z ~ N(0, I)` and then the
pixels one after the other with the compiled sampler of `models.autoregressive`. The receptive
field is set by the PixelCNN's `num_layers` and kernel sizes (`networks.build_gated_pixelcnn`);
`tools/studies/vlae_receptive_field.py` measures KL and active units against it.
"""

import keras
from keras import ops

from keras_crvae.models.base import to_float32, validate_images, with_deserialized
from keras_crvae.models.autoregressive import AutoregressiveSampler, check_data_kind
from keras_crvae.models.vae import VAE


@keras.saving.register_keras_serializable(package="keras_crvae")
class VLAE(VAE):
    """A VAE with an autoregressive (Gated PixelCNN) Bernoulli decoder conditioned on z.

    Args:
        encoder: `keras.Model`, images `(B, H, W, C)` -> `[mean, log_var]` `(B, *latent_shape)`.
        decoder: `keras.Model`, z `(B, *latent_shape)` -> condition map `(B, H, W, D_c)`.
        pixelcnn: `keras.Model` from `networks.build_gated_pixelcnn(image_shape, levels=1,
            condition_shape=(H, W, D_c))`: `[images, condition]` -> logits `(B, H, W, C, 1)`.
        kl_weight: float, default 1.0; reconstruction_reduction: default "sum" (the ELBO);
            iwae_samples, seed: as `VAE`.

    Inputs: binary images `(B, H, W, C)` in {0, 1}. Metrics: those of the `VAE` (`elbo`,
    `reconstruction`, `kl`, ...), in nats per image.

    Reference: Chen et al., "Variational Lossy Autoencoder", ICLR 2017, sections 2-3;
    van den Oord et al. 2016b (the conditional Gated PixelCNN).
    """

    data_kind = "binary"

    def __init__(self, encoder, decoder, pixelcnn, kl_weight=1.0, reconstruction_reduction="sum",
                 **kwargs):
        super().__init__(encoder, decoder, kl_weight=kl_weight,
                         reconstruction_reduction=reconstruction_reduction, **kwargs)
        if self.likelihood != "bernoulli":
            raise ValueError("The VLAE's PixelCNN decoder is Bernoulli: `likelihood` must be "
                             "'bernoulli'.")
        check_data_kind("binary", int(pixelcnn.output_shape[-1]))
        if len(pixelcnn.inputs) != 2:
            raise ValueError("The VLAE's PixelCNN must take [images, condition] (build it with "
                             "`condition_shape`).")
        condition_shape = tuple(pixelcnn.inputs[1].shape[1:])
        if tuple(decoder.output_shape[1:]) != condition_shape:
            raise ValueError(f"The decoder outputs {tuple(decoder.output_shape[1:])} but the "
                             f"PixelCNN's condition is {condition_shape}.")
        if tuple(pixelcnn.output_shape[1:4]) != self.image_shape:
            raise ValueError(f"The PixelCNN models {tuple(pixelcnn.output_shape[1:4])} values but "
                             f"the images are {self.image_shape}.")
        # === Layers ===
        # `VAE.__init__` ends by building the model, which locks its state; the PixelCNN joins
        # it afterwards (tracked, so its weights are saved and trained).
        self._tracker.unlock()
        self.pixelcnn = pixelcnn
        self._tracker.lock()
        self.pixel_sampler = AutoregressiveSampler(pixelcnn, "binary")

    def _check_networks(self):
        # The decoder maps z to a condition map, not to images: checked in __init__.
        pass

    def _reconstruction_logits(self, z, images, training):
        condition = to_float32(self.decoder(z, training=training))
        logits = self.pixelcnn([ops.cast(images, "float32"), condition], training=training)
        return to_float32(logits)[..., 0]

    def decode_logits(self, z):
        raise NotImplementedError("A VLAE's pixels depend on each other: use `decode(z)` (a "
                                  "sample) or `log_likelihood(images, z)`.")

    def decode(self, z, temperature=1.0, seed=None):
        """Binary images `(B, *image_shape)` drawn from `p(x|z)` pixel by pixel (compiled loop)."""
        validate_images(z, self.latent_shape, name="z", value_range=None)
        condition = to_float32(self.decoder(ops.cast(ops.convert_to_tensor(z), "float32"),
                                            training=False))
        uniforms = keras.random.uniform((ops.shape(condition)[0],) + self.image_shape, seed=seed)
        return self.pixel_sampler.sample(uniforms, temperature, condition)

    def log_likelihood(self, images, z):
        """`log p(x|z)` `(B,)` in nats, exact (teacher forcing), for binary images."""
        images = validate_images(images, self.image_shape)
        images = ops.cast(ops.convert_to_tensor(images), "float32")
        z = ops.cast(ops.convert_to_tensor(z), "float32")
        return self._log_px(self._reconstruction_logits(z, images, False), images)

    def get_config(self):
        config = super().get_config()
        config["pixelcnn"] = keras.saving.serialize_keras_object(self.pixelcnn)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**with_deserialized(config, "encoder", "decoder", "pixelcnn"))
