"""The `crvae` command: `crvae train | evaluate | sample | presets | export` (absl flags).

    crvae train                                   # quick start on the embedded MNIST subset
    crvae train --preset=mnist_crvae --data=../shared/data/mnist.npz:x_train --epochs=200
    crvae train --preset=celeba_crvae_gan --data=faces.npz --epochs=2 --set base_channels=8
    crvae train --preset=mnist_two_stage --epochs=20 --stage2_epochs=40   # both stages
    crvae train --strategy=mirrored               # all local GPUs (TF_CONFIG: --strategy=multi_worker)
    crvae evaluate --model=crvae_run/model.keras --data=embedded:test --num_samples=1000
    crvae sample --model=crvae_run/model.keras --num_images=64 --output=samples.png
    crvae presets
    crvae export --model=crvae_run/model.keras --output=serving/mnist_crvae --version=1
    crvae complete --model=celeba_vae_gan_run/model.keras --images=faces.npz --mask=centre \
        --output=completions.png

One rule for every command: a mistake in what the user typed (a flag, a value, a path, a file that is
not what it should be) ends the command with exit status 2 and one line,
`crvae COMMAND: error: --flag=value: what is expected`, before any work starts. Flags, data files and
output paths are checked before TensorFlow is imported, so such errors come back in a fraction of a
second. A Python traceback appears only with `--verbose` or for a bug in the library. Ctrl-C ends
with exit status 130 and one line.
"""

import json
import math
import os
import re
import sys

from absl import flags

PROGRAM = "crvae"
USAGE = (
    "usage: crvae {train,evaluate,sample,presets,export,complete} [--flags]\n"
    "  train     train a preset and write model.keras, samples.png, reconstructions.png,\n"
    "            metrics.json, history.csv into --output_dir\n"
    "  evaluate  ELBO, importance-sampled NLL and active units of a saved model\n"
    "  sample    write a PNG grid of prior samples of a saved model\n"
    "  presets   list the presets\n"
    "  export    write a TF Serving SavedModel into OUTPUT/VERSION/\n"
    "  complete  fill the masked part of images by optimising z; write a PNG grid\n"
    "Run `crvae COMMAND --help` for a command's flags."
)
EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130

# The CLI's own flag registry: absl's global one also holds absl's logging flags and any flags of
# imported modules, which are not ours to offer.
FLAGS = flags.FlagValues()
_define = dict(string=flags.DEFINE_string, integer=flags.DEFINE_integer, float=flags.DEFINE_float,
               boolean=flags.DEFINE_boolean, multi_string=flags.DEFINE_multi_string)
_define["string"]("preset", "mnist_crvae_quickstart", "Preset name (see `crvae presets`).",
                  flag_values=FLAGS)
_define["string"](
    "data", None,
    "Images. MNIST presets and evaluate: 'embedded' / 'embedded:test' (the packaged MNIST subset), "
    "'PATH.npz' or 'PATH.npz:KEY', or 'tfds:mnist' / 'tfds:binarized_mnist' (prepared in "
    "--data_dir); default: embedded training images for train, embedded:test for evaluate. GAN "
    "presets: 64x64 colour images 'PATH.npz[:KEY]' (key 'x' by default), like --npz.",
    flag_values=FLAGS)
_define["string"]("eval_data", "embedded:test",
                  "Images evaluated after training (MNIST and Two-Stage presets).", flag_values=FLAGS)
_define["string"]("data_dir", None, "TFDS data directory for --data=tfds:NAME / --tfds.",
                  flag_values=FLAGS)
_define["string"]("output_dir", None,
                  "Where the artifacts are written (default: crvae_run for the quick-start "
                  "preset, PRESET_run for the others).", flag_values=FLAGS)
_define["integer"]("epochs", None, "Epochs (default: the preset's). More epochs than a finished "
                   "run in --output_dir has: training continues from there.", flag_values=FLAGS)
_define["integer"]("batch_size", None, "Batch size (default: the preset's).", flag_values=FLAGS)
_define["float"]("learning_rate", None, "Initial learning rate (default: the preset's).",
                 flag_values=FLAGS)
_define["integer"]("time_steps", None, "crVAE time steps T (default: the preset's).",
                   flag_values=FLAGS)
_define["string"]("precision", None, "float32, bfloat16 (mixed: bf16 convolutions and matmuls, "
                  "float32 densities, statistics and weights) or auto (bfloat16 on CPUs with "
                  "native bf16 arithmetic, e.g. AVX512-BF16; float32 elsewhere). Default: the "
                  "preset's (float32). See docs/performance.md.", flag_values=FLAGS)
_define["multi_string"]("set", [], "Other preset settings as KEY=VALUE (repeatable), e.g. "
                        "--set base_channels=8; `crvae train --set help=1` lists the keys.",
                        flag_values=FLAGS)
_define["integer"]("nll_samples", 100, "Importance samples k for the NLL after training.",
                   flag_values=FLAGS)
_define["integer"]("nll_images", 500, "Evaluation images used for the NLL after training.",
                   flag_values=FLAGS)
_define["boolean"]("fresh", False, "Delete the previous run in --output_dir and train from "
                   "epoch 0 (without it a killed run resumes and a finished one is kept).",
                   flag_values=FLAGS)
_define["string"]("npz", None, "GAN presets: 64x64 colour images, 'PATH.npz' or 'PATH.npz:KEY' "
                  "(key 'x' by default).", flag_values=FLAGS)
_define["string"]("image_dir", None, "GAN presets: a folder of image files.", flag_values=FLAGS)
_define["string"]("tfds", None, "GAN presets: a TFDS dataset prepared in --data_dir, e.g. "
                  "celeb_a, caltech_birds2011, lsun/bedroom.", flag_values=FLAGS)
_define["integer"]("steps_per_epoch", None, "GAN presets: steps per epoch (default: one pass "
                   "over the data). Sprites presets: steps per epoch (default: 737,280 images, "
                   "the dSprites grid's size).", flag_values=FLAGS)
_define["integer"]("seed", 0, "Random seed.", flag_values=FLAGS)
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                  "tf.distribute strategy: one device, MirroredStrategy over the local GPUs, or "
                  "MultiWorkerMirroredStrategy configured by the TF_CONFIG environment variable.",
                  flag_values=FLAGS)
