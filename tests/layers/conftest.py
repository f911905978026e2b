"""Shared helper of the layer tests: the `run_layer_test` fixture.

`run_layer_test(layer_cls, config, input_data, expected_trainable_weights=...)` proves, for one
small configuration, that a layer
1. builds and runs on concrete data and has exactly the hand-counted number of trainable weights;
2. is rebuilt by `layer_cls.from_config(layer.get_config())` into a layer with the same config that,
   given the same weights, gives the same outputs;
3. survives `model.save("m.keras")` + `keras.saving.load_model` inside a tiny functional model with
   identical outputs (and the same outputs as the original layer).

Stateful random layers (`GaussianSampler`) are supported: each compared layer is compared on its
*first* eager call, so a seeded layer starts from the same seed-generator state every time.
"""

import keras
import numpy as np
import pytest
from keras import ops


def _flat_numpy(outputs):
    return [ops.convert_to_numpy(value) for value in keras.tree.flatten(outputs)]


def assert_outputs_close(actual, expected, atol=1e-6):
    """Compares two (possibly nested) layer outputs element-wise."""
    actual, expected = _flat_numpy(actual), _flat_numpy(expected)
    assert len(actual) == len(expected)
    for a, b in zip(actual, expected):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=atol, rtol=1e-6)


def _is_multi_input(input_data):
    return isinstance(input_data, (list, tuple))


@pytest.fixture
def run_layer_test(tmp_path):
    """Returns `run(layer_cls, config, input_data, expected_trainable_weights, ...)`.

    `run` returns `(layer, outputs)`: the built original layer and its first outputs, for further
    value checks in the calling test.
    """

    def run(layer_cls, config, input_data, expected_trainable_weights,
            expected_non_trainable_weights=None, atol=1e-6):
        multi = _is_multi_input(input_data)
        inputs = [ops.convert_to_tensor(x) for x in input_data] if multi else (
            ops.convert_to_tensor(input_data))
        shapes = [tuple(x.shape) for x in inputs] if multi else tuple(inputs.shape)

        # 1. Build + call, count weights.
        layer = layer_cls(**config)
        outputs = layer(inputs)
        assert layer.built
        assert len(layer.trainable_weights) == expected_trainable_weights, [
            w.path for w in layer.trainable_weights]
        if expected_non_trainable_weights is not None:
            assert len(layer.non_trainable_weights) == expected_non_trainable_weights, [
                w.path for w in layer.non_trainable_weights]

        # 2. from_config with copied weights: same config, same outputs.
        layer_config = layer.get_config()
        clone = layer_cls.from_config(layer_config)
        assert clone.get_config() == layer_config
        clone.build(shapes)
        clone.set_weights(layer.get_weights())
        assert_outputs_close(clone(inputs), outputs, atol)

        # 3. `.keras` round trip of a tiny functional model around a fresh copy of the layer.
        symbolic = [keras.Input(s[1:]) for s in shapes] if multi else keras.Input(shapes[1:])
        model = keras.Model(symbolic, layer_cls.from_config(layer_config)(symbolic))
        assert len(model.trainable_weights) == expected_trainable_weights
        model.set_weights(layer.get_weights())
        path = tmp_path / "m.keras"
        model.save(path)
        loaded = keras.saving.load_model(path)
        assert isinstance(loaded.layers[-1], layer_cls)
        assert loaded.layers[-1].get_config() == layer_config
        loaded_outputs = loaded(inputs)
        assert_outputs_close(loaded_outputs, model(inputs), atol)
        assert_outputs_close(loaded_outputs, outputs, atol)
        return layer, outputs

    return run
