"""SavedModel export for TF Serving: `export_saved_model(model, path, version=1)`.

Every model of the library shares one serving contract: `model.encoder` maps images
`(B, *image_shape)` to `[mean, log_var]`, each `(B, *latent_shape)`, and `model.decoder` maps latents
`z` `(B, *latent_shape)` to a decoder output that `images_from_decoder_output` turns into images in
`image_range` (Bernoulli logits -> `sigmoid` for the VAE family; tanh images, range (-1, 1), for the
GAN models). The exported SavedModel has these signatures (batch size dynamic, float32 inputs):

    serving_default, sample   z (B, *latent_shape)          -> images (B, *image_shape) float32,
                                                                 images_uint8 (B, *image_shape) uint8
    decode                    z (B, *latent_shape)          -> images float32
    encode                    images (B, *image_shape)      -> mean, log_var (B, *latent_shape)
    reconstruct               images (B, *image_shape)      -> images float32 (decoded posterior mean)

A generator-only model (`GAN`, `InfoGAN`: no `encoder`) exports `serving_default`, `sample` and
`decode` only; InfoGAN's latents are `[z, one_hot(c_cat), c_cont]` (`InfoGAN.latents_from_codes`).

A hierarchical model (`HierarchicalVAE`) serves its top latent: `latent_shape` is `z2`'s, `decode` and
`sample` run `z2 -> E[z1|z2] -> images`, and `encode` returns `q(z2|.)` along the posterior mean path;
the model's `serving_networks()` provides the two networks.

A style-based generator (`StyleGAN`: it has `synthesize` and `w_dim`) takes a truncation psi in
`sample` (Karras et al. 2019, section 3.2; psi = 1 is the plain generator, 0 the mean image) and
adds `sample_w`, which starts from intermediate latents w instead of z:

    serving_default, sample   z (B, latent_dim), truncation_psi () -> images, images_uint8
    sample_w                  w (B, w_dim), truncation_psi ()      -> images, images_uint8

An autoregressive model samples value by value (`models.PixelCNN`, and `models.VQVAE` with its
PixelCNN prior over the code map; Oord et al. 2016a section 3.4, 2017 section 3.1): its `sample`
takes the uniforms whose inverse CDFs give the values (the compiled loop of
`models.autoregressive.AutoregressiveSampler`, a `tf.while_loop` in the graph) and a temperature:

    PixelCNN   serving_default, sample   uniforms (B, H, W, C) in [0, 1), temperature () > 0
                                              -> images (B, H, W, C) in [0, 1], images_uint8
               log_likelihood            values (B, H, W, C) in data units -> log_likelihood (B,)
    VQ-VAE     serving_default, sample   uniforms (B, h, w, 1), temperature ()
                                              -> images, images_uint8, codes (B, h, w) int32
               decode_codes              codes (B, h, w) int32 -> images
               reconstruct               images (B, H, W, C) in [0, 1] -> images

(A conditional PixelCNN, e.g. VLAE's decoder, and a VQ-VAE without its prior are refused.)

`sample` takes the latent noise as input instead of drawing it, so a served model is deterministic:
the client draws `z ~ N(0, I)` (and can replay it). `images_uint8` maps `image_range` linearly onto
0..255 (rounded), ready to write as PNG.

Input validation, in two layers:
1. The signature's `TensorSpec` (dtype float32, shape `(None, *shape)`): `tf.saved_model.load` callers
   get a `TypeError`/`ValueError` before anything runs, `saved_model_cli run` a "Cannot feed value
   of shape" error, and TF Serving rejects a tensor of another dtype in a gRPC request (REST JSON
   numbers are converted to float32).
2. Checks inside the graph, which run in every server (TF Serving does not compare a request's shape
   with the signature): the per-example shape, a batch of at least one example, finite values and,
   for `images`, the value range.
   A violation fails the request with an `InvalidArgumentError` whose message names the input and the
   expected shape or range, e.g. "`z` must have shape (batch, 4, 4, 64)".

The directory is written atomically: the SavedModel goes to a temporary directory beside the version
folder and is renamed onto `path/<version>/` only when complete, so TF Serving, which polls `path` for
new numeric versions, never loads a half-written model. An `assets.extra/keras_crvae.json` records the
shapes, image range and signatures for clients.

Export is TensorFlow-only (docs/design.md section 2): run it with `KERAS_BACKEND=tensorflow`;
`.keras` files trained under JAX load there unchanged.

Reference: TF Serving "SavedModel" and "RESTful API" guides (signature names, version folders);
`keras.export.ExportArchive`.
"""

