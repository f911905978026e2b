"""`crvae sample`: prior samples of a saved model, as a PNG grid or an `.npz` array; or its latent
traversals.

Samples are drawn `--batch_size` at a time (`evaluation.sample_batches`), so memory depends on the
batch, not on `--num_images`: a PNG grid holds at most `GRID_LIMIT` samples, and more go to
`--output=PATH.npz`, written batch by batch (`io.NpzArrayWriter`) as uint8 0..255 under the key
'x' (the format `crvae complete --images` and the FID tools read). The traversal figure itself is
the library's (`evaluation.report.traversal_figure`); this module checks the flags, picks the
figure and writes the file.
"""

import inspect
import math
import os
import shutil

from keras_crvae.cli.checks import check_model_path, check_output_file
from keras_crvae.cli.flags import FLAGS, UsageError, check_positive, flag_text, given, require
from keras_crvae.cli.runtime import load_library, load_model, model_kind, say
from keras_crvae.io import NpzArrayWriter, save_image_grid, to_uint8_images

GRID_LIMIT = 256  # samples in one PNG grid (32 rows of 8); more go to an .npz
MAX_SAMPLES = 10_000_000  # samples in one .npz (10M MNIST digits: 7.8 GB)
DEFAULT_COUNT = 64
DEFAULT_BATCH_SIZE = 100
NPZ_KEY = "x"


def check():
    """--model, --num_images, --batch_size and --output; returns the output path, the number of
    samples and the batch size."""
    check_model_path()
    check_positive("num_images", "batch_size")
    output = FLAGS.output or "samples.png"
    check_output_file(output, "output", (".png", ".npz"))
    as_grid = output.lower().endswith(".png")
    count = FLAGS.num_images or DEFAULT_COUNT
    if FLAGS.temperature is not None:
        require(math.isfinite(FLAGS.temperature) and FLAGS.temperature >= 0, "temperature",
                "a finite number >= 0")
        if FLAGS.traversals:
            raise UsageError("--temperature: a traversal grid (--traversals) draws no prior "
                             "samples; expected no --temperature with it")
    if FLAGS.traversals:
        if given("num_images"):
            raise UsageError("--num_images: a traversal grid (--traversals) has a fixed size; "
                             "expected no --num_images with it")
        require(as_grid, "output", "a path ending in .png (a traversal grid is a picture)",
                output)
    elif as_grid:
        require(count <= GRID_LIMIT, "num_images", f"at most {GRID_LIMIT} for a PNG grid "
                f"({flag_text('output', output)}); write more samples to an .npz, e.g. "
                "--output=samples.npz")
    else:
        require(count <= MAX_SAMPLES, "num_images", f"at most {MAX_SAMPLES:,} samples in one .npz")
    return {"output": output, "count": count,
            "batch_size": FLAGS.batch_size or DEFAULT_BATCH_SIZE}


def run(checked):
    """Writes the samples (or the traversals) of --model; returns the exit status."""
    load_library(FLAGS.verbose)
    from keras_crvae.evaluation import sample_batches

    model = load_model()
    if FLAGS.traversals:
        return _traversals(model, checked["output"])
    if not callable(getattr(model, "sample", None)):
        raise UsageError(f"{flag_text('model')}: a {type(model).__name__} cannot sample")
    output, count = checked["output"], checked["count"]
    options = {}
    if FLAGS.temperature is not None:
        if "temperature" not in inspect.signature(model.sample).parameters:
            raise UsageError(f"{flag_text('temperature')}: a {type(model).__name__} samples "
                             "without a temperature; expected no --temperature (flows take one)")
        options["temperature"] = FLAGS.temperature
    batches = sample_batches(model, count, batch_size=checked["batch_size"], seed=FLAGS.seed,
                             **options)
    if output.lower().endswith(".png"):
        import numpy as np

        save_image_grid(np.concatenate(list(batches)), output)  # at most GRID_LIMIT samples
        say(f"Wrote {count} samples to {output}")
        return 0
    first = to_uint8_images(next(batches))
    _check_free_space(output, count, first.shape[1:])
    say(f"Sampling {count:,} images of shape {first.shape[1:]} in batches of "
        f"{checked['batch_size']} into {output} ...")
    step = max(count // 10, 1)
    with NpzArrayWriter(output, NPZ_KEY, (count,) + first.shape[1:], first.dtype) as writer:
        writer.write(first)
        for batch in batches:
            done = writer.rows_written
            writer.write(to_uint8_images(batch))
            if writer.rows_written // step > done // step and writer.rows_written < count:
                say(f"  {writer.rows_written:,} / {count:,}")
    say(f"Wrote {count:,} samples to {output} (array '{NPZ_KEY}', uint8 0..255, shape "
        f"{(count,) + first.shape[1:]})")
    return 0


def _check_free_space(output, count, image_shape):
    """A UsageError when `count` uint8 images of `image_shape` do not fit beside `output`."""
    size = count
    for dimension in image_shape:
        size *= int(dimension)
    free = shutil.disk_usage(os.path.dirname(os.path.abspath(output))).free
    if size > free:
        raise UsageError(f"{flag_text('num_images', count)}: {count:,} samples of shape "
                         f"{tuple(image_shape)} take {size / 1e9:.1f} GB as uint8; the folder of "
                         f"{flag_text('output', output)} has {free / 1e9:.1f} GB free")


def _traversals(model, output):
    """`crvae sample --traversals`: the latent traversal grid of a VAE-family model."""
    from keras_crvae.evaluation import report

    shape = tuple(getattr(model, "image_shape", ()))
    if model_kind(model) != "vae" or shape not in report.TRAVERSAL_IMAGE_SHAPES:
        raise UsageError(f"{flag_text('model')}: --traversals needs a VAE-family model of "
                         f"64x64x1 or 28x28x1 images; got a {type(model).__name__} of {shape}")
    grid, order = report.traversal_figure(model, seed=FLAGS.seed)
    save_image_grid(grid, output, columns=8)
    say(f"Wrote the traversals of latents {', '.join(map(str, order))} (largest mean KL first) "
        f"to {output}")
    return 0
