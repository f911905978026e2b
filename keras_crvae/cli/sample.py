"""`crvae sample`: a PNG grid of prior samples of a saved model, or its latent traversals.

The traversal figure itself is the library's (`evaluation.report.traversal_figure`); this module
checks the flags, picks the figure and writes the PNG.
"""

from keras_crvae.cli.checks import check_model_path, check_output_file
from keras_crvae.cli.flags import FLAGS, UsageError, check_positive, flag_text, given
from keras_crvae.cli.runtime import load_library, load_model, model_kind, say
from keras_crvae.io import save_image_grid


def check():
    """--model, --num_images and --output; returns the PNG path and the number of samples."""
    check_model_path()
    check_positive("num_images")
    output = FLAGS.output or "samples.png"
    check_output_file(output, "output", (".png",))
    if FLAGS.traversals and given("num_images"):
        raise UsageError("--num_images: a traversal grid (--traversals) has a fixed size; "
                         "expected no --num_images with it")
    return {"output": output, "count": FLAGS.num_images or 64}


def run(checked):
    """Writes the samples (or the traversals) of --model; returns the exit status."""
    load_library(FLAGS.verbose)
    import keras

    model = load_model()
    if FLAGS.traversals:
        return _traversals(model, checked["output"])
    if not callable(getattr(model, "sample", None)):
        raise UsageError(f"{flag_text('model')}: a {type(model).__name__} cannot sample")
    images = keras.ops.convert_to_numpy(model.sample(checked["count"], seed=FLAGS.seed))
    save_image_grid(images, checked["output"])
    say(f"Wrote {checked['count']} samples to {checked['output']}")
    return 0


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