import json
import os
import shutil
import tempfile

import numpy as np

from keras_crvae.io import enter_phase

# The mapping from a model's `decoder_outputs` kind to images in its `image_range`. New model kinds
# plug in here (one entry), and every signature follows.
DECODER_OUTPUT_KINDS = ("logits", "images")
DEFAULT_IMAGE_RANGE = (0.0, 1.0)
DEFAULT_DECODER_OUTPUTS = "logits"
SIGNATURES = ("serving_default", "sample", "decode", "encode", "reconstruct")
METADATA_FILE = os.path.join("assets.extra", "keras_crvae.json")


def serving_contract(model):
    """The serving facts of `model`, read with the library's defaults.

    Args:
        model: a model with `decoder`, `image_shape`, `latent_shape` and optionally `encoder`
            (without it only the latent -> image signatures are served), `image_range` (default
            (0.0, 1.0)) and `decoder_outputs` (default "logits").

    Returns:
        dict with `image_shape`, `latent_shape` (tuples of int), `image_range` (two floats) and
        `decoder_outputs` (str).

    Raises:
        ValueError: a missing attribute, an unknown `decoder_outputs` or an empty `image_range`.
    """
    for attribute in ("decoder", "image_shape", "latent_shape"):
        if not hasattr(model, attribute):
            raise ValueError(
                f"`model` must have a `{attribute}` attribute (the library's serving contract: "
                f"decoder, image_shape, latent_shape[, encoder]); got {type(model).__name__}."
            )
    decoder_outputs = getattr(model, "decoder_outputs", DEFAULT_DECODER_OUTPUTS)
    if decoder_outputs not in DECODER_OUTPUT_KINDS:
        raise ValueError(
            f"`model.decoder_outputs` must be one of {DECODER_OUTPUT_KINDS}, got {decoder_outputs!r}."
        )
    low, high = (float(v) for v in getattr(model, "image_range", DEFAULT_IMAGE_RANGE))
    if not low < high:
        raise ValueError(f"`model.image_range` must be (low, high) with low < high, got {(low, high)}.")
    return {
        "image_shape": tuple(int(d) for d in model.image_shape),
        "latent_shape": tuple(int(d) for d in model.latent_shape),
        "image_range": (low, high),
        "decoder_outputs": decoder_outputs,
        "has_encoder": hasattr(model, "encoder"),
    }


def images_from_decoder_output(decoder_output, decoder_outputs=DEFAULT_DECODER_OUTPUTS):
    """Images from a decoder's raw output: `sigmoid` of Bernoulli logits, or the output itself.

    Args:
        decoder_output: tensor `(B, *image_shape)`.
        decoder_outputs: str, "logits" (VAE family: pixel probabilities = sigmoid(logits)) or
            "images" (GAN models: the decoder ends in tanh and already outputs images).

    Returns:
        float tensor `(B, *image_shape)` in the model's `image_range`.
    """
    from keras import ops

    if decoder_outputs == "logits":
        return ops.sigmoid(decoder_output)
    if decoder_outputs == "images":
        return decoder_output
    raise ValueError(
        f"`decoder_outputs` must be one of {DECODER_OUTPUT_KINDS}, got {decoder_outputs!r}."
    )


def images_to_uint8(images, image_range=DEFAULT_IMAGE_RANGE):
    """Maps float images in `image_range` linearly onto 0..255 (clipped, rounded) as uint8.

    Args:
        images: float tensor of any shape.
        image_range: `(low, high)`; `low` -> 0 and `high` -> 255.
    """
    from keras import ops

    low, high = image_range
    unit = ops.clip((images - low) / (high - low), 0.0, 1.0)
    return ops.cast(ops.round(unit * 255.0), "uint8")


