"""SavedModel export for TF Serving (`keras_crvae.export`, `crvae export`).

One tiny cVAE is exported once per module; the tests reload it in fresh processes
(`tf.saved_model.load`, `saved_model_cli`), compare every signature with the Keras model, build TF
Serving `PredictRequest`s, call it from several threads, feed it bad inputs, and break its writing.
"""

import os
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import pytest

import keras_crvae
from keras_crvae import export

tf = pytest.importorskip("tensorflow")
needs_tensorflow = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                      reason="SavedModel export needs the TensorFlow backend")

# Subprocesses import the same keras_crvae as this test (the checkout, not another install).
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
           PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(keras_crvae.__file__))]
                                      + os.environ.get("PYTHONPATH", "").split(os.pathsep)))
BATCH = 5
Z_SIGNATURES = ("serving_default", "sample", "decode")
IMAGE_SIGNATURES = ("encode", "reconstruct")


def _tiny_model():
    model = keras_crvae.from_preset("mnist_cvae", base_channels=2, latent_channels=8, compile=False)
    # Non-trivial BatchNorm statistics so inference mode (moving statistics) is really exercised.
    for variable in model.decoder.non_trainable_variables + model.encoder.non_trainable_variables:
        shape = tuple(variable.shape)
        rng = np.random.default_rng(len(variable.path))
        variable.assign(rng.uniform(0.5, 1.5, shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The exported tiny model, its `.keras` file and the Keras outputs for fixed inputs."""
    root = tmp_path_factory.mktemp("export")
    model = _tiny_model()
    model.save(root / "model.keras")
    rng = np.random.default_rng(0)
    z = rng.standard_normal((BATCH,) + model.latent_shape).astype("float32")
    images = (rng.random((BATCH,) + model.image_shape) < 0.3).astype("float32")
    mean, log_var = model.encode(images)
    expected = {
        "z": z, "images": images,
        "decode": keras.ops.convert_to_numpy(model.decode(z)),
        "mean": keras.ops.convert_to_numpy(mean), "log_var": keras.ops.convert_to_numpy(log_var),
        "reconstruct": keras.ops.convert_to_numpy(model.reconstruct(images)),
    }
    np.savez(root / "inputs.npz", z=z, images=images)
    version_dir = export.export_saved_model(model, root / "serving")
    return {"root": root, "model": model, "dir": version_dir, "expected": expected}


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(exported["dir"])


def _inputs(exported, signature):
    key = "z" if signature in Z_SIGNATURES else "images"
    return key, exported["expected"][key]


def _check_outputs(signature, outputs, expected):
    """Compares one signature's outputs with the Keras model's (float32, same ops: tight tolerance)."""
    if signature in Z_SIGNATURES:
        np.testing.assert_allclose(outputs["images"], expected["decode"], atol=1e-6)
    if signature in ("serving_default", "sample"):
        # uint8 = round(255 * images) for image_range (0, 1), computed here by hand.
        hand = np.round(np.clip(outputs["images"], 0, 1) * 255).astype(np.uint8)
        assert outputs["images_uint8"].dtype == np.uint8
        np.testing.assert_array_equal(outputs["images_uint8"], hand)
    if signature == "encode":
        np.testing.assert_allclose(outputs["mean"], expected["mean"], atol=1e-5)
        np.testing.assert_allclose(outputs["log_var"], expected["log_var"], atol=1e-5)
    if signature == "reconstruct":
        np.testing.assert_allclose(outputs["images"], expected["reconstruct"], atol=1e-6)


@needs_tensorflow
def test_layout_and_metadata(exported):
    base = os.path.dirname(exported["dir"])
    assert os.listdir(base) == ["1"]  # the version folder only: no temporary left behind
    assert os.path.isfile(os.path.join(exported["dir"], "saved_model.pb"))
    assert oct(os.stat(exported["dir"]).st_mode & 0o077) != "0o0"  # readable by a server's user
    metadata = export.read_metadata(exported["dir"])
    assert metadata["latent_shape"] == [4, 4, 8] and metadata["image_shape"] == [28, 28, 1]
    assert metadata["image_range"] == [0.0, 1.0] and metadata["decoder_outputs"] == "logits"
    assert sorted(metadata["signatures"]) == sorted(export.SIGNATURES)


@needs_tensorflow
def test_fresh_process_reload_matches_keras(exported):
    script = textwrap.dedent("""
        import sys, numpy as np, tensorflow as tf
        directory, inputs, output = sys.argv[1:]
        data = np.load(inputs)
        loaded = tf.saved_model.load(directory)
        results = {"signatures": np.array(sorted(loaded.signatures))}
        for name, function in loaded.signatures.items():
            key = "z" if name in ("serving_default", "sample", "decode") else "images"
            for batch in (1, len(data[key])):  # dynamic batch size
                outputs = function(**{key: tf.constant(data[key][:batch])})
                for out_name, value in outputs.items():
                    results[f"{name}/{batch}/{out_name}"] = value.numpy()
        np.savez(output, **results)
    """)
    output = exported["root"] / "fresh.npz"
    result = subprocess.run([sys.executable, "-c", script, exported["dir"],
                             str(exported["root"] / "inputs.npz"), str(output)],
                            env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    results = dict(np.load(output))
    assert sorted(results.pop("signatures")) == sorted(export.SIGNATURES)
    expected = exported["expected"]
    for signature in export.SIGNATURES:
        full = {k.split("/")[2]: v for k, v in results.items() if k.startswith(f"{signature}/{BATCH}/")}
        _check_outputs(signature, full, expected)
        one = {k.split("/")[2]: v for k, v in results.items() if k.startswith(f"{signature}/1/")}
        for name, value in one.items():  # batch 1 gives the first row of batch 5
            np.testing.assert_allclose(value, full[name][:1], atol=1e-6)


def _saved_model_cli():
    beside_python = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    if os.path.isfile(beside_python):
        return [beside_python]
    found = shutil.which("saved_model_cli")
    return [found] if found else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]


@needs_tensorflow
def test_saved_model_cli_show_and_run(exported):
    cli = _saved_model_cli()
    show = subprocess.Popen(cli + ["show", "--dir", exported["dir"], "--all"], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # `saved_model_cli run` itself for serving_default; the other signatures go through the same
    # parse-and-run functions its `run` command calls, in one process (each CLI start costs a
    # TensorFlow import). The two processes run side by side.
    inputs = exported["root"] / "inputs.npz"
    outdirs = {signature: exported["root"] / f"cli_{signature}" for signature in export.SIGNATURES}
    processes = [subprocess.Popen(
        cli + ["run", "--dir", exported["dir"], "--tag_set", "serve", "--signature_def",
               "serving_default", "--inputs", f"z={inputs}[z]",
               "--outdir", str(outdirs["serving_default"])],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    script = textwrap.dedent("""
        import sys
        from tensorflow.python.tools import saved_model_cli
        directory, inputs, outdir_prefix = sys.argv[1:4]
        for signature in sys.argv[4:]:
            key = "images" if signature in ("encode", "reconstruct") else "z"
            feed = saved_model_cli.load_inputs_from_input_arg_string(
                f"{key}={inputs}[{key}]", "", "")
            saved_model_cli.run_saved_model_with_feed_dict(
                directory, "serve", signature, feed, outdir_prefix + signature, False)
    """)
    others = [s for s in export.SIGNATURES if s != "serving_default"]
    processes.append(subprocess.Popen(
        [sys.executable, "-c", script, exported["dir"], str(inputs),
         str(exported["root"] / "cli_")] + others,
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
    stdout, stderr = show.communicate(timeout=300)
    assert show.returncode == 0, stderr[-3000:]
    shown = subprocess.CompletedProcess(show.args, 0, stdout, stderr)
    for signature in export.SIGNATURES:
        assert f"signature_def['{signature}']" in shown.stdout
    assert "inputs['z'] tensor_info:" in shown.stdout
    assert "inputs['images'] tensor_info:" in shown.stdout
    assert "shape: (-1, 4, 4, 8)" in shown.stdout and "shape: (-1, 28, 28, 1)" in shown.stdout
    assert "dtype: DT_UINT8" in shown.stdout and "outputs['log_var']" in shown.stdout
    for signature, outdir in outdirs.items():
        outputs = {name[:-4]: np.load(outdir / name) for name in os.listdir(outdir)}
        assert sorted(outputs) == sorted(
            {"encode": ["log_var", "mean"], "decode": ["images"], "reconstruct": ["images"]}.get(
                signature, ["images", "images_uint8"]))
        _check_outputs(signature, outputs, exported["expected"])


@needs_tensorflow
def test_predict_requests_match_the_signatures(exported, loaded):
    from tensorflow_serving.apis import predict_pb2

    for signature in export.SIGNATURES:
        key, value = _inputs(exported, signature)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "mnist"
        request.model_spec.signature_name = signature
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        # What a server receives: parse the bytes, map the named inputs onto the signature.
        received = predict_pb2.PredictRequest.FromString(request.SerializeToString())
        function = loaded.signatures[received.model_spec.signature_name]
        assert set(received.inputs) == set(function.structured_input_signature[1])
        tensor = received.inputs[key]
        assert tensor.dtype == tf.float32.as_datatype_enum
        assert [d.size for d in tensor.tensor_shape.dim] == list(value.shape)
        outputs = function(**{name: tf.constant(tf.make_ndarray(proto))
                              for name, proto in received.inputs.items()})
        _check_outputs(signature, {k: v.numpy() for k, v in outputs.items()},
                       exported["expected"])


@needs_tensorflow
def test_concurrent_calls_equal_sequential_calls(exported, loaded):
    rng = np.random.default_rng(1)
    jobs = []
    for index in range(24):
        signature = export.SIGNATURES[index % len(export.SIGNATURES)]
        key, _ = _inputs(exported, signature)
        shape = (1 + index % 4,) + (exported["model"].latent_shape if key == "z"
                                    else exported["model"].image_shape)
        value = (rng.standard_normal(shape) if key == "z" else rng.random(shape) < 0.5)
        jobs.append((signature, key, value.astype("float32")))

    def call(job):
        signature, key, value = job
        return {k: v.numpy() for k, v in loaded.signatures[signature](**{key: tf.constant(value)}).items()}

    sequential = [call(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(call, jobs))
    for one, other in zip(sequential, concurrent):
        assert one.keys() == other.keys()
        for name in one:
            np.testing.assert_array_equal(one[name], other[name])


@needs_tensorflow
@pytest.mark.parametrize("signature,key,value,message", [
    ("decode", "z", np.zeros((2, 5), np.float32), r"`z` must have shape \(batch, 4, 4, 8\)"),
    ("sample", "z", np.zeros((2, 4, 4, 3), np.float32), r"`z` must have shape \(batch, 4, 4, 8\)"),
    ("decode", "z", np.full((1, 4, 4, 8), np.nan, np.float32), "`z` must hold finite values"),
    ("sample", "z", np.zeros((0, 4, 4, 8), np.float32), "`z` is an empty batch"),
    ("encode", "images", np.zeros((0, 28, 28, 1), np.float32), "`images` is an empty batch"),
    ("encode", "images", np.full((1, 28, 28, 1), 2.0, np.float32),
     r"`images` values must lie in \[0.0, 1.0\]"),
    ("reconstruct", "images", np.zeros((1, 28, 28), np.float32),
     r"`images` must have shape \(batch, 28, 28, 1\)"),
    ("decode", "z", np.zeros((1, 4, 4, 8), np.float64), "expected to be a float tensor"),
    ("encode", "images", np.zeros((1, 28, 28, 1), np.uint8), "expected to be a float tensor"),
])
def test_bad_inputs_fail_with_clear_errors(loaded, signature, key, value, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures[signature](**{key: tf.constant(value)})


@needs_tensorflow
def test_export_argument_errors(exported, tmp_path):
    model = exported["model"]
    with pytest.raises(ValueError, match="already exists"):
        export.export_saved_model(model, os.path.dirname(exported["dir"]), version=1)
    with pytest.raises(ValueError, match="`version` must be an integer"):
        export.export_saved_model(model, tmp_path, version="2")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        export.export_saved_model(model, tmp_path / "file")
    with pytest.raises(ValueError, match="`decoder` attribute"):
        export.export_saved_model(keras.Sequential([keras.layers.Dense(1)]), tmp_path)


class _PartialArchive:
    """Stands in for the export archive: writes part of a SavedModel, then fails (a full disk)."""

    def write_out(self, directory, **kwargs):
        with open(os.path.join(directory, "saved_model.pb"), "wb") as handle:
            handle.write(b"partial")
        raise OSError("disk full")


@needs_tensorflow
def test_failed_write_leaves_nothing_and_keeps_the_old_version(exported, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "build_export_archive", lambda model: _PartialArchive())
    with pytest.raises(OSError, match="disk full"):
        export.export_saved_model(exported["model"], tmp_path / "new")
    assert os.listdir(tmp_path / "new") == []  # no version folder, no temporary

    old = tmp_path / "old"
    shutil.copytree(exported["dir"], old / "1")
    before = (old / "1" / "saved_model.pb").read_bytes()
    with pytest.raises(OSError, match="disk full"):
        export.export_saved_model(exported["model"], old, overwrite=True)
    assert os.listdir(old) == ["1"] and (old / "1" / "saved_model.pb").read_bytes() == before


@needs_tensorflow
def test_overwrite_replaces_a_version(exported, tmp_path):
    shutil.copytree(exported["dir"], tmp_path / "1")
    (tmp_path / "1" / "stale.txt").write_text("from the old version")
    export.export_saved_model(exported["model"], tmp_path, overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["1"]
    assert not (tmp_path / "1" / "stale.txt").exists()
    reloaded = tf.saved_model.load(str(tmp_path / "1"))
    outputs = reloaded.signatures["decode"](z=tf.constant(exported["expected"]["z"]))
    np.testing.assert_allclose(outputs["images"].numpy(), exported["expected"]["decode"], atol=1e-6)


@needs_tensorflow
def test_crvae_export_command(exported):
    root = exported["root"]
    result = subprocess.run(
        [sys.executable, "-m", "keras_crvae.cli", "export", "--model", str(root / "model.keras"),
         "--output", str(root / "cli_serving"), "--version", "7"],
        cwd=root, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.listdir(root / "cli_serving") == ["7"]
    reloaded = tf.saved_model.load(str(root / "cli_serving" / "7"))
    outputs = reloaded.signatures["sample"](z=tf.constant(exported["expected"]["z"]))
    np.testing.assert_allclose(outputs["images"].numpy(), exported["expected"]["decode"], atol=1e-6)


@pytest.mark.portable
def test_decoder_output_mapping_by_hand():
    logits = np.array([[-2.0, 0.0, 3.0]], np.float32)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(
        export.images_from_decoder_output(logits, "logits")), 1 / (1 + np.exp(-logits)), rtol=1e-6)
    tanh_images = np.array([[-1.0, 0.0, 0.5, 1.0]], np.float32)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(
        export.images_from_decoder_output(tanh_images, "images")), tanh_images)
    # (-1, 1) -> 0..255: -1 -> 0, 0 -> 127.5 -> 128 (round half to even gives 128), 0.5 -> 191.25
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(
        export.images_to_uint8(tanh_images, (-1.0, 1.0))), [[0, 128, 191, 255]])
    with pytest.raises(ValueError, match="decoder_outputs"):
        export.images_from_decoder_output(logits, "probabilities")


@pytest.mark.portable
def test_serving_contract_defaults_and_gan_style_models():
    class GanLike:
        encoder = decoder = None
        image_shape, latent_shape = (8, 8, 3), (16,)
        image_range, decoder_outputs = (-1, 1), "images"

    contract = export.serving_contract(GanLike())
    assert contract["image_range"] == (-1.0, 1.0) and contract["decoder_outputs"] == "images"
    vae = keras_crvae.from_preset("mnist_cvae", base_channels=1, latent_channels=2, compile=False)
    assert export.serving_contract(vae)["image_range"] == (0.0, 1.0)
    assert export.serving_contract(vae)["decoder_outputs"] == "logits"
    GanLike.decoder_outputs = "scores"
    with pytest.raises(ValueError, match="decoder_outputs"):
        export.serving_contract(GanLike())
