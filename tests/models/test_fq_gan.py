"""Feature quantization (FQ-GAN) on `GAN`: the quantized features go forward, the straight-through
gradient, the commitment term in D's loss, one EMA step per discriminator step, `.keras` round trip.

The option off is covered by tests/models/test_gan.py, unchanged."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae import networks
from keras_crvae.models import GAN

SHAPE = (8, 8, 1)
BETA = 0.5


def tiny_discriminator():
    """images -> 1x1 conv (2 channels, no bias) "features" -> tanh -> flatten -> dense(1)."""
    images = keras.Input(SHAPE)
    features = keras.layers.Conv2D(2, 1, use_bias=False, name="features")(images)
    x = keras.layers.Activation("tanh", name="tanh")(features)
    logits = keras.layers.Dense(1, name="logit")(keras.layers.Flatten(name="flatten")(x))
    return keras.Model(images, logits, name="discriminator")


def tiny_gan(discriminator=None, **options):
    keras.utils.set_random_seed(3)
    generator = networks.build_dcgan_generator(SHAPE, 4, base_channels=2)
    quantization = {"layer": "features", "num_codes": 4, "commitment_cost": BETA,
                    "restart_threshold": 0.0, **options}
    return GAN(generator, discriminator or tiny_discriminator(), seed=1,
               feature_quantization=quantization)


def batch(count, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (count,) + SHAPE).astype("float32")


def numpy_of(variable):
    return np.array(ops.convert_to_numpy(variable))


def hand_quantize(features, codebook):
    """Nearest codebook rows of `(..., D)` features, NumPy."""
    distances = ((features[..., None, :] - codebook) ** 2).sum(-1)
    return codebook[distances.argmin(-1)]


def hand_top(model, quantized):
    dense_kernel, dense_bias = (numpy_of(w) for w in model.discriminator.get_layer("logit").weights)
    return np.tanh(quantized).reshape(len(quantized), -1) @ dense_kernel + dense_bias


@pytest.mark.portable
def test_discriminator_runs_on_the_quantized_features():
    model = tiny_gan()
    x = batch(3)
    kernel = numpy_of(model.discriminator.get_layer("features").kernel)[0, 0]  # (1, 2)
    features = x @ kernel  # the 1x1 conv: (3, 8, 8, 2)
    codebook = numpy_of(model.feature_quantizer.codebook)
    expected = hand_top(model, hand_quantize(features, codebook))
    logits = ops.convert_to_numpy(model._discriminate(x, training=False)[0])
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    raw = hand_top(model, features)
    assert np.max(np.abs(raw - expected)) > 1e-3  # the raw features would give other logits


def test_gradient_before_the_quantizer_is_straight_through():
    import tensorflow as tf

    model = tiny_gan()
    x = batch(2)
    conv = model.discriminator.get_layer("features")
    with tf.GradientTape() as tape:
        logits = model._discriminate(x, training=False)[0]
        total = tf.reduce_sum(logits)
    gradient = tape.gradient(total, conv.kernel).numpy()[0, 0, 0]  # (2,)
    kernel = numpy_of(conv.kernel)[0, 0]
    quantized = hand_quantize(x @ kernel, numpy_of(model.feature_quantizer.codebook))
    dense_kernel = numpy_of(model.discriminator.get_layer("logit").kernel).reshape(SHAPE[:2] + (2,))
    # d sum / d features = dense weight * tanh'(q) at the QUANTIZED point, passed unchanged
    # through the quantizer (straight-through) to the 1x1 conv: d/dK_c = sum_p x_p g_pc.
    feature_gradient = dense_kernel[None] * (1.0 - np.tanh(quantized) ** 2)
    expected = np.einsum("bhw,bhwc->c", x[..., 0], feature_gradient)
    np.testing.assert_allclose(gradient, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.portable
def test_commitment_term_enters_the_critic_loss_with_its_weight():
    model = tiny_gan()
    real, fake = batch(2, seed=1), batch(2, seed=2)
    kernel = numpy_of(model.discriminator.get_layer("features").kernel)[0, 0]
    codebook = numpy_of(model.feature_quantizer.codebook)  # before this step's EMA update
    features = np.concatenate([real, fake]) @ kernel
    expected = BETA * np.mean((features - hand_quantize(features, codebook)) ** 2)
    terms = model.critic_terms(real, fake, training=True)
    np.testing.assert_allclose(float(terms["fq_loss"]), expected, rtol=1e-5)
    np.testing.assert_allclose(float(terms["critic_loss"]),
                               float(terms["d_loss"]) + expected, rtol=1e-5)


def test_dictionary_takes_one_ema_step_per_discriminator_step():
    decay = 0.9
    model = tiny_gan(decay=decay)
    model.compile()
    count_before = numpy_of(model.feature_quantizer.ema_count).sum()  # K (counts start at 1)
    critic_steps, batch_size = 2, 4
    model.critic_steps = critic_steps
    model.fit(batch(batch_size), batch_size=batch_size, epochs=1, verbose=0)
    # Each critic step quantizes m real + m fake maps of 8x8 vectors: N = 2 m 64 vectors, and
    # an EMA step maps the total count S to g S + (1 - g) N. Two D steps, no G-step update:
    vectors = 2 * (batch_size // critic_steps) * 64
    expected = decay ** 2 * count_before + (1 - decay) * (decay + 1) * vectors
    np.testing.assert_allclose(numpy_of(model.feature_quantizer.ema_count).sum(), expected,
                               rtol=1e-5)
    logs = model.get_metrics_result()
    assert 1.0 <= float(logs["fq_perplexity"]) <= 4.0 and 0.0 < float(logs["fq_usage"]) <= 1.0


def test_dcgan_discriminator_trains_and_round_trips_with_feature_quantization(tmp_path):
    keras.utils.set_random_seed(3)
    shape = (28, 28, 1)
    generator = networks.build_dcgan_generator(shape, 4, base_channels=2)
    discriminator = networks.build_dcgan_discriminator(shape, base_channels=2)
    model = GAN(generator, discriminator, seed=1,
                feature_quantization={"layer": "lrelu1", "num_codes": 8})
    model.compile()
    images = np.random.default_rng(0).uniform(-1, 1, (4,) + shape).astype("float32")
    model.fit(images, batch_size=4, epochs=1, verbose=0)
    path = str(tmp_path / "fq.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert restored.feature_quantization == model.feature_quantization
    np.testing.assert_array_equal(numpy_of(restored.feature_quantizer.codebook),
                                  numpy_of(model.feature_quantizer.codebook))
    np.testing.assert_allclose(ops.convert_to_numpy(restored._discriminate(images, False)[0]),
                               ops.convert_to_numpy(model._discriminate(images, False)[0]),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.portable
def test_bad_options_name_the_problem():
    with pytest.raises(ValueError, match="not an inner layer"):
        tiny_gan(layer="nope")
    with pytest.raises(ValueError, match="Unknown: \\['codes'\\]"):
        tiny_gan(codes=3)


@pytest.mark.parametrize("name", ["mnist_dcgan_fq", "mnist_stylegan2_fq"])
def test_fq_presets_build_a_quantized_discriminator(name):
    from keras_crvae import presets

    model = presets.from_preset(name, compile=False, seed=0)
    assert model.feature_quantization == {"layer": "lrelu1", "num_codes": 256,
                                          "commitment_cost": 0.25, "decay": 0.99}
    assert presets.from_preset(name[:-3], compile=False, seed=0).feature_quantizer is None