def _shape_text(shape):
    return "(batch, " + ", ".join(str(d) for d in shape) + ")"


def _check_input(tensor, name, shape, value_range=None):
    """In-graph checks of a served input (see the module docstring); returns the tensor."""
    import tensorflow as tf

    # Compare (rank, dims) without broadcasting so a wrong rank fails this check, not a later op.
    actual = tf.shape(tensor)
    padded = tf.concat([actual[1:], tf.fill([len(shape)], -1)], axis=0)[:len(shape)]
    shape_ok = tf.logical_and(tf.equal(tf.size(actual), len(shape) + 1),
                              tf.reduce_all(tf.equal(padded, tf.constant(shape, tf.int32))))
    # An empty batch would otherwise fail deep inside the networks ("Incompatible shapes").
    not_empty = tf.reduce_prod(actual[:1]) > 0
    shape_checks = [
        tf.debugging.Assert(shape_ok, [f"`{name}` must have shape {_shape_text(shape)}; got",
                                       actual]),
        tf.debugging.Assert(not_empty, [f"`{name}` is an empty batch: send at least one "
                                        f"example of shape {_shape_text(shape)}; got", actual]),
    ]
    # The value checks reduce over the signature's rank: run them only once the shape is known to
    # be right, so a wrong rank always answers with the shape message (the executor may otherwise
    # run an independent value check first and fail inside its reduction).
    with tf.control_dependencies(shape_checks):
        checks = [tf.debugging.assert_all_finite(tf.identity(tensor),
                                                 f"`{name}` must hold finite values")]
        if value_range is not None:
            low, high = value_range
            in_range = f"`{name}` values must lie in [{low}, {high}]"
            checks += [tf.debugging.assert_greater_equal(tensor, tf.cast(low, tensor.dtype),
                                                         message=in_range),
                       tf.debugging.assert_less_equal(tensor, tf.cast(high, tensor.dtype),
                                                      message=in_range)]
    with tf.control_dependencies(shape_checks + checks):
        return tf.identity(tensor)


def build_export_archive(model):
    """A `keras.export.ExportArchive` holding the serving signatures of the module docstring.

    Args:
        model: a model following the serving contract (see `serving_contract`).

    Returns:
        `keras.export.ExportArchive`, ready for `write_out(directory)`.
    """
    import keras
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "SavedModel export needs the TensorFlow backend (KERAS_BACKEND=tensorflow); got "
            f"{keras.backend.backend()!r}. Load the .keras file under TensorFlow and export there."
        )
    if _autoregressive_kind(model):
        return _autoregressive_archive(model)
    contract = serving_contract(model)
    image_shape, latent_shape = contract["image_shape"], contract["latent_shape"]
    image_range, decoder_outputs = contract["image_range"], contract["decoder_outputs"]
    # Hierarchical models serve their top latent: networks images -> q(z_top) and z_top -> decoder
    # output (`HierarchicalVAE.serving_networks`).
    serving_networks = getattr(model, "serving_networks", None)
    encoder, decoder = serving_networks() if callable(serving_networks) else (
        getattr(model, "encoder", None), model.decoder)
    # Served with their BatchNormalizations folded into the convolutions (the same function on the
    # same variables, faster: keras_crvae.networks.inference_network).
    from keras_crvae.networks.inference import inference_network

    decoder = inference_network(decoder)
    encoder = None if encoder is None else inference_network(encoder)
    z_spec = tf.TensorSpec((None,) + latent_shape, tf.float32, name="z")
    images_spec = tf.TensorSpec((None,) + image_shape, tf.float32, name="images")

    def to_images(z):
        # Networks may compute in bfloat16 (keras_crvae.precision): their inputs enter as float32
        # (the layers cast) and the output activation runs in float32, as in the Keras model.
        output = tf.cast(decoder(z, training=False), tf.float32)
        return images_from_decoder_output(output, decoder_outputs)

    def sample(z):
        images = to_images(_check_input(z, "z", latent_shape))
        return {"images": images, "images_uint8": images_to_uint8(images, image_range)}

    def decode(z):
        return {"images": to_images(_check_input(z, "z", latent_shape))}

    def encode(images):
        images = _check_input(images, "images", image_shape, image_range)
        mean, log_var = encoder(images, training=False)
        return {"mean": tf.cast(mean, tf.float32), "log_var": tf.cast(log_var, tf.float32)}

    def reconstruct(images):
        images = _check_input(images, "images", image_shape, image_range)
        mean, _ = encoder(images, training=False)
        return {"images": to_images(tf.cast(mean, tf.float32))}

    archive = keras.export.ExportArchive()
    if _is_style_based(model):
        _add_style_endpoints(archive, model, z_spec, image_range)
        archive.add_endpoint("decode", decode, input_signature=[z_spec])
        return archive
    # No `archive.track(model)`: the archive saves the variables the endpoints use (the two
    # networks' weights, no optimizer or sampler state), and tracking the Keras variables as well
    # would store every weight twice (Keras 3.15 TF backend: the Keras variables and the
    # tf.Variables the functions capture are saved as separate objects; 6.1 MB instead of 3.1 MB).
    # The first endpoint is also written as "serving_default" (one trace shared by both names).
    archive.add_endpoint("sample", sample, input_signature=[z_spec])
    archive.add_endpoint("decode", decode, input_signature=[z_spec])
    if encoder is not None:
        archive.add_endpoint("encode", encode, input_signature=[images_spec])
        archive.add_endpoint("reconstruct", reconstruct, input_signature=[images_spec])
    return archive


