"""The fast kernels against the Keras layers they stand in for (docs/performance.md): values,
gradients and state, in float32 and mixed bfloat16.

- `FusedBatchNormalization` vs `keras.layers.BatchNormalization` (TensorFlow: one fused kernel; on
  JAX it is the Keras layer itself, and the test checks that too).
- `SliceCropping2D` vs `keras.layers.Cropping2D`.
- `unrolled_lstm` vs `keras.layers.LSTM`, alone and inside `ChannelRecurrentLatent`.
"""

import keras
import numpy as np
import pytest
from keras import ops

import keras_crvae.layers.channel_recurrent as channel_recurrent
from keras_crvae.layers import BatchNormalization as FusedBatchNormalization
from keras_crvae.layers import ChannelRecurrentLatent, SliceCropping2D

pytestmark = pytest.mark.portable

# Tolerances: float32 paths differ only in summation order; a bfloat16 output differs by at most a
# couple of units in its 8-bit mantissa (relative 2**-8 ~ 0.4%) from a different rounding order.
FLOAT32 = dict(rtol=1e-5, atol=1e-5)
BFLOAT16 = dict(rtol=2e-2, atol=2e-2)


def both_layers_gradients(reference, fast, inputs, **call_kwargs):
    """For each layer: its output on `inputs` and the gradients of `sum(output * w)` (a fixed random
    `w`) w.r.t. the inputs and its trainable weights. One call per layer, so a BatchNorm's moving
    statistics move once."""
    weights = np.random.default_rng(7).standard_normal(
        tuple(reference.compute_output_shape(inputs.shape))).astype("float32")
    results = []
    for layer in (reference, fast):
        if keras.backend.backend() == "jax":
            import jax

            if not layer.built:
                layer(inputs, **call_kwargs)
            trainable = [v.value for v in layer.trainable_variables]
            non_trainable = [v.value for v in layer.non_trainable_variables]

            def loss(x, trainable):
                outputs, _ = layer.stateless_call(trainable, non_trainable, x, **call_kwargs)
                return ops.sum(ops.cast(outputs, "float32") * weights), outputs

            (_, outputs), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
                inputs, trainable)
            results.append((np.asarray(outputs, "float32"),
                            [np.asarray(grads[0])] + [np.asarray(g) for g in grads[1]]))
        else:
            import tensorflow as tf

            x = tf.constant(inputs)
            with tf.GradientTape() as tape:
                tape.watch(x)
                outputs = ops.cast(layer(x, **call_kwargs), "float32")
                total = ops.sum(outputs * weights)
            gradients = tape.gradient(total, [x] + list(layer.trainable_variables))
            results.append((ops.convert_to_numpy(outputs),
                            [ops.convert_to_numpy(g) for g in gradients]))
    return results


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_fused_batch_norm_matches_keras_in_training(policy):
    """Normalised output, gradients (input, gamma, beta) and updated moving statistics agree."""
    rng = np.random.default_rng(0)
    inputs = rng.normal(2.0, 3.0, (16, 5, 5, 12)).astype("float32")
    layers = []
    for cls in (keras.layers.BatchNormalization, FusedBatchNormalization):
        layer = cls(epsilon=1e-5, momentum=0.9, dtype=policy)
        layer.build(inputs.shape)
        layer.gamma.assign(np.linspace(0.5, 2.0, 12).astype("float32"))
        layer.beta.assign(np.linspace(-1.0, 1.0, 12).astype("float32"))
        layers.append(layer)
    (ref_out, ref_grads), (out, grads) = both_layers_gradients(*layers, inputs, training=True)
    tolerance = FLOAT32 if policy == "float32" else BFLOAT16
    np.testing.assert_allclose(out, ref_out, **tolerance)
    for gradient, ref_gradient in zip(grads, ref_grads):
        scale = max(1.0, float(np.abs(ref_gradient).max()))
        np.testing.assert_allclose(gradient / scale, ref_gradient / scale, **tolerance)
    if keras.backend.backend() != "jax":  # stateless_call leaves the variables untouched
        reference, fast = layers
        # The moving variance is Keras' (biased batch variance), not the kernel's Bessel-corrected one.
        batch_variance = inputs.reshape(-1, 12).var(axis=0)
        np.testing.assert_allclose(ops.convert_to_numpy(fast.moving_variance),
                                   0.9 + 0.1 * batch_variance,
                                   rtol=1e-4 if policy == "float32" else 1e-2)  # bf16 inputs
        for name in ("moving_mean", "moving_variance"):
            np.testing.assert_allclose(ops.convert_to_numpy(getattr(fast, name)),
                                       ops.convert_to_numpy(getattr(reference, name)),
                                       rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_fused_batch_norm_matches_keras_in_inference(policy):
    """With training=False both normalise with the moving statistics."""
    rng = np.random.default_rng(1)
    inputs = rng.normal(0.0, 1.0, (4, 3, 3, 6)).astype("float32")
    outputs = []
    for cls in (keras.layers.BatchNormalization, FusedBatchNormalization):
        layer = cls(epsilon=1e-3, dtype=policy)
        layer.build(inputs.shape)
        layer.moving_mean.assign(np.full(6, 0.5, "float32"))
        layer.moving_variance.assign(np.linspace(0.5, 3.0, 6).astype("float32"))
        layer.gamma.assign(np.full(6, 1.5, "float32"))
        outputs.append(ops.convert_to_numpy(ops.cast(layer(inputs, training=False), "float32")))
    expected = (inputs - 0.5) / np.sqrt(np.linspace(0.5, 3.0, 6) + 1e-3) * 1.5
    np.testing.assert_allclose(outputs[0], expected, rtol=1e-2 if "bfloat16" in policy else 1e-5,
                               atol=1e-2 if "bfloat16" in policy else 1e-5)
    np.testing.assert_allclose(outputs[1], outputs[0], **(BFLOAT16 if "bfloat16" in policy else FLOAT32))


def test_fused_batch_norm_falls_back_for_other_ranks_and_round_trips():
    """A rank-2 input takes the Keras path; the layer serializes under its own name."""
    layer = FusedBatchNormalization(momentum=0.8, epsilon=1e-4, name="bn")
    inputs = np.random.default_rng(2).normal(size=(8, 3)).astype("float32")
    outputs = ops.convert_to_numpy(layer(inputs, training=True))
    np.testing.assert_allclose(outputs.mean(axis=0), 0.0, atol=1e-5)
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(clone, FusedBatchNormalization)
    assert (clone.momentum, clone.epsilon) == (0.8, 1e-4)


@pytest.mark.parametrize("cropping", [1, ((1, 2), (0, 3))])
def test_slice_cropping_matches_cropping2d(cropping):
    """Same output and input gradient as Keras' Cropping2D (bfloat16 too: a crop is exact)."""
    inputs = np.random.default_rng(3).normal(size=(2, 9, 8, 3)).astype("float32")
    reference = keras.layers.Cropping2D(cropping)
    fast = SliceCropping2D(cropping)
    (ref_out, ref_grads), (out, grads) = both_layers_gradients(reference, fast, inputs)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(grads[0], ref_grads[0])
    assert fast.compute_output_shape(inputs.shape) == tuple(out.shape)


def _lstm(policy, features=6, units=5):
    keras.utils.set_random_seed(4)
    lstm = keras.layers.LSTM(units, return_sequences=True, unit_forget_bias=True, dtype=policy)
    lstm.build((None, 4, features))
    bias = np.random.default_rng(5).uniform(-0.5, 0.5, 4 * units).astype("float32")
    lstm.cell.bias.assign(bias)
    return lstm


class _UnrolledLSTM(keras.layers.Layer):
    """`unrolled_lstm` of a wrapped LSTM, as a layer (for the autocast scope and gradients)."""

    def __init__(self, lstm, **kwargs):
        super().__init__(dtype=lstm.dtype_policy, **kwargs)
        self.lstm = lstm

    def call(self, inputs):
        return channel_recurrent.unrolled_lstm(self.lstm, inputs)

    def compute_output_shape(self, input_shape):
        return self.lstm.compute_output_shape(input_shape)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_unrolled_lstm_matches_keras_lstm(policy):
    """Outputs and gradients (inputs, kernel, recurrent kernel, bias) of the Keras LSTM."""
    lstm = _lstm(policy)
    assert channel_recurrent.lstm_unrolls(lstm)
    inputs = np.random.default_rng(6).normal(size=(3, 4, 6)).astype("float32")
    (ref_out, ref_grads), (out, grads) = both_layers_gradients(lstm, _UnrolledLSTM(lstm), inputs)
    tolerance = FLOAT32 if policy == "float32" else BFLOAT16
    np.testing.assert_allclose(out, ref_out, **tolerance)
    assert len(grads) == len(ref_grads) == 4
    for gradient, ref_gradient in zip(grads, ref_grads):
        np.testing.assert_allclose(gradient, ref_gradient, **tolerance)


def test_lstm_unrolls_only_for_keras_defaults():
    """Other gates or options keep the Keras layer."""
    assert not channel_recurrent.lstm_unrolls(
        keras.layers.LSTM(3, return_sequences=True, recurrent_activation="hard_sigmoid"))
    assert not channel_recurrent.lstm_unrolls(
        keras.layers.LSTM(3, return_sequences=True, dropout=0.1))
    assert not channel_recurrent.lstm_unrolls(keras.layers.LSTM(3))


def test_channel_recurrent_block_unchanged_by_unrolling(monkeypatch):
    """The whole generation half gives the same output and gradients with the Keras LSTM."""
    keras.utils.set_random_seed(8)
    layer = ChannelRecurrentLatent("generation", latent_channels=8, time_steps=4, lstm_layers=2)
    inputs = np.random.default_rng(9).normal(size=(3, 2, 2, 8)).astype("float32")
    layer(inputs)
    results = []
    for unrolls in (False, True):
        monkeypatch.setattr(channel_recurrent, "lstm_unrolls", lambda lstm, u=unrolls: u)
        results.append(both_layers_gradients(layer, layer, inputs, training=True)[0])
    (ref_out, ref_grads), (out, grads) = results
    np.testing.assert_allclose(out, ref_out, **FLOAT32)
    for gradient, ref_gradient in zip(grads, ref_grads):
        np.testing.assert_allclose(gradient, ref_gradient, **FLOAT32)


def _small_network(batch_norm_class, crop_class):
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = batch_norm_class(name="bn_a")(x)
    x = crop_class(1, name="crop")(x)
    x = batch_norm_class(name="bn_b")(x)
    return keras.Model(inputs, x)


def test_weight_files_load_across_the_keras_and_fast_layers(tmp_path):
    """A `.weights.h5` written by a network of Keras' BatchNormalization / Cropping2D loads into
    the same network built with the fast layers, and back (Keras keys weights by class name)."""
    keras.utils.set_random_seed(10)
    keras_network = _small_network(keras.layers.BatchNormalization, keras.layers.Cropping2D)
    fast_network = _small_network(FusedBatchNormalization, SliceCropping2D)
    inputs = np.random.default_rng(11).normal(size=(5, 6, 6, 2)).astype("float32")
    keras_network(inputs, training=True)  # move the moving statistics off their initial values
    path = str(tmp_path / "keras.weights.h5")
    keras_network.save_weights(path)
    fast_network.load_weights(path)
    for keras_weight, fast_weight in zip(keras_network.weights, fast_network.weights):
        np.testing.assert_array_equal(ops.convert_to_numpy(fast_weight),
                                      ops.convert_to_numpy(keras_weight))
    np.testing.assert_allclose(ops.convert_to_numpy(fast_network(inputs, training=False)),
                               ops.convert_to_numpy(keras_network(inputs, training=False)),
                               **FLOAT32)
    back = str(tmp_path / "fast.weights.h5")
    fast_network.save_weights(back)
    _small_network(keras.layers.BatchNormalization, keras.layers.Cropping2D).load_weights(back)
