"""Vector quantization with an EMA codebook: the bottleneck of the VQ-VAE.

van den Oord et al. (2017, "Neural Discrete Representation Learning", section 3 and appendix A.1):
each encoder output vector `z_e` (the last axis, D values) is replaced by its nearest codebook
vector `e_k`, `k = argmin_j ||z_e - e_j||^2`:

    quantized       = z_e + stop_gradient(e_k - z_e)          the straight-through estimator: the
                                                              forward value is e_k, the gradient
                                                              w.r.t. z_e is the identity
    commitment      = beta * sum ||z_e - stop_gradient(e_k)||^2   per example (summed over the
                                                              code map, the scale of a summed
                                                              reconstruction NLL)

The codebook is not trained by gradients but by exponential moving averages (appendix A.1), with
decay gamma over training batches:

    N_k <- gamma N_k + (1 - gamma) n_k          n_k: vectors assigned to code k in the batch
    m_k <- gamma m_k + (1 - gamma) sum_{z: k} z
    e_k  = m_k / N~_k,   N~_k = (N_k + eps) / (sum_j N_j + K eps) * sum_j N_j   (Laplace smoothing)

Codebook collapse (few codes used; rosinality/vq-vae-2-pytorch#58) is fought by restarting dead
codes: after the update, every code whose `N_k` fell below `restart_threshold` is moved onto a
randomly chosen encoder output of the batch (`e_k = m_k = z`, `N_k = restart_threshold`), as in
Dhariwal et al. (2020, Jukebox, section 3.2). It then has a live vector in its cell next batch.

Codebook statistics of a batch of codes: `perplexity = exp(-sum_k p_k log p_k)` of the code
frequencies `p_k` (K when all codes are used equally, 1 when one code is used) and `usage`, the
fraction of codes used at least once.
"""

import keras
from keras import ops


def codebook_statistics(codes, num_codes):
    """`(perplexity, usage)` of integer `codes` of any shape: float32 scalars (module docstring)."""
    one_hot = ops.one_hot(ops.reshape(ops.cast(codes, "int32"), (-1,)), num_codes)
    frequencies = ops.mean(one_hot, axis=0)
    entropy = -ops.sum(frequencies * ops.log(ops.maximum(frequencies, 1e-12)))
    usage = ops.mean(ops.cast(frequencies > 0, "float32"))
    return ops.exp(entropy), usage


