"""GAN / InfoGAN: critic steps counted, the right variables move, clipping, the InfoGAN MI term by hand,
`.keras` round trips, SavedModel `sample`; VAEGAN / CRVAEGAN with the WGAN-GP objective."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae import networks
from keras_crvae.models import CRVAEGAN, GAN, InfoGAN
from keras_crvae.models.infogan import code_log_likelihood
from keras_crvae.optimizers import ThresholdedAdam

SHAPE = (28, 28, 1)


def build_gan(adversarial_loss="bce", critic_steps=1, norm="batch", latent_dim=8, **kwargs):
    keras.utils.set_random_seed(1)
    generator = networks.build_dcgan_generator(SHAPE, latent_dim, base_channels=4)
    discriminator = networks.build_dcgan_discriminator(SHAPE, base_channels=4, norm=norm)
    model = GAN(generator, discriminator, adversarial_loss=adversarial_loss,
                critic_steps=critic_steps, seed=2, **kwargs)
    return model


def build_infogan(**kwargs):
    keras.utils.set_random_seed(1)
    generator = networks.build_dcgan_generator(SHAPE, 6 + 10 + 2, base_channels=4, hidden_units=8)
    discriminator = networks.build_dcgan_discriminator(SHAPE, base_channels=4, hidden_units=8,
                                                       q_units=12, q_hidden_units=8)
    return InfoGAN(generator, discriminator, noise_dim=6, seed=2, **kwargs)


def images(count, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (count,) + SHAPE).astype("float32")


def weights(variables):
    return [np.array(ops.convert_to_numpy(v)) for v in variables]


def changed(before, variables):
    return max(float(np.max(np.abs(a - b))) for a, b in zip(before, weights(variables)))


def test_networks_follow_the_dcgan_rules():
    generator = networks.build_dcgan_generator((64, 64, 3), 100, base_channels=4)
    discriminator = networks.build_dcgan_discriminator((64, 64, 3), base_channels=4)
    assert generator.output_shape == (None, 64, 64, 3)
    assert [layer.strides for layer in generator.layers
            if isinstance(layer, keras.layers.Conv2DTranspose)] == [(2, 2)] * 4
    # No BatchNorm on G's output nor on D's input layer; tanh output; LeakyReLU 0.2 in D.
    assert generator.layers[-1].activation.__name__ == "tanh"
    assert not isinstance(generator.layers[-2], keras.layers.BatchNormalization)
    assert isinstance(discriminator.layers[2], keras.layers.LeakyReLU)
    assert discriminator.output_shape[0] == (None, 1)
    slopes = {layer.negative_slope for layer in discriminator.layers
              if isinstance(layer, keras.layers.LeakyReLU)}
    assert slopes == {0.2}


def test_sub_batches_interleave_rows():
    model = build_gan("wgan_gp", critic_steps=3, norm="layer")
    batch = np.arange(6, dtype="float32")[:, None, None, None] * np.ones((1,) + SHAPE, "float32")
    parts = [ops.convert_to_numpy(part)[:, 0, 0, 0] for part in model._sub_batches(batch)]
    np.testing.assert_array_equal(parts, [[0, 3], [1, 4], [2, 5]])


def test_critic_steps_are_counted_and_the_penalty_reported():
    model = build_gan("wgan_gp", critic_steps=3, norm="layer")
    model.compile()
    history = model.fit(images(12), batch_size=6, epochs=1, verbose=0, shuffle=False)
    assert int(model.generator_optimizer.iterations) == 2
    assert int(model.discriminator_optimizer.iterations) == 6  # 3 per generator step
    assert history.history["gp"][-1] > 0 and np.isfinite(history.history["loss"][-1])
    with pytest.raises(ValueError, match="critic_steps"):
        model.train_on_batch(images(4))


@pytest.mark.parametrize("player", ["generator", "discriminator"])
def test_one_step_moves_only_the_trained_players_variables(player):
    # Freezing one player (learning rate 0) shows that the other's gradient does not reach it.
    model = build_gan("bce")
    frozen = keras.optimizers.Adam(0.0)
    moving = keras.optimizers.Adam(0.01)
    if player == "generator":
        model.compile(moving, frozen, run_eagerly=True)
    else:
        model.compile(frozen, moving, run_eagerly=True)
    g_before = weights(model.generator.trainable_variables)
    d_before = weights(model.discriminator.trainable_variables)
    model.train_on_batch(images(8))
    g_change = changed(g_before, model.generator.trainable_variables)
    d_change = changed(d_before, model.discriminator.trainable_variables)
    if player == "generator":
        assert g_change > 1e-4 and d_change == 0.0
    else:
        assert d_change > 1e-4 and g_change == 0.0


def test_wgan_clipping_bounds_every_critic_weight():
    model = build_gan("wgan", critic_steps=2, clip_value=0.01)
    model.compile(keras.optimizers.RMSprop(0.05), keras.optimizers.RMSprop(0.05), run_eagerly=True)
    model.train_on_batch(images(8))
    for variable in model.discriminator.trainable_variables:
        values = ops.convert_to_numpy(variable)
        assert np.abs(values).max() <= 0.01 + 1e-7, variable.path
    assert max(np.abs(ops.convert_to_numpy(v)).max()
               for v in model.discriminator.trainable_variables) == pytest.approx(0.01)


def test_improved_techniques_switches_train():
    model = build_gan("bce", label_smoothing=0.1, feature_matching=1.0, historical_averaging=0.1)
    model.compile(run_eagerly=True)
    model.train_on_batch(images(8))
    model.train_on_batch(images(8, seed=1))
    # After two steps the historical mean is the mean of the two updated parameter values.
    assert float(model.generator_history.count) == 2.0
    assert np.isfinite(model.evaluate(images(8), batch_size=8, verbose=0, return_dict=True)["loss"])


@pytest.mark.portable
def test_infogan_mi_term_is_the_log_likelihood_of_the_sampled_codes():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(5, 12)).astype("float32")
    categories = rng.integers(10, size=5)
    continuous = rng.uniform(-1, 1, (5, 2)).astype("float32")
    logits, means = q[:, :10].astype("float64"), q[:, 10:].astype("float64")
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    categorical = log_softmax[np.arange(5), categories]
    gaussian = (-0.5 * (continuous - means) ** 2 - 0.5 * np.log(2 * np.pi)).sum(-1)
    total, got_categorical = code_log_likelihood(q, categories, continuous, 10)
    np.testing.assert_allclose(ops.convert_to_numpy(total), categorical + gaussian, rtol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(got_categorical), categorical, rtol=1e-5)

    model = build_infogan(mi_weight=0.5)
    loss, mi = model.code_loss(ops.convert_to_tensor(q), (categories, continuous))
    assert float(loss) == pytest.approx(-0.5 * (categorical + gaussian).mean(), rel=1e-5)
    assert float(mi) == pytest.approx(math.log(10) + categorical.mean(), rel=1e-5)


@pytest.mark.portable
def test_infogan_latents_hold_their_codes():
    model = build_infogan()
    latents, (categories, continuous) = model.draw_latents(64)
    latents = ops.convert_to_numpy(latents)
    np.testing.assert_array_equal(np.argmax(latents[:, 6:16], -1), ops.convert_to_numpy(categories))
    assert latents[:, 6:16].sum() == 64
    np.testing.assert_allclose(latents[:, 16:], ops.convert_to_numpy(continuous))
    assert np.abs(latents[:, 16:]).max() <= 1.0
    grid = model.traversal_latents(0, [-2.0, 0.0, 2.0], rows=4)
    assert grid.shape == (12, 18)
    np.testing.assert_array_equal(grid[:3, 16], [-2.0, 0.0, 2.0])
    np.testing.assert_array_equal(grid[0, :6], grid[2, :6])  # one noise vector per row


def test_gan_and_infogan_keras_round_trips(tmp_path):
    for model in (build_gan("wgan_gp", critic_steps=2, norm="layer", historical_averaging=0.1),
                  build_infogan()):
        model.compile(run_eagerly=True)
        model.train_on_batch(images(8))
        path = str(tmp_path / f"{model.name}.keras")
        model.save(path)
        restored = keras.saving.load_model(path)
        assert type(restored) is type(model)
        networks_ = ("generator", "discriminator")
        assert ({k: v for k, v in restored.get_config().items() if k not in networks_}
                == {k: v for k, v in model.get_config().items() if k not in networks_})
        latents = model.prior_latents(3, seed=4)
        np.testing.assert_allclose(ops.convert_to_numpy(restored.decode(latents)),
                                   ops.convert_to_numpy(model.decode(latents)), atol=1e-6)
        assert int(restored.discriminator_optimizer.iterations) == int(
            model.discriminator_optimizer.iterations)
        restored.train_on_batch(images(8))  # keeps training from the restored optimizer states


def test_generator_only_saved_model_has_a_sample_signature(tmp_path):
    import tensorflow as tf

    from keras_crvae.export import export_saved_model, read_metadata

    model = build_infogan()
    directory = export_saved_model(model, str(tmp_path / "serving"))
    loaded = tf.saved_model.load(directory)
    assert sorted(loaded.signatures) == ["decode", "sample", "serving_default"]
    latents = model.prior_latents(2, seed=0)
    served = loaded.signatures["sample"](z=tf.constant(latents))
    np.testing.assert_allclose(served["images"].numpy(), ops.convert_to_numpy(model.decode(latents)),
                               atol=1e-5)
    assert served["images_uint8"].dtype == tf.uint8
    assert sorted(read_metadata(directory)["signatures"]) == ["decode", "sample",
                                                              "serving_default"]


def test_crvaegan_with_wgan_gp_critic_steps_and_mi_head(tmp_path):
    keras.utils.set_random_seed(3)
    encoder = networks.build_image64_encoder("recurrent", base_channels=4, latent_channels=8)
    decoder = networks.build_image64_decoder("recurrent", base_channels=4, latent_channels=8)
    discriminator = networks.build_image64_discriminator(base_channels=4, latent_channels=8,
                                                         dropout_rate=0.0, minibatch_kernels=0)
    model = CRVAEGAN(encoder, decoder, discriminator, kl_weight=[3e-4, 2e-4],
                     adversarial_loss="wgan_gp", critic_steps=2, historical_averaging=0.1,
                     seed=0)
    # A threshold every batch exceeds: "bce" would skip; the WGAN critic updates anyway.
    model.compile(discriminator_optimizer=ThresholdedAdam(1e-3, threshold=1e-6),
                  run_eagerly=True)  # one step: eager is faster than tracing it
    batch = np.random.default_rng(0).uniform(-1, 1, (8, 64, 64, 3)).astype("float32")
    logs = model.train_on_batch(batch, return_dict=True)
    assert int(model.discriminator_optimizer.iterations) == 2
    assert int(model.generator_optimizer.iterations) == 1
    assert logs["d_updated"] == 1.0 and logs["gp"] > 0 and logs["mi"] > 0
    assert all(np.isfinite(value) for value in logs.values())
    model.save(tmp_path / "crvaegan.keras")
    restored = keras.saving.load_model(tmp_path / "crvaegan.keras")
    assert restored.adversarial_options == model.adversarial_options
    assert float(restored.discriminator_history.count) == 2.0  # the running means were saved
    np.testing.assert_allclose(ops.convert_to_numpy(restored.reconstruct(batch)),
                               ops.convert_to_numpy(model.reconstruct(batch)), atol=1e-5)


@pytest.mark.portable
@pytest.mark.parametrize("objective,smoothing", [
    ("bce", 0.1), pytest.param("hinge", 0.0, marks=pytest.mark.tensorflow_variant)])
def test_vaegan_objectives_on_the_interleaved_batch_match_numpy(objective, smoothing):
    from keras_crvae.models import VAEGAN

    keras.utils.set_random_seed(3)
    encoder = networks.build_image64_encoder("dense", base_channels=4, latent_channels=8)
    decoder = networks.build_image64_decoder("dense", base_channels=4, latent_channels=8)
    discriminator = networks.build_image64_discriminator(base_channels=4, dropout_rate=0.0,
                                                         minibatch_kernels=0)
    model = VAEGAN(encoder, decoder, discriminator, adversarial_loss=objective,
                   label_smoothing=smoothing, seed=0)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (8, 64, 64, 3)).astype("float32")
    noise = [rng.normal(size=(8, 4, 4, 8)).astype("float32") for _ in range(2)]
    terms = model.compute_terms(x, *noise)

    def run(network, inputs):
        return ops.convert_to_numpy(network(inputs, training=False)).astype("float64")

    mean, log_var = (ops.convert_to_numpy(t) for t in encoder(x, training=False))
    recon = run(decoder, (mean + np.exp(0.5 * log_var) * noise[0]).astype("float32"))
    prior = run(decoder, noise[1])
    mixed = np.stack([[x, x, prior, recon][i % 4][i] for i in range(8)]).astype("float32")
    logits = run(discriminator, mixed)[:, 0]
    real, fake = logits[np.arange(8) % 4 < 2], logits[np.arange(8) % 4 >= 2]
    fake_scores = np.concatenate([run(discriminator, recon.astype("float32"))[:, 0],
                                  run(discriminator, prior.astype("float32"))[:, 0]])

    def softplus(v):
        return np.log1p(np.exp(v))

    if objective == "bce":  # the reference's mean over the whole D batch, reals' target 1 - s
        targets = np.where(np.arange(8) % 4 < 2, 1 - smoothing, 0.0)
        d_loss = np.mean(softplus(logits) - targets * logits)
        g_adv = softplus(-fake_scores[:8]).mean() + softplus(-fake_scores[8:]).mean()
    else:
        d_loss = (fake.mean() - real.mean() if objective == "wgan" else
                  np.maximum(0, 1 - real).mean() + np.maximum(0, 1 + fake).mean())
        g_adv = -fake_scores[:8].mean() - fake_scores[8:].mean()
    np.testing.assert_allclose(float(terms["d_loss"]), d_loss, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(terms["g_adv"]), g_adv, rtol=1e-4, atol=1e-6)