_define["string"]("model", None, "Path of a .keras model written by `crvae train`.",
                  flag_values=FLAGS)
_define["integer"]("num_samples", 1000, "Importance samples k per image for the NLL.",
                   flag_values=FLAGS)
_define["integer"]("num_images", None, "evaluate: images used (default all); sample: grid size "
                   "(default 64).", flag_values=FLAGS)
flags.DEFINE_enum("binarize", "static", ["static", "none"],
                  "Binarize grey levels with a fixed draw, or use the values as they are.",
                  flag_values=FLAGS)
_define["string"]("output", None, "evaluate: metrics JSON path (default: evaluation.json beside "
                  "the model); sample: PNG path (default samples.png); export: the model base "
                  "directory (the SavedModel goes to OUTPUT/VERSION/).", flag_values=FLAGS)
_define["integer"]("version", 1, "The SavedModel's version folder (TF Serving).",
                   flag_values=FLAGS)
_define["boolean"]("overwrite", False, "Replace an existing version folder.", flag_values=FLAGS)
_define["integer"]("stage2_epochs", None, "Two-Stage presets: stage-2 epochs (default: the "
                   "preset's).", flag_values=FLAGS)
_define["integer"]("num_fid_samples", 1000, "Two-Stage presets: samples per stage for the "
                   "MNIST-classifier FID (0 skips it).", flag_values=FLAGS)
_define["boolean"]("traversals", False, "sample: write a latent traversal grid instead (rows = "
                   "the 10 latents of largest mean KL over evaluation images, 8 values in "
                   "[-2.5, 2.5] each): procedural sprites for 64x64x1 models, the embedded MNIST "
                   "test images for 28x28x1 ones.", flag_values=FLAGS)
_define["string"]("images", None, "complete: images 'PATH.npz[:KEY]' (key 'x' by default), "
                  "uint8 0..255 or floats in [0, 1], of the model's image size.", flag_values=FLAGS)
_define["string"]("mask", "centre", "complete: centre, left, right, top, bottom, random_blocks, or "
                  "'PATH.npz[:KEY]' holding a 0/1 array (1 = observed) of shape (H, W), (H, W, 1) "
                  "or (N, H, W[, 1]).", flag_values=FLAGS)
_define["integer"]("steps", 200, "complete: Adam steps on z.", flag_values=FLAGS)
_define["float"]("prior_weight", 1e-5, "complete: gamma, weight of -log N(z; 0, I) (supplement "
                 "section D).", flag_values=FLAGS)
_define["float"]("adversarial_weight", 0.003, "complete: tau, weight of log(1 - D(x)) (models "
                 "with a discriminator only).", flag_values=FLAGS)
_define["boolean"]("verbose", False, "Show TensorFlow's log and full Python tracebacks.",
                   flag_values=FLAGS)

COMMON_FLAGS = ("seed", "verbose")
COMMAND_FLAGS = {
    "train": ("preset", "data", "eval_data", "data_dir", "output_dir", "epochs", "batch_size",
              "learning_rate", "time_steps", "precision", "set", "fresh", "nll_samples", "nll_images", "npz",
              "image_dir", "tfds", "steps_per_epoch", "stage2_epochs", "num_fid_samples",
              "strategy"),
    "evaluate": ("model", "data", "data_dir", "num_samples", "num_images", "binarize", "output"),
    "sample": ("model", "num_images", "output", "traversals"),
    "presets": (),
    "export": ("model", "output", "version", "overwrite"),
    "complete": ("model", "images", "mask", "num_images", "steps", "learning_rate",
                 "prior_weight", "adversarial_weight", "output"),
}
SUMMARIES = {
    "train": "Train a preset; write model.keras, samples.png, reconstructions.png, metrics.json "
             "and history.csv into --output_dir. Rerunning resumes a killed run, continues a "
             "finished one when --epochs asks for more, and otherwise says it is already trained.",
    "evaluate": "ELBO, importance-sampled NLL and active units of a saved VAE-family model on "
                "statically binarized images; reconstruction error of a VAE-GAN / crVAE-GAN.",
    "sample": "Write a PNG grid of prior samples of a saved model.",
    "presets": "List the presets.",
    "export": "Write a TF Serving SavedModel of a saved model into OUTPUT/VERSION/.",
    "complete": "Fill the masked part of images by optimising the latent code z of a saved model "
                "(masked MSE - gamma log N(z; 0, I) + tau log(1 - D(x)); crVAE supplement "
                "section D) and write a PNG grid: masked input, completion, original.",
}


class UsageError(Exception):
    """A mistake in what the user typed: one line, exit status 2."""


def _flag_text(name, value=None):
    """`--name=value` as the user would type it."""
    value = FLAGS[name].value if value is None else value
    return f"--{name}={value}"


# Where a shared flag means something particular to one command, its help says so.
COMMAND_HELP = {
    ("evaluate", "data"): "Images: 'embedded:test' (default), 'embedded', 'PATH.npz[:KEY]' or "
                          "'tfds:mnist' / 'tfds:binarized_mnist' (in --data_dir); for a VAE-GAN "
                          "model, 64x64 colour images 'PATH.npz[:KEY]' (key 'x' by default).",
    ("evaluate", "num_images"): "Images used (default: all of --data).",
    ("evaluate", "output"): "Metrics JSON path (default: evaluation.json beside the model).",
    ("sample", "num_images"): "Number of samples in the grid (default 64).",
    ("sample", "output"): "PNG path (default samples.png).",
    ("export", "output"): "The model base directory; the SavedModel goes to OUTPUT/VERSION/.",
    ("complete", "num_images"): "Images completed, the first N of --images (default 8).",
    ("complete", "learning_rate"): "Adam's learning rate on z (default 0.03).",
    ("complete", "output"): "PNG path of the grid (default completions.png).",
}


def command_help(command):
    """The help text of one command: its summary and its flags with defaults."""
    import textwrap

    wrap = textwrap.TextWrapper(width=100, subsequent_indent="      ")
    lines = [f"usage: crvae {command} [--flags]", ""]
    lines += textwrap.wrap(SUMMARIES[command], 100)
    names = COMMAND_FLAGS[command] + COMMON_FLAGS
    lines += ["", "flags:"]
    for name in names:
        flag = FLAGS[name]
        text = COMMAND_HELP.get((command, name), flag.help.split(";\n")[0])
        if flag.default not in (None, [], ""):
            text += f" (default: {flag.default_as_str.strip(chr(39))})"
        lines.append(wrap.fill(f"  --{name}: {text}"))
    return "\n".join(lines)


