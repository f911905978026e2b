"""The bijector interface and chain, checked with two hand-made elementwise bijectors."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae.layers.bijector import Bijector, BijectorChain, sum_over_event
from tests.layers.bijector_checks import assert_invertible, assert_log_det_matches_autodiff

pytestmark = pytest.mark.portable


class _Scale(Bijector):
    """y = x * exp(s): log|det| = size * s, a hand-computable test bijector."""

    def __init__(self, log_scale, **kwargs):
        super().__init__(**kwargs)
        self.log_scale = log_scale

    def forward_and_log_det(self, x, context=None, training=None):
        log_det = sum_over_event(ops.ones_like(x) * self.log_scale)
        return x * np.exp(self.log_scale), log_det

    def inverse_and_log_det(self, y, context=None, training=None):
        log_det = sum_over_event(ops.ones_like(y) * -self.log_scale)
        return y * np.exp(-self.log_scale), log_det


class _Cube(Bijector):
    """y = x + x^3 (monotone): log|det| = sum log(1 + 3 x^2); the inverse by Newton's method."""

    def forward_and_log_det(self, x, context=None, training=None):
        return x + x ** 3, sum_over_event(ops.log(1.0 + 3.0 * x ** 2))

    def inverse_and_log_det(self, y, context=None, training=None):
        x = y
        for _ in range(40):
            x = x - (x + x ** 3 - y) / (1.0 + 3.0 * x ** 2)
        return x, -sum_over_event(ops.log(1.0 + 3.0 * x ** 2))


def test_sum_over_event_keeps_the_batch_axis():
    values = ops.reshape(ops.arange(24, dtype="float32"), (2, 3, 4))
    np.testing.assert_allclose(ops.convert_to_numpy(sum_over_event(values)), [66.0, 210.0])


def test_chain_adds_log_dets_and_inverts_in_reverse_order():
    x = np.random.default_rng(0).normal(size=(3, 2, 2, 1)).astype("float32")
    chain = BijectorChain([_Scale(0.5), _Cube(), _Scale(-0.2)])
    y, log_det = chain.forward_and_log_det(x)
    expected = np.exp(-0.2) * ((np.exp(0.5) * x) + (np.exp(0.5) * x) ** 3)
    np.testing.assert_allclose(ops.convert_to_numpy(y), expected, rtol=1e-5)
    hand_log_det = (4 * 0.5 + np.log(1 + 3 * (np.exp(0.5) * x) ** 2).sum(axis=(1, 2, 3))
                    + 4 * -0.2)
    np.testing.assert_allclose(ops.convert_to_numpy(log_det), hand_log_det, rtol=1e-5)
    assert_invertible(chain, x)
    assert_log_det_matches_autodiff(chain, x)


def test_call_is_forward_and_the_chain_rejects_non_bijectors():
    x = np.ones((2, 3), dtype="float32")
    np.testing.assert_allclose(ops.convert_to_numpy(_Cube()(x)), 2 * x)
    with pytest.raises(TypeError, match="bijectors"):
        BijectorChain([_Cube(), keras.layers.Dense(3)])


def test_the_checks_fail_on_a_wrong_log_det():
    class _WrongScale(_Scale):
        def forward_and_log_det(self, x, context=None, training=None):
            y, log_det = super().forward_and_log_det(x)
            return y, 2.0 * log_det

    x = np.ones((2, 3), dtype="float32")
    with pytest.raises(AssertionError):
        assert_log_det_matches_autodiff(_WrongScale(0.3), x)
    with pytest.raises(AssertionError):
        assert_invertible(_WrongScale(0.3), x)



def test_from_config_rebuilds_nested_bijectors_and_leaves_the_given_config_alone():
    import copy

    from keras_crvae.layers import Squeeze

    chain = BijectorChain([Squeeze(name="squeeze")], name="chain")
    config = chain.get_config()
    kept = copy.deepcopy(config)
    rebuilt = BijectorChain.from_config(config)
    assert config == kept  # deserializing edits nested dicts: not the caller's
    assert [type(b).__name__ for b in rebuilt.bijectors] == ["Squeeze"]
    x = np.arange(2 * 4 * 4 * 1, dtype="float32").reshape(2, 4, 4, 1)
    np.testing.assert_array_equal(ops.convert_to_numpy(rebuilt.forward(x)),
                                  ops.convert_to_numpy(chain.forward(x)))