def _autoregressive_kind(model):
    """"pixelcnn", "vq_vae" (a VQ-VAE with its prior) or None, by the model's duck type (see the
    module docstring); refuses the autoregressive models that cannot be served."""
    if hasattr(model, "sampler") and hasattr(model, "data_kind"):
        if model.conditional:
            raise ValueError("A conditional PixelCNN (e.g. a VLAE's decoder) cannot be exported "
                             "on its own: its sample needs the condition map; export the model "
                             "that makes the condition.")
        return "pixelcnn"
    if hasattr(model, "decode_codes") and hasattr(model, "prior"):
        if model.prior is None:
            raise ValueError("This VQ-VAE has no prior to sample codes from: train it with the "
                             "vq_vae job (or attach one with `set_prior`) before exporting.")
        return "vq_vae"
    return None


def _autoregressive_archive(model):
    """The `ExportArchive` of a PixelCNN or a VQ-VAE with its prior (module docstring)."""
    import keras
    import tensorflow as tf

    from keras_crvae.models.autoregressive import value_range

    kind = _autoregressive_kind(model)
    pixelcnn = model if kind == "pixelcnn" else model.prior
    value_shape = tuple(int(d) for d in pixelcnn.image_shape)
    top = float(value_range(pixelcnn.data_kind, pixelcnn.levels)[1])
    uniforms_spec = tf.TensorSpec((None,) + value_shape, tf.float32, name="uniforms")
    temperature_spec = tf.TensorSpec((), tf.float32, name="temperature")

    def draw(uniforms, temperature):
        uniforms = _check_input(uniforms, "uniforms", value_shape, (0.0, 1.0))
        tf.debugging.assert_positive(temperature, "`temperature` must be > 0")
        # The compiled sampler's loop (a tf.while_loop here), without the Python-side checks.
        return pixelcnn.sampler._loop(uniforms, temperature, None)

    archive = keras.export.ExportArchive()
    if kind == "pixelcnn":
        def sample(uniforms, temperature):
            images = draw(uniforms, temperature) / top
            return {"images": images, "images_uint8": images_to_uint8(images)}

        def log_likelihood(values):
            values = _check_input(values, "values", value_shape, (0.0, top))
            return {"log_likelihood": tf.cast(model.log_likelihood(values), tf.float32)}

        archive.add_endpoint("sample", sample, input_signature=[uniforms_spec, temperature_spec])
        archive.add_endpoint("log_likelihood", log_likelihood, input_signature=[
            tf.TensorSpec((None,) + value_shape, tf.float32, name="values")])
        return archive

    codes_spec = tf.TensorSpec((None,) + tuple(model.code_map_shape), tf.int32, name="codes")
    images_spec = tf.TensorSpec((None,) + tuple(model.image_shape), tf.float32, name="images")

    def sample(uniforms, temperature):
        codes = tf.cast(draw(uniforms, temperature)[..., 0], tf.int32)
        images = tf.cast(model.decode_codes(codes), tf.float32)
        return {"images": images, "images_uint8": images_to_uint8(images), "codes": codes}

    def decode_codes(codes):
        tf.debugging.assert_greater_equal(codes, 0, "`codes` must be in [0, num_codes)")
        tf.debugging.assert_less(codes, model.num_codes, "`codes` must be in [0, num_codes)")
        return {"images": tf.cast(model.decode_codes(codes), tf.float32)}

    def reconstruct(images):
        images = _check_input(images, "images", tuple(model.image_shape), (0.0, 1.0))
        return {"images": tf.cast(model.reconstruct(images), tf.float32)}

    archive.add_endpoint("sample", sample, input_signature=[uniforms_spec, temperature_spec])
    archive.add_endpoint("decode_codes", decode_codes, input_signature=[codes_spec])
    archive.add_endpoint("reconstruct", reconstruct, input_signature=[images_spec])
    return archive