# === Parsing ===

_EXPECTED_BY_PARSER = {"IntegerParser": "an integer", "FloatParser": "a number",
                       "BooleanParser": "true or false"}


def _parse(command, args):
    """Parses `args` into FLAGS; only the command's own flags are accepted."""
    FLAGS.unparse_flags()
    try:
        remaining = FLAGS([f"{PROGRAM} {command}"] + list(args))
    except flags.UnrecognizedFlagError as error:
        raise UsageError(f"unknown flag --{error.flagname}; see `crvae {command} --help`") from None
    except flags.Error as error:
        match = re.search(r"flag --(\w+)=(.*?):", str(error))
        if not match:
            raise UsageError(str(error).splitlines()[0]) from None
        name, value = match.group(1), match.group(2)
        flag = FLAGS[name]
        expected = _EXPECTED_BY_PARSER.get(type(flag.parser).__name__)
        if hasattr(flag.parser, "enum_values"):
            expected = "one of " + ", ".join(flag.parser.enum_values)
        raise UsageError(f"--{name}={value}: expected {expected or 'another value'}") from None
    if len(remaining) > 1:
        raise UsageError(f"unexpected argument {remaining[1]!r}; flags take the form --name=value "
                         f"(see `crvae {command} --help`)")
    allowed = set(COMMAND_FLAGS[command] + COMMON_FLAGS)
    for name in FLAGS:
        if FLAGS[name].present and name not in allowed:
            raise UsageError(f"--{name} is not a flag of `crvae {command}`; see "
                             f"`crvae {command} --help`")


def _require(condition, name, expected, value=None):
    if not condition:
        raise UsageError(f"{_flag_text(name, value)}: expected {expected}")


def _given(name):
    return FLAGS[name].present


# === Checks before any work (NumPy and the standard library only) ===


def _check_output_dir(name):
    from keras_crvae.io import output_dir_problem

    problem = output_dir_problem(FLAGS[name].value)
    if problem:
        raise UsageError(f"{_flag_text(name)}: {problem}")


def _check_output_file(path, name, suffixes):
    from keras_crvae.io import output_file_problem

    problem = output_file_problem(path, suffixes)
    if problem:
        raise UsageError(f"{_flag_text(name, path)}: {problem}")


def _read_npz(spec, name, default_key=None, preferred_keys=()):
    """The array a `PATH.npz[:KEY]` flag names, or a UsageError naming the flag."""
    from keras_crvae.io import read_npz_array, split_npz_spec

    path, key = split_npz_spec(spec, default_key)
    try:
        return read_npz_array(path, key, preferred_keys)[0]
    except (OSError, ValueError, KeyError) as error:
        raise UsageError(f"{_flag_text(name, spec)}: {error}") from None


def _check_image_array(images, name, spec, image_shape):
    """The shape, dtype and value rules of `data.to_unit_images` (grey) or colour images, in NumPy."""
    import numpy as np

    shape = tuple(images.shape)
    expected = tuple(image_shape)
    grey = expected[-1] == 1
    if grey:
        fits = shape[1:] in (expected, expected[:-1])
        wanted = f"(N, {expected[0]}, {expected[1]}) or (N, {', '.join(map(str, expected))})"
    else:
        fits = len(shape) == 4 and shape[-1] in (1, 3) and (
            image_shape is None or shape[1:3] == expected[:2] or expected[0] is None)
        wanted = f"(N, {expected[0]}, {expected[1]}, 3)" if expected[0] else "(N, H, W, 3)"
    if not fits:
        raise UsageError(f"{_flag_text(name, spec)}: images of shape {shape}; expected {wanted}")
    if shape[0] == 0:
        raise UsageError(f"{_flag_text(name, spec)}: holds 0 images")
    if images.dtype == np.bool_:
        return
    low, high = images.min(), images.max()
    if np.issubdtype(images.dtype, np.integer):
        if low < 0 or high > 255:
            raise UsageError(f"{_flag_text(name, spec)}: {images.dtype} values in [{low}, {high}]; "
                             "expected grey levels 0..255 or floats in [0, 1]")
    elif not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high > 1:
        raise UsageError(f"{_flag_text(name, spec)}: {images.dtype} values in [{low}, {high}]; "
                         "expected floats in [0, 1] or uint8 grey levels 0..255")


def _mnist_images(name, default, image_shape=(28, 28, 1)):
    """Checks and loads an MNIST-style data flag: None (embedded, loaded later), 'embedded',
    'embedded:test', 'tfds:NAME' (checked later) or an .npz array (loaded now)."""
    spec = FLAGS[name].value or default
    if spec in ("embedded", "embedded:train", "embedded:test"):
        _require(tuple(image_shape) == (28, 28, 1), name, f"images of shape {tuple(image_shape)} "
                 "(the embedded subset is 28x28 MNIST)", spec)
        return spec, None
    if spec.startswith("tfds:"):
        _require(spec in ("tfds:mnist", "tfds:binarized_mnist"), name,
                 "tfds:mnist or tfds:binarized_mnist", spec)
        _require(FLAGS.data_dir is None or os.path.isdir(os.path.expanduser(FLAGS.data_dir)),
                 "data_dir", "an existing folder")
        return spec, None
    images = _read_npz(spec, name, preferred_keys=("x_train", "x"))
    _check_image_array(images, name, spec, image_shape)
    return spec, images


def _check_positive(*names, low=1):
    for name in names:
        value = FLAGS[name].value
        if value is not None:
            _require(value >= low, name, f"an integer >= {low}")


