"""StyleGAN: style mixing switches styles at the crossover layer, truncation at psi = 0 gives one
image for every z, the lazy R1 penalty against hand-computed values, a train step, `.keras` round
trips, SavedModel `sample` with psi.

The generator tests are portable (TF and JAX); the training ones are TF-only (`GAN.train_step`)."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae import networks
from keras_crvae.losses import adversarial
from keras_crvae.models import StyleGAN, mixed_styles, truncate

SHAPE = (8, 8, 1)
LATENT_DIM = W_DIM = 4
TF_ONLY = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                             reason="GAN.train_step and the R1 tape are TensorFlow-only")


def build_generator(noise_inputs=True, style="modulated", shape=SHAPE):
    keras.utils.set_random_seed(1)
    return networks.build_style_generator(shape, LATENT_DIM, W_DIM, mapping_layers=2,
                                          base_channels=2, max_channels=4, style=style,
                                          noise_inputs=noise_inputs, seed=3)


def build_stylegan(noise_inputs=True, **kwargs):
    generator = build_generator(noise_inputs)
    discriminator = networks.build_dcgan_discriminator(SHAPE, base_channels=2, norm="none")
    return StyleGAN(generator, discriminator, seed=2, **kwargs)


def numpy(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


@pytest.mark.portable
def test_mixed_styles_takes_the_second_w_from_the_crossover_on():
    first = np.arange(6, dtype="float32").reshape(2, 3)
    second = -first - 1.0
    ws = numpy(mixed_styles(first, second, np.array([1, 4]), num_ws=4))
    np.testing.assert_array_equal(ws[0], [first[0], second[0], second[0], second[0]])
    np.testing.assert_array_equal(ws[1], [first[1]] * 4)  # crossover = num_ws: no mixing


@pytest.mark.portable
@pytest.mark.parametrize("style", ["modulated", "adain"])
def test_style_mixing_leaves_the_layers_before_the_crossover_to_w1(style):
    generator = build_generator(noise_inputs=False, style=style, shape=(16, 16, 1))
    synthesis = generator.get_layer("synthesis")
    num_ws = synthesis.input_shape[1]
    assert num_ws == 6  # 4x4, 8x8, 16x16: two w's per block
    # The 8x8 block's output uses ws[0..2] (modulated: conv 4x4, its tRGB/conv0 8x8, conv1 8x8;
    # AdaIN: 4x4 twice and the first of 8x8) plus ws[3] (modulated: tRGB 8x8; AdaIN: adain1 8x8).
    layer_name = "lrelu_1_8x8" if style == "modulated" else "adain1_8x8"
    features = keras.Model(synthesis.input, synthesis.get_layer(layer_name).output)
    rng = np.random.default_rng(0)
    w1, w2, w3 = (rng.standard_normal((2, W_DIM)).astype("float32") for _ in range(3))
    crossover = np.array([4, 4])  # layers 0-3 from w1
    mix_a = mixed_styles(w1, w2, crossover, num_ws)
    mix_b = mixed_styles(w1, w3, crossover, num_ws)
    np.testing.assert_allclose(numpy(features(mix_a)), numpy(features(mix_b)), atol=1e-6)
    # ... while the image, which uses the later layers, changes with the second w.
    assert np.abs(numpy(synthesis(mix_a)) - numpy(synthesis(mix_b))).max() > 1e-4
    # And a crossover one layer earlier lets the second w reach those features.
    early_a = mixed_styles(w1, w2, np.array([2, 2]), num_ws)
    early_b = mixed_styles(w1, w3, np.array([2, 2]), num_ws)
    assert np.abs(numpy(features(early_a)) - numpy(features(early_b))).max() > 1e-4


@pytest.mark.portable
def test_truncation_at_psi_zero_gives_the_same_image_for_every_z():
    model = build_stylegan(noise_inputs=False)
    model.w_average.assign(np.random.default_rng(0).standard_normal(W_DIM).astype("float32"))
    z = np.random.default_rng(1).standard_normal((5, LATENT_DIM)).astype("float32")
    images = numpy(model.decode(z, truncation_psi=0.0))
    np.testing.assert_allclose(images, np.repeat(images[:1], 5, axis=0), atol=1e-6)
    mean_image = numpy(model.synthesize(model.w_average.value[None]))
    np.testing.assert_allclose(images[0], mean_image[0], atol=1e-6)  # the image of w_avg
    plain = numpy(model.decode(z))
    assert np.abs(plain - plain[:1]).max() > 1e-3  # psi = 1: images differ
    np.testing.assert_allclose(numpy(model.decode(z, truncation_psi=1.0)), plain, atol=1e-6)
    np.testing.assert_allclose(numpy(truncate(np.float32(3.0), np.float32(1.0), 0.5)), 2.0)


def test_grids_have_the_documented_shapes():
    # Not in the JAX subset: the grids are NumPy layout over `synthesize`, which the portable
    # tests above already run on JAX (eager JAX spends ~25 s compiling these shapes).
    model = build_stylegan()
    grid = model.style_mixing_grid(num_sources=2)
    assert grid["mixed"].shape == (len(grid["crossovers"]), 2, 2) + SHAPE
    assert grid["rows"].shape == (2,) + SHAPE
    assert model.truncation_grid(num_latents=3, psis=(1.0, 0.0)).shape == (2, 3) + SHAPE


@TF_ONLY
def test_r1_penalty_by_hand():
    # D(x) = w . x: grad_x D = w for every example, so R1 = ||w||^2.
    critic = keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Flatten(),
                               keras.layers.Dense(1, use_bias=True)])
    critic.layers[-1].set_weights([np.array([[1.0], [-2.0], [0.5], [3.0]], "float32"),
                                   np.array([7.0], "float32")])
    real = np.random.default_rng(0).standard_normal((3, 2, 2, 1)).astype("float32")
    np.testing.assert_allclose(float(adversarial.r1_penalty(critic, real)), 1 + 4 + 0.25 + 9,
                               rtol=1e-6)
    # D(x) = sum_i a_i x_i^2: grad = 2 a x, R1 = mean_b sum_i 4 a_i^2 x_bi^2.
    scale = np.array([1.0, 2.0, 0.0, -1.0], "float32").reshape(1, 2, 2, 1)
    quadratic = lambda x: ops.sum(scale * x * x, axis=(1, 2, 3))  # noqa: E731
    expected = np.mean(np.sum(4 * scale ** 2 * real ** 2, axis=(1, 2, 3)))
    np.testing.assert_allclose(float(adversarial.r1_penalty(quadratic, real)), expected, rtol=1e-5)


@TF_ONLY
def test_lazy_r1_runs_every_k_critic_steps_scaled_by_k():
    model = build_stylegan(r1_weight=10.0, r1_interval=2)
    model.compile()
    real = np.random.default_rng(0).uniform(-1, 1, (4,) + SHAPE).astype("float32")
    fake = np.random.default_rng(1).uniform(-1, 1, (4,) + SHAPE).astype("float32")
    critic = lambda x: model._discriminate(x, True)[0]  # noqa: E731
    r1 = float(adversarial.r1_penalty(critic, real))
    plain = model.critic_terms(real, fake, penalty=False)
    due = model.critic_terms(real, fake)  # iterations = 0: due
    np.testing.assert_allclose(float(due["r1"]), 2 * r1, rtol=1e-5)
    np.testing.assert_allclose(float(due["critic_loss"]),
                               float(plain["critic_loss"]) + 0.5 * 10.0 * 2 * r1, rtol=1e-5)
    model.discriminator_optimizer.iterations.assign(1)
    skipped = model.critic_terms(real, fake)
    assert float(skipped["r1"]) == 0.0
    np.testing.assert_allclose(float(skipped["critic_loss"]), float(plain["critic_loss"]),
                               rtol=1e-6)


@TF_ONLY
def test_path_lengths_by_hand_on_a_linear_synthesis():
    # g(ws) = sum_l c_l ws[:, l] @ A, reshaped to images: J_l^T y = c_l A y, so the path length is
    # sqrt(mean_l c_l^2) ||A y||.
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((3, 8)).astype("float32")
    layer_scales = np.array([1.0, 2.0], "float32")
    synthesis = lambda ws: ops.reshape(  # noqa: E731
        ops.einsum("bld,dk->bk", ws * layer_scales[None, :, None], matrix), (-1, 2, 2, 2))
    ws = rng.standard_normal((4, 2, 3)).astype("float32")
    noise = rng.standard_normal((4, 2, 2, 2)).astype("float32")
    expected = np.sqrt(np.mean(layer_scales ** 2)) * np.linalg.norm(
        noise.reshape(4, 8) @ matrix.T, axis=-1)
    np.testing.assert_allclose(numpy(adversarial.path_lengths(synthesis, ws, noise)), expected,
                               rtol=1e-5)


@TF_ONLY
def test_lazy_path_length_penalty_runs_every_k_generator_steps():
    model = build_stylegan(path_length_weight=2.0, path_length_interval=4)
    model.compile()
    z = np.random.default_rng(0).standard_normal((4, LATENT_DIM)).astype("float32")
    keras.utils.set_random_seed(5)
    plain = model.generator_terms(z, training=False)
    assert float(plain["path_length"]) == 0.0 and float(model.path_length_mean) == 0.0
    due = model.generator_terms(z)  # iterations = 0: due
    assert float(due["path_length"]) > 0
    a = float(model.path_length_mean)
    assert a > 0  # a = 0.01 * mean length after one update from 0
    # The generator's loss = adversarial + 2 * (4 * penalty); the adversarial part of this call
    # uses the same images as an unpenalised call with the same noise state would.
    np.testing.assert_allclose(float(due["generator_loss"]),
                               float(due["g_adv"]) + 2.0 * float(due["path_length"]), rtol=1e-5)
    model.generator_optimizer.iterations.assign(1)
    skipped = model.generator_terms(z)
    assert float(skipped["path_length"]) == 0.0 and float(model.path_length_mean) == a
    np.testing.assert_allclose(float(skipped["generator_loss"]), float(skipped["g_adv"]),
                               rtol=1e-6)


@TF_ONLY
def test_one_train_step_moves_both_players_and_w_average(tmp_path):
    model = build_stylegan(r1_interval=1, style_mixing_probability=1.0)
    model.compile()
    before_g = [numpy(v) for v in model.generator.trainable_variables]
    before_d = [numpy(v) for v in model.discriminator.trainable_variables]
    real = np.random.default_rng(0).uniform(-1, 1, (8,) + SHAPE).astype("float32")
    logs = model.train_on_batch(real, return_dict=True)
    assert float(logs["r1"]) > 0 and np.isfinite(float(logs["loss"]))
    moved = lambda before, variables: max(  # noqa: E731
        float(np.abs(a - numpy(b)).max()) for a, b in zip(before, variables))
    assert moved(before_g, model.generator.trainable_variables) > 0
    assert moved(before_d, model.discriminator.trainable_variables) > 0
    # w_avg: one EMA step from 0 towards the batch mean of w (two generator calls in a step).
    assert np.abs(numpy(model.w_average)).max() > 0
    path = tmp_path / "stylegan.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, StyleGAN) and loaded.r1_interval == 1
    np.testing.assert_allclose(numpy(loaded.w_average), numpy(model.w_average))
    for saved, restored in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(saved, restored)
    # (The noise inputs draw afresh at every call, so images are compared without them: psi = 0
    # in `test_truncation_at_psi_zero_gives_the_same_image_for_every_z`.)
    z = np.random.default_rng(2).standard_normal((2, LATENT_DIM)).astype("float32")
    assert loaded.decode(z, truncation_psi=0.5).shape == (2,) + SHAPE


@TF_ONLY
def test_saved_model_samples_from_z_or_w_with_a_truncation_psi(tmp_path):
    import tensorflow as tf

    from keras_crvae import export

    model = build_stylegan(noise_inputs=False)
    model.w_average.assign(np.random.default_rng(0).standard_normal(W_DIM).astype("float32"))
    version_dir = export.export_saved_model(model, str(tmp_path / "served"))
    served = tf.saved_model.load(str(version_dir))
    assert {"serving_default", "sample", "sample_w", "decode"} <= set(served.signatures)
    z = np.random.default_rng(1).standard_normal((3, LATENT_DIM)).astype("float32")
    half = served.signatures["sample"](z=tf.constant(z), truncation_psi=tf.constant(0.5))
    np.testing.assert_allclose(half["images"].numpy(), numpy(model.decode(z, 0.5)), atol=1e-5)
    mean = served.signatures["sample"](z=tf.constant(z), truncation_psi=tf.constant(0.0))
    np.testing.assert_allclose(mean["images"].numpy(), mean["images"].numpy()[:1].repeat(3, 0),
                               atol=1e-6)
    w = np.random.default_rng(2).standard_normal((2, W_DIM)).astype("float32")
    from_w = served.signatures["sample_w"](w=tf.constant(w), truncation_psi=tf.constant(1.0))
    np.testing.assert_allclose(from_w["images"].numpy(), numpy(model.synthesize(w)), atol=1e-5)
    assert from_w["images_uint8"].dtype == tf.uint8
    metadata = export.read_metadata(str(version_dir))
    assert metadata["signatures"]["sample"]["inputs"] == {"z": "latent",
                                                          "truncation_psi": "scalar"}