def _autoregressive_metadata(model):
    import keras_crvae

    kind = _autoregressive_kind(model)
    pixelcnn = model if kind == "pixelcnn" else model.prior
    sample = {"inputs": {"uniforms": "[0, 1)", "temperature": "scalar > 0"},
              "outputs": ["images", "images_uint8"] + (["codes"] if kind == "vq_vae" else [])}
    signatures = {"serving_default": sample, "sample": sample}
    if kind == "pixelcnn":
        signatures["log_likelihood"] = {"inputs": {"values": "data units"},
                                        "outputs": ["log_likelihood"]}
    else:
        signatures["decode_codes"] = {"inputs": {"codes": "int32"}, "outputs": ["images"]}
        signatures["reconstruct"] = {"inputs": {"images": "image"}, "outputs": ["images"]}
    return {
        "model": getattr(model, "name", type(model).__name__),
        "model_class": type(model).__name__,
        "keras_crvae_version": keras_crvae.__version__,
        "image_shape": list(model.image_shape),
        "uniforms_shape": list(pixelcnn.image_shape),
        "data_kind": pixelcnn.data_kind,
        "image_range": list(DEFAULT_IMAGE_RANGE),
        "signatures": signatures,
    }


def _is_style_based(model):
    return callable(getattr(model, "synthesize", None)) and hasattr(model, "w_dim")


def _add_style_endpoints(archive, model, z_spec, image_range):
    """`sample` (z, psi) and `sample_w` (w, psi) of a style-based generator (module docstring)."""
    import tensorflow as tf

    psi_spec = tf.TensorSpec((), tf.float32, name="truncation_psi")
    w_spec = tf.TensorSpec((None, model.w_dim), tf.float32, name="w")
    latent_shape = tuple(model.latent_shape)

    def images_from_w(w, truncation_psi):
        tf.debugging.assert_all_finite(truncation_psi, "`truncation_psi` must be finite")
        images = tf.cast(model.synthesize(w, truncation_psi), tf.float32)
        return {"images": images, "images_uint8": images_to_uint8(images, image_range)}

    def sample(z, truncation_psi):
        return images_from_w(model.map(_check_input(z, "z", latent_shape)), truncation_psi)

    def sample_w(w, truncation_psi):
        return images_from_w(_check_input(w, "w", (model.w_dim,)), truncation_psi)

    archive.add_endpoint("sample", sample, input_signature=[z_spec, psi_spec])
    archive.add_endpoint("sample_w", sample_w, input_signature=[w_spec, psi_spec])


