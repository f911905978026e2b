"""FactorVAE: permutation, TC discriminator loss and the objective's wiring against hand values;
training (TensorFlow), `.keras` round trips."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae import models, networks

ON_TF = keras.backend.backend() == "tensorflow"
WIDTHS = dict(channels=(2, 2, 4, 4), dense_units=(8,))


def tiny_factor_vae(discriminator=None, **kwargs):
    keras.utils.set_random_seed(0)
    discriminator = discriminator or networks.build_tc_discriminator(3, hidden_units=8,
                                                                     hidden_layers=2)
    return models.FactorVAE(networks.build_sprites_encoder(3, **WIDTHS),
                            networks.build_sprites_decoder(3, **WIDTHS), discriminator,
                            seed=1, **kwargs)


def images(count=8, seed=0):
    return (np.random.default_rng(seed).random((count, 64, 64, 1)) < 0.2).astype("float32")


def constant_discriminator(value, latent_dim=3):
    """logit(z) = value for every z: a zero kernel and bias `value`."""
    z = keras.Input((latent_dim,))
    head = keras.layers.Dense(1, kernel_initializer="zeros",
                              bias_initializer=keras.initializers.Constant(value))
    return keras.Model(z, head(z))


@pytest.mark.portable
def test_permute_dims_keeps_each_marginal_and_breaks_the_joint():
    z = np.repeat(np.arange(64, dtype=np.float32)[:, None], 5, axis=1)  # 5 identical columns
    permuted = ops.convert_to_numpy(models.permute_dims(ops.convert_to_tensor(z), seed=3))
    # Every column holds exactly its own values (the marginal of each dimension is kept) ...
    np.testing.assert_array_equal(np.sort(permuted, axis=0), z)
    # ... but each with its own order: identical columns become different ones.
    assert all(np.mean(permuted[:, i] != permuted[:, j]) > 0.8
               for i in range(5) for j in range(i))


@pytest.mark.portable
def test_tc_discriminator_loss_against_numpy():
    joint = np.array([[2.0], [-1.0], [0.5]], np.float32)
    permuted = np.array([[-3.0], [0.2]], np.float32)
    expected = 0.5 * (np.mean(np.log1p(np.exp(-joint))) + np.mean(np.log1p(np.exp(permuted))))
    value = float(ops.convert_to_numpy(models.tc_discriminator_loss(joint, permuted)))
    assert value == pytest.approx(expected, rel=1e-6)
    # The BCE form it stands for: -mean log D(z) and -mean log(1 - D(z_perm)), D = sigmoid.
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    assert value == pytest.approx(0.5 * (-np.mean(np.log(sigmoid(joint)))
                                         - np.mean(np.log(1 - sigmoid(permuted)))), rel=1e-6)


@pytest.mark.portable
@pytest.mark.parametrize("logit", [0.7, -1.3])
def test_objective_wiring_with_a_constant_discriminator(logit):
    # With logit(z) = c: TC estimate = c, d_loss = (softplus(-c) + softplus(c)) / 2, and the VAE
    # loss = first-half reconstruction + kl_weight * KL + gamma * c (reduction "sum").
    model = tiny_factor_vae(constant_discriminator(logit), tc_weight=35.0, kl_weight=2.0)
    terms = {k: float(ops.convert_to_numpy(v))
             for k, v in model.compute_terms(images(), training=True).items()}
    recon = float(ops.convert_to_numpy(model.reconstruction_tracker.result()))
    kl = float(ops.convert_to_numpy(model.kl_tracker.result()))
    assert terms["tc"] == pytest.approx(logit, rel=1e-6)
    assert terms["vae_loss"] == pytest.approx(recon + 2.0 * kl + 35.0 * logit, rel=1e-5)
    softplus = lambda x: np.log1p(np.exp(x))  # noqa: E731
    assert terms["d_loss"] == pytest.approx(0.5 * (softplus(-logit) + softplus(logit)), rel=1e-6)
    assert terms["d_accuracy"] == 0.5


@pytest.mark.skipif(not ON_TF, reason="FactorVAE's train_step is TensorFlow-only")
def test_discriminator_loss_does_not_reach_the_encoder_and_tc_does():
    import tensorflow as tf

    model = tiny_factor_vae()
    with tf.GradientTape(persistent=True) as tape:
        terms = model.compute_terms(images(), training=True)
    assert all(g is None for g in tape.gradient(terms["d_loss"], model.encoder.trainable_variables))
    tc_grads = tape.gradient(terms["tc"], model.encoder.trainable_variables)
    assert any(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in tc_grads)
    d_grads = tape.gradient(terms["d_loss"], model.discriminator.trainable_variables)
    assert all(g is not None for g in d_grads)


@pytest.mark.skipif(not ON_TF, reason="FactorVAE's train_step is TensorFlow-only")
def test_trains_and_round_trips_with_both_optimizers(tmp_path):
    model = tiny_factor_vae()
    model.compile()
    assert model.discriminator_optimizer.beta_1 == 0.5 and model.discriminator_optimizer.beta_2 == 0.9
    assert model.optimizer.beta_1 == 0.9 and model.optimizer.beta_2 == 0.999
    before = [w.copy() for w in model.discriminator.get_weights()]
    history = model.fit(images(16), batch_size=8, epochs=2, verbose=0)
    assert set(history.history) == {"loss", "reconstruction", "kl", "elbo", "tc", "d_loss",
                                    "d_accuracy"}
    assert all(np.isfinite(v).all() for v in history.history.values())
    assert any(np.abs(a - b).max() > 0 for a, b in zip(before, model.discriminator.get_weights()))
    path = str(tmp_path / "factor.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, models.FactorVAE) and loaded.tc_weight == 35.0
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert int(loaded.discriminator_optimizer.iterations) == 4
    loaded.fit(images(8), batch_size=8, epochs=1, verbose=0)  # training continues


@pytest.mark.portable
def test_inference_and_saving_work_on_every_backend(tmp_path):
    model = tiny_factor_vae()
    path = str(tmp_path / "factor.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(ops.convert_to_numpy(loaded.encode(images(2))[0]),
                               ops.convert_to_numpy(model.encode(images(2))[0]), rtol=1e-5)
    assert tuple(loaded.sample(2, seed=0).shape) == (2, 64, 64, 1)
    if not ON_TF:
        loaded.compile()
        with pytest.raises(NotImplementedError, match="TensorFlow"):
            loaded.fit(images(4), batch_size=4, epochs=1, verbose=0)


@pytest.mark.portable
def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="tc_weight"):
        tiny_factor_vae(tc_weight=-1.0)
    with pytest.raises(ValueError, match="discriminator takes"):
        tiny_factor_vae(networks.build_tc_discriminator(4, hidden_units=4, hidden_layers=1))
    with pytest.raises(ValueError, match="capacity"):
        tiny_factor_vae(capacity=3.0)


MIRRORED_SCRIPT = r"""
import json, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
from keras_crvae import models, networks
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
widths = dict(channels=(2, 2, 4, 4), dense_units=(8,))
with strategy.scope():
    model = models.FactorVAE(networks.build_sprites_encoder(3, **widths),
                             networks.build_sprites_decoder(3, **widths),
                             networks.build_tc_discriminator(3, hidden_units=8, hidden_layers=1),
                             seed=1)
    model.compile()
images = (np.random.default_rng(0).random((16, 64, 64, 1)) < 0.2).astype("float32")
before = [w.copy() for w in model.discriminator.get_weights()]
history = model.fit(images, batch_size=8, epochs=1, verbose=0)
moved = any(np.abs(a - b).max() > 0 for a, b in zip(before, model.discriminator.get_weights()))
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "moved": bool(moved),
                  "finite": all(np.isfinite(v).all() for v in history.history.values()),
                  "d_iterations": int(model.discriminator_optimizer.iterations.numpy())}))
"""


@pytest.mark.skipif(not ON_TF, reason="FactorVAE's train_step is TensorFlow-only")
def test_trains_under_mirrored_strategy():
    # Two logical CPUs in a fresh process (devices must be set before TF starts): both players
    # update once per global step; every replica splits its shard into its own two halves.
    import json
    import os
    import pathlib
    import subprocess
    import sys

    root = str(pathlib.Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root,
                                                                    os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"replicas": 2, "moved": True, "finite": True, "d_iterations": 2}
