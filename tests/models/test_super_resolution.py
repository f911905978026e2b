"""Stage2: the supplement's objective by hand, sizes 32->64 / 64->128 / 64->224, one train step (G and D
move, Stage1 does not), the perceptual term, save/load, SavedModel export and perceptual weights."""

import math

import keras
import numpy as np
import pytest
from keras import ops

import keras_crvae
from keras_crvae import networks
from keras_crvae.models import VAEGAN, Stage2
from keras_crvae.networks import perceptual as perceptual_module
from keras_crvae.networks.super_resolution import generator_geometry
from keras_crvae.optimizers import MultiplierAdam, ThresholdedAdam

LATENT = (4, 4, 4)
BATCH = 4


def tiny_stage1(seed=0):
    keras.utils.set_random_seed(seed)
    return VAEGAN(networks.build_image64_encoder("dense", base_channels=2, latent_channels=4),
                  networks.build_image64_decoder("dense", base_channels=2, latent_channels=4),
                  networks.build_image64_discriminator(base_channels=2, minibatch_kernels=2),
                  seed=seed)


def tiny_stage2(input_size=32, output_size=64, perceptual_weight=1.0, with_features=True, seed=0,
                **generator_kwargs):
    stage1 = tiny_stage1(seed)
    generator = networks.build_stage2_generator(input_size, output_size, base_channels=4,
                                                residual_blocks=1, **generator_kwargs)
    discriminator = networks.build_stage2_discriminator(output_size, base_channels=2)
    features = networks.build_perceptual_network("vgg16", image_size=output_size, weights=None) \
        if with_features else None
    return Stage2(stage1, generator, discriminator, features, perceptual_weight=perceptual_weight,
                  seed=seed)


def batch(size=64, seed=0):
    rng = np.random.default_rng(seed)
    return {"images": rng.uniform(-1, 1, (BATCH, size, size, 3)).astype("float32"),
            "posterior_noise": rng.normal(size=(BATCH,) + LATENT).astype("float32"),
            "prior_noise": rng.normal(size=(BATCH,) + LATENT).astype("float32")}


def np_(tensor):
    return ops.convert_to_numpy(tensor).astype("float64")


def log_sigmoid(logits):
    return -np.logaddexp(0.0, -logits)


@pytest.mark.portable
@pytest.mark.parametrize("generator_loss", [
    "non_saturating", pytest.param("saturating", marks=pytest.mark.tensorflow_variant)])
def test_terms_match_a_hand_computation(generator_loss):
    model = tiny_stage2(perceptual_weight=0.7)
    model.generator_loss = generator_loss
    data = batch()
    terms = {k: float(np_(v)) for k, v in model.compute_terms(**data, training=False).items()}

    s = data["images"]  # Stage1 is 64x64 like the real images: no down-sampling
    mean, log_var = (np_(t) for t in model.stage1.encoder(s, training=False))
    z_q = mean + np.exp(0.5 * log_var) * data["posterior_noise"]
    decode = lambda z: np_(model.stage1.decoder(z.astype("float32"), training=False))  # noqa
    average_pool = lambda x: x.reshape(BATCH, 32, 2, 32, 2, 3).mean(axis=(2, 4))  # noqa: E731
    generate = lambda x: np_(model.generator(x.astype("float32"), training=False))  # noqa: E731
    y_q = generate(average_pool(decode(z_q)))
    y_p = generate(average_pool(decode(data["prior_noise"])))
    logits = lambda x: np_(model.discriminator(x.astype("float32"), training=False))[:, 0]  # noqa
    l_real, l_q, l_p = logits(s), logits(y_q), logits(y_p)

    if generator_loss == "non_saturating":
        adversarial = -log_sigmoid(l_p).mean() - log_sigmoid(l_q).mean()      # -log D
    else:
        adversarial = log_sigmoid(-l_p).mean() + log_sigmoid(-l_q).mean()     # log(1 - D)
    caffe = lambda x: (x[..., ::-1] + 1) * 127.5 - np.array([103.939, 116.779, 123.68])  # noqa
    features = lambda x: np_(model.perceptual_network(caffe(x).astype("float32")))  # noqa: E731
    perceptual = np.mean((features(s) - features(y_q)) ** 2)
    d_loss = -log_sigmoid(l_real).mean() - log_sigmoid(-l_p).mean() - log_sigmoid(-l_q).mean()
    accuracy = 0.5 * (l_real > 0).mean() + 0.25 * (l_p <= 0).mean() + 0.25 * (l_q <= 0).mean()

    np.testing.assert_allclose(terms["g_adv"], adversarial, rtol=1e-4)
    np.testing.assert_allclose(terms["perceptual"], perceptual, rtol=1e-4)
    assert perceptual > 0
    np.testing.assert_allclose(terms["generator_loss"], adversarial + 0.7 * perceptual, rtol=1e-4)
    np.testing.assert_allclose(terms["d_loss"], d_loss, rtol=1e-4)
    np.testing.assert_allclose(terms["d_accuracy"], accuracy, atol=1e-6)