def _metadata(model, contract):
    import keras_crvae

    signatures = {
        "serving_default": {"inputs": {"z": "latent"}, "outputs": ["images", "images_uint8"]},
        "sample": {"inputs": {"z": "latent"}, "outputs": ["images", "images_uint8"]},
        "decode": {"inputs": {"z": "latent"}, "outputs": ["images"]},
    }
    if _is_style_based(model):
        for name in ("serving_default", "sample"):
            signatures[name]["inputs"]["truncation_psi"] = "scalar"
        signatures["sample_w"] = {"inputs": {"w": "intermediate latent",
                                             "truncation_psi": "scalar"},
                                  "outputs": ["images", "images_uint8"]}
    if contract["has_encoder"]:
        signatures["encode"] = {"inputs": {"images": "image"}, "outputs": ["mean", "log_var"]}
        signatures["reconstruct"] = {"inputs": {"images": "image"}, "outputs": ["images"]}
    return {
        "model": getattr(model, "name", type(model).__name__),
        "model_class": type(model).__name__,
        "keras_crvae_version": keras_crvae.__version__,
        "image_shape": list(contract["image_shape"]),
        "latent_shape": list(contract["latent_shape"]),
        "image_range": list(contract["image_range"]),
        "decoder_outputs": contract["decoder_outputs"],
        "signatures": signatures,
    }


def export_saved_model(model, path, version=1, overwrite=False, verbose=False):
    """Writes `model` as a TF Serving SavedModel into `path/<version>/`, atomically.

    Args:
        model: a model following the serving contract (`serving_contract`), e.g.
            `keras_crvae.models.VAE`.
        path: str or path-like, the model base directory TF Serving watches (`--model_base_path`).
        version: int >= 0, default 1. The version folder's name.
        overwrite: bool, default False. Replace an existing `path/<version>/`; otherwise that is an
            error (TF Serving would not reload a changed version anyway).
        verbose: bool, default False. Print the exported endpoints (Keras' listing).

    Returns:
        str, the version directory written.

    Raises:
        ValueError: a bad `version`, an existing version without `overwrite`, a model outside the
            contract, or a backend other than TensorFlow.

    >>> from keras_crvae import from_preset
    >>> export_saved_model(from_preset("mnist_cvae", base_channels=4), "/tmp/served/mnist")
    '/tmp/served/mnist/1'
    """
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 0:
        raise ValueError(f"`version` must be an integer >= 0 (TF Serving's folder name); got {version!r}.")
    autoregressive = _autoregressive_kind(model)
    contract = None if autoregressive else serving_contract(model)
    base = os.path.abspath(os.fspath(path))
    if os.path.exists(base) and not os.path.isdir(base):
        raise ValueError(f"`path`={path!r} is a file; it must be a directory (TF Serving's model base path).")
    target = os.path.join(base, str(int(version)))
    if os.path.exists(target) and not overwrite:
        raise ValueError(
            f"{target} already exists; pass overwrite=True (--overwrite) to replace it or choose "
            "another `version`."
        )
    archive = build_export_archive(model)
    os.makedirs(base, exist_ok=True)
    # A dot-name TF Serving ignores (it loads only numeric folders), on the same file system.
    staging = tempfile.mkdtemp(prefix=f".tmp-{int(version)}-", dir=base)
    previous = None
    try:
        enter_phase("export")  # the drills' SIGTERM hook (keras_crvae.io)
        archive.write_out(staging, verbose=verbose)
        os.makedirs(os.path.join(staging, "assets.extra"), exist_ok=True)
        with open(os.path.join(staging, METADATA_FILE), "w") as handle:
            json.dump(_autoregressive_metadata(model) if autoregressive else
                      _metadata(model, contract), handle, indent=2, sort_keys=True)
            handle.write("\n")
        if os.path.exists(target):
            previous = tempfile.mkdtemp(prefix=f".old-{int(version)}-", dir=base)
            os.rmdir(previous)
            os.rename(target, previous)
        # mkdtemp makes the folder 0700; give it the permissions of a normal folder so a server
        # running as another user (the TF Serving container) can read it.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)
        os.rename(staging, target)
    except BaseException:
        if previous is not None and not os.path.exists(target):
            os.rename(previous, target)  # put the old version back
            previous = None
        raise
    finally:
        for leftover in (staging, previous):
            if leftover is not None and os.path.exists(leftover):
                shutil.rmtree(leftover, ignore_errors=True)
    return target


def read_metadata(version_dir):
    """The `assets.extra/keras_crvae.json` written beside an exported SavedModel, as a dict."""
    with open(os.path.join(os.fspath(version_dir), METADATA_FILE)) as handle:
        return json.load(handle)
