"""Mixed bfloat16 training: every preset family builds and trains under it, the float32 islands are
float32, and a bfloat16 model saves, loads, evaluates and exports with float32 interfaces.

On JAX (CI's portable leg) the switch and the float32 islands are checked; the evaluator and `.keras`
cases run on TensorFlow only to keep the JAX leg short (they use no backend-specific code)."""

import os

import keras
import numpy as np
import pytest

import keras_crvae
from keras_crvae import evaluation, precision

BINARY = (np.random.default_rng(0).random((16, 28, 28, 1)) < 0.3).astype("float32")


def _tiny_crvae(precision_name, **overrides):
    return keras_crvae.from_preset("mnist_crvae", base_channels=2, latent_channels=16,
                                   precision=precision_name, seed=0, **overrides)


# --- the switch ---------------------------------------------------------------------------------


@pytest.mark.portable
def test_names_aliases_and_errors():
    assert precision.normalize("bf16") == precision.normalize("mixed_bfloat16") == "bfloat16"
    assert precision.normalize("FP32") == precision.normalize(None) == "float32"
    assert precision.policy_name("bfloat16") == "mixed_bfloat16"
    with pytest.raises(ValueError, match="`precision` must be one of .* got 'float16'"):
        precision.normalize("float16")
    with pytest.raises(ValueError, match="precision"):
        keras_crvae.get_preset("mnist_vae", precision="half")


@pytest.mark.portable
def test_cpu_description_names_the_model_cores_and_bfloat16_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8481C\n"
                       "flags\t\t: fpu avx512_bf16 amx_bf16 amx_tile\n")
    assert precision.cpu_description(str(cpuinfo)) == (
        f"Intel(R) Xeon(R) Platinum 8481C, {os.cpu_count()} cores, amx_bf16, avx512_bf16")
    plain = tmp_path / "plain"
    plain.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2\n")
    assert precision.cpu_description(str(plain)) == f"AMD EPYC, {os.cpu_count()} cores"
    assert f"{os.cpu_count()} cores" in precision.cpu_description(str(tmp_path / "missing"))


@pytest.mark.portable
def test_auto_follows_the_cpu_flags_and_the_override(tmp_path, monkeypatch):
    with_bf16 = tmp_path / "bf16"
    with_bf16.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16\n")
    without = tmp_path / "plain"
    without.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2\n")
    assert precision.cpu_supports_bfloat16(str(with_bf16))
    assert not precision.cpu_supports_bfloat16(str(without))
    assert not precision.cpu_supports_bfloat16(str(tmp_path / "missing"))
    with_amx = tmp_path / "amx"
    with_amx.write_text("processor\t: 0\nflags\t\t: fpu avx512_bf16 amx_bf16 amx_tile\n")
    assert precision.cpu_has_amx(str(with_amx)) and precision.cpu_supports_bfloat16(str(with_amx))
    assert not precision.cpu_has_amx(str(with_bf16))
    assert not precision.cpu_has_amx(str(tmp_path / "missing"))

    monkeypatch.setattr(precision, "cpu_supports_bfloat16", lambda: False)
    assert precision.resolve("auto") == "float32"  # never bfloat16 without native support
    monkeypatch.setattr(precision, "cpu_supports_bfloat16", lambda: True)
    monkeypatch.setattr(precision, "_accelerator_in_use", lambda: False)
    # Only TensorFlow's oneDNN kernels were measured faster in bfloat16 on such CPUs.
    expected = "bfloat16" if keras.backend.backend() == "tensorflow" else "float32"
    assert precision.resolve("auto") == expected
    monkeypatch.setenv("KERAS_CRVAE_PRECISION", "float32")
    assert precision.resolve("auto") == "float32"
    assert precision.resolve("bfloat16") == "bfloat16"  # explicit choices are not overridden


@pytest.mark.portable
def test_scope_restores_the_global_policy_even_on_error():
    before = keras.config.dtype_policy().name
    with pytest.raises(RuntimeError):
        with precision.scope("bfloat16"):
            assert keras.config.dtype_policy().name == "mixed_bfloat16"
            raise RuntimeError("boom")
    assert keras.config.dtype_policy().name == before
    _tiny_crvae("bfloat16")
    assert keras.config.dtype_policy().name == before  # from_preset leaks nothing


# --- the VAE family -----------------------------------------------------------------------------


@pytest.mark.portable
def test_bfloat16_crvae_keeps_its_float32_islands():
    model = _tiny_crvae("bfloat16")
    assert precision.of_model(model) == "bfloat16"
    computing = {layer.name: layer.compute_dtype for layer in model.encoder.layers + model.decoder.layers}
    assert computing["conv1_1"] == computing["deconv1"] == "bfloat16"
    assert model.sampler.compute_dtype == "float32"
    history = model.fit(BINARY, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])

    outputs = model(BINARY[:4], training=False)
    for key in ("mean", "log_var", "z", "kl", "logits"):
        assert outputs[key].dtype == "float32", key  # densities never see bfloat16
    mean, log_var = model.encode(BINARY[:4])
    assert mean.dtype == log_var.dtype == "float32"
    assert model.decode_logits(keras.ops.convert_to_numpy(mean)).dtype == "float32"
    assert model.log_likelihood(BINARY[:4], mean).dtype == "float32"
    # Variables, BatchNorm statistics, optimizer state and metrics stay float32.
    assert {v.dtype for v in model.variables if "seed_generator" not in v.path} == {"float32"}
    assert {v.dtype for v in model.optimizer.variables if "iteration" not in v.path} == {"float32"}
    assert {m.dtype for m in model.metrics if hasattr(m, "dtype")} <= {"float32"}


