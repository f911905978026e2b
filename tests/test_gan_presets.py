"""The standalone GAN presets (presets/gans.py): their papers' numbers, the GAN job on MNIST digits
(grids, resume, `crvae train` / `crvae export`) and the new objectives of the VAE-GAN presets."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_crvae import presets
from keras_crvae.models import GAN, VAEGAN, InfoGAN

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
           PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
COMMAND = [sys.executable, "-m", "crvae_cli"]
TINY = {"base_channels": 2}


def test_presets_carry_their_papers_numbers():
    wgan, gp = presets.get_preset("mnist_wgan"), presets.get_preset("mnist_wgan_gp")
    assert (wgan.model["adversarial_loss"], wgan.model["critic_steps"], wgan.model["clip_value"],
            wgan.model["optimizer"], wgan.training.learning_rate) == ("wgan", 5, 0.01, "rmsprop",
                                                                       5e-5)
    assert (gp.model["adversarial_loss"], gp.model["gradient_penalty_weight"], gp.model["beta_1"],
            gp.model["beta_2"], gp.training.learning_rate, gp.network["norm"]) == (
        "wgan_gp", 10.0, 0.0, 0.9, 1e-4, "layer")
    assert wgan.training.batch_size == gp.training.batch_size == 5 * 64  # m = 64 per critic step
    info = presets.get_preset("mnist_infogan")
    assert (info.network["latent_dim"], info.network["categories"],
            info.network["continuous_codes"], info.model["mi_weight"]) == (62, 10, 2, 1.0)
    for name in ("mnist_dcgan", "celeba_dcgan"):
        dcgan = presets.get_preset(name)
        assert (dcgan.training.learning_rate, dcgan.model["beta_1"], dcgan.training.batch_size,
                dcgan.network["latent_dim"]) == (2e-4, 0.5, 128, 100)
    assert all(presets.is_gan_preset(name) for name in ("mnist_dcgan", "mnist_wgan",
                                                        "mnist_wgan_gp", "mnist_infogan",
                                                        "celeba_dcgan"))


def test_from_preset_builds_the_models_and_optimizers():
    wgan = presets.from_preset("mnist_wgan", **TINY)
    assert isinstance(wgan, GAN) and wgan.adversarial_loss == "wgan"
    assert isinstance(wgan.discriminator_optimizer, keras.optimizers.RMSprop)
    gp = presets.from_preset("mnist_wgan_gp", **TINY)
    assert gp.discriminator_optimizer.beta_1 == 0.0 and gp.discriminator_optimizer.beta_2 == 0.9
    assert not any(isinstance(layer, keras.layers.BatchNormalization)
                   for layer in gp.discriminator.layers)
    info = presets.from_preset("mnist_infogan", **TINY, generator_hidden_units=4,
                               discriminator_hidden_units=4)
    assert isinstance(info, InfoGAN) and info.latent_shape == (74,)
    assert float(info.generator_optimizer.learning_rate) == pytest.approx(1e-3)
    celeba = presets.from_preset("celeba_dcgan", **TINY)
    assert celeba.image_shape == (64, 64, 3) and celeba.latent_shape == (100,)


def test_vae_gan_presets_take_the_new_objectives():
    overrides = presets.parse_overrides(["adversarial_loss=wgan_gp", "critic_steps=5"],
                                        preset="celeba_vae_gan")
    assert overrides == {"adversarial_loss": "wgan_gp", "critic_steps": 5}
    model = presets.from_preset("celeba_vae_gan", base_channels=4, discriminator_channels=8,
                                **overrides)
    assert isinstance(model, VAEGAN) and model.critic_steps == 5
    assert "gp" in [metric.name for metric in model.metrics]
    with pytest.raises(ValueError, match="critic_steps"):
        presets.parse_overrides(["critic_steps=0"], preset="celeba_crvae_gan")
    # The default stays the paper's objective.
    assert presets.from_preset("celeba_vae_gan", base_channels=4,
                               discriminator_channels=8).adversarial_loss == "bce"


def crvae(*args, cwd):
    return subprocess.run([*COMMAND, *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=300)


def test_crvae_train_and_export_an_mnist_gan(tmp_path):
    np.savez(tmp_path / "digits.npz",
             x_train=np.random.default_rng(0).integers(0, 256, (40, 28, 28)).astype(np.uint8))
    train = ["train", "--preset=mnist_wgan_gp", "--data=digits.npz", "--epochs=1",
             "--steps_per_epoch=2", "--batch_size=10", "--set", "base_channels=2",
             "--output_dir=run"]
    result = crvae(*train, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    files = set(os.listdir(tmp_path / "run"))
    assert {"model.keras", "samples.png", "metrics.json", "history.csv"} <= files
    assert "reconstructions.png" not in files  # a GAN has no encoder
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs_this_run"] == 1 and metrics["final"]["gp"] > 0
    again = crvae(*train, cwd=tmp_path)
    assert again.returncode == 0 and "already trained" in again.stdout, again.stdout
    export = crvae("export", "--model=run/model.keras", "--output=serving", cwd=tmp_path)
    assert export.returncode == 0, export.stderr[-3000:]
    assert "sample, decode)" in export.stdout
    # A batch the critic steps cannot split is a usage error naming the flag.
    bad = crvae("train", "--preset=mnist_wgan_gp", "--batch_size=12", "--output_dir=bad",
                cwd=tmp_path)
    assert bad.returncode == 2 and "--batch_size=12" in bad.stderr and "critic_steps" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name", [name for name, preset in presets.PRESETS.items()
                                  if preset.network["builder"] == "dcgan"])
def test_each_gan_preset_trains_a_step(name):
    config = presets.get_preset(name)
    hidden = 4 if config.network["generator_hidden_units"] else 0  # InfoGAN's FC 1024 -> 4
    model = presets.from_preset(name, seed=0, base_channels=2, generator_hidden_units=hidden,
                                discriminator_hidden_units=hidden)
    model.run_eagerly = True  # one step: the traced one is covered by the CLI test
    images = np.random.default_rng(0).uniform(
        -1, 1, (2 * config.model["critic_steps"],) + model.image_shape).astype("float32")
    before = [w.copy() for w in model.get_weights()]
    logs = model.train_on_batch(images, return_dict=True)
    assert np.isfinite(logs["loss"]) and np.isfinite(logs["d_loss"])
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))
    assert int(model.discriminator_optimizer.iterations) == config.model["critic_steps"]


class Interrupt(keras.callbacks.Callback):
    """Kills a run at the end of its first epoch, after the backup was written."""

    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt("simulated kill")


def test_killed_infogan_run_resumes(tmp_path):
    from keras_crvae.gan_training import train_gan

    digits = np.random.default_rng(0).integers(0, 256, (24, 28, 28), dtype=np.uint8)
    output_dir = str(tmp_path / "run")
    arguments = dict(arrays=digits, output_dir=output_dir, epochs=2, batch_size=8, verbose=0,
                     run_eagerly=True, base_channels=2, generator_hidden_units=4,
                     discriminator_hidden_units=4)
    with pytest.raises(KeyboardInterrupt):
        train_gan("mnist_infogan", callbacks=[Interrupt()], **arguments)
    assert os.path.exists(os.path.join(output_dir, "samples_epoch1.png"))
    metrics = train_gan("mnist_infogan", **arguments)  # the same call resumes at epoch 2
    assert metrics["steps_per_epoch"] == 3 and metrics["epochs_this_run"] == 1
    model = keras.saving.load_model(os.path.join(output_dir, "model.keras"))
    assert int(model.generator_optimizer.iterations) == 6  # 2 epochs x 3 steps in total
    assert np.isfinite(metrics["final"]["mi"])


def test_crvae_train_logs_the_dictionary_of_an_fq_preset(tmp_path):
    np.savez(tmp_path / "digits.npz",
             x_train=np.random.default_rng(0).integers(0, 256, (20, 28, 28)).astype(np.uint8))
    result = crvae("train", "--preset=mnist_dcgan_fq", "--data=digits.npz", "--epochs=1",
                   "--steps_per_epoch=2", "--batch_size=8", "--set", "base_channels=2",
                   "--set", "fq_num_codes=8", "--output_dir=run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    final = json.loads((tmp_path / "run" / "metrics.json").read_text())["final"]
    assert 1.0 <= final["fq_perplexity"] <= 8.0 and 0.0 < final["fq_usage"] <= 1.0
    assert final["fq_loss"] > 0
