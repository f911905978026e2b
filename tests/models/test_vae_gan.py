"""VAEGAN / CRVAEGAN: the supplement's objective by hand, one train step, skipped D steps, save/load."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae import networks
from keras_crvae.models import CRVAEGAN, VAEGAN, discriminator_batch_masks
from keras_crvae.optimizers import MultiplierAdam, ThresholdedAdam

LATENT = (4, 4, 8)
BATCH = 8


def build(kind="recurrent", dropout_rate=0.0, spectral_norm=True, **model_kwargs):
    keras.utils.set_random_seed(3)
    encoder = networks.build_image64_encoder(kind, base_channels=4, latent_channels=8)
    decoder = networks.build_image64_decoder(kind, base_channels=4, latent_channels=8)
    discriminator = networks.build_image64_discriminator(
        base_channels=4, latent_channels=8 if kind == "recurrent" else None,
        dropout_rate=dropout_rate, minibatch_kernels=3, spectral_norm=spectral_norm)
    cls = CRVAEGAN if kind == "recurrent" else VAEGAN
    return cls(encoder, decoder, discriminator, seed=0, **model_kwargs)


def batch(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "images": rng.uniform(-1, 1, (BATCH, 64, 64, 3)).astype("float32"),
        "posterior_noise": rng.normal(size=(BATCH,) + LATENT).astype("float32"),
        "prior_noise": rng.normal(size=(BATCH,) + LATENT).astype("float32"),
    }


def numpy_bce(logits, labels):
    probabilities = 1 / (1 + np.exp(-logits.astype("float64")))
    return -(labels * np.log(probabilities) + (1 - labels) * np.log(1 - probabilities))


def to_numpy(values):
    return [ops.convert_to_numpy(v).astype("float64") for v in keras.tree.flatten(values)]


@pytest.mark.portable
def test_discriminator_batch_is_half_real_quarter_prior_quarter_reconstructions():
    is_prior, is_reconstruction = (ops.convert_to_numpy(m) for m in discriminator_batch_masks(64))
    assert is_prior.sum() == 16 and is_reconstruction.sum() == 16
    assert not np.any(is_prior & is_reconstruction)
    np.testing.assert_array_equal(np.flatnonzero(is_prior)[:3], [2, 6, 10])
    np.testing.assert_array_equal(np.flatnonzero(is_reconstruction)[:3], [3, 7, 11])


@pytest.mark.portable
@pytest.mark.parametrize("swap", [False, True])
def test_loss_terms_match_a_hand_computation(swap):
    kl_weight = [3e-4, 3e-4, 3e-4, 2e-4, 2e-4, 2e-4, 2e-4, 2e-4]
    mi_block_weights = [0.1, 1.5, 1.5, 1.25, 0.1, 0.1, 1.0, 1.0]
    model = build(kl_weight=kl_weight, adversarial_weight=0.01, mi_weight=0.02,
                  mi_block_weights=mi_block_weights, swap_prior_pass_weights=swap)
    data = batch()
    terms = {k: ops.convert_to_numpy(v) for k, v in model.compute_terms(**data).items()}

    x = data["images"].astype("float64")
    mean, log_var = to_numpy(model.encoder(data["images"], training=False))
    z = mean + np.exp(0.5 * log_var) * data["posterior_noise"]
    recon, u_recon = to_numpy(model.generator(z.astype("float32"), training=False))
    prior, u_prior = to_numpy(model.generator(data["prior_noise"], training=False))
    logits_recon, q_recon = to_numpy(model.discriminator(recon.astype("float32"), training=False))
    logits_prior, q_prior = to_numpy(model.discriminator(prior.astype("float32"), training=False))

    recon_loss = np.mean((recon - x) ** 2)  # averaged over B*C*H*W
    kl_elements = 0.5 * (np.exp(log_var) + mean ** 2 - 1 - log_var)
    block_weight = np.asarray(kl_weight)  # Z = T = 8: channel c is block c
    kl_weighted = np.sum(kl_elements * block_weight, axis=(1, 2, 3)).mean()  # averaged over B only
    adv_recon = numpy_bce(logits_recon, 1).mean()
    adv_prior = numpy_bce(logits_prior, 1).mean()
    mi_weights = np.asarray(mi_block_weights)
    mi_recon = np.mean((q_recon - u_recon) ** 2 * mi_weights)
    mi_prior = np.mean((q_prior - u_prior) ** 2 * mi_weights)
    if swap:  # the reference's prior pass swaps beta and kappa
        generator = recon_loss + kl_weighted + 0.01 * adv_recon + 0.02 * adv_prior \
            + 0.02 * mi_recon + 0.01 * mi_prior
    else:
        generator = recon_loss + kl_weighted + 0.01 * (adv_recon + adv_prior) \
            + 0.02 * (mi_recon + mi_prior)

    # D batch by position: 0,1 real; 2 prior sample; 3 reconstruction; repeat.
    mixed = np.stack([[x, x, prior, recon][i % 4][i] for i in range(BATCH)])
    labels = np.array([[1.0], [1.0], [0.0], [0.0]] * (BATCH // 4))
    logits_mixed, _ = to_numpy(model.discriminator(mixed.astype("float32"), training=False))

    np.testing.assert_allclose(terms["recon"], recon_loss, rtol=1e-5)
    # KL near 0 at initialisation: float32 cancellation in exp(v) - 1 - v bounds the accuracy.
    np.testing.assert_allclose(terms["kl"], kl_elements.sum(axis=(1, 2, 3)).mean(), rtol=1e-3)
    np.testing.assert_allclose(terms["kl_weighted"], kl_weighted, rtol=1e-3)
    np.testing.assert_allclose(terms["kl_blocks"], kl_elements.sum(axis=(1, 2)).mean(0), rtol=1e-3)
    np.testing.assert_allclose(terms["g_adv"], adv_recon + adv_prior, rtol=1e-5)
    np.testing.assert_allclose(terms["mi"], mi_recon + mi_prior, rtol=1e-5)
    np.testing.assert_allclose(terms["generator_loss"], generator, rtol=1e-5)
    np.testing.assert_allclose(terms["d_loss"], numpy_bce(logits_mixed, labels).mean(), rtol=1e-5)
    np.testing.assert_allclose(terms["discriminator_loss"], terms["d_loss"] + terms["mi"],
                               rtol=1e-6)
    assert terms["d_correct"] == np.sum((logits_mixed > 0) == (labels > 0.5))


def values(variables):
    return [ops.convert_to_numpy(v).copy() for v in variables]


def changed(before, variables):
    return [not np.array_equal(b, ops.convert_to_numpy(v)) for b, v in zip(before, variables)]


def test_one_train_step_updates_generator_and_discriminator():
    model = build(dropout_rate=0.5)
    model.compile(MultiplierAdam(1e-3), ThresholdedAdam(1e-3, threshold=1.0))
    encoder, decoder = values(model.encoder.trainable_variables), values(
        model.generator.trainable_variables)
    discriminator = values(model.discriminator.trainable_variables)
    logs = model.train_on_batch(batch(), return_dict=True)
    assert logs["d_updated"] == 1.0
    assert all(changed(encoder, model.encoder.trainable_variables))
    assert all(changed(decoder, model.generator.trainable_variables))
    assert all(changed(discriminator, model.discriminator.trainable_variables))
    for name in ("loss", "recon", "kl", "g_adv", "mi", "d_loss", "d_accuracy", "kl_block_0"):
        assert np.isfinite(logs[name]), name


@pytest.mark.parametrize("kind", ["recurrent", "dense"])
def test_the_weights_list_is_the_same_before_and_after_training(kind):
    """A weights-only state (`keras_crvae.io.save_weights_npz`: arrays in `model.weights` order)
    written after training must load into a freshly built model: training creates no variable of
    the model's own (the optimizers' live apart) and reorders none."""
    model = build(kind)
    # Eager: one step, nothing to trace.
    model.compile(MultiplierAdam(1e-3), ThresholdedAdam(1e-3), run_eagerly=True)
    before = [variable.path for variable in model.weights]
    model.train_on_batch(batch())
    assert [variable.path for variable in model.weights] == before
    assert len(before) == len(build(kind).weights)


def test_skipped_discriminator_step_is_an_exact_no_op():
    # Compiled (tf.function) on purpose: the snapshot/restore must survive graph ordering.
    model = build("dense", dropout_rate=0.5)
    # Any accuracy above 1e-6 skips: the discriminator must keep every bit of its state.
    model.compile(MultiplierAdam(1e-3), ThresholdedAdam(1e-3, threshold=1e-6))
    model.train_on_batch(batch(0))  # builds the train function and the optimizer slots
    state = model.discriminator.variables + model.discriminator_optimizer.variables
    before = values(state)
    generator = values(model.generator.trainable_variables)
    logs = model.train_on_batch(batch(1), return_dict=True)
    assert logs["d_accuracy"] > 1e-6 and logs["d_updated"] == 0.0
    assert not any(changed(before, state))
    assert all(changed(generator, model.generator.trainable_variables))


def test_save_load_keeps_training_with_optimizer_states(tmp_path):
    model = build()
    # Eager steps: tracing two train functions of the recurrent model costs ~1 min of CPU.
    model.compile(MultiplierAdam(1e-3), ThresholdedAdam(1e-3, threshold=1.0, warmup=((2, 0.1),)),
                  run_eagerly=True)
    model.fit(batch(0), epochs=1, verbose=0)
    path = tmp_path / "gan.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    loaded.run_eagerly = True
    assert isinstance(loaded, CRVAEGAN)
    assert isinstance(loaded.discriminator_optimizer, ThresholdedAdam)
    assert loaded.discriminator_optimizer.warmup == ((2, 0.1),)
    for a, b in zip(model.generator_optimizer.variables + model.discriminator_optimizer.variables,
                    loaded.generator_optimizer.variables + loaded.discriminator_optimizer.variables):
        np.testing.assert_array_equal(ops.convert_to_numpy(a), ops.convert_to_numpy(b))
    # The same next step from the original and the reloaded model (explicit noise, no dropout).
    next_batch = batch(1)
    logs = model.train_on_batch(next_batch, return_dict=True)
    loaded_logs = loaded.train_on_batch(next_batch, return_dict=True)
    for name in ("loss", "d_loss", "mi"):
        np.testing.assert_allclose(loaded_logs[name], logs[name], rtol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(loaded.decode(np.ones((2,) + LATENT, "float32"))),
                               ops.convert_to_numpy(model.decode(np.ones((2,) + LATENT, "float32"))),
                               atol=1e-5)


@pytest.mark.portable
def test_api_contract_and_errors():
    model = build("dense")
    images = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype("float32")
    mean, log_var = model.encode(images)
    assert tuple(mean.shape) == (2,) + LATENT == tuple(log_var.shape)
    samples = ops.convert_to_numpy(model.sample(3, seed=1))
    assert samples.shape == (3, 64, 64, 3) and samples.min() >= -1 and samples.max() <= 1
    assert tuple(model.reconstruct(images).shape) == (2, 64, 64, 3)
    assert model.image_range == (-1.0, 1.0) and model.decoder_outputs == "images"
    with pytest.raises(ValueError, match=r"\[-1.0, 1.0\]"):
        model.encode(images * 3)
    with pytest.raises(ValueError, match="mi_weight"):
        build("dense", mi_weight=0.1)
    with pytest.raises(ValueError, match="divisible by 4"):
        model._check_batch(ops.zeros((6, 64, 64, 3)))


@pytest.mark.portable
def test_recalibrate_batch_norm_averages_encoder_and_prior_pass_statistics():
    """The encoder's first BatchNorm holds the average statistics of its input over the chosen
    image batches, the generator's first over the prior batches (the method's draws, replayed);
    the discriminator (never called), the trainable weights and the momenta are untouched."""
    from keras_crvae.layers import batch_norm_layers

    model = build("dense")
    images = np.random.default_rng(1).uniform(-1, 1, (20, 64, 64, 3)).astype("float32")
    untouched = to_numpy(model.discriminator.variables) + to_numpy(model.trainable_variables)
    momenta = [norm.momentum for norm in batch_norm_layers(model)]
    count = model.recalibrate_batch_norm(images, batch_size=8, num_batches=5, seed=4)
    assert count == len(batch_norm_layers(model.encoder)) + len(batch_norm_layers(model.generator))
    for before, after in zip(untouched, to_numpy(model.discriminator.variables)
                             + to_numpy(model.trainable_variables)):
        np.testing.assert_array_equal(before, after)
    assert [norm.momentum for norm in batch_norm_layers(model)] == momenta

    rng = np.random.default_rng(4)
    order = rng.permutation(20)[:16]  # two full batches of 8 (num_batches=5 asks for more)
    image_batches = [images[order[:8]], images[order[8:]]]
    latent_batches = [rng.standard_normal((8,) + LATENT).astype("float32") for _ in range(2)]
    for network, batches in ((model.encoder, image_batches), (model.generator, latent_batches)):
        norm = batch_norm_layers(network)[0]
        features = keras.Model(network.input, norm.input)
        values = [ops.convert_to_numpy(features(b)).astype("float64") for b in batches]
        axes = tuple(range(values[0].ndim - 1))
        np.testing.assert_allclose(ops.convert_to_numpy(norm.moving_mean),
                                   np.mean([v.mean(axes) for v in values], 0), rtol=1e-4,
                                   atol=1e-5)
        np.testing.assert_allclose(ops.convert_to_numpy(norm.moving_variance),
                                   np.mean([v.var(axes) for v in values], 0), rtol=1e-3,
                                   atol=1e-5)
    with pytest.raises(ValueError, match="at least one batch of 8"):
        model.recalibrate_batch_norm(images[:7], batch_size=8)
    with pytest.raises(ValueError, match="num_batches"):
        model.recalibrate_batch_norm(images, num_batches=0)
