"""GaussianSampler: closed-form KL, moments of the reparameterised draws, seeding, TFP vs keras.ops."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae.layers import GaussianSampler, sampling

pytestmark = pytest.mark.portable

ON_TENSORFLOW = keras.backend.backend() == "tensorflow"
needs_tensorflow = pytest.mark.skipif(
    not ON_TENSORFLOW, reason="the TFP path exists only on the TensorFlow backend")

MEAN = np.array([1.0, -2.0, 0.5, 0.0], "float32")
LOG_VAR = np.array([0.0, -1.0, 1.0, 0.5], "float32")


def numpy_kl(mean, log_var):
    mean, log_var = np.asarray(mean, "float64"), np.asarray(log_var, "float64")
    return 0.5 * (np.exp(log_var) + mean**2 - 1.0 - log_var)


def tiled(rows):
    return np.tile(MEAN, (rows, 1)), np.tile(LOG_VAR, (rows, 1))


def random_params(shape=(8, 4, 4, 6), seed=1):
    rng = np.random.default_rng(seed)
    return (rng.uniform(-2, 2, shape).astype("float32"),
            rng.uniform(-2, 2, shape).astype("float32"))


@pytest.mark.parametrize("use_tfp", [False, "auto"])
def test_kl_equals_the_closed_form(use_tfp):
    """kl = 0.5 (exp(lv) + m^2 - 1 - lv) per element; e.g. m=1, lv=0 gives exactly 0.5."""
    mean, log_var = random_params()
    z, kl = GaussianSampler(seed=0, use_tfp=use_tfp)([mean, log_var])
    kl = ops.convert_to_numpy(kl)
    assert kl.shape == mean.shape and tuple(z.shape) == mean.shape
    np.testing.assert_allclose(kl, numpy_kl(mean, log_var), rtol=1e-5, atol=1e-6)
    _, kl_row = GaussianSampler(seed=0, use_tfp=use_tfp)([MEAN[None], LOG_VAR[None]])
    np.testing.assert_allclose(ops.convert_to_numpy(kl_row)[0],
                               [0.5, 0.5 * (np.exp(-1) + 4 - 1 + 1), 0.5 * (np.e + 0.25 - 2),
                                0.5 * (np.exp(0.5) - 1.5)], rtol=1e-5)


def test_kl_is_zero_at_the_prior():
    """q = N(0, 1) has zero KL to the prior (also the layer's doctest)."""
    _, kl = GaussianSampler(seed=0, use_tfp=False)([np.zeros((2, 3), "float32")] * 2)
    np.testing.assert_array_equal(ops.convert_to_numpy(kl), 0.0)


@pytest.mark.parametrize("use_tfp", [False, "auto"])
def test_samples_have_the_posterior_mean_and_std(use_tfp):
    """Over 4000 draws, z has mean ~ `mean` and std ~ exp(log_var / 2) per coordinate."""
    mean, log_var = tiled(4000)
    z, _ = GaussianSampler(seed=3, use_tfp=use_tfp)([mean, log_var])
    z = ops.convert_to_numpy(z)
    std = np.exp(0.5 * LOG_VAR)
    np.testing.assert_allclose(z.mean(axis=0), MEAN, atol=4 * std.max() / np.sqrt(4000))
    np.testing.assert_allclose(z.std(axis=0), std, rtol=0.05)
    # The coordinates are independent draws, not one shared noise value per row.
    assert abs(np.corrcoef(z[:, 0], z[:, 3])[0, 1]) < 0.1


@pytest.mark.parametrize("use_tfp", [False, "auto"])
def test_sample_is_mean_plus_scaled_shared_noise(use_tfp):
    """Reparameterisation: two samplers with the same seed use the same eps = (z - m) / s for any
    (m, log_var), and a vanishing variance returns the mean."""
    mean_a, log_var_a = random_params(seed=2)
    mean_b, log_var_b = random_params(seed=3)
    z_a, _ = GaussianSampler(seed=11, use_tfp=use_tfp)([mean_a, log_var_a])
    z_b, _ = GaussianSampler(seed=11, use_tfp=use_tfp)([mean_b, log_var_b])
    eps_a = (ops.convert_to_numpy(z_a) - mean_a) / np.exp(0.5 * log_var_a)
    eps_b = (ops.convert_to_numpy(z_b) - mean_b) / np.exp(0.5 * log_var_b)
    np.testing.assert_allclose(eps_a, eps_b, atol=1e-4)
    z_tiny, _ = GaussianSampler(seed=11, use_tfp=use_tfp)([mean_a, np.full_like(mean_a, -40.0)])
    np.testing.assert_allclose(ops.convert_to_numpy(z_tiny), mean_a, atol=1e-7)


def test_seeded_sampler_is_reproducible_and_stateful():
    """Same seed -> same draws; a second call of one sampler draws new noise; another seed differs."""
    mean, log_var = tiled(16)
    first = ops.convert_to_numpy(GaussianSampler(seed=5)([mean, log_var])[0])
    sampler = GaussianSampler(seed=5)
    again = ops.convert_to_numpy(sampler([mean, log_var])[0])
    np.testing.assert_array_equal(again, first)
    second_call = ops.convert_to_numpy(sampler([mean, log_var])[0])
    assert np.abs(second_call - first).max() > 1e-3
    other_seed = ops.convert_to_numpy(GaussianSampler(seed=6)([mean, log_var])[0])
    assert np.abs(other_seed - first).max() > 1e-3


def test_config_and_validation():
    """Config keeps seed/use_tfp; invalid use_tfp values are rejected."""
    sampler = GaussianSampler(seed=3, use_tfp=False, name="sampler")
    config = sampler.get_config()
    assert config["seed"] == 3 and config["use_tfp"] is False
    clone = GaussianSampler.from_config(config)
    assert clone.seed == 3 and clone.use_tfp is False and clone.name == "sampler"
    assert clone.uses_tfp is False
    with pytest.raises(ValueError, match="use_tfp"):
        GaussianSampler(use_tfp="yes")


def test_sampler_round_trips(run_layer_test):
    """No trainable weights; from_config and `.keras` round trips give the same first draw."""
    mean, log_var = random_params(shape=(2, 3))
    layer, (z, kl) = run_layer_test(GaussianSampler, {"seed": 7, "use_tfp": False},
                                    [mean, log_var], expected_trainable_weights=0)
    np.testing.assert_allclose(ops.convert_to_numpy(kl), numpy_kl(mean, log_var), rtol=1e-5)


# --- TFP versus keras.ops (TensorFlow only) ---------------------------------------------------------

@needs_tensorflow
def test_auto_uses_tfp_on_tensorflow():
    """use_tfp='auto' picks TFP on the TensorFlow backend (TFP is installed); False never does."""
    assert sampling.tfp_available()
    assert GaussianSampler(use_tfp="auto").uses_tfp
    assert GaussianSampler(use_tfp=True).uses_tfp
    assert not GaussianSampler(use_tfp=False).uses_tfp


@needs_tensorflow
def test_tfp_and_ops_samplers_agree_for_the_same_seed():
    """use_tfp=True and use_tfp=False with one seed give the same z and KL (allclose 1e-6)."""
    mean, log_var = random_params()
    z_tfp, kl_tfp = GaussianSampler(seed=7, use_tfp=True)([mean, log_var])
    z_ops, kl_ops = GaussianSampler(seed=7, use_tfp=False)([mean, log_var])
    np.testing.assert_allclose(ops.convert_to_numpy(z_tfp), ops.convert_to_numpy(z_ops),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(kl_tfp), ops.convert_to_numpy(kl_ops),
                               rtol=1e-6, atol=1e-6)
    assert np.abs(ops.convert_to_numpy(z_tfp) - mean).max() > 0.1  # z is really a draw


@needs_tensorflow
def test_gaussian_kl_to_standard_normal_tfp_matches_ops():
    """The module function: tfd.kl_divergence and the keras.ops closed form agree (and match numpy)."""
    mean, log_var = random_params(seed=4)
    with_tfp = sampling.gaussian_kl_to_standard_normal(mean, log_var, use_tfp=True)
    assert type(with_tfp).__module__.startswith("tensorflow")
    with_tfp = ops.convert_to_numpy(with_tfp)
    with_ops = ops.convert_to_numpy(sampling.gaussian_kl_to_standard_normal(mean, log_var, use_tfp=False))
    np.testing.assert_allclose(with_tfp, with_ops, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(with_tfp, numpy_kl(mean, log_var), rtol=1e-6, atol=1e-6)


def test_use_tfp_true_off_tensorflow_is_a_clear_error():
    """On JAX (or torch), use_tfp=True raises a ValueError naming use_tfp and the backend."""
    if ON_TENSORFLOW:
        pytest.skip("only meaningful off the TensorFlow backend")
    with pytest.raises(ValueError, match="use_tfp"):
        GaussianSampler(use_tfp=True)
    assert not sampling.tfp_available()
