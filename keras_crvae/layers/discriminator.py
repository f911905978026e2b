"""The 64x64 GAN discriminator of crVAE-GAN / VAE-GAN with its mutual-information head.

Ported from the `gan_feature`, `gan` and `recon` modules of `models/allconv_lstm.lua` (and the `gan`
module of `models/allconv_baseline.lua`) of GitHub `WendyShang/crVAE`; supplement section D of
Shang et al. (2018). A shared trunk maps a `(64, 64, 3)` image to a `(4, 4, 4F)` feature map; the GAN head
scores real versus generated, the MI head `Q` regresses the decoder's channel-recurrent output `u`.

Minibatch discrimination follows Salimans et al. (2016), "Improved Techniques for Training GANs",
section 3.2 (the reference's `nn.BatchDiscrimination(A, 100, 5)`).
"""

import keras
from keras import ops

from keras_crvae.layers.activations import ElementwiseBias


@keras.saving.register_keras_serializable(package="keras_crvae")
class MinibatchDiscrimination(keras.layers.Layer):
    """Minibatch discrimination features appended to each example's features.

    For inputs `x` of shape `(batch, A)` and a learned tensor `T` of shape `(A, K*D)`, each example gets
    `M_i = reshape(x_i T, (K, D))`; for each kernel `k`, `o_k(x_i) = sum_{j != i} exp(-||M_ik - M_jk||_1)`.
    The output is `concat([x, o(x)])` of shape `(batch, A + K)`. A generator whose samples collapse to one
    mode gets large `o` values that the discriminator can detect.

    `average=True` divides `o` by the `batch - 1` other examples: `o_k` in [0, 1] whatever the batch
    size. Why: behind the 64x64 discriminators' L2-normalised features (norm <= 1) and with `T` at its
    small initial scale, every `exp(-distance)` is close to 1, so the summed `o_k` are all about
    `batch - 1` (31 at batch 32, 127 when 128 images are scored at once): 100 near-constant features
    some 30 times larger than the image features, which swamp the logit (about -34 for every image at
    initialisation) and kept those discriminators at chance (accuracy 0.50 over 3,000 steps of the face
    runs; docs/faces.md, "The discriminator that could not discriminate"). With the mean, the same
    discriminator separates real faces from a VAE-GAN's samples after 100 steps.

    The features are computed within the batch the layer sees: under a distribution strategy that is the
    per-replica batch.

    Args:
        num_kernels: int, default 100. `K` (the reference's 100).
        kernel_dim: int, default 5. `D` (the reference's 5).
        kernel_initializer: initializer of `T`, default `RandomNormal(stddev=0.05)` (Salimans et al.'s
            released code).
        average: bool, default False (the sum, as Salimans et al. and the crVAE reference). True:
            the mean over the other examples.

    >>> layer = MinibatchDiscrimination(num_kernels=3, kernel_dim=2)
    >>> layer(keras.ops.ones((4, 6))).shape
    (4, 9)

    Reference: Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016, section 3.2.
    """

    def __init__(self, num_kernels=100, kernel_dim=5, kernel_initializer=None, average=False,
                 **kwargs):
        super().__init__(**kwargs)
        if int(num_kernels) <= 0 or int(kernel_dim) <= 0:
            raise ValueError("`num_kernels` and `kernel_dim` must be positive integers, got "
                             f"{num_kernels!r} and {kernel_dim!r}.")
        self.num_kernels = int(num_kernels)
        self.kernel_dim = int(kernel_dim)
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or keras.initializers.RandomNormal(stddev=0.05))
        self.average = bool(average)

    def build(self, input_shape):
        if len(input_shape) != 2 or input_shape[-1] is None:
            raise ValueError("MinibatchDiscrimination expects inputs of shape (batch, features) with a "
                             f"known feature size, got {input_shape}.")
        self.kernel = self.add_weight(
            name="kernel", shape=(input_shape[-1], self.num_kernels * self.kernel_dim),
            initializer=self.kernel_initializer)

    def call(self, inputs):
        projected = ops.reshape(ops.matmul(inputs, self.kernel),
                                (-1, self.num_kernels, self.kernel_dim))
        # (batch, 1, K, D) - (1, batch, K, D) -> L1 over D -> (batch, batch, K)
        distances = ops.sum(ops.abs(ops.expand_dims(projected, 1) - ops.expand_dims(projected, 0)),
                            axis=-1)
        batch = ops.shape(inputs)[0]
        others = ops.expand_dims(1.0 - ops.eye(batch, dtype=inputs.dtype), -1)
        closeness = ops.sum(ops.exp(-distances) * others, axis=1)
        if self.average:  # a batch of one has no others: its (zero) sum stays as it is
            closeness = closeness / ops.cast(ops.maximum(batch - 1, 1), closeness.dtype)
        return ops.concatenate([inputs, closeness], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1] + self.num_kernels)

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_kernels": self.num_kernels,
            "kernel_dim": self.kernel_dim,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "average": self.average,
        })
        return config