@pytest.mark.portable
def test_perceptual_term_is_zero_for_identical_images_and_gamma_zero_removes_it():
    model = tiny_stage2(perceptual_weight=1.0)
    images = batch()["images"]
    assert float(np_(model.perceptual_distance(images, images))) == 0.0
    assert float(np_(model.perceptual_distance(images, images[::-1]))) > 0.0
    for with_features in (True, False):
        off = tiny_stage2(perceptual_weight=0.0, with_features=with_features)
        terms = off.compute_terms(**batch(), training=False)
        assert float(np_(terms["perceptual"])) == 0.0
        np.testing.assert_array_equal(np_(terms["generator_loss"]), np_(terms["g_adv"]))


@pytest.mark.portable
@pytest.mark.parametrize("input_size, output_size, downsamplings, upsampling, geometry", [
    (32, 64, 2, "nearest", (32, 3)),
    pytest.param(64, 128, 2, "nearest", (64, 3), marks=pytest.mark.tensorflow_variant),
    pytest.param(64, 128, 1, "nearest", (64, 2), marks=pytest.mark.tensorflow_variant),
    pytest.param(64, 128, 2, "deconv", (64, 3), marks=pytest.mark.tensorflow_variant),
    pytest.param(64, 224, 2, "nearest", (56, 4), marks=pytest.mark.tensorflow_variant),
    (64, 224, 2, "deconv", (56, 4)),  # JAX: one nearest and one deconv generator (tests/conftest.py)
])
def test_generator_and_discriminator_shapes(input_size, output_size, downsamplings, upsampling,
                                            geometry):
    assert generator_geometry(input_size, output_size, downsamplings) == geometry
    generator = networks.build_stage2_generator(input_size, output_size, base_channels=4,
                                                residual_blocks=1, downsamplings=downsamplings,
                                                upsampling=upsampling)
    discriminator = networks.build_stage2_discriminator(output_size, base_channels=2)
    x = np.random.default_rng(0).uniform(-1, 1, (2, input_size, input_size, 3)).astype("float32")
    y = np_(generator(x))
    assert y.shape == (2, output_size, output_size, 3) and np.all(np.abs(y) <= 1)
    assert tuple(discriminator(y.astype("float32")).shape) == (2, 1)
    # Up-sampling layers: nearest + conv, or transposed convs (the supplement's CelebA crVAE-GAN).
    names = [layer.name for layer in generator.layers]
    assert sum(n.endswith("_deconv") for n in names) == (geometry[1] if upsampling == "deconv"
                                                         else 0)
    strided = [layer for layer in generator.layers if getattr(layer, "strides", (1, 1)) == (2, 2)
               and isinstance(layer, keras.layers.Conv2D)
               and not isinstance(layer, keras.layers.Conv2DTranspose)]
    assert len(strided) == downsamplings


@pytest.mark.portable
def test_stage2_model_sizes_and_sampling():
    for input_size, output_size in ((32, 64), (64, 128)):
        model = tiny_stage2(input_size, output_size, with_features=False)
        assert model.image_shape == (output_size, output_size, 3)
        assert tuple(model.sample(2, seed=0).shape) == (2, output_size, output_size, 3)
        low = np.zeros((2, 64, 64, 3), "float32")
        assert tuple(model.super_resolve(low).shape) == (2, output_size, output_size, 3)
        high = np.zeros((2, output_size, output_size, 3), "float32")
        assert tuple(model.reconstruct(high).shape) == (2, output_size, output_size, 3)
    with pytest.raises(ValueError, match="Stage2 needs 4 <= input_size < output_size"):
        networks.build_stage2_generator(64, 64, base_channels=4)
    with pytest.raises(ValueError, match="`upsampling` must be one of"):
        networks.build_stage2_generator(32, 64, base_channels=4, upsampling="bicubic")


def _weights(layer):
    return [np.array(w) for w in layer.get_weights()]


@pytest.mark.parametrize("threshold", [1.0, 0.01])
def test_one_train_step_moves_generator_and_discriminator_not_stage1(threshold):
    model = tiny_stage2()
    # Eager: one step costs less than tracing it (the same train_step code runs either way).
    model.compile(MultiplierAdam(1e-3), ThresholdedAdam(1e-3, threshold=threshold),
                  run_eagerly=True)
    before = {name: _weights(getattr(model, name)) for name in ("generator", "discriminator")}
    stage1_before = _weights(model.stage1)
    features_before = _weights(model.perceptual_network)
    logs = model.train_on_batch(batch(), return_dict=True)
    assert all(np.isfinite(v) for v in logs.values())
    moved = lambda name: any(not np.array_equal(a, b) for a, b in zip(  # noqa: E731
        before[name], _weights(getattr(model, name))))
    assert moved("generator")
    if threshold == 1.0:
        assert logs["d_updated"] == 1.0 and moved("discriminator")
    else:  # more than 1% accurate: skipped, an exact no-op (BatchNorm statistics included)
        assert logs["d_updated"] == 0.0 and not moved("discriminator")
    assert all(np.array_equal(a, b) for a, b in zip(stage1_before, _weights(model.stage1)))
    assert all(np.array_equal(a, b) for a, b in zip(features_before,
                                                    _weights(model.perceptual_network)))
    assert not model.stage1.trainable_variables and not model.perceptual_network.trainable_variables


