"""GAN presets, the train_gan job (grids, metrics, model, resume) and examples/train_celeba.py."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_crvae import presets
from keras_crvae.models import CRVAEGAN, VAEGAN
from keras_crvae.optimizers import ThresholdedAdam

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FACES = os.path.join(ROOT, "..", "shared", "data", "celeba64_subset.npz")
TINY = {"base_channels": 4, "discriminator_channels": 8, "minibatch_kernels": 4}


@pytest.mark.parametrize("dataset,learning_rates,beta,kappa", [
    ("birds", (3e-4, 3e-4), 0.0125, 0.02),
    ("celeba", (3e-3, 1e-3), 0.01, 0.01),
    ("lsun", (3e-4, 1e-4), (0.025, 0.0125), 0.01),
])
def test_gan_presets_carry_the_supplement_numbers(dataset, learning_rates, beta, kappa):
    vae_gan, crvae_gan = (presets.get_preset(f"{dataset}_{kind}") for kind in ("vae_gan", "crvae_gan"))
    betas = beta if isinstance(beta, tuple) else (beta, beta)
    assert (vae_gan.training.learning_rate, crvae_gan.training.learning_rate) == learning_rates
    assert vae_gan.model["adversarial_weight"] == betas[0]
    assert crvae_gan.model["adversarial_weight"] == betas[1]
    assert crvae_gan.model["mi_weight"] == kappa and vae_gan.model["mi_weight"] == 0.0
    assert crvae_gan.model["kl_weight"] == [3e-4] * 3 + [2e-4] * 5
    assert presets.is_gan_preset(f"{dataset}_crvae_gan")
    assert not presets.is_gan_preset("mnist_crvae")


def test_from_preset_builds_compiled_gan_models_with_switches():
    model = presets.from_preset("celeba_vae_gan", steps_per_epoch=10,
                                discriminator_trunk_lr_multiplier=0.5, discriminator_warmup=True,
                                **TINY)
    assert isinstance(model, VAEGAN) and not isinstance(model, CRVAEGAN)
    optimizer = model.discriminator_optimizer
    assert isinstance(optimizer, ThresholdedAdam) and optimizer.threshold == 0.9
    assert optimizer.lr_multipliers == {"trunk": 0.5}
    assert optimizer.warmup == ((10, 1 / 50), (30, 1 / 5))
    # Step decay: halved after 60 epochs of 10 steps, for both players.
    for player in (model.generator_optimizer, optimizer):
        schedule = player._learning_rate
        assert float(schedule(599)) == pytest.approx(3e-3)
        assert float(schedule(600)) == pytest.approx(1.5e-3)
    crvae_gan = presets.from_preset("celeba_crvae_gan", **TINY)
    assert isinstance(crvae_gan, CRVAEGAN) and crvae_gan.mi_weight == 0.01


class Interrupt(keras.callbacks.Callback):
    """Kills a run at the end of its first epoch, after the backup was written."""

    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt("simulated kill")


def test_train_gan_writes_artifacts_and_resumes_a_killed_run(tmp_path):
    from keras_crvae.gan_training import train_gan

    faces = np.random.default_rng(0).integers(0, 256, (40, 72, 64, 3), dtype=np.uint8)
    output_dir = str(tmp_path / "run")
    # Eager steps: this test is about the job's files and resumption, not about tracing.
    arguments = dict(arrays=faces, output_dir=output_dir, epochs=2, batch_size=8, verbose=0,
                     run_eagerly=True, **TINY)
    with pytest.raises(KeyboardInterrupt):
        train_gan("celeba_crvae_gan", callbacks=[Interrupt()], **arguments)
    assert os.path.exists(os.path.join(output_dir, "samples_epoch1.png"))
    assert not os.path.exists(os.path.join(output_dir, "model.keras"))
    # The same command again resumes at epoch 2 instead of starting over.
    metrics = train_gan("celeba_crvae_gan", **arguments)
    assert metrics["steps_per_epoch"] == 5 and metrics["epochs_this_run"] == 1
    for name in ("model.keras", "samples.png", "reconstructions.png", "samples_epoch2.png",
                 "metrics.json", "history.csv"):
        assert os.path.exists(os.path.join(output_dir, name)), name
    assert os.listdir(os.path.join(output_dir, "tensorboard"))
    model = keras.saving.load_model(os.path.join(output_dir, "model.keras"))
    assert int(model.generator_optimizer.iterations) == 10  # 2 epochs x 5 steps in total
    with open(os.path.join(output_dir, "metrics.json")) as handle:
        metrics = json.load(handle)
    assert 0.0 <= metrics["final"]["d_updated"] <= 1.0 and np.isfinite(metrics["final"]["loss"])


def test_train_gan_rejects_bad_arguments(tmp_path):
    from keras_crvae.gan_training import train_gan

    faces = np.zeros((8, 64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="not a GAN preset"):
        train_gan("mnist_crvae", arrays=faces, output_dir=str(tmp_path))
    with pytest.raises(ValueError, match="multiple of 4"):
        train_gan("celeba_vae_gan", arrays=faces, batch_size=6, output_dir=str(tmp_path))


@pytest.mark.skipif(not os.path.exists(FACES), reason="../shared/data/celeba64_subset.npz is absent")
def test_example_trains_on_real_faces(tmp_path):
    output_dir = tmp_path / "celeba"
    # --num_images=24: one pass of the first 24 faces is 3 steps of 8.
    command = [sys.executable, os.path.join(ROOT, "examples", "train_celeba.py"), f"--npz={FACES}",
               "--num_images=24", "--model=vae_gan", "--epochs=1", "--batch_size=8",
               "--base_channels=4", "--discriminator_channels=8", f"--output_dir={output_dir}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (output_dir / "model.keras").exists() and (output_dir / "samples.png").exists()
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert metrics["preset"] == "celeba_vae_gan" and metrics["steps_per_epoch"] == 3
    run = json.loads((output_dir / "run.json").read_text())
    assert run["data"] == f"{FACES} (its first 24 images)"
    # --num_images needs --npz's array: a user error, one line, status 2.
    result = subprocess.run(command[:2] + [f"--image_dir={tmp_path}", "--num_images=24"],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1] == (
        "train_celeba.py: error: --num_images=24: expected a positive number of images, with "
        "--npz")


def test_gan_models_export_for_serving_like_every_model(tmp_path):
    import tensorflow as tf

    from keras_crvae.export import export_saved_model

    model = presets.from_preset("celeba_crvae_gan", compile=False, **TINY)
    loaded = tf.saved_model.load(export_saved_model(model, str(tmp_path / "serving")))
    z = np.random.default_rng(0).normal(size=(2, 4, 4, 64)).astype("float32")
    outputs = loaded.signatures["sample"](z=tf.constant(z))
    expected = keras.ops.convert_to_numpy(model.decode(z))
    np.testing.assert_allclose(outputs["images"].numpy(), expected, atol=1e-5)
    # tanh images in [-1, 1] map linearly onto 0..255.
    unit = np.clip((outputs["images"].numpy() + np.float32(1)) / np.float32(2), 0, 1)
    np.testing.assert_array_equal(outputs["images_uint8"].numpy(),
                                  np.round(unit * np.float32(255)).astype(np.uint8))
    images = np.random.default_rng(1).uniform(-1, 1, (2, 64, 64, 3)).astype("float32")
    encoded = loaded.signatures["encode"](images=tf.constant(images))
    np.testing.assert_allclose(encoded["mean"].numpy(),
                               keras.ops.convert_to_numpy(model.encode(images)[0]), atol=1e-5)