def _check_train():
    """Everything `crvae train` can check before TensorFlow loads; returns the job's arguments."""
    from keras_crvae import presets, runs

    preset = FLAGS.preset
    if preset not in presets.PRESETS:
        raise UsageError(f"--preset={preset}: expected one of {', '.join(presets.list_presets())} "
                         "(see `crvae presets`)")
    config = presets.PRESETS[preset]
    kind = ("gan" if presets.is_gan_preset(preset) else
            "two_stage" if isinstance(config, presets.TwoStagePreset) else
            "sprites" if config.network.get("builder") == "sprites" else "vae")
    if any(item.split("=", 1)[0].strip() == "help" for item in FLAGS.set):
        return {"kind": "list_settings", "preset": preset,
                "settings": presets._valid_keys(config)}
    try:
        overrides = presets.parse_overrides(FLAGS.set, preset=preset)
    except ValueError as error:
        raise UsageError(str(error)) from None
    # --set epochs=N and --set batch_size=N mean what --epochs / --batch_size mean.
    epochs, batch_size = FLAGS.epochs, FLAGS.batch_size
    for name in ("epochs", "batch_size"):
        if name in overrides:
            value = overrides.pop(name)
            if FLAGS[name].value is not None and FLAGS[name].value != value:
                raise UsageError(f"--set {name}={value} contradicts --{name}={FLAGS[name].value}; "
                                 "give one of them")
            epochs, batch_size = (value, batch_size) if name == "epochs" else (epochs, value)
    _check_positive("epochs", "batch_size", "time_steps", "nll_samples", "nll_images",
                    "steps_per_epoch", "stage2_epochs")
    _check_positive("num_fid_samples", low=0)
    if FLAGS.learning_rate is not None:
        _require(math.isfinite(FLAGS.learning_rate) and FLAGS.learning_rate > 0, "learning_rate",
                 "a finite number > 0")
        overrides["learning_rate"] = FLAGS.learning_rate
    if FLAGS.time_steps is not None:
        overrides["time_steps"] = FLAGS.time_steps
    if FLAGS.precision is not None:
        from keras_crvae import precision as crvae_precision

        try:
            overrides["precision"] = crvae_precision.normalize(FLAGS.precision)
        except ValueError:
            raise UsageError(f"--precision={FLAGS.precision}: expected float32, bfloat16 or auto "
                             "(fp32 and bf16 also work)") from None

    only = {"gan": ("npz", "image_dir", "tfds", "steps_per_epoch"),
            "two_stage": ("stage2_epochs", "num_fid_samples"),
            "vae": ("nll_samples", "nll_images")}
    family = {"gan": "the 64x64 GAN presets", "two_stage": "the Two-Stage presets",
              "vae": "the MNIST VAE-family presets"}
    shared = {"steps_per_epoch": ("gan", "sprites")}  # flags of more than one family
    for owner, names in only.items():
        for name in names:
            if kind not in shared.get(name, (owner,)) and _given(name):
                hint = (" (it trains on --data=PATH.npz[:KEY])" if name == "npz" else "")
                raise UsageError(f"--{name} is for {family[owner]}; --preset={preset} does not "
                                 f"take it{hint}")
    if kind in ("gan", "sprites") and _given("eval_data"):
        raise UsageError(f"--eval_data is for the MNIST and Two-Stage presets; --preset={preset} "
                         "does not take it")
    if kind == "sprites" and (_given("data") or FLAGS.strategy != "default"):
        name = "data" if _given("data") else "strategy"
        raise UsageError(f"{_flag_text(name)}: --preset={preset} trains on procedural sprites "
                         "drawn on one device; expected no --data and --strategy=default")
    if kind == "two_stage" and FLAGS.strategy != "default":
        raise UsageError(f"--strategy={FLAGS.strategy}: the Two-Stage job runs on one device; "
                         "expected default")
    digits = kind == "gan" and presets.is_digit_gan(config)
    if digits:
        for name in ("npz", "image_dir", "tfds"):
            if _given(name):
                raise UsageError(f"--{name} is for the 64x64 colour GAN presets; --preset={preset} "
                                 "trains on MNIST digits (--data=embedded, PATH.npz[:KEY] or "
                                 "tfds:mnist)")

    try:
        full_overrides = dict(overrides)
        full_overrides.update({k: v for k, v in (("epochs", epochs), ("batch_size", batch_size))
                               if v is not None})
        if kind == "two_stage" and FLAGS.stage2_epochs is not None:
            full_overrides["stage2_epochs"] = FLAGS.stage2_epochs
        resolved = presets.get_preset(preset, **full_overrides)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if kind == "gan":
        multiple, reason = presets.gan_batch_multiple(resolved)
        effective_batch = batch_size or resolved.training.batch_size
        _require(effective_batch % multiple == 0, "batch_size", f"a multiple of {multiple} "
                 f"({reason})", effective_batch)

    if resolved.network.get("builder") == "stage2":  # Stage2 trains on a trained Stage1 model
        stage1_model = resolved.network.get("stage1_model")
        if stage1_model in (None, "", "none", "None"):
            raise UsageError(f"--preset={preset} is a Stage2 preset: pass the trained Stage1 model "
                             "with --set stage1_model=PATH.keras (e.g. "
                             f"{resolved.network['stage1_preset']}_run/model.keras)")
        if not os.path.isfile(os.path.expanduser(stage1_model)):
            raise UsageError(f"--set stage1_model={stage1_model}: no such file; expected a trained "
                             "Stage1 .keras model (VAEGAN / CRVAEGAN)")

    job = {"kind": kind, "preset": preset, "epochs": epochs, "batch_size": batch_size,
           "overrides": overrides}
    if kind == "sprites":
        job["data_spec"] = "procedural sprites"
    elif digits:
        job["data_spec"], job["arrays"] = _mnist_images("data", "embedded", (28, 28, 1))
    elif kind == "gan":
        sources = [name for name in ("data", "npz", "image_dir", "tfds") if _given(name)]
        if len(sources) != 1:
            raise UsageError(
                f"--preset={preset} trains on 64x64 colour images: give one of --data=PATH.npz[:KEY]"
                ", --image_dir=DIR or --tfds=NAME (with --data_dir)"
                + (f"; got {', '.join('--' + s for s in sources)}" if sources else ""))
        source = sources[0]
        spec = FLAGS[source].value
        job["data_spec"] = f"{source}={spec}"
        if source in ("data", "npz"):
            images = _read_npz(spec, source, default_key="x")
            if images.ndim == 3:
                images = images[..., None]
            _check_image_array(images, source, spec, (None, None, 3))
            job["arrays"] = images
        elif source == "image_dir":
            _require(os.path.isdir(spec), "image_dir", "an existing folder of image files")
            job["image_dir"] = spec
        else:
            _require(FLAGS.data_dir is not None, "data_dir", "the TFDS data directory where "
                     f"--tfds={spec} is prepared", "(none)")
            job["tfds_name"] = spec
    else:
        image_shape = tuple(config.network.get("image_shape", (28, 28, 1)))
        job["data_spec"], job["train_images"] = _mnist_images("data", "embedded", image_shape)
        job["eval_spec"], job["eval_images"] = _mnist_images("eval_data", "embedded:test",
                                                             image_shape)

    if not _given("output_dir"):
        FLAGS.output_dir = runs.default_output_dir(preset)
    _check_output_dir("output_dir")
    try:
        job["plan"] = runs.plan_run(FLAGS.output_dir, preset, runs.run_settings(resolved),
                                    runs.total_epochs(resolved), fresh=FLAGS.fresh,
                                    resumable=kind not in ("two_stage", "sprites"))
    except runs.RunConflictError as error:
        raise UsageError(str(error)) from None
    return job


