"""RevNet stacks and the i-RevNet extractor: exact inverses, and the recomputing backward pass
gives the gradients of the ordinary (storing) computation; `.keras` round trips."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae.layers import InvertibleFeatureExtractor, ReversibleStack
from keras_crvae.layers.reversible import depth_to_space, space_to_depth
from keras_crvae.networks import build_irevnet_classifier

pytestmark = pytest.mark.portable


def _normal(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _gradients(layer, x):
    """`(d loss / d x, [d loss / d w])` of `loss = sum(layer(x) * probe)` with the backend's
    autodiff (the weights through `stateless_call`, so JAX differentiates them too)."""
    probe = _normal((x.shape[0],) + tuple(layer.compute_output_shape(x.shape)[1:]), seed=99)
    weights = [ops.copy(w) for w in layer.trainable_variables]  # tensors, not variables

    def loss(inputs, *values):
        outputs, _ = layer.stateless_call(list(values), [], inputs)
        return ops.sum(outputs * probe)

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch([x] + weights)
            value = loss(x, *weights)
        grads = tape.gradient(value, [x] + weights)
    else:
        import jax

        grads = jax.grad(loss, argnums=tuple(range(len(weights) + 1)))(x, *weights)
    return [ops.convert_to_numpy(g) for g in grads]


def _strongly_nonlinear(layer, seed=1, scale=0.3):
    for index, weight in enumerate(layer.trainable_variables):
        weight.assign(scale * _normal(tuple(weight.shape), seed=seed + index))
    return layer


def test_space_to_depth_is_a_permutation_and_depth_to_space_inverts_it():
    x = np.arange(2 * 4 * 4 * 3, dtype="float32").reshape(2, 4, 4, 3)
    y = ops.convert_to_numpy(space_to_depth(x))
    assert y.shape == (2, 2, 2, 12)
    np.testing.assert_array_equal(np.sort(y.ravel()), np.sort(x.ravel()))
    # Output channels hold the 2x2 patch row by row: (0,0), (0,1), (1,0), (1,1).
    np.testing.assert_array_equal(y[0, 1, 0], np.concatenate([x[0, 2, 0], x[0, 2, 1], x[0, 3, 0],
                                                              x[0, 3, 1]]))
    np.testing.assert_array_equal(ops.convert_to_numpy(depth_to_space(y)), x)


def test_reversible_stack_matches_the_block_equations_and_inverts():
    stack = ReversibleStack(1, hidden_channels=3)
    x = _normal((2, 4, 4, 4), seed=2)
    stack.build(x.shape)
    _strongly_nonlinear(stack)
    weights = [ops.convert_to_numpy(w) for w in stack.trainable_variables]

    def residual(h, kernel_in, bias_in, kernel_out, bias_out):
        hidden = np.maximum(ops.convert_to_numpy(ops.conv(h, kernel_in, padding="same")) + bias_in,
                            0)
        return ops.convert_to_numpy(ops.conv(hidden, kernel_out, padding="same")) + bias_out

    x1, x2 = x[..., :2], x[..., 2:]
    y1 = x1 + residual(x2, *weights[:4])
    y2 = x2 + residual(y1, *weights[4:])
    y = ops.convert_to_numpy(stack(x))
    np.testing.assert_allclose(y, np.concatenate([y1, y2], -1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(stack.inverse(y)), x, atol=1e-5)


def test_recomputing_backward_pass_gives_the_storing_gradients():
    x = _normal((2, 4, 4, 4), seed=3)
    recomputing = ReversibleStack(3, hidden_channels=4)
    storing = ReversibleStack(3, hidden_channels=4, recompute_gradients=False)
    recomputing.build(x.shape)
    storing.build(x.shape)
    _strongly_nonlinear(recomputing)
    storing.set_weights(recomputing.get_weights())
    np.testing.assert_allclose(ops.convert_to_numpy(recomputing(x)),
                               ops.convert_to_numpy(storing(x)), rtol=1e-6, atol=1e-6)
    expected = _gradients(storing, x)
    actual = _gradients(recomputing, x)
    assert len(actual) == 1 + 3 * 8
    for got, want in zip(actual, expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_irevnet_features_invert_to_the_images_and_round_trip(tmp_path):
    model = build_irevnet_classifier((8, 8, 1), num_outputs=3, num_stages=2, blocks_per_stage=2,
                                     hidden_channels=4)
    extractor = model.get_layer("features")
    for stage in extractor.stages:
        _strongly_nonlinear(stage, scale=0.1)
    images = _normal((2, 8, 8, 1), seed=4)
    features = extractor(images)
    assert tuple(features.shape) == (2, 2, 2, 16)
    np.testing.assert_allclose(ops.convert_to_numpy(extractor.inverse(features)), images,
                               atol=1e-5)
    model.save(tmp_path / "irevnet.keras")
    loaded = keras.saving.load_model(tmp_path / "irevnet.keras")
    assert isinstance(loaded.get_layer("features"), InvertibleFeatureExtractor)
    np.testing.assert_allclose(ops.convert_to_numpy(loaded(images)),
                               ops.convert_to_numpy(model(images)), rtol=1e-6, atol=1e-6)
    # One training step through the recomputing backward pass moves every weight.
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [w.copy() for w in model.get_weights()]
    model.fit(images, np.array([0, 2]), epochs=1, verbose=0)
    assert all(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))


def test_reversible_stack_round_trip(run_layer_test):
    run_layer_test(ReversibleStack, {"num_blocks": 2, "hidden_channels": 3},
                   _normal((2, 4, 4, 2), seed=5), expected_trainable_weights=16)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="num_blocks"):
        ReversibleStack(0, 4)
    with pytest.raises(ValueError, match="halves"):
        ReversibleStack(1, 4)(np.zeros((1, 4, 4, 3), "float32"))
    with pytest.raises(ValueError, match="divisible by 4"):
        InvertibleFeatureExtractor(2, 1, 4)(np.zeros((1, 6, 6, 1), "float32"))