@keras.saving.register_keras_serializable(package="keras_crvae")
class SpectralNormalization(keras.layers.SpectralNormalization):
    """`keras.layers.SpectralNormalization` whose zero-kernel guard is a `where`, not a `cond`.

    Same computation as the Keras layer (one power iteration per training call updates `vector_u` and
    divides the wrapped kernel by its estimated largest singular value `sigma`, Miyato et al. 2018),
    but the all-zero-kernel guard selects with `ops.where` instead of `ops.cond`: tracing a `cond` and
    its gradient costs about 1.5 s per call on CPU, and a GAN step calls the discriminator three
    times. Input/output shapes: those of the wrapped layer.

    Args:
        layer: a `Conv2D` or `Dense` (any layer with a `kernel`).
        power_iterations: int, default 1.
    """

    def call(self, inputs, training=False):
        if training:
            kernel = self.kernel.value
            new_vector_u, new_kernel = self.normalized_weights()
            is_zero = ops.all(ops.equal(kernel, 0))
            self.vector_u.assign(ops.where(is_zero, self.vector_u.value, new_vector_u))
            self.kernel.assign(ops.where(is_zero, kernel, new_kernel))
        output = self.layer(inputs)
        return ops.cast(output, inputs.dtype)


def _torch_conv_init():
    # Torch's default SpatialConvolution init is U(+-1/sqrt(fan_in)); VarianceScaling(1/3) matches it.
    return keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_in", distribution="uniform")


