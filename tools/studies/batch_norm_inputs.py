"""Which BatchNorm layers of a face checkpoint see batch statistics that move from batch to batch
far more than the values move within a batch (issue 26; docs/faces.md, "BatchNorm statistics at
scoring time"): such a layer normalises well with its batch's own statistics (training mode) and
badly with any fixed ones (inference mode, moving or re-estimated).

    python tools/studies/batch_norm_inputs.py --run=runs/face_fix2/crvae_nearest_avg \
        --output=/tmp/batch_norm_inputs.json

For every BatchNorm layer of the encoder (on batches of the training faces) and of the generator
(on batches of prior samples, and of posterior samples of the training faces: the two passes of a
training step), `--num_batches` batches of `--batch_size` in training mode give each channel's
batch means and variances (read from the layer's moving statistics with momentum 0, so the
trained weights are reloaded afterwards). Per layer, over its channels:

    between / within    the standard deviation of a channel's batch means across batches, over
                        the square root of its mean batch variance: about 1/sqrt(values per
                        channel in a batch) for independent batches of a well-spread feature;
                        >> 1 means that fixed statistics shift the channel by many of its own
                        standard deviations from one batch to the next
    moving offset       |moving mean as trained - mean of the batch means| over the same within
                        standard deviation (how far the as-trained statistics sit)
    variance ratio      moving variance as trained over the mean batch variance (1: the layer
                        scales as in training mode; reported as the channels' median, min, max)

Prints the layers with the largest median ratio first; writes JSON.
"""

import json
import pathlib
import sys

import numpy as np
from absl import app, flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "reproduce"))

FLAGS = flags.FLAGS


def channel_statistics(batch_means, batch_variances, moving_mean):
    """`batch_means`, `batch_variances` `(K, C)`, `moving_mean` `(C,)` -> per-channel ratios:
    (between-batch std of the means / within-batch std, |moving mean - mean of means| / within)."""
    within = np.sqrt(np.mean(batch_variances, axis=0)) + 1e-12
    between = np.std(batch_means, axis=0)
    offset = np.abs(moving_mean - np.mean(batch_means, axis=0))
    return between / within, offset / within


def variance_ratios(batch_variances, moving_variance):
    """Per channel: `moving_variance` `(C,)` over the mean of `batch_variances` `(K, C)`."""
    return moving_variance / (np.mean(batch_variances, axis=0) + 1e-12)


def summarize(name, ratios, offsets, variances):
    return {"layer": name, "channels": int(len(ratios)),
            "ratio_median": float(np.median(ratios)), "ratio_max": float(np.max(ratios)),
            "offset_median": float(np.median(offsets)), "offset_max": float(np.max(offsets)),
            "variance_ratio_median": float(np.median(variances)),
            "variance_ratio_min": float(np.min(variances)),
            "variance_ratio_max": float(np.max(variances))}


def measure_pass(network, batches, call):
    """Per BatchNorm layer of `network`, the summary of `channel_statistics` over `batches`."""
    from keras_crvae.layers.normalization import batch_norm_layers

    layers = batch_norm_layers(network)
    moving = {id(layer): np.asarray(layer.moving_mean.numpy(), "float64") for layer in layers}
    moving_variance = {id(layer): np.asarray(layer.moving_variance.numpy(), "float64")
                       for layer in layers}
    momenta = {id(layer): layer.momentum for layer in layers}
    means = {id(layer): [] for layer in layers}
    variances = {id(layer): [] for layer in layers}
    try:
        for layer in layers:
            layer.momentum = 0.0  # moving statistics := this batch's
        for batch in batches:
            call(batch)
            for layer in layers:
                means[id(layer)].append(np.asarray(layer.moving_mean.numpy(), "float64"))
                variances[id(layer)].append(np.asarray(layer.moving_variance.numpy(), "float64"))
    finally:
        for layer in layers:
            layer.momentum = momenta[id(layer)]
    rows = []
    for layer in layers:
        ratios, offsets = channel_statistics(np.stack(means[id(layer)]),
                                             np.stack(variances[id(layer)]), moving[id(layer)])
        rows.append(summarize(layer.path if hasattr(layer, "path") else layer.name, ratios,
                              offsets, variance_ratios(np.stack(variances[id(layer)]),
                                                       moving_variance[id(layer)])))
    return sorted(rows, key=lambda row: -row["ratio_median"])


def main(argv):
    del argv
    import ship_face_model

    run, weights = ship_face_model.checkpoint_paths(FLAGS.run, FLAGS.weights)
    for name in ("num_batches", "batch_size"):
        if getattr(FLAGS, name) < 2:
            raise app.UsageError(f"--{name}={getattr(FLAGS, name)}: expected at least 2.")
    from keras_crvae.jobs import scored_gan

    model, info = ship_face_model.run_model(run)
    rng = np.random.default_rng(0)
    count = FLAGS.num_batches * FLAGS.batch_size
    faces = np.load(FLAGS.faces)["x"][:8500]
    faces = np.asarray(scored_gan.as_signed_images(
        faces[rng.choice(len(faces), count, replace=False)]), "float32")
    image_batches = [faces[i:i + FLAGS.batch_size] for i in range(0, count, FLAGS.batch_size)]
    prior_batches = [rng.standard_normal((FLAGS.batch_size,) + model.latent_shape).astype(
        "float32") for _ in range(FLAGS.num_batches)]

    def posterior_samples(images):
        mean, log_var = (np.asarray(part, "float32") for part in model.encode(images))
        return mean + np.exp(0.5 * log_var) * rng.standard_normal(mean.shape).astype("float32")

    passes = {}
    for name, network, batches in (
            ("encoder on faces", "encoder", image_batches),
            ("generator on prior samples", "generator", prior_batches),
            ("generator on posterior samples", "generator", None)):
        model.load_weights(str(weights))  # the as-trained statistics before every pass
        if batches is None:
            batches = [posterior_samples(images) for images in image_batches]
        target = getattr(model, network)
        passes[name] = measure_pass(target, batches, lambda batch: target(batch, training=True))
    print(f"{info['preset']} ({weights}): {FLAGS.num_batches} batches of {FLAGS.batch_size}")
    for name, rows in passes.items():
        print(f"\n{name}: {len(rows)} BatchNorm layers; between/within (median, max over "
              "channels), moving offset (median, max), variance ratio (median, min, max)")
        for row in rows[:FLAGS.top]:
            print(f"  {row['layer'][:44]:44s} {row['ratio_median']:6.2f} {row['ratio_max']:6.2f}"
                  f"   {row['offset_median']:6.2f} {row['offset_max']:6.2f}   "
                  f"{row['variance_ratio_median']:6.2f} {row['variance_ratio_min']:6.2f} "
                  f"{row['variance_ratio_max']:6.2f}")
    if FLAGS.output:
        pathlib.Path(FLAGS.output).write_text(json.dumps(
            {"run": str(run), "weights": str(weights), "preset": info["preset"],
             "num_batches": FLAGS.num_batches, "batch_size": FLAGS.batch_size,
             "passes": passes}, indent=1) + "\n")


if __name__ == "__main__":
    # Flags defined here, not on import: the tests import this module beside other tools.
    import ship_face_model

    ship_face_model.define_checkpoint_flags()
    flags.DEFINE_integer("num_batches", 20, "Batches per pass.")
    flags.DEFINE_integer("batch_size", 32, "Images (latents) per batch.")
    flags.DEFINE_integer("top", 12, "Layers printed per pass.")
    app.run(main)
