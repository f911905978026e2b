"""HierarchicalVAE: the ELBO and IWAE bound against a NumPy hand computation, presets, save/load,
export of the top latent, and clear errors for networks or inputs that do not fit."""

import math

import keras
import numpy as np
import pytest

from keras_crvae import evaluation, presets
from keras_crvae.models import HierarchicalVAE
from keras_crvae.networks import mlp

IMAGE_SHAPE = (2, 3, 1)  # 6 pixels keep the hand computation readable
Z1, Z2 = 4, 3


def _networks(inference, seed=0, hidden=(5,)):
    keras.utils.set_random_seed(seed)
    top_input = IMAGE_SHAPE if inference == "factorized" else Z1
    return (mlp.build_mlp_gaussian(IMAGE_SHAPE, Z1, hidden, name="encoder"),
            mlp.build_mlp_gaussian(top_input, Z2, hidden, name="top_encoder"),
            mlp.build_mlp_gaussian(Z2, Z1, hidden, name="top_decoder"),
            mlp.build_mlp_bernoulli_decoder(Z1, hidden, image_shape=IMAGE_SHAPE, name="decoder"))


def _model(inference="bottom_up", **kwargs):
    kwargs.setdefault("reconstruction_reduction", "sum")
    return HierarchicalVAE(*_networks(inference), inference=inference, seed=0, **kwargs)


def _images(batch=3, seed=0):
    return (np.random.default_rng(seed).random((batch,) + IMAGE_SHAPE) < 0.5).astype("float32")


def _noise(num_samples, batch, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((num_samples, batch, Z1)).astype("float32"),
            rng.standard_normal((num_samples, batch, Z2)).astype("float32")]


# --- a NumPy re-implementation of the networks and densities ----------------------------------------


def _np_gaussian(network, inputs):
    """`[mean, log_var]` of a `build_mlp_gaussian` network, computed from its weights."""
    x = inputs.reshape(len(inputs), -1).astype(np.float64)
    for layer in network.layers:
        if isinstance(layer, keras.layers.Dense) and "hidden" in layer.name:
            kernel, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
            x = np.tanh(x @ kernel + bias)
    heads = {}
    for layer in network.layers:
        if isinstance(layer, keras.layers.Dense) and layer.name.endswith(("_mean", "_log_var")):
            kernel, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
            heads["mean" if layer.name.endswith("_mean") else "log_var"] = x @ kernel + bias
    return heads["mean"], heads["log_var"]


def _np_logits(decoder, z1):
    x = z1.astype(np.float64)
    for layer in decoder.layers:
        if isinstance(layer, keras.layers.Dense):
            kernel, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
            x = x @ kernel + bias
            if "hidden" in layer.name:
                x = np.tanh(x)
    return x


def _log_normal(z, mean, log_var):
    return -0.5 * (np.square(z - mean) / np.exp(log_var) + log_var + math.log(2 * math.pi))


def _np_joint(model, images, noise):
    """Per (sample, image): log p(x|z1), log-density terms and the closed-form KLs, by hand."""
    num_samples, batch = noise[0].shape[:2]
    flat = images.reshape(batch, -1).astype(np.float64)
    mean_1, log_var_1 = _np_gaussian(model.encoder, images)
    z1 = mean_1[None] + np.exp(0.5 * log_var_1)[None] * noise[0]
    if model.inference == "factorized":
        mean_2, log_var_2 = _np_gaussian(model.top_encoder, images)
        mean_2, log_var_2 = np.broadcast_to(mean_2, z1.shape[:2] + (Z2,)), np.broadcast_to(
            log_var_2, z1.shape[:2] + (Z2,))
    else:
        mean_2, log_var_2 = (a.reshape(num_samples, batch, Z2)
                             for a in _np_gaussian(model.top_encoder, z1.reshape(-1, Z1)))
    z2 = mean_2 + np.exp(0.5 * log_var_2) * noise[1]
    prior_mean, prior_log_var = (a.reshape(num_samples, batch, Z1)
                                 for a in _np_gaussian(model.top_decoder, z2.reshape(-1, Z2)))
    logits = _np_logits(model.decoder, z1.reshape(-1, Z1)).reshape(num_samples, batch, -1)
    log_px = np.sum(flat * logits - np.logaddexp(0, logits), axis=-1)
    log_q1 = _log_normal(z1, mean_1[None], log_var_1[None]).sum(-1)
    log_p1 = _log_normal(z1, prior_mean, prior_log_var).sum(-1)
    log_q2 = _log_normal(z2, mean_2, log_var_2).sum(-1)
    log_p2 = _log_normal(z2, 0.0, 0.0).sum(-1)
    kl_2 = 0.5 * np.sum(np.exp(log_var_2) + mean_2 ** 2 - 1 - log_var_2, axis=-1)
    if model.inference == "factorized":  # closed form given the sampled z2
        kl_1 = 0.5 * np.sum(prior_log_var - log_var_1[None]
                            + (np.exp(log_var_1[None]) + (mean_1[None] - prior_mean) ** 2)
                            / np.exp(prior_log_var) - 1, axis=-1)
    else:  # z2 depends on z1: the one-sample estimate
        kl_1 = log_q1 - log_p1
    return {"log_px": log_px, "log_weights": log_px + log_p1 + log_p2 - log_q1 - log_q2,
            "kl_1": kl_1, "kl_2": kl_2}


