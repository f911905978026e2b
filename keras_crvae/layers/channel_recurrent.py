"""The channel-recurrent latent block of crVAE (Shang, Sohn, Tian, WACV 2018; docs/design.md
section 4).

A feature map `h` of shape `(w, w, C)` is cut **by channel** into `T` blocks of `C/T` channels. Block
`t` holds channels `[t*C/T, (t+1)*C/T)` at every spatial position, flattened in the order
`(channel, row, column)`, exactly as Torch's `nn.View(T, w*w*C/T)` groups an NCHW tensor. Each block
is one time step of a stacked LSTM; a Dense layer applied per step maps the hidden state to
`w*w*Z/T` values, and the `T` outputs are reassembled channel-block-wise into a `(w, w, Z)` map.

Inference half:  `mean = head(h) + mu0`, `log_var = reassemble(Dense(LSTM(blocks(h))))`.
Generation half: `u = reassemble(Dense(LSTM(blocks(z))))`, decoder input `= u + b`.
`u` (before the bias) is the mutual-information target of crVAE-GAN.

Reference code: `models/allconv_lstm_mnist.lua` and `models/allconv_lstm.lua` of GitHub
`WendyShang/crVAE` (the `var_transform` and `var_decoder` sequences).
"""

import keras
from keras import ops

from keras_crvae.layers.activations import ElementwiseBias

ROLES = ("inference", "generation")
MEAN_HEADS = ("conv", "dense")
LSTM_BIAS_INITS = ("forget_one", "zeros")