@keras.saving.register_keras_serializable(package="keras_crvae")
class VectorQuantizer(keras.layers.Layer):
    """Nearest-code quantization with a straight-through gradient and an EMA codebook.

    Input: encoder outputs `(B, ..., D)`. Outputs `[quantized, codes, commitment]`: the quantized
    vectors `(B, ..., D)` (straight-through), the integer codes `(B, ...)` and the commitment loss
    per example `(B,)` (`beta * sum ||z - sg(e)||^2`). With `training=True` the codebook takes one
    EMA step and restarts its dead codes (module docstring).

    Args:
        num_codes: int, K.
        commitment_cost: float, default 0.25 (beta of the paper).
        decay: float in [0, 1), default 0.99 (gamma of the EMA).
        epsilon: float, default 1e-5; the Laplace smoothing of the code counts.
        restart_threshold: float, default 1.0. Codes whose EMA count falls below it are restarted
            on a random encoder output of the batch; 0 disables restarts.
        seed: int or None. Seed of the restarts' choices.

    >>> quantizer = VectorQuantizer(16)
    >>> quantized, codes, commitment = quantizer(keras.ops.ones((2, 3, 3, 4)))
    >>> tuple(quantized.shape), tuple(codes.shape), tuple(commitment.shape)
    ((2, 3, 3, 4), (2, 3, 3), (2,))

    Reference: van den Oord et al., "Neural Discrete Representation Learning", NeurIPS 2017,
    section 3.2, appendix A.1; Dhariwal et al., "Jukebox", 2020, section 3.2 (random restarts).
    """

    def __init__(self, num_codes, commitment_cost=0.25, decay=0.99, epsilon=1e-5,
                 restart_threshold=1.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(num_codes, bool) or int(num_codes) < 2:
            raise ValueError(f"`num_codes` must be an int >= 2; got {num_codes!r}.")
        if not 0.0 <= float(decay) < 1.0:
            raise ValueError(f"`decay` must lie in [0, 1); got {decay!r}.")
        for name, value in (("commitment_cost", commitment_cost), ("epsilon", epsilon),
                            ("restart_threshold", restart_threshold)):
            if not float(value) >= 0.0:
                raise ValueError(f"`{name}` must be >= 0; got {value!r}.")
        # === Config ===
        self.num_codes = int(num_codes)
        self.commitment_cost = float(commitment_cost)
        self.decay = float(decay)
        self.epsilon = float(epsilon)
        self.restart_threshold = float(restart_threshold)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        code_dim = int(input_shape[-1])
        # === State (EMA, not trained by gradients) ===
        self.codebook = self.add_weight(
            shape=(self.num_codes, code_dim), trainable=False, name="codebook",
            initializer=keras.initializers.RandomUniform(-1.0, 1.0))
        # Count 1 and sum = the initial codebook, so that `e = m / N` holds from the first step.
        self.ema_count = self.add_weight(shape=(self.num_codes,), trainable=False,
                                         initializer="ones", name="ema_count")
        self.ema_sum = self.add_weight(shape=(self.num_codes, code_dim), trainable=False,
                                       initializer="zeros", name="ema_sum")
        self.ema_sum.assign(ops.copy(self.codebook))  # a copy: JAX must not alias the buffers
        self.built = True

    def nearest_codes(self, flat_inputs):
        """Index of the nearest codebook vector of each row of `(N, D)` -> int32 `(N,)`."""
        codebook = ops.cast(self.codebook, flat_inputs.dtype)
        distances = (ops.sum(flat_inputs ** 2, axis=1, keepdims=True)
                     - 2.0 * ops.matmul(flat_inputs, ops.transpose(codebook))
                     + ops.sum(codebook ** 2, axis=1)[None, :])
        return ops.cast(ops.argmin(distances, axis=1), "int32")

    def lookup(self, codes):
        """Codebook vectors of integer `codes` `(B, ...)` -> `(B, ..., D)` float32."""
        return ops.take(ops.convert_to_tensor(self.codebook), ops.cast(codes, "int32"), axis=0)

    def call(self, inputs, training=None):
        inputs = ops.cast(inputs, "float32")
        code_dim = inputs.shape[-1]
        flat = ops.reshape(inputs, (-1, code_dim))
        flat_codes = self.nearest_codes(flat)
        codes = ops.reshape(flat_codes, ops.shape(inputs)[:-1])
        chosen = self.lookup(codes)
        quantized = inputs + ops.stop_gradient(chosen - inputs)
        squared_error = (inputs - ops.stop_gradient(chosen)) ** 2
        batch = ops.shape(inputs)[0]
        commitment = self.commitment_cost * ops.sum(ops.reshape(squared_error, (batch, -1)),
                                                    axis=1)
        if training:
            self._update_codebook(ops.stop_gradient(flat), flat_codes)
        return [quantized, codes, commitment]

    def _update_codebook(self, flat, flat_codes):
        """One EMA step of counts and sums, the smoothed codebook, then the dead-code restarts."""
        one_hot = ops.one_hot(flat_codes, self.num_codes)  # (N, K)
        decay = self.decay
        count = decay * self.ema_count + (1.0 - decay) * ops.sum(one_hot, axis=0)
        sums = decay * self.ema_sum + (1.0 - decay) * ops.matmul(ops.transpose(one_hot), flat)
        total = ops.sum(count)
        smoothed = (count + self.epsilon) / (total + self.num_codes * self.epsilon) * total
        codebook = sums / smoothed[:, None]
        if self.restart_threshold > 0:
            dead = (count < self.restart_threshold)[:, None]
            picks = keras.random.randint((self.num_codes,), 0, ops.shape(flat)[0],
                                         seed=self.seed_generator)
            candidates = ops.take(flat, picks, axis=0)
            codebook = ops.where(dead, candidates, codebook)
            sums = ops.where(dead, candidates * self.restart_threshold, sums)
            count = ops.where(dead[:, 0], self.restart_threshold, count)
        self.ema_count.assign(count)
        self.ema_sum.assign(sums)
        self.codebook.assign(codebook)

    def get_config(self):
        config = super().get_config()
        config.update(num_codes=self.num_codes, commitment_cost=self.commitment_cost,
                      decay=self.decay, epsilon=self.epsilon,
                      restart_threshold=self.restart_threshold, seed=self.seed)
        return config
