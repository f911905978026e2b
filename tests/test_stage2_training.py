"""Stage2 presets through the GAN job (`crvae train`, `examples/train_celeba.py --stage=2`): the job
trains at the preset's output size on a saved Stage1, and the command refuses a Stage2 preset
without one."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np

import keras_crvae
from keras_crvae.gan_training import train_gan

ROOT = str(pathlib.Path(__file__).resolve().parents[1])
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT,
                                                                os.environ.get("PYTHONPATH")])))
COMMAND = [sys.executable, "-m", "crvae_cli"]


def test_gan_job_trains_stage2_on_a_saved_stage1(tmp_path):
    stage1 = keras_crvae.from_preset("celeba_vae_gan", base_channels=2, discriminator_channels=2,
                                     compile=False)
    stage1.save(tmp_path / "stage1.keras")
    faces = np.random.default_rng(0).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    metrics = train_gan("celeba_vae_gan_stage2", arrays=faces, output_dir=str(tmp_path / "run"),
                        epochs=1, steps_per_epoch=1, batch_size=8, verbose=0, run_eagerly=True,
                        stage1_model=str(tmp_path / "stage1.keras"), input_size=32,
                        output_size=64, generator_channels=4, residual_blocks=1,
                        discriminator_channels=2, perceptual_weights="none")
    assert {"g_adv", "perceptual", "d_loss", "d_updated"} <= set(metrics["final"])
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")  # registered class
    assert isinstance(model, keras_crvae.models.Stage2) and model.image_shape == (64, 64, 3)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["preset"] == \
        "celeba_vae_gan_stage2"


def test_crvae_train_needs_the_stage1_model(tmp_path):
    np.savez(tmp_path / "faces.npz", x=np.zeros((8, 64, 64, 3), np.uint8))
    for extra, message in (([], "pass the trained Stage1 model with --set stage1_model="),
                           (["--set", "stage1_model=missing.keras"],
                            "--set stage1_model=missing.keras: no such file")):
        result = subprocess.run([*COMMAND, "train", "--preset=celeba_crvae_gan_stage2",
                                 "--data=faces.npz", *extra], cwd=tmp_path, env=ENV,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and message in result.stderr, result.stderr