def channels_to_blocks(feature_map, num_blocks):
    """Splits a channels-last map into `num_blocks` channel blocks, one flat vector per block.

    Args:
        feature_map: tensor `(batch, height, width, channels)`.
        num_blocks: int `T` dividing `channels`.

    Returns:
        Tensor `(batch, T, (channels / T) * height * width)`; row `t` holds channels
        `[t*C/T, (t+1)*C/T)` flattened as `(channel, row, column)`: Torch's NCHW `View` layout.
    """
    _, height, width, channels = feature_map.shape
    _check_divides(channels, num_blocks, "channels of the feature map")
    channels_first = ops.transpose(feature_map, (0, 3, 1, 2))
    return ops.reshape(channels_first, (-1, num_blocks, (channels // num_blocks) * height * width))


def blocks_to_channels(blocks, height, width):
    """Inverse of `channels_to_blocks`: `(batch, T, (C/T)*h*w)` -> `(batch, h, w, C)`."""
    num_blocks, block_size = blocks.shape[1], blocks.shape[2]
    if block_size % (height * width):
        raise ValueError(
            f"Block size {block_size} is not a multiple of height*width={height * width}."
        )
    channels = num_blocks * block_size // (height * width)
    channels_first = ops.reshape(blocks, (-1, channels, height, width))
    return ops.transpose(channels_first, (0, 2, 3, 1))


def unrolled_lstm(lstm, sequence):
    """The outputs of a Keras `LSTM` layer (`return_sequences=True`, zero initial state) on
    `sequence`, computed unrolled over the static time axis from the layer's own weights.

    Args:
        lstm: a built `keras.layers.LSTM` with Keras' default gates (sigmoid / tanh), a bias, no
            dropout, not stateful, not reversed (`lstm_unrolls(lstm)`).
        sequence: tensor `(batch, T, features)` with a static `T`.

    Returns:
        Tensor `(batch, T, units)`: `lstm(sequence)` (Keras' `LSTMCell` arithmetic, implementation 2:
        `z = x @ W + h @ U + b`, gates `i, f, g, o` in that order).

    Why not `lstm(sequence)`: on TensorFlow the Keras layer runs a `while` loop that casts both
    kernels to the compute dtype at every step under mixed precision and projects one step's input
    at a time. Here each kernel is read (and cast) once, the `T` input projections are one matmul,
    and the first step skips `h @ U` with `h = 0` (exactly zero). The crVAE's recurrence was 31% of a
    `mnist_crvae` bfloat16 training step (`tools/benchmarks/profile_step.py`, docs/performance.md).
    Under mixed precision the `T` steps' gradients of the once-cast recurrent kernel are summed in
    the compute dtype before the cast back to float32 (Keras' loop casts each step's first);
    tests/layers/test_fast_kernels.py bounds the difference to bfloat16 rounding.
    """
    cell = lstm.cell
    steps, features = sequence.shape[1], sequence.shape[2]
    kernel = ops.convert_to_tensor(cell.kernel)
    recurrent_kernel = ops.convert_to_tensor(cell.recurrent_kernel)
    bias = ops.convert_to_tensor(cell.bias)
    projected = ops.matmul(ops.reshape(sequence, (-1, features)), kernel)
    projected = ops.reshape(projected, (-1, steps, 4 * cell.units))
    hidden, carry, outputs = None, None, []
    # unstack, not `projected[:, step]`: a StridedSlice's gradient has no fast bfloat16 CPU kernel.
    for z in ops.unstack(projected, num=steps, axis=1):
        if hidden is not None:
            z = ops.add(z, ops.matmul(hidden, recurrent_kernel))
        z = ops.add(z, bias)
        z_input, z_forget, z_cell, z_output = ops.split(z, 4, axis=1)
        candidate = ops.sigmoid(z_input) * ops.tanh(z_cell)
        carry = candidate if carry is None else ops.sigmoid(z_forget) * carry + candidate
        hidden = ops.sigmoid(z_output) * ops.tanh(carry)
        outputs.append(hidden)
    return ops.stack(outputs, axis=1)


def lstm_unrolls(lstm):
    """Whether `unrolled_lstm` computes `lstm` (Keras' default gates and options)."""
    config = lstm.get_config()
    return (
        config.get("activation") == "tanh" and config.get("recurrent_activation") == "sigmoid"
        and config.get("use_bias", True) and not config.get("dropout")
        and not config.get("recurrent_dropout") and not config.get("go_backwards")
        and not config.get("stateful") and config.get("return_sequences")
        and getattr(lstm.cell, "implementation", 2) == 2
    )


def _check_divides(channels, num_blocks, what):
    if num_blocks < 1 or channels % num_blocks:
        raise ValueError(
            f"`time_steps` must divide the {what}: got time_steps={num_blocks} and "
            f"{channels} channels. Choose a T that divides {channels} (e.g. 4, 8 or 16)."
        )


@keras.saving.register_keras_serializable(package="keras_crvae")
class ChannelRecurrentLatent(keras.layers.Layer):
    """One half of the crVAE channel-recurrent latent block (inference or generation path).

    `role="inference"`: inputs `h` of shape `(batch, w, w, C)`; returns `[mean, log_var]`, each
    `(batch, w, w, latent_channels)`. The mean is `conv3x3(h)` (`mean_head="conv"`, 64x64 models) or
    `Dense(flatten(h))` (`mean_head="dense"`, the MNIST models) plus a learned per-element bias `mu0`;
    the log-variance runs the channel blocks of `h` through the stacked LSTM.

    `role="generation"`: inputs `z` of shape `(batch, w, w, latent_channels)`; returns the decoder input
    `u + b` of the same shape, or `[u + b, u]` when `return_u=True` (u is the MI target).

    The LSTM has `lstm_layers` layers of hidden size `w*w*hidden_channels/T`, where `hidden_channels`
    defaults to the input's channel count (the reference uses the encoder's `C` on both halves). Its
    forget-gate bias starts at 1 (the reference's `getParams(lstm, i, 1).bias:fill(1)`, cuDNN linear
    layer 1 being the forget gate). `recurrent_batch_norm=True` normalises the LSTM outputs before the
    per-step Dense, as the 64x64 reference (`models/allconv_lstm.lua`) does.

    Args:
        role: str, "inference" or "generation".
        latent_channels: int, default 64. `Z`, channels of the latent map (`nf` in the reference).
        time_steps: int, default 8. `T`; must divide the input channels and `latent_channels`.
        hidden_channels: int or None, default None. `C` used for the LSTM hidden size `w*w*C/T`; None
            means the input's channel count. Must be divisible by `time_steps`.
        lstm_layers: int, default 2. Depth of the stacked LSTM (`-rnnLayer`).
        mean_head: str, default "conv". "conv" (3x3 conv, 'same') or "dense" (inference only).
        recurrent_batch_norm: bool, default False. BatchNorm between the LSTM and the per-step Dense.
        bias_init_range: float, default 0.01. Uniform init range of `mu0` and the generation bias.
        lstm_bias_init: str, default "forget_one". "forget_one" or "zeros".
        return_u: bool, default False. Generation only: also return `u`.
        synchronized_batch_norm: bool, default False. With `recurrent_batch_norm`, compute the
            BatchNorm statistics over the global batch under a TensorFlow distribution strategy
            (`keras.layers.BatchNormalization(synchronized=True)`; TensorFlow backend only).

    >>> block = ChannelRecurrentLatent("inference", latent_channels=16, time_steps=4)
    >>> mean, log_var = block(keras.ops.ones((2, 4, 4, 32)))
    >>> tuple(mean.shape), tuple(log_var.shape)
    ((2, 4, 4, 16), (2, 4, 4, 16))

    Reference: Shang et al. 2018, section 3 and supplement A; `models/allconv_lstm_mnist.lua`.
    """

    def __init__(
        self,
        role,
        latent_channels=64,
        time_steps=8,
        hidden_channels=None,
        lstm_layers=2,
        mean_head="conv",
        recurrent_batch_norm=False,
        bias_init_range=0.01,
        lstm_bias_init="forget_one",
        return_u=False,
        synchronized_batch_norm=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if role not in ROLES:
            raise ValueError(f"`role` must be one of {ROLES}, got {role!r}.")
        if mean_head not in MEAN_HEADS:
            raise ValueError(f"`mean_head` must be one of {MEAN_HEADS}, got {mean_head!r}.")
        if lstm_bias_init not in LSTM_BIAS_INITS:
            raise ValueError(
                f"`lstm_bias_init` must be one of {LSTM_BIAS_INITS}, got {lstm_bias_init!r}."
            )
        if int(lstm_layers) < 1:
            raise ValueError(f"`lstm_layers` must be >= 1, got {lstm_layers}.")
        _check_divides(int(latent_channels), int(time_steps), "latent channels")
        if hidden_channels is not None:
            _check_divides(int(hidden_channels), int(time_steps), "hidden channels")
        if return_u and role != "generation":
            raise ValueError("`return_u=True` only applies to role='generation'.")

        # === Config ===
        self.role = role
        self.latent_channels = int(latent_channels)
        self.time_steps = int(time_steps)
        self.hidden_channels = None if hidden_channels is None else int(hidden_channels)
        self.lstm_layers = int(lstm_layers)
        self.mean_head = mean_head
        self.recurrent_batch_norm = bool(recurrent_batch_norm)
        self.bias_init_range = float(bias_init_range)
        self.lstm_bias_init = lstm_bias_init
        self.return_u = bool(return_u)
        self.synchronized_batch_norm = bool(synchronized_batch_norm)

    def build(self, input_shape):
        _, height, width, channels = input_shape
        if height is None or width is None or channels is None:
            raise ValueError(
                "ChannelRecurrentLatent needs static (height, width, channels); got input_shape="
                f"{tuple(input_shape)}."
            )
        _check_divides(channels, self.time_steps, "input channels")
        self._height, self._width = height, width
        hidden_channels = self.hidden_channels or channels
        hidden_size = height * width * hidden_channels // self.time_steps
        block_size = height * width * channels // self.time_steps
        latent_block_size = height * width * self.latent_channels // self.time_steps
        latent_shape = (height, width, self.latent_channels)

        # === Layers ===
        self.lstms = []
        feature_size = block_size
        for index in range(self.lstm_layers):
            lstm = keras.layers.LSTM(
                hidden_size,
                return_sequences=True,
                unit_forget_bias=self.lstm_bias_init == "forget_one",
                name=f"lstm_{index}",
            )
            lstm.build((None, self.time_steps, feature_size))
            self.lstms.append(lstm)
            feature_size = hidden_size
        self.batch_norm = None
        if self.recurrent_batch_norm:
            self.batch_norm = keras.layers.BatchNormalization(
                synchronized=self.synchronized_batch_norm, name="recurrent_batch_norm")
            self.batch_norm.build((None, self.time_steps, hidden_size))
        self.step_projection = keras.layers.Dense(latent_block_size, name="step_projection")
        self.step_projection.build((None, self.time_steps, hidden_size))

        self.mean_projection = None
        if self.role == "inference":
            if self.mean_head == "conv":
                self.mean_projection = keras.layers.Conv2D(
                    self.latent_channels, 3, padding="same", name="mean_projection"
                )
                self.mean_projection.build(tuple(input_shape))
            else:
                self.mean_projection = keras.layers.Dense(
                    height * width * self.latent_channels, name="mean_projection"
                )
                self.mean_projection.build((None, height * width * channels))
        self.bias = ElementwiseBias(self.bias_init_range, name="latent_bias")
        self.bias.build((None,) + latent_shape)

    def _recurrence(self, feature_map, training):
        sequence = channels_to_blocks(feature_map, self.time_steps)
        for lstm in self.lstms:
            if lstm_unrolls(lstm):
                sequence = unrolled_lstm(lstm, sequence)
            else:
                sequence = lstm(sequence, training=training)
        if self.batch_norm is not None:
            sequence = self.batch_norm(sequence, training=training)
        sequence = self.step_projection(sequence)
        return blocks_to_channels(sequence, self._height, self._width)

    def call(self, inputs, training=None):
        if self.role == "inference":
            if self.mean_head == "conv":
                mean = self.mean_projection(inputs)
            else:
                flat = ops.reshape(inputs, (-1, int(inputs.shape[1] * inputs.shape[2] * inputs.shape[3])))
                mean = ops.reshape(
                    self.mean_projection(flat),
                    (-1, self._height, self._width, self.latent_channels),
                )
            mean = self.bias(mean)
            log_var = self._recurrence(inputs, training)
            return [mean, log_var]
        u = self._recurrence(inputs, training)
        decoder_input = self.bias(u)
        if self.return_u:
            return [decoder_input, u]
        return decoder_input

    def compute_output_shape(self, input_shape):
        latent_shape = (input_shape[0], input_shape[1], input_shape[2], self.latent_channels)
        if self.role == "inference" or self.return_u:
            return [latent_shape, latent_shape]
        return latent_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "role": self.role,
                "latent_channels": self.latent_channels,
                "time_steps": self.time_steps,
                "hidden_channels": self.hidden_channels,
                "lstm_layers": self.lstm_layers,
                "mean_head": self.mean_head,
                "recurrent_batch_norm": self.recurrent_batch_norm,
                "bias_init_range": self.bias_init_range,
                "lstm_bias_init": self.lstm_bias_init,
                "return_u": self.return_u,
                "synchronized_batch_norm": self.synchronized_batch_norm,
            }
        )
        return config