def _check_model_path():
    import zipfile

    if not FLAGS.model:
        raise UsageError("--model is required: the path of a .keras file written by `crvae train`")
    path = FLAGS.model
    if not os.path.exists(path):
        raise UsageError(f"{_flag_text('model')}: no such file")
    if os.path.isdir(path):
        raise UsageError(f"{_flag_text('model')}: is a folder; expected a .keras file (e.g. "
                         f"{os.path.join(path, 'model.keras')})")
    damaged = f"{_flag_text('model')}: not a readable .keras file (damaged or truncated?)"
    if not zipfile.is_zipfile(path):
        raise UsageError(damaged)
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            bad = archive.testzip()  # reads every member and checks its CRC
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        raise UsageError(damaged) from None
    if bad is not None:
        raise UsageError(f"{damaged[:-1]}: {bad} fails its checksum)")
    if "config.json" not in names:
        raise UsageError(f"{_flag_text('model')}: a zip file without config.json; expected a "
                         ".keras model")
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (ValueError, OSError, zipfile.BadZipFile):
        raise UsageError(damaged) from None
    return config.get("class_name") if isinstance(config, dict) else None


GAN_CLASSES = ("VAEGAN", "CRVAEGAN")


def _check_evaluate():
    model_class = _check_model_path()
    if model_class in GAN_CLASSES and not FLAGS.data:
        raise UsageError(f"{_flag_text('model')} is a {model_class} (64x64 colour images, no "
                         "likelihood); pass --data=PATH.npz[:KEY] with colour images to measure "
                         "its reconstruction error")
    if model_class in ("GAN", "InfoGAN"):
        raise UsageError(f"{_flag_text('model')} is a{'n' if model_class[0] in 'AEIOU' else ''} {model_class} (a generator without encoder "
                         "or likelihood); score its samples with `python tools/gan_study.py` "
                         "(MNIST-classifier FID) or draw them with `crvae sample`")
    if model_class == "TwoStageVAE":
        raise UsageError(f"{_flag_text('model')} is a TwoStageVAE: `crvae evaluate` computes the "
                         "NLL of Bernoulli VAE-family models; its FID and spectra are in the "
                         "metrics.json that `crvae train` wrote beside it")
    _check_positive("num_samples", "num_images")
    output = FLAGS.output or os.path.join(os.path.dirname(os.path.abspath(FLAGS.model)),
                                          "evaluation.json")
    _check_output_file(output, "output", (".json",))
    return {"output": output}


def _check_sample():
    _check_model_path()
    _check_positive("num_images")
    output = FLAGS.output or "samples.png"
    _check_output_file(output, "output", (".png",))
    if FLAGS.traversals and _given("num_images"):
        raise UsageError("--num_images: a traversal grid (--traversals) has a fixed size; "
                         "expected no --num_images with it")
    return {"output": output, "count": FLAGS.num_images or 64}


def _check_export():
    if not FLAGS.output:
        raise UsageError("--output is required: the model base directory, e.g. "
                         "--output=serving/mnist_crvae")
    _check_model_path()
    _check_positive("version", low=0)
    from keras_crvae.io import output_dir_problem

    problem = output_dir_problem(FLAGS.output)
    if problem:
        raise UsageError(f"{_flag_text('output')}: {problem}")
    target = os.path.join(FLAGS.output, str(FLAGS.version))
    if os.path.exists(target) and not FLAGS.overwrite:
        raise UsageError(f"{_flag_text('output')}: {target} exists; pass --overwrite to replace "
                         "it or --version=N for a new version")
    return {}


def _check_complete():
    """`crvae complete`: model, images, mask, settings and output, all before TensorFlow loads."""
    from keras_crvae import completion

    _check_model_path()
    if not FLAGS.images:
        raise UsageError("--images is required: 'PATH.npz[:KEY]' with the images to complete")
    images = _read_npz(FLAGS.images, "images", default_key="x")
    if images.ndim == 3:
        images = images[..., None]
    _check_image_array(images, "images", FLAGS.images, (None, None, 3))
    _check_positive("num_images", "steps")
    images = images[:FLAGS.num_images or 8]
    for name, low in (("learning_rate", None), ("prior_weight", 0.0), ("adversarial_weight", 0.0)):
        value = FLAGS[name].value
        if value is not None:
            if low is None:
                _require(math.isfinite(value) and value > 0, name, "a finite number > 0")
            else:
                _require(math.isfinite(value) and value >= low, name, "a finite number >= 0")
    spec = FLAGS.mask
    kinds = completion.MASK_KINDS + tuple(completion.MASK_ALIASES)
    if spec in kinds:
        mask = completion.make_mask(spec, images.shape[1:], batch_size=len(images),
                                    seed=FLAGS.seed)
    elif spec.split(":")[0].endswith(".npz") or os.path.exists(spec):
        mask = _read_npz(spec, "mask", preferred_keys=("mask", "m"))
        if mask.ndim >= 3 and mask.shape[0] > len(images) and mask.shape[1:3] == images.shape[1:3]:
            mask = mask[:len(images)]  # one mask per image of the file: those of the images used
    else:
        raise UsageError(f"{_flag_text('mask')}: expected one of {', '.join(completion.MASK_KINDS)} "
                         "or PATH.npz[:KEY] holding a 0/1 mask")
    try:
        mask = completion.check_mask(mask, images.shape)
    except ValueError as error:
        raise UsageError(f"{_flag_text('mask')}: {error}") from None
    output = FLAGS.output or "completions.png"
    _check_output_file(output, "output", (".png",))
    return {"images": images, "mask": mask, "output": output}


