"""The sprites presets train a few steps; the sprites job writes its artifacts and scores; latent
traversal grids put latents in KL order."""

import json
import os

import keras
import numpy as np
import pytest
from keras import ops

import keras_crvae
from keras_crvae import callbacks, presets
from keras_crvae.data import sprites

ON_TF = keras.backend.backend() == "tensorflow"
TINY = dict(channels=[2, 2, 4, 4], dense_units=[8], latent_dim=3)
SPRITES_PRESETS = ["sprites_vae", "sprites_beta_vae", "sprites_capacity_vae",
                   "sprites_factor_vae"]


def tiny(name):
    return dict(TINY, **({"discriminator_units": 8} if "factor" in name else {}))


def test_presets_carry_the_papers_numbers():
    assert presets.get_preset("sprites_beta_vae").model["kl_weight"] == 4.0
    capacity = presets.get_preset("sprites_capacity_vae").model
    assert (capacity["kl_weight"], capacity["capacity"], capacity["capacity_steps"]) == (
        1000.0, 25.0, 100000)
    factor = presets.get_preset("sprites_factor_vae")
    assert factor.model["tc_weight"] == 35.0
    assert (factor.model["discriminator_beta_1"], factor.model["discriminator_beta_2"]) == (0.5, 0.9)
    assert factor.network["discriminator_units"] == 1000
    assert all(presets.get_preset(n).network["latent_dim"] == 10 for n in SPRITES_PRESETS)


@pytest.mark.portable
@pytest.mark.parametrize("name", [  # the plain and beta VAEs differ only in a constant
    pytest.param(name, marks=pytest.mark.tensorflow_variant)
    if name in ("sprites_vae", "sprites_beta_vae") else name for name in SPRITES_PRESETS])
def test_presets_train_a_few_steps(name):
    if "factor" in name and not ON_TF:
        pytest.skip("FactorVAE trains on TensorFlow only")
    model = keras_crvae.from_preset(name, seed=0, **tiny(name))
    x = sprites.load_sprites(8, seed=0)["images"]
    history = model.fit(x, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    expected = {"sprites_capacity_vae": "capacity", "sprites_factor_vae": "tc"}.get(name, "kl")
    assert expected in history.history


@pytest.mark.portable
def test_latent_traversal_rows_follow_kl_order():
    model = keras_crvae.from_preset("sprites_vae", seed=0, compile=False, **TINY)
    image = sprites.load_sprites(1, seed=0)["images"][0]
    kl = np.array([0.1, 3.0, 1.0])
    grid, order = callbacks.latent_traversal_grid(model, image, kl, num_values=4, limit=2.0)
    np.testing.assert_array_equal(order, [1, 2, 0])
    assert grid.shape == (12, 64, 64, 1)
    mean = ops.convert_to_numpy(model.encode(image[None])[0])
    z = np.repeat(mean, 4, axis=0)
    z[:, 2] = np.linspace(-2, 2, 4)  # row 1 traverses latent 2 (the second-largest KL)
    np.testing.assert_allclose(grid[4:8], ops.convert_to_numpy(model.decode(z)), atol=1e-6)
    kl_numpy = callbacks.mean_kl_per_latent(model, image[None])
    _, log_var = model.encode(image[None])
    log_var, mean = ops.convert_to_numpy(log_var).astype("float64"), mean.astype("float64")
    np.testing.assert_allclose(kl_numpy, (0.5 * (np.exp(log_var) + mean ** 2 - 1 - log_var))[0],
                               rtol=1e-6)


def test_sprites_job_writes_and_scores(tmp_path):
    from keras_crvae.sprites_training import train_sprites

    output_dir = str(tmp_path / "run")
    metrics = train_sprites("sprites_beta_vae", output_dir=output_dir, epochs=1,
                            steps_per_epoch=3, batch_size=4, verbose=0, seed=0,
                            evaluation=dict(num_images=20, num_train=10, num_eval=10,
                                            num_mig_samples=100), **TINY)
    for name in ("model.keras", "metrics.json", "history.csv", "samples.png",
                 "reconstructions.png", "traversals.png"):
        assert os.path.exists(os.path.join(output_dir, name)), name
    with open(os.path.join(output_dir, "metrics.json")) as handle:
        saved = json.load(handle)
    assert saved["train_steps"] == 3 and saved["train_images"] == 12
    for key in ("beta_vae", "factor_vae", "mig"):
        assert 0.0 <= saved[key]["score"] <= 1.0
    assert len(saved["kl_per_latent"]) == 3
    assert saved["kl"] == pytest.approx(sum(saved["kl_per_latent"]))
    assert metrics["reconstruction"] > 0
