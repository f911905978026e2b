"""The VQ-VAE: its loss against NumPy, training (codebook EMA, metrics every epoch), codes, the
PixelCNN prior, sampling and the `.keras` round trip with the prior."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae import models, networks

pytestmark = pytest.mark.portable

# Tiny models train faster eagerly than traced on TensorFlow; on JAX jit is the faster path.
EAGER_IS_CHEAP = keras.backend.backend() == "tensorflow"


def tiny_vq_vae(num_codes=6):
    keras.utils.set_random_seed(0)
    return models.VQVAE(networks.build_vq_encoder((8, 8, 1), filters=4, code_dim=3,
                                                  residual_blocks=1),
                        networks.build_vq_decoder((2, 2, 3), filters=4, residual_blocks=1),
                        num_codes=num_codes, seed=0)


def images(count=16, seed=0):
    return np.random.default_rng(seed).random((count, 8, 8, 1)).astype("float32")


def test_loss_against_numpy():
    model = tiny_vq_vae()
    batch = images(4)
    y_pred = model(batch)
    loss = float(model.compute_loss(batch, None, y_pred))
    p = 1 / (1 + np.exp(-ops.convert_to_numpy(y_pred["logits"]).astype("float64")))
    nll = -(batch * np.log(p) + (1 - batch) * np.log(1 - p)).reshape(4, -1).sum(axis=1)
    vectors = ops.convert_to_numpy(model.encoder(batch))
    codebook = ops.convert_to_numpy(model.quantizer.codebook)
    chosen = codebook[ops.convert_to_numpy(y_pred["codes"])]
    commitment = 0.25 * ((vectors - chosen) ** 2).reshape(4, -1).sum(axis=1)
    assert loss == pytest.approx(float(np.mean(nll + commitment)), rel=1e-4)


def test_fit_updates_the_codebook_and_logs_codebook_metrics():
    model = tiny_vq_vae()
    model.compile(optimizer=keras.optimizers.Adam(0.01), run_eagerly=EAGER_IS_CHEAP)
    before = ops.convert_to_numpy(model.quantizer.codebook).copy()
    history = model.fit(images(), batch_size=8, epochs=2, verbose=0)
    for key in ("loss", "reconstruction", "mse", "commitment", "perplexity", "codebook_usage"):
        assert len(history.history[key]) == 2
    assert 1.0 <= history.history["perplexity"][-1] <= 6.0
    assert not np.allclose(ops.convert_to_numpy(model.quantizer.codebook), before)
    perplexity, usage = model.code_usage(images())
    codes = model.code_dataset(images())
    assert codes.shape == (16, 2, 2, 1)
    assert usage == pytest.approx(len(np.unique(codes)) / 6)
    assert 1.0 <= perplexity <= 6.0


def test_prior_sampling_and_round_trip(tmp_path):
    model = tiny_vq_vae()
    with pytest.raises(ValueError, match="no prior"):
        model.sample(1)
    prior = models.PixelCNN(networks.build_gated_pixelcnn((2, 2, 6), levels=6, color_channels=1,
                                                          filters=4, num_layers=2),
                            data_kind="categorical")
    model.set_prior(prior)
    samples = ops.convert_to_numpy(model.sample(3, seed=1))
    assert samples.shape == (3, 8, 8, 1) and 0.0 <= samples.min() and samples.max() <= 1.0
    path = tmp_path / "vq_vae.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    # The attached prior is frozen, before and after loading: fit() trains the autoencoder only.
    autoencoder = len(model.encoder.trainable_variables) + len(model.decoder.trainable_variables)
    assert len(model.trainable_variables) == len(loaded.trainable_variables) == autoencoder
    np.testing.assert_allclose(ops.convert_to_numpy(loaded.reconstruct(images(2))),
                               ops.convert_to_numpy(model.reconstruct(images(2))), atol=1e-6)
    codes = model.code_dataset(images(4))
    np.testing.assert_allclose(ops.convert_to_numpy(loaded.prior.log_likelihood(codes)),
                               ops.convert_to_numpy(prior.log_likelihood(codes)), rtol=1e-5)


def test_bad_prior_and_codes():
    model = tiny_vq_vae()
    wrong = models.PixelCNN(networks.build_gated_pixelcnn((2, 2, 5), levels=5, color_channels=1,
                                                          filters=2, num_layers=1),
                            data_kind="categorical")
    with pytest.raises(ValueError, match="6 levels"):
        model.set_prior(wrong)
    with pytest.raises(ValueError, match="codes"):
        model.decode_codes(np.zeros((1, 3, 3), "int32"))