def _y_pred(model, images, noise):
    """The model's training forward pass with the given noise (sample-major rows)."""
    num_samples, batch = noise[0].shape[:2]
    flat = [n.reshape((num_samples * batch, -1)) for n in noise]
    return model._joint_sample(keras.ops.convert_to_tensor(images), num_samples, noise=flat)


@pytest.mark.portable
@pytest.mark.parametrize("inference", ["factorized", "bottom_up"])
def test_elbo_loss_and_metrics_match_a_hand_computation(inference):
    model = _model(inference)
    images, noise = _images(), _noise(1, 3)
    loss = model.compute_loss(images, y_pred=_y_pred(model, images, noise))
    expected = _np_joint(model, images, noise)
    elbo = expected["log_px"] - expected["kl_1"] - expected["kl_2"]
    np.testing.assert_allclose(float(loss), -np.mean(elbo), rtol=1e-5, atol=1e-4)
    metrics = {m.name: float(m.result()) for m in model.metrics if m.name != "loss"}
    np.testing.assert_allclose(metrics["kl_1"], np.mean(expected["kl_1"]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(metrics["kl_2"], np.mean(expected["kl_2"]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(metrics["elbo"], np.mean(elbo), rtol=1e-5, atol=1e-4)


@pytest.mark.portable
@pytest.mark.parametrize("inference", ["factorized", "bottom_up"])
def test_iwae_bound_and_log_weights_match_a_hand_computation(inference):
    model = _model(inference, iwae_samples=4)
    images, noise = _images(), _noise(4, 3)
    expected = _np_joint(model, images, noise)
    log_weights = keras.ops.convert_to_numpy(model.log_importance_weights(images, noise))
    np.testing.assert_allclose(log_weights, expected["log_weights"], rtol=1e-5, atol=1e-4)
    loss = model.compute_loss(images, y_pred=_y_pred(model, images, noise))
    maximum = expected["log_weights"].max(0)
    bound = maximum + np.log(np.mean(np.exp(expected["log_weights"] - maximum), axis=0))
    np.testing.assert_allclose(float(loss), -np.mean(bound), rtol=1e-5, atol=1e-4)
    # The k-sample bound is never below the ELBO of the same samples.
    assert np.all(bound >= expected["log_weights"].mean(0) - 1e-9)


@pytest.mark.portable
def test_weighted_kl_and_mean_reduction_scale_the_loss():
    model = _model("factorized", kl_weight=0.5, top_kl_weight=0.25, reconstruction_reduction="mean")
    images, noise = _images(), _noise(1, 3)
    loss = model.compute_loss(images, y_pred=_y_pred(model, images, noise))
    expected = _np_joint(model, images, noise)
    pixels = math.prod(IMAGE_SHAPE)
    want = np.mean(-expected["log_px"] / pixels + 0.5 * expected["kl_1"] + 0.25 * expected["kl_2"])
    np.testing.assert_allclose(float(loss), want, rtol=1e-5, atol=1e-5)


@pytest.mark.portable
def test_nll_scores_the_joint_weights_and_active_units_count_each_layer():
    model = _model("bottom_up")
    images = _images(6)
    estimate = evaluation.importance_sampled_nll(model, images, num_samples=30, batch_size=6,
                                                 seed=0, max_decoder_batch=180, verbose=0)
    bound = evaluation.elbo(model, images, num_samples=1, seed=0)
    assert estimate.per_example.shape == (6,) and np.all(np.isfinite(estimate.per_example))
    # log-mean-exp of 30 weights beats the ELBO on average (Jensen), by a wide margin here.
    assert estimate.mean < -bound["elbo"].mean
    units = evaluation.active_units(model, images, threshold=0.0)
    assert units["num_latents_per_layer"] == [Z1, Z2]
    assert units["active_units_per_layer"] == [Z1, Z2] and units["active_units"] == Z1 + Z2


SMALL_CONV = {"base_channels": 2, "latent_channels": 8, "time_steps": 2, "lstm_layers": 1,
              "top_hidden_units": [8]}


@pytest.mark.parametrize("name,overrides", [
    pytest.param("mnist_mlp_iwae_2layer", {"iwae_samples": 2}, marks=pytest.mark.portable),
    ("mnist_crvae_2layer", SMALL_CONV),  # TF only: the recurrent crVAE traces slowly under JAX
])
def test_presets_train(name, overrides):
    model = presets.from_preset(name, seed=0, steps_per_epoch=2, epochs=8, **overrides)
    images = _images_28(8)
    history = model.fit(images, batch_size=4, epochs=1, verbose=0)
    logs = {key: values[-1] for key, values in history.history.items()}
    assert np.isfinite(logs["loss"]) and logs["kl_1"] > 0 and logs["kl_2"] > 0
    assert tuple(model.sample(2, seed=0).shape) == (2, 28, 28, 1)


def test_presets_build_with_the_documented_latents():  # construction only: TF CI covers it
    shapes = {name: presets.from_preset(name, compile=False, **overrides).latent_shapes
              for name, overrides in [("mnist_mlp_vae_2layer", {}), ("mnist_vae_2layer", SMALL_CONV),
                                      ("mnist_crvae_2layer", SMALL_CONV)]}
    assert shapes == {"mnist_mlp_vae_2layer": [(100,), (50,)],
                      "mnist_vae_2layer": [(4 * 4 * 8,), (64,)],
                      "mnist_crvae_2layer": [(4, 4, 8), (64,)]}
    assert presets.get_preset("mnist_crvae_2layer").paper_nll == 79.65


@pytest.mark.portable
def test_one_layer_iwae_presets_are_vaes_with_the_papers_optimizer():
    model = presets.from_preset("mnist_mlp_iwae", steps_per_epoch=3000, epochs=3280)
    assert type(model).__name__ == "VAE" and model.iwae_samples == 5
    encoder_params = (784 * 200 + 200) + (200 * 200 + 200) + 2 * (200 * 50 + 50)
    decoder_params = (50 * 200 + 200) + (200 * 200 + 200) + (200 * 784 + 784)
    assert model.latent_shape == (50,) and model.count_params() == encoder_params + decoder_params
    assert float(model.optimizer.epsilon) == 1e-4
    schedule = presets.iwae_learning_rate_schedule(3280 * 3000)
    rates = [float(schedule(step)) for step in (0, 3000 * 1 + 1, 3000 * 4 + 1, 3000 * 3279)]
    np.testing.assert_allclose(rates, [1e-3, 7.2e-4, 5.2e-4, 1e-4], rtol=1e-6)
    # A smoke budget shorter than the 8 stages walks through the first stages (a boundary step
    # belongs to the stage before it).
    short = presets.iwae_learning_rate_schedule(2)
    np.testing.assert_allclose([float(short(step)) for step in (0, 1, 2)], [1e-3, 1e-3, 7.2e-4],
                               rtol=1e-6)


def _decoder_output_bias(model):
    (layer,) = [layer for layer in model.decoder.layers if layer.name.endswith("_logits")]
    return keras.ops.convert_to_numpy(layer.bias).reshape(28, 28)


@pytest.mark.portable
def test_mlp_presets_start_the_output_bias_at_the_training_pixels_mean_logit():
    images = np.random.default_rng(1).random((40, 28, 28, 1)).astype("float32") ** 3
    mean = np.clip(images.mean(axis=0)[..., 0], 0.001, 0.999)
    model = presets.from_preset("mnist_mlp_vae", compile=False)
    np.testing.assert_array_equal(_decoder_output_bias(model), 0.0)  # before: Dense's zeros
    presets.initialize_from_data(model, "mnist_mlp_vae", images)
    np.testing.assert_allclose(_decoder_output_bias(model), np.log(mean / (1 - mean)), rtol=1e-5)
    # Opting out keeps zeros; presets without a data initialisation come back unchanged.
    plain = presets.from_preset("mnist_mlp_vae", compile=False, output_bias="zeros")
    presets.initialize_from_data(plain, "mnist_mlp_vae", images, output_bias="zeros")
    np.testing.assert_array_equal(_decoder_output_bias(plain), 0.0)
    with pytest.raises(ValueError, match="output_bias"):
        presets.from_preset("mnist_mlp_vae", compile=False, output_bias="ones")


def test_the_training_job_applies_the_output_bias(tmp_path):
    from keras_crvae import training

    images = (np.random.default_rng(2).random((40, 28, 28)) < 0.2).astype("float32")
    training.train("mnist_mlp_vae", train_images=images, eval_images=images[:10],
                   output_dir=str(tmp_path / "run"), epochs=1, nll_samples=2, nll_images=4,
                   verbose=0)
    model = training.load_model(str(tmp_path / "run" / "model.keras"))
    mean = np.clip(images.mean(axis=0), 0.001, 0.999)
    # Two Adam steps at LR 1e-3 move each bias by about 2e-3 from its start.
    np.testing.assert_allclose(_decoder_output_bias(model), np.log(mean / (1 - mean)), atol=0.01)


def _images_28(batch, seed=0):
    return (np.random.default_rng(seed).random((batch, 28, 28, 1)) < 0.3).astype("float32")


@pytest.mark.portable
def test_keras_round_trip_keeps_the_log_weights(tmp_path):
    model = _model("bottom_up", iwae_samples=3, kl_weight=0.5)
    images, noise = _images(), _noise(2, 3)
    path = str(tmp_path / "hierarchical.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, HierarchicalVAE)
    assert (loaded.inference, loaded.iwae_samples, loaded.kl_weight) == ("bottom_up", 3, 0.5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded.log_importance_weights(images, noise)),
                               keras.ops.convert_to_numpy(model.log_importance_weights(images, noise)),
                               rtol=1e-6, atol=1e-5)


def test_export_signatures_take_the_top_latent(tmp_path):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("SavedModel export needs the TensorFlow backend.")
    import tensorflow as tf

    from keras_crvae import export

    model = presets.from_preset("mnist_mlp_vae_2layer", seed=0)
    export.export_saved_model(model, str(tmp_path / "served"), version=1)
    served = tf.saved_model.load(str(tmp_path / "served" / "1"))
    z2 = np.random.default_rng(0).standard_normal((2, 50)).astype("float32")
    images = served.signatures["decode"](z=tf.constant(z2))["images"].numpy()
    np.testing.assert_allclose(images, keras.ops.convert_to_numpy(model.decode(z2)), atol=1e-5)
    encoded = served.signatures["encode"](images=tf.constant(_images_28(2)))
    assert encoded["mean"].shape == (2, 50)
    assert served.signatures["sample"](z=tf.constant(z2))["images_uint8"].dtype == tf.uint8


@pytest.mark.portable
def test_mismatched_latent_shapes_and_bad_inputs_give_clear_errors():
    encoder, top_encoder, top_decoder, decoder = _networks("bottom_up")
    with pytest.raises(ValueError, match="top latent shapes do not match"):
        HierarchicalVAE(encoder, top_encoder, mlp.build_mlp_gaussian(Z2 + 1, Z1, name="p"), decoder,
                        inference="bottom_up")
    with pytest.raises(ValueError, match="bottom latent shapes do not match"):
        HierarchicalVAE(encoder, top_encoder, mlp.build_mlp_gaussian(Z2, Z1 + 1, name="p"), decoder,
                        inference="bottom_up")
    with pytest.raises(ValueError, match="top_encoder reads the image"):
        HierarchicalVAE(encoder, top_encoder, top_decoder, decoder, inference="factorized")
    with pytest.raises(ValueError, match="`inference` must be one of"):
        HierarchicalVAE(encoder, top_encoder, top_decoder, decoder, inference="top_down")
    with pytest.raises(ValueError, match="`iwae_samples` must be >= 1"):
        HierarchicalVAE(encoder, top_encoder, top_decoder, decoder, inference="bottom_up",
                        iwae_samples=0)
    model = HierarchicalVAE(encoder, top_encoder, top_decoder, decoder, inference="bottom_up")
    with pytest.raises(ValueError, match=r"`noise\[1\]` must have shape \(num_samples, 3, 3\)"):
        model.log_importance_weights(_images(), [np.zeros((2, 3, Z1)), np.zeros((2, 3, Z2 + 1))])
    with pytest.raises(ValueError, match="`num_samples` must be >= 1"):
        evaluation.importance_sampled_nll(model, _images(), num_samples=0, verbose=0)
    with pytest.raises(ValueError, match="`z` must have shape"):
        model.decode(np.zeros((2, Z1), "float32"))
