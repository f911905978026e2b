"""keras_crvae.adversarial: every objective against NumPy, the gradient penalty against its closed form
on a linear critic, clipping, feature matching, historical averaging, the update helper."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae.losses import adversarial
from keras_crvae.optimizers import ThresholdedAdam

RNG = np.random.default_rng(0)
REAL = RNG.normal(size=(6, 1)).astype("float32") * 3
FAKE = RNG.normal(size=(6, 1)).astype("float32") * 3


def np_log_sigmoid(x):
    return -np.log1p(np.exp(-x.astype("float64")))


def np_value(tensor):
    return float(ops.convert_to_numpy(tensor))


@pytest.mark.portable
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_bce_losses_match_numpy(smoothing):
    # BCE(r, t) = -t log s(r) - (1 - t) log(1 - s(r)); log(1 - s(x)) = log s(-x).
    real = -(1 - smoothing) * np_log_sigmoid(REAL) - smoothing * np_log_sigmoid(-REAL)
    fake = -np_log_sigmoid(-FAKE)
    expected = real.mean() + fake.mean()
    got = adversarial.discriminator_loss("bce", ops.convert_to_tensor(REAL),
                                         ops.convert_to_tensor(FAKE), label_smoothing=smoothing)
    np.testing.assert_allclose(np_value(got), expected, rtol=1e-5)
    np.testing.assert_allclose(np_value(adversarial.generator_loss("bce", ops.convert_to_tensor(FAKE))),
                               -np_log_sigmoid(FAKE).mean(), rtol=1e-5)


@pytest.mark.portable
def test_wgan_and_hinge_losses_match_numpy():
    real, fake = ops.convert_to_tensor(REAL), ops.convert_to_tensor(FAKE)
    for name in ("wgan", "wgan_gp"):
        np.testing.assert_allclose(np_value(adversarial.discriminator_loss(name, real, fake)),
                                   FAKE.mean() - REAL.mean(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np_value(adversarial.generator_loss(name, fake)), -FAKE.mean(),
                                   rtol=1e-5)
    np.testing.assert_allclose(
        np_value(adversarial.discriminator_loss("hinge", real, fake)),
        np.maximum(0, 1 - REAL).mean() + np.maximum(0, 1 + FAKE).mean(), rtol=1e-5)
    np.testing.assert_allclose(np_value(adversarial.generator_loss("hinge", fake)), -FAKE.mean(),
                               rtol=1e-5)


@pytest.mark.portable
def test_masked_means_select_rows():
    scores = ops.convert_to_tensor(np.arange(8, dtype="float32").reshape(8, 1))
    is_fake = np.array([0, 0, 1, 1, 0, 0, 1, 1], bool)
    got = adversarial.discriminator_loss("wgan", scores, scores, real_weights=~is_fake,
                                         fake_weights=is_fake)
    assert np_value(got) == pytest.approx(np.mean([2, 3, 6, 7]) - np.mean([0, 1, 4, 5]))


@pytest.mark.portable
def test_gradient_norm_penalty_and_feature_matching_match_numpy():
    gradients = RNG.normal(size=(5, 3, 2)).astype("float32")
    norms = np.sqrt((gradients.reshape(5, -1) ** 2).sum(-1))
    np.testing.assert_allclose(np_value(adversarial.gradient_norm_penalty(gradients)),
                               ((norms - 1) ** 2).mean(), rtol=1e-5)
    real, fake = RNG.normal(size=(4, 3, 2)), RNG.normal(size=(7, 3, 2))
    expected = ((real.reshape(4, -1).mean(0) - fake.reshape(7, -1).mean(0)) ** 2).sum()
    np.testing.assert_allclose(np_value(adversarial.feature_matching_loss(
        ops.convert_to_tensor(real, "float32"), ops.convert_to_tensor(fake, "float32"))),
        expected, rtol=1e-5)
    epsilon = np.array([0.0, 0.25, 1.0], "float32")
    x, y = np.ones((3, 2, 2, 1), "float32"), np.zeros((3, 2, 2, 1), "float32")
    np.testing.assert_allclose(ops.convert_to_numpy(adversarial.interpolate(x, y, epsilon))[:, 0, 0, 0],
                               epsilon)


def test_gradient_penalty_of_a_linear_critic_is_the_closed_form():
    import tensorflow as tf

    # D(x) = w . vec(x) + b: its input gradient is w everywhere, so GP = (||w|| - 1)^2 whatever the
    # interpolates, and dGP/dw = 2 (||w|| - 1) w / ||w||.
    critic = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(1)])
    critic.build((None, 4, 4, 2))
    w = critic.layers[1].kernel
    w.assign(RNG.normal(size=(32, 1)).astype("float32") * 0.4)
    real = RNG.uniform(-1, 1, (6, 4, 4, 2)).astype("float32")
    fake = RNG.uniform(-1, 1, (6, 4, 4, 2)).astype("float32")
    epsilon = RNG.uniform(size=6).astype("float32")
    with tf.GradientTape() as tape:
        penalty = adversarial.gradient_penalty(critic, real, fake, epsilon)
    weights = w.numpy().ravel().astype("float64")
    norm = np.linalg.norm(weights)
    np.testing.assert_allclose(float(penalty), (norm - 1) ** 2, rtol=1e-5)
    np.testing.assert_allclose(tape.gradient(penalty, w.value).numpy().ravel(),
                               2 * (norm - 1) * weights / norm, rtol=1e-4, atol=1e-6)


@pytest.mark.portable
def test_clip_weights_bounds_every_weight():
    variables = [keras.Variable(RNG.normal(size=(3, 4)).astype("float32")),
                 keras.Variable(np.array([-5.0, 0.003, 7.0], "float32"))]
    adversarial.clip_weights(variables, 0.01)
    for variable in variables:
        assert np.abs(ops.convert_to_numpy(variable)).max() <= 0.01
    np.testing.assert_allclose(ops.convert_to_numpy(variables[1]), [-0.01, 0.003, 0.01])


@pytest.mark.portable
def test_historical_average_is_the_mean_of_past_values():
    variable = keras.Variable(np.array([1.0, -2.0], "float32"))
    history = adversarial.HistoricalAverage([(2,)])
    assert np_value(history.penalty([variable])) == 0.0  # nothing averaged yet
    history.update([variable])
    variable.assign(np.array([3.0, 2.0], "float32"))
    history.update([variable])  # mean of (1, -2) and (3, 2) = (2, 0)
    variable.assign(np.array([0.0, 1.0], "float32"))
    np.testing.assert_allclose(ops.convert_to_numpy(history.means[0]), [2.0, 0.0])
    assert np_value(history.penalty([variable])) == pytest.approx(4.0 + 1.0)


@pytest.mark.portable
def test_check_objective_rejects_bad_options():
    with pytest.raises(ValueError, match="adversarial_loss"):
        adversarial.check_objective("lsgan")
    with pytest.raises(ValueError, match="critic_steps"):
        adversarial.check_objective("wgan", critic_steps=0)
    with pytest.raises(ValueError, match="label_smoothing"):
        adversarial.check_objective("wgan_gp", label_smoothing=0.1)
    assert adversarial.uses_threshold("bce") and not adversarial.uses_threshold("wgan_gp")


def test_wgan_updates_ignore_the_accuracy_threshold():
    variable = keras.Variable(np.ones(3, "float32"))
    grads = [np.full(3, 0.5, "float32")]
    for loss, expected in (("bce", 0.0), ("wgan_gp", 1.0)):
        optimizer = ThresholdedAdam(0.1, threshold=0.9)
        before = variable.numpy().copy()
        updated = adversarial.apply_discriminator_update(optimizer, grads, [variable], 1.0, loss)
        assert float(updated) == expected
        assert (np.abs(variable.numpy() - before).max() > 0) == bool(expected)


def test_historical_average_penalty_pulls_towards_the_mean():
    import tensorflow as tf

    variable = keras.Variable(np.array([1.0, 2.0], "float32"))
    history = adversarial.HistoricalAverage([(2,)])
    history.update([variable])
    variable.assign(np.array([3.0, 5.0], "float32"))
    with tf.GradientTape() as tape:
        penalty = history.penalty([variable])
    # d/dtheta ||theta - mean||^2 = 2 (theta - mean) = 2 * (2, 3)
    np.testing.assert_allclose(tape.gradient(penalty, [variable])[0].numpy(), [4.0, 6.0])


def test_update_trackers_logs_only_the_given_values():
    trackers = {name: keras.metrics.Mean(name=name) for name in ("loss", "d_loss", "d_updated")}
    logs = adversarial.update_trackers(trackers, {"loss": 2.0, "d_loss": None, "d_updated": 1.0})
    assert list(logs) == ["loss", "d_updated"]
    logs = adversarial.update_trackers(trackers, {"loss": 4.0, "d_updated": None, "extra": 7.0})
    assert list(logs) == ["loss"]
    assert float(logs["loss"]) == pytest.approx(3.0)  # the running mean of 2 and 4
    assert float(trackers["d_loss"].count) == 0  # never given a value
