"""SavedModel export of the autoregressive models (keras_crvae.export): a PixelCNN's and a VQ-VAE
prior's `sample(uniforms, temperature)` runs the compiled sampling loop inside the graph and gives
the Keras model's images for the same uniforms; `log_likelihood`, `decode_codes` and
`reconstruct` equal the Keras model's. TensorFlow only (export is TF-only: docs/design.md
section 3); tiny models (4x4 images, 2x2 code maps) keep the traces short."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae import models, networks
from keras_crvae.export import export_saved_model, read_metadata

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="SavedModel export is TensorFlow-only")
RNG = np.random.default_rng(0)


def _randomized(model, scale=0.5):
    """Non-zero weights (the builders' last layers start at zero: a uniform model)."""
    rng = np.random.default_rng(1)
    for weight in model.trainable_weights:
        weight.assign(weight + scale * rng.normal(size=weight.shape).astype("float32"))
    return model


def _load(path):
    import tensorflow as tf

    return tf.saved_model.load(path)


def test_pixelcnn_sample_and_log_likelihood_round_trip(tmp_path):
    import tensorflow as tf

    model = _randomized(models.PixelCNN(networks.build_gated_pixelcnn(
        (4, 4, 1), levels=256, filters=4, num_layers=2), data_kind="grey256"))
    directory = export_saved_model(model, tmp_path / "served")
    served = _load(directory)
    assert {"serving_default", "sample", "log_likelihood"} <= set(served.signatures)
    uniforms = RNG.random((3, 4, 4, 1)).astype("float32")
    result = served.signatures["sample"](uniforms=tf.constant(uniforms),
                                         temperature=tf.constant(0.8))
    expected = ops.convert_to_numpy(model.sampler.sample(uniforms, 0.8))  # grey levels 0..255
    np.testing.assert_allclose(result["images"].numpy() * 255.0, expected, atol=1e-3)
    np.testing.assert_array_equal(result["images_uint8"].numpy(), expected.astype(np.uint8))
    values = RNG.integers(0, 256, (2, 4, 4, 1)).astype("float32")
    np.testing.assert_allclose(served.log_likelihood(values)["log_likelihood"].numpy(),
                               ops.convert_to_numpy(model.log_likelihood(values)), rtol=1e-5)
    assert read_metadata(directory)["data_kind"] == "grey256"
    with pytest.raises(tf.errors.InvalidArgumentError, match="uniforms"):
        served.sample(uniforms=tf.constant(uniforms + 1.0), temperature=tf.constant(1.0))


def test_vq_vae_sample_decode_and_reconstruct_round_trip(tmp_path):
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = models.VQVAE(networks.build_vq_encoder((8, 8, 1), filters=4, code_dim=3,
                                                   residual_blocks=1),
                         networks.build_vq_decoder((2, 2, 3), filters=4, residual_blocks=1),
                         num_codes=6, seed=0)
    with pytest.raises(ValueError, match="no prior"):
        export_saved_model(model, tmp_path / "refused")
    prior = _randomized(models.PixelCNN(networks.build_gated_pixelcnn(
        (2, 2, 6), levels=6, color_channels=1, filters=4, num_layers=2), data_kind="categorical"))
    model.set_prior(prior)
    served = _load(export_saved_model(model, tmp_path / "served"))
    uniforms = RNG.random((5, 2, 2, 1)).astype("float32")
    result = served.sample(uniforms=tf.constant(uniforms), temperature=tf.constant(1.0))
    codes = ops.convert_to_numpy(prior.sampler.sample(uniforms, 1.0))[..., 0].astype("int32")
    np.testing.assert_array_equal(result["codes"].numpy(), codes)
    images = ops.convert_to_numpy(model.decode_codes(codes))
    np.testing.assert_allclose(result["images"].numpy(), images, atol=1e-6)
    np.testing.assert_allclose(served.decode_codes(tf.constant(codes))["images"].numpy(), images,
                               atol=1e-6)
    inputs = RNG.random((2, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(served.reconstruct(tf.constant(inputs))["images"].numpy(),
                               ops.convert_to_numpy(model.reconstruct(inputs)), atol=1e-6)
