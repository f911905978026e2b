"""MinibatchDiscrimination, SpectralNormalization and SpectralDiscriminator (models/allconv_lstm.lua)."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae.layers import MinibatchDiscrimination, SpectralDiscriminator, SpectralNormalization

pytestmark = pytest.mark.portable


def test_minibatch_discrimination_matches_hand_computation(run_layer_test):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 6)).astype("float32")
    layer, outputs = run_layer_test(MinibatchDiscrimination, {"num_kernels": 3, "kernel_dim": 2}, x,
                                    expected_trainable_weights=1)
    kernel = ops.convert_to_numpy(layer.kernel).astype("float64")
    projected = (x.astype("float64") @ kernel).reshape(4, 3, 2)
    expected = np.zeros((4, 3))
    for i in range(4):
        for j in range(4):
            if i != j:  # Salimans et al.: the sum runs over the other examples
                expected[i] += np.exp(-np.abs(projected[i] - projected[j]).sum(-1))
    outputs = ops.convert_to_numpy(outputs)
    np.testing.assert_allclose(outputs[:, :6], x)
    np.testing.assert_allclose(outputs[:, 6:], expected, rtol=1e-5)


def test_averaged_minibatch_features_are_the_sum_over_the_others_divided_by_their_number():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 6)).astype("float32")
    summed = MinibatchDiscrimination(num_kernels=3, kernel_dim=2)
    averaged = MinibatchDiscrimination.from_config({**summed.get_config(), "average": True})
    assert averaged.get_config()["average"] is True and summed.get_config()["average"] is False
    summed.build(x.shape)
    averaged.build(x.shape)
    averaged.kernel.assign(summed.kernel)
    total, mean = (ops.convert_to_numpy(layer(x))[:, 6:] for layer in (summed, averaged))
    np.testing.assert_allclose(mean, total / 4, rtol=1e-6)
    # Identical examples are as close as can be: the mean is 1 whatever the batch size, where the
    # sum grows with it (the scale that kept the 64x64 discriminators at chance).
    for batch in (2, 8, 32):
        copies = np.repeat(x[:1], batch, axis=0)
        np.testing.assert_allclose(ops.convert_to_numpy(averaged(copies))[:, 6:], 1.0, rtol=1e-6)
        np.testing.assert_allclose(ops.convert_to_numpy(summed(copies))[:, 6:], batch - 1.0,
                                   rtol=1e-6)
    # A batch of one has no other example: zeros either way.
    np.testing.assert_array_equal(ops.convert_to_numpy(averaged(x[:1]))[:, 6:], 0.0)


def test_the_face_presets_average_their_minibatch_features():
    import keras_crvae

    model = keras_crvae.from_preset("celeba_crvae_gan", compile=False, base_channels=4,
                                    discriminator_channels=8, minibatch_kernels=4)
    layer = model.discriminator.get_config()
    assert layer["minibatch_average"] is True
    minibatch = [sub for sub in model.discriminator.gan_head
                 if isinstance(sub, MinibatchDiscrimination)]
    assert len(minibatch) == 1 and minibatch[0].average
    assert SpectralDiscriminator.from_config(layer).minibatch_average is True


def test_average_pooling_trunk_averages_each_2x2_block_of_the_conv_features():
    """`pooling="average"`: each trunk block is conv -> 2x2 mean -> ReLU (by hand with numpy from
    the first conv's output), the setting survives a config round trip, the presets take it
    from `discriminator_pooling`, and the reference's max-pools stay the default."""
    import keras_crvae

    discriminator = SpectralDiscriminator(base_channels=2, spectral_norm=False, dropout_rate=0.0,
                                          minibatch_kernels=0, pooling="average")
    images = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    discriminator.build(images.shape)
    conv, pool, relu = discriminator.trunk[:3]
    convolved = ops.convert_to_numpy(conv(images)).astype("float64")
    by_hand = np.maximum(convolved.reshape(2, 16, 2, 16, 2, -1).mean(axis=(2, 4)), 0.0)
    np.testing.assert_allclose(ops.convert_to_numpy(relu(pool(conv(images)))), by_hand,
                               rtol=1e-5, atol=1e-6)
    config = discriminator.get_config()
    assert SpectralDiscriminator.from_config(config).pooling == "average"
    assert SpectralDiscriminator(base_channels=2).pooling == "max"
    with pytest.raises(ValueError, match="pooling"):
        SpectralDiscriminator(pooling="median")
    model = keras_crvae.from_preset("celeba_vae_gan", compile=False, base_channels=2,
                                    discriminator_channels=4, minibatch_kernels=2,
                                    discriminator_pooling="average")
    pools = [type(layer).__name__ for layer in model.discriminator.trunk if "pool" in layer.name]
    assert pools == ["AveragePooling2D"] * 4
    default = keras_crvae.from_preset("celeba_vae_gan", compile=False, base_channels=2,
                                      discriminator_channels=4, minibatch_kernels=2)
    assert default.discriminator.pooling == "max"


def test_minibatch_discrimination_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_kernels"):
        MinibatchDiscrimination(num_kernels=0)
    with pytest.raises(ValueError, match="features"):
        MinibatchDiscrimination()(ops.zeros((2, 3, 4)))


def test_spectral_normalization_matches_keras_layer():
    keras.utils.set_random_seed(1)
    ours = SpectralNormalization(keras.layers.Dense(3))
    theirs = keras.layers.SpectralNormalization(keras.layers.Dense(3))
    x = np.random.default_rng(1).normal(size=(5, 4)).astype("float32")
    ours.build(x.shape)
    theirs.build(x.shape)
    theirs.set_weights(ours.get_weights())
    for _ in range(2):
        np.testing.assert_allclose(ops.convert_to_numpy(ours(x, training=True)),
                                   ops.convert_to_numpy(theirs(x, training=True)), rtol=1e-5,
                                   atol=1e-6)
    # Repeated power iterations converge: the normalised kernel's largest singular value is ~1.
    for _ in range(30):
        ours(x, training=True)
    sigma = np.linalg.svd(ops.convert_to_numpy(ours.layer.kernel), compute_uv=False)[0]
    assert abs(sigma - 1.0) < 0.05


def reference_parameter_count(f, z, size=4):
    """Parameters of the reference's gan_feature + gan (+ recon) for `F = f`, `Z = z`, hand-counted."""
    trunk = (5 * 5 * 3 * f + f) + (5 * 5 * f * 2 * f + 2 * f) + (5 * 5 * 2 * f * 4 * f + 4 * f) \
        + (3 * 3 * 4 * f * 4 * f + 4 * f)
    hidden = size * size * f
    gan = (size * size * 4 * f * hidden + hidden) + hidden * 100 * 5 + (hidden + 100 + 1)
    q = (3 * 3 * 4 * f * f + f) + 2 * f + (f * z + z) + 2 * z + (size * size * z) ** 2 \
        + size * size * z + size * size * z
    return trunk, gan, q


def test_spectral_discriminator_shapes_parameters_and_round_trip(run_layer_test):
    images = np.random.default_rng(0).uniform(-1, 1, (3, 64, 64, 3)).astype("float32")
    config = {"base_channels": 4, "latent_channels": 8, "spectral_norm": False}
    layer, (logits, q) = run_layer_test(SpectralDiscriminator, config, images,
                                        expected_trainable_weights=8 + 5 + 11)
    assert tuple(logits.shape) == (3, 1) and tuple(q.shape) == (3, 4, 4, 8)
    trunk, gan, q_head = reference_parameter_count(4, 8)
    assert layer.count_params() == trunk + gan + q_head + 2 * (4 + 8)  # + BN moving mean and variance


def test_spectral_norm_and_no_q_head_variant():
    layer = SpectralDiscriminator(base_channels=4, minibatch_kernels=0)
    logits = layer(np.zeros((2, 64, 64, 3), "float32"), training=True)
    assert tuple(logits.shape) == (2, 1)
    vectors = [w for w in layer.non_trainable_weights if "vector_u" in w.path]
    assert len(vectors) == 6  # four trunk convs and two GAN-head Dense layers
    with pytest.raises(ValueError, match="64, 64, 3"):
        SpectralDiscriminator().build((None, 60, 60, 3))
    with pytest.raises(ValueError, match="dropout_rate"):
        SpectralDiscriminator(dropout_rate=1.0)
