"""The StyleGAN2 presets (presets/stylegan.py): their papers' numbers, the lazy-regularisation
optimizer correction, and the GAN job on MNIST digits and on 32x32 faces (grids, `.keras`)."""

import os

import keras
import numpy as np
import pytest

from keras_crvae import presets
from keras_crvae.models import StyleGAN

TINY = {"base_channels": 2, "max_channels": 4, "latent_dim": 4, "w_dim": 4, "mapping_layers": 2,
        "discriminator_channels": 2, "r1_interval": 2}

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="the GAN job's train_step is TensorFlow-only")


def test_presets_carry_the_papers_numbers():
    for name, side in (("mnist_stylegan2", 32), ("celeba32_stylegan2", 32),
                       ("celeba_stylegan2", 64)):
        preset = presets.get_preset(name)
        assert presets.job_name(name) == "gan"
        assert (preset.network["mapping_layers"], preset.model["style_mixing_probability"],
                preset.model["r1_interval"], preset.model["beta_1"], preset.model["beta_2"],
                preset.training.learning_rate) == (8, 0.9, 16, 0.0, 0.99, 0.002)
        # StyleGAN2-ADA's heuristic gamma = 0.0002 side^2 / batch.
        assert preset.model["r1_weight"] == pytest.approx(0.0002 * side ** 2 / 32)
    assert presets.is_digit_gan(presets.get_preset("mnist_stylegan2"))
    assert presets.get_preset("celeba32_stylegan2").network["output_size"] == 32


def test_the_discriminator_optimizer_is_corrected_for_lazy_regularisation():
    from keras_crvae.presets.stylegan import make_optimizers

    generator_optimizer, discriminator_optimizer = make_optimizers(
        presets.get_preset("celeba_stylegan2"))
    ratio = 16 / 17  # one penalty pass in every 17 gradient evaluations
    assert float(generator_optimizer.learning_rate) == pytest.approx(0.002)
    assert float(discriminator_optimizer.learning_rate) == pytest.approx(0.002 * ratio)
    assert discriminator_optimizer.beta_2 == pytest.approx(0.99 ** ratio)


def test_the_gan_job_trains_on_32x32_faces_and_writes_the_style_grids(tmp_path):
    from keras_crvae.jobs.gan import train_gan

    # 40x40 colour images: the job's pipeline resizes them to the preset's 32x32 (output_size).
    arrays = np.random.default_rng(0).integers(0, 256, (16, 40, 40, 3), dtype=np.uint8)
    output_dir = str(tmp_path / "faces")
    result = train_gan("celeba32_stylegan2", arrays=arrays, output_dir=output_dir, epochs=1,
                       steps_per_epoch=2, batch_size=8, verbose=0, run_eagerly=True, **TINY)
    assert np.isfinite(result["final"]["loss"]) and "r1" in result["final"]
    for grid in ("samples.png", "style_mixing.png", "truncation.png"):
        assert os.path.getsize(os.path.join(output_dir, grid)) > 0
    model = keras.saving.load_model(os.path.join(output_dir, "model.keras"))
    assert isinstance(model, StyleGAN) and model.r1_interval == 2
    assert model.image_shape == (32, 32, 3)
    assert np.abs(np.asarray(model.w_average)).max() > 0  # tracked during training


def test_crvae_train_refuses_bad_settings_in_one_line_before_loading_tensorflow():
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get(
        "PYTHONPATH")])))
    for args, expected in (
            (["--set", "r1_interval=0"], "--set r1_interval=0: expected an integer >= 1"),
            ([], "--preset=celeba32_stylegan2 trains on 32x32 colour images: give one of")):
        result = subprocess.run([sys.executable, "-m", "crvae_cli", "train",
                                 "--preset=celeba32_stylegan2", *args], env=env, cwd=root,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1
