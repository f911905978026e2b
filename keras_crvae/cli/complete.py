"""`crvae complete`: fills the masked part of images by optimising z, writes a PNG grid (or an
`.npz` of the completions) and a JSON.

`check` reads the images and builds or reads the mask before TensorFlow loads; `run` calls the
library (`completion.complete_batches`, `completion.completion_grid`,
`completion.completion_summary`, `completion.merge_summaries`) and writes what it returns. The
images are completed `--batch_size` at a time, so memory depends on the batch, not on
`--num_images`: a PNG grid shows at most `GRID_LIMIT` images; more go to `--output=PATH.npz`
(uint8 0..255 under the key 'x', written batch by batch by `io.NpzArrayWriter`).
"""

import contextlib
import math
import os

import numpy as np

from keras_crvae import completion
from keras_crvae.cli.checks import (GENERATOR_ONLY_CLASSES, check_model_path, check_output_file,
                                    colour_images, read_npz)
from keras_crvae.cli.flags import FLAGS, UsageError, check_positive, flag_text, require
from keras_crvae.cli.runtime import load_library, load_model, say
from keras_crvae.io import NpzArrayWriter, save_image_grid, to_uint8_images, write_json

GRID_LIMIT = 64  # images in one PNG grid (3 tiles each); more go to an .npz
DEFAULT_COUNT = 8
DEFAULT_BATCH_SIZE = 64
NPZ_KEY = "x"


def check():
    """`crvae complete`: model, images, mask, settings and output, all before TensorFlow loads."""
    model_class = check_model_path()  # its class from config.json, before TensorFlow loads
    if model_class in GENERATOR_ONLY_CLASSES:
        article = "an" if model_class[0] in "AEIOU" else "a"
        raise UsageError(f"{flag_text('model')} is {article} {model_class} (a generator without "
                         "an encoder); expected a model with an encoder and a decoder (VAE family, "
                         "VAE-GAN / crVAE-GAN, Two-Stage, hierarchical, Stage2)")
    if not FLAGS.images:
        raise UsageError("--images is required: 'PATH.npz[:KEY]' with the images to complete")
    images = colour_images("images", FLAGS.images)
    check_positive("num_images", "steps", "batch_size")
    images = images[:FLAGS.num_images or DEFAULT_COUNT]
    for name, low in (("learning_rate", None), ("prior_weight", 0.0), ("adversarial_weight", 0.0)):
        value = FLAGS[name].value
        if value is not None:
            if low is None:
                require(math.isfinite(value) and value > 0, name, "a finite number > 0")
            else:
                require(math.isfinite(value) and value >= low, name, "a finite number >= 0")
    spec = FLAGS.mask
    kinds = completion.MASK_KINDS + tuple(completion.MASK_ALIASES)
    if spec in kinds:
        mask = completion.make_mask(spec, images.shape[1:], batch_size=len(images),
                                    seed=FLAGS.seed)
    elif spec.split(":")[0].endswith(".npz") or os.path.exists(spec):
        mask = read_npz(spec, "mask", preferred_keys=("mask", "m"))
        if mask.ndim >= 3 and mask.shape[0] > len(images) and mask.shape[1:3] == images.shape[1:3]:
            mask = mask[:len(images)]  # one mask per image of the file: those of the images used
    else:
        raise UsageError(f"{flag_text('mask')}: expected one of {', '.join(completion.MASK_KINDS)} "
                         "or PATH.npz[:KEY] holding a 0/1 mask")
    try:
        mask = completion.check_mask(mask, images.shape)
    except ValueError as error:
        raise UsageError(f"{flag_text('mask')}: {error}") from None
    output = FLAGS.output or "completions.png"
    check_output_file(output, "output", (".png", ".npz"))
    if output.lower().endswith(".png"):
        require(len(images) <= GRID_LIMIT, "num_images", f"at most {GRID_LIMIT} images in a PNG "
                f"grid ({flag_text('output', output)}); write more completions to an .npz, e.g. "
                "--output=completions.npz", FLAGS.num_images)
    return {"images": images, "mask": mask, "output": output,
            "batch_size": FLAGS.batch_size or DEFAULT_BATCH_SIZE}


def run(checked):
    """Completes the checked images with --model; returns the exit status."""
    say(f"Loading TensorFlow and {FLAGS.model} ...")
    load_library(FLAGS.verbose)
    model = load_model()
    try:
        networks = completion.completion_networks(model)
    except ValueError:
        raise UsageError(f"{flag_text('model')}: a {type(model).__name__} has no encoder and "
                         "decoder to complete images with") from None
    images, mask = checked["images"], checked["mask"]
    if tuple(images.shape[1:]) != networks.image_shape:
        raise UsageError(f"{flag_text('images', FLAGS.images)}: images of shape "
                         f"{tuple(images.shape[1:])}; the model takes {networks.image_shape}")
    low, high = networks.image_range
    tau = FLAGS.adversarial_weight if networks.discriminator is not None else 0.0
    say(f"Completing {len(images)} images ({flag_text('mask')}): {FLAGS.steps} Adam steps on z, "
        f"prior weight {FLAGS.prior_weight}, adversarial weight {tau}"
        + (" (the model has no discriminator)" if networks.discriminator is None else ""))
    batches = completion.complete_batches(
        model, images, mask, batch_size=checked["batch_size"], seed=FLAGS.seed,
        image_range=networks.image_range, steps=FLAGS.steps,
        learning_rate=FLAGS.learning_rate or 0.03, prior_weight=FLAGS.prior_weight,
        adversarial_weight=FLAGS.adversarial_weight)
    output = checked["output"]
    summaries, grid = [], []
    writer = (NpzArrayWriter(output, NPZ_KEY, images.shape, "uint8")
              if output.lower().endswith(".npz") else None)
    with writer or contextlib.nullcontext():
        for start, batch, result in batches:
            summaries.append(completion.completion_summary(batch, result, networks.image_range))
            if writer is None:  # at most GRID_LIMIT images (checked)
                grid.append(completion.completion_grid(batch, result, networks.image_range))
            else:
                writer.write(to_uint8_images((result.completed - low) / (high - low)))
                say(f"  {start + len(batch):,} / {len(images):,} images")
    if writer is None:
        save_image_grid(np.concatenate(grid), output, columns=3 * min(4, len(images)))
    summary = completion.merge_summaries(summaries)
    json_path = os.path.splitext(output)[0] + ".json"
    write_json({"model": FLAGS.model, "images": FLAGS.images, "mask": FLAGS.mask,
                "steps": FLAGS.steps, **summary}, json_path)
    say(f"Masked-region MSE {summary['masked_mse']:.5f} (encoder only "
        f"{summary['encoder_only_masked_mse']:.5f}; images in [{low:g}, {high:g}]); loss "
        f"{summary['loss_curve'][0]:.5f} -> {summary['final_loss']:.5f}")
    what = ("each image: masked input, completion, original, left to right" if writer is None
            else f"array '{NPZ_KEY}': the completions as uint8 0..255, shape {images.shape}")
    say(f"Wrote {output} ({what}) and {json_path}")
    return 0
