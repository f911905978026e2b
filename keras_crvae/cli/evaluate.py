"""`crvae evaluate`: the NLL report of a VAE-family model or of an exact-likelihood model (flows,
PixelCNN: nats per image and bits/dim), the reconstruction error of a VAE-GAN.

`check` reads the model file's class (without TensorFlow) and refuses the models that have neither
a likelihood nor a reconstruction to measure; `run` calls `training.evaluate_model` (ELBO,
importance-sampled NLL, active units) or `evaluation.report.reconstruction_error`, writes the
metrics JSON and prints them.
"""

import os

from keras_crvae.cli.checks import (GENERATOR_ONLY_CLASSES, check_model_path, check_output_file,
                                    colour_images, mnist_images)
from keras_crvae.cli.flags import FLAGS, UsageError, check_positive, flag_text, given
from keras_crvae.cli.runtime import load_library, load_mnist_spec, load_model, model_kind, say
from keras_crvae.io import write_json


GAN_CLASSES = ("VAEGAN", "CRVAEGAN")
# Images per call of the model: memory grows with these, not with the number of images.
DEFAULT_BATCH_SIZE = 100
DEFAULT_GAN_BATCH_SIZE = 64


def check():
    """--model, --output and the counts; returns {"output": the metrics JSON path}."""
    model_class = check_model_path()
    if model_class in GAN_CLASSES and not FLAGS.data:
        raise UsageError(f"{flag_text('model')} is a {model_class} (64x64 colour images, no "
                         "likelihood); pass --data=PATH.npz[:KEY] with colour images to measure "
                         "its reconstruction error")
    if model_class in GENERATOR_ONLY_CLASSES:
        article = "an" if model_class[0] in "AEIOU" else "a"
        raise UsageError(f"{flag_text('model')} is {article} {model_class} (a generator without "
                         "encoder or likelihood); score its samples with "
                         "`python tools/gan_study.py` (MNIST-classifier FID) or draw them with "
                         "`crvae sample`")
    if model_class == "TwoStageVAE":
        raise UsageError(f"{flag_text('model')} is a TwoStageVAE: `crvae evaluate` computes the "
                         "NLL of Bernoulli VAE-family models; its FID and spectra are in the "
                         "metrics.json that `crvae train` wrote beside it")
    check_positive("num_samples", "num_images", "batch_size")
    output = FLAGS.output or os.path.join(os.path.dirname(os.path.abspath(FLAGS.model)),
                                          "evaluation.json")
    check_output_file(output, "output", (".json",))
    return {"output": output}


def run(checked):
    """Evaluates --model on --data; returns the exit status."""
    say(f"Loading TensorFlow and {FLAGS.model} ...")
    load_library(FLAGS.verbose)
    from keras_crvae import data, training

    model = load_model()
    kind = model_kind(model)
    if kind == "gan":
        return _evaluate_gan(model, checked["output"])
    if kind == "likelihood":
        return _evaluate_likelihood(model, checked["output"])
    if kind != "vae":
        raise UsageError(f"{flag_text('model')}: a {type(model).__name__}; `crvae evaluate` "
                         "computes the NLL of VAE-family models (trained with MNIST presets) and "
                         "the reconstruction error of VAE-GAN / crVAE-GAN models")
    image_shape = tuple(model.image_shape)
    spec, images = mnist_images("data", "embedded:test", image_shape)
    if images is None:
        images = load_mnist_spec(spec)
    images = data.to_unit_images(images, name=spec) if image_shape == (28, 28, 1) else images
    if FLAGS.num_images is not None:
        images = images[:FLAGS.num_images]
    if FLAGS.binarize == "static":
        images = data.static_binarize(images, seed=FLAGS.seed)
    say(f"Evaluating {FLAGS.model} on {len(images)} images of {spec}: ELBO, then NLL with "
        f"{len(images)} images x k={FLAGS.num_samples} importance samples "
        f"({len(images) * FLAGS.num_samples:,} decoder passes), then active units")
    metrics = training.evaluate_model(model, images, nll_samples=FLAGS.num_samples,
                                      batch_size=FLAGS.batch_size or DEFAULT_BATCH_SIZE,
                                      seed=FLAGS.seed)
    metrics.update({"model": FLAGS.model, "data": spec})
    write_json(metrics, checked["output"])
    nll, bound = metrics["nll"], metrics["elbo"]
    say(f"NLL  {nll['mean']:.3f} +- {nll['standard_error']:.3f} nats  (negative log-likelihood "
        f"-log p(x), lower is better; k={nll['num_samples']}, {nll['num_images']} images)")
    say(f"ELBO {bound['mean']:.3f} +- {bound['standard_error']:.3f} nats  (evidence lower "
        "bound on log p(x), higher is better; -ELBO >= NLL)")
    say(f"Active units {metrics['active_units']['active_units']} / "
        f"{metrics['active_units']['num_latents']}")
    say(f"Written to {checked['output']}")
    return 0


