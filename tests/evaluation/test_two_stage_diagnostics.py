"""Two-Stage VAE diagnostics against closed forms: singular values, encoder variances, perturbation
variance, the Gaussian reference spectrum, and the report on a tiny model."""

import math

import numpy as np
import pytest
from keras import ops

from keras_crvae.evaluation import two_stage_diagnostics as diagnostics

pytestmark = pytest.mark.portable


class LinearStub:
    """A model with `encode(x) -> (x @ A, fixed log_var)` and `decode(z) = z @ W` (closed forms)."""

    image_shape = (3,)

    def __init__(self, encode_matrix, log_var, decode_matrix):
        self.encode_matrix = np.asarray(encode_matrix, np.float32)
        self.log_var = np.asarray(log_var, np.float32)
        self.decode_matrix = np.asarray(decode_matrix, np.float32)

    def encode(self, x):
        x = np.asarray(x, np.float32)
        mean = x @ self.encode_matrix
        return ops.convert_to_tensor(mean), ops.convert_to_tensor(np.broadcast_to(self.log_var, mean.shape))

    def decode(self, z):
        return ops.convert_to_tensor(np.asarray(z, np.float32) @ self.decode_matrix)


def test_singular_values_of_a_known_matrix():
    rotation, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((5, 5)))
    matrix = rotation[:, :3] @ np.diag([3.0, 2.0, 0.5])  # orthonormal columns times a diagonal
    np.testing.assert_allclose(diagnostics.singular_values(matrix), [3.0, 2.0, 0.5], atol=1e-12)
    with pytest.raises(ValueError, match="samples"):
        diagnostics.singular_values(np.zeros(4))


def test_gaussian_spectrum_lies_in_the_marchenko_pastur_band():
    rows, cols = 4000, 16
    values = diagnostics.gaussian_singular_values(rows, cols, seed=1)
    assert values.shape == (cols,) and np.all(np.diff(values) <= 0)
    assert math.sqrt(rows) - math.sqrt(cols) - 3 < values.min()
    assert values.max() < math.sqrt(rows) + math.sqrt(cols) + 3
    assert diagnostics.spectrum_distance(values, values) == 0.0
    assert diagnostics.spectrum_distance(2 * values, values) == pytest.approx(1.0)


def test_encoder_variances_and_active_dimensions():
    log_var = np.log([1e-3, 0.9, 0.02, 1.0])
    stub = LinearStub(np.eye(3, 4), log_var, np.eye(4, 3))
    variances = diagnostics.encoder_variances(stub, np.zeros((7, 3)), batch_size=3)
    assert variances.shape == (7, 4)
    np.testing.assert_allclose(variances[0], [1e-3, 0.9, 0.02, 1.0], rtol=1e-5)
    result = diagnostics.active_dimensions(variances)
    assert result["active_dimensions"] == 2 and result["num_dimensions"] == 4
    histogram = diagnostics.variance_histogram(variances)
    assert sum(histogram["counts"]) == 28 and len(histogram["edges"]) == 25
    with pytest.raises(ValueError, match="threshold"):
        diagnostics.active_dimensions(variances, threshold=1.5)


def test_posterior_samples_have_the_encoder_moments():
    stub = LinearStub(np.eye(3, 2), np.log([0.25, 4.0]), np.eye(2, 3))
    x = np.tile([[1.0, -2.0, 0.0]], (20000, 1))
    samples = diagnostics.posterior_samples(stub, x, seed=0, batch_size=5000)
    np.testing.assert_allclose(samples.mean(0), [1.0, -2.0], atol=0.05)
    np.testing.assert_allclose(samples.std(0), [0.5, 2.0], rtol=0.03)


def test_perturbation_variance_matches_a_linear_decoder():
    """decode(z) = z W: moving z_j by eps changes the image by eps * W_j, so the variance over the K
    draws, summed over pixels, is var(eps_j) * ||W_j||^2 (same draws, by seed)."""
    decode_matrix = np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    stub = LinearStub(np.eye(3), np.log([0.5, 1.0, 0.01]), decode_matrix)
    result = diagnostics.perturbation_image_variance(stub, np.ones(3), num_perturbations=15,
                                                     scale=1.0, seed=3)
    noise = np.random.default_rng(3).standard_normal((3, 15))
    expected = noise.var(axis=1) * np.sum(decode_matrix ** 2, axis=1)
    np.testing.assert_allclose(result["image_variance"], expected, rtol=1e-4)
    assert result["image_variance"][1] == 0.0  # a direction the decoder ignores (Theorem 4)
    np.testing.assert_array_equal(result["order"], [2, 0, 1])


def test_plots_are_written(tmp_path):
    pytest.importorskip("matplotlib", reason="plots need the `plots` extra (matplotlib)")
    spectra = {"a": np.array([3.0, 2.0, 1.0]), "b": np.array([2.0, 2.0, 2.0])}
    for path in (diagnostics.plot_spectra(spectra, tmp_path / "s.png"),
                 diagnostics.plot_variance_histogram(np.random.rand(10, 4), tmp_path / "h.png"),
                 diagnostics.plot_gamma({"g": [(0, 1.0), (10, 0.5)]}, tmp_path / "g.png")):
        assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_report_on_a_tiny_two_stage_model():
    from keras_crvae.models import TwoStageVAE
    from keras_crvae.networks import two_stage as nets

    model = TwoStageVAE.from_networks(
        nets.build_resnet_encoder((8, 8, 1), 4, base_channels=2, num_scales=2, blocks_per_scale=1,
                                  depth_per_block=1, fc_dim=8),
        nets.build_resnet_decoder((8, 8, 1), 4, base_channels=2, blocks_per_scale=1,
                                  depth_per_block=1),
        nets.build_latent_encoder(4, depth=1, width=8), nets.build_latent_decoder(4, depth=1, width=8),
        seed=0)
    images = np.random.default_rng(0).random((40, 8, 8, 1)).astype("float32")
    report = diagnostics.two_stage_report(model, images, num_fid_samples=0)
    spectra = report["spectra"]
    assert len(spectra["values"]["stage1"]) == len(spectra["values"]["gaussian"]) == 4
    assert spectra["num_rows"] == 40 and set(spectra["distance_to_gaussian"]) == {"stage1", "stage2"}
    assert report["active_dimensions"]["num_dimensions"] == 4
    assert len(report["perturbation"]["image_variance_sorted"]) == 4
    assert "fid" not in report
    uint8 = diagnostics.to_uint8(np.array([0.0, 0.5, 1.0, 1.2]))
    np.testing.assert_array_equal(uint8, [0, 128, 255, 255])
