"""Image completion by optimising z: the objective by hand, the blend, descent, determinism, masks,
and every model kind (VAE, VAE-GAN with its discriminator, Two-Stage)."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae import completion, networks
from keras_crvae.models import CRVAEGAN, VAE, VAEGAN, TwoStageVAE
from keras_crvae.networks import two_stage as two_stage_nets

pytestmark = pytest.mark.portable

SHAPE = (8, 8, 1)
LATENT = 4


def mlp_vae(seed=0):
    """A small MLP VAE on 8x8x1 images: its decoder depends strongly on z (glorot weights)."""
    keras.utils.set_random_seed(seed)
    encoder = networks.build_mlp_gaussian(SHAPE, LATENT, hidden_units=(16,), name="encoder")
    decoder = networks.build_mlp_bernoulli_decoder(LATENT, hidden_units=(16,), image_shape=SHAPE)
    return VAE(encoder, decoder, seed=seed)


def images(count=3, seed=0, shape=SHAPE, low=0.0):
    return np.random.default_rng(seed).uniform(low, 1.0, (count,) + shape).astype("float32")


def test_first_loss_is_the_objective_by_hand():
    model = mlp_vae()
    x = images()
    mask = completion.make_mask("centre", SHAPE)
    prior_weight = 0.3  # large, so a wrong sign or a missing term shows
    result = completion.complete(model, x, mask, steps=1, prior_weight=prior_weight)

    masked = x * mask + 0.5 * (1 - mask)  # missing pixels at the middle of [0, 1]
    z0 = ops.convert_to_numpy(model.encode(masked)[0]).astype("float64")
    x_hat = 1 / (1 + np.exp(-ops.convert_to_numpy(model.decoder(z0)).astype("float64")))
    reconstruction = ((x_hat * mask - x * mask) ** 2).reshape(3, -1).sum(1) / math.prod(SHAPE)
    # -gamma log N(z; 0, I): positive, growing with |z| (the intended sign, see the docstring).
    negative_log_prior = 0.5 * (z0 ** 2).sum(1) + 0.5 * LATENT * math.log(2 * math.pi)
    expected = np.mean(reconstruction + prior_weight * negative_log_prior)
    np.testing.assert_allclose(result.loss_curve[0], expected, rtol=1e-5)
    np.testing.assert_allclose(result.initial_decoded, x_hat, atol=1e-5)
    assert result.adversarial_weight == 0.0  # a VAE has no discriminator


def test_loss_decreases_and_observed_pixels_never_change():
    model = mlp_vae()
    x = images(4)
    result = completion.complete(model, x, "left", steps=40, learning_rate=0.1)
    assert result.loss_curve.shape == (40,)
    assert result.final_loss < 0.9 * result.loss_curve[0]
    observed = np.broadcast_to(result.mask, x.shape) == 1
    np.testing.assert_array_equal(result.completed[observed], x[observed])
    np.testing.assert_array_equal(result.completed[~observed], result.decoded[~observed])
    # The prior term pulls z towards 0: with a huge prior weight z shrinks.
    pulled = completion.complete(model, x, "left", steps=40, learning_rate=0.1, prior_weight=10.0)
    assert np.linalg.norm(pulled.z) < 0.5 * np.linalg.norm(result.z)


def test_deterministic_for_a_seed_and_images_are_independent():
    model = mlp_vae()
    x = images(4)
    kwargs = dict(steps=10, learning_rate=0.1, seed=3, init="posterior_sample")
    first = completion.complete(model, x, "random_blocks", **kwargs)
    second = completion.complete(model, x, "random_blocks", **kwargs)
    np.testing.assert_array_equal(first.completed, second.completed)
    np.testing.assert_array_equal(first.loss_curve, second.loss_curve)
    other = completion.complete(model, x, "random_blocks", **dict(kwargs, seed=4))
    assert not np.array_equal(other.mask, first.mask)
    # Without a discriminator, image 1 completed alone gets the same z as in the batch.
    alone = completion.complete(model, x[1:2], first.mask[1:2], steps=10, learning_rate=0.1)
    batched = completion.complete(model, x, first.mask, steps=10, learning_rate=0.1)
    np.testing.assert_allclose(alone.z[0], batched.z[1], atol=1e-5)


def test_masks():
    centre = completion.make_mask("centre", (8, 8, 3))
    assert centre.shape == (8, 8, 1) and centre.sum() == 64 - 16 and centre[4, 4, 0] == 0
    assert completion.make_mask("center", (8, 8)).sum() == centre.sum()
    for kind, hidden in (("left", (slice(None), slice(0, 4))), ("right", (slice(None), slice(4, 8))),
                         ("top", (slice(0, 4), slice(None))), ("bottom", (slice(4, 8), slice(None)))):
        mask = completion.make_mask(kind, (8, 8, 3))
        assert mask.sum() == 32 and np.all(mask[hidden] == 0), kind
    blocks = completion.make_mask("random_blocks", (16, 16, 3), batch_size=2, seed=0)
    assert blocks.shape == (2, 16, 16, 1) and 0 < blocks.sum() < 2 * 256
    assert not np.array_equal(blocks[0], blocks[1])
    # Every accepted shape ends as (B, H, W, 1 or C), with the same 0/1 pattern.
    left = (np.arange(8) >= 4).astype("float32")[None, :]  # (8 rows, 8 columns): left half hidden
    for shape in [(8, 8), (8, 8, 1), (8, 8, 3), (2, 8, 8), (2, 8, 8, 1), (2, 8, 8, 3)]:
        spatial = left[..., None] if shape[-1] in (1, 3) and shape[-2] == 8 else left
        mask = np.broadcast_to(spatial, shape)
        checked = completion.check_mask(mask, (2, 8, 8, 3))
        assert checked.shape[:3] == (2, 8, 8) and checked.shape[3] in (1, 3), shape
        assert np.all(checked[:, :, :4] == 0) and np.all(checked[:, :, 4:] == 1), shape


def test_mask_errors_are_clear():
    model = mlp_vae()
    x = images(2)
    with pytest.raises(ValueError, match=r"`mask` has shape \(7, 8\)"):
        completion.complete(model, x, np.ones((7, 8)))
    with pytest.raises(ValueError, match=r"`mask` has shape \(3, 8, 8\)"):
        completion.complete(model, x, np.ones((3, 8, 8)))
    with pytest.raises(ValueError, match="hides no pixel of image 0"):
        completion.complete(model, x, np.ones((8, 8)))
    empty = np.ones((2, 8, 8))
    empty[0, :4] = 0
    empty[1] = 0
    with pytest.raises(ValueError, match="observes no pixel of image 1"):
        completion.complete(model, x, empty)
    with pytest.raises(ValueError, match="must be 0 .missing. or 1"):
        completion.complete(model, x, np.full((8, 8), 0.5))
    with pytest.raises(ValueError, match="`kind` must be one of"):
        completion.complete(model, x, "middle")
    with pytest.raises(ValueError, match="`images` must have shape"):
        completion.complete(model, images(2, shape=(9, 8, 1)), "centre")
    with pytest.raises(ValueError, match="`steps` must be"):
        completion.complete(model, x, "centre", steps=0)


@pytest.mark.parametrize("latent", [  # JAX: the recurrent one (tests/conftest.py)
    pytest.param("dense", marks=pytest.mark.tensorflow_variant), "recurrent"])
def test_gan_models_use_their_discriminator_and_stay_trainable(latent):
    keras.utils.set_random_seed(1)
    encoder = networks.build_image64_encoder(latent, base_channels=2, latent_channels=8)
    decoder = networks.build_image64_decoder(latent, base_channels=2, latent_channels=8)
    discriminator = networks.build_image64_discriminator(
        base_channels=2, minibatch_kernels=2, dropout_rate=0.0,
        latent_channels=8 if latent == "recurrent" else None)  # crVAE-GAN: [logits, q]
    model = (CRVAEGAN if latent == "recurrent" else VAEGAN)(encoder, decoder, discriminator, seed=0)
    x = images(2, shape=(64, 64, 3), low=-1.0)
    result = completion.complete(model, x, "bottom", steps=3, adversarial_weight=0.5)
    assert result.adversarial_weight == 0.5
    logits = discriminator(ops.convert_to_tensor(result.initial_decoded), training=False)
    logits = logits[0] if isinstance(logits, (list, tuple)) else logits
    logits = ops.convert_to_numpy(logits).reshape(-1).astype("float64")
    reconstruction = ((result.initial_decoded - x) ** 2 * result.mask).reshape(2, -1).sum(1) / (
        64 * 64 * 3)
    masked = x * result.mask
    z0 = ops.convert_to_numpy(model.encode(masked)[0]).reshape(2, -1).astype("float64")
    prior = 1e-5 * (0.5 * (z0 ** 2).sum(1) + 0.5 * z0.shape[1] * math.log(2 * math.pi))
    adversarial = 0.5 * np.log1p(-1 / (1 + np.exp(-logits)))  # tau log(1 - D)
    np.testing.assert_allclose(result.loss_curve[0], np.mean(reconstruction + prior + adversarial),
                               rtol=1e-4)
    observed = np.broadcast_to(result.mask, x.shape) == 1
    np.testing.assert_array_equal(result.completed[observed], x[observed])
    assert np.all(result.completed >= -1) and np.all(result.completed <= 1)
    assert decoder.trainable and discriminator.trainable and encoder.trainable


def test_two_stage_vae():
    keras.utils.set_random_seed(0)
    model = TwoStageVAE.from_networks(
        two_stage_nets.build_infogan_encoder((28, 28, 1), LATENT),
        two_stage_nets.build_infogan_decoder((28, 28, 1), LATENT),
        two_stage_nets.build_latent_encoder(LATENT, depth=1, width=8),
        two_stage_nets.build_latent_decoder(LATENT, depth=1, width=8))
    x = images(2, shape=(28, 28, 1))
    result = completion.complete(model, x, "top", steps=2)
    assert result.decoded.shape == x.shape and result.z.shape == (2, LATENT)
    assert result.adversarial_weight == 0.0


def test_hierarchical_vae_completes_through_its_top_latent():
    import keras_crvae

    model = keras_crvae.from_preset("mnist_mlp_vae_2layer", compile=False, seed=0)
    x = images(2, shape=(28, 28, 1))
    result = completion.complete(model, x, "top", steps=3)
    assert result.z.shape == (2,) + model.latent_shape  # z2, through serving_networks
    assert result.loss_curve[-1] < result.loss_curve[0]


def test_figure_and_summary_of_a_completion():
    """`to_image_range`, `completion_grid` and `completion_summary` on a result made by hand."""
    originals = np.array([[[[0], [255]], [[255], [0]]]], np.uint8)  # one 2x2 grey image
    x = completion.to_image_range(originals, (-1.0, 1.0))
    np.testing.assert_array_equal(x[0, ..., 0], [[-1, 1], [1, -1]])
    mask = np.array([[[[1], [0]], [[1], [1]]]], np.float32)  # pixel (0, 1) missing
    completed = x.copy()
    completed[0, 0, 1, 0] = 0.0
    result = completion.CompletionResult(
        completed=completed, decoded=completed, initial_decoded=np.zeros_like(x),
        z=np.zeros((1, 2)), loss_curve=np.array([2.0, 1.0]), final_loss=0.5, mask=mask, adversarial_weight=0.0)
    grid = completion.completion_grid(x, result, (-1.0, 1.0))
    assert grid.shape == (3, 2, 2, 1) and grid.min() >= 0 and grid.max() <= 1
    np.testing.assert_allclose(grid[0, ..., 0], [[0, 0.5], [1, 0]])  # masked: the middle grey
    np.testing.assert_allclose(grid[1, ..., 0], [[0, 0.5], [1, 0]])  # completion
    np.testing.assert_allclose(grid[2, ..., 0], [[0, 1], [1, 0]])  # original
    summary = completion.completion_summary(x, result, (-1.0, 1.0))
    assert summary["masked_mse"] == 1.0 and summary["encoder_only_masked_mse"] == 1.0
    assert summary["num_images"] == 1 and summary["loss_curve"] == [2.0, 1.0]
    assert summary["final_loss"] == 0.5 and summary["image_range"] == [-1.0, 1.0]