# === Running (TensorFlow from here on) ===


def _import_quietly(verbose):
    """Imports TensorFlow, Keras and the library with TF's C++ start-up log hidden.

    `TF_CPP_MIN_LOG_LEVEL` does not silence the lines TensorFlow's C++ logging prints while the
    shared libraries load (oneDNN, CUDA drivers, CPU features), so stderr is pointed at /dev/null
    at the file-descriptor level for the imports only.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    if verbose or "tensorflow" in sys.modules:
        import keras_crvae.training  # noqa: F401
        return
    import logging
    import warnings

    sys.stderr.flush()
    saved = os.dup(2)
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 2)
    try:
        import keras_crvae.evaluation  # noqa: F401
        import keras_crvae.models  # noqa: F401
        import keras_crvae.training  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(quiet)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # (no-op without TensorFlow: JAX)
    warnings.filterwarnings("ignore", module="keras")
    warnings.filterwarnings("ignore", module="tensorflow")


def _say(message):
    print(message, flush=True)


def _train(job):
    if job["kind"] == "list_settings":
        _say(f"--set KEY=VALUE keys of {job['preset']}: {', '.join(job['settings'])}")
        return 0
    plan = job["plan"]
    if plan.action == "done":  # decided before TensorFlow loads; other plans are announced by the job
        _say(plan.message)
        return 0
    _say(f"Loading TensorFlow and the data for {job['preset']} ...")  # ~5-20 s of silence else
    _import_quietly(FLAGS.verbose)
    from keras_crvae import distribute, training

    output_dir = FLAGS.output_dir
    if job["kind"] == "sprites":
        from keras_crvae.sprites_training import train_sprites

        train_sprites(job["preset"], output_dir=output_dir, epochs=job["epochs"],
                      batch_size=job["batch_size"], steps_per_epoch=FLAGS.steps_per_epoch,
                      seed=FLAGS.seed, fresh=FLAGS.fresh, **job["overrides"])
        _say(f"Done. Artifacts in {os.path.abspath(output_dir)}: model.keras, samples.png, "
             "reconstructions.png, traversals.png, metrics.json, history.csv")
        return 0
    if job["kind"] != "gan":
        for images, spec, split in (("train_images", "data_spec", "train"),
                                    ("eval_images", "eval_spec", "test")):
            if job[images] is None:
                job[images] = _load_mnist_spec(job[spec], split)
    if job["kind"] == "two_stage":
        training.train_two_stage(
            job["preset"], train_images=job["train_images"],
            eval_images=job["eval_images"], output_dir=output_dir, epochs=job["epochs"],
            stage2_epochs=FLAGS.stage2_epochs, batch_size=job["batch_size"],
            num_fid_samples=FLAGS.num_fid_samples, seed=FLAGS.seed, fresh=FLAGS.fresh,
            data_spec=job["data_spec"], eval_spec=job["eval_spec"], **job["overrides"])
        _say(f"Done. Artifacts in {os.path.abspath(output_dir)}: model.keras, samples.png "
             "(stage 2), samples_stage1.png, reconstructions.png, metrics.json")
        return 0
    strategy = distribute.make_strategy(FLAGS.strategy)  # before any TF op (multi-worker)
    if job["kind"] == "gan":
        from keras_crvae.gan_training import train_gan

        if job.get("arrays") is None and job.get("image_dir") is None and \
                job.get("tfds_name") is None:  # an MNIST GAN preset on 'embedded' / 'tfds:'
            job["arrays"] = _load_mnist_spec(job["data_spec"], "train")
        train_gan(job["preset"], image_dir=job.get("image_dir"), tfds_name=job.get("tfds_name"),
                  arrays=job.get("arrays"), data_dir=FLAGS.data_dir, output_dir=output_dir,
                  epochs=job["epochs"], steps_per_epoch=FLAGS.steps_per_epoch,
                  batch_size=job["batch_size"], resume=not FLAGS.fresh, strategy=strategy,
                  seed=FLAGS.seed, data_spec=job["data_spec"], **job["overrides"])
        grids = "samples.png" + ("" if _is_standalone_gan(job["preset"]) else
                                 ", reconstructions.png")
        _say(f"Done. Artifacts in {os.path.abspath(output_dir)}: model.keras, {grids}, "
             "metrics.json, history.csv, tensorboard/")
        return 0
    training.train(
        job["preset"], train_images=job["train_images"], eval_images=job["eval_images"],
        output_dir=output_dir, epochs=job["epochs"], batch_size=job["batch_size"],
        nll_samples=FLAGS.nll_samples, nll_images=FLAGS.nll_images, seed=FLAGS.seed,
        fresh=FLAGS.fresh, strategy=strategy, data_spec=job["data_spec"],
        eval_spec=job["eval_spec"], **job["overrides"])
    _say(f"Done. Artifacts in {os.path.abspath(output_dir)}: model.keras, samples.png, "
         "reconstructions.png, metrics.json, history.csv")
    return 0


def _is_standalone_gan(preset):
    from keras_crvae import presets

    return presets.get_preset(preset).network["builder"] == "dcgan"


def _load_model():
    from keras_crvae import training

    try:
        return training.load_model(FLAGS.model)
    except (ValueError, TypeError, KeyError, OSError) as error:
        if FLAGS.verbose:
            raise
        raise UsageError(f"{_flag_text('model')}: cannot be loaded as a keras_crvae model "
                         f"({type(error).__name__}: {str(error).splitlines()[0][:160]})") from None


def _model_kind(model):
    from keras_crvae import models

    if isinstance(model, models.VAEGAN):
        return "gan"
    if isinstance(model, models.TwoStageVAE):
        return "two_stage"
    if callable(getattr(model, "log_likelihood", None)) and callable(getattr(model, "encode",
                                                                             None)):
        return "vae"
    return type(model).__name__


def _evaluate(checked):
    _say(f"Loading TensorFlow and {FLAGS.model} ...")
    _import_quietly(FLAGS.verbose)
    from keras_crvae import data, training
    from keras_crvae.io import write_json

    model = _load_model()
    kind = _model_kind(model)
    spec = FLAGS.data or "embedded:test"
    if kind == "gan":
        return _evaluate_gan(model, checked["output"])
    if kind != "vae":
        raise UsageError(f"{_flag_text('model')}: a {type(model).__name__}; `crvae evaluate` "
                         "computes the NLL of VAE-family models (trained with MNIST presets) and "
                         "the reconstruction error of VAE-GAN / crVAE-GAN models")
    image_shape = tuple(model.image_shape)
    spec, images = _mnist_images("data", "embedded:test", image_shape)
    if images is None:
        images = _load_mnist_spec(spec)
    images = data.to_unit_images(images, name=spec) if image_shape == (28, 28, 1) else images
    if FLAGS.num_images is not None:
        images = images[:FLAGS.num_images]
    if FLAGS.binarize == "static":
        images = data.static_binarize(images, seed=FLAGS.seed)
    _say(f"Evaluating {FLAGS.model} on {len(images)} images of {spec}: ELBO, then NLL with "
         f"{len(images)} images x k={FLAGS.num_samples} importance samples "
         f"({len(images) * FLAGS.num_samples:,} decoder passes), then active units")
    metrics = training.evaluate_model(model, images, nll_samples=FLAGS.num_samples,
                                      seed=FLAGS.seed)
    metrics.update({"model": FLAGS.model, "data": spec})
    write_json(metrics, checked["output"])
    nll, bound = metrics["nll"], metrics["elbo"]
    _say(f"NLL  {nll['mean']:.3f} +- {nll['standard_error']:.3f} nats  (negative log-likelihood "
         f"-log p(x), lower is better; k={nll['num_samples']}, {nll['num_images']} images)")
    _say(f"ELBO {bound['mean']:.3f} +- {bound['standard_error']:.3f} nats  (evidence lower "
         "bound on log p(x), higher is better; -ELBO >= NLL)")
    _say(f"Active units {metrics['active_units']['active_units']} / "
         f"{metrics['active_units']['num_latents']}")
    _say(f"Written to {checked['output']}")
    return 0


def _load_mnist_spec(spec, split="test"):
    """Images of an 'embedded[:test]' or 'tfds:NAME' spec (NPZ files are read by the checks)."""
    from keras_crvae import data

    if spec.startswith("tfds:"):
        import numpy as np

        dataset = data.tfds_mnist(spec.split(":", 1)[1], split=split, data_dir=FLAGS.data_dir,
                                  batch_size=1000, binarize="none", shuffle=False)
        return np.concatenate([batch.numpy() for batch in dataset])
    return data.load_images(spec)


def _evaluate_gan(model, output):
    """Reconstruction error of a VAE-GAN / crVAE-GAN on colour images (no likelihood to estimate)."""
    import keras
    import numpy as np

    from keras_crvae import data
    from keras_crvae.io import write_json

    if not FLAGS.data:
        raise UsageError(f"{_flag_text('model')} is a {type(model).__name__} (64x64 colour images, "
                         "no likelihood); pass --data=PATH.npz[:KEY] with colour images to measure "
                         "its reconstruction error")
    images = _read_npz(FLAGS.data, "data", default_key="x")
    if images.ndim == 3:
        images = images[..., None]
    _check_image_array(images, "data", FLAGS.data, (None, None, 3))
    if FLAGS.num_images is not None:
        images = images[:FLAGS.num_images]
    dataset = data.image_dataset(arrays=images, batch_size=64, augment=None, shuffle=False,
                                 drop_remainder=False)
    _say(f"Evaluating {FLAGS.model} ({type(model).__name__}) on {len(images)} images of "
         f"{FLAGS.data}: reconstruction error (a GAN model has no likelihood, so no NLL/ELBO)")
    errors = []
    for batch in dataset:
        batch = keras.ops.convert_to_numpy(batch)
        reconstruction = keras.ops.convert_to_numpy(model.reconstruct(batch))
        errors.append(np.mean((reconstruction - batch) ** 2, axis=(1, 2, 3)))
    errors = np.concatenate(errors)
    metrics = {"model": FLAGS.model, "data": FLAGS.data, "model_class": type(model).__name__,
               "reconstruction_mse": {"mean": float(errors.mean()),
                                      "standard_error": float(errors.std(ddof=1) /
                                                              np.sqrt(len(errors)))
                                      if len(errors) > 1 else float("nan"),
                                      "num_images": int(len(errors)),
                                      "image_range": [-1.0, 1.0]}}
    write_json(metrics, output)
    mse = metrics["reconstruction_mse"]
    _say(f"Reconstruction MSE {mse['mean']:.5f} +- {mse['standard_error']:.5f} per pixel "
         f"(images in [-1, 1], lower is better; {mse['num_images']} images)")
    _say(f"Written to {output}")
    return 0


def _sample(checked):
    _import_quietly(FLAGS.verbose)
    import keras

    from keras_crvae.io import save_image_grid

    model = _load_model()
    if FLAGS.traversals:
        return _traversals(model, checked["output"])
    if not callable(getattr(model, "sample", None)):
        raise UsageError(f"{_flag_text('model')}: a {type(model).__name__} cannot sample")
    images = keras.ops.convert_to_numpy(model.sample(checked["count"], seed=FLAGS.seed))
    save_image_grid(images, checked["output"])
    _say(f"Wrote {checked['count']} samples to {checked['output']}")
    return 0


def _traversals(model, output):
    """`crvae sample --traversals`: the latent traversal grid of a VAE-family model."""
    from keras_crvae import callbacks, data
    from keras_crvae.data import sprites
    from keras_crvae.io import save_image_grid

    shape = tuple(getattr(model, "image_shape", ()))
    if _model_kind(model) != "vae" or shape not in ((64, 64, 1), (28, 28, 1)):
        raise UsageError(f"{_flag_text('model')}: --traversals needs a VAE-family model of "
                         f"64x64x1 or 28x28x1 images; got a {type(model).__name__} of {shape}")
    if shape == (64, 64, 1):
        images = sprites.load_sprites(256, seed=FLAGS.seed)["images"]
    else:
        images = data.static_binarize(data.load_embedded_mnist()["x_test"][:256], seed=0)
    kl = callbacks.mean_kl_per_latent(model, images)
    grid, order = callbacks.latent_traversal_grid(model, images[0], kl, max_rows=10)
    save_image_grid(grid, output, columns=8)
    _say(f"Wrote the traversals of latents {', '.join(map(str, order))} (largest mean KL first) "
         f"to {output}")
    return 0


def _presets(_):
    from keras_crvae import presets

    for name in presets.list_presets():
        print(f"{name:26s} {presets.PRESETS[name].description}")
    return 0


def _export(_):
    _import_quietly(FLAGS.verbose)
    from keras_crvae.export import export_saved_model

    model = _load_model()
    directory = export_saved_model(model, FLAGS.output, version=FLAGS.version,
                                   overwrite=FLAGS.overwrite)
    signatures = "serving_default, sample, decode" + (", encode, reconstruct" if hasattr(
        model, "encoder") else "")
    _say(f"Wrote the SavedModel to {directory} (signatures: {signatures})")
    return 0


def _complete(checked):
    _say(f"Loading TensorFlow and {FLAGS.model} ...")
    _import_quietly(FLAGS.verbose)
    import numpy as np

    from keras_crvae import completion
    from keras_crvae.io import save_image_grid, write_json

    model = _load_model()
    try:
        networks = completion.completion_networks(model)
    except ValueError:
        raise UsageError(f"{_flag_text('model')}: a {type(model).__name__} has no encoder and "
                         "decoder to complete images with") from None
    images, mask = checked["images"], checked["mask"]
    if tuple(images.shape[1:]) != networks.image_shape:
        raise UsageError(f"{_flag_text('images', FLAGS.images)}: images of shape "
                         f"{tuple(images.shape[1:])}; the model takes {networks.image_shape}")
    unit = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(
        np.float32)
    low, high = networks.image_range
    images = low + (high - low) * unit
    tau = FLAGS.adversarial_weight if networks.discriminator is not None else 0.0
    _say(f"Completing {len(images)} images ({_flag_text('mask')}): {FLAGS.steps} Adam steps on z, "
         f"prior weight {FLAGS.prior_weight}, adversarial weight {tau}"
         + (" (the model has no discriminator)" if networks.discriminator is None else ""))
    result = completion.complete(model, images, mask, steps=FLAGS.steps,
                                 learning_rate=FLAGS.learning_rate or 0.03,
                                 prior_weight=FLAGS.prior_weight,
                                 adversarial_weight=FLAGS.adversarial_weight, seed=FLAGS.seed)
    full_mask = np.broadcast_to(result.mask, images.shape)
    masked = images * full_mask + 0.5 * (low + high) * (1.0 - full_mask)
    to_unit = lambda array: (np.asarray(array) - low) / (high - low)  # noqa: E731
    rows = np.stack([to_unit(masked), to_unit(result.completed), to_unit(images)], axis=1)
    save_image_grid(rows.reshape((-1,) + images.shape[1:]), checked["output"],
                    columns=3 * min(4, len(images)))
    error = completion.masked_mse(result.completed, images, result.mask)
    initial = completion.masked_mse(result.initial_decoded, images, result.mask)
    summary = {"model": FLAGS.model, "images": FLAGS.images, "mask": FLAGS.mask,
               "num_images": int(len(images)), "steps": FLAGS.steps,
               "masked_mse": float(error.mean()), "encoder_only_masked_mse": float(initial.mean()),
               "loss_curve": [float(v) for v in result.loss_curve],
               "final_loss": result.final_loss, "image_range": [low, high]}
    json_path = os.path.splitext(checked["output"])[0] + ".json"
    write_json(summary, json_path)
    _say(f"Masked-region MSE {error.mean():.5f} (encoder only {initial.mean():.5f}; images in "
         f"[{low:g}, {high:g}]); loss {result.loss_curve[0]:.5f} -> {result.final_loss:.5f}")
    _say(f"Wrote {checked['output']} (each image: masked input, completion, original, left to right) and {json_path}")
    return 0


CHECKS = {"train": _check_train, "evaluate": _check_evaluate, "sample": _check_sample,
          "presets": lambda: None, "export": _check_export, "complete": _check_complete}
COMMANDS = {"train": _train, "evaluate": _evaluate, "sample": _sample, "presets": _presets,
            "export": _export, "complete": _complete}
HELP_ARGUMENTS = ("-h", "--help", "-help", "--helpfull", "--helpshort", "help")


def main(argv=None):
    """Entry point of the `crvae` console script; returns the exit status."""
    try:
        return _main(list(sys.argv if argv is None else argv))
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()  # no "Exception ignored" message when Python flushes at exit
        return 0


def _main(argv):
    """`main` without the broken-pipe handling."""
    args = argv[1:]
    if not args or args[0] in HELP_ARGUMENTS:
        print(USAGE, file=sys.stdout if args else sys.stderr)
        return 0 if args else EXIT_USAGE
    command = args[0]
    if command not in COMMANDS:
        print(f"crvae: error: unknown command {command!r}\n{USAGE}", file=sys.stderr)
        return EXIT_USAGE
    if any(arg in HELP_ARGUMENTS for arg in args[1:]):
        print(command_help(command))
        return 0
    return _run(command, args)


def _run(command, args):
    """Parses, checks and runs one command; returns the exit status (see the module docstring)."""
    verbose = False
    try:
        _parse(command, args[1:])
        verbose = FLAGS.verbose
        flags.FLAGS.mark_as_parsed()  # absl logging (used by TF) then stays quiet about flags
        checked = CHECKS[command]()
        return COMMANDS[command](checked)
    except UsageError as error:
        print(f"crvae {command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        if not verbose:
            # A step cut short leaves half-built graph objects whose garbage collection at exit
            # makes TensorFlow log a dozen "Object was never used" lines: not the user's business.
            import logging

            logging.getLogger("tensorflow").setLevel(logging.CRITICAL + 1)
        hint = "; rerun the same command to resume" if command == "train" else ""
        print(f"\ncrvae {command}: interrupted{hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except FloatingPointError as error:  # NaN guard: the run diverged (a fact, not a typo)
        if verbose:
            raise
        print(f"crvae {command}: failed: {error}", file=sys.stderr)
        return EXIT_FAILED
    except (ValueError, KeyError, FileNotFoundError) as error:
        # The library's own argument checks (data that passed the cheap checks but not the
        # model's), phrased with the Python argument's name.
        if verbose:
            raise
        message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
        first_line = message.splitlines()[0] if message.strip() else type(error).__name__
        print(f"crvae {command}: error: {first_line}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