def test_keras_round_trip_and_savedmodel_sample_signature(tmp_path):
    import tensorflow as tf

    from keras_crvae import export

    model = tiny_stage2()
    model.compile()
    model.train_on_batch(batch(), return_dict=True)
    path = tmp_path / "stage2.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, Stage2) and loaded.perceptual_weight == 1.0
    z = np.random.default_rng(1).normal(size=(2,) + LATENT).astype("float32")
    np.testing.assert_allclose(np_(loaded.decode(z)), np_(model.decode(z)), atol=1e-6)
    terms, loaded_terms = (m.compute_terms(**batch(seed=2)) for m in (model, loaded))
    np.testing.assert_allclose(np_(loaded_terms["generator_loss"]),
                               np_(terms["generator_loss"]), rtol=1e-5)
    assert loaded.generator_optimizer is not None

    directory = export.export_saved_model(model, tmp_path / "serving")
    served = tf.saved_model.load(directory).signatures["sample"](z=tf.constant(z))
    assert tuple(served["images"].shape) == (2, 64, 64, 3)
    np.testing.assert_allclose(served["images"].numpy(), np_(model.decode(z)), atol=1e-5)


@pytest.mark.portable
def test_perceptual_weights_from_a_file_and_a_clear_error_when_the_download_fails(tmp_path,
                                                                                  monkeypatch):
    keras.utils.set_random_seed(0)
    full = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = str(tmp_path / "vgg16_notop.weights.h5")
    full.save_weights(path)
    features = networks.build_perceptual_network("vgg16", image_size=32, weights=path)
    np.testing.assert_array_equal(features.get_layer("block1_conv1").get_weights()[0],
                                  full.get_layer("block1_conv1").get_weights()[0])
    assert features.output_shape == (None, 16, 16, 128) and not features.trainable_variables

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    import keras.src.applications.vgg16 as vgg16_module

    monkeypatch.setattr(vgg16_module.file_utils, "get_file", offline)
    with pytest.raises(perceptual_module.PerceptualWeightsError,
                       match="pass its path as weights=PATH"):
        networks.build_perceptual_network("vgg16", image_size=32, weights="imagenet")
    with pytest.raises(ValueError, match="no such file"):
        networks.build_perceptual_network("vgg16", image_size=32, weights=str(tmp_path / "x.h5"))
    with pytest.raises(ValueError, match="not a layer of VGG16"):
        networks.build_perceptual_network("vgg16", layer="relu9", image_size=32, weights=None)


@pytest.mark.portable
def test_presets_build_the_supplement_variants():
    tiny = dict(generator_channels=4, residual_blocks=1, discriminator_channels=2,
                stage1_base_channels=2, stage1_discriminator_channels=2,
                perceptual_weights="none", compile=False)
    crvae = keras_crvae.from_preset("celeba_crvae_gan_stage2", **tiny)
    assert crvae.output_size == 128 and crvae.perceptual_weight == 1.0
    assert any(layer.name.endswith("_deconv") for layer in crvae.generator.layers)
    vae = keras_crvae.from_preset("celeba_vae_gan_stage2", input_size=32, output_size=64, **tiny)
    assert vae.image_shape == (64, 64, 3) and vae.input_size == 32
    assert not any(layer.name.endswith("_deconv") for layer in vae.generator.layers)
    preset = keras_crvae.get_preset("lsun_crvae_gan_stage2")
    assert preset.network["output_size"] == 224 and preset.model["perceptual_weight"] == 10.0
    assert preset.network["perceptual_network"] == "resnet50"
    assert keras_crvae.get_preset("birds_vae_gan_stage2").training.learning_rate == 2e-4
    no_features = keras_crvae.from_preset("birds_vae_gan_stage2", perceptual_weight=0.0,
                                          **dict(tiny, perceptual_weights="imagenet"))
    assert no_features.perceptual_network is None  # gamma = 0: nothing built or downloaded
    assert math.isclose(no_features.perceptual_weight, 0.0)


@pytest.mark.portable
def test_completion_runs_at_the_output_size():
    from keras_crvae import completion

    model = tiny_stage2(with_features=False)
    images = batch()["images"][:2]
    result = completion.complete(model, images, "centre", steps=2)
    assert result.decoded.shape == (2, 64, 64, 3) and result.adversarial_weight == 0.003
    observed = np.broadcast_to(result.mask, images.shape) == 1
    np.testing.assert_array_equal(result.completed[observed], images[observed])
    assert model.generator.trainable and not model.stage1.trainable
    assert not model.stage1.decoder.trainable and not model.stage1.trainable_variables
