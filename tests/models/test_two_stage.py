"""Two-Stage VAE: the gamma loss by hand, stage-2 training on frozen stage-1 latents, the sampling path,
networks, presets, save/load and bad input."""

import math

import keras
import numpy as np
import pytest
from keras import ops

import keras_crvae
from keras_crvae import callbacks, models, presets
from keras_crvae.networks import two_stage as nets

pytestmark = pytest.mark.portable

IMAGE_SHAPE = (8, 8, 1)
LATENT = 4


def tiny_two_stage(seed=0, decoder_loss="learned_gamma", weight_decay=0.0):
    """ResNet stage 1 on 8x8x1 images (base 2 channels, 2 scales, 1-conv blocks), latent 4; stage 2
    depth 1 width 16."""
    keras.utils.set_random_seed(seed)
    encoder1 = nets.build_resnet_encoder(IMAGE_SHAPE, LATENT, base_channels=2, num_scales=2,
                                         blocks_per_scale=1, depth_per_block=1, fc_dim=8)
    decoder1 = nets.build_resnet_decoder(IMAGE_SHAPE, LATENT, base_channels=2, blocks_per_scale=1,
                                         depth_per_block=1)
    encoder2 = nets.build_latent_encoder(LATENT, depth=1, width=16)
    decoder2 = nets.build_latent_decoder(LATENT, depth=1, width=16)
    return models.TwoStageVAE.from_networks(encoder1, decoder1, encoder2, decoder2,
                                            decoder_loss=decoder_loss, weight_decay=weight_decay,
                                            seed=seed)


def images(count=8, seed=0):
    return np.random.default_rng(seed).random((count,) + IMAGE_SHAPE).astype("float32")


def to_np(tensor):
    return ops.convert_to_numpy(tensor).astype("float64")


# --- the loss ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("decoder_loss", [
    "learned_gamma", pytest.param("fixed_gamma", marks=pytest.mark.tensorflow_variant), "cross_entropy"])
def test_loss_matches_hand_computation(decoder_loss):
    model = tiny_two_stage(decoder_loss=decoder_loss).stage1
    gamma = 0.3
    model.log_gamma.assign(math.log(gamma))
    x = images(3)
    y_pred = model(x, training=False)
    loss = float(model.compute_loss(x=x, y_pred=y_pred))

    mean, log_var, x_mean = (to_np(y_pred[k]) for k in ("mean", "log_var", "x_mean"))
    data = x.astype("float64").reshape(3, -1)
    x_mean = x_mean.reshape(3, -1)
    d = data.shape[1]
    kl = 0.5 * np.sum(mean ** 2 + np.exp(log_var) - log_var - 1.0, axis=1)
    if decoder_loss == "cross_entropy":
        nll = -np.sum(data * np.log(np.maximum(x_mean, 1e-8))
                      + (1 - data) * np.log(np.maximum(1 - x_mean, 1e-8)), axis=1)
    else:
        nll = (np.sum((data - x_mean) ** 2, axis=1) / (2 * gamma ** 2) + d * math.log(gamma)
               + d / 2 * math.log(2 * math.pi))
    np.testing.assert_allclose(loss, np.mean(nll + kl), rtol=1e-5)
    assert model.log_gamma.trainable == (decoder_loss == "learned_gamma")


def test_weight_decay_adds_half_l2_of_kernels():
    plain, decayed = tiny_two_stage().stage1, tiny_two_stage(weight_decay=0.01).stage1
    x = images(2)
    y_pred = plain(x, training=False)
    difference = (float(decayed.compute_loss(x=x, y_pred=y_pred))
                  - float(plain.compute_loss(x=x, y_pred=y_pred)))
    kernels = [to_np(v) for v in decayed.trainable_variables if v.path.endswith("kernel")]
    assert len(kernels) > 5
    np.testing.assert_allclose(difference, 0.005 * sum(np.sum(k ** 2) for k in kernels), rtol=1e-4)


