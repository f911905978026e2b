"""The NLL evaluator's model protocols: `log_importance_weights` (hierarchical models) scored exactly on a
two-layer linear-Gaussian model, bfloat16 encoders, and progress that moves per chunk of samples.

Model: z2 ~ N(0, I_2), z1 | z2 ~ N(A z2, s1^2 I_3), x | z1 ~ N(B z1 + b, s^2 I_4), so
p(x) = N(x; b, B (A A^T + s1^2 I) B^T + s^2 I) exactly. With orthogonal columns in A and B the true
posterior p(z1|x) p(z2|z1) (x and z2 are independent given z1) is diagonal: Burda et al.'s bottom-up
proposal q(z1|x) q(z2|z1) can equal it, and then every importance weight equals p(x).
"""

import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae import evaluation

pytestmark = pytest.mark.portable

A = np.array([[2.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
B = np.array([[1.5, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.5], [0.0, 0.0, 0.0]])
BIAS = np.array([0.5, -1.0, 0.0, 2.0])
S1, S = 0.6, 0.7


def _log_normal(x, mean, var):
    return np.sum(-0.5 * (np.square(x - mean) / var + np.log(2 * math.pi * var)), axis=-1)


class TwoLayerLinearGaussian:
    """A duck-typed two-layer model: `latent_shapes` and `log_importance_weights` in NumPy."""

    latent_shapes = [(3,), (2,)]

    def __init__(self, shift=0.0, log_var_shift=0.0):
        self.shift, self.log_var_shift = shift, log_var_shift
        marginal_var_1 = np.diag(A @ A.T) + S1 ** 2
        self.var_1 = 1.0 / (1.0 / marginal_var_1 + np.diag(B.T @ B) / S ** 2)  # p(z1|x)
        self.var_2 = 1.0 / (1.0 + np.diag(A.T @ A) / S1 ** 2)  # p(z2|z1)

    def log_importance_weights(self, images, noise):
        x = np.asarray(images, np.float64)
        noise_1, noise_2 = (ops.convert_to_numpy(n).astype(np.float64) for n in noise)
        mean_1 = self.var_1 * ((x - BIAS) @ B) / S ** 2 + self.shift
        var_1 = self.var_1 * math.exp(self.log_var_shift)
        z1 = mean_1[None] + np.sqrt(var_1) * noise_1
        mean_2 = self.var_2 * (z1 @ A) / S1 ** 2 - self.shift
        var_2 = self.var_2 * math.exp(self.log_var_shift)
        z2 = mean_2 + np.sqrt(var_2) * noise_2
        return (_log_normal(x[None], z1 @ B.T + BIAS, S ** 2) + _log_normal(z1, z2 @ A.T, S1 ** 2)
                + _log_normal(z2, 0.0, 1.0) - _log_normal(z1, mean_1[None], var_1)
                - _log_normal(z2, mean_2, var_2))

    @staticmethod
    def true_log_marginal(x):
        cov = B @ (A @ A.T + S1 ** 2 * np.eye(3)) @ B.T + S ** 2 * np.eye(4)
        residual = x - BIAS
        _, logdet = np.linalg.slogdet(cov)
        quad = np.einsum("nd,de,ne->n", residual, np.linalg.inv(cov), residual)
        return -0.5 * (quad + logdet + 4 * math.log(2 * math.pi))

    @staticmethod
    def data(num_images, seed=0):
        rng = np.random.default_rng(seed)
        z2 = rng.standard_normal((num_images, 2))
        z1 = z2 @ A.T + S1 * rng.standard_normal((num_images, 3))
        return (z1 @ B.T + BIAS + S * rng.standard_normal((num_images, 4))).astype("float32")


def test_two_layer_true_posterior_gives_the_exact_marginal():
    model = TwoLayerLinearGaussian()
    images = model.data(10)
    expected = -model.true_log_marginal(images.astype(np.float64))
    estimate = evaluation.importance_sampled_nll(model, images, num_samples=25, batch_size=4,
                                                 seed=0, max_decoder_batch=12, verbose=0)
    np.testing.assert_allclose(estimate.per_example, expected, rtol=0, atol=1e-3)
    assert np.all(estimate.monte_carlo_error < 1e-3)


def test_two_layer_wrong_proposal_agrees_within_its_standard_error():
    model = TwoLayerLinearGaussian(shift=0.3, log_var_shift=0.4)
    images = model.data(40, seed=1)
    expected = -model.true_log_marginal(images.astype(np.float64))
    estimate = evaluation.importance_sampled_nll(model, images, num_samples=2000, batch_size=20,
                                                 seed=2, max_decoder_batch=8000, verbose=0)
    # Not exact: each weight varies, so a test that ignored the proposal would fail here.
    few = evaluation.importance_sampled_nll(model, images, num_samples=2, seed=2, verbose=0)
    assert np.max(np.abs(few.per_example - expected)) > 0.05
    error = np.abs(estimate.per_example - expected)
    assert np.all(error < 4 * estimate.monte_carlo_error + 1e-3)
    mean_error = math.sqrt(np.sum(np.square(estimate.monte_carlo_error))) / len(images)
    assert abs(estimate.mean - np.mean(expected)) < 3 * mean_error + 1e-4


class BFloat16Encoder:
    """A one-layer duck-typed model whose encoder returns bfloat16 (a `mixed_bfloat16` model)."""

    def encode(self, images):
        x = ops.convert_to_tensor(np.asarray(images, "float32"))
        mean = ops.cast(ops.reshape(x, (x.shape[0], -1))[:, :3] * 0.5, "bfloat16")
        return mean, ops.cast(ops.full(mean.shape, -1.0), "bfloat16")

    def log_likelihood(self, images, z):
        z = ops.cast(ops.convert_to_tensor(z), "float32")
        return -0.5 * ops.sum(ops.square(z), axis=1) - 3.0


def test_bfloat16_encoder_outputs_are_scored_in_float32():
    images = np.random.default_rng(0).random((5, 2, 3, 1)).astype("float32")
    estimate = evaluation.importance_sampled_nll(BFloat16Encoder(), images, num_samples=7, verbose=0)
    bound = evaluation.elbo(BFloat16Encoder(), images, num_samples=2)
    assert np.all(np.isfinite(estimate.per_example)) and np.isfinite(bound["elbo"].mean)


class RecordingProgbar:
    instances = []

    def __init__(self, target, **kwargs):
        self.target, self.kwargs, self.added = target, kwargs, []
        RecordingProgbar.instances.append(self)

    def add(self, value):
        self.added.append(value)


def test_progress_moves_per_chunk_of_samples_and_verbose_0_is_silent(monkeypatch, capsys):
    model = TwoLayerLinearGaussian()
    images = model.data(6)
    evaluation.importance_sampled_nll(model, images, num_samples=10, batch_size=3,
                                      max_decoder_batch=12, verbose=0)
    assert capsys.readouterr().out == ""
    monkeypatch.setattr(keras.utils, "Progbar", RecordingProgbar)
    evaluation.importance_sampled_nll(model, images, num_samples=10, batch_size=3,
                                      max_decoder_batch=12, verbose=1)
    (progress,) = RecordingProgbar.instances
    # 2 batches of 3 images, chunks of 4 samples: 4 + 4 + 2 samples per batch, counted in samples.
    assert progress.target == 60 and progress.added == [12, 12, 6] * 2
    assert progress.kwargs["unit_name"] == "sample"


class EncodeDecodeOnly:
    """Hides a VAE's `log_importance_weights`: only `encode` / `log_likelihood` remain."""

    def __init__(self, model):
        self.encode, self.log_likelihood = model.encode, model.log_likelihood


def test_vae_log_weights_compiled_equal_the_encode_log_likelihood_path():
    from keras_crvae.evaluation import likelihood
    from keras_crvae.models import VAE
    from keras_crvae.networks import mlp

    keras.utils.set_random_seed(0)
    model = VAE(mlp.build_mlp_gaussian((2, 3, 1), 4, (5,), name="encoder"),
                mlp.build_mlp_bernoulli_decoder(4, (5,), image_shape=(2, 3, 1)))
    images = (np.random.default_rng(0).random((3, 2, 3, 1)) < 0.5).astype("float32")
    noise = [np.random.default_rng(1).standard_normal((5, 3, 4)).astype("float32")]
    compiled = likelihood.compiled_log_importance_weights(model)
    from_method, shapes = likelihood.log_weight_function(model, images, compiled)
    from_encoder, duck_shapes = likelihood.log_weight_function(EncodeDecodeOnly(model), images)
    assert shapes == duck_shapes == [(4,)]
    np.testing.assert_allclose(from_method(noise), from_encoder(noise), rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match=r"`noise\[0\]` must have shape \(num_samples, 3, 4\)"):
        model.log_importance_weights(images, [noise[0][:, :2]])