@keras.saving.register_keras_serializable(package="keras_crvae")
class L2Normalize(keras.layers.Layer):
    """`x / max(||x||_2, epsilon)` over the last axis (Torch `nn.Normalize(2)`); shape unchanged.

    Args:
        epsilon: float, default 1e-12.
    """

    def __init__(self, epsilon=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        norm = ops.sqrt(ops.sum(ops.square(inputs), axis=-1, keepdims=True))
        return inputs / ops.maximum(norm, self.epsilon)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


# The trunk's 2x2 pools (`SpectralDiscriminator(pooling=...)`).
POOLING_LAYERS = {"max": keras.layers.MaxPooling2D, "average": keras.layers.AveragePooling2D}


@keras.saving.register_keras_serializable(package="keras_crvae")
class SpectralDiscriminator(keras.layers.Layer):
    """Discriminator trunk with a GAN head and an optional mutual-information head `Q`.

    Trunk (`gan_feature` of the reference; `F = base_channels`), for a `(16w, 16w, 3)` input:
    four blocks `conv (5x5, 5x5, 5x5, 3x3; F, 2F, 4F, 4F filters, 'same') -> 2x2 max-pool -> ReLU ->
    SpatialDropout(dropout_rate)`, ending in a `(w, w, 4F)` map (`w = 4` for 64x64 images).
    `pooling="average"` replaces the max-pools with 2x2 average pools (a departure from the
    reference: a max-pool passes its gradient to one input of four, and the face decoders answered
    it with a lattice of dots; docs/faces.md, "The lattice").

    GAN head (`gan`): `Dense(w*w*F) -> L2-normalise -> Dropout(dropout_rate) -> ReLU ->
    MinibatchDiscrimination(K, D) -> Dense(1)`. It returns the **logit**; the reference's final
    `nn.Sigmoid` is folded into the numerically stable loss (`sigmoid_cross_entropy`).

    MI head `Q` (`recon`; only when `latent_channels` is set): `conv 3x3 (F) -> BN -> LeakyReLU(0.2) ->
    conv 1x1 (Z) -> BN -> LeakyReLU(0.1) -> Dense(w*w*Z) -> reshape (w, w, Z) -> + learned bias`,
    a regression of `u = LSTM(z)` from the image (supplement section D, "MI Objectives").

    Every trunk conv and GAN-head Dense is wrapped in spectral normalisation (`SpectralNormalization`,
    a `keras.layers.SpectralNormalization` with a cheaper-to-trace zero guard) when
    `spectral_norm=True` (our default; Miyato et al. 2018 stabilise GAN training with it). With
    `spectral_norm=False`, `minibatch_kernels=100` and `dropout_rate=0.5` it is the reference network.

    Call: `outputs = discriminator(images, training=...)`: `logits (batch, 1)` without the Q head, or
    `[logits (batch, 1), q_prediction (batch, w, w, Z)]` with it.

    Args:
        base_channels: int, default 64. `F`; the reference uses `2 * -baseChannels` = 64.
        latent_channels: int or None, default None. `Z` of the Q head; None builds no Q head.
        spectral_norm: bool, default True.
        power_iterations: int, default 1. Power iterations of the spectral normalisation.
        dropout_rate: float in [0, 1), default 0.5.
        minibatch_kernels: int, default 100. 0 disables minibatch discrimination.
        minibatch_kernel_dim: int, default 5.
        minibatch_average: bool, default False. The minibatch features as a mean over the other
            examples instead of the reference's sum (`MinibatchDiscrimination(average=True)`; the
            64x64 presets set it: with the sum this discriminator stays at chance).
        pooling: "max" (default, the reference's) or "average", the trunk's 2x2 pools.
        bn_epsilon: float, default 1e-5. BatchNorm epsilon of the Q head (`-eps`).
        bn_momentum: float, default 0.9. Keras BatchNorm momentum of the Q head (Torch `-mom 0.1`).
        synchronized_batch_norm: bool, default False. The Q head's BatchNorm statistics over the
            global batch under a TensorFlow distribution strategy (TensorFlow backend only).

    Under a distribution strategy, dropout masks and minibatch-discrimination features are computed
    per replica (the latter compare each example with its replica's shard only); with
    `dropout_rate=0` and `minibatch_kernels=0` (and synchronized BatchNorm) a mirrored step equals a
    one-device step on the global batch.

    >>> discriminator = SpectralDiscriminator(base_channels=8, latent_channels=16)
    >>> logits, q = discriminator(keras.ops.zeros((2, 64, 64, 3)))
    >>> tuple(logits.shape), tuple(q.shape)
    ((2, 1), (2, 4, 4, 16))

    Reference: `models/allconv_lstm.lua` (`gan_feature`, `gan`, `recon`) of WendyShang/crVAE;
    Miyato et al., "Spectral Normalization for GANs", ICLR 2018.
    """

    def __init__(self, base_channels=64, latent_channels=None, spectral_norm=True, power_iterations=1,
                 dropout_rate=0.5, minibatch_kernels=100, minibatch_kernel_dim=5,
                 minibatch_average=False, pooling="max", bn_epsilon=1e-5,
                 bn_momentum=0.9, synchronized_batch_norm=False, **kwargs):
        super().__init__(**kwargs)
        if int(base_channels) <= 0:
            raise ValueError(f"`base_channels` must be a positive int, got {base_channels!r}.")
        if latent_channels is not None and int(latent_channels) <= 0:
            raise ValueError(f"`latent_channels` must be None or a positive int, got {latent_channels!r}.")
        if not 0.0 <= float(dropout_rate) < 1.0:
            raise ValueError(f"`dropout_rate` must be in [0, 1), got {dropout_rate!r}.")
        if int(minibatch_kernels) < 0:
            raise ValueError(f"`minibatch_kernels` must be >= 0, got {minibatch_kernels!r}.")
        if pooling not in POOLING_LAYERS:
            raise ValueError(f"`pooling` must be one of {sorted(POOLING_LAYERS)}, got {pooling!r}.")
        # === Config ===
        self.base_channels = int(base_channels)
        self.latent_channels = None if latent_channels is None else int(latent_channels)
        self.spectral_norm = bool(spectral_norm)
        self.power_iterations = int(power_iterations)
        self.dropout_rate = float(dropout_rate)
        self.minibatch_kernels = int(minibatch_kernels)
        self.minibatch_kernel_dim = int(minibatch_kernel_dim)
        self.minibatch_average = bool(minibatch_average)
        self.pooling = pooling
        self.bn_epsilon = float(bn_epsilon)
        self.bn_momentum = float(bn_momentum)
        self.synchronized_batch_norm = bool(synchronized_batch_norm)

        # === Trunk ===
        width = self.base_channels
        self.trunk = []
        for index, (filters, kernel) in enumerate(((width, 5), (2 * width, 5), (4 * width, 5),
                                                    (4 * width, 3)), start=1):
            conv = keras.layers.Conv2D(filters, kernel, padding="same",
                                       kernel_initializer=_torch_conv_init(),
                                       name=f"trunk_conv{index}")
            self.trunk += [
                self._maybe_spectral(conv, f"trunk_conv{index}"),
                POOLING_LAYERS[self.pooling](2, name=f"trunk_pool{index}"),
                keras.layers.ReLU(name=f"trunk_relu{index}"),
                keras.layers.SpatialDropout2D(self.dropout_rate, name=f"trunk_dropout{index}"),
            ]
        # === GAN head === (the Dense size needs the trunk's spatial size: created in build)
        self.gan_head = None
        # === MI head ===
        self.q_head = None

    def _maybe_spectral(self, layer, name):
        if not self.spectral_norm:
            return layer
        return SpectralNormalization(layer, power_iterations=self.power_iterations, name=name + "_sn")

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] != 3 or input_shape[1] is None \
                or input_shape[1] % 16 or input_shape[1] != input_shape[2]:
            raise ValueError("SpectralDiscriminator expects square RGB images (batch, 16w, 16w, 3), "
                             f"e.g. (batch, 64, 64, 3); got {input_shape}.")
        size = input_shape[1] // 16
        width = self.base_channels
        dense_init = _torch_conv_init()
        self.gan_head = [
            keras.layers.Flatten(name="gan_flatten"),
            self._maybe_spectral(keras.layers.Dense(size * size * width, kernel_initializer=dense_init,
                                                    name="gan_dense"), "gan_dense"),
            L2Normalize(name="gan_l2_normalize"),
            keras.layers.Dropout(self.dropout_rate, name="gan_dropout"),
            keras.layers.ReLU(name="gan_relu"),
        ]
        if self.minibatch_kernels:
            self.gan_head.append(MinibatchDiscrimination(
                self.minibatch_kernels, self.minibatch_kernel_dim, average=self.minibatch_average,
                name="gan_minibatch"))
        self.gan_head.append(self._maybe_spectral(
            keras.layers.Dense(1, kernel_initializer=dense_init, name="gan_logit"), "gan_logit"))
        if self.latent_channels is not None:
            z = self.latent_channels
            norm = dict(epsilon=self.bn_epsilon, momentum=self.bn_momentum,
                        synchronized=self.synchronized_batch_norm)
            self.q_head = [
                keras.layers.Conv2D(width, 3, padding="same", kernel_initializer=_torch_conv_init(),
                                    name="q_conv1"),
                keras.layers.BatchNormalization(name="q_bn1", **norm),
                keras.layers.LeakyReLU(0.2, name="q_lrelu1"),
                keras.layers.Conv2D(z, 1, kernel_initializer=_torch_conv_init(), name="q_conv2"),
                keras.layers.BatchNormalization(name="q_bn2", **norm),
                keras.layers.LeakyReLU(0.1, name="q_lrelu2"),
                keras.layers.Flatten(name="q_flatten"),
                keras.layers.Dense(size * size * z, kernel_initializer=dense_init, name="q_dense"),
                keras.layers.Reshape((size, size, z), name="q_reshape"),
                ElementwiseBias(name="q_bias"),
            ]
        shape = tuple(input_shape)
        for layer in self.trunk:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self._feature_shape = shape
        for head in (self.gan_head, self.q_head or []):
            head_shape = shape
            for layer in head:
                layer.build(head_shape)
                head_shape = layer.compute_output_shape(head_shape)
        self.built = True

    @staticmethod
    def _run(layers, x, training):
        for layer in layers:
            x = layer(x, training=training)
        return x

    def features(self, images, training=None):
        """Trunk features `(batch, w, w, 4F)` of images `(batch, 16w, 16w, 3)`."""
        return self._run(self.trunk, images, training)

    def call(self, images, training=None):
        features = self.features(images, training=training)
        logits = self._run(self.gan_head, features, training)
        if self.q_head is None:
            return logits
        return [logits, self._run(self.q_head, features, training)]

    def compute_output_shape(self, input_shape):
        size = input_shape[1] // 16
        logits = (input_shape[0], 1)
        if self.latent_channels is None:
            return logits
        return [logits, (input_shape[0], size, size, self.latent_channels)]

    def get_config(self):
        config = super().get_config()
        config.update({
            "base_channels": self.base_channels,
            "latent_channels": self.latent_channels,
            "spectral_norm": self.spectral_norm,
            "power_iterations": self.power_iterations,
            "dropout_rate": self.dropout_rate,
            "minibatch_kernels": self.minibatch_kernels,
            "minibatch_kernel_dim": self.minibatch_kernel_dim,
            "minibatch_average": self.minibatch_average,
            "pooling": self.pooling,
            "bn_epsilon": self.bn_epsilon,
            "bn_momentum": self.bn_momentum,
            "synchronized_batch_norm": self.synchronized_batch_norm,
        })
        return config