def _evaluate_likelihood(model, output):
    """Exact log-likelihood (nats per image, bits/dim) of a flow / autoregressive model on
    MNIST test images in the model's `data_kind` (`keras_crvae.jobs.likelihood`)."""
    from keras_crvae import data
    from keras_crvae.jobs import likelihood

    if given("num_samples"):
        raise UsageError(f"{flag_text('num_samples')}: a {type(model).__name__} has an exact "
                         "likelihood (no importance samples); expected no --num_samples")
    spec, images = mnist_images("data", "embedded:test", (28, 28, 1))
    if images is None:
        images = load_mnist_spec(spec)
    if FLAGS.num_images is not None:
        images = images[:FLAGS.num_images]
    if model.data_kind == "binary":
        images = data.static_binarize(images, seed=0)
    else:
        images = likelihood.grey_levels(images, name=spec)
    say(f"Evaluating {FLAGS.model} ({type(model).__name__}) on {len(images)} {model.data_kind} "
        f"images of {spec}: exact log-likelihood")
    metrics = likelihood.evaluate_log_likelihood(
        model, images, batch_size=FLAGS.batch_size or DEFAULT_BATCH_SIZE)
    metrics.update({"model": FLAGS.model, "data": spec, "data_kind": model.data_kind,
                    "model_class": type(model).__name__})
    write_json(metrics, output)
    nll, bits = metrics["nll"], metrics["bits_per_dim"]
    say(f"NLL  {nll['mean']:.3f} +- {nll['standard_error']:.3f} nats/image = "
        f"{bits['mean']:.4f} +- {bits['standard_error']:.4f} bits/dim (-log P(x) of the discrete "
        f"images, lower is better; {nll['num_images']} images)")
    say(f"Written to {output}")
    return 0


def _evaluate_gan(model, output):
    """Reconstruction error of a VAE-GAN / crVAE-GAN on colour images (no likelihood to estimate)."""
    from keras_crvae.evaluation import report

    if not FLAGS.data:
        raise UsageError(f"{flag_text('model')} is a {type(model).__name__} (64x64 colour images, "
                         "no likelihood); pass --data=PATH.npz[:KEY] with colour images to measure "
                         "its reconstruction error")
    images = colour_images("data", FLAGS.data)
    if FLAGS.num_images is not None:
        images = images[:FLAGS.num_images]
    say(f"Evaluating {FLAGS.model} ({type(model).__name__}) on {len(images)} images of "
        f"{FLAGS.data}: reconstruction error (a GAN model has no likelihood, so no NLL/ELBO)")
    mse = report.reconstruction_error(model, images,
                                      batch_size=FLAGS.batch_size or DEFAULT_GAN_BATCH_SIZE)
    write_json({"model": FLAGS.model, "data": FLAGS.data, "model_class": type(model).__name__,
                "reconstruction_mse": mse}, output)
    say(f"Reconstruction MSE {mse['mean']:.5f} +- {mse['standard_error']:.5f} per pixel "
        f"(images in [-1, 1], lower is better; {mse['num_images']} images)")
    say(f"Written to {output}")
    return 0