def test_learned_gamma_falls_and_is_logged():
    """Data on a 1-d line in R^4: the reconstruction error shrinks, so gamma must fall (Theorem 3)."""
    keras.utils.set_random_seed(1)
    line = np.random.default_rng(0).standard_normal((256, 1)) * np.array([[0.1, -0.2, 0.05, 0.1]])
    vae = models.GammaVAE(nets.build_latent_encoder(4, depth=1, width=32),
                          nets.build_latent_decoder(4, depth=1, width=32), data_range=None, seed=0)
    vae.compile(keras.optimizers.Adam(0.05))
    history = callbacks.GammaHistory(every_batches=4)
    vae.fit(line.astype("float32"), batch_size=32, epochs=4, verbose=0, callbacks=[history])
    assert [epoch for epoch, _ in history.epochs] == [1, 2, 3, 4]
    assert history.batches[0] == (0, pytest.approx(1.0))
    assert len(history.batches) == 1 + 4 * 8 // 4
    assert history.epochs[-1][1] < 0.8 * history.batches[0][1]
    assert history.epochs[-1][1] == pytest.approx(float(to_np(vae.gamma)))


# --- stage 2 on frozen stage-1 latents ------------------------------------------------------------


def test_stage2_trains_on_stage1_posterior_and_leaves_stage1_unchanged():
    model = tiny_two_stage()
    x = images(200)
    stage1_before = [to_np(v) for v in model.stage1.weights]
    data = model.stage2_data(x, batch_size=20, seed=0)
    mean, log_var = model.encode(x)
    np.testing.assert_allclose(data.mean, to_np(mean), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(data.std, np.exp(0.5 * to_np(log_var)), rtol=1e-5)
    assert len(data) == 10 and data[0][0].shape == (20, LATENT)

    model.stage2.compile(keras.optimizers.Adam(3e-3))
    history = model.stage2.fit(data, epochs=6, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    for before, after in zip(stage1_before, model.stage1.weights):
        np.testing.assert_array_equal(before, to_np(after))


def test_posterior_latents_redraws_noise_each_epoch():
    data = models.PosteriorLatents(np.zeros((6, 2)), np.zeros((6, 2)), batch_size=3, seed=0)
    first = np.concatenate([data[i][0] for i in range(len(data))])
    data.on_epoch_end()
    second = np.concatenate([data[i][0] for i in range(len(data))])
    assert first.shape == (6, 2) and not np.allclose(first, second)
    assert abs(first.std() - 1.0) < 0.8  # unit-variance noise around zero means


# --- sampling ------------------------------------------------------------------------------------------


def test_sample_shapes_and_seed_determinism():
    model = tiny_two_stage()
    for stage in (1, 2):
        first = to_np(model.sample(5, stage=stage, seed=3))
        assert first.shape == (5,) + IMAGE_SHAPE
        assert first.min() >= 0.0 and first.max() <= 1.0
        np.testing.assert_array_equal(first, to_np(model.sample(5, stage=stage, seed=3)))
        assert not np.allclose(first, to_np(model.sample(5, stage=stage, seed=4)))


def test_stage2_sampling_goes_through_decoder2_and_gamma_z():
    """A known decoder2 (constant output c) and gamma_z: z = c + gamma_z * eps exactly."""
    model = tiny_two_stage()
    constant = np.array([0.5, -1.0, 2.0, 0.25], "float32")
    for layer in model.stage2.decoder.layers:
        for variable in layer.weights:
            variable.assign(np.zeros(variable.shape, "float32"))
    model.stage2.decoder.get_layer("z_mean").bias.assign(constant)

    model.stage2.log_gamma.assign(math.log(1e-4))
    latents = to_np(model.sample_latents(2000, stage=2, seed=0))
    np.testing.assert_allclose(latents, np.broadcast_to(constant, latents.shape), atol=1e-3)
    np.testing.assert_allclose(to_np(model.sample(3, stage=2, seed=0)),
                               to_np(model.decode(np.tile(constant, (3, 1)))), atol=1e-4)

    model.stage2.log_gamma.assign(math.log(2.0))
    latents = to_np(model.sample_latents(4000, stage=2, seed=0))
    np.testing.assert_allclose(latents.mean(0), constant, atol=0.15)
    np.testing.assert_allclose(latents.std(0), 2.0, rtol=0.06)

    prior = to_np(model.sample_latents(4000, stage=1, seed=0))  # stage 1 ignores decoder2
    np.testing.assert_allclose(prior.mean(0), 0.0, atol=0.08)
    np.testing.assert_allclose(prior.std(0), 1.0, rtol=0.06)


def test_api_contract_shapes():
    model = tiny_two_stage()
    x = images(4)
    mean, log_var = model.encode(x)
    assert tuple(mean.shape) == tuple(log_var.shape) == (4, LATENT)
    assert tuple(model.decode(mean).shape) == (4,) + IMAGE_SHAPE
    assert model.image_shape == IMAGE_SHAPE and model.latent_shape == (LATENT,)
    assert model.image_range == (0.0, 1.0)
    log_px = to_np(model.log_likelihood(x, mean))
    x_mean = to_np(model.decode(mean)).reshape(4, -1)
    d = x_mean.shape[1]
    expected = -(np.sum((x.reshape(4, -1) - x_mean) ** 2, 1) / 2 + d * 0.5 * math.log(2 * math.pi))
    np.testing.assert_allclose(log_px, expected, rtol=1e-5)  # gamma = 1 at initialisation


# --- save / load ---------------------------------------------------------------------------------------


def test_keras_save_load_round_trip(tmp_path):
    model = tiny_two_stage()
    model.stage1.log_gamma.assign(math.log(0.1))
    model.stage2.log_gamma.assign(math.log(0.2))
    path = str(tmp_path / "two_stage.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, models.TwoStageVAE)
    assert float(to_np(loaded.stage1.gamma)) == pytest.approx(0.1, rel=1e-6)
    assert float(to_np(loaded.stage2.gamma)) == pytest.approx(0.2, rel=1e-6)
    for stage in (1, 2):
        np.testing.assert_allclose(to_np(loaded.sample(4, stage=stage, seed=5)),
                                   to_np(model.sample(4, stage=stage, seed=5)), atol=1e-6)
    assert loaded.get_config()["stage1"]["config"]["decoder_loss"] == "learned_gamma"


# --- networks -----------------------------------------------------------------------------------------


def test_infogan_encoder_parameter_count_by_hand():
    encoder = nets.build_infogan_encoder((28, 28, 1), 64)
    expected = ((4 * 4 * 1 * 64 + 64) + (4 * 4 * 64 * 128 + 128) + 2 * 128
                + (7 * 7 * 128 * 1024 + 1024) + 2 * 1024 + (1024 * 128 + 128))
    trainable = sum(int(np.prod(v.shape)) for v in encoder.trainable_weights)
    assert trainable == expected
    assert sum("spectral" in type(layer).__name__.lower() for layer in encoder.layers) == 4
    assert [tuple(s) for s in encoder.output_shape] == [(None, 64), (None, 64)]


@pytest.mark.parametrize("image_shape", [(28, 28, 1), (64, 64, 3)])
def test_first_stage_networks_shapes(image_shape):
    decoder = nets.build_infogan_decoder(image_shape, 8)
    assert tuple(decoder.output_shape[1:]) == image_shape
    encoder = nets.build_resnet_encoder(image_shape, 8, base_channels=2, num_scales=3, fc_dim=8)
    resnet_decoder = nets.build_resnet_decoder(image_shape, 8, base_channels=2)
    # Symbolic shapes only: an eager pass through the deep ResNet is slow on the JAX backend.
    assert [tuple(shape) for shape in encoder.output_shape] == [(None, 8), (None, 8)]
    assert tuple(resnet_decoder.output_shape) == (None,) + image_shape
    scales = [layer for layer in encoder.layers if layer.name.endswith("_add")]
    assert len(scales) == 3 * 2 + 2  # two residual blocks per ScaleBlock, two in the fc ScaleBlock
    # Figure 11: fc to 2x2 with base * 2^(scales) channels, halved at every upsampling.
    first = resnet_decoder.get_layer("fc0")
    assert first.units == 2 * 2 * 2 * (32 if image_shape[0] == 64 else 16)


def test_latent_networks_concatenate_their_input():
    encoder = nets.build_latent_encoder(6, depth=3, width=10)
    skip = encoder.get_layer("skip")
    assert tuple(skip.output.shape) == (None, 6 + 10)
    assert sum(isinstance(layer, keras.layers.Dense) for layer in encoder.layers) == 4


# --- presets and bad input -------------------------------------------------------------------------


def test_presets_hold_the_papers_schedule():
    mnist = keras_crvae.get_preset("mnist_two_stage")
    assert (mnist.training.epochs, mnist.training.lr_decay_every_epochs) == (400, 150)
    assert (mnist.stage2_training.epochs, mnist.stage2_training.lr_decay_every_epochs) == (800, 300)
    assert mnist.training.learning_rate == mnist.stage2_training.learning_rate == 1e-4
    assert mnist.training.batch_size == 100 and mnist.model["weight_decay"] == 5e-4
    assert mnist.stage2_network == {"depth": 3, "width": 1024}
    celeba = keras_crvae.get_preset("celeba_two_stage")
    assert (celeba.training.epochs, celeba.training.lr_decay_every_epochs) == (120, 48)
    assert (celeba.stage2_training.epochs, celeba.stage2_training.lr_decay_every_epochs) == (300, 120)
    assert tuple(celeba.network["image_shape"]) == (64, 64, 3)
    changed = keras_crvae.get_preset("mnist_two_stage", epochs=2, stage2_epochs=3, stage2_width=8)
    assert (changed.training.epochs, changed.stage2_training.epochs) == (2, 3)
    assert changed.stage2_network["width"] == 8
    with pytest.raises(ValueError, match="stage2_nonsense"):
        keras_crvae.get_preset("mnist_two_stage", stage2_nonsense=1)


def test_from_preset_builds_a_compiled_two_stage_model():
    model = presets.from_preset("mnist_two_stage", steps_per_epoch=10, stage2_width=8)
    assert isinstance(model, models.TwoStageVAE)
    assert model.stage1.optimizer is not None and model.stage2.optimizer is not None
    assert model.stage1.weight_decay == 5e-4 and model.image_shape == (28, 28, 1)


def test_bad_arguments_raise_clear_errors():
    model = tiny_two_stage()
    with pytest.raises(ValueError, match="decoder_loss"):
        models.GammaVAE(model.stage1.encoder, model.stage1.decoder, decoder_loss="laplace")
    with pytest.raises(ValueError, match="gamma"):
        models.GammaVAE(model.stage1.encoder, model.stage1.decoder, gamma=0.0)
    with pytest.raises(ValueError, match="stage"):
        model.sample(2, stage=3)
    with pytest.raises(ValueError, match="num_samples"):
        model.sample(0)
    with pytest.raises(ValueError, match=r"images|data"):
        model.encode(np.zeros((2, 9, 9, 1), "float32"))
    with pytest.raises(ValueError, match=r"\[0.0, 1.0\]"):
        model.encode(np.full((2,) + IMAGE_SHAPE, 2.0, "float32"))
    with pytest.raises(ValueError, match="Stage 2"):
        models.TwoStageVAE(model.stage1, models.GammaVAE(
            nets.build_latent_encoder(3, depth=1, width=4),
            nets.build_latent_decoder(3, depth=1, width=4), data_range=None))
    with pytest.raises(ValueError, match="image_shape"):
        nets.build_infogan_encoder((30, 30, 1))


def test_recalibrate_batch_norm_averages_batch_statistics():
    """The first BatchNorm sees conv0(x): its moving statistics become the average of the per-batch
    mean and (biased) variance; no trainable weight moves and the momentum is restored."""
    model = tiny_two_stage().stage1
    x = images(20, seed=3)
    trainable_before = [to_np(v) for v in model.trainable_variables]
    assert model.recalibrate_batch_norm(x, batch_size=10) > 0
    norm = model.encoder.get_layer("scale0_block0_bn0")
    features = to_np(model.encoder.get_layer("conv0")(x)).reshape(2, -1, norm.moving_mean.shape[0])
    np.testing.assert_allclose(to_np(norm.moving_mean), features.mean(axis=(0, 1)), rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_allclose(to_np(norm.moving_variance), features.var(axis=1).mean(axis=0),
                               rtol=1e-3, atol=1e-6)
    assert norm.momentum == 0.999
    for before, after in zip(trainable_before, model.trainable_variables):
        np.testing.assert_array_equal(before, to_np(after))