def test_bfloat16_model_scores_like_its_float32_twin():
    """The NLL evaluator runs on a bfloat16 model (it used to fail on bf16 * f32) and agrees with the
    same weights in float32 to within the bf16 rounding of the networks."""
    bf16 = _tiny_crvae("bfloat16")
    bf16.fit(BINARY, batch_size=8, epochs=1, verbose=0)
    fp32 = _tiny_crvae("float32")
    fp32.set_weights(bf16.get_weights())
    scores = [evaluation.importance_sampled_nll(m, BINARY[:4], num_samples=20, seed=3, verbose=0)
              for m in (bf16, fp32)]
    assert np.all(np.isfinite(scores[0].per_example))
    assert scores[0].per_example.dtype == np.float64
    np.testing.assert_allclose(scores[0].per_example, scores[1].per_example, rtol=0.02)


def test_bfloat16_model_round_trips_through_keras_file(tmp_path):
    model = _tiny_crvae("bfloat16")
    model.fit(BINARY, batch_size=8, epochs=1, verbose=0)
    path = str(tmp_path / "bf16.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert precision.of_model(loaded) == "bfloat16"
    z = np.random.default_rng(0).standard_normal((3,) + model.latent_shape).astype("float32")
    # The same weights and policy; only bf16 rounding in differently fused graphs may differ.
    np.testing.assert_allclose(loaded.decode(z), model.decode(z), atol=2e-3)
    for saved, restored in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(saved, restored)
    assert np.isfinite(loaded.train_on_batch(BINARY[:8], return_dict=True)["loss"])


def test_two_stage_and_gan_presets_train_under_bfloat16():
    two_stage = keras_crvae.from_preset("mnist_two_stage", precision="bfloat16", seed=0,
                                        latent_dim=4, stage2_width=8)
    assert precision.of_model(two_stage.stage1) == precision.of_model(two_stage.stage2) == "bfloat16"
    images = np.random.default_rng(0).random((8, 28, 28, 1)).astype("float32")
    two_stage.stage1.fit(images, batch_size=4, epochs=1, verbose=0)
    assert two_stage.stage1.encode(images)[0].dtype == "float32"
    assert two_stage.sample(2, seed=0).dtype == "float32"

    gan = keras_crvae.from_preset("celeba_crvae_gan", precision="bfloat16", seed=0,
                                  base_channels=4, discriminator_channels=8, minibatch_kernels=4)
    faces = np.random.default_rng(0).uniform(-1, 1, (8, 64, 64, 3)).astype("float32")
    before = [w.copy() for w in gan.get_weights()]
    logs = gan.train_on_batch(faces, return_dict=True)
    assert all(np.isfinite(value) for value in logs.values())
    assert any(not np.allclose(a, b) for a, b in zip(before, gan.get_weights()))
    terms = gan.compute_terms(faces, training=False)
    assert {keras.backend.standardize_dtype(value.dtype) for value in terms.values()} == {"float32"}
    assert {v.dtype for v in gan.variables if "seed_generator" not in v.path} == {"float32"}


def test_bfloat16_model_exports_float32_signatures(tmp_path):
    import tensorflow as tf

    from keras_crvae.export import export_saved_model

    model = _tiny_crvae("bfloat16")
    directory = export_saved_model(model, str(tmp_path / "serving"), version=1)
    loaded = tf.saved_model.load(directory)
    z = np.random.default_rng(0).standard_normal((2,) + model.latent_shape).astype("float32")
    outputs = loaded.signatures["sample"](z=tf.constant(z))
    images = [value for value in outputs.values() if value.dtype == tf.float32]
    assert images and images[0].shape[1:] == (28, 28, 1)
    np.testing.assert_allclose(images[0].numpy(), keras.ops.convert_to_numpy(model.decode(z)),
                               atol=1e-5)
    encoded = loaded.signatures["encode"](images=tf.constant(BINARY[:2]))
    assert {value.dtype for value in encoded.values()} == {tf.float32}


def test_from_preset_follows_keras_global_policy():
    """`set_global_policy("mixed_bfloat16")` then `from_preset` without `precision` builds in
    bfloat16 (the preset's own precision no longer overrides it); an explicit `precision` wins;
    a policy the library does not train in is refused in one line (issue 31)."""
    previous = keras.config.dtype_policy()
    try:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        model = keras_crvae.from_preset("mnist_cvae", base_channels=2, latent_channels=8)
        assert precision.of_model(model) == "bfloat16"
        assert keras.config.dtype_policy().name == "mixed_bfloat16"  # left as the caller set it
        model = keras_crvae.from_preset("mnist_cvae", base_channels=2, latent_channels=8,
                                        precision="float32")
        assert precision.of_model(model) == "float32"
        keras.mixed_precision.set_global_policy("mixed_float16")
        with pytest.raises(ValueError, match="global dtype policy is 'mixed_float16'") as error:
            keras_crvae.from_preset("mnist_cvae", base_channels=2, latent_channels=8)
        assert "\n" not in str(error.value)
    finally:
        keras.config.set_dtype_policy(previous)
    model = keras_crvae.from_preset("mnist_cvae", base_channels=2, latent_channels=8)
    assert precision.of_model(model) == "float32"  # the default policy: the preset's precision
