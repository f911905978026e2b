"""The flow layers against their TensorFlow Probability counterparts (TensorFlow only):
`InvertibleConv1x1` vs `tfb.ScaleMatvecLU`, `LogitTransform` vs a shift-scale-logit chain,
`ActNorm` vs `tfb.Shift` + `tfb.Scale`, the priors vs `tfd.Normal` / `tfd.Logistic`."""

import keras
import numpy as np
import pytest

from keras_crvae import layers

if keras.backend.backend() != "tensorflow":
    pytest.skip("tfp comparisons run on the TensorFlow backend", allow_module_level=True)

import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

tfb, tfd = tfp.bijectors, tfp.distributions
RNG = np.random.default_rng(0)
IMAGES = RNG.normal(size=(2, 3, 3, 4)).astype("float32")


def test_invertible_conv_matches_scale_matvec_lu():
    conv = layers.InvertibleConv1x1(seed=0)
    conv.build(IMAGES.shape)
    for weight in conv.trainable_weights:  # away from the initial rotation
        weight.assign(weight + 0.3 * RNG.normal(size=weight.shape).astype("float32"))
    strictly_lower = np.tril(np.ones((4, 4)), -1)
    lower = conv.lower.numpy() * strictly_lower
    upper = conv.upper.numpy() * strictly_lower.T + np.diag(conv.sign.numpy()
                                                            * np.exp(conv.log_scale.numpy()))
    # tfp: W = lu_reconstruct(lower_upper, perm), rows of L U in `perm` order; ours: W = P L U.
    permutation = np.argmax(conv.permutation.numpy(), axis=0)
    reference = tfb.ScaleMatvecLU(tf.constant(lower + upper, tf.float32),
                                  tf.constant(permutation, tf.int32), validate_args=True)
    y, log_det = conv.forward_and_log_det(IMAGES)
    np.testing.assert_allclose(y.numpy(), reference.forward(IMAGES).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(log_det.numpy(), reference.forward_log_det_jacobian(
        IMAGES, event_ndims=3).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(conv.inverse(y).numpy(), reference.inverse(y).numpy(), rtol=1e-4,
                               atol=1e-4)


def test_logit_matches_tfp_chain():
    alpha = 0.05
    unit = RNG.uniform(size=(2, 3, 3, 1)).astype("float32")
    reference = tfb.Chain([tfb.Invert(tfb.Sigmoid()), tfb.Shift(alpha), tfb.Scale(1 - 2 * alpha)])
    y, log_det = layers.LogitTransform(alpha).forward_and_log_det(unit)
    np.testing.assert_allclose(y.numpy(), reference.forward(unit).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(log_det.numpy(), reference.forward_log_det_jacobian(
        unit, event_ndims=3).numpy(), rtol=1e-5, atol=1e-4)


def test_actnorm_matches_shift_then_scale():
    actnorm = layers.ActNorm()
    actnorm.forward(IMAGES, training=True)
    actnorm.bias.assign(RNG.normal(size=4).astype("float32"))
    actnorm.log_scale.assign(RNG.normal(size=4).astype("float32"))
    bias = (actnorm.initial_bias + actnorm.bias).numpy()
    log_scale = (actnorm.initial_log_scale + actnorm.log_scale).numpy()
    reference = tfb.Chain([tfb.Scale(np.exp(log_scale)), tfb.Shift(bias)])
    y, log_det = actnorm.forward_and_log_det(IMAGES)
    np.testing.assert_allclose(y.numpy(), reference.forward(IMAGES).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(log_det.numpy(), reference.forward_log_det_jacobian(
        IMAGES, event_ndims=3).numpy(), rtol=1e-5, atol=1e-4)


def test_priors_match_tfd():
    z = 3.0 * IMAGES
    np.testing.assert_allclose(layers.StandardGaussian().log_prob(z).numpy(), tf.reduce_sum(
        tfd.Normal(0.0, 1.0).log_prob(z), axis=(1, 2, 3)).numpy(), rtol=1e-5)
    np.testing.assert_allclose(layers.StandardLogistic().log_prob(z).numpy(), tf.reduce_sum(
        tfd.Logistic(0.0, 1.0).log_prob(z), axis=(1, 2, 3)).numpy(), rtol=1e-5)
