"""VAE(posterior_flow=...): the identity flow reproduces the plain VAE, log q_K by hand and through
the inverse, the loss and the k-sample bound, the NLL evaluator, refusals, `.keras` round trips."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae import evaluation, models
from keras_crvae.networks import mlp

pytestmark = pytest.mark.portable

LATENT = 3
LOG_2PI = math.log(2 * math.pi)


def tiny_mlp_vae(**kwargs):
    keras.utils.set_random_seed(0)
    kwargs.setdefault("seed", 1)
    kwargs.setdefault("reconstruction_reduction", "sum")
    return models.VAE(mlp.build_mlp_gaussian((28, 28, 1), LATENT, (8,)),
                      mlp.build_mlp_bernoulli_decoder(LATENT, (8,)), **kwargs)


def binary_images(count=4, seed=0):
    return (np.random.default_rng(seed).random((count, 28, 28, 1)) < 0.3).astype("float32")


def numpy(value):
    return ops.convert_to_numpy(value).astype("float64")


def gaussian_log_density(z, mean, log_var):
    return np.sum(-0.5 * ((z - mean) ** 2 / np.exp(log_var) + log_var + LOG_2PI), axis=-1)


def standard_normal_log_density(z):
    return np.sum(-0.5 * (z ** 2 + LOG_2PI), axis=-1)


def noise_for(images, samples, seed=2):
    return [np.random.default_rng(seed).normal(size=(samples, len(images), LATENT)).astype(
        "float32")]


def identity_planar_vae(steps=2, **kwargs):
    """A planar-flow VAE whose amortised parameters are all zero: u = w = 0, b = 0, f = identity."""
    model = tiny_mlp_vae(posterior_flow=f"planar:{steps}", **kwargs)
    for step in model.posterior_flow_layer.bijectors:
        for weight in step.trainable_weights:
            weight.assign(np.zeros(tuple(weight.shape), "float32"))
    return model


def test_identity_flow_gives_the_plain_vae_nll_weights_and_k_sample_bound():
    images = binary_images()
    plain = tiny_mlp_vae(iwae_samples=3)
    flow = identity_planar_vae(iwae_samples=3)
    noise = noise_for(images, 5)
    np.testing.assert_allclose(numpy(flow.log_importance_weights(images, noise)),
                               numpy(plain.log_importance_weights(images, noise)), rtol=1e-6)
    plain_pred, flow_pred = plain(images, training=True), flow(images, training=True)
    np.testing.assert_allclose(numpy(flow_pred["z"]), numpy(plain_pred["z"]), rtol=1e-6)
    plain_loss = numpy(plain.compute_loss(x=images, y_pred=plain_pred, training=True))
    flow_loss = numpy(flow.compute_loss(x=images, y_pred=flow_pred, training=True))
    assert flow_loss == pytest.approx(plain_loss, rel=1e-6)  # the same 3-sample IWAE bound


def test_identity_flow_elbo_is_the_plain_one_sample_elbo():
    images = binary_images()
    plain, flow = tiny_mlp_vae(), identity_planar_vae()
    plain_pred, flow_pred = plain(images, training=True), flow(images, training=True)
    p = {key: numpy(value) for key, value in plain_pred.items()}
    # The flow's rate is the one-sample estimate log q(z|x) - log p(z) of the plain posterior.
    expected_rate = (gaussian_log_density(p["z"], p["mean"], p["log_var"])
                     - standard_normal_log_density(p["z"]))
    np.testing.assert_allclose(numpy(flow_pred["rate"]), expected_rate, rtol=1e-5, atol=1e-5)
    loss = numpy(flow.compute_loss(x=images, y_pred=flow_pred, training=True))
    log_px = numpy(plain.log_likelihood(images, p["z"].astype("float32")))
    assert loss == pytest.approx(np.mean(-log_px + expected_rate), rel=1e-5)
    assert float(numpy(flow.kl_tracker.result())) == pytest.approx(expected_rate.mean(), rel=1e-5)


def test_hand_built_planar_posterior_density():
    """One planar step with constant parameters (the amortising Dense's bias): log q_K by hand."""
    model = tiny_mlp_vae(posterior_flow="planar:1")
    step = model.posterior_flow_layer.bijectors[0]
    u, w, b = np.array([0.5, -1.0, 2.0]), np.array([1.5, 0.5, -0.5]), 0.3
    step.parameter_net.kernel.assign(np.zeros(tuple(step.parameter_net.kernel.shape), "float32"))
    step.parameter_net.bias.assign(np.concatenate([u, w, [b]]).astype("float32"))
    images = binary_images(2)
    noise = noise_for(images, 3)
    mean, log_var = (numpy(value) for value in model.encode(images))
    z0 = mean[None] + np.exp(0.5 * log_var)[None] * noise[0]
    w_dot_u = w @ u
    u_hat = u + (-1 + np.log1p(np.exp(w_dot_u)) - w_dot_u) * w / (w @ w)
    activation = np.tanh(z0 @ w + b)
    z = z0 + activation[..., None] * u_hat
    log_q = (gaussian_log_density(z0, mean[None], log_var[None])
             - np.log(np.abs(1 + (1 - activation ** 2) * (w @ u_hat))))
    log_px = numpy(model.log_likelihood(np.tile(images, (3, 1, 1, 1)),
                                        z.reshape(-1, LATENT).astype("float32"))).reshape(3, 2)
    expected = log_px + standard_normal_log_density(z) - log_q
    np.testing.assert_allclose(numpy(model.log_importance_weights(images, noise)), expected,
                               rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("spec", ["radial:2", "iaf:2"])
def test_posterior_density_matches_the_flow_inverse(spec):
    """log q_K(z_K|x) = log q_0(f^-1(z_K)|x) + log|det df^-1/dz_K|, computed through the inverse."""
    model = tiny_mlp_vae(posterior_flow=spec)
    for weight in model.posterior_flow_layer.trainable_weights:  # a clearly non-identity flow
        weight.assign(np.random.default_rng(3).normal(
            scale=0.5, size=tuple(weight.shape)).astype("float32"))
    images = binary_images(2)
    y_pred = model(images, training=False)
    mean, log_var, z = (numpy(y_pred[key]) for key in ("mean", "log_var", "z"))
    context = ops.concatenate([y_pred["mean"], y_pred["log_var"]], axis=1)
    z0, inverse_log_det = model.posterior_flow_layer.inverse_and_log_det(y_pred["z"],
                                                                         context=context)
    # Float32 inverse through random (strongly non-linear) steps; the layer tests check 1e-5.
    np.testing.assert_allclose(numpy(z0), numpy(y_pred["z0"]), atol=1e-4)
    log_q = gaussian_log_density(numpy(z0), mean, log_var) + numpy(inverse_log_det)
    np.testing.assert_allclose(numpy(y_pred["rate"]), log_q - standard_normal_log_density(z),
                               rtol=1e-4, atol=1e-4)


def test_flow_vae_trains_and_is_evaluated_with_q_after_the_flow(tmp_path):
    images = binary_images(8)
    model = tiny_mlp_vae(posterior_flow="iaf:2", flow_hidden_units=[8])
    # Tiny models train faster eagerly than traced on TensorFlow (as in test_vae.py).
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  run_eagerly=keras.backend.backend() == "tensorflow")
    history = model.fit(images, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    nll = evaluation.importance_sampled_nll(model, images[:2], num_samples=4, seed=0, verbose=0)
    elbo = evaluation.elbo(model, images[:2], num_samples=2, seed=0)
    # The NLL estimate is a bound at least as tight as the ELBO on average (loose check, k=4).
    assert np.isfinite(nll.mean) and nll.mean <= -elbo["elbo"].mean + 5.0
    path = tmp_path / "flow_vae.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_config()["posterior_flow"] == "iaf:2"
    noise = noise_for(images[:2], 3)
    np.testing.assert_allclose(numpy(loaded.log_importance_weights(images[:2], noise)),
                               numpy(model.log_importance_weights(images[:2], noise)), rtol=1e-6)


def test_flow_refuses_unequal_block_weights_and_bad_specs():
    with pytest.raises(ValueError, match="posterior_flow='planar:2'.*kl_weight"):
        tiny_mlp_vae(posterior_flow="planar:2", kl_weight=[1.0, 2.0, 1.0])
    tiny_mlp_vae(posterior_flow="planar:1", kl_weight=[0.5, 0.5, 0.5])  # equal weights: one alpha
    for spec in ("planar", "planar:0", "maf:2", "iaf:x"):
        with pytest.raises(ValueError, match="posterior_flow=.*expected None or KIND:K"):
            tiny_mlp_vae(posterior_flow=spec)


def test_planar_presets_differ_by_the_flow_only_and_build():
    import keras_crvae
    from keras_crvae import presets

    base = presets.get_preset("mnist_planar_k0")
    for steps, paper_nll in ((10, 87.5), (40, 85.7), (80, 85.1)):
        preset = presets.get_preset(f"mnist_planar_k{steps}")
        assert preset.model == {**base.model, "posterior_flow": f"planar:{steps}"}
        assert preset.network == base.network and preset.training == base.training
        assert preset.paper_nll == paper_nll
    model = keras_crvae.from_preset("mnist_planar_k10", compile=False, seed=0)
    assert model.latent_shape == (40,) and len(model.posterior_flow_layer.bijectors) == 10
    assert model.encoder.get_layer("encoder_hidden1").units == 400
    # `--set posterior_flow=iaf:2` on the Gaussian row is checked and typed as text.
    overrides = presets.parse_overrides(["posterior_flow=iaf:2"], preset="mnist_planar_k0")
    assert presets.get_preset("mnist_planar_k0", **overrides).model["posterior_flow"] == "iaf:2"


def test_flow_on_a_latent_map_with_block_weights_trains():
    """A (2, 2, 4) latent map (channel blocks as the crVAE's) with an IAF posterior (flattened
    inside each step); equal block weights act as one alpha, unequal ones are refused."""
    keras.utils.set_random_seed(0)
    encoder = mlp.build_mlp_gaussian((28, 28, 1), (2, 2, 4), (8,))
    latent = keras.Input((2, 2, 4))
    logits = keras.layers.Reshape((28, 28, 1))(
        keras.layers.Dense(784)(keras.layers.Flatten()(latent)))
    decoder = keras.Model(latent, logits)
    with pytest.raises(ValueError, match="posterior_flow='iaf:1'.*block"):
        models.VAE(encoder, decoder, kl_weight=[0.1, 0.1, 1.0, 1.0], posterior_flow="iaf:1")
    model = models.VAE(encoder, decoder, kl_weight=[0.001] * 4, posterior_flow="iaf:1",
                       flow_hidden_units=[16], seed=1)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  run_eagerly=keras.backend.backend() == "tensorflow")
    history = model.fit(binary_images(4), epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"]).all() and np.isfinite(history.history["kl"]).all()
    assert tuple(model.reconstruct(binary_images(2)).shape) == (2, 28, 28, 1)
